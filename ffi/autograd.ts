// Gradient mode, clipping and the AdamW optimizer.
import { check, checkStatus, L, TorchError } from "./lib.ts";
import { handleArray, type Tensor } from "./tensor.ts";

/** Runs `fn` with gradient tracking off (like torch.no_grad()). */
export function noGrad<R>(fn: () => R): R {
  const prev = L().lt_set_grad_enabled(0);
  try {
    const r = fn();
    if (r instanceof Promise) {
      return r.finally(() => L().lt_set_grad_enabled(prev)) as R;
    }
    L().lt_set_grad_enabled(prev);
    return r;
  } catch (e) {
    L().lt_set_grad_enabled(prev);
    throw e;
  }
}

/** Scales gradients so their global L2 norm is at most `maxNorm`; returns the norm before. */
export function clipGradNorm(params: readonly Tensor[], maxNorm: number): number {
  const out = new Float64Array(1);
  checkStatus(
    L().lt_clip_grad_norm(handleArray(params), params.length, maxNorm, out),
    "clipGradNorm",
  );
  return out[0];
}

/** AdamW hyper-parameters. */
export interface AdamWOptions {
  /** Learning rate; 1e-3 by default. */
  lr?: number;
  /** Decay rates of the first- and second-moment averages; [0.9, 0.999] by default. */
  betas?: [number, number];
  /** Added to the denominator for numerical stability; 1e-8 by default. */
  eps?: number;
  /** Decoupled weight-decay factor, applied as `p -= lr * weightDecay * p`; 0.01 by default. */
  weightDecay?: number;
}

/** AdamW (decoupled weight decay) over a list of leaf tensors, as torch.optim.AdamW. */
export class AdamW {
  #ptr: Deno.PointerObject | null;
  /** The learning rate the next step() uses (step(lr) replaces it). */
  lr: number;
  /** The leaf tensors this optimizer updates, in the order given. */
  readonly params: readonly Tensor[];

  /** Creates the native optimizer state for `params` (which must not be empty). */
  constructor(params: readonly Tensor[], opts: AdamWOptions = {}) {
    if (params.length === 0) throw new TorchError("AdamW: no parameters given");
    this.lr = opts.lr ?? 1e-3;
    const [b1, b2] = opts.betas ?? [0.9, 0.999];
    this.params = params;
    this.#ptr = check(
      L().lt_adamw_new(
        handleArray(params),
        params.length,
        this.lr,
        b1,
        b2,
        opts.eps ?? 1e-8,
        opts.weightDecay ?? 0.01,
      ),
      "AdamW",
    );
  }

  #handle(): Deno.PointerObject {
    if (!this.#ptr) throw new TorchError("AdamW used after dispose()");
    return this.#ptr;
  }

  /** One update; `lr` overrides the rate from this step on. */
  step(lr?: number): void {
    if (lr !== undefined) this.lr = lr;
    checkStatus(L().lt_adamw_step(this.#handle(), this.lr), "AdamW.step");
  }

  /** Drops every parameter's gradient. */
  zeroGrad(): void {
    checkStatus(L().lt_adamw_zero_grad(this.#handle()), "AdamW.zeroGrad");
  }

  /** Frees the optimizer state. */
  dispose(): void {
    if (this.#ptr) L().lt_adamw_free(this.#ptr);
    this.#ptr = null;
  }

  /** Frees the optimizer state at the end of a `using` block; same as dispose(). */
  [Symbol.dispose](): void {
    this.dispose();
  }
}
