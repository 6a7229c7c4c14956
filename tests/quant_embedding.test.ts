// lm_head and the embedding table follow the scheme: stored once when tied, looked up by
// dequantizing only the rows read, counted in the model's bytes, saved and reloaded.
import assert from "node:assert/strict";
import * as torch from "../ffi/mod.ts";
import { loadModel } from "../models/mod.ts";
import { createTinyModel } from "../models/tiny.ts";
import { moduleSchemes, quantizeModel } from "../models/quant/quantize_model.ts";
import { QuantizedLinear } from "../models/quant/quantized_linear.ts";
import { CastLinear } from "../models/quant/cast_linear.ts";
import { loadQuantizedModel, saveQuantizedModel } from "../models/quant/checkpoint.ts";
import { isPacked } from "../models/embedding.ts";
import { parseScheme } from "../models/quant/schemes.ts";
import { assertClose } from "./helpers.ts";

const IDS = [[5, 17, 99, 3, 200, 45, 12, 8]];

function tinyDir(arch: "llama" | "llama3"): string {
  const dir = Deno.makeTempDirSync({ prefix: `lab-embed-${arch}-` });
  createTinyModel({ out: `${dir}/m`, arch, preset: "tiny", seed: 3 });
  return `${dir}/m`;
}

Deno.test("a tied table is quantized once: int8 under nf4, shared by the head, bytes counted once", () => {
  const dir = tinyDir("llama3");
  try {
    using base = loadModel(dir);
    const denseTable = base.weights.embedTokens as torch.Tensor;
    const [vocab, hidden] = denseTable.shape;
    using m = loadModel(dir);
    const report = quantizeModel(m, { scheme: "nf4" });
    const table = m.weights.embedTokens;
    assert.ok(table instanceof QuantizedLinear, "packed table");
    assert.equal((table as QuantizedLinear).scheme.name, "int8");
    assert.equal(m.weights.lmHead, table, "the head is the same object");
    const row = report.modules.find((r) => r.module === "model.embed_tokens")!;
    assert.equal(row.scheme, "int8");
    assert.equal(row.bytes, vocab * hidden + 4 * vocab);
    assert.ok(!report.modules.some((r) => r.module === "lm_head"), "tied: one row");
    // Every tensor the model holds, the table once.
    const projections = report.modules.filter((r) => r.module !== "model.embed_tokens")
      .reduce((s, r) => s + r.bytes, 0);
    const norms = (m.config.numLayers * 2 + 1) * hidden * 4;
    assert.equal(m.weightBytes(), projections + row.bytes + norms);
  } finally {
    Deno.removeSync(dir.replace(/\/m$/, ""), { recursive: true });
  }
});

Deno.test("a lookup equals the dequantized rows, for every packed table kind; bad ids are named", () => {
  torch.tidy(() => {
    torch.manualSeed(4);
    const w = torch.randn([300, 64]).mul(0.1);
    const ids = torch.tensor(new BigInt64Array([0n, 7n, 299n, 7n, 150n, 1n]), { shape: [2, 3] });
    for (const scheme of ["int8", "nf4", "fp4-nodq", "int4-g32"] as const) {
      const q = QuantizedLinear.fromWeight(w, null, parseScheme(scheme) as never);
      // The reference dequantizes through the composed tensor-op path, which shares no code
      // with the native row decoders.
      const want = q.dequantize("float32", true).indexSelect(0, ids.reshape([6]))
        .reshape([2, 3, 64]);
      const got = q.rows(ids);
      assert.deepEqual(got.shape, [2, 3, 64]);
      assertClose(got.values(), want.values(), 1e-6, scheme);
      const bad = torch.tensor(new BigInt64Array([3n, 300n]), { shape: [1, 2] });
      assert.throws(() => q.rows(bad), /token id 300 is outside the embedding table of 300 rows/);
      q.dispose();
    }
    for (const dtype of ["bfloat16", "float16"] as const) {
      const c = CastLinear.fromWeight(w, null, dtype);
      const want = w.to(dtype).to("float32").indexSelect(0, ids.reshape([6])).reshape([2, 3, 64]);
      assert.deepEqual(Array.from(c.rows(ids).values()), Array.from(want.values()), dtype);
      c.dispose();
    }
  });
});

Deno.test("a quantized table reloads bit for bit, tied and untied; keep overrides the default", () => {
  for (const arch of ["llama3", "llama"] as const) {
    const dir = tinyDir(arch);
    const out = `${dir}-q`;
    try {
      using m = loadModel(dir);
      quantizeModel(m, { scheme: "int4-g32" });
      assert.ok(isPacked(m.weights.embedTokens));
      if (arch === "llama") {
        assert.ok(m.weights.lmHead instanceof QuantizedLinear);
        assert.notEqual(m.weights.lmHead, m.weights.embedTokens);
      }
      using logits = m.forward(IDS);
      saveQuantizedModel(m, out);
      using back = loadQuantizedModel(out);
      assert.ok(isPacked(back.weights.embedTokens));
      if (arch === "llama3") assert.equal(back.weights.lmHead, back.weights.embedTokens);
      using again = back.forward(IDS);
      assert.deepEqual(Array.from(again.values()), Array.from(logits.values()), arch);

      using kept = loadModel(dir);
      quantizeModel(kept, { scheme: "nf4", keep: { lm_head: "fp32", embed_tokens: "fp32" } });
      assert.ok(!isPacked(kept.weights.embedTokens), `${arch}: keep leaves the table dense`);
      using bf = loadModel(dir);
      quantizeModel(bf, { scheme: "nf4", keep: { embed_tokens: "bf16", lm_head: "bf16" } });
      assert.ok(bf.weights.embedTokens instanceof CastLinear, `${arch}: bf16 table`);
      using bfOut = bf.forward(IDS);
      assert.ok(bfOut.isfinite().all().item() !== 0);
    } finally {
      Deno.removeSync(dir.replace(/\/m$/, ""), { recursive: true }); // holds `out` too
    }
  }
});

Deno.test("the scheme a module is expected to take: head and table int8 under 4-bit, a tied table follows lm_head's keep", () => {
  const names = ["model.layers.0.mlp.up_proj", "lm_head", "model.embed_tokens"];
  const got = (opts: { scheme: string; keep?: Record<string, string> }, tied: boolean) =>
    [...moduleSchemes(names, opts, tied).values()].map((s) => s.name);
  assert.deepEqual(got({ scheme: "nf4" }, false), ["nf4", "int8", "int8"]);
  assert.deepEqual(got({ scheme: "int4-g32" }, true), ["int4-g32", "int8", "int8"]);
  assert.deepEqual(got({ scheme: "bf16" }, true), ["bf16", "bf16", "bf16"]);
  assert.deepEqual(got({ scheme: "nf4", keep: { lm_head: "bf16" } }, true), [
    "nf4",
    "bf16",
    "bf16",
  ]);
  assert.deepEqual(got({ scheme: "nf4", keep: { lm_head: "bf16" } }, false), [
    "nf4",
    "bf16",
    "int8",
  ]);
});
