import { relative, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { z } from "zod";
import {
  buildPipeline,
  HANDLE,
  isHandle,
  isPipeline,
  type NodeSpec,
  type Pipeline,
} from "./build.ts";
import { blake3Hex, canonicalJson, hashReady } from "./canonical.ts";
import { environmentFor } from "./environment.ts";
import { LabError, PipelineError } from "./errors.ts";
import { stageSourceInfo } from "./source_hash.ts";
import { npmVersions } from "./npm_versions.ts";
import type { StageDef } from "./stage.ts";
import type { Coords } from "./types.ts";
import { CacheStore } from "./cache.ts";

/** Bump when the key recipe changes, so that old entries stop matching. */
export const KEY_VERSION = 2;

/**
 * The parts of a key that meta.json keeps besides params, inputs and env, so that `lab why`
 * can tell which one changed: each source file's hash, the locked npm packages, keyExtra.
 */
export interface KeyParts {
  files: Record<string, string>;
  npm: Record<string, string>;
  extra: unknown;
}

/** A pipeline loaded from its file. */
export interface LoadedPipeline {
  pipeline: Pipeline;
  /** Absolute path of the pipeline file. */
  file: string;
  /** The path as messages show it (relative to the working directory). */
  displayFile: string;
}

/** Imports a pipeline file and checks that its default export is a pipeline(). */
export async function loadPipelineFile(file: string): Promise<LoadedPipeline> {
  const abs = resolve(file);
  const displayFile = relative(Deno.cwd(), abs) || abs;
  try {
    if (!Deno.statSync(abs).isFile) throw new Error();
  } catch {
    throw new LabError(`pipeline file not found: ${file}`);
  }
  let mod: Record<string, unknown>;
  try {
    mod = await import(pathToFileURL(abs).href);
  } catch (e) {
    if (e instanceof LabError) throw new LabError(`${displayFile}: ${e.message}`);
    throw new LabError(
      `pipeline file ${displayFile} failed to load: ${(e as Error)?.message ?? e}`,
    );
  }
  if (!isPipeline(mod.default)) {
    throw new LabError(
      `${displayFile} has no default export made by pipeline(name, build); add \`export default pipeline("name", (h) => { ... })\``,
    );
  }
  return { pipeline: mod.default, file: abs, displayFile };
}

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

export interface PlanOptions {
  resultsDir: string;
  /** Stage kinds or names (globs) to re-run even if cached; their descendants re-run too. */
  force?: string[];
  /** Stage names or kinds (globs) to run, with what they need; everything else is excluded. */
  only?: string[];
  /** Look for cache entries (default true). Workers skip it. */
  checkCache?: boolean;
}

/** Builds, validates and keys a pipeline. Throws PipelineError naming every problem; nothing runs. */
export async function planPipeline(loaded: LoadedPipeline, opts: PlanOptions): Promise<Plan> {
  await hashReady();
  const where = loaded.displayFile;
  let specs: NodeSpec[];
  try {
    specs = await buildPipeline(loaded.pipeline);
  } catch (e) {
    if (e instanceof PipelineError) {
      throw new PipelineError(e.problems.map((p) => `${where}: ${p}`));
    }
    throw new LabError(
      `${where}: building pipeline "${loaded.pipeline.name}" failed: ${(e as Error)?.message ?? e}`,
    );
  }
  const problems: string[] = [];
  const nodes: PlanNode[] = specs.map((s) => ({
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
  }));

  // Names first: messages about inputs and params name the stage.
  assignNames(specs, nodes, problems, where);
  const byName = new Map(nodes.map((n) => [n.name, n]));
  const label = (n: PlanNode) =>
    `${where}: stage "${n.name}"${n.name === n.kind ? "" : ` (${n.kind})`}`;

  // Resolve inputs.
  for (const s of specs) {
    const node = nodes[s.id];
    for (const p of s.problems) problems.push(`${label(node)}: ${p}`);
    s.stage.inputs.forEach((inp, i) => {
      const arg = s.inputArgs[i];
      const resolveOne = (h: unknown, what: string): PlanNode | undefined => {
        if (!isHandle(h)) {
          problems.push(
            `${label(node)}: input "${what}" ${
              h === undefined ? "is missing" : `got ${preview(h)}`
            }: expected the handle that an earlier stage builder returned`,
          );
          return undefined;
        }
        const target = h[HANDLE];
        if ("ref" in target) {
          const found = byName.get(target.ref);
          if (!found) {
            problems.push(
              `${
                label(node)
              }: input "${what}": ref("${target.ref}") names no stage in this pipeline (stages: ${
                [...byName.keys()].slice(0, 20).join(", ")
              })`,
            );
          }
          return found;
        }
        const found = nodes[target.id];
        if (!found || specs[target.id] !== target) {
          problems.push(`${label(node)}: input "${what}" is a handle from another pipeline build`);
          return undefined;
        }
        return found;
      };
      let resolved: PlanNode[] = [];
      if (inp.list) {
        if (arg === undefined) resolved = [];
        else if (!Array.isArray(arg)) {
          problems.push(
            `${label(node)}: input "${inp.name}" expects an array of stage handles, got ${
              preview(arg)
            }`,
          );
        } else {
          resolved = arg.map((h, j) => resolveOne(h, `${inp.name}[${j}]`)).filter((
            x,
          ): x is PlanNode => !!x);
        }
      } else if (!(inp.optional && arg === undefined)) {
        const r = resolveOne(arg, inp.name);
        if (r) resolved = [r];
      }
      node.inputs.push({ name: inp.name, list: inp.list, nodes: resolved });
      for (const d of resolved) if (!node.deps.includes(d)) node.deps.push(d);
    });
  }

  // Topological order; a cycle is reported with its path.
  const order: PlanNode[] = [];
  const state = new Map<PlanNode, 1 | 2>();
  const visit = (n: PlanNode, path: PlanNode[]) => {
    const st = state.get(n);
    if (st === 2) return;
    if (st === 1) {
      const cyc = path.slice(path.indexOf(n)).concat(n).map((x) => x.name);
      problems.push(
        `${where}: stages form a cycle: ${
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
  if (problems.length) throw new PipelineError(problems);

  // Coordinates: inherited from inputs, overridden by the sweeps around the builder call.
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

  // Params.
  for (const n of order) {
    const spec = specs[n.id];
    const raw = spec.rawParams === undefined ? {} : spec.rawParams;
    if (isHandle(raw)) {
      problems.push(
        `${label(n)}: got a stage handle where params were expected (it takes inputs: ${
          n.stage.inputs.map((i) => i.name).join(", ") || "none"
        })`,
      );
      continue;
    }
    let unknown = 0;
    unknownFields(n.stage.schema, raw, "", (field, known) => {
      unknown++;
      problems.push(
        `${label(n)}: unknown field "${field}"${suggest(field.split(".").pop()!, known)} ` +
          `(expected one of: ${known.join(", ")})`,
      );
    });
    const res = n.stage.schema.safeParse(raw);
    if (!res.success) {
      for (const issue of res.error.issues) {
        // Strict objects report unknown keys too; ours name the field and suggest one.
        if (issue.code === "unrecognized_keys" && unknown) continue;
        const path = issue.path.map(String).join(".");
        const got = valueAt(raw, issue.path as PropertyKey[]);
        problems.push(
          `${label(n)}: ${path ? `field "${path}"` : "params"}: ${issue.message}${
            got.found ? `, got ${preview(got.value)}` : ""
          }`,
        );
      }
      continue;
    }
    n.params = res.data;
    try {
      canonicalJson(n.params);
    } catch (e) {
      problems.push(`${label(n)}: params must be plain JSON values: ${(e as Error).message}`);
    }
  }
  if (problems.length) throw new PipelineError(problems);

  // Keys, in dependency order.
  const byKey = new Map<string, PlanNode>();
  const unique: PlanNode[] = [];
  const aliases: PlanNode[] = [];
  for (const n of order) {
    let npm: Record<string, string>;
    let files: Record<string, string>;
    try {
      const info = stageSourceInfo(n.stage.moduleUrl, n.stage.definedAt);
      n.source = info.hash;
      files = info.files;
      npm = npmVersions(info.packages);
    } catch (e) {
      problems.push(`${label(n)}: ${(e as Error).message}`);
      continue;
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
        problems.push(`${label(n)}: ${(e as Error).message}`);
        continue;
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
    const first = byKey.get(n.key);
    if (first) {
      n.aliasOf = first;
      aliases.push(n);
    } else {
      byKey.set(n.key, n);
      unique.push(n);
    }
  }
  if (problems.length) throw new PipelineError(problems);

  // Dependencies between unique nodes.
  for (const n of unique) {
    n.deps = [...new Set(n.deps.map((d) => d.aliasOf ?? d))];
    for (const d of n.deps) d.dependents.push(n);
  }

  const cache = new CacheStore(opts.resultsDir);
  const present = opts.checkCache === false ? new Set<string>() : cache.keys();
  for (const n of unique) n.cached = present.has(n.key);

  // --only: the selected nodes and everything they need.
  let included: Set<PlanNode> | undefined;
  if (opts.only?.length) {
    const matched = select(unique, opts.only, "--only");
    included = new Set();
    const add = (n: PlanNode) => {
      if (included!.has(n)) return;
      included!.add(n);
      n.deps.forEach(add);
    };
    matched.forEach(add);
  }
  // --force: matched nodes and their descendants re-run.
  const forced = new Set<PlanNode>();
  if (opts.force?.length) {
    const add = (n: PlanNode) => {
      if (forced.has(n)) return;
      forced.add(n);
      n.dependents.forEach(add);
    };
    select(unique, opts.force, "--force").forEach(add);
  }
  for (const n of unique) {
    n.forced = forced.has(n);
    if (included && !included.has(n)) n.action = "excluded";
    else n.action = n.cached && !n.forced ? "cached" : "run";
  }
  for (const a of aliases) {
    a.cached = a.aliasOf!.cached;
    a.action = a.aliasOf!.action;
  }
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

/** Plan status for display: blocked = must run but waits for an input that runs first. */
export function nodeStatus(n: PlanNode): "cached" | "to-run" | "blocked" | "excluded" {
  if (n.action === "excluded") return "excluded";
  if (n.action === "cached") return "cached";
  return n.deps.some((d) => d.action === "run") ? "blocked" : "to-run";
}

/** Glob (`*`, `?`) matcher over a stage's name or kind. */
export function globMatcher(pattern: string): (n: { name: string; kind: string }) => boolean {
  const re = new RegExp(
    "^" + pattern.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*").replace(/\?/g, ".") +
      "$",
  );
  return (n) => re.test(n.name) || re.test(n.kind);
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

function assignNames(specs: NodeSpec[], nodes: PlanNode[], problems: string[], where: string) {
  const taken = new Map<string, number>();
  for (const s of specs) {
    if (s.explicitName === undefined) continue;
    if (taken.has(s.explicitName)) {
      problems.push(`${where}: two stages are named "${s.explicitName}"; names must be unique`);
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
  for (const [kind, list] of byKind) {
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
}

type ZodDefLike = { type?: string; innerType?: z.ZodType; shape?: Record<string, z.ZodType> };
function objectShape(schema: z.ZodType): Record<string, z.ZodType> | undefined {
  let s: z.ZodType | undefined = schema;
  for (let i = 0; s && i < 8; i++) {
    const def: ZodDefLike | undefined = (s as unknown as { _zod?: { def?: ZodDefLike } })._zod?.def;
    if (!def) return undefined;
    if (def.type === "object") return (s as z.ZodObject).shape;
    if (
      def.type === "optional" || def.type === "nullable" || def.type === "default" ||
      def.type === "prefault"
    ) {
      s = def.innerType;
    } else return undefined;
  }
  return undefined;
}

function unknownFields(
  schema: z.ZodType,
  raw: unknown,
  prefix: string,
  report: (field: string, known: string[]) => void,
) {
  const shape = objectShape(schema);
  if (!shape || typeof raw !== "object" || raw === null || Array.isArray(raw)) return;
  // A catchall/passthrough object accepts any field.
  const def =
    (schema as unknown as { _zod: { def: { catchall?: { _zod?: { def?: { type?: string } } } } } })
      ._zod.def;
  if (def.catchall && def.catchall._zod?.def?.type !== "never") return;
  const known = Object.keys(shape);
  for (const [k, v] of Object.entries(raw)) {
    if (!(k in shape)) report(prefix + k, known);
    else unknownFields(shape[k], v, `${prefix}${k}.`, report);
  }
}

function suggest(word: string, known: string[]): string {
  let best = "";
  let bestD = Infinity;
  for (const k of known) {
    const d = editDistance(word.toLowerCase(), k.toLowerCase());
    if (d < bestD) [best, bestD] = [k, d];
  }
  return best && bestD <= Math.max(2, Math.floor(word.length / 3))
    ? ` (did you mean "${best}"?)`
    : "";
}

function editDistance(a: string, b: string): number {
  const dp = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = dp[0];
    dp[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = dp[j];
      dp[j] = Math.min(dp[j] + 1, dp[j - 1] + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = tmp;
    }
  }
  return dp[b.length];
}

function valueAt(raw: unknown, path: PropertyKey[]): { found: boolean; value?: unknown } {
  let v = raw;
  for (const p of path) {
    if (typeof v !== "object" || v === null || !(p in v)) return { found: false };
    v = (v as Record<PropertyKey, unknown>)[p];
  }
  return { found: true, value: v };
}

/** Short text of a value for messages. */
export function preview(v: unknown): string {
  if (isHandle(v)) return `the handle of a ${v.kind} stage`;
  let s: string;
  try {
    s = typeof v === "function" ? "a function" : JSON.stringify(v) ?? String(v);
  } catch {
    s = String(v);
  }
  return s.length > 60 ? s.slice(0, 57) + "..." : s;
}
