// `deno task bench analyze [--model DIR] [--tokens N]`: isolated layer-sensitivity analysis time
// relative to two plain forward passes over the same tokens (target ≤ 1.5×), plus the
// end-to-end mode and the KL-divergence pass for reference.
import { parseArgs } from "node:util";
import { noGrad, tidy } from "../ffi/mod.ts";
import { loadModel } from "../models/load.ts";
import { createTinyModel } from "../models/tiny.ts";
import { quantizeModel } from "../models/quant/quantize_model.ts";
import { layerSensitivity } from "../models/analysis/sensitivity.ts";
import { compareDistributions } from "../models/analysis/divergence.ts";
import { chunk } from "../models/analysis/compare.ts";

function best(reps: number, fn: () => void): number {
  let b = Infinity;
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    fn();
    b = Math.min(b, performance.now() - t0);
  }
  return b;
}

/** Runs the benchmark and prints the ratios. */
export function main(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: { model: { type: "string" }, tokens: { type: "string", default: "512" } },
  });
  const tmp = Deno.makeTempDirSync({ prefix: "lab-bench-analyze-" });
  try {
    let dir = values.model;
    if (!dir) {
      dir = `${tmp}/base`;
      createTinyModel({ out: dir, arch: "llama", preset: "25m", seed: 0 });
    }
    using ref = loadModel(dir);
    using variant = loadModel(dir);
    quantizeModel(variant, { scheme: "nf4" });
    const n = Number(values.tokens);
    const ids = Array.from({ length: n }, (_, i) => 3 + ((i * 131) % (ref.config.vocabSize - 3)));
    const batches = chunk(ids, 128);
    const forwards = best(3, () =>
      noGrad(() => {
        for (const b of batches) {
          tidy(() => {
            ref.forward([b], { logits: "last" });
            variant.forward([b], { logits: "last" });
          });
        }
      }));
    const isolated = best(
      3,
      () => layerSensitivity(ref, variant, batches, { modes: ["isolated"] }),
    );
    const e2e = best(2, () => layerSensitivity(ref, variant, batches, { modes: ["end_to_end"] }));
    const kld = best(
      2,
      () => compareDistributions(ref, variant, ids, { contextLength: 128, stride: 64 }),
    );
    console.log(
      `model ${
        dir === values.model ? dir : "tiny 25m"
      } (${ref.parameterCount()} params), ${n} tokens in rows of 128, nf4 variant`,
    );
    console.log(
      `two forward passes (reference + variant)  ${forwards.toFixed(0).padStart(7)} ms  1.00`,
    );
    const row = (name: string, ms: number) =>
      console.log(
        `${name.padEnd(41)} ${ms.toFixed(0).padStart(7)} ms  ${(ms / forwards).toFixed(2)}`,
      );
    row("isolated sensitivity (target <= 1.5x)", isolated);
    row("end-to-end sensitivity", e2e);
    row("KL divergence (full logits, both models)", kld);
  } finally {
    Deno.removeSync(tmp, { recursive: true });
  }
  return Promise.resolve();
}
