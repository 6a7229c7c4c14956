// What text generation and the input checks need of a model: its config, tokenizer and forward
// pass. LlamaModel implements it; generate.ts and limits.ts depend on this, not on llama.ts,
// so that the model can offer generate() without an import cycle.
import type { Tensor } from "../ffi/mod.ts";
import type { ModelConfig } from "./config.ts";
import type { KVCache } from "./kv_cache.ts";
import type { TextTokenizer } from "./tokenizer.ts";

/** Token ids: rows of numbers, or an int64 tensor `[batch, seq]`. */
export type TokenIds = readonly (readonly number[])[] | Tensor;

/** Options of a forward pass. */
export interface ForwardOptions {
  /**
   * 1 for real tokens, 0 for (left) padding, over the cached slots and the new
   * ones: `[batch, cache.length + seq]`. Absent: every slot is real.
   */
  attentionMask?: readonly (readonly number[])[] | Tensor;
  /** Position ids `[batch, seq]`; by default derived from the mask (or `cache.length + t`). */
  positionIds?: readonly (readonly number[])[] | Tensor;
  /** Cache to read past keys/values from and append this step's to. */
  cache?: KVCache;
  /** "all" (default): logits for every position; "last": only the last. */
  logits?: "all" | "last";
  /**
   * Use the fused C++ forward when every projection is dense (default true);
   * false runs the TypeScript composition it is tested against.
   */
  fused?: boolean;
}

/** A causal language model as generation sees it (LlamaModel is one). */
export interface CausalLM {
  readonly config: ModelConfig;
  /** The folder the model was loaded from, for messages. */
  readonly source: string | null;
  tokenizer: TextTokenizer | null;
  /** A KV cache for `batch` rows of up to `capacity` positions. */
  createCache(batch: number, capacity: number): KVCache;
  /** float32 logits `[batch, seq or 1, vocab]`. */
  forward(ids: TokenIds, opts?: ForwardOptions): Tensor;
}
