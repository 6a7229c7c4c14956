// The dense weight a linear module computes with, whatever its storage.
import { type Tensor, tidy } from "../../ffi/mod.ts";
import { Linear, type LinearLayer } from "../linear.ts";
import { CastLinear } from "../quant/cast_linear.ts";
import { QuantizedLinear } from "../quant/quantized_linear.ts";
import { LoRALinear } from "../lora/mod.ts";

/** float32 `[out, in]` weight of `layer`, or null for a kind this does not know. */
export function denseWeight(layer: LinearLayer): Tensor | null {
  if (layer instanceof Linear || layer instanceof CastLinear) return layer.weight.to("float32");
  if (layer instanceof QuantizedLinear) return layer.dequantize("float32");
  if (layer instanceof LoRALinear) {
    const base = denseWeight(layer.base);
    if (!base) return null;
    return tidy(() => {
      using b = base;
      const delta = layer.loraB.to("float32").matmul(layer.loraA.to("float32")).mul(layer.scaling);
      return b.add(delta);
    });
  }
  return null;
}
