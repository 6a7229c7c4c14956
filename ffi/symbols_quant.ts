// Deno FFI signatures of the quantized-weight kernels (quant.cpp).
/** Symbols of the quantized-weight kernels (quant.cpp). */
export const QUANT_SYMBOLS = {} as const;
