// The one measure of how far a replaced weight is from the original: the relative Frobenius
// error, used by quantization reports, QuantizedLinear and the streaming quantizer.
import { type Tensor, tidy } from "../../ffi/mod.ts";

/** Elements of a weight whose error is measured in one piece; larger ones go by row blocks. */
export const ERROR_CHUNK = 1 << 24;

/**
 * ‖W − W'‖_F / ‖W‖_F in float32; above ERROR_CHUNK elements the difference is formed in row
 * blocks, so a large head never needs two dense fp32 copies.
 */
export function relativeError(original: Tensor, approx: Tensor): number {
  return tidy(() => {
    if (original.numel <= ERROR_CHUNK) {
      const o = original.to("float32");
      return approx.to("float32").sub(o).norm().item() / Math.max(o.norm().item(), 1e-30);
    }
    const rows = original.shape[0];
    const per = Math.max(1, Math.floor(ERROR_CHUNK / (original.numel / rows)));
    let diff = 0, base = 0;
    for (let r = 0; r < rows; r += per) {
      const n = Math.min(per, rows - r);
      tidy(() => {
        const o = original.narrow(0, r, n).to("float32");
        const d = approx.narrow(0, r, n).to("float32").sub(o).norm().item();
        const b = o.norm().item();
        diff += d * d;
        base += b * b;
      });
    }
    return Math.sqrt(diff) / Math.max(Math.sqrt(base), 1e-30);
  });
}
