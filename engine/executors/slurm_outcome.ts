// How a finished Slurm job of a stage counts: its Slurm state, the worker's result line and
// whether the cache entry is visible here, turned into a node result with a message to act on.
import type { NodeResult } from "../node_execution.ts";
import type { JobEnd } from "./slurm_commands.ts";

/** Slurm states after which a job will not run again (a requeued job goes back to PENDING). */
export const TERMINAL_STATES = new Set([
  "COMPLETED",
  "FAILED",
  "CANCELLED",
  "TIMEOUT",
  "OUT_OF_MEMORY",
  "NODE_FAIL",
  "PREEMPTED",
  "BOOT_FAIL",
  "DEADLINE",
  "SPECIAL_EXIT",
  "REVOKED",
]);

/** What the coordinator knows when a job has ended. */
export interface JobFacts {
  jobId: string;
  /** Where Slurm ended it; undefined when the controller no longer knows the job. */
  end: JobEnd | undefined;
  /** The worker's last result line (its final attempt, if requeued). */
  result: NodeResult | undefined;
  /** The cache entry exists on the coordinator's side. */
  entryVisible: boolean;
  /** This run cancelled the job (Ctrl-C, SIGTERM). */
  cancelledByUs: boolean;
  /** The job's output file, for the user to read. */
  outputFile: string;
  /** The last lines of its stderr. */
  stderrTail: string;
  /** Seconds since submission (used when the worker did not report its own). */
  wallS: number;
  /** The mem and time limits the job ran under, to name in a message. */
  limits: { mem?: string; time?: string };
}

const ADVICE: Record<string, (f: JobFacts) => string> = {
  OUT_OF_MEMORY: (f) =>
    `it ran out of memory${f.limits.mem ? ` (--mem=${f.limits.mem})` : ""}: raise --mem`,
  TIMEOUT: (f) =>
    `it hit its time limit${f.limits.time ? ` (--time=${f.limits.time})` : ""}: raise --time`,
  NODE_FAIL: () => "its node failed; run again: finished stages are cached",
  PREEMPTED: () => "a higher-priority job preempted it; run again, or use a QOS without preemption",
  CANCELLED: () =>
    "it was cancelled outside this run (scancel, an administrator or a limit); " +
    "run again to re-run it",
  BOOT_FAIL: () => "its node failed to boot; run again",
  DEADLINE: () => "it missed its deadline; run again",
};

/** The node result of a job that has ended. */
export function jobOutcome(f: JobFacts): NodeResult {
  const state = f.end?.state ?? "UNKNOWN";
  const wallS = f.result?.wallS ?? f.wallS;
  // Cancelled by this run (Ctrl-C) unless the stage had finished by then.
  if (f.cancelledByUs && f.result?.status !== "ok") {
    return { status: "interrupted", wallS, error: { message: "interrupted" } };
  }
  const where = f.end?.nodes ? ` on ${f.end.nodes}` : "";
  const head = `Slurm job ${f.jobId} ${state}`;
  if (f.result?.status === "ok" || (state === "COMPLETED" && !f.result)) {
    if (f.entryVisible) return { status: "ok", wallS };
    return {
      status: "failed",
      wallS,
      error: {
        message: `${head}${where}, but its cache entry never appeared on the coordinator's side: ` +
          `the results folder must be on a file system that the coordinator and the compute ` +
          `nodes share (see docs/scale-out.md); job output: ${f.outputFile}`,
      },
    };
  }
  const exit = f.end?.exitCode ? `, exit code ${f.end.exitCode}` : "";
  const reason = f.end?.reason && f.end.reason !== "None" ? `, reason ${f.end.reason}` : "";
  const advice = ADVICE[state]?.(f);
  const stageError = f.result?.status === "failed" ? f.result.error : undefined;
  const message = `${head}${where}${exit}${reason}` +
    (advice ? `: ${advice}` : "") +
    (stageError ? `: ${stageError.message}` : "") +
    (!stageError && f.stderrTail ? `; its stderr ends:\n${f.stderrTail}` : "") +
    (!stageError ? `\njob output: ${f.outputFile}` : "");
  return { status: "failed", wallS, error: { message } };
}
