// Settling a run: each node's outcome counted, written to the result writer and reported, and
// the run's row and summary made from them at the end.
import { hostname } from "node:os";
import type { Plan, PlanNode } from "./plan_types.ts";
import type { Reporter } from "./progress.ts";
import type { NodeOutcome, NodeStatus, RunSummary } from "./run_types.ts";
import type { ResultWriter, RunRow, StageRow } from "./store.ts";

let runCounter = 0;
function newRunId(): string {
  const t = new Date().toISOString().replace(/[-:]/g, "").replace(/\.\d+Z$/, "Z");
  return `${t}-${Deno.pid.toString(36)}${(runCounter++).toString(36)}${
    crypto.randomUUID().slice(0, 4)
  }`;
}

/** The outcomes of one run as they settle, and the rows and summary made from them. */
export class RunLedger {
  /** The run's id in the runs and stages tables. */
  readonly runId: string = newRunId();
  /** When the run started (ISO time). */
  readonly startedAt: string = new Date().toISOString();
  /** How many nodes ended with each status so far. */
  readonly counts: Record<NodeStatus, number> = {
    ok: 0,
    cached: 0,
    failed: 0,
    skipped: 0,
    interrupted: 0,
    excluded: 0,
  };
  private readonly outcomes = new Map<PlanNode, NodeOutcome>();
  private writer?: ResultWriter;

  /** A ledger for a run of `plan` on a machine with the environment `runEnv`. */
  constructor(
    private readonly plan: Plan,
    private readonly runEnv: Record<string, unknown>,
    private readonly reporter?: Reporter,
  ) {}

  /** Starts writing rows into results/lab.duckdb as nodes settle. */
  async openWriter(flushIntervalMs?: number): Promise<void> {
    const { ResultWriter } = await import("./store.ts");
    this.writer = new ResultWriter(
      this.plan.resultsDir,
      this.runRow("running", false),
      flushIntervalMs,
    );
  }

  /** The status a node has settled with, if it has. */
  statusOf(node: PlanNode): NodeStatus | undefined {
    return this.outcomes.get(node)?.status;
  }

  /** Records how a node ended: counted, written (unless excluded) and reported. */
  settle(node: PlanNode, status: NodeStatus, wallS: number, error?: NodeOutcome["error"]): void {
    const o: NodeOutcome = { node, status, wallS, error };
    this.outcomes.set(node, o);
    this.counts[status]++;
    if (status === "excluded") return;
    if (this.writer) {
      this.writer.run = this.runRow("running", false);
      this.writer.add(
        stageRow(this.runId, this.plan, o),
        status === "ok" || status === "cached",
        status === "ok" && node.forced,
      );
    }
    this.reporter?.nodeEnd(node, o);
  }

  /** Ends the run: its final row flushed to the database, the summary reported and returned. */
  async finish(aborted: boolean, wallS: () => number): Promise<RunSummary> {
    const counts = this.counts;
    const status = aborted ? "interrupted" : counts.failed || counts.skipped ? "failed" : "ok";
    let rowsLoaded = 0;
    if (this.writer) {
      this.writer.run = this.runRow(status, true);
      await this.writer.flush();
      rowsLoaded = this.writer.rowsLoaded;
    }
    const all = this.plan.nodes.map((n) => this.outcomes.get(n)).filter((o): o is NodeOutcome =>
      !!o
    );
    const summary: RunSummary = {
      runId: this.runId,
      pipeline: this.plan.pipeline,
      file: this.plan.displayFile,
      status,
      wallS: wallS(),
      counts,
      outcomes: all,
      failures: all.filter((o) => o.status === "failed"),
      plan: this.plan,
      rowsLoaded,
    };
    this.reporter?.end(summary);
    return summary;
  }

  private runRow(status: string, finished: boolean): RunRow {
    const { plan, runEnv, counts } = this;
    return {
      run_id: this.runId,
      pipeline: plan.pipeline,
      file: plan.displayFile,
      started_at: this.startedAt,
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
    };
  }
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
