// The Slurm client commands the slurm executor calls (sbatch, squeue, scontrol, scancel,
// sacct), with a missing command or an unreachable controller turned into a LabError.
import { LabError } from "../errors.ts";

const dec = new TextDecoder();

/** What a Slurm command printed and how it exited. */
export interface CommandOutput {
  code: number;
  stdout: string;
  stderr: string;
}

/** The message for a Slurm command that is not on PATH. */
export function missingCommandMessage(cmd: string): string {
  return `the slurm executor needs Slurm's "${cmd}" on PATH: run on a login node of your ` +
    `cluster, or install Slurm's client commands (Debian: apt-get install slurm-client, with ` +
    `your cluster's /etc/slurm/slurm.conf and munge key), or start a one-node cluster on this ` +
    `machine with tasks/slurm_local.sh`;
}

/** Runs a Slurm command; `input` goes to its stdin. */
export async function slurm(cmd: string, args: string[], input?: string): Promise<CommandOutput> {
  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command(cmd, {
      args,
      stdin: input === undefined ? "null" : "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) throw new LabError(missingCommandMessage(cmd));
    throw e;
  }
  if (input !== undefined) {
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode(input));
    await w.close();
  }
  const out = await child.output();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr).trim() };
}

/** True when a Slurm controller answers (`scontrol ping`); false when none does or no Slurm. */
export async function controllerAnswers(): Promise<boolean> {
  try {
    const out = await slurm("scontrol", ["ping"]);
    return out.code === 0 && /\bUP\b/.test(out.stdout);
  } catch {
    return false;
  }
}

/** A job as squeue lists it. */
export interface QueuedJob {
  id: string;
  state: string;
  reason: string;
  comment: string;
}

/**
 * This user's jobs that the controller still knows, finished ones included (one squeue call
 * however many jobs are followed: that call is the coordinator's load on the scheduler).
 */
export async function listJobs(): Promise<QueuedJob[]> {
  const out = await slurm("squeue", ["--me", "--states=all", "-h", "-o", "%i|%T|%r|%k"]);
  if (out.code !== 0) {
    throw new LabError(`squeue failed (exit ${out.code}): ${out.stderr || out.stdout}`);
  }
  return out.stdout.split("\n").filter(Boolean).map((line) => {
    const [id, state, reason, ...comment] = line.split("|");
    return { id, state, reason, comment: comment.join("|") };
  });
}

/** How a job ended, from scontrol (or sacct once the controller has forgotten the job). */
export interface JobEnd {
  state: string;
  reason: string;
  /** "code:signal", as Slurm prints it. */
  exitCode: string;
  restarts: number;
  nodes: string;
}

/** Details of a job; undefined when neither scontrol nor sacct knows it. */
export async function jobEnd(id: string): Promise<JobEnd | undefined> {
  const out = await slurm("scontrol", ["show", "job", "-o", id]);
  if (out.code === 0) {
    const field = (k: string) => out.stdout.match(new RegExp(`(?:^| )${k}=(\\S*)`))?.[1] ?? "";
    return {
      state: field("JobState"),
      reason: field("Reason"),
      exitCode: field("ExitCode"),
      restarts: Number(field("Restarts")) || 0,
      nodes: field("NodeList"),
    };
  }
  const acct = await slurm("sacct", ["-n", "-P", "-X", "-j", id, "-o", "State,ExitCode,NodeList"]);
  const line = acct.code === 0 ? acct.stdout.split("\n").find(Boolean) : undefined;
  if (!line) return undefined;
  const [state, exitCode, nodes] = line.split("|");
  // sacct prints "CANCELLED by 0": the state is the first word.
  return { state: state.split(" ")[0], reason: "", exitCode, restarts: 0, nodes };
}

/** Submits a batch script (on stdin) with `args`; returns the job id. */
export async function submitJob(args: string[], script: string): Promise<string> {
  const out = await slurm("sbatch", ["--parsable", ...args], script);
  if (out.code !== 0) throw new SubmitError(out.stderr || out.stdout || `exit ${out.code}`);
  // --parsable prints "id" or "id;cluster".
  return out.stdout.trim().split(";")[0];
}

/** sbatch refused a job; the message is Slurm's. */
export class SubmitError extends Error {
  constructor(message: string) {
    super(message.replace(/^sbatch: error: /gm, "").replace(/\n/g, "; "));
    this.name = "SubmitError";
  }
}

/** Checks that sbatch would accept a job with `args` (--test-only: nothing is submitted). */
export async function testSubmission(args: string[]): Promise<void> {
  const out = await slurm("sbatch", ["--test-only", ...args, "--wrap", "true"]);
  if (out.code !== 0) throw new SubmitError(out.stderr || out.stdout || `exit ${out.code}`);
}

/** Cancels jobs (those already gone are ignored). */
export async function cancelJobs(ids: string[]): Promise<void> {
  if (ids.length) await slurm("scancel", ids);
}

/** Cancels jobs synchronously: for an exiting process, which cannot wait for promises. */
export function cancelJobsSync(ids: string[]): void {
  if (!ids.length) return;
  try {
    new Deno.Command("scancel", { args: ids, stdout: "null", stderr: "null" }).outputSync();
  } catch { /* no scancel: nothing was submitted either */ }
}
