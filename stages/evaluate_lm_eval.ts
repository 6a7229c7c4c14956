// The evaluate stage's lm-evaluation-harness path: task YAML files in, evals rows and results.json out.
import { join } from "node:path";
import type { InputInfo, StageContext } from "../engine/mod.ts";
import type { LlamaModel } from "../models/llama.ts";
import {
  DEFAULT_FEWSHOT_SEED,
  readTaskConfig,
  resultsJson,
  runTask,
  taskFiles,
  type TaskResult,
} from "../models/eval/lm_eval/mod.ts";
import { fileHash, modelLabel, modelSource } from "./model_input.ts";

/** The evaluate params this path reads. */
export interface LmEvalParams {
  tasks?: string | string[];
  limit?: number;
  numFewshot?: number;
  fewshotSeed?: number;
}

/** Cache-key part of the tasks: every task YAML's hash and its data files' hashes. */
export async function lmEvalKeyExtra(p: LmEvalParams, cwd: string): Promise<unknown> {
  if (!p.tasks) return null;
  let files: string[];
  try {
    files = taskFiles(p.tasks, cwd);
  } catch {
    return { tasks: "unresolved" }; // The run reports what is wrong.
  }
  const out: Record<string, unknown> = {};
  for (const f of files) {
    const data: Record<string, string> = {};
    try {
      for (const paths of Object.values(readTaskConfig(f).splits)) {
        for (const d of paths) data[d] = await fileHash(d);
      }
    } catch {
      // A bad task fails the run with its own message; its YAML hash still keys it.
    }
    out[f] = { yaml: await fileHash(f), data };
  }
  return { tasks: out };
}

/** Runs every task on `model`, records evals rows, and writes results.json (lm-eval's shape). */
export async function runLmEvalTasks(
  ctx: StageContext<LmEvalParams & { dataset: string }, { model: InputInfo }>,
  model: LlamaModel,
): Promise<{ resultsJson: string; tasks: string[] }> {
  const p = ctx.params;
  const tasks = taskFiles(p.tasks!, ctx.cwd).map((f) => readTaskConfig(f));
  const fewshotSeed = p.fewshotSeed ?? DEFAULT_FEWSHOT_SEED;
  const results: TaskResult[] = [];
  for (const task of tasks) {
    const r = await runTask(model, task, {
      limit: p.limit,
      fewshotSeed,
      numFewshot: p.numFewshot,
      onProgress: (done, total) => ctx.progress(done, total, task.task),
    });
    results.push(r);
    for (const [metric, agg] of Object.entries(r.metrics)) {
      const engine = "libtorch"; // lm-eval tasks run on the lab's own forward
      ctx.record("evals", {
        dataset: task.task,
        metric,
        value: agg.value,
        tokens: r.tokens,
        engine,
      });
      if (typeof agg.stderr === "number") {
        ctx.record("evals", {
          dataset: task.task,
          metric: `${metric}_stderr`,
          value: agg.stderr,
          tokens: r.tokens,
          engine,
        });
      }
    }
    writeSamples(ctx.outDir, r);
  }
  const json = resultsJson(results, {
    model: modelLabel(ctx.inputs.model),
    modelArgs: `pretrained=${modelSource(ctx.inputs.model).dir}`,
    fewshotSeed,
    limit: p.limit ?? null,
    date: Date.now() / 1000,
  });
  Deno.writeTextFileSync(join(ctx.outDir, "results.json"), JSON.stringify(json, null, 2) + "\n");
  return { resultsJson: "results.json", tasks: tasks.map((t) => t.task) };
}

/** Per-document outcomes, as lm-eval's --log_samples keeps them: samples_<task>.jsonl. */
function writeSamples(dir: string, r: TaskResult): void {
  const lines = r.docs.map((d) =>
    JSON.stringify({
      doc_id: d.index,
      logprobs: d.logprobs,
      ...(d.generated !== undefined ? { generated: d.generated } : {}),
      ...d.items,
    })
  );
  Deno.writeTextFileSync(join(dir, `samples_${r.task.task}.jsonl`), lines.join("\n") + "\n");
}
