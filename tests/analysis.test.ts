// Layer sensitivity and divergence between a model and its variants.
import assert from "node:assert/strict";
import * as torch from "../ffi/mod.ts";
import { loadModel } from "../models/mod.ts";
import { quantizeModel } from "../models/quant/quantize_model.ts";
import type { Linear } from "../models/linear.ts";
import { layerSensitivity } from "../models/analysis/sensitivity.ts";
import { compareDistributions } from "../models/analysis/divergence.ts";
import { chunk } from "../models/analysis/compare.ts";
import { adviseMixedPrecision } from "../models/analysis/advisor.ts";
import { fixtureTestName, haveHfFixtures, HF_FIXTURES } from "./helpers.ts";

const FIXTURES = HF_FIXTURES;
if (!haveHfFixtures) console.warn(`skipping analysis tests: ${FIXTURES} is absent`);
const IDS = Array.from({ length: 96 }, (_, i) => 3 + ((i * 53 + 7) % 250));

Deno.test({
  name: fixtureTestName("a model against itself: MSE 0, cosine 1, KLD 0, full top-1 agreement"),
  ignore: !haveHfFixtures,
  fn() {
    using a = loadModel(FIXTURES + "llama");
    using b = loadModel(FIXTURES + "llama");
    const before = torch.liveTensors();
    const rows = layerSensitivity(a, b, chunk(IDS, 32));
    assert.equal(torch.liveTensors(), before);
    assert.equal(rows.length, 15 * 3); // 2 layers × 7 + lm_head, three modes
    for (const r of rows) {
      assert.equal(r.mse, 0, `${r.mode} ${r.layer} ${r.module}`);
      assert.ok(Math.abs(r.cosine - 1) < 1e-5);
      assert.equal(r.relError, 0);
    }
    const d = compareDistributions(a, b, IDS, { contextLength: 32, stride: 16 });
    assert.equal(d.tokens, IDS.length - 1);
    assert.ok(d.meanKld < 1e-7 && d.p99Kld < 1e-6, `kld ${d.meanKld}`);
    assert.equal(d.top1Agreement, 1);
    assert.ok(Math.abs(d.pplRatio - 1) < 1e-9);
  },
});

Deno.test({
  name: fixtureTestName(
    "perturbing one module ranks it first; isolated mode does not compound errors",
  ),
  ignore: !haveHfFixtures,
  fn() {
    using a = loadModel(FIXTURES + "mistral");
    using b = loadModel(FIXTURES + "mistral");
    const target = b.weights.layers[1].upProj as Linear;
    torch.tidy(() => {
      torch.manualSeed(9);
      target.weight.copy_(target.weight.add(torch.randn(target.weight.shape).mul(0.1)));
    });
    const rows = layerSensitivity(a, b, chunk(IDS, 48));
    for (const mode of ["isolated", "end_to_end", "weight"]) {
      const top = rows.filter((r) => r.mode === mode).sort((x, y) => y.relError - x.relError)[0];
      assert.equal(`${top.layer}.${top.module}`, "1.mlp.up_proj", mode);
    }
    // Isolated: modules before the perturbed one and those fed the reference's inputs are exact.
    const iso = rows.filter((r) => r.mode === "isolated");
    for (const r of iso) {
      if (r.layer === 1 && r.module === "mlp.up_proj") continue;
      assert.equal(r.mse, 0, `${r.layer} ${r.module} isolated`);
    }
    // End to end: everything downstream of it moves.
    const e2e = rows.find((r) =>
      r.mode === "end_to_end" && r.layer === 1 && r.module === "mlp.down_proj"
    )!;
    assert.ok(e2e.mse > 0);
    const lm = rows.find((r) => r.mode === "end_to_end" && r.module === "lm_head")!;
    assert.ok(lm.mse > 0);
  },
});

Deno.test({
  name: fixtureTestName(
    "KLD against the fp32 model grows fp16 < int8 < nf4, top-1 agreement falls",
  ),
  ignore: !haveHfFixtures,
  fn() {
    using ref = loadModel(FIXTURES + "qwen2");
    const results = ["fp16", "int8", "nf4"].map((scheme) => {
      using v = loadModel(FIXTURES + "qwen2");
      quantizeModel(v, { scheme });
      return compareDistributions(ref, v, IDS, { contextLength: 48 });
    });
    assert.ok(results[0].meanKld < results[1].meanKld, "fp16 < int8");
    assert.ok(results[1].meanKld < results[2].meanKld, "int8 < nf4");
    assert.ok(results[0].top1Agreement >= results[2].top1Agreement);
    for (const r of results) assert.ok(r.p99Kld >= r.meanKld && r.maxKld >= r.p99Kld);
  },
});

Deno.test({
  name: fixtureTestName("comparing models of different shapes is a clear error"),
  ignore: !haveHfFixtures,
  fn() {
    using a = loadModel(FIXTURES + "llama");
    using b = loadModel(FIXTURES + "phi3");
    assert.throws(
      () => compareDistributions(a, b, IDS),
      /differ in architecture \(LlamaForCausalLM vs Phi3ForCausalLM\)/,
    );
    assert.throws(
      () => compareDistributions(a, a, IDS, { contextLength: 32, stride: 32 }),
      /stride in \[1, contextLength - 1 = 31\]/,
    );
  },
});

Deno.test({
  name: fixtureTestName(
    "the advisor meets a KLD budget and beats random modules of the same extra bytes",
  ),
  ignore: !haveHfFixtures,
  fn() {
    const dir = FIXTURES + "llama";
    using ref = loadModel(dir);
    const calibration = chunk(IDS.slice(0, 64), 32);
    const evaluation = IDS;
    using all = loadModel(dir);
    quantizeModel(all, { scheme: "nf4" });
    const full = compareDistributions(ref, all, evaluation, { contextLength: 48 });
    const budget = full.meanKld / 3;
    const advice = adviseMixedPrecision(ref, () => loadModel(dir), {
      scheme: "nf4",
      fallback: "int8",
      budget: { maxMeanKld: budget },
      calibration,
      evaluation,
      contextLength: 48,
    });
    assert.ok(advice.met, `budget ${budget} not met: ${JSON.stringify(advice.chosen)}`);
    assert.ok(advice.chosen.meanKld <= budget);
    const kept = Object.keys(advice.keep);
    assert.ok(kept.length > 0 && kept.length < 15, `kept ${kept.length}`);
    // Random choices that spend at least as many extra bytes do worse, most of the time.
    const extra = advice.ranking.filter((r) => kept.includes(r.module))
      .reduce((s, r) => s + r.extraBytes, 0);
    let worse = 0;
    const draws = 6;
    for (let seed = 1; seed <= draws; seed++) {
      let state = seed * 7919;
      const order = [...advice.ranking].sort(() =>
        ((state = (state * 16807) % 2147483647) / 2147483647) - 0.5
      );
      const pick: string[] = [];
      let spent = 0;
      for (const r of order) {
        if (spent >= extra) break;
        pick.push(r.module);
        spent += r.extraBytes;
      }
      using m = loadModel(dir);
      quantizeModel(m, { scheme: "nf4", keep: Object.fromEntries(pick.map((p) => [p, "int8"])) });
      const d = compareDistributions(ref, m, evaluation, { contextLength: 48 });
      if (d.meanKld > advice.chosen.meanKld) worse++;
    }
    assert.ok(worse >= draws - 1, `random choices were worse only ${worse}/${draws} times`);
  },
});
