// The graph phases of planning: naming nodes, resolving their inputs to other nodes, ordering
// them by dependency (reporting cycles), and the sweep coordinates each node carries.
import { HANDLE, isHandle, type NodeSpec } from "./build.ts";
import { preview } from "./params_check.ts";
import type { PlanNode, PlanProblems } from "./plan_types.ts";
import type { Coords } from "./types.ts";

/** Gives every node a unique name: its explicit one, else its kind with sweep coordinates. */
export function assignNames(specs: NodeSpec[], nodes: PlanNode[], problems: PlanProblems): void {
  const taken = new Map<string, number>();
  for (const s of specs) {
    if (s.explicitName === undefined) continue;
    if (taken.has(s.explicitName)) {
      problems.list.push(
        `${problems.where}: two stages are named "${s.explicitName}"; names must be unique`,
      );
    }
    taken.set(s.explicitName, s.id);
    nodes[s.id].name = s.explicitName;
  }
  const byKind = new Map<string, NodeSpec[]>();
  for (const s of specs) {
    if (s.explicitName !== undefined) continue;
    const list = byKind.get(s.stage.kind) ?? [];
    list.push(s);
    byKind.set(s.stage.kind, list);
  }
  for (const [kind, list] of byKind) nameKind(kind, list, nodes, taken);
}

function nameKind(kind: string, list: NodeSpec[], nodes: PlanNode[], taken: Map<string, number>) {
  // A node made inside a sweep always carries its coordinates, so that adding a sweep value
  // does not rename the nodes that were already there.
  const candidates = list.map((s) => {
    const c = Object.entries(s.loopCoords);
    return c.length ? `${kind}[${c.map(([k, v]) => `${k}=${v}`).join(",")}]` : kind;
  });
  const counts = new Map<string, number>();
  for (const c of candidates) counts.set(c, (counts.get(c) ?? 0) + 1);
  const seen = new Map<string, number>();
  list.forEach((s, i) => {
    let name = candidates[i];
    if (counts.get(name)! > 1 || taken.has(name)) {
      let k = seen.get(name) ?? 0;
      let alt: string;
      do alt = `${name}#${++k}`; while (taken.has(alt));
      seen.set(name, k);
      name = alt;
    }
    taken.set(name, s.id);
    nodes[s.id].name = name;
  });
}

/** Fills each node's `inputs` and `deps` from the handles its builder call received. */
export function resolveInputs(specs: NodeSpec[], nodes: PlanNode[], problems: PlanProblems): void {
  const byName = new Map(nodes.map((n) => [n.name, n]));
  for (const s of specs) {
    const node = nodes[s.id];
    const label = problems.label(node);
    for (const p of s.problems) problems.list.push(`${label}: ${p}`);
    const resolveOne = (h: unknown, what: string): PlanNode | undefined => {
      const problem = handleProblem(h, specs, nodes, byName);
      if (typeof problem === "string") problems.list.push(`${label}: input "${what}"${problem}`);
      return typeof problem === "string" ? undefined : problem;
    };
    s.stage.inputs.forEach((inp, i) => {
      const arg = s.inputArgs[i];
      let resolved: PlanNode[] = [];
      if (inp.list) {
        if (arg === undefined) resolved = [];
        else if (!Array.isArray(arg)) {
          problems.list.push(
            `${label}: input "${inp.name}" expects an array of stage handles, got ${preview(arg)}`,
          );
        } else {
          resolved = arg.map((h, j) => resolveOne(h, `${inp.name}[${j}]`))
            .filter((x): x is PlanNode => !!x);
        }
      } else if (!(inp.optional && arg === undefined)) {
        const r = resolveOne(arg, inp.name);
        if (r) resolved = [r];
      }
      node.inputs.push({ name: inp.name, list: inp.list, nodes: resolved });
      for (const d of resolved) if (!node.deps.includes(d)) node.deps.push(d);
    });
  }
}

// The node a handle stands for, or the end of a message saying why it stands for none.
function handleProblem(
  h: unknown,
  specs: NodeSpec[],
  nodes: PlanNode[],
  byName: Map<string, PlanNode>,
): PlanNode | string {
  if (!isHandle(h)) {
    return ` ${h === undefined ? "is missing" : `got ${preview(h)}`}: ` +
      "expected the handle that an earlier stage builder returned";
  }
  const target = h[HANDLE];
  if ("ref" in target) {
    return byName.get(target.ref) ??
      `: ref("${target.ref}") names no stage in this pipeline (stages: ${
        [...byName.keys()].slice(0, 20).join(", ")
      })`;
  }
  const found = nodes[target.id];
  if (!found || specs[target.id] !== target) return " is a handle from another pipeline build";
  return found;
}

/** The nodes in dependency order; a cycle is reported with its path. */
export function dependencyOrder(nodes: PlanNode[], problems: PlanProblems): PlanNode[] {
  const order: PlanNode[] = [];
  const state = new Map<PlanNode, 1 | 2>();
  const visit = (n: PlanNode, path: PlanNode[]) => {
    const st = state.get(n);
    if (st === 2) return;
    if (st === 1) {
      const cyc = path.slice(path.indexOf(n)).concat(n).map((x) => x.name);
      problems.list.push(
        `${problems.where}: stages form a cycle: ${
          cyc.join(" -> ")
        } (an input must be a stage that does not depend on this one)`,
      );
      return;
    }
    state.set(n, 1);
    path.push(n);
    for (const d of n.deps) visit(d, path);
    path.pop();
    state.set(n, 2);
    order.push(n);
  };
  for (const n of nodes) visit(n, []);
  return order;
}

/** Coordinates: inherited from inputs, overridden by the sweeps around the builder call. */
export function assignCoords(order: PlanNode[], specs: NodeSpec[]): void {
  for (const n of order) {
    // Inputs that disagree on a coordinate (a stage combining a sweep's branches) drop it.
    const c: Coords = {};
    const conflict = new Set<string>();
    for (const d of n.deps) {
      for (const [k, v] of Object.entries(d.coords)) {
        if (k in c && c[k] !== v) conflict.add(k);
        else c[k] = v;
      }
    }
    for (const k of conflict) delete c[k];
    n.coords = { ...c, ...specs[n.id].loopCoords };
  }
}
