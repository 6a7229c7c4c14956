// How a run went: each node's outcome and the summary of the whole run, shared by the runner
// and the progress display.
import type { Plan, PlanNode } from "./plan_types.ts";

/** The status a node ends a run with. */
export type NodeStatus = "ok" | "cached" | "failed" | "skipped" | "interrupted" | "excluded";

/** How a node ended in a run. */
export interface NodeOutcome {
  node: PlanNode;
  status: NodeStatus;
  wallS: number;
  error?: { message: string; stack?: string };
}

/** What a run did. */
export interface RunSummary {
  runId: string;
  pipeline: string;
  file: string;
  status: "ok" | "failed" | "interrupted";
  wallS: number;
  counts: Record<NodeStatus, number>;
  outcomes: NodeOutcome[];
  failures: NodeOutcome[];
  plan: Plan;
  /** Result rows loaded into DuckDB during this run. */
  rowsLoaded: number;
}
