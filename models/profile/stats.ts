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
