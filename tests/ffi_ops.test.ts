// Numerics of the binding's ops against hand-computed values and float64 recomputation.
import assert from "node:assert/strict";
import * as torch from "../ffi/mod.ts";
import { assertClose, flat } from "./helpers.ts";

const { tensor, tidy } = torch;

function matmul64(a: number[][], b: number[][]): number[][] {
  return a.map((row) => b[0].map((_, j) => row.reduce((s, v, k) => s + v * b[k][j], 0)));
}

function rng(seed: number) {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32 - 0.5;
  };
}

function randMat(r: () => number, n: number, m: number): number[][] {
  return Array.from({ length: n }, () => Array.from({ length: m }, r));
}

Deno.test("elementwise math and broadcasting match hand-computed values", () => {
  tidy(() => {
    const a = tensor([[1, 2, 3], [4, 5, 6]]);
    const b = tensor([10, 20, 30]);
    assert.deepEqual(a.add(b).toArray(), [[11, 22, 33], [14, 25, 36]]);
    assert.deepEqual(a.sub(1).toArray(), [[0, 1, 2], [3, 4, 5]]);
    assert.deepEqual(a.mul(b).toArray(), [[10, 40, 90], [40, 100, 180]]);
    assert.deepEqual(a.div(2).toArray(), [[0.5, 1, 1.5], [2, 2.5, 3]]);
    assert.deepEqual(a.pow(2).toArray(), [[1, 4, 9], [16, 25, 36]]);
    assert.deepEqual(a.rsub(1).toArray(), [[0, -1, -2], [-3, -4, -5]]);
    assert.deepEqual(a.gt(3).toArray(), [[false, false, false], [true, true, true]]);
    assert.deepEqual(a.eq(tensor([1, 0, 3])).toArray(), [[true, false, true], [
      false,
      false,
      false,
    ]]);
    assert.deepEqual(a.clamp(2, 5).toArray(), [[2, 2, 3], [4, 5, 5]]);
    assert.deepEqual(a.maximum(tensor([3])).toArray(), [[3, 3, 3], [4, 5, 6]]);
    assertClose(tensor([0, 1]).exp().data(), [1, Math.E], 1e-6);
    assertClose(tensor([1, 4]).sqrt().data(), [1, 2]);
    assertClose(tensor([4]).rsqrt().data(), [0.5]);
    assertClose(tensor([Math.E]).log().data(), [1], 1e-6);
    assertClose(tensor([0.5]).tanh().data(), [Math.tanh(0.5)], 1e-7);
    const x = [-2, -0.5, 0, 1.5];
    assertClose(tensor(x).silu().data(), x.map((v) => v / (1 + Math.exp(-v))), 1e-6);
    assertClose(tensor(x).relu().data(), x.map((v) => Math.max(0, v)));
    // gelu(x) = x * Phi(x); Phi(1) = 0.8413447460685429
    assertClose(tensor([1]).gelu().data(), [0.8413447460685429], 1e-6);
    assertClose(tensor([-1.5, 2.5]).round().data(), [-2, 2]); // round half to even
  });
});

Deno.test("integer bit ops pack and unpack 4-bit values exactly", () => {
  tidy(() => {
    const lo = tensor([1, 15, 7, 0], { dtype: "uint8" });
    const hi = tensor([2, 3, 15, 9], { dtype: "uint8" });
    const packed = hi.shiftLeft(4).bitwiseOr(lo);
    assert.equal(packed.dtype, "uint8");
    assert.deepEqual(packed.toArray(), [33, 63, 247, 144]);
    assert.deepEqual(packed.bitwiseAnd(15).toArray(), [1, 15, 7, 0]);
    assert.deepEqual(packed.shiftRight(4).toArray(), [2, 3, 15, 9]);
    assert.deepEqual(tensor([5], { dtype: "int32" }).bitwiseXor(3).toArray(), [6]);
    assert.deepEqual(tensor([0], { dtype: "uint8" }).bitwiseNot().toArray(), [255]);
  });
});

Deno.test("reductions with dims and keepdim", () => {
  tidy(() => {
    const a = tensor([[1, 5, 3], [4, 2, 6]]);
    assert.equal(a.sum().item(), 21);
    assert.deepEqual(a.sum(0).toArray(), [5, 7, 9]);
    assert.deepEqual(a.sum(1, true).shape, [2, 1]);
    assert.deepEqual(a.mean(1).toArray(), [3, 4]);
    assert.deepEqual(a.max(1).toArray(), [5, 6]);
    assert.deepEqual(a.min(0).toArray(), [1, 2, 3]);
    assert.deepEqual(a.argmax(1).toArray(), [1, 2]);
    assert.equal(a.argmax().item(), 5);
    assert.deepEqual(a.argmin(0).toArray(), [0, 1, 0]);
    assertClose(a.std().data(), [Math.sqrt(17.5 / 5)], 1e-6);
    assertClose(a.norm().data(), [Math.sqrt(91)], 1e-5);
    assertClose(
      a.logsumexp(1).data(),
      [
        Math.log(Math.exp(1) + Math.exp(5) + Math.exp(3)),
        Math.log(Math.exp(4) + Math.exp(2) + Math.exp(6)),
      ],
      1e-5,
    );
    assert.deepEqual(a.gt(4).any(1).toArray(), [true, true]);
    assert.deepEqual(a.gt(1).all(1).toArray(), [false, true]);
    assert.deepEqual(tensor([[1, 2], [3, 4]]).prod(1).toArray(), [2, 12]);
  });
});

Deno.test("matmul, bmm and linear agree with float64 recomputation", () => {
  const r = rng(7);
  const A = randMat(r, 5, 7);
  const B = randMat(r, 7, 3);
  const want = matmul64(A, B);
  tidy(() => {
    const a = tensor(A, { dtype: "float64" });
    const b = tensor(B, { dtype: "float64" });
    assertClose(flat(a.matmul(b).toArray()), flat(want), 1e-12, "matmul f64");
    const af = tensor(A);
    const bf = tensor(B);
    assertClose(flat(af.matmul(bf).toArray()), flat(want), 1e-5, "matmul f32");
    // linear(x, w, b) = x wᵀ + b
    const bias = tensor([1, 2, 3]);
    const lin = torch.linear(af, bf.transpose(0, 1), bias);
    assertClose(flat(lin.toArray()), flat(want.map((row) => row.map((v, j) => v + j + 1))), 1e-5);
    const bb = torch.stack([a, a]).bmm(torch.stack([b, b]));
    assert.deepEqual(bb.shape, [2, 5, 3]);
    assertClose(flat(bb.toArray()), [...flat(want), ...flat(want)], 1e-12);
  });
});

Deno.test("softmax, log_softmax, rms-norm and layer-norm against float64 formulas", () => {
  const row = [0.5, -1.25, 2, 0.1];
  const m = Math.max(...row);
  const z = row.reduce((s, v) => s + Math.exp(v - m), 0);
  const sm = row.map((v) => Math.exp(v - m) / z);
  const ms = row.reduce((s, v) => s + v * v, 0) / row.length;
  const w = [1, 2, 0.5, -1];
  const rms = row.map((v, i) => (v / Math.sqrt(ms + 1e-5)) * w[i]);
  const mean = row.reduce((s, v) => s + v, 0) / row.length;
  const varr = row.reduce((s, v) => s + (v - mean) ** 2, 0) / row.length;
  const ln = row.map((v) => (v - mean) / Math.sqrt(varr + 1e-5));
  tidy(() => {
    const x = tensor([row], { dtype: "float64" });
    assertClose(x.softmax(-1).data(), sm, 1e-12);
    assertClose(x.logSoftmax(1).data(), sm.map(Math.log), 1e-12);
    assertClose(torch.rmsNorm(x, tensor(w, { dtype: "float64" }), 1e-5).data(), rms, 1e-12);
    assertClose(torch.layerNorm(x, null, null, 1e-5).data(), ln, 1e-12);
  });
});

Deno.test("views and shape ops", () => {
  tidy(() => {
    const a = torch.arange(0, 24).reshape([2, 3, 4]);
    assert.equal(a.dtype, "int64");
    assert.deepEqual(a.shape, [2, 3, 4]);
    assert.deepEqual(a.transpose(0, 2).shape, [4, 3, 2]);
    assert.deepEqual(a.permute([2, 0, 1]).shape, [4, 2, 3]);
    assert.deepEqual(a.narrow(2, 1, 2).toArray(), [
      [[1, 2], [5, 6], [9, 10]],
      [[13, 14], [17, 18], [21, 22]],
    ]);
    assert.deepEqual(a.slice(1, 0, 3, 2).shape, [2, 2, 4]);
    assert.deepEqual(a.flatten(1).shape, [2, 12]);
    assert.deepEqual(a.view([6, 4]).contiguous().shape, [6, 4]);
    assert.deepEqual(a.unsqueeze(0).shape, [1, 2, 3, 4]);
    assert.deepEqual(a.unsqueeze(0).squeeze().shape, [2, 3, 4]);
    assert.deepEqual(tensor([1, 2]).unsqueeze(1).expand([2, 3]).toArray(), [[1, 1, 1], [2, 2, 2]]);
    assert.deepEqual(tensor([1, 2]).repeat([2]).toArray(), [1, 2, 1, 2]);
    assert.deepEqual(tensor([1, 2]).repeatInterleave(2, 0).toArray(), [1, 1, 2, 2]);
    const parts = torch.arange(0, 7).split(3);
    assert.deepEqual(parts.map((p) => p.toArray()), [[0, 1, 2], [3, 4, 5], [6]]);
    const chunks = torch.arange(0, 6).chunk(3);
    assert.deepEqual(chunks.map((p) => p.toArray()), [[0, 1], [2, 3], [4, 5]]);
    assert.deepEqual(torch.cat([tensor([1]), tensor([2, 3])]).toArray(), [1, 2, 3]);
    assert.deepEqual(torch.stack([tensor([1, 2]), tensor([3, 4])], 1).toArray(), [[1, 3], [2, 4]]);
    assert.deepEqual(tensor([1, 2, 3]).flip(0).toArray(), [3, 2, 1]);
    assert.deepEqual(tensor([1, 2, 3]).cumsum(0).toArray(), [1, 3, 6]);
  });
});

Deno.test("indexing: index_select, gather, scatter, where, masked_fill, triu/tril, embedding", () => {
  tidy(() => {
    const a = tensor([[1, 2], [3, 4], [5, 6]]);
    const idx = tensor([2, 0], { dtype: "int64" });
    assert.deepEqual(a.indexSelect(0, idx).toArray(), [[5, 6], [1, 2]]);
    const g = tensor([[1, 0], [0, 0], [1, 1]], { dtype: "int64" });
    assert.deepEqual(a.gather(1, g).toArray(), [[2, 1], [3, 3], [6, 6]]);
    const z = torch.zeros([2, 3]);
    const si = tensor([[2], [0]], { dtype: "int64" });
    assert.deepEqual(z.scatter(1, si, tensor([[7], [8]])).toArray(), [[0, 0, 7], [8, 0, 0]]);
    assert.deepEqual(
      z.scatterAdd(1, tensor([[1, 1]], { dtype: "int64" }), tensor([[2, 3]])).toArray(),
      [[0, 5, 0], [0, 0, 0]],
    );
    const cond = tensor([true, false, true], { dtype: "bool" });
    assert.deepEqual(torch.where(cond, tensor([1, 2, 3]), tensor([9, 9, 9])).toArray(), [1, 9, 3]);
    assert.deepEqual(tensor([1, 2, 3]).maskedFill(cond, -1).toArray(), [-1, 2, -1]);
    const o = torch.ones([3, 3]);
    assert.deepEqual(o.triu(1).toArray(), [[0, 1, 1], [0, 0, 1], [0, 0, 0]]);
    assert.deepEqual(o.tril().toArray(), [[1, 0, 0], [1, 1, 0], [1, 1, 1]]);
    const emb = torch.embedding(a, tensor([[1, 1, 0]], { dtype: "int64" }));
    assert.deepEqual(emb.toArray(), [[[3, 4], [3, 4], [1, 2]]]);
    const ic = torch.zeros([3, 2]).indexCopy(0, tensor([1], { dtype: "int64" }), tensor([[5, 5]]));
    assert.deepEqual(ic.toArray(), [[0, 0], [5, 5], [0, 0]]);
  });
});

Deno.test("topk, sort, multinomial with a seed", () => {
  tidy(() => {
    const [v, i] = tensor([3, 1, 4, 1, 5]).topk(2);
    assert.deepEqual(v.toArray(), [5, 4]);
    assert.deepEqual(i.toArray(), [4, 2]);
    const [sv, si] = tensor([3, 1, 2]).sort(0, true);
    assert.deepEqual(sv.toArray(), [3, 2, 1]);
    assert.deepEqual(si.toArray(), [0, 2, 1]);
    const p = tensor([[0, 0, 1, 0]]);
    assert.deepEqual(p.multinomial(1).toArray(), [[2]]);
    torch.manualSeed(42);
    const s1 = tensor([[0.2, 0.3, 0.5]]).multinomial(20, true).toArray();
    torch.manualSeed(42);
    const s2 = tensor([[0.2, 0.3, 0.5]]).multinomial(20, true).toArray();
    assert.deepEqual(s1, s2);
  });
});

Deno.test("cross_entropy with ignore_index matches the float64 formula", () => {
  const logits = [[2, 1, 0.1], [0.5, 2.5, 0.3], [1, 1, 1]];
  const target = [0, 1, -100];
  const nll = (row: number[], t: number) => {
    const m = Math.max(...row);
    return -(row[t] - m - Math.log(row.reduce((s, v) => s + Math.exp(v - m), 0)));
  };
  const want = (nll(logits[0], 0) + nll(logits[1], 1)) / 2;
  tidy(() => {
    const l = tensor(logits, { dtype: "float64" });
    const t = tensor(target, { dtype: "int64" });
    assertClose([torch.crossEntropy(l, t).item()], [want], 1e-12);
    const none = torch.crossEntropy(l, t, { reduction: "none" }).data();
    assertClose(none, [nll(logits[0], 0), nll(logits[1], 1), 0], 1e-12);
    assertClose([torch.crossEntropy(l, t, { reduction: "sum" }).item()], [want * 2], 1e-12);
  });
});

Deno.test("dtypes round-trip and convert", () => {
  tidy(() => {
    for (const dt of ["float32", "float64", "int8", "uint8", "int32", "int64"] as const) {
      const t = tensor([1, 2, 3], { dtype: dt });
      assert.equal(t.dtype, dt);
      assert.deepEqual(t.toArray(), [1, 2, 3]);
    }
    const h = tensor([1.5, -2.25], { dtype: "float16" });
    assert.equal(h.dtype, "float16");
    assert.deepEqual(h.toArray(), [1.5, -2.25]);
    const bf = tensor([1, 3.140625], { dtype: "bfloat16" });
    assert.equal(bf.dtype, "bfloat16");
    assert.deepEqual(bf.values(), [1, 3.140625]);
    assert.equal(bf.nbytes, 4);
    assert.deepEqual(tensor([true, false], { dtype: "bool" }).toArray(), [true, false]);
    const f = tensor(new Float32Array([1, 2, 3, 4]), { shape: [2, 2] });
    assert.deepEqual(f.to("int32").toArray(), [[1, 2], [3, 4]]);
    assert.equal(f.to("float64").dtype, "float64");
    assert.deepEqual(Array.from(f.bytes().slice(0, 4)), [0, 0, 128, 63]);
    assert.equal(tensor([2.5]).item(), 2.5);
    assert.equal(torch.full([2], 7, { dtype: "int32" }).sum().item(), 14);
  });
});

Deno.test("attention matches its composed form, with and without masks", () => {
  tidy(() => {
    torch.manualSeed(1);
    const q = torch.randn([2, 3, 5, 4], { dtype: "float64" });
    const k = torch.randn([2, 3, 7, 4], { dtype: "float64" });
    const v = torch.randn([2, 3, 7, 4], { dtype: "float64" });
    const scale = 0.5;
    const composed = (mask: torch.Tensor | null) => {
      let s = q.matmul(k.transpose(-2, -1)).mul(scale);
      if (mask) s = s.maskedFill(mask.logicalNot(), -Infinity);
      return s.softmax(-1).matmul(v);
    };
    const full = torch.scaledDotProductAttention(q, k, v, { scale });
    assertClose(full.data(), composed(null).data(), 1e-10, "unmasked");
    // causal with 7 keys and 5 queries: query i sees keys up to i + 2.
    const causal = torch.scaledDotProductAttention(q, k, v, { scale, causal: true });
    const mask = torch.ones([5, 7], { dtype: "bool" }).tril(2);
    assertClose(causal.data(), composed(mask).data(), 1e-10, "causal");
    const masked = torch.scaledDotProductAttention(q, k, v, { scale, mask });
    assertClose(masked.data(), causal.data(), 1e-10, "bool mask");
  });
});

Deno.test("random generators are reproducible with manualSeed", () => {
  tidy(() => {
    torch.manualSeed(3);
    const a = torch.randn([4]).data();
    torch.manualSeed(3);
    const b = torch.randn([4]).data();
    assert.deepEqual(a, b);
    const u = torch.rand([1000]);
    assert.ok(u.min().item() >= 0 && u.max().item() < 1);
    assert.ok(Math.abs(torch.randn([20000]).mean().item()) < 0.05);
  });
});
