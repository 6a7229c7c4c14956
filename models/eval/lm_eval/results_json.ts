// lm-eval's results.json: what the lab writes per evaluate stage, and a reader for any lm-eval results file.
import { LabError } from "../../../errors.ts";
import { HIGHER_IS_BETTER } from "./metrics.ts";
import type { TaskResult } from "./run_task.ts";
import { taskSchema } from "./task_config.ts";

/** The filter name of every metric: the lab applies no lm-eval filters. */
export const FILTER = "none";

/** What the run config of results.json records about the model and the run. */
export interface RunInfo {
  model: string;
  modelArgs: string;
  fewshotSeed: number;
  limit: number | null;
  date: number;
}

/** The results object in lm-eval's shape (`results`, `configs`, `versions`, `n-shot`, `n-samples`, `config`, …). */
export function resultsJson(tasks: readonly TaskResult[], run: RunInfo): Record<string, unknown> {
  const results: Record<string, Record<string, unknown>> = {};
  const configs: Record<string, unknown> = {};
  const versions: Record<string, number> = {};
  const nShot: Record<string, number> = {};
  const higher: Record<string, Record<string, boolean>> = {};
  const nSamples: Record<string, { original: number; effective: number }> = {};
  for (const r of tasks) {
    const name = r.task.task;
    const row: Record<string, unknown> = { alias: r.task.task_alias ?? name };
    higher[name] = {};
    for (const [metric, agg] of Object.entries(r.metrics)) {
      row[`${metric},${FILTER}`] = agg.value;
      row[`${metric}_stderr,${FILTER}`] = agg.stderr;
      higher[name][metric] = HIGHER_IS_BETTER[metric as keyof typeof HIGHER_IS_BETTER];
    }
    results[name] = row;
    configs[name] = taskConfigJson(r);
    versions[name] = r.task.metadata?.version ?? 0;
    nShot[name] = r.task.num_fewshot;
    nSamples[name] = { original: r.original, effective: r.effective };
  }
  return {
    results,
    group_subtasks: Object.fromEntries(Object.keys(results).map((k) => [k, []])),
    configs,
    versions,
    "n-shot": nShot,
    higher_is_better: higher,
    "n-samples": nSamples,
    config: {
      model: run.model,
      model_args: run.modelArgs,
      batch_size: 1,
      device: "cpu",
      limit: run.limit,
      bootstrap_iters: 0,
      fewshot_seed: run.fewshotSeed,
    },
    date: run.date,
  };
}

/** A task's config as lm-eval prints it: the YAML keys, with the metrics and until resolved. */
function taskConfigJson(r: TaskResult): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(taskSchema.shape)) {
    const v = (r.task as unknown as Record<string, unknown>)[k];
    if (v !== undefined) out[k] = v;
  }
  out.metric_list = r.task.metrics.map((m) => ({
    ...m,
    aggregation: m.aggregation ?? defaultAggregation(m.metric),
    higher_is_better: m.higher_is_better ?? HIGHER_IS_BETTER[m.metric],
  }));
  if (r.task.output_type === "generate_until") {
    out.generation_kwargs = { ...r.task.generation_kwargs, until: r.task.until };
  }
  return out;
}

function defaultAggregation(metric: string): string {
  if (metric === "perplexity" || metric === "bits_per_byte") return metric;
  if (metric.endsWith("perplexity")) return "weighted_perplexity";
  return "mean";
}

/** One metric of an lm-eval results file. */
export interface ResultMetric {
  task: string;
  metric: string;
  filter: string;
  value: number;
  stderr: number | null;
}

/** Reads the `results` section of an lm-eval results.json (the lab's or lm-eval's own) into rows. */
export function readResultsJson(path: string): ResultMetric[] {
  let json: { results?: Record<string, Record<string, unknown>> };
  try {
    json = JSON.parse(Deno.readTextFileSync(path));
  } catch (e) {
    throw new LabError(`${path}: not an lm-eval results file: ${(e as Error).message}`);
  }
  if (!json.results || typeof json.results !== "object") {
    throw new LabError(`${path}: no 'results' object; is this an lm-eval results file?`);
  }
  const out: ResultMetric[] = [];
  for (const [task, row] of Object.entries(json.results)) {
    for (const [key, value] of Object.entries(row)) {
      const m = /^(.+),(.+)$/.exec(key);
      if (!m || m[1].endsWith("_stderr") || typeof value !== "number") continue;
      const se = row[`${m[1]}_stderr,${m[2]}`];
      out.push({
        task,
        metric: m[1],
        filter: m[2],
        value,
        stderr: typeof se === "number" ? se : null,
      });
    }
  }
  return out;
}
