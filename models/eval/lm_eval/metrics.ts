// lm-eval's per-document metric items, their aggregations and standard errors.
import type { MetricName } from "./task_config.ts";

/** A per-document metric item: a 0/1 score, a log-likelihood, or (log-likelihood, weight). */
export type Item = number | [number, number];

/** Aggregated value and standard error ("N/A" where lm-eval gives none) of one metric. */
export interface Aggregate {
  value: number;
  stderr: number | "N/A";
}

/** Whether a higher value of the metric is better. */
export const HIGHER_IS_BETTER: Record<MetricName, boolean> = {
  acc: true,
  acc_norm: true,
  exact_match: true,
  perplexity: false,
  word_perplexity: false,
  byte_perplexity: false,
  bits_per_byte: false,
};

function mean(xs: readonly number[]): number {
  return xs.reduce((a, b) => a + b, 0) / xs.length;
}

/** lm-eval's `mean_stderr`: the sample standard deviation (n − 1) over √n. */
export function meanStderr(xs: readonly number[]): number {
  const mu = mean(xs);
  const variance = xs.reduce((a, x) => a + (x - mu) ** 2, 0) / (xs.length - 1);
  return Math.sqrt(variance) / Math.sqrt(xs.length);
}

/**
 * Aggregates the items of one metric as lm-eval does: mean (acc, acc_norm, exact_match),
 * exp(−mean ll) (perplexity), exp(−Σll / Σweight) (word/byte perplexity), −Σll / Σbytes / ln 2
 * (bits_per_byte). Only mean metrics get a closed-form stderr; lm-eval bootstraps perplexity's,
 * which the lab does not, so it is "N/A" like the weighted ones.
 */
export function aggregate(metric: MetricName, items: readonly Item[]): Aggregate {
  const single = items as number[];
  const pairs = items as [number, number][];
  const sumLl = () => pairs.reduce((a, p) => a + p[0], 0);
  const sumW = () => pairs.reduce((a, p) => a + p[1], 0);
  switch (metric) {
    case "acc":
    case "acc_norm":
    case "exact_match":
      return { value: mean(single), stderr: items.length > 1 ? meanStderr(single) : "N/A" };
    case "perplexity":
      return { value: Math.exp(-mean(single)), stderr: "N/A" };
    case "word_perplexity":
    case "byte_perplexity":
      return { value: Math.exp(-sumLl() / sumW()), stderr: "N/A" };
    case "bits_per_byte":
      return { value: -sumLl() / sumW() / Math.LN2, stderr: "N/A" };
  }
}

/** Index of the largest value; the first on ties (numpy's argmax). */
export function argmax(xs: readonly number[]): number {
  return xs.reduce((best, x, i) => (x > xs[best] ? i : best), 0);
}

/** Length in characters (Unicode code points, as Python's len), not UTF-16 units or bytes. */
export function charLength(s: string): number {
  return [...s].length;
}

/** Words as lm-eval counts them: `len(re.split(r"\s+", text))`. */
export function wordCount(text: string): number {
  return text.split(/\s+/u).length;
}

/** lm-eval's `exact_match` (Hugging Face evaluate's) with its options. */
export function exactMatchScore(
  prediction: string,
  reference: string,
  opts: { ignore_case?: boolean; ignore_punctuation?: boolean; regexes_to_ignore?: string[] } = {},
): number {
  const clean = (s: string) => {
    for (const re of opts.regexes_to_ignore ?? []) s = s.replace(new RegExp(re, "g"), "");
    if (opts.ignore_case) s = s.toLowerCase();
    // Python's string.punctuation: the ASCII punctuation characters.
    if (opts.ignore_punctuation) s = s.replace(/[!"#$%&'()*+,\-./:;<=>?@[\\\]^_`{|}~]/g, "");
    return s;
  };
  return clean(prediction) === clean(reference) ? 1 : 0;
}
