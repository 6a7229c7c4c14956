// lm-evaluation-harness tasks on the lab's engine: task YAML, metrics, results.json.
import { globSync } from "node:fs";
import { resolve } from "node:path";
import { LabError } from "../../../errors.ts";

export { readTaskConfig, type TaskConfig } from "./task_config.ts";
export { type DocResult, runTask, type RunTaskOptions, type TaskResult } from "./run_task.ts";
export { readResultsJson, type ResultMetric, resultsJson, type RunInfo } from "./results_json.ts";
export { DEFAULT_FEWSHOT_SEED } from "./fewshot.ts";

/** The task YAML files that `patterns` (paths or globs, relative to `cwd`) name, sorted, each once. */
export function taskFiles(patterns: string | readonly string[], cwd: string): string[] {
  const files = new Set<string>();
  for (const p of typeof patterns === "string" ? [patterns] : patterns) {
    const hits = /[*?[{]/.test(p)
      ? globSync(p, { cwd }).map((f) => resolve(cwd, f))
      : [resolve(cwd, p)];
    const yamls = hits.filter((f) => /\.ya?ml$/.test(f));
    if (yamls.length === 0) {
      throw new LabError(
        `evaluate: tasks '${p}' names no .yaml file${
          /[*?]/.test(p) ? "" : " (give a .yaml path or a glob)"
        }`,
      );
    }
    yamls.forEach((f) => files.add(f));
  }
  return [...files].sort();
}
