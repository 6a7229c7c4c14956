// A projection whose weight is stored in a narrower float type and widened per call.
import {
  type DType,
  embedding,
  linear,
  quantizedLinear,
  quantizedRows,
  type Tensor,
} from "../../ffi/mod.ts";
import type { PackedTable } from "../embedding.ts";

/** `y = x @ W.to(x.dtype)ᵀ + b` with W kept in `storage` dtype (e.g. fp16 under fp32 compute). */
export class CastLinear implements PackedTable {
  readonly weight: Tensor;
  readonly bias: Tensor | null;
  readonly inFeatures: number;
  readonly outFeatures: number;

  constructor(weight: Tensor, bias: Tensor | null) {
    this.weight = weight;
    this.bias = bias;
    [this.outFeatures, this.inFeatures] = weight.shape;
  }

  /** Stores a copy of `weight` as `dtype`. */
  static fromWeight(weight: Tensor, bias: Tensor | null, dtype: DType): CastLinear {
    return new CastLinear(weight.to(dtype), bias);
  }

  forward(x: Tensor): Tensor {
    if (this.weight.dtype === x.dtype) return linear(x, this.weight, this.bias);
    if (this.weight.dtype === "float16" || this.weight.dtype === "bfloat16") {
      // One native call: small batches widen one row at a time, large ones the whole weight.
      const shape: [number, number] = [this.outFeatures, this.inFeatures];
      return quantizedLinear("half", x, [this.weight], shape, 0, 0, this.bias);
    }
    using w = this.weight.to(x.dtype);
    if (!this.bias || this.bias.dtype === x.dtype) return linear(x, w, this.bias);
    using b = this.bias.to(x.dtype);
    return linear(x, w, b);
  }

  /** Rows `ids` of the weight as float32 (an embedding lookup). */
  rows(ids: Tensor): Tensor {
    const shape: [number, number] = [this.outFeatures, this.inFeatures];
    if (this.weight.dtype === "float16" || this.weight.dtype === "bfloat16") {
      return quantizedRows("half", [this.weight], shape, 0, 0, ids);
    }
    using e = embedding(this.weight, ids);
    return e.to("float32");
  }

  parameterCount(): number {
    return this.weight.numel + (this.bias?.numel ?? 0);
  }

  weightBytes(): number {
    return this.weight.nbytes + (this.bias?.nbytes ?? 0);
  }

  dispose(): void {
    this.weight.dispose();
    this.bias?.dispose();
  }
}
