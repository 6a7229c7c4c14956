// Deno FFI signatures of the shim's C entry points (see shim.h).
import { BENCH_SYMBOLS } from "./symbols_bench.ts";
import { MODEL_SYMBOLS } from "./symbols_models.ts";
import { QUANT_SYMBOLS } from "./symbols_quant.ts";
const P = "pointer" as const;
const B = "buffer" as const;
const I32 = "i32" as const;
const I64 = "i64" as const;
const F64 = "f64" as const;
const U64 = "u64" as const;
const V = "void" as const;

/** The core entry points of shim.cpp. */
const CORE_SYMBOLS = {
  lt_last_error: { parameters: [], result: P },
  lt_last_error_global: { parameters: [], result: P },
  lt_version: { parameters: [], result: P },
  lt_has_cuda_build: { parameters: [], result: I32 },
  lt_set_num_threads: { parameters: [I32], result: V },
  lt_get_num_threads: { parameters: [], result: I32 },
  lt_manual_seed: { parameters: [U64], result: V },
  lt_set_grad_enabled: { parameters: [I32], result: I32 },
  lt_free: { parameters: [P], result: V },

  lt_from_data: { parameters: [B, B, I32, I32], result: P },
  lt_full: { parameters: [B, I32, F64, I32, I32, I32], result: P },
  lt_arange: { parameters: [F64, F64, F64, I32, I32, I32], result: P },
  lt_random: { parameters: [I32, B, I32, I32, I32, I32], result: P },

  lt_ndim: { parameters: [P], result: I32 },
  lt_shape: { parameters: [P, B], result: I32 },
  lt_dtype: { parameters: [P], result: I32 },
  lt_device: { parameters: [P, B], result: I32 },
  lt_requires_grad: { parameters: [P], result: I32 },
  lt_copy_out: { parameters: [P, B, I64], result: I32 },
  lt_item: { parameters: [P, B], result: I32 },

  lt_unary: { parameters: [I32, P], result: P },
  lt_binary: { parameters: [I32, P, P], result: P },
  lt_binary_async: { name: "lt_binary", parameters: [I32, P, P], result: P, nonblocking: true },
  lt_binary_scalar: { parameters: [I32, P, F64], result: P },
  lt_reduce: { parameters: [I32, P, B, I32, I32], result: P },
  lt_dim_op: { parameters: [I32, P, I64, F64], result: P },
  lt_shape_op: { parameters: [I32, P, B, I32], result: P },

  lt_to: { parameters: [P, I32, I32, I32], result: P },
  lt_linear: { parameters: [P, P, P], result: P },
  lt_linear_async: { name: "lt_linear", parameters: [P, P, P], result: P, nonblocking: true },
  lt_rms_norm: { parameters: [P, P, F64], result: P },
  lt_layer_norm: { parameters: [P, P, P, F64], result: P },
  lt_embedding: { parameters: [P, P], result: P },
  lt_transpose: { parameters: [P, I64, I64], result: P },
  lt_narrow: { parameters: [P, I64, I64, I64], result: P },
  lt_slice: { parameters: [P, I64, I64, I64, I64], result: P },
  lt_cat: { parameters: [B, I32, I64, I32], result: P },
  lt_split: { parameters: [P, I64, I64, I32, B, I32], result: I32 },
  lt_index_op: { parameters: [I32, P, I64, P, P], result: P },
  lt_where: { parameters: [P, P, P], result: P },
  lt_masked_fill: { parameters: [P, P, F64], result: P },
  lt_clamp: { parameters: [P, F64, F64, I32, I32], result: P },
  lt_topk: { parameters: [P, I64, I64, I32, B], result: I32 },
  lt_sort: { parameters: [P, I64, I32, B], result: I32 },
  lt_multinomial: { parameters: [P, I64, I32], result: P },
  lt_cross_entropy: { parameters: [P, P, I64, I32], result: P },
  lt_dropout: { parameters: [P, F64, I32], result: P },
  lt_sdpa: { parameters: [P, P, P, P, I32, F64], result: P },
  lt_has_fused_sdpa: { parameters: [], result: I32 },

  lt_copy_: { parameters: [P, P], result: I32 },
  lt_fill_: { parameters: [P, F64], result: I32 },

  lt_set_requires_grad: { parameters: [P, I32], result: I32 },
  lt_backward: { parameters: [P, P], result: I32 },
  lt_grad: { parameters: [P], result: P },
  lt_zero_grad: { parameters: [P], result: I32 },
  lt_clip_grad_norm: { parameters: [B, I32, F64, B], result: I32 },

  lt_adamw_new: { parameters: [B, I32, F64, F64, F64, F64, F64], result: P },
  lt_adamw_step: { parameters: [P, F64], result: I32 },
  lt_adamw_zero_grad: { parameters: [P], result: I32 },
  lt_adamw_free: { parameters: [P], result: V },

  lt_cuda_available: { parameters: [], result: I32 },
  lt_cuda_device_count: { parameters: [], result: I32 },
  lt_cuda_synchronize: { parameters: [I32], result: I32 },
  lt_cuda_memory: { parameters: [I32, B], result: I32 },
  lt_cuda_reset_peak: { parameters: [I32], result: I32 },
} as const;

/** The shim's symbol table for Deno.dlopen: core ops, fused fast paths, benchmark probes. */
export const SYMBOLS = {
  ...CORE_SYMBOLS,
  ...MODEL_SYMBOLS,
  ...QUANT_SYMBOLS,
  ...BENCH_SYMBOLS,
} as const;
