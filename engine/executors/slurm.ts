// The slurm executor: each ready stage becomes a Slurm job that runs `lab run-node KEY` on the
// shared results folder; the coordinator follows every job with one squeue call per poll.
import { join } from "node:path";
import { CacheStore } from "../cache.ts";
import { LabError } from "../errors.ts";
import type { NodeHooks, NodeResult } from "../node_execution.ts";
import { type Executor, handleWorkerLine, workerCommand } from "../executor.ts";
import type { Plan, PlanNode } from "../plan.ts";
import { KEY_ENV_VARIABLE } from "../worker.ts";
import { fileEnd, FileTail } from "./file_tail.ts";
import {
  cancelJobs,
  cancelJobsSync,
  jobEnd,
  listJobs,
  type QueuedJob,
  SubmitError,
  submitJob,
  testSubmission,
} from "./slurm_commands.ts";
import { jobOutcome, TERMINAL_STATES } from "./slurm_outcome.ts";
import { settingHint, type SlurmSettings, stageJobArgs, stageOverrides } from "./slurm_settings.ts";

/** Options of the executor itself (not of the jobs). */
export interface SlurmExecutorOptions {
  /** Milliseconds between squeue calls (default LAB_SLURM_POLL_MS or 1000). */
  pollMs?: number;
  /** Seconds to wait for a finished job's cache entry to show on this side
   * (default LAB_SLURM_ENTRY_WAIT_S or 10). */
  entryWaitS?: number;
}

/** squeue may fail for a while (a controller restart); give up after this long. */
const QUEUE_OUTAGE_S = 120;

/** Runs each stage as a Slurm job (sbatch), one job per stage. */
export class SlurmExecutor implements Executor {
  /** Always "slurm". */
  readonly name = "slurm";
  readonly isolatesExclusive = true;
  readonly slots: number;
  /** What each stage's job asks Slurm for. */
  readonly settings: SlurmSettings;
  /** Milliseconds between squeue polls. */
  readonly pollMs: number;
  /** Seconds to wait for a finished job's cache entry to show on the shared file system. */
  readonly entryWaitS: number;
  /** Jobs this coordinator follows that have not ended: cancelled if it exits. */
  readonly live = new Set<string>();
  #adoptable = new Map<string, string>();
  #poll: Promise<Map<string, QueuedJob> | undefined> | undefined;
  #lastGoodPoll = performance.now();
  #unloadHooked = false;

  /** An executor submitting jobs with `settings`. */
  constructor(settings: SlurmSettings = {}, opts: SlurmExecutorOptions = {}) {
    this.settings = settings;
    this.slots = settings.maxJobs ?? 100;
    this.pollMs = opts.pollMs ?? (Number(Deno.env.get("LAB_SLURM_POLL_MS")) || 1000);
    this.entryWaitS = opts.entryWaitS ?? (Number(Deno.env.get("LAB_SLURM_ENTRY_WAIT_S")) || 10);
  }

  /** Checks sbatch and the options (sbatch --test-only); finds live jobs of an earlier run. */
  async prepare(plan: Plan): Promise<void> {
    const base = stageJobArgs(plainNode, { ...this.settings, stages: {} });
    try {
      await testSubmission(base);
    } catch (e) {
      if (!(e instanceof SubmitError)) throw e;
      throw new LabError(
        `--executor slurm: sbatch refused a test job (${
          base.join(" ") || "no options"
        }): ${e.message}; ${settingHint(e.message)}`,
      );
    }
    const suffix = jobTag("", plan.resultsDir).slice("lab:".length);
    for (const job of await listJobs()) {
      const ours = job.comment.startsWith("lab:") && job.comment.endsWith(suffix);
      if (ours && !TERMINAL_STATES.has(job.state)) {
        this.#adoptable.set(job.comment.slice("lab:".length, -suffix.length), job.id);
      }
    }
    // A coordinator that exits (a second Ctrl-C, Deno.exit) leaves no job behind.
    if (!this.#unloadHooked) {
      this.#unloadHooked = true;
      globalThis.addEventListener("unload", () => cancelJobsSync([...this.live]));
    }
  }

  /** Submits the node's job (or follows one an earlier run left running) until it ends. */
  async run(
    node: PlanNode,
    plan: Plan,
    hooks: NodeHooks,
    signal: AbortSignal,
  ): Promise<NodeResult> {
    const t0 = performance.now();
    const cache = new CacheStore(plan.resultsDir);
    // An earlier run's job may have finished it since the plan was made.
    if (!node.forced && cache.has(node.key)) return { status: "ok", wallS: 0 };
    let jobId = node.forced ? undefined : this.#adoptable.get(node.key);
    if (jobId) hooks.onLog?.(`following Slurm job ${jobId}, submitted by an earlier run`);
    else {
      try {
        jobId = await this.#submit(node, plan);
      } catch (e) {
        if (!(e instanceof SubmitError)) throw e;
        const message = `sbatch refused the job of stage "${node.name}": ${e.message}; ${
          settingHint(e.message)
        }`;
        return { status: "failed", wallS: 0, error: { message } };
      }
    }
    this.live.add(jobId);
    try {
      return await this.#follow(jobId, node, plan, hooks, signal, t0);
    } finally {
      this.live.delete(jobId);
    }
  }

  async #submit(node: PlanNode, plan: Plan): Promise<string> {
    const dir = jobsDir(plan);
    Deno.mkdirSync(dir, { recursive: true });
    const deno = this.settings.deno ?? Deno.execPath();
    const cmd = [deno, ...workerCommand(plan, node)].map(shellQuote).join(" ");
    // The worker keys stages with this coordinator's environment: a compute node's CPU model or
    // core count may differ from the login node's, and the key must be the one planned here.
    const keyEnv = Object.fromEntries(plan.nodes.map((n) => [n.stage.device, n.env]));
    const script = `#!/bin/sh\n# lab stage ${node.name} (${node.kind})\n` +
      `export NO_COLOR=1 ${KEY_ENV_VARIABLE}=${shellQuote(JSON.stringify(keyEnv))}\n` +
      `exec ${cmd}\n`;
    return await submitJob([
      `--job-name=lab:${node.name}`,
      `--comment=${jobTag(node.key, plan.resultsDir)}`,
      `--chdir=${Deno.cwd()}`,
      `--output=${join(dir, `${node.key}.%j.out`)}`,
      `--error=${join(dir, `${node.key}.%j.err`)}`,
      // A requeued job appends: its last result line is its final attempt's.
      "--open-mode=append",
      ...stageJobArgs(node, this.settings),
    ], script);
  }

  async #follow(
    jobId: string,
    node: PlanNode,
    plan: Plan,
    hooks: NodeHooks,
    signal: AbortSignal,
    t0: number,
  ): Promise<NodeResult> {
    const out = new FileTail(join(jobsDir(plan), `${node.key}.${jobId}.out`));
    let result: NodeResult | undefined;
    let cancelledByUs = false;
    let seen = "";
    let started = false;
    for (;;) {
      if (signal.aborted && !cancelledByUs) {
        cancelledByUs = true;
        await cancelJobs([jobId]);
      }
      const queue = await this.#queue();
      for (const line of out.read()) result = handleWorkerLine(line, hooks) ?? result;
      if (!queue) continue; // squeue failed this time; #queue gives up after a long outage
      const job = queue.get(jobId);
      if (!job || TERMINAL_STATES.has(job.state)) break;
      const now = `${job.state} ${job.reason}`;
      if (now !== seen && job.state !== "RUNNING") {
        hooks.onProgress?.(
          0,
          undefined,
          `Slurm job ${jobId} ${job.state.toLowerCase()}` +
            (job.reason && job.reason !== "None" ? ` (${job.reason})` : ""),
        );
      }
      // A requeued job (node failure, preemption, scontrol requeue) keeps its id and goes back
      // to PENDING: the same stage, followed on, counted once.
      if (job.state === "RUNNING") started = true;
      else if (job.state === "PENDING" && started) {
        started = false;
        hooks.onLog?.(`Slurm job ${jobId} was requeued; following its next attempt`);
      }
      seen = now;
    }
    for (const line of out.readRest()) result = handleWorkerLine(line, hooks) ?? result;
    const ok = result?.status === "ok";
    const o = stageOverrides(node, this.settings);
    return jobOutcome({
      jobId,
      end: await jobEnd(jobId).catch(() => undefined),
      result,
      entryVisible: ok ? await this.#entryShows(plan, node.key) : false,
      cancelledByUs,
      outputFile: out.path,
      stderrTail: fileEnd(out.path.replace(/\.out$/, ".err")),
      wallS: (performance.now() - t0) / 1000,
      limits: { mem: o.mem ?? this.settings.mem, time: o.time ?? this.settings.time },
    });
  }

  /** One squeue call shared by every job followed, at most one per pollMs. */
  #queue(): Promise<Map<string, QueuedJob> | undefined> {
    this.#poll ??= (async () => {
      await new Promise((r) => setTimeout(r, this.pollMs));
      try {
        const jobs = await listJobs();
        this.#lastGoodPoll = performance.now();
        return new Map(jobs.map((j) => [j.id, j]));
      } catch (e) {
        if ((performance.now() - this.#lastGoodPoll) / 1000 > QUEUE_OUTAGE_S) throw e;
        return undefined;
      } finally {
        this.#poll = undefined;
      }
    })();
    return this.#poll;
  }

  /** Waits a little for an entry a worker committed elsewhere (NFS caches directory lookups). */
  async #entryShows(plan: Plan, key: string): Promise<boolean> {
    const cache = new CacheStore(plan.resultsDir);
    const end = performance.now() + this.entryWaitS * 1000;
    while (!cache.has(key)) {
      if (performance.now() > end) return false;
      await new Promise((r) => setTimeout(r, 250));
    }
    return true;
  }
}

/** A stand-in node with no needs, for the test submission of the pipeline-wide options. */
const plainNode = {
  name: "",
  kind: "",
  stage: { device: "cpu", exclusive: false },
} as unknown as PlanNode;

/** The job comment that ties a job to a stage key and a results folder. */
function jobTag(key: string, resultsDir: string): string {
  return `lab:${key}@${resultsDir}`;
}

/** Where job output files go: results/slurm/<key>.<jobid>.out and .err. */
function jobsDir(plan: Plan): string {
  return join(plan.resultsDir, "slurm");
}

function shellQuote(s: string): string {
  return /^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replaceAll("'", `'\\''`)}'`;
}
