// Quality of a variant against its reference on the same text, streamed window by window:
// KL divergence of next-token distributions, top-1 agreement and the perplexity ratio —
// the figures llama.cpp's --kl-divergence reports.
import { crossEntropy, noGrad, tensor, tidy } from "../../ffi/mod.ts";
import type { LlamaModel } from "../llama.ts";
import { windows } from "../eval/perplexity.ts";
import { checkPositions } from "../limits.ts";
import { quantile } from "../profile/stats.ts";
import { assertComparable } from "./compare.ts";
import { LabError } from "../../errors.ts";

/** What compareDistributions measures. */
export interface DivergenceResult {
  tokens: number;
  meanKld: number;
  p99Kld: number;
  maxKld: number;
  /** Share of positions where both models' most likely next token is the same. */
  top1Agreement: number;
  pplReference: number;
  pplVariant: number;
  /** pplVariant / pplReference. */
  pplRatio: number;
}

/** KL(reference ‖ variant) per position and the rest, over `ids` in sliding windows. */
export function compareDistributions(
  reference: LlamaModel,
  variant: LlamaModel,
  ids: readonly number[],
  opts: { contextLength?: number; stride?: number; onProgress?: (d: number, t: number) => void } =
    {},
): DivergenceResult {
  assertComparable(reference, variant);
  const ctx = opts.contextLength ?? Math.min(256, reference.config.maxPositionEmbeddings);
  checkPositions(
    reference,
    ctx,
    `analyze: windows of contextLength ${ctx}`,
    `set contextLength to ${reference.config.maxPositionEmbeddings} or less`,
  );
  const stride = opts.stride ?? Math.max(1, Math.floor(ctx / 2));
  if (ctx < 2 || stride < 1 || stride >= ctx) {
    throw new RangeError(
      `analyze: need contextLength >= 2 and stride in [1, contextLength - 1 = ${ctx - 1}], ` +
        `got contextLength ${ctx}, stride ${stride}`,
    );
  }
  const klds: number[] = [];
  let agree = 0, nllR = 0, nllV = 0;
  noGrad(() => {
    for (const { begin, end, firstTarget } of windows(ids.length, ctx, stride)) {
      tidy(() => {
        const w = ids.slice(begin, end);
        const from = firstTarget - begin - 1;
        const k = end - firstTarget;
        const lr = reference.forward([w]).narrow(1, from, k).squeeze(0).logSoftmax(-1);
        const lv = variant.forward([w]).narrow(1, from, k).squeeze(0).logSoftmax(-1);
        const kl = lr.exp().mul(lr.sub(lv)).sum(-1).values();
        for (const x of kl) klds.push(Math.max(0, x));
        agree += lr.argmax(-1).eq(lv.argmax(-1)).sum().item();
        const t = tensor(new BigInt64Array(ids.slice(firstTarget, end).map(BigInt)));
        // log-softmax rows are already normalised: cross-entropy of them is the NLL
        nllR += crossEntropy(lr, t, { reduction: "sum" }).item();
        nllV += crossEntropy(lv, t, { reduction: "sum" }).item();
      });
      opts.onProgress?.(end, ids.length);
    }
  });
  return summarizeDivergence(klds, agree, nllR, nllV);
}

/**
 * The divergence report from per-token KLDs, the count of agreeing top-1 tokens and both models'
 * summed NLL over the same tokens (shared by the libtorch and llama.cpp comparisons).
 */
export function summarizeDivergence(
  klds: number[],
  agree: number,
  nllR: number,
  nllV: number,
): DivergenceResult {
  const n = klds.length;
  if (n === 0) throw new LabError("analyze: no tokens to compare");
  const pplR = Math.exp(nllR / n), pplV = Math.exp(nllV / n);
  return {
    tokens: n,
    meanKld: klds.reduce((s, x) => s + x, 0) / n,
    p99Kld: quantile(klds, 0.99),
    maxKld: Math.max(...klds),
    top1Agreement: agree / n,
    pplReference: pplR,
    pplVariant: pplV,
    pplRatio: pplV / pplR,
  };
}
