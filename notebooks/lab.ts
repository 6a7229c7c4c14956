// What the notebooks share: where to run (the repository root), quick mode, and rich displays.
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import * as Plot from "@observablehq/plot";
import { parseHTML } from "linkedom";
import { tableHtml } from "../reports/html.ts";

/** The repository root (the folder that holds deno.json). */
export const ROOT = fileURLToPath(new URL("..", import.meta.url));

/** A notebook's settings: the pipeline to run and the results folder it writes. */
export interface NotebookSetup {
  /** True under LAB_NOTEBOOK_QUICK=1: a seconds-long stand-in pipeline, into a scratch folder. */
  quick: boolean;
  /** The pipeline file, relative to the repository root. */
  pipeline: string;
  /** The results folder (the project's `results/` unless quick). */
  results: string;
}

/**
 * Moves to the repository root (pipelines name data files relative to it) and picks the
 * pipeline: `pipelines/<name>.ts`, or `notebooks/quick/<name>.ts` when LAB_NOTEBOOK_QUICK=1.
 */
export function setup(name: string): NotebookSetup {
  Deno.chdir(ROOT);
  const quick = Deno.env.get("LAB_NOTEBOOK_QUICK") === "1";
  const results = quick
    ? Deno.env.get("LAB_NOTEBOOK_RESULTS") ?? Deno.makeTempDirSync({ prefix: "lab-notebook-" })
    : Deno.env.get("LAB_RESULTS") ?? join(ROOT, "results");
  const pipeline = quick ? `notebooks/quick/${name}.ts` : `pipelines/${name}.ts`;
  return { quick, pipeline, results };
}

/** An object Jupyter shows as the given MIME bundle (Deno's kernel reads this symbol). */
function display(bundle: Record<string, string>): unknown {
  return { [Symbol.for("Jupyter.display")]: () => bundle };
}

/** Shows an SVG (a chart) inline. */
export function svg(markup: string | null, fallback = "no chart: no data yet"): unknown {
  return markup ? display({ "image/svg+xml": markup, "text/plain": "[chart]" }) : fallback;
}

/** Shows rows as an HTML table (numbers to about 4 significant digits), with a text fallback. */
export function table(rows: Record<string, unknown>[], columns?: string[]): unknown {
  const cols = columns ?? Object.keys(rows[0] ?? {});
  const text = [cols.join("\t"), ...rows.map((r) => cols.map((c) => String(r[c])).join("\t"))]
    .join("\n");
  return display({ "text/html": tableHtml(cols, rows), "text/plain": text });
}

/** Rows of a read-only SQL query on a results folder's lab.duckdb. */
export async function query(results: string, sql: string): Promise<Record<string, unknown>[]> {
  const { queryResults } = await import("../engine/store.ts");
  return await queryResults(results, sql);
}

/**
 * Shows an Observable Plot chart, drawn into linkedom's DOM as the report's charts are: an SVG,
 * or HTML when Plot wraps it in a figure (a legend, a title).
 */
export function plot(options: Plot.PlotOptions): unknown {
  const { document } = parseHTML("<!doctype html><html><body></body></html>") as unknown as {
    document: Plot.PlotOptions["document"];
  };
  const markup = (Plot.plot({ ...options, document }) as unknown as { outerHTML: string })
    .outerHTML;
  return markup.startsWith("<svg")
    ? svg(markup)
    : display({ "text/html": markup, "text/plain": "[chart]" });
}
