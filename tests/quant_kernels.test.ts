// Quantization kernels: code books, packing, round-trip error bounds, double quantization.
import assert from "node:assert/strict";
import * as torch from "../ffi/mod.ts";
import { QuantizedLinear } from "../models/quant/quantized_linear.ts";
import { parseScheme, SchemeError } from "../models/quant/schemes.ts";
import { CastLinear } from "../models/quant/cast_linear.ts";
import { assertClose } from "./helpers.ts";
import { kernelIsa } from "../ffi/mod.ts";

const { tidy } = torch;

// Acklam's inverse normal CDF (|error| < 1.2e-9): an independent route to the NF4 table.
function normPpf(p: number): number {
  const a = [
    -39.69683028665376,
    220.9460984245205,
    -275.9285104469687,
    138.357751867269,
    -30.66479806614716,
    2.506628277459239,
  ];
  const b = [
    -54.47609879822406,
    161.5858368580409,
    -155.6989798598866,
    66.80131188771972,
    -13.28068155288572,
  ];
  const c = [
    -0.007784894002430293,
    -0.3223964580411365,
    -2.400758277161838,
    -2.549732539343734,
    4.374664141464968,
    2.938163982698783,
  ];
  const d = [0.007784695709041462, 0.3224671290700398, 2.445134137142996, 3.754408661907416];
  const lo = 0.02425;
  if (p < lo) {
    const q = Math.sqrt(-2 * Math.log(p));
    return (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
      ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
  }
  if (p > 1 - lo) return -normPpf(1 - p);
  const q = p - 0.5, r = q * q;
  return (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q /
    (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1);
}

// QLoRA's NormalFloat4: 8 positive and 7 negative normal quantiles plus 0, scaled to [-1, 1].
function nf4Table(): number[] {
  const offset = 0.9677083;
  const lin = (a: number, b: number, n: number) =>
    Array.from({ length: n }, (_, i) => a + ((b - a) * i) / (n - 1));
  const pos = lin(offset, 0.5, 9).slice(0, -1).map(normPpf);
  const neg = lin(offset, 0.5, 8).slice(0, -1).map((p) => -normPpf(p));
  const all = [...pos, 0, ...neg].sort((x, y) => x - y);
  const max = Math.max(...all.map(Math.abs));
  return all.map((v) => v / max);
}

/** Dequantized values of codes 0..15 with absmax 1. */
function decodeAllCodes(kind: "nf4" | "fp4"): number[] {
  return tidy(() => {
    const packed = torch.tensor(new Uint8Array([0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef]));
    const absmax = torch.ones([1]);
    return torch.dequantizeWeight(kind, [packed, absmax], [1, 16], { block: 64 }).values();
  });
}

Deno.test("NF4 code values are QLoRA's normal quantiles", () => {
  const codes = decodeAllCodes("nf4");
  assertClose(codes, nf4Table(), 1e-6, "NF4 code book");
  assert.equal(codes[7], 0);
  assert.equal(codes[0], -1);
  assert.equal(codes[15], 1);
});

Deno.test("FP4 (e2m1) code values", () => {
  const mags = [0, 0.5, 1, 1.5, 2, 3, 4, 6].map((v) => v / 6);
  assertClose(decodeAllCodes("fp4"), [...mags, ...mags.map((v) => -v)], 1e-7, "FP4 code book");
});

Deno.test("packing is exact: values on the code grid survive a round trip bit for bit", () => {
  tidy(() => {
    const table = decodeAllCodes("nf4");
    // 2 blocks of 64 with absmax 1 and 2.5; every code appears.
    const vals = Array.from({ length: 128 }, (_, i) => table[(i * 7) % 16] * (i < 64 ? 1 : 2.5));
    vals[0] = -1;
    vals[64] = 2.5;
    const w = torch.tensor(vals, { shape: [2, 64] });
    const q = QuantizedLinear.fromWeight(w, null, parseScheme("nf4-nodq") as never);
    assert.deepEqual(q.dequantize().values(), torch.tensor(vals).values());
    // int4: integers 0..15 minus a zero point, times a power-of-two scale, are representable.
    const ints = Array.from({ length: 256 }, (_, i) => ((i * 5) % 16 - 3) * 0.25);
    const w4 = torch.tensor(ints, { shape: [2, 128] });
    const q4 = QuantizedLinear.fromWeight(w4, null, parseScheme("int4-g32") as never);
    assert.deepEqual(q4.dequantize().values(), ints);
    q.dispose();
    q4.dispose();
  });
});

Deno.test("NF4 round trip on normal data: nearest-code error and the usual ~10% relative error", () => {
  tidy(() => {
    torch.manualSeed(0);
    const w = torch.randn([64, 256]);
    const q = QuantizedLinear.fromWeight(w, null, parseScheme("nf4-nodq") as never);
    const deq = q.dequantize().values();
    const orig = w.values();
    const table = nf4Table();
    // Independent reference: nearest code per element of each 64-block.
    for (let b = 0; b < orig.length / 64; b++) {
      const blk = orig.slice(b * 64, b * 64 + 64);
      const am = Math.max(...blk.map(Math.abs));
      for (let i = 0; i < 64; i++) {
        const x = blk[i] / am;
        const best = table.reduce(
          (bst, v) => (Math.abs(x - v) < Math.abs(x - bst) ? v : bst),
          table[0],
        );
        const want = best * am;
        assert.ok(
          Math.abs(deq[b * 64 + i] - want) < 1e-5,
          `block ${b} elem ${i}: ${deq[b * 64 + i]} vs ${want}`,
        );
      }
    }
    const rel = q.relativeError(w);
    assert.ok(rel > 0.05 && rel < 0.11, `NF4 relative error ${rel}`);
    q.dispose();
  });
});

Deno.test("int8 and int4 round trips stay within half a quantization step", () => {
  tidy(() => {
    torch.manualSeed(1);
    const w = torch.randn([32, 128]);
    const orig = w.values();
    const q8 = QuantizedLinear.fromWeight(w, null, parseScheme("int8") as never);
    const d8 = q8.dequantize().values();
    const scales = q8.parts[1].values();
    for (let i = 0; i < orig.length; i++) {
      const step = scales[Math.floor(i / 128)];
      assert.ok(Math.abs(orig[i] - d8[i]) <= step / 2 + 1e-6, `int8 elem ${i}`);
    }
    for (const g of [32, 64, 128]) {
      const q4 = QuantizedLinear.fromWeight(w, null, parseScheme(`int4-g${g}`) as never);
      const d4 = q4.dequantize().values();
      const sc = q4.parts[1].values();
      for (let i = 0; i < orig.length; i++) {
        const step = sc[Math.floor(i / g)];
        assert.ok(Math.abs(orig[i] - d4[i]) <= step / 2 + 1e-5, `int4-g${g} elem ${i}`);
      }
      q4.dispose();
    }
    q8.dispose();
  });
});

Deno.test("double quantization shrinks absmax storage and keeps it accurate", () => {
  tidy(() => {
    torch.manualSeed(2);
    const w = torch.randn([256, 512]);
    const single = QuantizedLinear.fromWeight(w, null, parseScheme("nf4-nodq") as never);
    const double = QuantizedLinear.fromWeight(w, null, parseScheme("nf4") as never);
    const n = w.numel;
    // single: 4 bits + 32/64 bits; double: 4 + 8/64 + 32/(64*256) bits (+ one offset).
    assert.equal(single.weightBytes(), n / 2 + (n / 64) * 4);
    assert.equal(double.weightBytes(), n / 2 + n / 64 + (n / 64 / 256) * 4 + 4);
    assert.ok(double.weightBytes() / n <= 0.52, `nf4+dq bytes/param ${double.weightBytes() / n}`);
    const bits = (double.weightBytes() * 8) / n;
    assert.ok(bits < 4.14, `bits/param ${bits}`);
    const e1 = single.relativeError(w);
    const e2 = double.relativeError(w);
    assert.ok(e2 < e1 * 1.01, `double quant error ${e2} vs ${e1}`);
    single.dispose();
    double.dispose();
  });
});

Deno.test("native dequantization equals the composed tensor-op path for every format", () => {
  tidy(() => {
    torch.manualSeed(3);
    const w = torch.randn([48, 256]);
    for (const s of ["int8", "nf4", "nf4-nodq", "fp4", "int4-g32", "int4-g128"]) {
      const q = QuantizedLinear.fromWeight(w, null, parseScheme(s) as never);
      assertClose(
        q.dequantize("float32").values(),
        q.dequantize("float32", true).values(),
        1e-6,
        s,
      );
      q.dispose();
    }
  });
});

Deno.test("quantized linear equals x @ dequant(W)ᵀ + b, also for bf16 inputs", () => {
  tidy(() => {
    torch.manualSeed(4);
    const w = torch.randn([40, 128]);
    const b = torch.randn([40]);
    const x = torch.randn([3, 5, 128]);
    for (const s of ["int8", "nf4", "fp4", "int4-g64"]) {
      const q = QuantizedLinear.fromWeight(w, b, parseScheme(s) as never);
      const want = torch.linear(x, q.dequantize(), b);
      const got = q.forward(x);
      assert.deepEqual(got.shape, [3, 5, 40]);
      assertClose(got.values(), want.values(), 1e-4, s);
      const gotBf = q.forward(x.to("bfloat16"));
      assert.equal(gotBf.dtype, "bfloat16");
      assertClose(gotBf.values(), want.values(), 0.35, `${s} bf16`);
    }
  });
});

Deno.test("the small-batch (decode) kernel equals x @ dequant(W)ᵀ + b", () => {
  // The exact (float) kernels: the int4 integer path rounds the activations, and
  // quant_dispatch.test.ts checks it against a reference that rounds them the same way.
  const isa = kernelIsa();
  if (isa === "vnni") kernelIsa("avx512");
  try {
    decodeKernelCases();
  } finally {
    kernelIsa(isa);
  }
});

function decodeKernelCases(): void {
  tidy(() => {
    torch.manualSeed(6);
    const w = torch.randn([72, 256]);
    const b = torch.randn([72]);
    for (const rows of [1, 3, 8]) {
      const x = torch.randn([rows, 1, 256]);
      for (const s of ["int8", "nf4", "nf4-nodq", "fp4", "int4-g32", "int4-g128"]) {
        const q = QuantizedLinear.fromWeight(w, b, parseScheme(s) as never);
        const want = torch.linear(x, q.dequantize(), b);
        const got = q.forward(x);
        assert.deepEqual(got.shape, [rows, 1, 72]);
        assertClose(got.values(), want.values(), 2e-4, `${s} rows=${rows}`);
        const gotBf = q.forward(x.to("bfloat16"));
        assert.equal(gotBf.dtype, "bfloat16");
        assertClose(gotBf.values(), want.values(), 0.4, `${s} bf16 rows=${rows}`);
      }
    }
  });
}

Deno.test("half-precision storage widened per call equals the dense product, small and large batches", () => {
  tidy(() => {
    torch.manualSeed(7);
    const w = torch.randn([40, 96]);
    const b = torch.randn([40]);
    for (const dtype of ["float16", "bfloat16"] as const) {
      const layer = CastLinear.fromWeight(w, b, dtype);
      for (const rows of [1, 5, 20]) {
        const x = torch.randn([rows, 96]);
        const want = torch.linear(x, layer.weight.to("float32"), b);
        assertClose(layer.forward(x).values(), want.values(), 1e-4, `${dtype} rows=${rows}`);
      }
    }
  });
});

Deno.test("gradients flow to the input through a frozen quantized weight (QLoRA), as through the dense one", () => {
  tidy(() => {
    torch.manualSeed(8);
    const w = torch.randn([24, 128]);
    const b = torch.randn([24]);
    for (const s of ["nf4", "int8", "int4-g32"]) {
      const q = QuantizedLinear.fromWeight(w, b, parseScheme(s) as never);
      const dense = q.dequantize();
      for (const rows of [2, 12]) {
        const x0 = torch.randn([rows, 128]);
        const probe = torch.randn([rows, 24]);
        const xa = x0.clone().requiresGrad_();
        q.forward(xa).mul(probe).sum().backward();
        const xb = x0.clone().requiresGrad_();
        torch.linear(xb, dense, b).mul(probe).sum().backward();
        assertClose(xa.grad!.values(), xb.grad!.values(), 1e-4, `${s} rows=${rows}`);
        assert.equal(q.parts[0].requiresGrad, false);
      }
    }
  });
});

Deno.test("odd sizes: a weight whose size is not a multiple of the block", () => {
  tidy(() => {
    torch.manualSeed(5);
    const w = torch.randn([3, 50]); // 150 elements: 2 full blocks of 64 + 22
    const q = QuantizedLinear.fromWeight(w, null, parseScheme("nf4") as never);
    assert.deepEqual(q.dequantize().shape, [3, 50]);
    assert.ok(q.relativeError(w) < 0.12);
    assert.throws(
      () => QuantizedLinear.fromWeight(w, null, parseScheme("int4-g32") as never),
      /in_features 50 is not a multiple of the group size 32/,
    );
  });
});

Deno.test("scheme names: unknown and unsupported schemes are clear errors", () => {
  assert.throws(
    () => parseScheme("int3"),
    /unknown quantization scheme 'int3': use one of fp32, fp16/,
  );
  assert.throws(() => parseScheme("int4-g100"), /group size must be 32, 64 or 128/);
  if (!torch.hasFloat8()) {
    assert.throws(
      () => parseScheme("fp8-e4m3"),
      (e: unknown) => e instanceof SchemeError && /libtorch lacks/.test(String(e)),
    );
  }
  assert.deepEqual(parseScheme("int4"), { name: "int4-g128", kind: "int4", block: 128, block2: 0 });
  assert.deepEqual(parseScheme("bf16"), { name: "bf16", kind: "cast", dtype: "bfloat16" });
});

Deno.test("storage that does not fit the layer's shape is an error, not a crash", () => {
  tidy(() => {
    const packed = torch.zeros([10], { dtype: "uint8" });
    const absmax = torch.ones([1]);
    const x = torch.ones([1, 64]);
    assert.throws(
      () => torch.quantizedLinear("nf4", x, [packed, absmax], [8, 64], 64, 0, null),
      /packed weights are too short/,
    );
    const q8 = torch.zeros([4, 64], { dtype: "int8" });
    assert.throws(
      () => torch.quantizedLinear("int8", x, [q8, torch.ones([3])], [4, 64], 0, 0, null),
      /do not fit the layer's shape/,
    );
  });
});
