// A GGUF model opened in libllama: a context sized for the job, batched decode of token ids,
// logits read back as Float32Array rows.
import { cString, llamaCpp, llamaFailure, type LlamaSymbols } from "../../ffi/llama/lib.ts";
import { CONTEXT_PARAMS, MODEL_PARAMS } from "../../ffi/llama/structs.ts";
import { LabError } from "../../errors.ts";
import { type BatchToken, TokenBatch } from "./batch.ts";

/** How to open a GGUF model. */
export interface LlamaCppOptions {
  /** Tokens the context holds (all sequences together). */
  contextTokens: number;
  /** Threads for decode and prefill (default 2). */
  threads?: number;
  /** Sequences decoded side by side (default 1). */
  sequences?: number;
}

/** A loaded GGUF model with one context. */
export class LlamaCppModel {
  readonly vocabSize: number;
  readonly sequences: number;
  #lib: LlamaSymbols;
  #model: Deno.PointerObject | null;
  #ctx: Deno.PointerObject | null;

  private constructor(
    lib: LlamaSymbols,
    model: Deno.PointerObject,
    ctx: Deno.PointerObject,
    seqs: number,
  ) {
    this.#lib = lib;
    this.#model = model;
    this.#ctx = ctx;
    this.sequences = seqs;
    this.vocabSize = lib.llama_vocab_n_tokens(lib.llama_model_get_vocab(model));
  }

  /** Loads `path` on the CPU; throws LlamaCppError quoting libllama when it refuses. */
  static open(path: string, opts: LlamaCppOptions): LlamaCppModel {
    const lib = llamaCpp();
    const mp = lib.llama_model_default_params();
    MODEL_PARAMS.set(mp, "n_gpu_layers", 0);
    const model = lib.llama_model_load_from_file(cString(path), mp as Uint8Array<ArrayBuffer>);
    if (!model) llamaFailure(`libllama could not load ${path}`);
    const seqs = opts.sequences ?? 1;
    const threads = opts.threads ?? 2;
    const cp = lib.llama_context_default_params();
    CONTEXT_PARAMS.set(cp, "n_ctx", opts.contextTokens);
    CONTEXT_PARAMS.set(cp, "n_batch", opts.contextTokens);
    CONTEXT_PARAMS.set(cp, "n_ubatch", opts.contextTokens);
    CONTEXT_PARAMS.set(cp, "n_seq_max", seqs);
    CONTEXT_PARAMS.set(cp, "n_outputs_max_per_seq", 0);
    CONTEXT_PARAMS.set(cp, "n_threads", threads);
    CONTEXT_PARAMS.set(cp, "n_threads_batch", threads);
    CONTEXT_PARAMS.set(cp, "kv_unified", true);
    CONTEXT_PARAMS.set(cp, "flash_attn_type", 0);
    // fp32 KV cache: the lab's libtorch path keeps K/V in the compute dtype too.
    CONTEXT_PARAMS.set(cp, "type_k", 0);
    CONTEXT_PARAMS.set(cp, "type_v", 0);
    const ctx = lib.llama_init_from_model(model, cp as Uint8Array<ArrayBuffer>);
    if (!ctx) {
      lib.llama_model_free(model);
      llamaFailure(`libllama could not create a ${opts.contextTokens}-token context for ${path}`);
    }
    return new LlamaCppModel(lib, model, ctx, seqs);
  }

  #context(): Deno.PointerObject {
    if (!this.#ctx) throw new LabError("llama.cpp model used after close()");
    return this.#ctx;
  }

  /** Bytes of the model's weights as libllama holds them. */
  get weightBytes(): number {
    return Number(this.#lib.llama_model_size(this.#model));
  }

  /** Parameters libllama counts. */
  get parameters(): number {
    return Number(this.#lib.llama_model_n_params(this.#model));
  }

  /** Forgets every sequence's cached keys and values. */
  clear(): void {
    this.#lib.llama_memory_clear(this.#lib.llama_get_memory(this.#context()), true);
  }

  /** Decodes `tokens` in one llama_decode; returns the logits rows asked for, in order. */
  decode(tokens: readonly BatchToken[]): Float32Array[] {
    const ctx = this.#context();
    for (const t of tokens) {
      if (!Number.isInteger(t.id) || t.id < 0 || t.id >= this.vocabSize) {
        throw new LabError(`token id ${t.id} is outside the vocabulary (0..${this.vocabSize - 1})`);
      }
    }
    const batch = new TokenBatch(tokens, this.sequences);
    const rc = this.#lib.llama_decode(ctx, batch.struct);
    if (rc !== 0) llamaFailure(`llama_decode of ${tokens.length} tokens returned ${rc}`);
    return batch.outputs.map((i) => {
      const p = this.#lib.llama_get_logits_ith(ctx, i);
      if (!p) llamaFailure(`llama_get_logits_ith(${i}) returned no logits`);
      const view = new Deno.UnsafePointerView(p);
      return new Float32Array(view.getArrayBuffer(this.vocabSize * 4).slice(0));
    });
  }

  /** Logits at every position of one sequence of ids, decoded from an empty cache. */
  logits(ids: readonly number[]): Float32Array[] {
    this.clear();
    return this.decode(ids.map((id, pos) => ({ id, pos, seq: 0, logits: true })));
  }

  /** Frees the context and the model. */
  close(): void {
    if (this.#ctx) this.#lib.llama_free(this.#ctx);
    if (this.#model) this.#lib.llama_model_free(this.#model);
    this.#ctx = null;
    this.#model = null;
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
