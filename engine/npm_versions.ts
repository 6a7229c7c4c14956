/**
 * The npm packages a stage's code reaches, with the versions deno.lock pins: upgrading
 * `@huggingface/tokenizers` changes how text becomes tokens, so stages whose modules import it
 * must re-run, and only those. A package counts with everything it depends on (its lockfile
 * closure, by integrity), so a transitive upgrade re-keys too.
 */
import { blake3Hex } from "./canonical.ts";

const ROOT = new URL("../", import.meta.url);

interface Lock {
  specifiers?: Record<string, string>;
  npm?: Record<string, { integrity?: string; dependencies?: string[] }>;
}

let project: { imports: Record<string, string>; lock: Lock; lockText: string } | undefined;

const answers = new Map<string, Record<string, string>>();

/** Forgets the memoised deno.json and deno.lock (tests edit them). */
export function clearNpmCache(): void {
  project = undefined;
  answers.clear();
}

function read(name: string): string {
  // LAB_DENO_LOCK names another lockfile (a CI matrix over dependency versions, tests).
  const override = name === "deno.lock" ? Deno.env.get("LAB_DENO_LOCK") : undefined;
  try {
    return Deno.readTextFileSync(override ?? new URL(name, ROOT));
  } catch {
    return "";
  }
}

let projectLock: string | undefined;

function load() {
  if (project && projectLock === Deno.env.get("LAB_DENO_LOCK")) return project;
  projectLock = Deno.env.get("LAB_DENO_LOCK");
  let imports: Record<string, string> = {};
  let lock: Lock = {};
  const lockText = read("deno.lock");
  try {
    imports = JSON.parse(read("deno.json") || "{}").imports ?? {};
  } catch { /* no import map: only npm: specifiers resolve */ }
  try {
    lock = JSON.parse(lockText || "{}");
  } catch { /* an unreadable lock pins nothing */ }
  project = { imports, lock, lockText };
  return project;
}

/** "@scope/pkg/sub" → "@scope/pkg"; "pkg/sub" → "pkg". */
function packageName(spec: string): string {
  const parts = spec.split("/");
  return spec.startsWith("@") ? parts.slice(0, 2).join("/") : parts[0];
}

/** "npm:name@range/sub" → ["name", "npm:name@range"]. */
function npmRequest(spec: string): [string, string] | null {
  const m = /^npm:(@?[^@/]+(?:\/[^@/]+)?)(?:@([^/]+))?/.exec(spec);
  if (!m) return null;
  return [m[1], `npm:${m[1]}${m[2] ? `@${m[2]}` : ""}`];
}

/** Every `name@version` with its integrity in the lockfile closure of `root`. */
function closure(lock: Lock, root: string): string[] {
  const npm = lock.npm ?? {};
  const out = new Set<string>();
  const queue = [root];
  while (queue.length) {
    const id = queue.shift()!;
    if (out.has(id)) continue;
    const entry = npm[id];
    if (!entry) continue;
    out.add(id);
    for (const dep of entry.dependencies ?? []) {
      // "name" when one version is locked, else "name@version".
      if (npm[dep]) queue.push(dep);
      else queue.push(...Object.keys(npm).filter((k) => k.startsWith(`${dep}@`)));
    }
  }
  return [...out].sort().map((id) => `${id} ${npm[id].integrity ?? ""}`);
}

/**
 * Locked versions of the packages behind `specifiers` (bare import-map names or npm:
 * specifiers): package name → "version closure-hash", or "unlocked" when deno.lock does not
 * pin it. Specifiers that are not npm packages are left out.
 */
export function npmVersions(specifiers: readonly string[]): Record<string, string> {
  // Planning asks once per node, mostly with the same few lists; LAB_DENO_LOCK is in the id.
  const id = `${Deno.env.get("LAB_DENO_LOCK") ?? ""}\u0000${specifiers.join("\u0000")}`;
  let hit = answers.get(id);
  if (!hit) answers.set(id, hit = resolveVersions(specifiers));
  return { ...hit };
}

function resolveVersions(specifiers: readonly string[]): Record<string, string> {
  const { imports, lock } = load();
  const out: Record<string, string> = {};
  for (const spec of specifiers) {
    let target = spec;
    if (!spec.startsWith("npm:")) {
      const mapped = imports[spec] ?? imports[packageName(spec)];
      if (!mapped) continue;
      target = mapped;
    }
    const req = npmRequest(target);
    if (!req) continue;
    const [name, request] = req;
    const version = lock.specifiers?.[request];
    if (!version) {
      out[name] = "unlocked";
      continue;
    }
    const ids = closure(lock, `${name}@${version}`);
    out[name] = `${version} ${blake3Hex(ids.join("\n"), 12)}`;
  }
  return out;
}
