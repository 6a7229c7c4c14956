// The LoRA layer over any LinearLayer (dense or quantized), as PEFT defines it: A [r, in]
// Kaiming-uniform, B [out, r] zeros, output scaled by alpha/r (or alpha/sqrt(r) with rsLoRA).
import { LabError } from "../../errors.ts";
import {
  dropout as dropoutOp,
  type DType,
  linear,
  noGrad,
  rand,
  type Tensor,
  tidy,
  zeros,
} from "../../ffi/mod.ts";
import type { LinearLayer } from "../linear.ts";

/** An adapter, a config or a target list that cannot be used, with the reason and the fix. */
export class LoraError extends LabError {
  constructor(message: string) {
    super(message);
    this.name = "LoraError";
  }
}

/** How LoRALinear scales B·A: alpha/r, or alpha/sqrt(r) with rsLoRA. */
export function loraScaling(r: number, alpha: number, rslora = false): number {
  return rslora ? alpha / Math.sqrt(r) : alpha / r;
}

/** `y = base(x) + scaling · B·A·dropout(x)` with the base frozen and A, B trainable. */
export class LoRALinear implements LinearLayer {
  readonly base: LinearLayer;
  /** `[r, in]`. */
  readonly loraA: Tensor;
  /** `[out, r]`. */
  readonly loraB: Tensor;
  readonly r: number;
  readonly alpha: number;
  readonly rslora: boolean;
  readonly scaling: number;
  /** Dropout probability on the adapter's input while training. */
  dropout: number;
  /** Dropout is active only while true (set by the training loop). */
  training = false;
  readonly inFeatures: number;
  readonly outFeatures: number;

  constructor(
    base: LinearLayer,
    loraA: Tensor,
    loraB: Tensor,
    opts: { alpha: number; dropout?: number; rslora?: boolean },
  ) {
    const [r, inA] = loraA.shape;
    const [outB, rB] = loraB.shape;
    if (inA !== base.inFeatures || outB !== base.outFeatures || rB !== r) {
      throw new LoraError(
        `LoRA shapes do not fit the layer [${base.outFeatures}, ${base.inFeatures}]: ` +
          `lora_A is [${loraA.shape}] (want [r, ${base.inFeatures}]), lora_B is [${loraB.shape}] ` +
          `(want [${base.outFeatures}, r])`,
      );
    }
    this.base = base;
    this.loraA = loraA;
    this.loraB = loraB;
    this.r = r;
    this.alpha = opts.alpha;
    this.rslora = opts.rslora ?? false;
    this.scaling = loraScaling(r, opts.alpha, this.rslora);
    this.dropout = opts.dropout ?? 0;
    this.inFeatures = base.inFeatures;
    this.outFeatures = base.outFeatures;
  }

  /**
   * Wraps `base` with fresh adapters as PEFT initialises them: A from
   * kaiming_uniform_(a=√5), i.e. U(−1/√in, 1/√in), and B zeros.
   */
  static create(
    base: LinearLayer,
    opts: {
      r: number;
      alpha: number;
      dropout?: number;
      rslora?: boolean;
      dtype: DType;
      device: string;
    },
  ): LoRALinear {
    if (!Number.isInteger(opts.r) || opts.r < 1) {
      throw new LoraError(`LoRA rank r must be a positive integer, got ${opts.r}`);
    }
    const bound = 1 / Math.sqrt(base.inFeatures);
    const a = tidy(() => {
      const u = rand([opts.r, base.inFeatures], { device: opts.device });
      return u.mul(2 * bound).sub(bound).to(opts.dtype);
    });
    const b = zeros([base.outFeatures, opts.r], { dtype: opts.dtype, device: opts.device });
    a.requiresGrad_();
    b.requiresGrad_();
    return new LoRALinear(base, a, b, opts);
  }

  forward(x: Tensor): Tensor {
    const y = this.base.forward(x);
    const out = tidy(() => {
      let h = x.dtype === this.loraA.dtype ? x : x.to(this.loraA.dtype);
      if (this.training && this.dropout > 0) h = dropoutOp(h, this.dropout, true);
      let d = linear(linear(h, this.loraA), this.loraB).mul(this.scaling);
      if (d.dtype !== y.dtype) d = d.to(y.dtype);
      return y.add(d);
    });
    y.dispose();
    return out;
  }

  /** The dense update `scaling · B·A` `[out, in]` in float32. */
  delta(): Tensor {
    return noGrad(() =>
      tidy(() => this.loraB.to("float32").matmul(this.loraA.to("float32")).mul(this.scaling))
    );
  }

  /** The adapter's trainable tensors. */
  parameters(): Tensor[] {
    return [this.loraA, this.loraB];
  }

  parameterCount(): number {
    return this.base.parameterCount() + this.loraA.numel + this.loraB.numel;
  }

  /** Parameters of the adapter alone. */
  adapterParameterCount(): number {
    return this.loraA.numel + this.loraB.numel;
  }

  weightBytes(): number {
    return this.base.weightBytes() + this.loraA.nbytes + this.loraB.nbytes;
  }

  dispose(): void {
    this.base.dispose();
    this.loraA.dispose();
    this.loraB.dispose();
  }
}
