// KL divergence, top-1 agreement and the PPL ratio of a llama.cpp variant against the lab's
// reference model, window by window over the same ids (compareDistributions' windows).
import { noGrad, tidy } from "../../ffi/mod.ts";
import type { LlamaModel } from "../llama.ts";
import { windows } from "../eval/perplexity.ts";
import { type DivergenceResult, summarizeDivergence } from "../analysis/divergence.ts";
import { LabError } from "../../errors.ts";
import type { LlamaCppModel } from "./model.ts";
import { argmax } from "./scoring.ts";

function logSoftmax(row: ArrayLike<number>): Float64Array {
  let max = -Infinity;
  for (let i = 0; i < row.length; i++) max = Math.max(max, row[i]);
  let sum = 0;
  for (let i = 0; i < row.length; i++) sum += Math.exp(row[i] - max);
  const lse = Math.log(sum) + max;
  return Float64Array.from(row, (x) => x - lse);
}

function reference(model: LlamaModel, w: number[], from: number, k: number): Float32Array[] {
  return noGrad(() =>
    tidy(() => {
      const rows = model.forward([w]).narrow(1, from, k).squeeze(0).contiguous();
      const flat = rows.values();
      const V = rows.shape[1];
      return Array.from({ length: k }, (_, i) => Float32Array.from(flat.slice(i * V, (i + 1) * V)));
    })
  );
}

/** KL(reference ‖ variant) per position and the rest, with the variant run by llama.cpp. */
export function compareWithLlamaCpp(
  ref: LlamaModel,
  variant: LlamaCppModel,
  ids: readonly number[],
  opts: { contextLength: number; stride?: number; onProgress?: (d: number, t: number) => void },
): DivergenceResult {
  if (variant.vocabSize !== ref.config.vocabSize) {
    throw new LabError(
      `analyze: the llama.cpp variant has ${variant.vocabSize} tokens, the reference ` +
        `${ref.config.vocabSize}: they are not the same model`,
    );
  }
  const ctx = opts.contextLength;
  const stride = opts.stride ?? Math.max(1, Math.floor(ctx / 2));
  const klds: number[] = [];
  let agree = 0, nllR = 0, nllV = 0;
  for (const { begin, end, firstTarget } of windows(ids.length, ctx, stride)) {
    const w = ids.slice(begin, end);
    const from = firstTarget - begin - 1;
    const k = end - firstTarget;
    const lr = reference(ref, w, from, k);
    variant.clear();
    const lv = variant.decode(w.map((id, pos) => ({
      id,
      pos,
      seq: 0,
      logits: pos >= from && pos < from + k,
    })));
    for (let i = 0; i < k; i++) {
      const r = logSoftmax(lr[i]), v = logSoftmax(lv[i]);
      let kl = 0;
      for (let j = 0; j < r.length; j++) kl += Math.exp(r[j]) * (r[j] - v[j]);
      klds.push(Math.max(0, kl));
      if (argmax(lr[i]) === argmax(lv[i])) agree++;
      const t = ids[firstTarget + i];
      nllR -= r[t];
      nllV -= v[t];
    }
    opts.onProgress?.(end, ids.length);
  }
  return summarizeDivergence(klds, agree, nllR, nllV);
}
