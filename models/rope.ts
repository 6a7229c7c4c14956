// Rotary position embeddings: inverse frequencies per scaling type, and the
// rotate-half application Hugging Face's Llama family uses.
import { cat, type Tensor, tensor } from "../ffi/mod.ts";
import type { ModelConfig } from "./config.ts";

/** Inverse frequencies, float32-rounded as torch computes them. */
export function inverseFrequencies(c: ModelConfig): Float32Array {
  const dim = c.headDim;
  const half = dim / 2;
  const inv = new Float32Array(half);
  for (let i = 0; i < half; i++) {
    // torch: 1 / base ** (arange(0, dim, 2).float() / dim), all in float32.
    const expo = Math.fround((2 * i) / dim);
    inv[i] = Math.fround(1 / Math.fround(Math.pow(c.ropeTheta, expo)));
  }
  const s = c.ropeScaling;
  if (s.type === "linear") {
    for (let i = 0; i < half; i++) inv[i] = Math.fround(inv[i] / s.factor);
  } else if (s.type === "llama3") {
    // transformers' _compute_llama3_parameters.
    const lowWavelen = s.originalMaxPositionEmbeddings / s.lowFreqFactor;
    const highWavelen = s.originalMaxPositionEmbeddings / s.highFreqFactor;
    for (let i = 0; i < half; i++) {
      const f = inv[i];
      const wavelen = Math.fround((2 * Math.PI) / f);
      if (wavelen < highWavelen) continue;
      if (wavelen > lowWavelen) {
        inv[i] = Math.fround(f / s.factor);
        continue;
      }
      const smooth = Math.fround(
        (s.originalMaxPositionEmbeddings / wavelen - s.lowFreqFactor) /
          (s.highFreqFactor - s.lowFreqFactor),
      );
      inv[i] = Math.fround(Math.fround((1 - smooth) * f / s.factor) + Math.fround(smooth * f));
    }
  }
  return inv;
}

/** cos and sin `[batch, 1, seq, headDim]` for integer positions `[batch, seq]`. */
export function ropeTables(invFreq: Tensor, positions: Tensor, dtype: string): [Tensor, Tensor] {
  using p = positions.to("float32").unsqueeze(-1); // [B, T, 1]
  using freqs = p.mul(invFreq); // [B, T, half]
  using emb = cat([freqs, freqs], -1); // [B, T, dim]
  using e4 = emb.unsqueeze(1);
  using cos = e4.cos();
  using sin = e4.sin();
  return [cos.to(dtype), sin.to(dtype)];
}

/** `x * cos + rotate_half(x) * sin` for x `[batch, heads, seq, headDim]`. */
export function applyRope(x: Tensor, cos: Tensor, sin: Tensor): Tensor {
  const half = x.size(-1) / 2;
  using x1 = x.narrow(-1, 0, half);
  using x2 = x.narrow(-1, half, half);
  using nx2 = x2.neg();
  using rot = cat([nx2, x1], -1);
  using a = x.mul(cos);
  using b = rot.mul(sin);
  return a.add(b);
}

/** The inverse frequencies as a float32 tensor on `device`. */
export function invFreqTensor(c: ModelConfig, device: string): Tensor {
  return tensor(inverseFrequencies(c), { device });
}
