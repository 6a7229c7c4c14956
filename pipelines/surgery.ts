// Mixed-precision "surgery": analyze a 4-bit model, let the advisor pick the modules to keep
// in bf16 for a KLD budget, quantize with that advice, and check the result.
//   deno task lab run pipelines/surgery.ts
import { advise, analyze, evaluate, pipeline, quantize } from "../mod.ts";
import { trainedTinyModel } from "./trained_tiny.ts";

const EVAL = { dataset: "data/eval.txt", contextLength: 256, stride: 128 };

export default pipeline("surgery", ({ sweep }) => {
  // The same trained model as the default sweep (shared through the cache).
  const trained = trainedTinyModel();
  const fp32 = quantize(trained, { scheme: "fp32" }).named("fp32");
  evaluate(fp32, EVAL);
  const nf4 = quantize(trained, { scheme: "nf4" }).named("nf4");
  evaluate(nf4, EVAL);
  analyze(trained, nf4, { maxTokens: 512 });
  for (const maxMeanKld of sweep("kld_budget", [0.003, 0.0015])) {
    const advice = advise(trained, {
      scheme: "nf4",
      fallback: "bf16",
      budget: { maxMeanKld },
      maxTokens: 512,
    });
    const mixed = quantize(trained, advice, { scheme: "nf4" }).named(
      `nf4+advice(kld<=${maxMeanKld})`,
    );
    evaluate(mixed, EVAL);
    analyze(trained, mixed, { maxTokens: 512, modes: ["weight"] });
  }
}, {
  summary: {
    title: "Mixed-precision surgery: configuration | weight MB | KLD | ΔPPL",
    sql: `SELECT stage AS configuration, round(weight_mb, 3) AS weight_mb,
      round(kld_mean, 5) AS kld, round(delta_ppl, 4) AS delta_ppl, round(ppl, 4) AS ppl
    FROM quant_tradeoff WHERE pipeline = 'surgery' ORDER BY weight_mb DESC`,
  },
});
