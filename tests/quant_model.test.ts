// Quantized models against the fp32 model on transformers' fixture checkpoints.
import assert from "node:assert/strict";
import * as torch from "../ffi/mod.ts";
import { loadModel } from "../models/mod.ts";
import { quantizeModel } from "../models/quant/quantize_model.ts";
import { loadQuantizedModel, saveQuantizedModel } from "../models/quant/checkpoint.ts";
import { fixtureTestName, haveHfFixtures, HF_FIXTURES } from "./helpers.ts";

const FIXTURES = HF_FIXTURES;
if (!haveHfFixtures) console.warn(`skipping quantized-model tests: ${FIXTURES} is absent`);
const IDS = [[5, 17, 99, 3, 200, 45, 12, 8, 77, 150, 9, 31]];

/** ‖a − b‖_F / ‖b‖_F of two logits tensors. */
function relDiff(a: torch.Tensor, b: torch.Tensor): number {
  return torch.tidy(() => a.sub(b).norm().item() / b.norm().item());
}

// Bounds on the relative logits error against fp32 for the random-weight fixtures
// (weights ~ N(0, 0.2): a harsh case, no outlier-free trained structure).
const BOUNDS: Record<string, number> = {
  fp16: 0.002,
  bf16: 0.015,
  int8: 0.045,
  "int4-g32": 0.5,
  nf4: 0.55,
  "nf4-nodq": 0.55,
  fp4: 0.65,
};

Deno.test({
  name: fixtureTestName(
    "quantized logits stay within each scheme's bound of fp32, on all five architectures",
  ),
  ignore: !haveHfFixtures,
  fn() {
    for (const arch of ["llama", "llama3-rope", "mistral", "qwen2", "phi3"]) {
      const dir = FIXTURES + arch;
      using base = loadModel(dir);
      using ref = base.forward(IDS);
      let prev = 0;
      for (const [scheme, bound] of Object.entries(BOUNDS)) {
        using m = loadModel(dir);
        const report = quantizeModel(m, { scheme });
        using out = m.forward(IDS);
        const rel = relDiff(out, ref);
        assert.ok(rel <= bound, `${arch} ${scheme}: relative logits error ${rel} > ${bound}`);
        assert.ok(report.weightBytes < base.weightBytes(), `${arch} ${scheme}: bytes fall`);
        if (scheme === "int8") assert.ok(rel > prev, `${arch}: int8 error exceeds bf16's`);
        prev = rel;
      }
    }
  },
});

Deno.test({
  name: fixtureTestName("simulate mode gives the same logits as the real kernels"),
  ignore: !haveHfFixtures,
  fn() {
    for (const scheme of ["int8", "nf4", "fp4", "int4-g32", "bf16"]) {
      using real = loadModel(FIXTURES + "qwen2");
      using sim = loadModel(FIXTURES + "qwen2");
      quantizeModel(real, { scheme });
      quantizeModel(sim, { scheme, simulate: true });
      using a = real.forward(IDS);
      using b = sim.forward(IDS);
      const d = torch.tidy(() => a.sub(b).abs().max().item());
      assert.ok(d < 1e-4, `${scheme}: simulate differs by ${d}`);
    }
  },
});

Deno.test({
  name: fixtureTestName("a saved quantized model reloads with identical logits and storage"),
  ignore: !haveHfFixtures,
  fn() {
    const out = Deno.makeTempDirSync({ prefix: "lab-quant-" });
    try {
      for (const [arch, scheme] of [["llama", "nf4"], ["phi3", "int8"], ["llama3-rope", "fp4"]]) {
        using m = loadModel(FIXTURES + arch);
        quantizeModel(m, { scheme, keep: { "model.layers.1.*": "bf16" } });
        saveQuantizedModel(m, `${out}/${arch}`);
        using back = loadQuantizedModel(`${out}/${arch}`);
        assert.equal(back.weightBytes(), m.weightBytes());
        using a = m.forward(IDS);
        using b = back.forward(IDS);
        assert.deepEqual(b.values(), a.values(), `${arch} ${scheme} reload`);
      }
    } finally {
      Deno.removeSync(out, { recursive: true });
    }
  },
});

Deno.test({
  name: fixtureTestName(
    "keep globs choose per-module schemes; bad schemes name the module and the fix",
  ),
  ignore: !haveHfFixtures,
  fn() {
    using m = loadModel(FIXTURES + "llama");
    const r = quantizeModel(m, {
      scheme: "nf4",
      keep: { "lm_head": "bf16", "model.layers.0.*": "int8", "down_proj": "fp16" },
    });
    const scheme = (name: string) => r.modules.find((x) => x.module === name)!.scheme;
    assert.equal(scheme("lm_head"), "bf16");
    assert.equal(scheme("model.layers.0.self_attn.q_proj"), "int8");
    assert.equal(scheme("model.layers.0.mlp.down_proj"), "fp16"); // last match wins
    assert.equal(scheme("model.layers.1.self_attn.v_proj"), "nf4");
    for (const x of r.modules) {
      const expected = { nf4: 4.127, int8: 8.5, bf16: 16, fp16: 16 }[x.scheme]!;
      assert.ok(Math.abs(x.bitsPerParam - expected) < 0.6, `${x.module} bits ${x.bitsPerParam}`);
    }
    using m2 = loadModel(FIXTURES + "llama");
    assert.throws(
      () => quantizeModel(m2, { scheme: "int4-g64", strict: true }),
      /module 'model\.layers\.0\.mlp\.down_proj' \[64x160\] cannot use scheme 'int4-g64'.*keep: \{ "model\.layers\.0\.mlp\.down_proj": "int8" \}/,
    );
    // Without strict, a width the group does not divide (160) takes the largest group that does.
    const fit = quantizeModel(m2, { scheme: "int4-g64" });
    const fitScheme = (name: string) => fit.modules.find((x) => x.module === name)!.scheme;
    assert.equal(fitScheme("model.layers.0.mlp.down_proj"), "int4-g32");
    assert.equal(fitScheme("model.layers.0.mlp.up_proj"), "int4-g64");
  },
});
