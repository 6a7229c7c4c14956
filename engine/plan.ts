// Planning a pipeline: build its nodes, then the phases in order — names and inputs, dependency
// order, coordinates, params, keys, actions — each in its own module; problems of a phase are
// collected and thrown together before the next phase needs its results.
import { buildPipeline, type NodeSpec } from "./build.ts";
import { CacheStore } from "./cache.ts";
import { hashReady } from "./canonical.ts";
import { LabError, PipelineError } from "./errors.ts";
import type { LoadedPipeline } from "./pipeline_file.ts";
import { assignActions } from "./plan_actions.ts";
import { assignCoords, assignNames, dependencyOrder, resolveInputs } from "./plan_graph.ts";
import { assignKeys, linkDependents } from "./plan_keys.ts";
import { validateParams } from "./plan_params.ts";
import type { Plan, PlanNode, PlanOptions, PlanProblems } from "./plan_types.ts";

export { type LoadedPipeline, loadPipelineFile } from "./pipeline_file.ts";
export { globMatcher } from "./plan_actions.ts";
export { KEY_VERSION } from "./plan_keys.ts";
export type { KeyParts, NodeAction, Plan, PlanNode, PlanOptions } from "./plan_types.ts";

/** Builds, validates and keys a pipeline. Throws PipelineError naming every problem; nothing runs. */
export async function planPipeline(loaded: LoadedPipeline, opts: PlanOptions): Promise<Plan> {
  await hashReady();
  const where = loaded.displayFile;
  const specs = await buildSpecs(loaded);
  const problems: PlanProblems = {
    where,
    list: [],
    label: (n) => `${where}: stage "${n.name}"${n.name === n.kind ? "" : ` (${n.kind})`}`,
  };
  const throwIfAny = () => {
    if (problems.list.length) throw new PipelineError(problems.list);
  };
  const nodes = specs.map(emptyNode);
  // Names first: messages about inputs and params name the stage.
  assignNames(specs, nodes, problems);
  resolveInputs(specs, nodes, problems);
  const order = dependencyOrder(nodes, problems);
  throwIfAny();
  assignCoords(order, specs);
  validateParams(order, specs, problems);
  throwIfAny();
  const { unique, aliases, byKey } = await assignKeys(order, problems);
  throwIfAny();
  linkDependents(unique);
  const present = opts.checkCache === false
    ? new Set<string>()
    : new CacheStore(opts.resultsDir).keys();
  assignActions(unique, aliases, present, opts);
  return {
    pipeline: loaded.pipeline.name,
    file: loaded.file,
    displayFile: loaded.displayFile,
    resultsDir: opts.resultsDir,
    nodes: unique,
    aliases,
    byKey,
  };
}

async function buildSpecs(loaded: LoadedPipeline): Promise<NodeSpec[]> {
  const where = loaded.displayFile;
  try {
    return await buildPipeline(loaded.pipeline);
  } catch (e) {
    if (e instanceof PipelineError) {
      throw new PipelineError(e.problems.map((p) => `${where}: ${p}`));
    }
    throw new LabError(
      `${where}: building pipeline "${loaded.pipeline.name}" failed: ${(e as Error)?.message ?? e}`,
    );
  }
}

function emptyNode(s: NodeSpec): PlanNode {
  return {
    id: s.id,
    name: "",
    kind: s.stage.kind,
    stage: s.stage,
    params: undefined,
    inputs: [],
    inputKeys: {},
    deps: [],
    dependents: [],
    coords: {},
    env: {},
    source: "",
    keyParts: { files: {}, npm: {}, extra: null },
    key: "",
    cached: false,
    action: "run",
    forced: false,
  };
}

/** Plan status for display: blocked = must run but waits for an input that runs first. */
export function nodeStatus(n: PlanNode): "cached" | "to-run" | "blocked" | "excluded" {
  if (n.action === "excluded") return "excluded";
  if (n.action === "cached") return "cached";
  return n.deps.some((d) => d.action === "run") ? "blocked" : "to-run";
}
