// The source part of a cache key: a stage module and the project modules it imports, hashed.
import { fileURLToPath, pathToFileURL } from "node:url";
import { blake3Hex } from "./canonical.ts";

// The engine is framework code: editing it must not invalidate every result.
const ENGINE_DIR = new URL("./", import.meta.url).href;
const SELF_URL = new URL(import.meta.url).href;

const moduleText = new Map<string, string | null>();
const closureHash = new Map<string, string>();

function readModule(url: string): string | null {
  let text = moduleText.get(url);
  if (text === undefined) {
    try {
      text = Deno.readTextFileSync(fileURLToPath(url));
    } catch {
      text = null;
    }
    moduleText.set(url, text);
  }
  return text;
}

/** Forgets what was read, so that edited files are hashed afresh (tests, long-lived processes). */
export function clearSourceCache(): void {
  moduleText.clear();
  closureHash.clear();
  sourceInfo.clear();
}

const IMPORT_RES = [
  /\b(?:import|export)\s+(?:type\s+)?[^'";]*?\bfrom\s*["']([^"']+)["']/g,
  /\bimport\s*["']([^"']+)["']/g,
  /\bimport\s*\(\s*["']([^"']+)["']\s*[,)]/g,
];

/** Relative / file: specifiers a module imports, resolved to file URLs. */
export function localImports(url: string, text: string): string[] {
  const out = new Set<string>();
  for (const re of IMPORT_RES) {
    re.lastIndex = 0;
    for (const m of text.matchAll(re)) {
      const spec = m[1];
      if (spec.startsWith("./") || spec.startsWith("../") || spec.startsWith("/")) {
        out.add(new URL(spec, url).href.split(/[?#]/)[0]);
      } else if (spec.startsWith("file:")) out.add(spec.split(/[?#]/)[0]);
    }
  }
  return [...out];
}

// A module that defines a stage of its own (a literal kind), as opposed to a helper that wraps
// defineStage for other modules: the latter is hashed like any other import.
const DEFINES_STAGE = /\bdefineStage\s*\(\s*\{[^]{0,600}?\bkind\s*:\s*["'`]/;

/**
 * Hash of a stage module's source and of the project modules it imports transitively.
 * Skipped: the engine itself, and other modules that define stages (those stages key
 * themselves; a dependency between stages goes through their inputs). In the defining
 * module, `pipeline(...)` calls are cut out so that editing a sweep value re-runs only the
 * affected branch, not every stage defined in the same file — unless the stage is defined
 * inside that call (`definedAt` is the offset of the defineStage call).
 */
export function stageSourceHash(
  moduleUrl: string,
  definedAt?: { line: number; col: number },
): string {
  return stageSourceInfo(moduleUrl, definedAt).hash;
}

/** What a stage's source hash covers, for `lab why`: each file's hash, and the npm packages. */
export interface SourceInfo {
  hash: string;
  /** Project-relative path (or absolute, outside the project) → content hash (16 hex). */
  files: Record<string, string>;
  /** Bare and npm: specifiers the modules import (their versions come from deno.lock). */
  packages: string[];
}

const sourceInfo = new Map<string, SourceInfo>();
const ROOT_DIR = new URL("../", import.meta.url).href;

function displayPath(url: string): string {
  if (url.startsWith(ROOT_DIR)) return url.slice(ROOT_DIR.length);
  return url.startsWith("file:") ? fileURLToPath(url) : url;
}

/** The source hash of a stage with its parts (see stageSourceHash). */
export function stageSourceInfo(
  moduleUrl: string,
  definedAt?: { line: number; col: number },
): SourceInfo {
  const id = `${moduleUrl}#${definedAt?.line ?? 0}:${definedAt?.col ?? 0}`;
  const hit = sourceInfo.get(id);
  if (hit) return hit;
  const parts: string[] = [];
  const files: Record<string, string> = {};
  const packages = new Set<string>();
  const own = readModule(moduleUrl);
  if (own === null) throw new Error(`cannot read stage module ${moduleUrl}`);
  const offset = definedAt ? offsetOf(own, definedAt.line, definedAt.col) : -1;
  const ownText = withoutPipelineCalls(own, offset);
  parts.push(`${moduleUrl}\n${ownText}`);
  files[displayPath(moduleUrl)] = blake3Hex(ownText, 16);
  for (const p of packageImports(ownText)) packages.add(p);
  const seen = new Set<string>([moduleUrl]);
  const queue = localImports(moduleUrl, own);
  while (queue.length) {
    const url = queue.shift()!;
    if (seen.has(url)) continue;
    seen.add(url);
    if (url.startsWith(ENGINE_DIR)) continue;
    const text = readModule(url);
    if (text === null) continue;
    if (DEFINES_STAGE.test(text)) continue;
    parts.push(`${url}\n${text}`);
    files[displayPath(url)] = blake3Hex(text, 16);
    for (const p of packageImports(text)) packages.add(p);
    queue.push(...localImports(url, text));
  }
  // Paths relative to nothing would make keys machine-specific: hash contents only, in a
  // stable order, with URLs reduced to their name within the set.
  const body = parts.map((p) => p.slice(p.indexOf("\n") + 1)).sort().join("\u0000");
  const info = { hash: blake3Hex(body, 32), files, packages: [...packages].sort() };
  sourceInfo.set(id, info);
  closureHash.set(id, info.hash);
  return info;
}

/** Bare (import-map) and npm: specifiers a module imports; node: and URLs are not packages. */
export function packageImports(text: string): string[] {
  const out = new Set<string>();
  for (const re of IMPORT_RES) {
    re.lastIndex = 0;
    for (const m of text.matchAll(re)) {
      const spec = m[1];
      if (/^(\.{1,2}\/|\/|file:|node:|https?:|data:|jsr:)/.test(spec)) continue;
      out.add(spec);
    }
  }
  return [...out];
}

function offsetOf(text: string, line: number, col: number): number {
  let off = 0;
  for (let l = 1; l < line; l++) {
    const nl = text.indexOf("\n", off);
    if (nl < 0) return -1;
    off = nl + 1;
  }
  return off + col - 1;
}

/** The text with every `pipeline(...)` call expression removed, unless it contains `keep`. */
export function withoutPipelineCalls(text: string, keep = -1): string {
  const re = /(^|[^\w$.])pipeline\s*\(/g;
  let out = "";
  let last = 0;
  for (const m of text.matchAll(re)) {
    const start = m.index! + m[1].length;
    if (start < last) continue;
    const open = m.index! + m[0].length - 1;
    const end = matchParen(text, open);
    if (end < 0) break;
    if (keep >= start && keep <= end) continue;
    out += text.slice(last, start);
    last = end + 1;
  }
  return out + text.slice(last);
}

/** Index of the parenthesis closing the one at `open`, skipping strings and comments. */
function matchParen(text: string, open: number): number {
  let depth = 0;
  for (let i = open; i < text.length; i++) {
    const c = text[i];
    if (c === "(" || c === "{" || c === "[") depth++;
    else if (c === ")" || c === "}" || c === "]") {
      depth--;
      if (depth === 0) return i;
    } else if (c === '"' || c === "'") {
      i = skipString(text, i, c);
    } else if (c === "`") {
      i = skipTemplate(text, i);
    } else if (c === "/" && text[i + 1] === "/") {
      const nl = text.indexOf("\n", i);
      i = nl < 0 ? text.length : nl;
    } else if (c === "/" && text[i + 1] === "*") {
      const e = text.indexOf("*/", i + 2);
      i = e < 0 ? text.length : e + 1;
    }
  }
  return -1;
}

function skipString(text: string, i: number, q: string): number {
  for (i++; i < text.length; i++) {
    if (text[i] === "\\") i++;
    else if (text[i] === q || text[i] === "\n") return i;
  }
  return i;
}

function skipTemplate(text: string, i: number): number {
  for (i++; i < text.length; i++) {
    if (text[i] === "\\") i++;
    else if (text[i] === "`") return i;
    else if (text[i] === "$" && text[i + 1] === "{") {
      const end = matchParen(text, i + 1);
      if (end < 0) return text.length;
      i = end;
    }
  }
  return i;
}

/** The first file: URL on the stack outside `skipUrl`, with its line and column. */
export function callerLocation(
  skipUrls: string[],
): { url: string; line: number; col: number } | undefined {
  const stack = new Error().stack ?? "";
  for (const line of stack.split("\n").slice(1)) {
    const m = line.match(/(file:\/\/[^\s()]+?):(\d+):(\d+)\)?\s*$/);
    if (!m) continue;
    const url = m[1].split(/[?#]/)[0];
    if (url === SELF_URL || skipUrls.includes(url)) continue;
    return { url, line: Number(m[2]), col: Number(m[3]) };
  }
  return undefined;
}

/** A path or URL as a file URL string. */
export function asFileUrl(p: string | URL): string {
  if (p instanceof URL) return p.href;
  if (p.startsWith("file:")) return p;
  return pathToFileURL(p).href;
}
