// llama.cpp's quantization types (llama_ftype) and `llama_model_quantize` on a GGUF file.
import { cString, llamaCpp, llamaFailure } from "../../ffi/llama/lib.ts";
import { QUANTIZE_PARAMS } from "../../ffi/llama/structs.ts";

/**
 * The llama.cpp types the lab offers, with their llama_ftype ids (llama.h). IQ1/IQ2, IQ3_XS
 * and Q2_K_S are left out: libllama refuses them without an importance matrix.
 */
export const LLAMA_CPP_SCHEMES = {
  F32: 0,
  F16: 1,
  BF16: 32,
  Q8_0: 7,
  Q6_K: 18,
  Q5_K_M: 17,
  Q5_K_S: 16,
  Q5_1: 9,
  Q5_0: 8,
  Q4_K_M: 15,
  Q4_K_S: 14,
  Q4_1: 3,
  Q4_0: 2,
  IQ4_XS: 30,
  IQ4_NL: 25,
  Q3_K_L: 13,
  Q3_K_M: 12,
  Q3_K_S: 11,
  IQ3_M: 27,
  IQ3_S: 26,
  Q2_K: 10,
} as const;

/** One of LLAMA_CPP_SCHEMES' names. */
export type LlamaCppScheme = keyof typeof LLAMA_CPP_SCHEMES;

/** The names, for messages that list what is valid. */
export const LLAMA_CPP_SCHEME_NAMES = Object.keys(LLAMA_CPP_SCHEMES) as LlamaCppScheme[];

/** True when `s` names a llama.cpp type the lab offers. */
export function isLlamaCppScheme(s: string): s is LlamaCppScheme {
  return Object.hasOwn(LLAMA_CPP_SCHEMES, s);
}

/** Types export writes directly (no quantization pass). */
export function isUnquantized(s: LlamaCppScheme): s is "F32" | "F16" | "BF16" {
  return s === "F32" || s === "F16" || s === "BF16";
}

/** Quantizes GGUF `input` (F32/F16/BF16) into `output` with libllama; throws quoting its log. */
export function quantizeGguf(
  input: string,
  output: string,
  scheme: LlamaCppScheme,
  threads = 2,
): void {
  const lib = llamaCpp();
  const p = lib.llama_model_quantize_default_params();
  QUANTIZE_PARAMS.set(p, "ftype", LLAMA_CPP_SCHEMES[scheme]);
  QUANTIZE_PARAMS.set(p, "nthread", threads);
  const rc = lib.llama_model_quantize(
    cString(input),
    cString(output),
    p as Uint8Array<ArrayBuffer>,
  );
  if (rc !== 0) llamaFailure(`llama_model_quantize to ${scheme} failed (${rc})`);
}
