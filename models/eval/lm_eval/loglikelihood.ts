// lm-eval's request kinds on the lab's engine: log-likelihood of a continuation, rolling windows, generation.
import { crossEntropy, noGrad, tensor, tidy } from "../../../ffi/mod.ts";
import { LabError } from "../../../errors.ts";
import type { LlamaModel } from "../../llama.ts";
import { checkPositions, checkTokenIds } from "../../limits.ts";

/** A scored continuation: its summed log-probability, and whether greedy decoding gives it. */
export interface Scored {
  logprob: number;
  isGreedy: boolean;
  /** Tokens forwarded. */
  tokens: number;
}

function tokenizer(model: LlamaModel) {
  const tok = model.tokenizer;
  if (!tok) throw new LabError("lm-eval tasks need the model's tokenizer.json");
  return tok;
}

/** Text to ids without special tokens. */
export function encodeText(model: LlamaModel, text: string): number[] {
  const ids = tokenizer(model).encode(text, { addSpecialTokens: false });
  checkTokenIds(model, ids, "lm-eval task");
  return ids;
}

/** The token every scored text starts after: BOS, else EOS (lm-eval's prefix token). */
export function prefixToken(model: LlamaModel): number {
  const tok = tokenizer(model);
  const id = tok.bosTokenId ?? model.config.bosTokenId ?? tok.eosTokenId ??
    model.config.eosTokenIds[0];
  if (id === null || id === undefined) {
    throw new LabError("lm-eval tasks need a BOS or EOS token to start scoring from");
  }
  return id;
}

/**
 * Context and continuation ids as lm-eval's `_encode_pair`: trailing spaces of the context move
 * to the continuation, the pair is encoded whole and split at the context's length, and the
 * context starts with the prefix token (as the lab's own scoring does).
 */
export function encodePair(
  model: LlamaModel,
  context: string,
  continuation: string,
): { context: number[]; continuation: number[] } {
  const spaces = context.length - context.trimEnd().length;
  if (spaces > 0) {
    continuation = context.slice(-spaces) + continuation;
    context = context.slice(0, -spaces);
  }
  const whole = encodeText(model, context + continuation);
  const ctx = encodeText(model, context);
  return { context: [prefixToken(model), ...ctx], continuation: whole.slice(ctx.length) };
}

/** Log-probability of `continuation` ids after `context` ids (one forward over both, less the last). */
export function scoreContinuation(
  model: LlamaModel,
  context: readonly number[],
  continuation: readonly number[],
): Scored {
  if (continuation.length === 0) return { logprob: 0, isGreedy: true, tokens: 0 };
  const ids = [...context, ...continuation].slice(0, -1);
  checkPositions(
    model,
    ids.length,
    `lm-eval: a context of ${context.length} tokens with a continuation of ${continuation.length}`,
    "shorten the task's prompts, or use fewer few-shot examples",
  );
  const { logprob, greedy } = noGrad(() =>
    tidy(() => {
      const logits = model.forward([ids]).squeeze(0); // [L, V]
      const rows = logits.narrow(0, context.length - 1, continuation.length);
      const t = tensor(new BigInt64Array(continuation.map(BigInt)));
      const lp = -crossEntropy(rows, t, { reduction: "sum" }).item();
      const best = Array.from(rows.argmax(1).toArray() as number[], Number);
      return { logprob: lp, greedy: best.every((b, i) => b === continuation[i]) };
    })
  );
  if (!Number.isFinite(logprob)) {
    throw new LabError(
      `lm-eval: the model${model.source ? ` at ${model.source}` : ""} produced non-finite ` +
        "logits (NaN or Inf), so no log-likelihood can be computed",
    );
  }
  return { logprob, isGreedy: greedy, tokens: ids.length };
}

/**
 * lm-eval's `get_rolling_token_windows` with context_len 1, made disjoint: each window predicts
 * up to `maxLen` new tokens; the first starts after the prefix token, later ones see as
 * context what of the `maxLen` inputs before their last prediction is not itself predicted.
 */
export function rollingWindows(
  tokens: readonly number[],
  prefix: number,
  maxLen: number,
): { context: number[]; continuation: number[] }[] {
  const out: { context: number[]; continuation: number[] }[] = [];
  if (tokens.length === 0) return out;
  const first = Math.min(maxLen, tokens.length);
  out.push({ context: [prefix], continuation: tokens.slice(0, first) });
  let predicted = first;
  while (predicted < tokens.length) {
    const n = Math.min(tokens.length - predicted, maxLen);
    const end = predicted + n;
    // The window's inputs are tokens[end - maxLen - 1, end - 1); the predictions are its last n.
    const input = tokens.slice(Math.max(0, end - maxLen - 1), end - 1);
    out.push({
      context: input.slice(0, input.length - (n - 1)),
      continuation: tokens.slice(end - n, end),
    });
    predicted += n;
  }
  return out;
}

/** Summed log-likelihood of a whole text by rolling windows of the model's length (`loglikelihood_rolling`). */
export function rollingLogLikelihood(
  model: LlamaModel,
  text: string,
  maxLen = model.config.maxPositionEmbeddings,
): { logprob: number; tokens: number } {
  let logprob = 0, tokens = 0;
  for (const w of rollingWindows(encodeText(model, text), prefixToken(model), maxLen)) {
    const s = scoreContinuation(model, w.context, w.continuation);
    logprob += s.logprob;
    tokens += w.continuation.length;
  }
  return { logprob, tokens };
}

/** Greedy generation that stops at the first of `until` (cut off there, as lm-eval does). */
export function generateUntil(
  model: LlamaModel,
  context: string,
  until: readonly string[],
  maxGenToks: number,
): { text: string; tokens: number } {
  const prompt = [prefixToken(model), ...encodeText(model, context)];
  const room = model.config.maxPositionEmbeddings - prompt.length;
  if (room < 1) {
    throw new LabError(`lm-eval: a prompt of ${prompt.length} tokens leaves no room to generate`);
  }
  const stops = until.filter((u) => u.length > 0);
  const tok = tokenizer(model);
  const r = model.generate([prompt], {
    maxNewTokens: Math.min(maxGenToks, room),
    stopWhen: (ids) => {
      const text = tok.decode(ids, { skipSpecialTokens: true });
      return stops.some((s) => text.includes(s));
    },
  });
  let text = tok.decode(r.tokens[0], { skipSpecialTokens: true });
  for (const s of stops) text = text.split(s)[0];
  return { text, tokens: prompt.length + r.tokens[0].length };
}
