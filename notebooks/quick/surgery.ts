// A seconds-long stand-in for pipelines/surgery.ts (an untrained tiny model), for the notebooks
// when LAB_NOTEBOOK_QUICK=1, as `deno task notebooks` runs them.
import { advise, analyze, evaluate, load, pipeline, quantize } from "../../mod.ts";

const EVAL = { dataset: "data/eval.txt", contextLength: 64, maxTokens: 256 };

export default pipeline("surgery", ({ sweep }) => {
  const base = load({ tiny: { arch: "llama", preset: "tiny", seed: 0 } });
  const fp32 = quantize(base, { scheme: "fp32" }).named("fp32");
  evaluate(fp32, EVAL);
  const nf4 = quantize(base, { scheme: "nf4" }).named("nf4");
  evaluate(nf4, EVAL);
  analyze(base, nf4, { maxTokens: 128, contextLength: 64 });
  for (const maxMeanKld of sweep("kld_budget", [4e-5, 2e-5])) {
    const advice = advise(base, {
      scheme: "nf4",
      fallback: "bf16",
      budget: { maxMeanKld },
      maxTokens: 128,
      contextLength: 64,
    });
    const mixed = quantize(base, advice, { scheme: "nf4" }).named(`nf4+advice(kld<=${maxMeanKld})`);
    evaluate(mixed, EVAL);
    analyze(base, mixed, { maxTokens: 128, contextLength: 64, modes: ["weight"] });
  }
});
