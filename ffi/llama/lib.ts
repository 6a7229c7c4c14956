// Opens libllama (llama.cpp's C API) with Deno.dlopen: the symbols the lab calls, the ggml CPU
// backends, and libllama's log lines kept for error messages instead of printed.
import { BATCH, CONTEXT_PARAMS, MODEL_PARAMS, QUANTIZE_PARAMS } from "./structs.ts";
import { type LlamaCppLibrary, LlamaCppUnavailable, locateLlamaCpp } from "./locate.ts";
import { LabError } from "../../errors.ts";

const P = "pointer" as const;

const SYMBOLS = {
  llama_backend_init: { parameters: [], result: "void" },
  llama_log_set: { parameters: ["function", P], result: "void" },
  llama_print_system_info: { parameters: [], result: P },
  llama_model_default_params: { parameters: [], result: MODEL_PARAMS.native },
  llama_context_default_params: { parameters: [], result: CONTEXT_PARAMS.native },
  llama_model_quantize_default_params: { parameters: [], result: QUANTIZE_PARAMS.native },
  llama_model_load_from_file: { parameters: ["buffer", MODEL_PARAMS.native], result: P },
  llama_model_free: { parameters: [P], result: "void" },
  llama_init_from_model: { parameters: [P, CONTEXT_PARAMS.native], result: P },
  llama_free: { parameters: [P], result: "void" },
  llama_model_get_vocab: { parameters: [P], result: P },
  llama_vocab_n_tokens: { parameters: [P], result: "i32" },
  llama_model_size: { parameters: [P], result: "u64" },
  llama_model_n_params: { parameters: [P], result: "u64" },
  llama_get_memory: { parameters: [P], result: P },
  llama_memory_clear: { parameters: [P, "bool"], result: "void" },
  llama_decode: { parameters: [P, BATCH.native], result: "i32", nonblocking: false },
  llama_get_logits_ith: { parameters: [P, "i32"], result: P },
  llama_model_quantize: { parameters: ["buffer", "buffer", "buffer"], result: "u32" },
} as const;

const GGML_SYMBOLS = {
  ggml_backend_load_all_from_path: { parameters: ["buffer"], result: "void" },
  ggml_backend_dev_count: { parameters: [], result: "usize" },
} as const;

/** The opened libllama symbols. */
export type LlamaSymbols = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

/** A libllama call that failed; carries libllama's own last log lines. */
export class LlamaCppError extends LabError {
  constructor(message: string) {
    super(message);
    this.name = "LlamaCppError";
  }
}

interface Opened {
  lib: LlamaCppLibrary;
  symbols: LlamaSymbols;
  log: string[];
}

let opened: Opened | null = null;

/** NUL-terminated UTF-8 of `s`, for `const char *` parameters. */
export function cString(s: string): Uint8Array<ArrayBuffer> {
  return new TextEncoder().encode(s + "\0") as Uint8Array<ArrayBuffer>;
}

const LOG_CALLBACK = { parameters: ["i32", P, P], result: "void" } as const;

function keepLog(log: string[]): Deno.UnsafeCallback<typeof LOG_CALLBACK> {
  // Lines are kept (last 40) so a failure can quote why; nothing is printed.
  return new Deno.UnsafeCallback(
    LOG_CALLBACK,
    (_level, text) => {
      if (!text) return;
      log.push(Deno.UnsafePointerView.getCString(text));
      if (log.length > 40) log.splice(0, log.length - 40);
    },
  );
}

/** Opens libllama once per process (loading ggml's CPU backends); throws LlamaCppUnavailable. */
export function llamaCpp(): LlamaSymbols {
  if (opened) return opened.symbols;
  const lib = locateLlamaCpp();
  let symbols: LlamaSymbols;
  const log: string[] = [];
  try {
    // libllama first, so its log hook is set before ggml picks a CPU backend.
    symbols = Deno.dlopen(lib.libllama, SYMBOLS).symbols;
    symbols.llama_log_set(keepLog(log).pointer, null);
    const ggml = Deno.dlopen(lib.libggml, GGML_SYMBOLS);
    ggml.symbols.ggml_backend_load_all_from_path(cString(lib.dir));
    if (Number(ggml.symbols.ggml_backend_dev_count()) === 0) {
      throw new Error(`no ggml backend in ${lib.dir} can run on this CPU`);
    }
  } catch (e) {
    throw new LlamaCppUnavailable(`cannot open libllama from ${lib.dir}: ${(e as Error).message}`);
  }
  symbols.llama_backend_init();
  opened = { lib, symbols, log };
  return symbols;
}

/** libllama's recent log lines (warnings and errors), newest last, then cleared. */
export function takeLlamaLog(): string[] {
  if (!opened) return [];
  const lines = opened.log.splice(0).map((l) => l.trimEnd()).filter((l) => l.length > 0);
  return lines;
}

/** The CPU features ggml's chosen backend reports (e.g. "AVX2 = 1 | AVX512 = 1 ..."). */
export function llamaSystemInfo(): string {
  const p = llamaCpp().llama_print_system_info();
  return p ? Deno.UnsafePointerView.getCString(p) : "";
}

/** Throws LlamaCppError for `what`, quoting libllama's last error lines. */
export function llamaFailure(what: string): never {
  const log = takeLlamaLog();
  // libllama logs its reason on lines that say so; without one, its last words.
  const said = log.filter((l) => /error|fail|unsupported|invalid|cannot|not /i.test(l));
  const lines = (said.length ? said : log).slice(-3).join(" | ");
  throw new LlamaCppError(lines ? `${what}: ${lines}` : what);
}
