// Two models over the same tokens: checks that they can be compared, and the calibration ids.
import type { LlamaModel } from "../llama.ts";
import { scoringIds } from "../eval/perplexity.ts";

/** Throws naming the first config field where `a` and `b` differ in shape. */
export function assertComparable(a: LlamaModel, b: LlamaModel): void {
  const fields = [
    "architecture",
    "vocabSize",
    "hiddenSize",
    "intermediateSize",
    "numLayers",
    "numHeads",
    "numKvHeads",
    "headDim",
  ] as const;
  for (const f of fields) {
    if (a.config[f] !== b.config[f]) {
      throw new Error(
        `analyze: the models differ in ${f} (${a.config[f]} vs ${b.config[f]}); ` +
          "compare a model with a quantized, fine-tuned or merged copy of itself",
      );
    }
  }
}

/** Calibration token ids of `text` (BOS first), at most `maxTokens`, with a clear error when empty. */
export function calibrationIds(model: LlamaModel, text: string, maxTokens: number): number[] {
  if (!text.trim()) {
    throw new Error("analyze: the calibration text is empty; point `calibration` at a text file");
  }
  const ids = scoringIds(model, text).slice(0, maxTokens);
  if (ids.length < 2) throw new Error("analyze: the calibration text has fewer than 2 tokens");
  return ids;
}

/** Splits ids into rows of `length` (the last may be shorter, and is dropped when below 2). */
export function chunk(ids: readonly number[], length: number): number[][] {
  const out: number[][] = [];
  for (let i = 0; i < ids.length; i += length) {
    const c = ids.slice(i, i + length);
    if (c.length >= 2) out.push(c);
  }
  return out;
}
