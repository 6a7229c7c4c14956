// Scoring through libllama on the lab's token ids: sliding-window negative log-likelihood (the
// same windows as the libtorch path) and greedy continuation.
import { LabError } from "../../errors.ts";
import { type PerplexityOptions, windows } from "../eval/perplexity.ts";
import type { LlamaCppModel } from "./model.ts";

/** −ln softmax(logits)[target], in float64. */
export function tokenNll(logits: Float32Array, target: number): number {
  let max = -Infinity;
  for (const v of logits) if (v > max) max = v;
  let sum = 0;
  for (const v of logits) sum += Math.exp(v - max);
  return Math.log(sum) + max - logits[target];
}

/** Index of the largest logit (the first on ties, as torch's argmax). */
export function argmax(logits: Float32Array): number {
  let best = 0;
  for (let i = 1; i < logits.length; i++) if (logits[i] > logits[best]) best = i;
  return best;
}

/**
 * slidingNll's windows scored by llama.cpp: each window decoded from an empty cache, every
 * token but the first scored once. `contextLength` must fit the model's context.
 */
export function llamaCppSlidingNll(
  model: LlamaCppModel,
  ids: readonly number[],
  opts: PerplexityOptions & { contextLength: number },
  perToken?: (targetIndex: number, logits: Float32Array, nll: number) => void,
): { nll: number; tokens: number } {
  const ctx = opts.contextLength;
  const stride = opts.stride ?? Math.max(1, Math.floor(ctx / 2));
  const n = Math.min(ids.length, (opts.maxTokens ?? Infinity) + 1);
  if (n < 2) throw new RangeError("perplexity: the text has fewer than 2 tokens");
  let nll = 0;
  let scored = 0;
  for (const { begin, end, firstTarget } of windows(n, ctx, stride)) {
    model.clear();
    const rows = model.decode(
      ids.slice(begin, end).map((id, i) => ({
        id,
        pos: i,
        seq: 0,
        logits: begin + i >= firstTarget - 1 && begin + i < end - 1,
      })),
    );
    rows.forEach((row, i) => {
      const target = firstTarget + i;
      const l = tokenNll(row, ids[target]);
      if (!Number.isFinite(l)) {
        throw new LabError(`llama.cpp produced non-finite logits predicting token ${target}`);
      }
      nll += l;
      perToken?.(target, row, l);
    });
    scored += rows.length;
    opts.onProgress?.(scored, n - 1);
  }
  return { nll, tokens: scored };
}

/** Greedy continuation of `prompt` by `newTokens` ids, through the KV cache. */
export function llamaCppGreedy(model: LlamaCppModel, prompt: readonly number[], newTokens: number) {
  model.clear();
  const out: number[] = [];
  let [last] = model.decode(
    prompt.map((id, pos) => ({ id, pos, seq: 0, logits: pos === prompt.length - 1 })),
  );
  for (let i = 0; i < newTokens; i++) {
    const next = argmax(last);
    out.push(next);
    if (i + 1 < newTokens) {
      [last] = model.decode([{ id: next, pos: prompt.length + i, seq: 0, logits: true }]);
    }
  }
  return out;
}
