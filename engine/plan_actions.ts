// The action phase of planning: what a run does with each node, from the cache entries present
// and the --only / --force selections.
import { globToRegExp } from "../glob.ts";
import { LabError } from "./errors.ts";
import type { PlanNode } from "./plan_types.ts";

/** Glob (`*`, `?`, see glob.ts) matcher over a stage's name or kind. */
export function globMatcher(pattern: string): (n: { name: string; kind: string }) => boolean {
  const re = globToRegExp(pattern);
  return (n) => re.test(n.name) || re.test(n.kind);
}

/** Sets `cached`, `forced` and `action` on unique nodes, then copies them onto their aliases. */
export function assignActions(
  unique: PlanNode[],
  aliases: PlanNode[],
  present: Set<string>,
  opts: { only?: string[]; force?: string[] },
): void {
  for (const n of unique) n.cached = present.has(n.key);
  // --only: the selected nodes and everything they need.
  let included: Set<PlanNode> | undefined;
  if (opts.only?.length) {
    included = closure(select(unique, opts.only, "--only"), (n) => n.deps);
  }
  // --force: matched nodes and their descendants re-run.
  const forced = opts.force?.length
    ? closure(select(unique, opts.force, "--force"), (n) => n.dependents)
    : new Set<PlanNode>();
  for (const n of unique) {
    n.forced = forced.has(n);
    if (included && !included.has(n)) n.action = "excluded";
    else n.action = n.cached && !n.forced ? "cached" : "run";
  }
  for (const a of aliases) {
    a.cached = a.aliasOf!.cached;
    a.action = a.aliasOf!.action;
  }
}

function closure(start: PlanNode[], next: (n: PlanNode) => PlanNode[]): Set<PlanNode> {
  const out = new Set<PlanNode>();
  const add = (n: PlanNode) => {
    if (out.has(n)) return;
    out.add(n);
    next(n).forEach(add);
  };
  start.forEach(add);
  return out;
}

function select(nodes: PlanNode[], patterns: string[], flag: string): PlanNode[] {
  const out: PlanNode[] = [];
  for (const p of patterns) {
    const m = globMatcher(p);
    const hit = nodes.filter(m);
    if (!hit.length) {
      const names = nodes.slice(0, 15).map((n) => n.name).join(", ");
      throw new LabError(
        `${flag} ${p} matches no stage name or kind (stages: ${names}${
          nodes.length > 15 ? ", ..." : ""
        })`,
      );
    }
    out.push(...hit);
  }
  return out;
}
