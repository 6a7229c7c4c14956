// Task-set evaluation: multiple choice by log-likelihood, exact match on short generations.
import { crossEntropy, noGrad, tensor, tidy } from "../../ffi/mod.ts";
import { LabError } from "../../errors.ts";
import type { LlamaModel } from "../llama.ts";
import { checkPositions, checkTokenIds } from "../limits.ts";

/** A multiple-choice item. */
export interface ChoiceItem {
  question: string;
  choices: string[];
  /** Index of the right choice. */
  answer: number;
}

/** A short-answer item. */
export interface AnswerItem {
  prompt: string;
  answer: string;
}

/** Reads a JSONL task file, naming the file and line of a bad record. */
export function readJsonl<T>(path: string, check: (x: unknown) => string | null): T[] {
  let text: string;
  try {
    text = Deno.readTextFileSync(path);
  } catch (e) {
    throw new LabError(`cannot read task file ${path}: ${(e as Error).message}`);
  }
  const out: T[] = [];
  text.split("\n").forEach((line, i) => {
    if (!line.trim()) return;
    let x: unknown;
    try {
      x = JSON.parse(line);
    } catch (e) {
      throw new LabError(`${path}:${i + 1}: not valid JSON (${(e as Error).message})`);
    }
    const problem = check(x);
    if (problem) throw new LabError(`${path}:${i + 1}: ${problem}`);
    out.push(x as T);
  });
  if (out.length === 0) throw new LabError(`${path}: no records`);
  return out;
}

/** Validates a multiple-choice record. */
export function checkChoiceItem(x: unknown): string | null {
  const o = x as Partial<ChoiceItem>;
  if (typeof o?.question !== "string") return 'field "question" must be a string';
  if (
    !Array.isArray(o.choices) || o.choices.length < 2 ||
    o.choices.some((c) => typeof c !== "string")
  ) {
    return 'field "choices" must be an array of at least 2 strings';
  }
  if (!Number.isInteger(o.answer) || o.answer! < 0 || o.answer! >= o.choices.length) {
    return `field "answer" must be an index into choices (0..${o.choices.length - 1})`;
  }
  return null;
}

/** Validates a short-answer record. */
export function checkAnswerItem(x: unknown): string | null {
  const o = x as Partial<AnswerItem>;
  if (typeof o?.prompt !== "string") return 'field "prompt" must be a string';
  if (typeof o.answer !== "string" || !o.answer.trim()) {
    return 'field "answer" must be a non-empty string';
  }
  return null;
}

function encode(model: LlamaModel, text: string, bos: boolean): number[] {
  const tok = model.tokenizer;
  if (!tok) throw new Error("evaluate: task sets need the model's tokenizer.json");
  const ids = tok.encode(text, { addSpecialTokens: false });
  checkTokenIds(model, ids, "evaluate");
  const b = tok.bosTokenId ?? model.config.bosTokenId;
  return bos && b !== null && b !== undefined ? [b, ...ids] : ids;
}

/** Sum of log-probabilities of `continuation` ids after `context` ids. */
export function continuationLogProb(
  model: LlamaModel,
  context: readonly number[],
  continuation: readonly number[],
): number {
  const ids = [...context, ...continuation];
  checkPositions(
    model,
    ids.length,
    `evaluate: a question of ${context.length} tokens with a choice of ${continuation.length}`,
    "shorten the task's questions and choices",
  );
  const lp = noGrad(() =>
    tidy(() => {
      const logits = model.forward([ids]).squeeze(0); // [L, V]
      const rows = logits.narrow(0, context.length - 1, continuation.length);
      const t = tensor(new BigInt64Array(continuation.map(BigInt)));
      return -crossEntropy(rows, t, { reduction: "sum" }).item();
    })
  );
  // Finite logits always give a finite log-probability.
  if (!Number.isFinite(lp)) {
    throw new LabError(
      `evaluate: the model${model.source ? ` at ${model.source}` : ""} produced non-finite ` +
        "logits (NaN or Inf), so no choice can be scored",
    );
  }
  return lp;
}

/** Accuracy figures of a multiple-choice set. */
export interface ChoiceResult {
  items: number;
  /** Right when the choice with the highest total log-likelihood is the answer. */
  accuracy: number;
  /** Right when the highest log-likelihood per byte of the choice is the answer. */
  accuracyNorm: number;
  tokens: number;
}

/** Multiple-choice accuracy by log-likelihood of each choice given the question. */
export function multipleChoice(
  model: LlamaModel,
  items: readonly ChoiceItem[],
  onProgress?: (done: number, total: number) => void,
): ChoiceResult {
  let right = 0, rightNorm = 0, tokens = 0;
  items.forEach((item, i) => {
    const ctx = encode(model, item.question, true);
    const scores = item.choices.map((c) => {
      const cont = encode(model, c, false);
      tokens += ctx.length + cont.length;
      const lp = continuationLogProb(model, ctx, cont);
      return { lp, norm: lp / Math.max(1, new TextEncoder().encode(c).byteLength) };
    });
    const best = (f: (s: { lp: number; norm: number }) => number) =>
      scores.reduce((b, s, k) => (f(s) > f(scores[b]) ? k : b), 0);
    if (best((s) => s.lp) === item.answer) right++;
    if (best((s) => s.norm) === item.answer) rightNorm++;
    onProgress?.(i + 1, items.length);
  });
  return {
    items: items.length,
    accuracy: right / items.length,
    accuracyNorm: rightNorm / items.length,
    tokens,
  };
}

/**
 * Exact match of greedy continuations: right when the generated text, trimmed,
 * starts with the trimmed answer and does not go on with a letter or digit.
 */
export function exactMatch(
  model: LlamaModel,
  items: readonly AnswerItem[],
  opts: {
    /** Tokens to generate beyond the answer's own length (default 4). */
    extraTokens?: number;
    /** A fixed generation length instead (overrides extraTokens). */
    maxNewTokens?: number;
    onProgress?: (done: number, total: number) => void;
  } = {},
): { items: number; exactMatch: number; tokens: number } {
  let right = 0, tokens = 0;
  items.forEach((item, i) => {
    const prompt = encode(model, item.prompt, true);
    const want = item.answer.trim();
    const budget = opts.maxNewTokens ??
      encode(model, item.answer, false).length + (opts.extraTokens ?? 4);
    const r = model.generate([prompt], { maxNewTokens: budget });
    const text = model.tokenizer!.decode(r.tokens[0], { skipSpecialTokens: true }).trim();
    tokens += prompt.length + r.tokens[0].length;
    if (text.startsWith(want) && !/^[\p{L}\p{N}]/u.test(text.slice(want.length))) right++;
    opts.onProgress?.(i + 1, items.length);
  });
  return { items: items.length, exactMatch: right / items.length, tokens };
}
