// The `evaluate` stage: perplexity over a text file, or accuracy / exact match on a JSONL task file.
import { z } from "zod";
import { defineStage, LabError } from "../engine/mod.ts";
import { perplexity } from "../models/eval/perplexity.ts";
import {
  type AnswerItem,
  checkAnswerItem,
  checkChoiceItem,
  type ChoiceItem,
  exactMatch,
  multipleChoice,
  readJsonl,
} from "../models/eval/tasks.ts";
import { absPath, fileHash, openModel } from "./model_input.ts";
import { lmEvalKeyExtra, runLmEvalTasks } from "./evaluate_lm_eval.ts";
import { engineOf } from "./llama_cpp.ts";
import { evaluateWithLlamaCpp } from "./llama_cpp_evaluate.ts";

/** The evaluate stage's params. */
export const evaluateParams = z.object({
  /** A .txt file (perplexity) or a .jsonl task file (accuracy / exact_match). */
  dataset: z.string().default("data/eval.txt"),
  /** "auto": perplexity for text, accuracy for {question, choices, answer}, exact_match for {prompt, answer}. */
  metric: z.enum(["auto", "perplexity", "accuracy", "exact_match"]).default("auto"),
  contextLength: z.number().int().min(2).default(256),
  stride: z.number().int().positive().optional(),
  maxTokens: z.number().int().positive().optional(),
  device: z.string().default("cpu"),
  /** lm-evaluation-harness task YAML files (paths or globs); when set, `dataset` and `metric` are unused. */
  tasks: z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]).optional(),
  /** lm-eval tasks: score only the first `limit` documents of each. */
  limit: z.number().int().positive().optional(),
  /** lm-eval tasks: few-shot examples per document, overriding each task's num_fewshot. */
  numFewshot: z.number().int().min(0).optional(),
  /** lm-eval tasks: seed of the few-shot sampler (default lm-eval's 1234). */
  fewshotSeed: z.number().int().min(0).optional(),
}).strict();

function pickMetric(path: string, metric: string): string {
  if (metric !== "auto") return metric;
  if (!path.endsWith(".jsonl")) return "perplexity";
  const first = Deno.readTextFileSync(path).split("\n").find((l) => l.trim()) ?? "{}";
  try {
    return "choices" in JSON.parse(first) ? "accuracy" : "exact_match";
  } catch {
    throw new LabError(`${path}:1: not valid JSON; task files hold one JSON object per line`);
  }
}

/** Evaluates a model: `evaluate(q, { dataset: "data/eval.txt" })`. */
export const evaluate = defineStage({
  kind: "evaluate",
  inputs: ["model"],
  params: evaluateParams,
  // The dataset's content, not its path, changes results.
  keyExtra: async (p, cwd) =>
    p.tasks ? await lmEvalKeyExtra(p, cwd) : { dataset: await fileHash(absPath(p.dataset, cwd)) },
  run: async (ctx) => {
    const p = ctx.params;
    if (p.tasks) {
      using model = openModel(ctx.inputs.model, { device: p.device });
      return await runLmEvalTasks(ctx, model);
    }
    const path = absPath(p.dataset, ctx.cwd);
    let text: string;
    try {
      text = Deno.readTextFileSync(path);
    } catch (e) {
      throw new LabError(`evaluate: cannot read dataset ${path}: ${(e as Error).message}`);
    }
    if (!text.trim()) {
      throw new LabError(
        `evaluate: dataset ${path} is empty: point dataset at a text file (perplexity) or a ` +
          "JSONL task file with at least one record",
      );
    }
    const metric = pickMetric(path, p.metric);
    const progress = (done: number, total: number) => ctx.progress(done, total, metric);
    if (engineOf(ctx.inputs.model) === "llama.cpp") {
      return evaluateWithLlamaCpp(ctx, { ...p, metric }, text, progress);
    }
    using model = openModel(ctx.inputs.model, { device: p.device });
    const row = (m: string, value: number, tokens: number) =>
      ctx.record("evals", { dataset: p.dataset, metric: m, value, tokens, engine: "libtorch" });
    if (metric === "perplexity") {
      const r = perplexity(model, text, {
        contextLength: p.contextLength,
        stride: p.stride,
        maxTokens: p.maxTokens,
        onProgress: progress,
      });
      row("ppl", r.ppl, r.tokens);
      row("word_ppl", r.wordPpl, r.tokens);
      row("bits_per_byte", r.bitsPerByte, r.tokens);
      row("nll", r.nll / r.tokens, r.tokens);
      ctx.metric("ppl", r.ppl);
      ctx.metric("bits_per_byte", r.bitsPerByte, "bits");
    } else if (metric === "accuracy") {
      const items = readJsonl<ChoiceItem>(path, checkChoiceItem);
      const r = multipleChoice(model, items, progress);
      row("accuracy", r.accuracy, r.tokens);
      row("accuracy_norm", r.accuracyNorm, r.tokens);
      ctx.metric("accuracy", r.accuracy);
    } else {
      const items = readJsonl<AnswerItem>(path, checkAnswerItem);
      const r = exactMatch(model, items, { onProgress: progress });
      row("exact_match", r.exactMatch, r.tokens);
      ctx.metric("exact_match", r.exactMatch);
    }
  },
});
