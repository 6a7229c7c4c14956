// Running a pipeline: runPipeline (load, plan, lock, run, store) and executePlan, which schedules
// ready nodes and settles their outcomes.
import { resolve } from "node:path";
import { CacheStore } from "./cache.ts";
import { environmentFor } from "./environment.ts";
import { type Executor, InlineExecutor, LocalExecutor } from "./executor.ts";
import { lockResults, type ResultsLock } from "./lock.ts";
import {
  type LoadedPipeline,
  loadPipelineFile,
  type Plan,
  type PlanNode,
  planPipeline,
} from "./plan.ts";
import type { Reporter } from "./progress.ts";
import { RunLedger } from "./run_ledger.ts";
import { Scheduler, type Slots } from "./run_schedule.ts";
import type { RunSummary } from "./run_types.ts";

export type { NodeOutcome, NodeStatus, RunSummary } from "./run_types.ts";

/** How runPipeline and executePlan run: results folder, executor, slots, selection, display. */
export interface RunOptions {
  /** Results folder (default: LAB_RESULTS or ./results). */
  resultsDir?: string;
  /** "local" (worker subprocesses, default), "inline" (this process), or an Executor. */
  executor?: "local" | "inline" | Executor;
  /** Concurrent CPU stages (default: number of cores). */
  jobs?: number;
  /** Concurrent GPU stages (default: number of GPUs, at least 1). */
  gpuJobs?: number;
  /** Stages to re-run although cached (glob patterns over stage names). */
  force?: string[];
  /** Run only these stages and what they need (glob patterns over stage names). */
  only?: string[];
  /** Who shows the run (default: nothing shown). */
  reporter?: Reporter;
  /** Aborting it interrupts the run: running stages finish as interrupted. */
  signal?: AbortSignal;
  /** Write results/lab.duckdb (default true). */
  db?: boolean;
  /** When another lab process holds the results folder: wait (true) or fail (default). */
  wait?: boolean;
  /** Milliseconds between database flushes during a run (default 2000). */
  flushIntervalMs?: number;
}

/** The results folder chosen by an explicit value, LAB_RESULTS, or ./results. */
export function resultsDirFrom(explicit?: string): string {
  return resolve(explicit ?? Deno.env.get("LAB_RESULTS") ?? "results");
}

/** Loads, plans and runs a pipeline file with the results folder locked. */
export async function runPipeline(
  file: string | LoadedPipeline,
  opts: RunOptions = {},
): Promise<RunSummary> {
  const resultsDir = resultsDirFrom(opts.resultsDir);
  const lock = await lockResults(resultsDir, {
    purpose: `lab run ${typeof file === "string" ? file : file.displayFile}`,
    wait: opts.wait,
    onWait: (h) => opts.reporter?.message?.(`waiting for the results folder lock (${h})`),
  });
  try {
    const loaded = typeof file === "string" ? await loadPipelineFile(file) : file;
    const plan = await planPipeline(loaded, { resultsDir, force: opts.force, only: opts.only });
    return await executePlan(plan, opts, lock);
  } finally {
    lock.release();
  }
}

function detectGpus(): number {
  const env = Deno.env.get("LAB_GPUS");
  if (env) return Math.max(0, Number(env) || 0);
  const vis = Deno.env.get("CUDA_VISIBLE_DEVICES");
  if (vis !== undefined) return vis.trim() === "" ? 0 : vis.split(",").length;
  try {
    const out = new Deno.Command("nvidia-smi", { args: ["-L"], stdout: "piped", stderr: "null" })
      .outputSync();
    if (out.success) {
      return new TextDecoder().decode(out.stdout).split("\n").filter((l) => l.startsWith("GPU"))
        .length;
    }
  } catch { /* no driver */ }
  return 0;
}

/** Runs a plan (the caller holds the lock): schedules, records, and reports. */
export async function executePlan(
  plan: Plan,
  opts: RunOptions = {},
  _lock?: ResultsLock,
): Promise<RunSummary> {
  const t0 = performance.now();
  const reporter = opts.reporter;
  new CacheStore(plan.resultsDir).cleanTemps();
  const executor: Executor = typeof opts.executor === "object"
    ? opts.executor
    : opts.executor === "inline"
    ? new InlineExecutor()
    : new LocalExecutor();
  const runEnv = environmentFor(plan.nodes.some((n) => n.stage.device === "gpu") ? "gpu" : "cpu");
  const ledger = new RunLedger(plan, runEnv, reporter);
  const toRun = plan.nodes.filter((n) => n.action === "run");
  await executor.prepare?.(plan);
  const slots = slotsFor(opts, executor, toRun);
  if (opts.db !== false) await ledger.openWriter(opts.flushIntervalMs);

  reporter?.start({
    plan,
    runId: ledger.runId,
    toRun: toRun.length,
    executor: executor.name,
    jobs: slots.cpu,
  });
  for (const n of plan.nodes) {
    if (n.action === "excluded") ledger.settle(n, "excluded", 0);
    else if (n.action === "cached") ledger.settle(n, "cached", 0);
  }
  const scheduler = new Scheduler({ plan, executor, slots, ledger, reporter }, toRun);
  const aborted = await scheduler.run(opts.signal);
  return await ledger.finish(aborted, () => (performance.now() - t0) / 1000);
}

function slotsFor(opts: RunOptions, executor: Executor, toRun: PlanNode[]): Slots {
  const cpu = Math.max(1, opts.jobs ?? executor.slots ?? (navigator.hardwareConcurrency || 1));
  const gpu = Math.max(
    1,
    opts.gpuJobs ?? executor.slots ??
      (toRun.some((n) => n.stage.device === "gpu") ? detectGpus() : 1),
  );
  return { cpu, gpu };
}
