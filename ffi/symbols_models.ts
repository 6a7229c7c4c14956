// Deno FFI signatures of the fused model fast paths (models.cpp).
/** Symbols of the fused model fast paths (models.cpp). */
export const MODEL_SYMBOLS = {} as const;
