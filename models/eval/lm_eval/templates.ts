// doc_to_text / doc_to_choice / doc_to_target as lm-eval reads them: a field name, or a Jinja template.
import { Template } from "@huggingface/jinja";
import { LabError } from "../../../errors.ts";
import type { Doc } from "./documents.ts";
import type { TaskConfig } from "./task_config.ts";

type Key = "doc_to_text" | "doc_to_choice" | "doc_to_target";

/** Where a document came from, for error messages. */
export interface DocRef {
  task: TaskConfig;
  index: number;
  split: string;
}

function fail(ref: DocRef, key: Key, msg: string): never {
  throw new LabError(
    `lm-eval task ${ref.task.file}: key '${key}', document ${ref.index} of split ${ref.split}: ${msg}`,
  );
}

const compiled = new Map<string, Template>();

/** Renders a template, refusing (as lm-eval's StrictUndefined does) one that names a missing field. */
export function render(source: string, doc: Doc, ref: DocRef, key: Key): string {
  let t = compiled.get(source);
  if (!t) {
    try {
      t = new Template(source);
    } catch (e) {
      fail(ref, key, `not a valid Jinja template (${(e as Error).message})`);
    }
    compiled.set(source, t);
  }
  const missing = missingField(t.parsed, doc);
  if (missing) {
    fail(
      ref,
      key,
      `the template uses '${missing}', which the document lacks (it has ${
        Object.keys(doc).join(", ")
      })`,
    );
  }
  try {
    return t.render(doc);
  } catch (e) {
    return fail(ref, key, (e as Error).message);
  }
}

const GLOBALS = new Set([
  "range",
  "loop",
  "namespace",
  "true",
  "false",
  "none",
  "True",
  "False",
  "None",
]);

type Node = { type?: string; [k: string]: unknown };

/** The first field a template reads that `doc` lacks: a bare name, or `field.sub` of an object field. */
export function missingField(ast: unknown, doc: Doc): string | null {
  const bound = new Set(GLOBALS);
  const nodes: Node[] = [];
  const walk = (n: unknown, key = ""): void => {
    if (Array.isArray(n)) return n.forEach((x) => walk(x, key));
    if (!n || typeof n !== "object") return;
    const node = n as Node;
    // Filter and test names are identifiers too, but not fields.
    if (key === "filter" || key === "test") return;
    if (node.type === "For") bindNames(node.loopvar, bound);
    if (node.type === "Set") bindNames(node.assignee, bound);
    if (node.type === "Macro") (node.args as unknown[]).forEach((a) => bindNames(a, bound));
    nodes.push(node);
    for (const [k, v] of Object.entries(node)) if (k !== "type") walk(v, k);
  };
  walk(ast);
  for (const n of nodes) {
    if (n.type === "Identifier" && !bound.has(n.value as string) && !(n.value as string in doc)) {
      // A non-computed member's property is an Identifier too: checked below, not as a field.
      if (!isMemberProperty(nodes, n)) return n.value as string;
    }
    if (n.type === "MemberExpression" && !n.computed) {
      const obj = n.object as Node, prop = n.property as Node;
      if (obj.type !== "Identifier" || bound.has(obj.value as string)) continue;
      const v = doc[obj.value as string];
      if (v && typeof v === "object" && !Array.isArray(v) && !((prop.value as string) in v)) {
        return `${obj.value}.${prop.value}`;
      }
    }
  }
  return null;
}

function isMemberProperty(nodes: Node[], id: Node): boolean {
  return nodes.some((m) => m.type === "MemberExpression" && !m.computed && m.property === id);
}

function bindNames(n: unknown, bound: Set<string>): void {
  const node = n as Node;
  if (node?.type === "Identifier") bound.add(node.value as string);
  else if (Array.isArray(node?.value)) {
    (node.value as unknown[]).forEach((x) => bindNames(x, bound));
  }
}

/** A field's value when `spec` names a field, else the rendered template. */
function fieldOrTemplate(spec: string, doc: Doc, ref: DocRef, key: Key): unknown {
  return spec in doc ? doc[spec] : render(spec, doc, ref, key);
}

/** The prompt text of a document (an int when it indexes the choices, as lm-eval allows). */
export function docToText(doc: Doc, ref: DocRef): string | number {
  const spec = ref.task.doc_to_text ?? "";
  if (typeof spec === "number") return spec;
  const v = fieldOrTemplate(spec, doc, ref, "doc_to_text");
  if (typeof v === "number") return v;
  const s = String(v);
  return /^\d+$/.test(s) && ref.task.doc_to_choice !== undefined ? Number(s) : s;
}

/** The choices of a document. */
export function docToChoice(doc: Doc, ref: DocRef): string[] {
  const spec = ref.task.doc_to_choice;
  if (spec === undefined) fail(ref, "doc_to_choice", "the task has no doc_to_choice");
  if (Array.isArray(spec)) return spec;
  const v = spec in doc ? doc[spec] : pythonList(render(spec, doc, ref, "doc_to_choice"));
  if (!Array.isArray(v) || v.length < 1) {
    fail(ref, "doc_to_choice", `expected a list of choices, got ${JSON.stringify(v)}`);
  }
  return v.map((c) => String(c));
}

/** The target of a document: a string, an index into the choices, or a list of them. */
export function docToTarget(doc: Doc, ref: DocRef): string | number | (string | number)[] {
  const spec = ref.task.doc_to_target ?? "";
  if (typeof spec === "number") return spec;
  const v = fieldOrTemplate(spec, doc, ref, "doc_to_target");
  if (typeof v === "number" || Array.isArray(v)) return v as number | (string | number)[];
  const s = String(v);
  if (/^\d+$/.test(s) && ref.task.doc_to_choice !== undefined) return Number(s);
  if (s.length >= 2 && s.startsWith("[") && s.endsWith("]")) {
    const list = pythonList(s);
    if (Array.isArray(list)) return list as (string | number)[];
  }
  return s;
}

/**
 * A list literal as a template renders it: JSON (`["a", "b"]`, what Jinja gives here) or
 * Python's repr (`['a', 'b']`); null when it is neither.
 */
export function pythonList(s: string): unknown[] | null {
  const text = s.trim();
  try {
    const v = JSON.parse(text);
    return Array.isArray(v) ? v : null;
  } catch {
    // Python repr: rewrite single-quoted strings as JSON strings.
  }
  const json = text.replace(
    /'((?:[^'\\]|\\.)*)'/g,
    (_, body: string) => JSON.stringify(body.replace(/\\'/g, "'").replace(/\\\\/g, "\\")),
  ).replace(
    /\bTrue\b|\bFalse\b|\bNone\b/g,
    (w) => ({ True: "true", False: "false", None: "null" })[w]!,
  );
  try {
    const v = JSON.parse(json);
    return Array.isArray(v) ? v : null;
  } catch {
    return null;
  }
}
