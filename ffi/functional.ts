// Operations over several tensors, and the neural-network primitives.
import { check, L, lastError, TorchError } from "./lib.ts";
import { handleArray, Tensor } from "./tensor.ts";

/** Concatenates along `dim`. */
export function cat(ts: readonly Tensor[], dim = 0): Tensor {
  if (ts.length === 0) throw new TorchError("cat: no tensors given");
  return new Tensor(check(L().lt_cat(handleArray(ts), ts.length, BigInt(dim), 0), "cat"));
}

/** Stacks along a new dimension `dim`. */
export function stack(ts: readonly Tensor[], dim = 0): Tensor {
  if (ts.length === 0) throw new TorchError("stack: no tensors given");
  return new Tensor(check(L().lt_cat(handleArray(ts), ts.length, BigInt(dim), 1), "stack"));
}

/** Elementwise `cond ? a : b`. */
export function where(cond: Tensor, a: Tensor, b: Tensor): Tensor {
  return new Tensor(check(L().lt_where(cond.handle, a.handle, b.handle), "where"));
}

/** `x @ wᵀ + b`. */
export function linear(x: Tensor, w: Tensor, b?: Tensor | null): Tensor {
  return new Tensor(check(L().lt_linear(x.handle, w.handle, b ? b.handle : null), "linear"));
}

/** linear() on a worker thread, leaving the event loop free for progress display. */
export async function linearAsync(x: Tensor, w: Tensor, b?: Tensor | null): Promise<Tensor> {
  const p = await L().lt_linear_async(x.handle, w.handle, b ? b.handle : null);
  if (p === null) throw new TorchError(`linear: ${lastError(true)}`);
  return new Tensor(p);
}

/** RMS normalisation over the last dim (statistics in float32, as Hugging Face's). */
export function rmsNorm(x: Tensor, weight: Tensor | null, eps = 1e-6): Tensor {
  return new Tensor(
    check(L().lt_rms_norm(x.handle, weight ? weight.handle : null, eps), "rmsNorm"),
  );
}

/** Layer normalisation over the last dim. */
export function layerNorm(x: Tensor, weight: Tensor | null, bias: Tensor | null, eps = 1e-5) {
  return new Tensor(
    check(
      L().lt_layer_norm(x.handle, weight ? weight.handle : null, bias ? bias.handle : null, eps),
      "layerNorm",
    ),
  );
}

/** Rows of `weight` picked by integer `ids`. */
export function embedding(weight: Tensor, ids: Tensor): Tensor {
  return new Tensor(check(L().lt_embedding(weight.handle, ids.handle), "embedding"));
}

const REDUCTIONS = { none: 0, mean: 1, sum: 2 } as const;

/** Cross-entropy of logits `[N, C]` against class ids `[N]`. */
export function crossEntropy(
  logits: Tensor,
  target: Tensor,
  opts: { ignoreIndex?: number; reduction?: keyof typeof REDUCTIONS } = {},
): Tensor {
  const red = REDUCTIONS[opts.reduction ?? "mean"];
  return new Tensor(
    check(
      L().lt_cross_entropy(logits.handle, target.handle, BigInt(opts.ignoreIndex ?? -100), red),
      "crossEntropy",
    ),
  );
}

/** Zeroes elements with probability `p` while training (scaled by 1/(1-p)). */
export function dropout(x: Tensor, p: number, training = true): Tensor {
  return new Tensor(check(L().lt_dropout(x.handle, p, training ? 1 : 0), "dropout"));
}

/**
 * Attention `softmax(q kᵀ · scale + mask) v`. `mask` is boolean (true = may
 * attend) or additive. Uses libtorch's fused kernel from 2.1 on.
 */
export function scaledDotProductAttention(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  opts: { mask?: Tensor | null; causal?: boolean; scale?: number } = {},
): Tensor {
  return new Tensor(
    check(
      L().lt_sdpa(
        q.handle,
        k.handle,
        v.handle,
        opts.mask ? opts.mask.handle : null,
        opts.causal ? 1 : 0,
        opts.scale ?? 0,
      ),
      "scaledDotProductAttention",
    ),
  );
}

/** Whether scaledDotProductAttention uses libtorch's fused kernel. */
export function hasFusedAttention(): boolean {
  return L().lt_has_fused_sdpa() === 1;
}
