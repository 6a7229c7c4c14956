/**
 * The lab's one seeded pseudo-random generator (mulberry32): sweeps' random sampling in the
 * engine, sampling, shuffles and bootstrap resamples in the model code. It lives at the root,
 * importing nothing, so that the engine and the model code share it.
 */

/** A small seeded PRNG (mulberry32): uniform numbers in [0, 1). */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
