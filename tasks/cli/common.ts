// Helpers every `lab` command shares: the results folder, folder checks, repeatable and numeric
// options.
import { type Command, InvalidArgumentError } from "commander";
import { resultsDirFrom } from "../../engine/runner.ts";
import { LabError } from "../../engine/errors.ts";

/** The results folder from --results (anywhere on the line), LAB_RESULTS, or ./results. */
export function resultsDir(cmd: Command): string {
  const opts = cmd.optsWithGlobals() as { results?: string };
  const dir = resultsDirFrom(opts.results);
  mustBeFolder(dir, opts.results !== undefined ? "--results" : "the results folder");
  return dir;
}

/** Refuses a path that exists but is not a folder (a missing one is created where needed). */
export function mustBeFolder(path: string, what: string): void {
  let st: Deno.FileInfo;
  try {
    st = Deno.statSync(path);
  } catch {
    return;
  }
  if (!st.isDirectory) {
    throw new LabError(`${what} ${path} is a file, not a folder: name a folder (new or existing)`);
  }
}

/** Collects a repeatable option into a list (--force a --force b, or --force a,b). */
export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, ...value.split(",").map((s) => s.trim()).filter(Boolean)];
}

/** A positive integer option (commander reports a bad value in one line, exit code 2). */
export function positiveInt(name: string) {
  return (v: string): number => {
    const n = Number(v);
    if (!/^\s*\d+\s*$/.test(v) || !Number.isInteger(n) || n < 1) {
      throw new InvalidArgumentError(`${name} must be a positive integer, got ${v}`);
    }
    return n;
  };
}

/** Prints rows as an aligned text table (numbers right-aligned). */
export function formatTable(
  columns: string[],
  rows: Record<string, unknown>[],
  types: string[] = [],
): string {
  const cells = rows.map((r) => columns.map((c) => cellText(r[c])));
  const widths = columns.map((c, i) =>
    Math.min(60, Math.max(c.length, ...cells.map((row) => row[i].length)))
  );
  const numeric = columns.map((_, i) =>
    /INT|DOUBLE|FLOAT|DECIMAL|HUGEINT/.test(types[i] ?? "") ||
    (rows.length > 0 &&
      rows.every((r) => typeof r[columns[i]] === "number" || r[columns[i]] === null))
  );
  const fit = (s: string, w: number) => (s.length > w ? s.slice(0, w - 1) + "…" : s);
  const line = (vals: string[]) =>
    vals.map((
      v,
      i,
    ) => (numeric[i] ? fit(v, widths[i]).padStart(widths[i]) : fit(v, widths[i]).padEnd(widths[i])))
      .join("  ").trimEnd();
  const out = [line(columns), widths.map((w) => "-".repeat(w)).join("  ")];
  for (const row of cells) out.push(line(row));
  out.push(`(${rows.length} row${rows.length === 1 ? "" : "s"})`);
  return out.join("\n");
}

function cellText(v: unknown): string {
  if (v === null || v === undefined) return "NULL";
  if (typeof v === "number") {
    return Number.isInteger(v) ? String(v) : String(Number(v.toPrecision(6)));
  }
  if (typeof v === "object") return JSON.stringify(v);
  return String(v).replace(/\n/g, "⏎");
}

/** Rows as CSV (RFC 4180 quoting). */
export function formatCsv(columns: string[], rows: Record<string, unknown>[]): string {
  const esc = (v: unknown) => {
    if (v === null || v === undefined) return "";
    const s = typeof v === "object" ? JSON.stringify(v) : String(v);
    return /[",\n\r]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s;
  };
  return [columns.map(esc).join(","), ...rows.map((r) => columns.map((c) => esc(r[c])).join(","))]
    .join("\n");
}
