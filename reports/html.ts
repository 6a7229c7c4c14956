/**
 * The report as one self-contained HTML file: inline CSS and inline SVG, no script and no
 * external reference, so it opens anywhere without a network. The dashboard reuses the same
 * section markup.
 */
import type { Chart } from "./charts.ts";
import { escapeXml, fmt } from "./charts.ts";
import type { ReportData, Row, SectionData } from "./data.ts";

const esc = escapeXml;

/** Column headers people read, for the columns the report shows. */
const HEADERS: Record<string, string> = {
  weight_mb: "weight MB",
  bits_per_param: "bits/param",
  peak_mb: "peak MB",
  ttft_ms: "TTFT ms",
  prefill_tps: "prefill tok/s",
  decode_tps: "decode tok/s",
  ppl: "PPL",
  delta_ppl: "ΔPPL",
  bits_per_byte: "bits/byte",
  accuracy: "accuracy",
  front_memory_quality: "memory/quality front",
  dominated: "dominated",
};

/** CSS shared by the report and the dashboard. */
export const STYLE = `
:root { color-scheme: light; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0; color: #1d2433; background: #f6f7f9; }
header { background: #1d2433; color: #fff; padding: 14px 24px; }
header h1 { font-size: 20px; margin: 0; }
header p { margin: 2px 0 0; color: #c8cfdb; font-size: 12px; }
main { max-width: 1180px; margin: 0 auto; padding: 12px 24px 40px; }
section { background: #fff; border: 1px solid #e1e4ea; border-radius: 6px; padding: 12px 16px; margin: 16px 0; }
section h2 { font-size: 16px; margin: 0 0 4px; }
.caption { color: #566070; margin: 0 0 8px; font-size: 13px; }
.note { color: #566070; font-style: italic; background: #f3f4f7; padding: 8px 10px; border-radius: 4px; }
figure { margin: 0; overflow-x: auto; }
figure svg { max-width: 100%; height: auto; }
details.sql { margin-top: 8px; }
details.sql summary { cursor: pointer; color: #566070; font-size: 12px; }
pre { background: #f3f4f7; padding: 8px 10px; border-radius: 4px; overflow-x: auto; font-size: 12px; margin: 4px 0 0; }
.table-wrap { overflow-x: auto; max-height: 520px; overflow-y: auto; }
table { border-collapse: collapse; font-size: 12.5px; }
th, td { padding: 3px 8px; border-bottom: 1px solid #eceef2; text-align: left; white-space: nowrap; }
th { position: sticky; top: 0; background: #fff; font-weight: 600; border-bottom: 1px solid #c9ced8; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.front td:first-child, tr.front td.config { font-weight: 600; }
.badge { display: inline-block; padding: 0 6px; border-radius: 8px; font-size: 11px; }
.badge.front { background: #fbe3e6; color: #a3283a; }
.sev-error { color: #a3283a; font-weight: 600; }
.sev-warning { color: #9a6700; font-weight: 600; }
.sev-info { color: #566070; }
nav { font-size: 13px; margin: 8px 0 0; }
nav a { color: #c8cfdb; margin-right: 12px; text-decoration: none; }
`;

/** A value as table text (numbers to about 4 significant digits, NULL as empty). */
function cell(v: unknown): { text: string; numeric: boolean } {
  if (v === null || v === undefined) return { text: "", numeric: false };
  if (typeof v === "number") return { text: fmt(v), numeric: true };
  if (typeof v === "boolean") return { text: v ? "yes" : "no", numeric: false };
  if (typeof v === "object") return { text: JSON.stringify(v), numeric: false };
  return { text: String(v), numeric: false };
}

/** An HTML table of rows; `rowClass` marks rows (e.g. on the Pareto front). */
export function tableHtml(
  columns: string[],
  rows: Row[],
  opts: { rowClass?: (r: Row) => string; render?: Record<string, (r: Row) => string> } = {},
): string {
  const head = columns.map((c) => `<th>${esc(HEADERS[c] ?? c)}</th>`).join("");
  const body = rows.map((r) => {
    const cls = opts.rowClass?.(r);
    const tds = columns.map((c) => {
      const custom = opts.render?.[c];
      if (custom) return `<td>${custom(r)}</td>`;
      const { text, numeric } = cell(r[c]);
      return `<td${numeric ? ' class="num"' : ""}>${esc(text)}</td>`;
    }).join("");
    return `<tr${cls ? ` class="${cls}"` : ""}>${tds}</tr>`;
  }).join("\n");
  return `<div class="table-wrap"><table><thead><tr>${head}</tr></thead><tbody>\n${body}\n</tbody></table></div>`;
}

function sqlHtml(sql: string): string {
  // Collapsed: the charts are the page; the query is one click away for whoever wants it.
  return `<details class="sql"><summary>SQL</summary><pre><code>${esc(sql)}</code></pre></details>`;
}

function sectionHtml(id: string, title: string, caption: string, inner: string, sql: string) {
  return `<section id="${esc(id)}" data-section="${esc(id)}"><h2>${esc(title)}</h2>${
    caption ? `<p class="caption">${esc(caption)}</p>` : ""
  }${inner}${sqlHtml(sql)}</section>`;
}

function noteHtml(note: string | undefined): string {
  return `<p class="note">${esc(note ?? "no data yet")}</p>`;
}

/** The trade-off table section. */
export function tradeoffHtml(s: SectionData): string {
  const multi = new Set(s.rows.map((r) => r.pipeline)).size > 1;
  const cols = s.columns.filter((c) =>
    c !== "dominated" && c !== "front_memory_quality" && (multi || c !== "pipeline") &&
    // Columns with no value in any row are left out of the table (they are in the SQL).
    s.rows.some((r) => r[c] !== null && r[c] !== undefined)
  );
  const inner = s.rows.length
    ? tableHtml([...cols, "front_memory_quality"], s.rows, {
      rowClass: (r) => (r.front_memory_quality === true ? "front" : ""),
      render: {
        front_memory_quality: (r) =>
          r.front_memory_quality === true
            ? '<span class="badge front">front</span>'
            : r.dominated === true
            ? "dominated"
            : "",
      },
    })
    : noteHtml(s.note);
  return sectionHtml(
    s.query.id,
    s.query.title,
    s.rows.length
      ? "One row per quantized configuration (latest run of each pipeline); speed at the " +
        "smallest profiled batch and prompt; ΔPPL against the fp32 configuration."
      : "",
    inner,
    s.query.sql,
  );
}

/** A chart section: the SVG or its note, then the SQL. */
export function chartHtml(c: Chart): string {
  const inner = c.svg ? `<figure data-chart="${esc(c.id)}">${c.svg}</figure>` : noteHtml(c.note);
  return sectionHtml(c.id, c.title, c.svg ? c.caption : "", inner, c.sql);
}

/** The warnings section. */
export function warningsHtml(s: SectionData): string {
  const inner = s.rows.length
    ? tableHtml(["severity", "pipeline", "stage", "kind", "message", "metric", "value"], s.rows, {
      render: {
        severity: (r) =>
          `<span class="sev-${esc(String(r.severity ?? "info"))}">${
            esc(String(r.severity ?? ""))
          }</span>`,
        message: (r) => `<span style="white-space:normal">${esc(String(r.message ?? ""))}</span>`,
      },
    })
    : noteHtml(s.note?.replace(/^no data yet: /, ""));
  return sectionHtml(
    s.query.id,
    s.query.title,
    s.rows.length ? "Where metrics disagree, e.g. perplexity near the base while KLD rose." : "",
    inner,
    s.query.sql,
  );
}

/** All sections in reading order (table, charts, warnings). */
export function sectionsHtml(data: ReportData, charts: Chart[]): string {
  const byId = new Map(charts.map((c) => [c.id, c]));
  const parts = [tradeoffHtml(data.sections.get("tradeoff")!)];
  for (const id of ["memory_quality", "speed_quality", "prefill_decode", "sensitivity"]) {
    parts.push(chartHtml(byId.get(id)!));
  }
  // Loss curves only when there are fine-tuning runs; otherwise a one-line note.
  parts.push(chartHtml(byId.get("training")!));
  for (const id of ["serving_latency", "serving_throughput"]) parts.push(chartHtml(byId.get(id)!));
  parts.push(warningsHtml(data.sections.get("warnings")!));
  return parts.join("\n");
}

/** The complete report page. */
export function reportHtml(data: ReportData, charts: Chart[]): string {
  const runs = data.runs.rows;
  const latest = runs[0];
  const sub = runs.length
    ? `${runs.length} run${
      runs.length === 1 ? "" : "s"
    } · latest: ${latest.pipeline} (${latest.status}, ${String(latest.started_at ?? "")})`
    : "no runs yet";
  const nav = [
    "tradeoff",
    "memory_quality",
    "speed_quality",
    "prefill_decode",
    "sensitivity",
    "training",
    "warnings",
  ]
    .map((id) => `<a href="#${id}">${esc(id.replace("_", " "))}</a>`).join("");
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>LLM Efficiency Lab report</title>
<style>${STYLE}</style></head>
<body><header><h1>LLM Efficiency Lab report</h1>
<p>${esc(data.resultsDir)} · generated ${esc(data.generatedAt)} · ${esc(sub)}</p>
<nav>${nav}</nav></header>
<main>
${sectionsHtml(data, charts)}
</main></body></html>
`;
}
