// The Llama-family decoder (Llama 2/3, Mistral, Qwen2, Phi3) as a plain
// composition of binding ops: the reference every fast path is tested against.
import { type DType, ITEM_SIZE, rmsNorm, type Tensor, tensor, tidy } from "../ffi/mod.ts";
import type { ModelConfig } from "./config.ts";
import { KVCache } from "./kv_cache.ts";
import { attentionMask, positionIdsFromPadding } from "./attention_mask.ts";
import { applyRope, invFreqTensor, ropeTables } from "./rope.ts";
import { layerProjections, type LayerWeights, type ModelWeights } from "./weights.ts";
import type { TextTokenizer } from "./tokenizer.ts";
import { fusedForward, fusedWeightHandles } from "./fused.ts";
import { lookupEmbedding, tableBytes, tableParams } from "./embedding.ts";
import { generate, type GenerateOptions, type GenerateResult } from "./generate.ts";
import type { ForwardOptions, TokenIds } from "./causal_lm.ts";

export type { ForwardOptions, TokenIds } from "./causal_lm.ts";

/** What forwardDetailed returns. */
export interface ForwardOutput {
  /** float32 `[batch, seq or 1, vocab]`. */
  logits: Tensor;
  /** Embeddings, the residual stream after each layer but the last, then the final normed output. */
  hiddenStates: Tensor[];
}

function toRows(x: readonly (readonly number[])[] | Tensor, what: string): number[][] {
  if (Array.isArray(x)) return x as number[][];
  const t = x as Tensor;
  if (t.ndim !== 2) throw new RangeError(`${what} must be 2-D [batch, seq], got [${t.shape}]`);
  return t.toArray() as number[][];
}

function idsTensor(ids: TokenIds, device: string): Tensor {
  if (Array.isArray(ids)) {
    const rows = ids as readonly (readonly number[])[];
    if (rows.length === 0 || rows[0].length === 0) {
      throw new RangeError("forward: ids must hold at least one token in one row");
    }
    const n = rows[0].length;
    const flat = new BigInt64Array(rows.length * n);
    rows.forEach((r, b) => {
      if (r.length !== n) {
        throw new RangeError(
          `forward: rows of ids must have equal length (row 0 has ${n}, row ${b} has ${r.length}); ` +
            "left-pad them and pass an attentionMask",
        );
      }
      for (let t = 0; t < n; t++) flat[b * n + t] = BigInt(r[t]);
    });
    return tensor(flat, { shape: [rows.length, n], device });
  }
  const t = ids as Tensor;
  if (t.ndim !== 2) throw new RangeError(`forward: ids must be [batch, seq], got [${t.shape}]`);
  if (t.dtype === "int64" && t.device === device) return t.clone();
  return t.to({ dtype: "int64", device });
}

/** A loaded Llama-family causal language model. */
export class LlamaModel {
  /** The parsed config.json the model was built from. */
  readonly config: ModelConfig;
  /** Element type the weights are held and computed in. */
  readonly dtype: DType;
  /** Where the weights live: "cpu" or "cuda:N". */
  readonly device: string;
  /** The embedding, per-layer, final-norm and lm_head tensors the forward pass uses. */
  readonly weights: ModelWeights;
  /** The folder it was loaded from, if any. */
  readonly source: string | null;
  /** The checkpoint's tokenizer, when it has a tokenizer.json. */
  tokenizer: TextTokenizer | null = null;
  readonly #invFreq: Tensor;

  /** Wraps loaded `weights` for `config`; the model owns them from now on. */
  constructor(
    config: ModelConfig,
    weights: ModelWeights,
    opts: { dtype: DType; device: string; source?: string },
  ) {
    this.config = config;
    this.weights = weights;
    this.dtype = opts.dtype;
    this.device = opts.device;
    this.source = opts.source ?? null;
    this.#invFreq = invFreqTensor(config, opts.device);
  }

  /** A cache sized for `batch` rows of up to `capacity` positions. */
  createCache(batch: number, capacity: number): KVCache {
    return new KVCache(this.config, { batch, capacity, dtype: this.dtype, device: this.device });
  }

  /** Logits `[batch, seq, vocab]` (float32) for `ids`, using and filling `opts.cache`. */
  forward(ids: TokenIds, opts: ForwardOptions = {}): Tensor {
    return this.#run(ids, opts, null);
  }

  /** forward() that also returns the hidden states, in transformers' layout. */
  forwardDetailed(ids: TokenIds, opts: ForwardOptions = {}): ForwardOutput {
    const hidden: Tensor[] = [];
    const logits = this.#run(ids, opts, hidden);
    return { logits, hiddenStates: hidden };
  }

  #run(ids: TokenIds, opts: ForwardOptions, hiddenOut: Tensor[] | null): Tensor {
    const c = this.config;
    const res = tidy(() => {
      const hidden: Tensor[] | null = hiddenOut ? [] : null;
      const idsT = idsTensor(ids, this.device);
      const [batch, seq] = idsT.shape;
      const cache = opts.cache;
      const past = cache?.length ?? 0;
      if (cache) {
        if (cache.batch !== batch) {
          throw new RangeError(
            `forward: ids have ${batch} rows but the cache holds ${cache.batch}`,
          );
        }
        cache.ensureRoom(seq);
      }
      const padding = opts.attentionMask ? toRows(opts.attentionMask, "attentionMask") : null;
      if (padding) {
        if (padding.length !== batch || padding.some((r) => r.length !== past + seq)) {
          throw new RangeError(
            `forward: attentionMask must be [${batch}, ${past + seq}] (cached + new slots)`,
          );
        }
      }
      let positions: number[][];
      if (opts.positionIds) {
        positions = toRows(opts.positionIds, "positionIds");
      } else if (padding) {
        positions = positionIdsFromPadding(padding, seq);
      } else {
        positions = Array.from(
          { length: batch },
          () => Array.from({ length: seq }, (_, t) => past + t),
        );
      }
      const posT = idsTensor(positions, this.device);
      const [cos, sin] = ropeTables(this.#invFreq, posT, this.dtype);
      const mask = attentionMask(batch, seq, past, padding, c.slidingWindow, this.device);
      const handles = !hidden && opts.fused !== false ? fusedWeightHandles(this.weights) : null;
      if (handles) {
        const logits = fusedForward(
          handles,
          c,
          idsT,
          cos,
          sin,
          mask,
          cache ?? null,
          past,
          opts.logits === "last",
        );
        if (cache) cache.length = past + seq;
        return [logits];
      }

      let x = lookupEmbedding(this.weights.embedTokens, idsT, this.dtype);
      if (hidden) hidden.push(x);
      for (let l = 0; l < c.numLayers; l++) {
        x = tidy(() =>
          this.#layer(this.weights.layers[l], l, x, cos, sin, mask, cache ?? null, past)
        );
        if (hidden && l < c.numLayers - 1) hidden.push(x);
      }
      if (cache) cache.length = past + seq;
      let last = x;
      if (opts.logits === "last" && seq > 1) last = x.narrow(1, seq - 1, 1);
      const normed = rmsNorm(last, this.weights.norm, c.rmsNormEps);
      if (hidden) hidden.push(normed);
      const logits = this.weights.lmHead.forward(normed);
      const out = logits.dtype === "float32" ? logits : logits.to("float32");
      return hidden ? [out, ...hidden] : [out];
    });
    if (hiddenOut) hiddenOut.push(...res.slice(1));
    return res[0];
  }

  #layer(
    w: LayerWeights,
    l: number,
    x: Tensor,
    cos: Tensor,
    sin: Tensor,
    mask: Tensor | null,
    cache: KVCache | null,
    past: number,
  ): Tensor {
    const c = this.config;
    const [batch, seq] = x.shape;
    const nh = c.numHeads, nkv = c.numKvHeads, hd = c.headDim, g = nh / nkv;
    const h = rmsNorm(x, w.inputNorm, c.rmsNormEps);
    const q0 = w.qProj.forward(h).view([batch, seq, nh, hd]).transpose(1, 2);
    const k0 = w.kProj.forward(h).view([batch, seq, nkv, hd]).transpose(1, 2);
    const v0 = w.vProj.forward(h).view([batch, seq, nkv, hd]).transpose(1, 2);
    const q = applyRope(q0, cos, sin); // contiguous [B, nh, T, hd]
    const k = applyRope(k0, cos, sin);
    let keys = k, values = v0;
    const total = past + seq;
    if (cache) {
      cache.keys[l].narrow(2, past, seq).copy_(k);
      cache.values[l].narrow(2, past, seq).copy_(v0);
      keys = cache.keys[l].narrow(2, 0, total);
      values = cache.values[l].narrow(2, 0, total);
    }
    // Grouped-query attention without repeating keys: query heads h = kv·g + r
    // share kv head `kv`, so q viewed as [B, nkv, g·T, hd] lines up with keys.
    const qg = q.reshape([batch, nkv, g * seq, hd]);
    let scores = qg.matmul(keys.transpose(-1, -2)).div(Math.sqrt(hd));
    if (scores.dtype !== "float32") scores = scores.to("float32");
    if (mask) scores = scores.view([batch, nkv, g, seq, total]).add(mask);
    let probs = scores.softmax(-1);
    if (probs.dtype !== this.dtype) probs = probs.to(this.dtype);
    const attn = probs.view([batch, nkv, g * seq, total]).matmul(values) // [B, nkv, g·T, hd]
      .view([batch, nh, seq, hd]).transpose(1, 2).reshape([batch, seq, nh * hd]);
    const x1 = x.add(w.oProj.forward(attn));
    const h2 = rmsNorm(x1, w.postAttentionNorm, c.rmsNormEps);
    const act = w.gateProj.forward(h2).silu().mul(w.upProj.forward(h2));
    return x1.add(w.downProj.forward(act));
  }

  /** Generates continuations of `prompts` (token id rows or strings, when a tokenizer is loaded). */
  generate(
    prompts: readonly (readonly number[])[] | readonly string[] | string,
    opts: GenerateOptions = {},
  ): GenerateResult {
    return generate(this, prompts, opts);
  }

  /** Number of parameters (tied embeddings counted once). */
  parameterCount(): number {
    const w = this.weights;
    let n = tableParams(w.embedTokens) + w.norm.numel;
    if (!this.config.tieWordEmbeddings) n += w.lmHead.parameterCount();
    for (const l of w.layers) {
      n += l.inputNorm.numel + l.postAttentionNorm.numel;
      for (const p of layerProjections(l)) {
        n += p.parameterCount();
      }
    }
    return n;
  }

  /** Bytes of the parameters in memory. */
  weightBytes(): number {
    const w = this.weights;
    const b = (t: Tensor) => t.numel * ITEM_SIZE[t.dtype];
    let n = tableBytes(w.embedTokens) + b(w.norm);
    if (!this.config.tieWordEmbeddings) n += w.lmHead.weightBytes();
    for (const l of w.layers) {
      n += b(l.inputNorm) + b(l.postAttentionNorm);
      for (const p of layerProjections(l)) {
        n += p.weightBytes();
      }
    }
    return n;
  }

  /** Frees every weight. */
  dispose(): void {
    const w = this.weights;
    w.embedTokens.dispose();
    w.norm.dispose();
    // A tied head reads the embedding table (a packed one is the same object): freed above.
    if (!this.config.tieWordEmbeddings) w.lmHead.dispose();
    for (const l of w.layers) {
      l.inputNorm.dispose();
      l.postAttentionNorm.dispose();
      for (const p of layerProjections(l)) {
        p.dispose();
      }
    }
    this.#invFreq.dispose();
  }

  /** Frees the weights at the end of a `using` block; same as dispose(). */
  [Symbol.dispose](): void {
    this.dispose();
  }
}
