// The small model the bundled pipelines share: generated, then trained on the bundled text so
// that quality numbers mean something. Identical calls in several pipelines share one cache entry.
import { finetune, load } from "../mod.ts";

/** Adds the load and training stages to the pipeline being built; returns the trained model. */
export function trainedTinyModel() {
  const base = load({ tiny: { arch: "llama", preset: "small", seed: 0 } });
  return finetune(base, {
    method: "full",
    data: "data/train.txt",
    maxLength: 64,
    steps: 150,
    batchSize: 8,
    lr: 2e-3,
    schedule: "cosine",
    warmupSteps: 20,
    weightDecay: 0.01,
    valFraction: 0.05,
    evalEvery: 50,
  });
}
