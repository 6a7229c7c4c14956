// How a run went: each node's outcome and the summary of the whole run, shared by the runner
// and the progress display.
import type { Plan, PlanNode } from "./plan_types.ts";

/** The status a node ends a run with. */
export type NodeStatus = "ok" | "cached" | "failed" | "skipped" | "interrupted" | "excluded";

/** How a node ended in a run. */
export interface NodeOutcome {
  /** The planned node. */
  node: PlanNode;
  /** How it ended. */
  status: NodeStatus;
  /** Seconds it ran (0 when cached, skipped or excluded). */
  wallS: number;
  /** What went wrong, when it failed, was skipped or interrupted. */
  error?: { message: string; stack?: string };
}

/** What a run did. */
export interface RunSummary {
  /** The run's id in the runs and stages tables. */
  runId: string;
  /** The pipeline's name. */
  pipeline: string;
  /** The pipeline file as given. */
  file: string;
  /** How the run ended as a whole. */
  status: "ok" | "failed" | "interrupted";
  /** Seconds the run took. */
  wallS: number;
  /** How many nodes ended with each status. */
  counts: Record<NodeStatus, number>;
  /** Every node's outcome, in plan order. */
  outcomes: NodeOutcome[];
  /** The outcomes of nodes that failed. */
  failures: NodeOutcome[];
  /** The plan that ran. */
  plan: Plan;
  /** Result rows loaded into DuckDB during this run. */
  rowsLoaded: number;
}
