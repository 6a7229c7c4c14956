// The dense projection every decoder layer is built from, and the interface
// quantized or adapted projections implement to take its place.
import { ITEM_SIZE, linear, type Tensor } from "../ffi/mod.ts";

/** A projection `y = x Wᵀ + b` that a model layer calls; swappable for quantized/LoRA forms. */
export interface LinearLayer {
  /** Width of the input: the last dimension of `x`. */
  readonly inFeatures: number;
  /** Width of the output: the last dimension of the result. */
  readonly outFeatures: number;
  /** Applies the projection to `x [..., inFeatures]`. */
  forward(x: Tensor): Tensor;
  /** Number of parameters. */
  parameterCount(): number;
  /** Bytes its parameters occupy. */
  weightBytes(): number;
  /** Frees its tensors. */
  dispose(): void;
}

/** A dense projection holding `weight [out, in]` and an optional `bias [out]`. */
export class Linear implements LinearLayer {
  /** The weight matrix, [outFeatures, inFeatures]. */
  readonly weight: Tensor;
  /** The bias, [outFeatures], or null when the projection has none. */
  readonly bias: Tensor | null;
  /** Width of the input (the weight's second dimension). */
  readonly inFeatures: number;
  /** Width of the output (the weight's first dimension). */
  readonly outFeatures: number;

  /** Wraps `weight [out, in]` and an optional `bias [out]`; the layer owns them from now on. */
  constructor(weight: Tensor, bias: Tensor | null = null) {
    this.weight = weight;
    this.bias = bias;
    [this.outFeatures, this.inFeatures] = weight.shape;
  }

  /** `x Wᵀ + b`; one row goes through matrix-vector, far faster than a one-row GEMM. */
  forward(x: Tensor): Tensor {
    const shape = x.shape;
    if (x.numel === this.inFeatures) {
      using v = x.reshape([this.inFeatures]);
      using y = this.weight.matmul(v);
      const outShape = [...shape.slice(0, -1), this.outFeatures];
      if (!this.bias) return y.reshape(outShape);
      using yb = y.add(this.bias);
      return yb.reshape(outShape);
    }
    return linear(x, this.weight, this.bias);
  }

  parameterCount(): number {
    return this.weight.numel + (this.bias?.numel ?? 0);
  }

  weightBytes(): number {
    return this.weight.numel * ITEM_SIZE[this.weight.dtype] +
      (this.bias ? this.bias.numel * ITEM_SIZE[this.bias.dtype] : 0);
  }

  dispose(): void {
    this.weight.dispose();
    this.bias?.dispose();
  }
}
