import { hostname } from "node:os";
import { resolve } from "node:path";
import { CacheStore } from "./cache.ts";
import { environmentFor } from "./environment.ts";
import type { NodeResult } from "./execute.ts";
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
import type { NodeOutcome, NodeStatus, RunSummary } from "./run_types.ts";
import type { ResultWriter, RunRow, StageRow } from "./store.ts";

export type { NodeOutcome, NodeStatus, RunSummary } from "./run_types.ts";

export interface RunOptions {
  /** Results folder (default: LAB_RESULTS or ./results). */
  resultsDir?: string;
  /** "local" (worker subprocesses, default), "inline" (this process), or an Executor. */
  executor?: "local" | "inline" | Executor;
  /** Concurrent CPU stages (default: number of cores). */
  jobs?: number;
  /** Concurrent GPU stages (default: number of GPUs, at least 1). */
  gpuJobs?: number;
  force?: string[];
  only?: string[];
  reporter?: Reporter;
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

let runCounter = 0;
function newRunId(): string {
  const t = new Date().toISOString().replace(/[-:]/g, "").replace(/\.\d+Z$/, "Z");
  return `${t}-${Deno.pid.toString(36)}${(runCounter++).toString(36)}${
    crypto.randomUUID().slice(0, 4)
  }`;
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
  const cache = new CacheStore(plan.resultsDir);
  cache.cleanTemps();
  const executor: Executor = typeof opts.executor === "object"
    ? opts.executor
    : opts.executor === "inline"
    ? new InlineExecutor()
    : new LocalExecutor();
  const runId = newRunId();
  const startedAt = new Date().toISOString();
  const toRun = plan.nodes.filter((n) => n.action === "run");
  await executor.prepare?.(plan);
  const cpuSlots = Math.max(
    1,
    opts.jobs ?? executor.slots ?? (navigator.hardwareConcurrency || 1),
  );
  const gpuSlots = Math.max(
    1,
    opts.gpuJobs ?? executor.slots ??
      (toRun.some((n) => n.stage.device === "gpu") ? detectGpus() : 1),
  );
  // An executor that isolates exclusive stages itself (a Slurm node of their own) lets the
  // rest of the sweep go on beside them.
  const isSolo = (n: PlanNode) => n.stage.exclusive && !executor.isolatesExclusive;
  const runEnv = environmentFor(plan.nodes.some((n) => n.stage.device === "gpu") ? "gpu" : "cpu");

  const counts: Record<NodeStatus, number> = {
    ok: 0,
    cached: 0,
    failed: 0,
    skipped: 0,
    interrupted: 0,
    excluded: 0,
  };
  const outcomes = new Map<PlanNode, NodeOutcome>();
  const runRow = (status: string, finished: boolean): RunRow => ({
    run_id: runId,
    pipeline: plan.pipeline,
    file: plan.displayFile,
    started_at: startedAt,
    finished_at: finished ? new Date().toISOString() : null,
    host: hostname(),
    device: typeof runEnv.device === "string" ? runEnv.device : null,
    libtorch: typeof runEnv.libtorch === "string" ? runEnv.libtorch : null,
    status,
    n_stages: plan.nodes.length - counts.excluded,
    n_ran: counts.ok,
    n_cached: counts.cached,
    n_failed: counts.failed,
    n_skipped: counts.skipped,
    env: runEnv,
  });

  let writer: ResultWriter | undefined;
  if (opts.db !== false) {
    const { ResultWriter } = await import("./store.ts");
    writer = new ResultWriter(plan.resultsDir, runRow("running", false), opts.flushIntervalMs);
  }
  const settle = (
    node: PlanNode,
    status: NodeStatus,
    wallS: number,
    error?: NodeOutcome["error"],
  ) => {
    const o: NodeOutcome = { node, status, wallS, error };
    outcomes.set(node, o);
    counts[status]++;
    if (status !== "excluded") {
      if (writer) {
        writer.run = runRow("running", false);
        writer.add(
          stageRow(runId, plan, o),
          status === "ok" || status === "cached",
          status === "ok" && node.forced,
        );
      }
      reporter?.nodeEnd(node, o);
    }
  };

  reporter?.start({ plan, runId, toRun: toRun.length, executor: executor.name, jobs: cpuSlots });
  for (const n of plan.nodes) {
    if (n.action === "excluded") settle(n, "excluded", 0);
    else if (n.action === "cached") settle(n, "cached", 0);
  }

  // Scheduling: start ready nodes in plan order while slots are free.
  const pending = new Set(toRun);
  const running = new Map<PlanNode, Promise<[PlanNode, NodeResult]>>();
  const ac = new AbortController();
  const onAbort = () => ac.abort(opts.signal?.reason);
  if (opts.signal?.aborted) onAbort();
  opts.signal?.addEventListener("abort", onAbort, { once: true });
  const busy = { cpu: 0, gpu: 0 };
  const slotOf = (n: PlanNode) => (n.stage.device === "gpu" ? "gpu" : "cpu");
  const skipDescendants = (n: PlanNode, why: string) => {
    for (const d of n.dependents) {
      if (!pending.has(d)) continue;
      pending.delete(d);
      settle(d, "skipped", 0, { message: why });
      skipDescendants(d, why);
    }
  };

  const aborted = abortPromise(ac.signal);
  const depsDone = (n: PlanNode) =>
    n.deps.every((d) => {
      const s = outcomes.get(d)?.status;
      return s === "ok" || s === "cached";
    });
  while ((pending.size || running.size) && !ac.signal.aborted) {
    // An exclusive stage (a timing measurement) runs alone: once one is ready, nothing else
    // starts until the running stages drain and it has finished.
    const soloRunning = [...running.keys()].some(isSolo);
    const soloReady = [...pending].find((n) => isSolo(n) && depsDone(n));
    for (const n of [...pending]) {
      if (ac.signal.aborted || soloRunning) break;
      if (soloReady && (n !== soloReady || running.size > 0)) continue;
      const slot = slotOf(n);
      if (busy[slot] >= (slot === "gpu" ? gpuSlots : cpuSlots)) continue;
      if (!depsDone(n)) continue;
      pending.delete(n);
      busy[slot]++;
      reporter?.nodeStart(n);
      const hooks = {
        onProgress: (done: number, total: number | undefined, message: string | undefined) =>
          reporter?.nodeProgress(n, done, total, message),
        onLog: (m: string) => reporter?.nodeLog(n, m),
      };
      running.set(
        n,
        executor.run(n, plan, hooks, ac.signal).then(
          (r) => [n, r] as [PlanNode, NodeResult],
          (e) =>
            [n, {
              status: "failed",
              wallS: 0,
              error: { message: String(e?.message ?? e), stack: e?.stack },
            }] as [PlanNode, NodeResult],
        ),
      );
      if (isSolo(n)) break;
    }
    if (!running.size) break; // nothing can start: the rest waits on failed inputs (already skipped)
    const [n, r] = await Promise.race([...running.values(), aborted]) ?? [];
    if (!n || !r) break;
    running.delete(n);
    busy[slotOf(n)]--;
    if (r.status === "ok") settle(n, "ok", r.wallS);
    else if (r.status === "interrupted") settle(n, "interrupted", r.wallS, r.error);
    else {
      settle(n, "failed", r.wallS, r.error);
      skipDescendants(n, `skipped: input "${n.name}" failed`);
    }
  }
  // Interrupted: let running stages see the abort and finish.
  for (const [n, r] of await Promise.all(running.values())) {
    settle(
      n,
      r.status === "ok"
        ? "ok"
        : r.status === "failed" && !ac.signal.aborted
        ? "failed"
        : "interrupted",
      r.wallS,
      r.error,
    );
  }
  opts.signal?.removeEventListener("abort", onAbort);

  const status = ac.signal.aborted
    ? "interrupted"
    : counts.failed || counts.skipped
    ? "failed"
    : "ok";
  let rowsLoaded = 0;
  if (writer) {
    writer.run = runRow(status, true);
    await writer.flush();
    rowsLoaded = writer.rowsLoaded;
  }
  const all = plan.nodes.map((n) => outcomes.get(n)).filter((o): o is NodeOutcome => !!o);
  const summary: RunSummary = {
    runId,
    pipeline: plan.pipeline,
    file: plan.displayFile,
    status,
    wallS: (performance.now() - t0) / 1000,
    counts,
    outcomes: all,
    failures: all.filter((o) => o.status === "failed"),
    plan,
    rowsLoaded,
  };
  reporter?.end(summary);
  return summary;
}

function abortPromise(signal: AbortSignal): Promise<undefined> {
  return new Promise((res) => {
    if (signal.aborted) res(undefined);
    else signal.addEventListener("abort", () => res(undefined), { once: true });
  });
}

function stageRow(runId: string, plan: Plan, o: NodeOutcome): StageRow {
  const n = o.node;
  return {
    key: n.key,
    run_id: runId,
    pipeline: plan.pipeline,
    name: n.name,
    kind: n.kind,
    params: n.params,
    inputs: n.inputKeys,
    coords: n.coords,
    cached: o.status === "cached",
    status: o.status === "cached" ? "ok" : o.status,
    wall_s: o.wallS,
    error: o.error
      ? (o.error.stack && o.status === "failed" ? o.error.stack : o.error.message)
      : null,
    device: n.stage.device,
  };
}
