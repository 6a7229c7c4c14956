// The additive attention mask (causal, sliding window, left padding) and the
// position ids Hugging Face's generate() builds from a padding mask.
import { fromBytes, type Tensor } from "../ffi/mod.ts";

// transformers fills masked scores with finfo(float32).min, not -inf, so a
// query that sees no key (a padding row) gets a uniform softmax instead of NaN.
const MASKED = -3.4028234663852886e38;

/**
 * A float32 mask `[batch, 1, 1, seq, past + seq]` (0 = attend, float32 min =
 * hidden) for `seq` new queries after `past` cached slots, or null when nothing
 * is hidden. `padding[b][j]` is 0 for a padding slot `j`.
 */
export function attentionMask(
  batch: number,
  seq: number,
  past: number,
  padding: readonly (readonly number[])[] | null,
  slidingWindow: number | null,
  device = "cpu",
): Tensor | null {
  const total = past + seq;
  const needed = seq > 1 || padding?.some((row) => row.some((v) => v === 0)) ||
    (slidingWindow !== null && total > slidingWindow);
  if (!needed) return null;
  const out = new Float32Array(batch * seq * total);
  for (let b = 0; b < batch; b++) {
    const pad = padding?.[b];
    for (let t = 0; t < seq; t++) {
      const i = past + t;
      const base = (b * seq + t) * total;
      for (let j = 0; j < total; j++) {
        const hidden = j > i || (slidingWindow !== null && j <= i - slidingWindow) ||
          (pad !== undefined && pad[j] === 0);
        if (hidden) out[base + j] = MASKED;
      }
    }
  }
  return fromBytes(out, "float32", [batch, 1, 1, seq, total], device);
}

/**
 * Position ids `[batch][seq]` for the last `seq` of the slots in `padding`:
 * `cumsum(mask) - 1`, with padding slots set to 1, as generate() does.
 */
export function positionIdsFromPadding(
  padding: readonly (readonly number[])[],
  seq: number,
): number[][] {
  return padding.map((row) => {
    const out: number[] = [];
    let c = 0;
    for (let j = 0; j < row.length; j++) {
      c += row[j] ? 1 : 0;
      if (j >= row.length - seq) out.push(row[j] ? c - 1 : 1);
    }
    return out;
  });
}
