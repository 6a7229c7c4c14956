// The key phase of planning: each node's cache key from its kind, source, params, input keys,
// environment and npm versions; nodes with equal keys become aliases of the first.
import { blake3Hex, canonicalJson } from "./canonical.ts";
import { environmentFor } from "./environment.ts";
import { npmVersions } from "./npm_versions.ts";
import type { PlanNode, PlanProblems } from "./plan_types.ts";
import { stageSourceInfo } from "./source_hash.ts";

/** Bump when the key recipe changes, so that old entries stop matching. */
export const KEY_VERSION = 2;

/** Nodes after keying: the unique ones in dependency order, and those sharing another's key. */
export interface KeyedNodes {
  unique: PlanNode[];
  aliases: PlanNode[];
  byKey: Map<string, PlanNode>;
}

/** Keys every node in dependency order (an input's key is part of its dependents' keys). */
export async function assignKeys(order: PlanNode[], problems: PlanProblems): Promise<KeyedNodes> {
  const out: KeyedNodes = { unique: [], aliases: [], byKey: new Map() };
  for (const n of order) {
    if (!(await keyNode(n, problems))) continue;
    const first = out.byKey.get(n.key);
    if (first) {
      n.aliasOf = first;
      out.aliases.push(n);
    } else {
      out.byKey.set(n.key, n);
      out.unique.push(n);
    }
  }
  return out;
}

async function keyNode(n: PlanNode, problems: PlanProblems): Promise<boolean> {
  let npm: Record<string, string>;
  let files: Record<string, string>;
  try {
    const info = stageSourceInfo(n.stage.moduleUrl, n.stage.definedAt);
    n.source = info.hash;
    files = info.files;
    npm = npmVersions(info.packages);
  } catch (e) {
    problems.list.push(`${problems.label(n)}: ${(e as Error).message}`);
    return false;
  }
  n.env = environmentFor(n.stage.device);
  for (const inp of n.inputs) {
    const keys = inp.nodes.map((d) => d.key);
    n.inputKeys[inp.name] = inp.list ? keys : keys[0] ?? null;
  }
  let extra: unknown = undefined;
  if (n.stage.keyExtra) {
    try {
      extra = await n.stage.keyExtra(n.params as never, Deno.cwd());
    } catch (e) {
      problems.list.push(`${problems.label(n)}: ${(e as Error).message}`);
      return false;
    }
  }
  n.key = blake3Hex(
    canonicalJson({
      v: KEY_VERSION,
      kind: n.kind,
      source: n.source,
      params: n.params,
      inputs: n.inputKeys,
      env: n.env,
      npm,
      extra,
    }),
    32,
  );
  n.keyParts = { files, npm, extra: extra ?? null };
  return true;
}

/** Points unique nodes' deps past aliases and fills in `dependents`. */
export function linkDependents(unique: PlanNode[]): void {
  for (const n of unique) {
    n.deps = [...new Set(n.deps.map((d) => d.aliasOf ?? d))];
    for (const d of n.deps) d.dependents.push(n);
  }
}
