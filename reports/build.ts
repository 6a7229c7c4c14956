/** `lab report`'s work: read the results, render the charts, write the HTML (and PNGs). */
import { dirname } from "node:path";
import { type Chart, renderCharts } from "./charts.ts";
import { readReportData, type ReportData } from "./data.ts";
import { reportHtml } from "./html.ts";
import { writePngs } from "./png.ts";

/** What buildReport wrote. */
export interface ReportResult {
  out: string;
  pngs: string[];
  charts: Chart[];
  data: ReportData;
  /** True when the database holds no runs yet: the report is all "no data yet" notes. */
  empty: boolean;
}

/**
 * Builds the report of `resultsDir` into `out` (and PNGs into `pngDir`). Reads the database
 * read-only; writes nothing else.
 */
export async function buildReport(
  resultsDir: string,
  opts: { out: string; pngDir?: string },
): Promise<ReportResult> {
  const data = await readReportData(resultsDir);
  const charts = renderCharts(data);
  const html = reportHtml(data, charts);
  Deno.mkdirSync(dirname(opts.out), { recursive: true });
  const tmp = `${opts.out}.tmp-${Deno.pid}`;
  Deno.writeTextFileSync(tmp, html);
  Deno.renameSync(tmp, opts.out);
  const pngs = opts.pngDir ? writePngs(opts.pngDir, data, charts) : [];
  return { out: opts.out, pngs, charts, data, empty: data.runs.rows.length === 0 };
}
