// Picking the next token from logits: greedy, or temperature / top-k / top-p
// sampling with a seeded generator so runs repeat exactly.
import { type Tensor, tidy, zeros } from "../ffi/mod.ts";

/** How the next token is chosen. temperature 0 (the default) is greedy. */
export interface SamplingOptions {
  /** Divides the logits before softmax: below 1 sharpens, above 1 flattens; 0 picks the argmax. */
  temperature?: number;
  /** Keep only the k most likely tokens (0 or absent: all). */
  topK?: number;
  /** Keep the smallest set of most likely tokens whose mass reaches p (1 or absent: all). */
  topP?: number;
}

export { seededRandom } from "../seeded_random.ts";

/** Checks sampling options, throwing a RangeError that names the bad one. */
export function validateSampling(o: SamplingOptions): void {
  if (o.temperature !== undefined && !(o.temperature >= 0)) {
    throw new RangeError(`temperature must be ≥ 0, got ${o.temperature}`);
  }
  if (o.topK !== undefined && !(Number.isInteger(o.topK) && o.topK >= 0)) {
    throw new RangeError(`topK must be a non-negative integer, got ${o.topK}`);
  }
  if (o.topP !== undefined && !(o.topP > 0 && o.topP <= 1)) {
    throw new RangeError(`topP must be in (0, 1], got ${o.topP}`);
  }
}

/** Whether these options pick tokens greedily. */
export function isGreedy(o: SamplingOptions): boolean {
  return !o.temperature;
}

/** Next-token probabilities `[batch, vocab]` after temperature, top-k and top-p. */
export function samplingProbabilities(logits: Tensor, o: SamplingOptions): Tensor {
  return tidy(() => {
    const vocab = logits.size(-1);
    let l = logits.reshape([-1, vocab]);
    if (l.dtype !== "float32") l = l.to("float32");
    l = l.div(o.temperature || 1);
    const k = o.topK ?? 0;
    if (k > 0 && k < vocab) {
      const [vals] = l.topk(k, -1);
      const kth = vals.narrow(-1, k - 1, 1);
      l = l.maskedFill(l.lt(kth), -Infinity);
    }
    let probs = l.softmax(-1);
    const p = o.topP ?? 1;
    if (p < 1) {
      const [sorted, idx] = probs.sort(-1, true);
      const before = sorted.cumsum(-1).sub(sorted);
      const kept = sorted.maskedFill(before.ge(p), 0);
      probs = zeros(probs.shape, { device: probs.device }).scatter(-1, idx, kept);
    }
    return probs;
  });
}

/** One token id per row of `logits [batch, (1,) vocab]`. */
export function pickTokens(logits: Tensor, o: SamplingOptions, random: () => number): number[] {
  if (isGreedy(o)) {
    using am = logits.argmax(-1);
    return Array.from(am.data() as BigInt64Array, Number);
  }
  using probs = samplingProbabilities(logits, o);
  const [batch, vocab] = probs.shape;
  const data = probs.data() as Float32Array;
  const out: number[] = [];
  for (let b = 0; b < batch; b++) {
    const row = data.subarray(b * vocab, (b + 1) * vocab);
    let total = 0;
    for (let i = 0; i < vocab; i++) total += row[i];
    let u = random() * total;
    let pick = -1;
    for (let i = 0; i < vocab; i++) {
      if (row[i] <= 0) continue;
      pick = i;
      u -= row[i];
      if (u < 0) break;
    }
    out.push(pick);
  }
  return out;
}
