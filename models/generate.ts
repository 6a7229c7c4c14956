// Batched generation: left-pad the prompts, prefill them in one pass into a
// preallocated KV cache, then decode one token per step.
import { cat, type Tensor, tidy } from "../ffi/mod.ts";
import { LabError } from "../errors.ts";
import type { CausalLM } from "./causal_lm.ts";
import { checkPositions, checkTokenIds } from "./limits.ts";
import {
  isGreedy,
  pickTokens,
  type SamplingOptions,
  seededRandom,
  validateSampling,
} from "./sampling.ts";

/** Options of generate(). */
export interface GenerateOptions extends SamplingOptions {
  /** Tokens to add per row at most (default 32). */
  maxNewTokens?: number;
  /** Seed of the sampler (ignored when greedy). */
  seed?: number;
  /** Ids that end a row (default: the config's eos ids and the tokenizer's eos). */
  stopTokens?: readonly number[];
  /** Fills prompts on the left and rows that have stopped (default: config pad, else eos, else 0). */
  padTokenId?: number;
  /** Reuse keys/values across steps (default true); false recomputes the whole sequence each step. */
  useCache?: boolean;
  /** Keep the raw logits of each step in the result (`logits`, float32 `[batch, steps, vocab]`). */
  outputLogits?: boolean;
  /** Add the tokenizer's special tokens (e.g. BOS) when prompts are strings (default true). */
  addSpecialTokens?: boolean;
  /** Ends a row when it returns true for the row's new tokens so far (e.g. a stop string appeared). */
  stopWhen?: (tokens: readonly number[], row: number) => boolean;
  /** Called after each step with the new token of every row (pad for stopped rows). */
  onToken?: (tokens: readonly number[], step: number) => void;
}

/** What generate() returns. */
export interface GenerateResult {
  /** Per row: left-padded prompt followed by the new tokens (pad after a stop), as transformers returns. */
  sequences: number[][];
  /** Per row: the new tokens up to and including a stop token. */
  tokens: number[][];
  /** Per row: the decoded new tokens, when the model has a tokenizer. */
  text?: string[];
  /** Per row: whether it ended on a stop token. */
  stopped: boolean[];
  /** float32 `[batch, steps, vocab]` when `outputLogits`; the caller disposes it. */
  logits?: Tensor;
  /** Length of the padded prompt. */
  promptLength: number;
  /** Number of decode steps run (new tokens in the longest row). */
  steps: number;
  /** Milliseconds of the prefill (prompt forward and the first token). */
  prefillMs: number;
  /** Milliseconds of the remaining decode steps. */
  decodeMs: number;
}

/** Rows of prompt ids from strings (through the tokenizer) or ids. */
function promptRows(
  model: CausalLM,
  prompts: readonly (readonly number[])[] | readonly string[] | string,
  addSpecial: boolean,
): number[][] {
  const list = typeof prompts === "string" ? [prompts] : prompts;
  if (list.length === 0) throw new RangeError("generate: no prompts given");
  return list.map((p, i) => {
    if (typeof p === "string") {
      if (!model.tokenizer) {
        throw new Error(
          "generate: prompts are strings but the model has no tokenizer (tokenizer.json); " +
            "pass token ids instead",
        );
      }
      const ids = model.tokenizer.encode(p, { addSpecialTokens: addSpecial });
      if (ids.length === 0) throw new RangeError(`generate: prompt ${i} encodes to no tokens`);
      checkTokenIds(model, ids, `generate: prompt ${i}`);
      return ids;
    }
    if (p.length === 0) throw new RangeError(`generate: prompt ${i} is empty`);
    checkTokenIds(model, p, `generate: prompt ${i}`, false);
    return [...p];
  });
}

/** Generates continuations of `prompts` with `model`. */
export function generate(
  model: CausalLM,
  prompts: readonly (readonly number[])[] | readonly string[] | string,
  opts: GenerateOptions = {},
): GenerateResult {
  validateSampling(opts);
  const maxNew = opts.maxNewTokens ?? 32;
  if (!Number.isInteger(maxNew) || maxNew < 1) {
    throw new RangeError(`generate: maxNewTokens must be a positive integer, got ${maxNew}`);
  }
  const c = model.config;
  const rows = promptRows(model, prompts, opts.addSpecialTokens ?? true);
  const batch = rows.length;
  const promptLength = Math.max(...rows.map((r) => r.length));
  checkPositions(
    model,
    promptLength + maxNew,
    `generate: a prompt of ${promptLength} tokens plus ${maxNew} new ones`,
    promptLength >= c.maxPositionEmbeddings
      ? `shorten the prompt to fewer than ${c.maxPositionEmbeddings} tokens`
      : `ask for at most ${
        c.maxPositionEmbeddings - promptLength
      } new tokens, or shorten the prompt`,
  );
  const stop = new Set(
    opts.stopTokens ?? [
      ...c.eosTokenIds,
      ...(model.tokenizer?.eosTokenId != null ? [model.tokenizer.eosTokenId] : []),
    ],
  );
  const pad = opts.padTokenId ?? c.padTokenId ?? c.eosTokenIds[0] ?? 0;
  const padded = rows.map((r) => [...new Array(promptLength - r.length).fill(pad), ...r]);
  const mask = rows.map((r) => [
    ...new Array(promptLength - r.length).fill(0),
    ...new Array(r.length).fill(1),
  ]);
  const hasPadding = rows.some((r) => r.length < promptLength);
  const random = seededRandom(opts.seed ?? Math.floor(Math.random() * 2 ** 32));
  const sampling: SamplingOptions = isGreedy(opts) ? {} : opts;
  const useCache = opts.useCache ?? true;
  const cache = useCache ? model.createCache(batch, promptLength + maxNew) : null;

  const sequences = padded.map((r) => [...r]);
  const tokens: number[][] = rows.map(() => []);
  const stopped = rows.map(() => false);
  const stepLogits: Tensor[] = [];
  let prefillMs = 0;
  const t0 = performance.now();
  let steps = 0;
  try {
    let logits = model.forward(padded, {
      cache: cache ?? undefined,
      attentionMask: hasPadding ? mask : undefined,
      logits: "last",
    });
    for (let step = 0; step < maxNew; step++) {
      let next: number[];
      try {
        assertFiniteLogits(model, logits, step);
        next = pickTokens(logits, sampling, random);
      } finally {
        if (opts.outputLogits) stepLogits.push(logits);
        else logits.dispose();
      }
      for (let b = 0; b < batch; b++) {
        if (stopped[b]) next[b] = pad;
        else {
          tokens[b].push(next[b]);
          if (stop.has(next[b]) || opts.stopWhen?.(tokens[b], b)) stopped[b] = true;
        }
        sequences[b].push(next[b]);
        mask[b].push(1);
      }
      steps++;
      if (step === 0) prefillMs = performance.now() - t0;
      opts.onToken?.(next, step);
      if (step === maxNew - 1 || stopped.every((s) => s)) break;
      const input = cache ? next.map((t) => [t]) : sequences;
      logits = model.forward(input, {
        cache: cache ?? undefined,
        attentionMask: hasPadding ? mask : undefined,
        logits: "last",
      });
    }
  } catch (e) {
    for (const t of stepLogits) t.dispose();
    throw e;
  } finally {
    cache?.dispose();
  }
  const decodeMs = performance.now() - t0 - prefillMs;
  let logitsOut: Tensor | undefined;
  if (opts.outputLogits) {
    logitsOut = cat(stepLogits, 1);
    for (const t of stepLogits) t.dispose();
  }
  const text = model.tokenizer ? tokens.map((t) => model.tokenizer!.decode(t)) : undefined;
  return {
    sequences,
    tokens,
    text,
    stopped,
    logits: logitsOut,
    promptLength,
    steps,
    prefillMs,
    decodeMs,
  };
}

/**
 * Refuses NaN or Inf logits: argmax over them picks an arbitrary token (often a stop token, so
 * the text comes out empty) and sampling turns them into garbage, both without an error.
 */
function assertFiniteLogits(model: CausalLM, logits: Tensor, step: number): void {
  const ok = tidy(() => logits.isfinite().all().item() !== 0);
  if (ok) return;
  throw new LabError(
    `generate: the model${model.source ? ` at ${model.source}` : ""} produced non-finite ` +
      `logits (NaN or Inf) at step ${step}, so its tokens would be meaningless. Its weights ` +
      `or its arithmetic overflow (try float32 if it runs in float16).`,
  );
}
