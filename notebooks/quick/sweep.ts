// A seconds-long stand-in for pipelines/sweep.ts (an untrained tiny model, three schemes), for
// the notebooks when LAB_NOTEBOOK_QUICK=1, as `deno task notebooks` runs them.
import { analyze, evaluate, load, pipeline, profile, quantize } from "../../mod.ts";

export default pipeline("sweep", ({ sweep }) => {
  const base = load({ tiny: { arch: "llama", preset: "tiny", seed: 0 } });
  for (const scheme of sweep("scheme", ["fp32", "int8", "nf4"])) {
    const q = quantize(base, { scheme });
    profile(q, { batch: [1, 4], promptTokens: [16], newTokens: 8, repeats: 1 });
    evaluate(q, { dataset: "data/eval.txt", contextLength: 64, maxTokens: 256 });
    evaluate(q, { tasks: "data/lm_eval/story_choice.yaml", limit: 8 });
    if (scheme !== "fp32") analyze(base, q, { maxTokens: 128, contextLength: 64 });
  }
});
