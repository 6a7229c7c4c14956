// Scheduling a run: ready nodes start in plan order while CPU / GPU slots are free, an exclusive
// stage runs alone, a failure skips its descendants, and an abort lets running stages finish.
import type { Executor } from "./executor.ts";
import type { NodeHooks, NodeResult } from "./node_execution.ts";
import type { Plan, PlanNode } from "./plan_types.ts";
import type { Reporter } from "./progress.ts";
import type { RunLedger } from "./run_ledger.ts";

/** How many stages may run at once on each kind of slot. */
export interface Slots {
  /** Concurrent CPU stages. */
  cpu: number;
  /** Concurrent GPU stages. */
  gpu: number;
}

/** What a scheduler works with. */
export interface ScheduleContext {
  /** The plan being run. */
  plan: Plan;
  /** Where nodes run. */
  executor: Executor;
  /** The slot limits. */
  slots: Slots;
  /** Where outcomes settle. */
  ledger: RunLedger;
  /** Who is told of starts, progress and logs. */
  reporter?: Reporter;
}

type Running = Promise<[PlanNode, NodeResult]>;

/** Runs the plan's "run" nodes through the executor until all settle or the signal aborts. */
export class Scheduler {
  private readonly pending: Set<PlanNode>;
  private readonly running = new Map<PlanNode, Running>();
  private readonly busy = { cpu: 0, gpu: 0 };
  private readonly ac = new AbortController();

  /** A scheduler for the nodes `toRun` (in plan order). */
  constructor(private readonly ctx: ScheduleContext, toRun: PlanNode[]) {
    this.pending = new Set(toRun);
  }

  /** Runs to the end; returns whether the run was aborted. */
  async run(signal?: AbortSignal): Promise<boolean> {
    const onAbort = () => this.ac.abort(signal?.reason);
    if (signal?.aborted) onAbort();
    signal?.addEventListener("abort", onAbort, { once: true });
    const aborted = abortPromise(this.ac.signal);
    while ((this.pending.size || this.running.size) && !this.ac.signal.aborted) {
      this.startReady();
      if (!this.running.size) break; // nothing can start: the rest waits on failed inputs (already skipped)
      const [n, r] = await Promise.race([...this.running.values(), aborted]) ?? [];
      if (!n || !r) break;
      this.running.delete(n);
      this.busy[slotOf(n)]--;
      this.settleResult(n, r);
    }
    await this.drain();
    signal?.removeEventListener("abort", onAbort);
    return this.ac.signal.aborted;
  }

  // An executor that isolates exclusive stages itself (a Slurm node of their own) lets the
  // rest of the sweep go on beside them.
  private isSolo(n: PlanNode): boolean {
    return n.stage.exclusive && !this.ctx.executor.isolatesExclusive;
  }

  private depsDone(n: PlanNode): boolean {
    return n.deps.every((d) => {
      const s = this.ctx.ledger.statusOf(d);
      return s === "ok" || s === "cached";
    });
  }

  // An exclusive stage (a timing measurement) runs alone: once one is ready, nothing else
  // starts until the running stages drain and it has finished.
  private startReady(): void {
    const soloRunning = [...this.running.keys()].some((n) => this.isSolo(n));
    const soloReady = [...this.pending].find((n) => this.isSolo(n) && this.depsDone(n));
    for (const n of [...this.pending]) {
      if (this.ac.signal.aborted || soloRunning) break;
      if (soloReady && (n !== soloReady || this.running.size > 0)) continue;
      const slot = slotOf(n);
      if (this.busy[slot] >= this.ctx.slots[slot]) continue;
      if (!this.depsDone(n)) continue;
      this.pending.delete(n);
      this.busy[slot]++;
      this.launch(n);
      if (this.isSolo(n)) break;
    }
  }

  private launch(n: PlanNode): void {
    const { reporter, executor, plan } = this.ctx;
    reporter?.nodeStart(n);
    const hooks: NodeHooks = {
      onProgress: (done, total, message) => reporter?.nodeProgress(n, done, total, message),
      onLog: (m) => reporter?.nodeLog(n, m),
    };
    this.running.set(
      n,
      executor.run(n, plan, hooks, this.ac.signal).then(
        (r) => [n, r] as [PlanNode, NodeResult],
        (e) =>
          [n, {
            status: "failed",
            wallS: 0,
            error: { message: String(e?.message ?? e), stack: e?.stack },
          }] as [PlanNode, NodeResult],
      ),
    );
  }

  private settleResult(n: PlanNode, r: NodeResult): void {
    const { ledger } = this.ctx;
    if (r.status === "ok") ledger.settle(n, "ok", r.wallS);
    else if (r.status === "interrupted") ledger.settle(n, "interrupted", r.wallS, r.error);
    else {
      ledger.settle(n, "failed", r.wallS, r.error);
      this.skipDescendants(n, `skipped: input "${n.name}" failed`);
    }
  }

  private skipDescendants(n: PlanNode, why: string): void {
    for (const d of n.dependents) {
      if (!this.pending.has(d)) continue;
      this.pending.delete(d);
      this.ctx.ledger.settle(d, "skipped", 0, { message: why });
      this.skipDescendants(d, why);
    }
  }

  // Interrupted: let running stages see the abort and finish.
  private async drain(): Promise<void> {
    const settled = await Promise.all(this.running.values());
    const aborted = this.ac.signal.aborted;
    for (const [n, r] of settled) {
      const status = r.status === "ok"
        ? "ok"
        : r.status === "failed" && !aborted
        ? "failed"
        : "interrupted";
      this.ctx.ledger.settle(n, status, r.wallS, r.error);
    }
  }
}

function slotOf(n: PlanNode): "cpu" | "gpu" {
  return n.stage.device === "gpu" ? "gpu" : "cpu";
}

function abortPromise(signal: AbortSignal): Promise<undefined> {
  return new Promise((res) => {
    if (signal.aborted) res(undefined);
    else signal.addEventListener("abort", () => res(undefined), { once: true });
  });
}
