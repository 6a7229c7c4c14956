// Runs one lm-eval task on a model: builds each document's requests, scores them, aggregates the metrics.
import { LabError } from "../../../errors.ts";
import type { LlamaModel } from "../../llama.ts";
import { type Doc, loadSplit } from "./documents.ts";
import { FewshotSampler, fewshotSplit } from "./fewshot.ts";
import {
  encodePair,
  generateUntil,
  rollingLogLikelihood,
  scoreContinuation,
} from "./loglikelihood.ts";
import {
  type Aggregate,
  aggregate,
  argmax,
  charLength,
  exactMatchScore,
  type Item,
  wordCount,
} from "./metrics.ts";
import type { MetricName, TaskConfig } from "./task_config.ts";
import { type DocRef, docToChoice, docToTarget, docToText } from "./templates.ts";

/** What scoring one document gives: its metric items and what the model did. */
export interface DocResult {
  index: number;
  items: Partial<Record<MetricName, Item>>;
  /** Per choice (multiple_choice), or the one continuation's log-likelihood. */
  logprobs: number[];
  /** generate_until: the generated text, cut at `until`. */
  generated?: string;
  tokens: number;
}

/** A task's outcome. */
export interface TaskResult {
  task: TaskConfig;
  metrics: Partial<Record<MetricName, Aggregate>>;
  docs: DocResult[];
  /** Documents in the evaluated split, and how many were scored (less with `limit`). */
  original: number;
  effective: number;
  tokens: number;
}

/** Options of runTask(). */
export interface RunTaskOptions {
  /** Score only the first `limit` documents (lm-eval's --limit). */
  limit?: number;
  /** Seed of the few-shot sampler (default lm-eval's 1234). */
  fewshotSeed?: number;
  /** Overrides the task's num_fewshot. */
  numFewshot?: number;
  onProgress?: (done: number, total: number) => void;
}

/** Evaluates `task` on `model`. */
export async function runTask(
  model: LlamaModel,
  task: TaskConfig,
  opts: RunTaskOptions = {},
): Promise<TaskResult> {
  if (opts.numFewshot !== undefined) task = { ...task, num_fewshot: opts.numFewshot };
  const docs = await loadSplit(task, task.evalSplit);
  const fsSplit = fewshotSplit(task);
  const fsDocs = task.num_fewshot > 0
    ? (fsSplit === task.evalSplit ? docs : await loadSplit(task, fsSplit))
    : [];
  const sampler = new FewshotSampler(task, fsDocs, fsSplit, opts.fewshotSeed);
  const n = Math.min(docs.length, opts.limit ?? Infinity);
  const results: DocResult[] = [];
  for (let i = 0; i < n; i++) {
    const ref: DocRef = { task, index: i, split: task.evalSplit };
    results.push(scoreDoc(model, docs[i], ref, sampler.context(i)));
    opts.onProgress?.(i + 1, n);
  }
  const metrics: TaskResult["metrics"] = {};
  for (const { metric } of task.metrics) {
    metrics[metric] = aggregate(metric, results.map((r) => r.items[metric]!));
  }
  const tokens = results.reduce((a, r) => a + r.tokens, 0);
  return { task, metrics, docs: results, original: docs.length, effective: n, tokens };
}

/** Scores one document by its task's output type. */
export function scoreDoc(model: LlamaModel, doc: Doc, ref: DocRef, prefix: string): DocResult {
  const task = ref.task;
  const text = docToText(doc, ref);
  const context = prefix + (typeof text === "number" ? docToChoice(doc, ref)[text] : text);
  switch (task.output_type) {
    case "multiple_choice":
      return scoreChoices(model, doc, ref, context);
    case "loglikelihood": {
      const target = targetString(doc, ref);
      const pair = encodePair(model, context, task.target_delimiter + target);
      const s = scoreContinuation(model, pair.context, pair.continuation);
      const items = { perplexity: s.logprob, acc: s.isGreedy ? 1 : 0 };
      return { index: ref.index, items, logprobs: [s.logprob], tokens: s.tokens };
    }
    case "loglikelihood_rolling": {
      const target = targetString(doc, ref);
      const r = rollingLogLikelihood(model, target);
      const bytes = new TextEncoder().encode(target).byteLength;
      const items: DocResult["items"] = {
        word_perplexity: [r.logprob, wordCount(target)],
        byte_perplexity: [r.logprob, bytes],
        bits_per_byte: [r.logprob, bytes],
      };
      return { index: ref.index, items, logprobs: [r.logprob], tokens: r.tokens };
    }
    case "generate_until": {
      const maxGen = task.generation_kwargs?.max_gen_toks ?? 256;
      const g = generateUntil(model, context, task.until, maxGen);
      const target = docToTarget(doc, ref);
      const choices = task.doc_to_choice !== undefined ? docToChoice(doc, ref) : null;
      const golds = (Array.isArray(target) ? target : [target]).map((t) =>
        typeof t === "number" && choices ? choices[t] : String(t)
      );
      const opts = task.metrics.find((m) => m.metric === "exact_match") ?? {};
      const em = golds.some((gold) => exactMatchScore(g.text, gold, opts) === 1) ? 1 : 0;
      return {
        index: ref.index,
        items: { exact_match: em },
        logprobs: [],
        generated: g.text,
        tokens: g.tokens,
      };
    }
  }
}

/** acc: the choice of highest log-likelihood; acc_norm: of highest log-likelihood per character. */
function scoreChoices(model: LlamaModel, doc: Doc, ref: DocRef, context: string): DocResult {
  const choices = docToChoice(doc, ref);
  const gold = goldIndex(doc, ref, choices);
  let tokens = 0;
  const lls = choices.map((c) => {
    const pair = encodePair(model, context, ref.task.target_delimiter + c);
    const s = scoreContinuation(model, pair.context, pair.continuation);
    tokens += s.tokens;
    return s.logprob;
  });
  return { index: ref.index, items: choiceItems(lls, choices, gold), logprobs: lls, tokens };
}

/** lm-eval's acc and acc_norm of one document: acc_norm divides by the choice's characters. */
export function choiceItems(
  lls: readonly number[],
  choices: readonly string[],
  gold: number,
): { acc: number; acc_norm: number } {
  const norm = lls.map((ll, k) => ll / charLength(choices[k]));
  return { acc: argmax(lls) === gold ? 1 : 0, acc_norm: argmax(norm) === gold ? 1 : 0 };
}

function goldIndex(doc: Doc, ref: DocRef, choices: string[]): number {
  const t = docToTarget(doc, ref);
  const g = typeof t === "number" ? t : Array.isArray(t) ? t[0] : choices.indexOf(t);
  if (typeof g !== "number" || !Number.isInteger(g) || g < 0 || g >= choices.length) {
    throw new LabError(
      `lm-eval task ${ref.task.file}: key 'doc_to_target', document ${ref.index} of split ` +
        `${ref.split}: the target ${JSON.stringify(t)} is neither an index into the ` +
        `${choices.length} choices nor one of them`,
    );
  }
  return g;
}

function targetString(doc: Doc, ref: DocRef): string {
  const t = docToTarget(doc, ref);
  return Array.isArray(t) ? String(t[0]) : String(t);
}
