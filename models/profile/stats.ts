// Small statistics helpers for timing figures.

/** The q-quantile (0..1) of `xs` by linear interpolation; NaN when empty. */
export function quantile(xs: readonly number[], q: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const pos = (s.length - 1) * q;
  const lo = Math.floor(pos), hi = Math.ceil(pos);
  return s[lo] + (s[hi] - s[lo]) * (pos - lo);
}

/** Median, minimum and maximum. */
export function summary(xs: readonly number[]): { median: number; min: number; max: number } {
  return { median: quantile(xs, 0.5), min: Math.min(...xs), max: Math.max(...xs) };
}

/** A seeded uniform generator in [0, 1). */
export { seededRandom as rng } from "../sampling.ts";
import { seededRandom as rngOf } from "../sampling.ts";

/** A median with its bootstrap confidence interval. */
export interface MedianCI {
  n: number;
  median: number;
  lo: number;
  hi: number;
}

/** Options of the bootstrap: confidence level (0.95), resamples (2000) and seed (1). */
export interface BootstrapOptions {
  level?: number;
  resamples?: number;
  seed?: number;
}

function medianOf(xs: Float64Array): number {
  xs.sort();
  const m = xs.length >> 1;
  return xs.length % 2 ? xs[m] : (xs[m - 1] + xs[m]) / 2;
}

function resampledMedians(
  xs: readonly number[],
  resamples: number,
  random: () => number,
): Float64Array {
  const out = new Float64Array(resamples);
  const buf = new Float64Array(xs.length);
  for (let r = 0; r < resamples; r++) {
    for (let i = 0; i < xs.length; i++) buf[i] = xs[Math.floor(random() * xs.length)];
    out[r] = medianOf(buf);
  }
  return out;
}

/**
 * The median of `xs` with a percentile-bootstrap confidence interval: seeded, so the same
 * samples always give the same interval. One sample gives a zero-width interval, none NaN.
 */
export function bootstrapMedian(xs: readonly number[], opts: BootstrapOptions = {}): MedianCI {
  const clean = xs.filter(Number.isFinite);
  if (clean.length === 0) return { n: 0, median: NaN, lo: NaN, hi: NaN };
  const median = quantile(clean, 0.5);
  if (clean.length === 1) return { n: 1, median, lo: median, hi: median };
  const alpha = 1 - (opts.level ?? 0.95);
  const meds = [...resampledMedians(clean, opts.resamples ?? 2000, rngOf(opts.seed ?? 1))];
  return {
    n: clean.length,
    median,
    lo: quantile(meds, alpha / 2),
    hi: quantile(meds, 1 - alpha / 2),
  };
}

/** How B differs from A on one metric. */
export interface Comparison {
  nA: number;
  nB: number;
  medianA: number;
  medianB: number;
  /** medianB / medianA − 1, with its bootstrap confidence interval. */
  relDiff: number;
  relLo: number;
  relHi: number;
  /** Two-sided Mann–Whitney p-value. */
  p: number;
  /** The interval excludes 0 and p < 1 − level. */
  significant: boolean;
}

/**
 * Compares two sets of timing samples: the relative difference of their medians with a
 * bootstrap interval (each side resampled on its own), and a Mann–Whitney test, which asks
 * only whether one side tends to be larger and so suits skewed timing noise.
 */
export function compareSamples(
  a: readonly number[],
  b: readonly number[],
  opts: BootstrapOptions = {},
): Comparison {
  const ca = a.filter(Number.isFinite), cb = b.filter(Number.isFinite);
  const level = opts.level ?? 0.95;
  const medianA = quantile(ca, 0.5), medianB = quantile(cb, 0.5);
  const relDiff = medianB / medianA - 1;
  const resamples = opts.resamples ?? 2000;
  let relLo = NaN, relHi = NaN;
  if (ca.length && cb.length) {
    const random = rngOf(opts.seed ?? 1);
    const ma = resampledMedians(ca, resamples, random);
    const mb = resampledMedians(cb, resamples, random);
    const rel = Array.from(ma, (x, i) => mb[i] / x - 1);
    relLo = quantile(rel, (1 - level) / 2);
    relHi = quantile(rel, 1 - (1 - level) / 2);
  }
  const p = mannWhitneyP(ca, cb);
  return {
    nA: ca.length,
    nB: cb.length,
    medianA,
    medianB,
    relDiff,
    relLo,
    relHi,
    p,
    significant: p < 1 - level && (relLo > 0 || relHi < 0),
  };
}

/**
 * Two-sided p-value of the Mann–Whitney U test: exact (by counting the orderings) for small
 * samples without ties, else the normal approximation with tie and continuity corrections.
 */
export function mannWhitneyP(a: readonly number[], b: readonly number[]): number {
  const m = a.length, n = b.length;
  if (!m || !n) return NaN;
  const all = [...a.map((v) => ({ v, s: 0 })), ...b.map((v) => ({ v, s: 1 }))]
    .sort((x, y) => x.v - y.v);
  const ranks = new Float64Array(all.length);
  let ties = 0;
  let tieTerm = 0;
  for (let i = 0; i < all.length;) {
    let j = i;
    while (j + 1 < all.length && all[j + 1].v === all[i].v) j++;
    const t = j - i + 1;
    if (t > 1) {
      ties++;
      tieTerm += t * t * t - t;
    }
    for (let k = i; k <= j; k++) ranks[k] = (i + j) / 2 + 1;
    i = j + 1;
  }
  let rankA = 0;
  all.forEach((x, i) => {
    if (x.s === 0) rankA += ranks[i];
  });
  const u = rankA - (m * (m + 1)) / 2;
  const uMin = Math.min(u, m * n - u);
  if (!ties && m * n <= 2500) return Math.min(1, 2 * exactLowerTail(m, n, uMin));
  const N = m + n;
  const sd = Math.sqrt((m * n / 12) * ((N + 1) - tieTerm / (N * (N - 1))));
  if (sd === 0) return 1;
  const z = (Math.abs(u - (m * n) / 2) - 0.5) / sd;
  return Math.min(1, 2 * (1 - normalCdf(Math.max(0, z))));
}

/** P(U ≤ u) for samples of m and n without ties: orderings counted by dynamic programming. */
function exactLowerTail(m: number, n: number, u: number): number {
  // f[i][j][k]: orderings of i a's and j b's with U = k; rolled into one table over (j, k).
  const maxU = m * n;
  let prev: Float64Array[] = Array.from({ length: n + 1 }, () => new Float64Array(maxU + 1));
  for (let j = 0; j <= n; j++) prev[j][0] = 1; // i = 0: U is 0
  for (let i = 1; i <= m; i++) {
    const cur = Array.from({ length: n + 1 }, () => new Float64Array(maxU + 1));
    cur[0][0] = 1;
    for (let j = 1; j <= n; j++) {
      for (let k = 0; k <= i * j; k++) {
        // The largest value is an a (it beats all j b's: U grows by j) or a b.
        cur[j][k] = (k >= j ? prev[j][k - j] : 0) + cur[j - 1][k];
      }
    }
    prev = cur;
  }
  const counts = prev[n];
  let total = 0, tail = 0;
  for (let k = 0; k <= maxU; k++) {
    total += counts[k];
    if (k <= u) tail += counts[k];
  }
  return tail / total;
}

/** The standard normal CDF (Abramowitz–Stegun 7.1.26 through erf; error below 1.5e-7). */
export function normalCdf(z: number): number {
  const x = Math.abs(z) / Math.SQRT2;
  const t = 1 / (1 + 0.3275911 * x);
  const erf = 1 -
    (((((1.061405429 * t - 1.453152027) * t) + 1.421413741) * t - 0.284496736) * t +
        0.254829592) * t * Math.exp(-x * x);
  return z >= 0 ? (1 + erf) / 2 : (1 - erf) / 2;
}
