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
  /** The node's index in build order. */
  id: number;
  /** The stage name: its kind, or the name given, with sweep coordinates. */
  name: string;
  /** The stage kind. */
  kind: string;
  /** The stage definition it runs. */
  stage: StageDef;
  /** Validated params with defaults filled in. */
  params: unknown;
  /** Its inputs by declared name, each resolved to the nodes it reads. */
  inputs: { name: string; list: boolean; nodes: PlanNode[] }[];
  /** The cache keys of its inputs by name (null for an optional input left out). */
  inputKeys: Record<string, string | string[] | null>;
  /** Nodes it reads from. */
  deps: PlanNode[];
  /** Nodes that read from it. */
  dependents: PlanNode[];
  /** Its sweep coordinates. */
  coords: Coords;
  /** The result-changing environment that went into the key. */
  env: Record<string, unknown>;
  /** The hash of the stage module's source and the project modules it imports. */
  source: string;
  /** What the key was made of, for `lab why`. */
  keyParts: KeyParts;
  /** The cache key. */
  key: string;
  /** Set when another node has the same key: that node runs, this one shares its entry. */
  aliasOf?: PlanNode;
  /** Whether a finished cache entry existed when planning. */
  cached: boolean;
  /** What a run does with the node: run, use the cache, or leave it out. */
  action: NodeAction;
  /** Whether --force made it run although cached. */
  forced: boolean;
}

/** Nodes in dependency order, each with its key and what a run would do. */
export interface Plan {
  /** The pipeline's name. */
  pipeline: string;
  /** The pipeline file's absolute path. */
  file: string;
  /** The pipeline file as given, for messages. */
  displayFile: string;
  /** The results folder the plan reads the cache from. */
  resultsDir: string;
  /** Unique nodes (aliases removed) in dependency order. */
  nodes: PlanNode[];
  /** Nodes that share another node's key (run once, through that node). */
  aliases: PlanNode[];
  /** Nodes by cache key. */
  byKey: Map<string, PlanNode>;
}

/** Options of planPipeline. */
export interface PlanOptions {
  /** The results folder whose cache the plan looks in. */
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
