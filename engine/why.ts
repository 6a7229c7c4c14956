/**
 * `lab why`: why a stage's key is not the one cached before. Each entry's meta.json keeps the
 * parts its key was made of (params, inputs, environment, each source file's hash, the locked
 * npm packages, keyExtra such as data and checkpoint file hashes); the current plan has the
 * same parts, so the answer is their difference against the last entry of the same stage name.
 */
import { canonicalJson } from "./canonical.ts";
import type { CacheStore } from "./cache.ts";
import type { PlanNode } from "./plan.ts";
import type { EntryMeta } from "./types.ts";

/** Why one stage would run (or that it would not). */
export interface WhyAnswer {
  name: string;
  key: string;
  cached: boolean;
  /** The entry compared against, if any. */
  previous: { key: string; finishedAt: string } | null;
  /** One line per difference, e.g. `param lr: 0.001 → 0.0002`. */
  reasons: string[];
}

const show = (v: unknown) => (v === undefined ? "(none)" : JSON.stringify(v));

/** Differences of two JSON values as `label path: old → new` lines (objects by field). */
function diffValues(label: string, before: unknown, after: unknown, path = ""): string[] {
  if (canonicalJson(before ?? null) === canonicalJson(after ?? null)) return [];
  const isObj = (x: unknown) => typeof x === "object" && x !== null && !Array.isArray(x);
  if (isObj(before) && isObj(after)) {
    const a = before as Record<string, unknown>, b = after as Record<string, unknown>;
    const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])].sort();
    return keys.flatMap((k) => diffValues(label, a[k], b[k], path ? `${path}.${k}` : k));
  }
  return [`${label}${path ? ` ${path}` : ""}: ${show(before)} → ${show(after)}`];
}

function diffFiles(before: Record<string, string>, after: Record<string, string>): string[] {
  const out: string[] = [];
  for (const f of [...new Set([...Object.keys(before), ...Object.keys(after)])].sort()) {
    if (!(f in before)) out.push(`source file ${f}: now imported`);
    else if (!(f in after)) out.push(`source file ${f}: no longer imported`);
    else if (before[f] !== after[f]) out.push(`source file ${f}: edited`);
  }
  return out;
}

function diffNpm(before: Record<string, string>, after: Record<string, string>): string[] {
  const version = (v: string | undefined) => v?.split(" ")[0] ?? "(not imported)";
  const out: string[] = [];
  for (const p of [...new Set([...Object.keys(before), ...Object.keys(after)])].sort()) {
    if (before[p] === after[p]) continue;
    const [a, b] = [version(before[p]), version(after[p])];
    out.push(
      a === b
        ? `npm package ${p} ${a}: a dependency in deno.lock changed`
        : `npm package ${p}: ${a} → ${b}`,
    );
  }
  return out;
}

/** Explains `node`'s key against the newest other entry of the same pipeline and stage name. */
export function explainNode(node: PlanNode, pipeline: string, metas: EntryMeta[]): WhyAnswer {
  const answer: WhyAnswer = {
    name: node.name,
    key: node.key,
    cached: node.cached,
    previous: null,
    reasons: [],
  };
  const prev = metas
    .filter((m) => m.name === node.name && m.pipeline === pipeline && m.key !== node.key)
    .sort((a, b) => b.finishedAt.localeCompare(a.finishedAt))[0];
  if (!prev) {
    if (!node.cached) answer.reasons.push("no earlier entry of this stage: it never ran here");
    return answer;
  }
  answer.previous = { key: prev.key, finishedAt: prev.finishedAt };
  const r = answer.reasons;
  if (prev.kind !== node.kind) r.push(`kind: ${prev.kind} → ${node.kind}`);
  r.push(...diffValues("param", prev.params, node.params));
  for (const [name, keys] of Object.entries(node.inputKeys)) {
    const before = prev.inputs?.[name];
    if (canonicalJson(before ?? null) === canonicalJson(keys ?? null)) continue;
    const dep = node.inputs.find((i) => i.name === name)?.nodes.map((d) => d.name).join(", ");
    r.push(
      `input ${name} (${dep}): its key changed (${short(before)} → ${short(keys)}); ` +
        `ask lab why about ${dep}`,
    );
  }
  r.push(...diffValues("environment", prev.env, node.env));
  if (prev.keyParts) {
    r.push(...diffFiles(prev.keyParts.files, node.keyParts.files));
    r.push(...diffNpm(prev.keyParts.npm, node.keyParts.npm));
    r.push(...diffValues("file or data", prev.keyParts.extra, node.keyParts.extra));
  } else if (prev.source !== node.source) {
    r.push("source: the stage's code changed (the earlier entry predates per-file records)");
  }
  if (!r.length) {
    r.push(
      prev.keyParts
        ? "the key recipe itself changed (a newer lab version)"
        : "the earlier entry predates key records (made by an older lab); the key recipe changed",
    );
  }
  return answer;
}

function short(k: unknown): string {
  if (typeof k === "string") return k.slice(0, 12);
  if (Array.isArray(k)) return `[${k.map((x) => String(x).slice(0, 12)).join(", ")}]`;
  return show(k);
}

/** Every readable entry's meta. */
export function entryMetas(cache: CacheStore): EntryMeta[] {
  return cache.list().map((e) => e.meta).filter((m): m is EntryMeta => !!m);
}
