// A projection whose weight is stored quantized and dequantized per call, in one native pass.
import {
  dequantizeWeight,
  type DType,
  quantizedLinear,
  quantizedRows,
  quantizeWeight,
  type Tensor,
  tidy,
} from "../../ffi/mod.ts";
import type { PackedTable } from "../embedding.ts";
import type { Scheme } from "./schemes.ts";
import { relativeError } from "./relative_error.ts";

type QuantScheme = Exclude<Scheme, { kind: "cast" }>;

// Names of each format's storage tensors, as saved in safetensors.
const PART_NAMES: Record<string, string[]> = {
  int8: ["qweight", "scales"],
  fp8: ["qweight", "scales"],
  int4: ["qweight", "scales", "zeros"],
  blockwise: ["qweight", "absmax"],
  blockwiseDouble: ["qweight", "absmax_q", "absmax_scale", "absmax_offset"],
};

/** Storage names of a scheme's tensors. */
export function partNames(s: QuantScheme): string[] {
  if (s.kind === "nf4" || s.kind === "fp4") {
    return s.block2 ? PART_NAMES.blockwiseDouble : PART_NAMES.blockwise;
  }
  return PART_NAMES[s.kind];
}

/** `y = x @ dequant(W)ᵀ + b` over packed storage; no dense copy of W outlives a call. */
export class QuantizedLinear implements PackedTable {
  readonly scheme: QuantScheme;
  readonly parts: Tensor[];
  readonly bias: Tensor | null;
  readonly inFeatures: number;
  readonly outFeatures: number;

  constructor(scheme: QuantScheme, parts: Tensor[], shape: [number, number], bias: Tensor | null) {
    this.scheme = scheme;
    this.parts = parts;
    this.bias = bias;
    [this.outFeatures, this.inFeatures] = shape;
  }

  /** Quantizes a dense `[out, in]` weight (the weight itself is left to the caller). */
  static fromWeight(weight: Tensor, bias: Tensor | null, scheme: QuantScheme): QuantizedLinear {
    const device = weight.device;
    let parts = quantizeWeight(scheme.kind, weight, scheme.block || 64, scheme.block2);
    if (device !== "cpu") {
      parts = parts.map((p) => {
        using _p = p;
        return p.to({ device });
      });
    }
    const [o, i] = weight.shape as [number, number];
    return new QuantizedLinear(scheme, parts, [o, i], bias);
  }

  forward(x: Tensor): Tensor {
    return quantizedLinear(
      this.scheme.kind,
      x,
      this.parts,
      [this.outFeatures, this.inFeatures],
      this.scheme.block,
      this.scheme.block2,
      this.bias,
    );
  }

  /** Rows `ids` of the dense weight (an embedding lookup), dequantizing only those rows. */
  rows(ids: Tensor): Tensor {
    const { kind, block, block2 } = this.scheme;
    return quantizedRows(kind, this.parts, [this.outFeatures, this.inFeatures], block, block2, ids);
  }

  /** The dense weight this layer computes with. */
  dequantize(dtype: DType = "float32", composed = false): Tensor {
    return dequantizeWeight(this.scheme.kind, this.parts, [this.outFeatures, this.inFeatures], {
      block: this.scheme.block,
      block2: this.scheme.block2,
      dtype,
      composed,
    });
  }

  /** Relative Frobenius error ‖W − dequant(Q(W))‖ / ‖W‖ against the original weight. */
  relativeError(original: Tensor): number {
    return tidy(() => relativeError(original, this.dequantize("float32")));
  }

  parameterCount(): number {
    return this.outFeatures * this.inFeatures + (this.bias?.numel ?? 0);
  }

  /** Real bytes of the packed storage, scales included. */
  weightBytes(): number {
    return this.parts.reduce((s, p) => s + p.nbytes, 0) + (this.bias?.nbytes ?? 0);
  }

  /** Storage tensors under `prefix` (e.g. "model.layers.0.mlp.up_proj"). */
  namedTensors(prefix: string): [string, Tensor][] {
    const names = partNames(this.scheme);
    const out: [string, Tensor][] = this.parts.map((p, k) => [`${prefix}.${names[k]}`, p]);
    if (this.bias) out.push([`${prefix}.bias`, this.bias]);
    return out;
  }

  dispose(): void {
    for (const p of this.parts) p.dispose();
    this.bias?.dispose();
  }
}
