// Sliding-window perplexity over a text, with tokenizer-independent word perplexity and bits per byte.
import { crossEntropy, noGrad, tensor, tidy } from "../../ffi/mod.ts";
import { LabError } from "../../errors.ts";
import type { LlamaModel } from "../llama.ts";
import { checkPositions, checkTokenIds } from "../limits.ts";

/** Options of perplexity(). */
export interface PerplexityOptions {
  /** Tokens per window (default: min(512, the model's max positions)). */
  contextLength?: number;
  /** Window step; each window scores only the tokens past the previous window (default contextLength / 2). */
  stride?: number;
  /** Score at most this many tokens (default: all). */
  maxTokens?: number;
  /** Called after each window with tokens scored so far and the total. */
  onProgress?: (done: number, total: number) => void;
}

/** Perplexity figures of a text. */
export interface PerplexityResult {
  /** Tokens whose next-token probability was scored. */
  tokens: number;
  /** Sum of −ln p over scored tokens (nats). */
  nll: number;
  /** exp(nll / tokens). */
  ppl: number;
  /** Whitespace-separated words and UTF-8 bytes of the scored text. */
  words: number;
  bytes: number;
  /** exp(nll / words): comparable across tokenizers. */
  wordPpl: number;
  /** nll / (bytes · ln 2): comparable across tokenizers. */
  bitsPerByte: number;
}

/** Text to ids for scoring: BOS first when the tokenizer has one, so every text token is scored. */
export function scoringIds(model: LlamaModel, text: string): number[] {
  const tok = model.tokenizer;
  if (!tok) {
    throw new Error(
      `evaluate: the model at ${model.source ?? "(memory)"} has no tokenizer.json; ` +
        "perplexity over text needs one",
    );
  }
  const ids = tok.encode(text, { addSpecialTokens: false });
  checkTokenIds(model, ids, "scoring text");
  const bos = tok.bosTokenId ?? model.config.bosTokenId;
  return bos !== null && bos !== undefined ? [bos, ...ids] : ids;
}

/**
 * Per-token negative log-likelihoods over `ids` with windows of `contextLength`
 * moved by `stride` (as Hugging Face's perplexity guide): every token but the first
 * is scored exactly once, in the first window that reaches it.
 */
export function slidingNll(
  model: LlamaModel,
  ids: readonly number[],
  opts: PerplexityOptions = {},
  perToken?: (targetIndex: number, logits: Float32Array | null, nll: number) => void,
): { nll: number; tokens: number } {
  const ctx = opts.contextLength ?? Math.min(512, model.config.maxPositionEmbeddings);
  // A window past the model's positions scores tokens the model was never built to see.
  checkPositions(
    model,
    ctx,
    `perplexity with contextLength ${ctx}`,
    `set contextLength to ${model.config.maxPositionEmbeddings} or less`,
  );
  const stride = opts.stride ?? Math.max(1, Math.floor(ctx / 2));
  if (ctx < 2) throw new RangeError(`perplexity: contextLength must be at least 2, got ${ctx}`);
  if (stride < 1 || stride >= ctx) {
    throw new RangeError(
      `perplexity: stride must be in [1, contextLength - 1 = ${ctx - 1}], got ${stride}`,
    );
  }
  const n = Math.min(ids.length, (opts.maxTokens ?? Infinity) + 1);
  if (n < 2) throw new RangeError("perplexity: the text has fewer than 2 tokens");
  let nll = 0;
  let scored = 0;
  for (const { begin, end, firstTarget } of windows(n, ctx, stride)) {
    const window = ids.slice(begin, end);
    noGrad(() =>
      tidy(() => {
        const logits = model.forward([window]); // [1, L, V]
        const from = firstTarget - begin - 1; // logits row predicting firstTarget
        const rows = logits.narrow(1, from, end - firstTarget).squeeze(0); // [k, V]
        const targets = tensor(new BigInt64Array(ids.slice(firstTarget, end).map(BigInt)));
        const losses = crossEntropy(rows, targets, { reduction: "none" }).values();
        const rowData = perToken ? rows.contiguous().data() as Float32Array : null;
        const V = model.config.vocabSize;
        losses.forEach((l, i) => {
          // Finite logits always give a finite loss: a NaN or Inf here is the model's own.
          if (!Number.isFinite(l)) nonFiniteLogits(model, firstTarget + i);
          nll += l;
          perToken?.(firstTarget + i, rowData ? rowData.subarray(i * V, (i + 1) * V) : null, l);
        });
        scored += losses.length;
      })
    );
    opts.onProgress?.(scored, n - 1);
  }
  return { nll, tokens: scored };
}

function nonFiniteLogits(model: LlamaModel, token: number): never {
  throw new LabError(
    `perplexity: the model${model.source ? ` at ${model.source}` : ""} produced non-finite ` +
      `logits (NaN or Inf) predicting token ${token}, so no perplexity can be computed. Its ` +
      `weights or its arithmetic overflow (try float32 if it runs in float16).`,
  );
}

/** One evaluation window: tokens [begin, end), of which targets from firstTarget on are new. */
export interface Window {
  begin: number;
  end: number;
  firstTarget: number;
}

/**
 * The windows over `n` tokens: the first is full; each later one ends `stride` further,
 * so every target but token 0 is new in exactly one window, with at least
 * contextLength − stride tokens of context.
 */
export function* windows(n: number, contextLength: number, stride: number): Generator<Window> {
  let prevEnd = 1;
  while (prevEnd < n) {
    const end = prevEnd === 1 ? Math.min(contextLength, n) : Math.min(prevEnd + stride, n);
    yield { begin: Math.max(0, end - contextLength), end, firstTarget: prevEnd };
    prevEnd = end;
  }
}

/** Perplexity of `text` under `model`. */
export function perplexity(
  model: LlamaModel,
  text: string,
  opts: PerplexityOptions = {},
): PerplexityResult {
  if (text.trim().length === 0) throw new RangeError("perplexity: the text is empty");
  const ids = scoringIds(model, text);
  const { nll, tokens } = slidingNll(model, ids, opts);
  // Word and byte counts cover the scored text; with maxTokens, the decoded prefix.
  const scoredText = tokens + 1 >= ids.length || !model.tokenizer
    ? text
    : model.tokenizer.decode(ids.slice(0, tokens + 1), { skipSpecialTokens: true });
  const words = scoredText.split(/\s+/).filter((w) => w.length > 0).length;
  const bytes = new TextEncoder().encode(scoredText).byteLength;
  return {
    tokens,
    nll,
    ppl: Math.exp(nll / tokens),
    words,
    bytes,
    wordPpl: Math.exp(nll / Math.max(1, words)),
    bitsPerByte: nll / (Math.max(1, bytes) * Math.LN2),
  };
}
