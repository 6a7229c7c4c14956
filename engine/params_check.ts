// Reading stage params against their zod schema for messages: unknown fields (with a
// did-you-mean suggestion), the value found at an issue's path, and short previews of values.
import type { z } from "zod";
import { isHandle } from "./build.ts";

type ZodDefLike = { type?: string; innerType?: z.ZodType; shape?: Record<string, z.ZodType> };

// zod 4 keeps a schema's structure in `_zod.def`; wrappers (optional, default, ...) are peeled
// to reach the object whose keys are the known fields.
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

/** Calls `report` for every field of `raw` (nested objects too) that `schema` does not know. */
export function unknownFields(
  schema: z.ZodType,
  raw: unknown,
  prefix: string,
  report: (field: string, known: string[]) => void,
): void {
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

/** ` (did you mean "x"?)` when one of `known` is close enough to `word`, else "". */
export function suggest(word: string, known: string[]): string {
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

/** The value at `path` inside `raw`, if there is one. */
export function valueAt(raw: unknown, path: PropertyKey[]): { found: boolean; value?: unknown } {
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
