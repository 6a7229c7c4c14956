// The shapes a plan is made of: a concrete node with its key and action, and the plan itself.
import type { Coords, StageDef } from "./types.ts";

/**
 * The parts of a key that meta.json keeps besides params, inputs and env, so that `lab why`
 * can tell which one changed: each source file's hash, the locked npm packages, keyExtra.
 */
export interface KeyParts {
  files: Record<string, string>;
  npm: Record<string, string>;
  extra: unknown;
}

/** What a run does with a node: use its cache entry, run it, or leave it out (--only). */
export type NodeAction = "cached" | "run" | "excluded";

/** A concrete, validated node with its cache key. */
export interface PlanNode {
  id: number;
  name: string;
  kind: string;
  stage: StageDef;
  params: unknown;
  inputs: { name: string; list: boolean; nodes: PlanNode[] }[];
  inputKeys: Record<string, string | string[] | null>;
  deps: PlanNode[];
  dependents: PlanNode[];
  coords: Coords;
  env: Record<string, unknown>;
  source: string;
  keyParts: KeyParts;
  key: string;
  /** Set when another node has the same key: that node runs, this one shares its entry. */
  aliasOf?: PlanNode;
  /** Whether a finished cache entry existed when planning. */
  cached: boolean;
  action: NodeAction;
  forced: boolean;
}

/** Nodes in dependency order, each with its key and what a run would do. */
export interface Plan {
  pipeline: string;
  file: string;
  displayFile: string;
  resultsDir: string;
  /** Unique nodes (aliases removed) in dependency order. */
  nodes: PlanNode[];
  aliases: PlanNode[];
  byKey: Map<string, PlanNode>;
}

/** Options of planPipeline. */
export interface PlanOptions {
  resultsDir: string;
  /** Stage kinds or names (globs) to re-run even if cached; their descendants re-run too. */
  force?: string[];
  /** Stage names or kinds (globs) to run, with what they need; everything else is excluded. */
  only?: string[];
  /** Look for cache entries (default true). Workers skip it. */
  checkCache?: boolean;
}

/** Plan problems are collected, not thrown one by one, so that one run reports them all. */
export interface PlanProblems {
  /** The pipeline file as messages show it. */
  where: string;
  list: string[];
  /** `<file>: stage "<name>" (<kind>)`, the prefix of a message about one node. */
  label(n: PlanNode): string;
}
