// Deno FFI signatures of the fused model fast paths (models.cpp).
/** Symbols of the fused model fast paths (models.cpp). */
export const MODEL_SYMBOLS = {
  // weights, n_layers, nh, nkv, hd, eps, ids, cos, sin, mask, cache_k, cache_v, has_cache, past, last_only
  lt_llama_forward: {
    parameters: [
      "buffer",
      "i32",
      "i32",
      "i32",
      "i32",
      "f64",
      "pointer",
      "pointer",
      "pointer",
      "pointer",
      "buffer",
      "buffer",
      "i32",
      "i64",
      "i32",
    ],
    result: "pointer",
  },
} as const;
