// The Executor seam, and the two executors on this machine: inline (in process) and local (worker
// processes).
import { fileURLToPath } from "node:url";
import { executeNode, type NodeHooks, type NodeResult } from "./node_execution.ts";
import type { Plan, PlanNode } from "./plan.ts";

/** Runs one planned node somewhere and reports how it ended. The seam for remote executors. */
export interface Executor {
  /** The executor's name, as progress lines and the runs table show it. */
  readonly name: string;
  /** Stages it may run at once when --jobs is not given (default: this machine's cores). */
  readonly slots?: number;
  /** True when it isolates an exclusive stage itself (a cluster node of its own), so the
   * scheduler need not hold every other stage back while one runs. */
  readonly isolatesExclusive?: boolean;
  /** Checks, before anything runs, that it can run this plan; throws a LabError if not. */
  prepare?(plan: Plan): Promise<void>;
  /** Runs one node to its end; aborting `signal` interrupts it. */
  run(node: PlanNode, plan: Plan, hooks: NodeHooks, signal: AbortSignal): Promise<NodeResult>;
}

/** Runs stages in this process: no start-up cost, no isolation. For tests and tiny stages. */
export class InlineExecutor implements Executor {
  /** Always "inline". */
  readonly name = "inline";
  /** Runs the node's stage in this process. */
  run(node: PlanNode, plan: Plan, hooks: NodeHooks, signal: AbortSignal): Promise<NodeResult> {
    return executeNode(node, plan, hooks, signal);
  }
}

/** Marks protocol lines on a worker's stdout; anything else a stage prints is treated as a log line. */
export const WORKER_MARK = "\u001eLAB ";

const LAB_TS = fileURLToPath(new URL("../tasks/lab.ts", import.meta.url));
const CONFIG = fileURLToPath(new URL("../deno.json", import.meta.url));

/** Deno flags for worker processes: LAB_DENO_FLAGS (space-separated), e.g. "--cached-only --no-lock". */
function workerDenoFlags(): string[] {
  const extra = (Deno.env.get("LAB_DENO_FLAGS") ?? "").split(/\s+/).filter(Boolean);
  let config: string[] = [];
  try {
    if (Deno.statSync(CONFIG).isFile) config = ["--config", CONFIG];
  } catch { /* used as a library without the project's deno.json */ }
  return ["run", "-A", "--quiet", ...config, ...extra];
}

/**
 * Deno's arguments for a worker that runs `node` into the plan's results folder:
 * `run -A … tasks/lab.ts run-node --pipeline FILE --key KEY --results DIR [--replace]`.
 */
export function workerCommand(plan: Plan, node: PlanNode): string[] {
  return [
    ...workerDenoFlags(),
    LAB_TS,
    "run-node",
    "--pipeline",
    plan.file,
    "--key",
    node.key,
    "--results",
    plan.resultsDir,
    ...(node.forced ? ["--replace"] : []),
  ];
}

/**
 * Handles one line a worker printed: progress and log lines go to `hooks`; the result line
 * is returned. Lines without the protocol mark are the stage's own output, shown as logs.
 */
export function handleWorkerLine(line: string, hooks: NodeHooks): NodeResult | undefined {
  if (!line.startsWith(WORKER_MARK)) {
    if (line.trim()) hooks.onLog?.(line);
    return undefined;
  }
  let msg: Record<string, unknown>;
  try {
    msg = JSON.parse(line.slice(WORKER_MARK.length));
  } catch {
    return undefined;
  }
  if (msg.t === "progress") {
    hooks.onProgress?.(
      msg.done as number,
      msg.total as number | undefined,
      msg.message as string | undefined,
    );
  } else if (msg.t === "log") hooks.onLog?.(msg.message as string);
  else if (msg.t === "result") return msg.result as NodeResult;
  return undefined;
}

/**
 * Runs each stage in a worker subprocess (`lab run-node`): a native crash in a stage kills only
 * its worker. Workers talk JSON lines on stdout and watch stdin, so that they stop when the
 * coordinator dies. The cache folder is the only thing they share with the coordinator.
 */
export class LocalExecutor implements Executor {
  /** Always "local". */
  readonly name = "local";
  /** Seconds between SIGINT and SIGKILL when a run is interrupted. */
  graceS = 5;

  /** Runs the node's stage in a `lab run-node` worker process. */
  async run(
    node: PlanNode,
    plan: Plan,
    hooks: NodeHooks,
    signal: AbortSignal,
  ): Promise<NodeResult> {
    const t0 = performance.now();
    const args = [...workerCommand(plan, node), "--watch-stdin"];
    const child = new Deno.Command(Deno.execPath(), {
      args,
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1" },
    }).spawn();
    let killTimer: ReturnType<typeof setTimeout> | undefined;
    const onAbort = () => {
      try {
        child.kill("SIGINT");
      } catch { /* gone */ }
      killTimer = setTimeout(() => {
        try {
          child.kill("SIGKILL");
        } catch { /* gone */ }
      }, this.graceS * 1000);
    };
    if (signal.aborted) onAbort();
    else signal.addEventListener("abort", onAbort, { once: true });

    let result: NodeResult | undefined;
    const readOut = (async () => {
      for await (const line of lines(child.stdout)) {
        result = handleWorkerLine(line, hooks) ?? result;
      }
    })();
    let stderrTail = "";
    const readErr = (async () => {
      for await (const line of lines(child.stderr)) {
        stderrTail = (stderrTail + line + "\n").slice(-8000);
      }
    })();
    const status = await child.status;
    await Promise.all([readOut, readErr]);
    try {
      await child.stdin.close();
    } catch { /* closed */ }
    clearTimeout(killTimer);
    signal.removeEventListener("abort", onAbort);
    if (result) return result;
    const wallS = (performance.now() - t0) / 1000;
    if (signal.aborted) return { status: "interrupted", wallS, error: { message: "interrupted" } };
    const how = status.signal
      ? `was killed by ${status.signal}`
      : `exited with code ${status.code}`;
    return {
      status: "failed",
      wallS,
      error: { message: `worker process ${how}${stderrTail ? `:\n${stderrTail.trimEnd()}` : ""}` },
    };
  }
}

async function* lines(stream: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  const dec = new TextDecoderStream();
  let buf = "";
  for await (const chunk of stream.pipeThrough(dec)) {
    buf += chunk;
    let nl: number;
    while ((nl = buf.indexOf("\n")) >= 0) {
      yield buf.slice(0, nl);
      buf = buf.slice(nl + 1);
    }
  }
  if (buf) yield buf;
}
