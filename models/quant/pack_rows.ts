// Per-channel formats (int8, fp8) quantize every row on its own, so a large matrix can be
// packed a block of rows at a time with the same bytes: the quantizer's whole-tensor
// temporaries (|W|, W/scale, round, clamp: about 13 bytes a value) then cover one block, not
// a 525M-value vocabulary head, whose packing would otherwise need about 7 GB of scratch.
import { type DType, type Tensor, zeros } from "../../ffi/mod.ts";
import type { LinearLayer } from "../linear.ts";
import { QuantizedLinear } from "./quantized_linear.ts";
import { quantizeLinear } from "./quantize_model.ts";
import type { Scheme } from "./schemes.ts";

/** Whether `s` quantizes each output row independently (a scale per row, nothing shared). */
export function isPerRow(s: Scheme): boolean {
  return s.kind === "int8" || s.kind === "fp8";
}

/**
 * quantizeLinear, packing per-row formats `blockElements` values at a time into parts
 * allocated once; bit-identical to the whole-matrix call. `onBlock` sees each block packed
 * beside its dense rows (e.g. to measure the error without dequantizing the whole matrix).
 * Other formats, simulate mode, and matrices within one block go through quantizeLinear
 * unchanged, without onBlock. The caller keeps `weight`.
 */
export function quantizeLinearByRows(
  weight: Tensor,
  bias: Tensor | null,
  scheme: Scheme,
  computeDtype: DType,
  simulate: boolean,
  blockElements: number,
  onBlock?: (packed: QuantizedLinear, dense: Tensor) => void,
): LinearLayer {
  const [rows, cols] = weight.shape;
  const per = Math.max(1, Math.floor(blockElements / cols));
  if (scheme.kind === "cast" || !isPerRow(scheme) || simulate || rows <= per) {
    return quantizeLinear(weight, bias, scheme, computeDtype, simulate);
  }
  let parts: Tensor[] | null = null;
  try {
    for (let r = 0; r < rows; r += per) {
      const n = Math.min(per, rows - r);
      using block = weight.narrow(0, r, n);
      const q = QuantizedLinear.fromWeight(block, null, scheme);
      try {
        if (!parts) {
          // Only a layout whose every part is indexed by row can be assembled from blocks.
          if (!q.parts.every((p) => p.shape[0] === n)) {
            return quantizeLinear(weight, bias, scheme, computeDtype, simulate);
          }
          parts = q.parts.map((p) =>
            zeros([rows, ...p.shape.slice(1)], { dtype: p.dtype, device: p.device })
          );
        }
        onBlock?.(q, block);
        q.parts.forEach((p, k) => {
          using dst = parts![k].narrow(0, r, n);
          dst.copy_(p);
        });
      } finally {
        q.dispose();
      }
    }
  } catch (e) {
    for (const p of parts ?? []) p.dispose();
    throw e;
  }
  return new QuantizedLinear(scheme, parts!, [rows, cols], bias ? bias.clone() : null);
}
