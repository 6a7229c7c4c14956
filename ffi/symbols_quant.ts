// Deno FFI signatures of the quantized-weight kernels (quant.cpp).
/** Symbols of the quantized-weight kernels (quant.cpp). */
export const QUANT_SYMBOLS = {
  lt_q_has_float8: { parameters: [], result: "i32" },
  lt_q_kernel_isa: { parameters: ["i32"], result: "i32" },
  lt_q_quantize: { parameters: ["i32", "pointer", "buffer", "buffer"], result: "i32" },
  lt_q_dequantize: {
    parameters: ["i32", "buffer", "i32", "buffer", "i32", "i32"],
    result: "pointer",
  },
  lt_q_rows: {
    parameters: ["i32", "buffer", "i32", "buffer", "pointer"],
    result: "pointer",
  },
  lt_q_linear: {
    parameters: ["i32", "pointer", "buffer", "i32", "buffer", "pointer"],
    result: "pointer",
  },
} as const;
