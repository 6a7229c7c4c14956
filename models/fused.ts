// The fused C++ forward (ffi/models.cpp): the same computation as LlamaModel's
// TypeScript composition in one FFI call, for dense and packed (quantized, narrowed)
// projections alike.
import { check, L } from "../ffi/lib.ts";
import { handleArray, Tensor } from "../ffi/tensor.ts";
import { QUANT_KIND } from "../ffi/quant.ts";
import type { ModelConfig } from "./config.ts";
import type { KVCache } from "./kv_cache.ts";
import { Linear, type LinearLayer } from "./linear.ts";
import { QuantizedLinear } from "./quant/quantized_linear.ts";
import { CastLinear } from "./quant/cast_linear.ts";
import { layerProjections, type ModelWeights } from "./weights.ts";

const ptr = (t: Tensor | null): bigint => (t ? BigInt(Deno.UnsafePointer.value(t.handle)) : 0n);

// u64 slots per projection in models.cpp's layout: kind (-1 dense), 4 tensor handles,
// [out, in, block, block2], bias handle.
const PROJ_SLOTS = 10;
const LAYER_SLOTS = 2 + 7 * PROJ_SLOTS;

// Writes one projection's descriptor at `at`; false when models.cpp cannot run it (LoRA).
function writeProj(out: BigUint64Array, at: number, p: LinearLayer | Tensor): boolean {
  let kind: number, parts: Tensor[], shape: number[], block = 0, block2 = 0;
  let bias: Tensor | null = null;
  if (p instanceof Tensor) {
    [kind, parts, shape] = [-1, [p], p.shape];
  } else if (p instanceof Linear) {
    [kind, parts, shape, bias] = [-1, [p.weight], p.weight.shape, p.bias];
  } else if (p instanceof QuantizedLinear) {
    [kind, parts, bias] = [QUANT_KIND[p.scheme.kind], p.parts, p.bias];
    [shape, block, block2] = [[p.outFeatures, p.inFeatures], p.scheme.block, p.scheme.block2];
  } else if (p instanceof CastLinear && p.weight.dtype !== "float32") {
    [kind, parts, shape, bias] = [QUANT_KIND.half, [p.weight], p.weight.shape, p.bias];
  } else {
    return false;
  }
  out[at] = BigInt.asUintN(64, BigInt(kind));
  parts.forEach((t, i) => (out[at + 1 + i] = ptr(t)));
  [shape[0], shape[1], block, block2].forEach((v, i) => (out[at + 5 + i] = BigInt(v)));
  out[at + 9] = ptr(bias);
  return true;
}

/**
 * The model's weights in models.cpp's layout, or null when a projection is one only the
 * TypeScript path runs (a LoRA adapter). Dense and packed projections mix freely.
 */
export function fusedWeightHandles(w: ModelWeights): BigUint64Array | null {
  const out = new BigUint64Array(2 * PROJ_SLOTS + 1 + LAYER_SLOTS * w.layers.length);
  if (!writeProj(out, 0, w.embedTokens)) return null;
  out[PROJ_SLOTS] = ptr(w.norm);
  if (!writeProj(out, PROJ_SLOTS + 1, w.lmHead)) return null;
  let at = 2 * PROJ_SLOTS + 1;
  for (const l of w.layers) {
    out[at] = ptr(l.inputNorm);
    out[at + 1] = ptr(l.postAttentionNorm);
    for (const [i, p] of layerProjections(l).entries()) {
      if (!writeProj(out, at + 2 + PROJ_SLOTS * i, p)) return null;
    }
    at += LAYER_SLOTS;
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
