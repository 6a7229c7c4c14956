// The fused C++ forward (ffi/models.cpp): the same computation as LlamaModel's
// TypeScript composition in one FFI call, used when every projection is dense.
import { check, L } from "../ffi/lib.ts";
import { handleArray, Tensor } from "../ffi/tensor.ts";
import type { ModelConfig } from "./config.ts";
import type { KVCache } from "./kv_cache.ts";
import { Linear } from "./linear.ts";
import type { ModelWeights } from "./weights.ts";
import { isPacked } from "./embedding.ts";

const ptr = (t: Tensor | null): bigint => (t ? BigInt(Deno.UnsafePointer.value(t.handle)) : 0n);

/**
 * The weight handles in models.cpp's order, or null when a projection is not
 * a dense Linear (quantized, adapted), which only the TypeScript path runs.
 */
export function fusedWeightHandles(w: ModelWeights): BigUint64Array | null {
  if (!(w.lmHead instanceof Linear) || isPacked(w.embedTokens)) return null;
  const out = new BigUint64Array(3 + 16 * w.layers.length);
  out[0] = ptr(w.embedTokens);
  out[1] = ptr(w.norm);
  out[2] = ptr(w.lmHead.weight);
  let i = 3;
  for (const l of w.layers) {
    const projs = [l.qProj, l.kProj, l.vProj, l.oProj, l.gateProj, l.upProj, l.downProj];
    if (!projs.every((p) => p instanceof Linear)) return null;
    out[i++] = ptr(l.inputNorm);
    out[i++] = ptr(l.postAttentionNorm);
    for (const p of projs as Linear[]) {
      out[i++] = ptr(p.weight);
      out[i++] = ptr(p.bias);
    }
  }
  return out;
}

const NO_CACHE = new BigUint64Array(1);

/** Logits (float32) of one forward through the fused kernel. */
export function fusedForward(
  handles: BigUint64Array,
  c: ModelConfig,
  ids: Tensor,
  cos: Tensor,
  sin: Tensor,
  mask: Tensor | null,
  cache: KVCache | null,
  past: number,
  lastOnly: boolean,
): Tensor {
  const ck = cache ? handleArray(cache.keys) : NO_CACHE;
  const cv = cache ? handleArray(cache.values) : NO_CACHE;
  return new Tensor(
    check(
      L().lt_llama_forward(
        handles,
        c.numLayers,
        c.numHeads,
        c.numKvHeads,
        c.headDim,
        c.rmsNormEps,
        ids.handle,
        cos.handle,
        sin.handle,
        mask ? mask.handle : null,
        ck,
        cv,
        cache ? 1 : 0,
        BigInt(past),
        lastOnly ? 1 : 0,
      ),
      "llama forward (fused)",
    ),
  );
}
