/**
 * Chart specs: each section's rows turned into an SVG string with Observable Plot, rendered
 * when the report is built (no browser, no script in the page). Plot needs a DOM to build
 * into; linkedom provides a small one, and the SVG's text is all that is kept.
 */
import * as Plot from "@observablehq/plot";
import { parseHTML } from "linkedom";
import { PROJECTION_NAMES } from "../models/projections.ts";
import type { ReportData, Row, SectionData } from "./data.ts";
import { nonOverlappingLabels } from "./label_layout.ts";
import { servingCharts } from "./serving_charts.ts";

/** A rendered chart: its SVG, or the note that stands in for it. */
export interface Chart {
  id: string;
  title: string;
  /** What the chart shows and how to read it, one sentence. */
  caption: string;
  svg: string | null;
  note?: string;
  sql: string;
  /** Marks drawn, by kind, for tests: circles in dot marks, rects in cell marks, line paths. */
  marks: { dots?: number; cells?: number; lines?: number };
}

// linkedom's types name the DOM's globals, which Deno's types lack: only `document` is used.
const document = (parseHTML("<!doctype html><html><body></body></html>") as unknown as {
  document: unknown;
}).document as Plot.PlotOptions["document"];
const WIDTH = 680;
const MAX_LABELS = 30;
const MAX_SERIES_LABELS = 12;
const MAX_VARIANTS = 6;
const MODULE_ORDER = [...PROJECTION_NAMES, "lm_head"];

const num = (v: unknown): number | null => {
  if (v === null || v === undefined || v === "") return null;
  const n = typeof v === "number" ? v : Number(v);
  return Number.isFinite(n) ? n : null;
};

/** A number with about 4 significant digits, for labels and titles. */
export function fmt(v: unknown): string {
  const n = num(v);
  if (n === null) return v === null || v === undefined ? "" : String(v);
  if (n === 0) return "0";
  const a = Math.abs(n);
  if (a >= 1e5 || a < 1e-3) return n.toExponential(2);
  if (Number.isInteger(n)) return String(n);
  return String(Number(n.toPrecision(4)));
}

/** The little of a DOM element that is read here (Deno's types have no DOM). */
interface Element {
  tagName: string;
  outerHTML: string;
  querySelector(selector: string): Element | null;
}

/** An SVG element (or the first SVG of a figure) as standalone SVG text. */
function svgText(el: Element): string {
  const svg = el.tagName.toLowerCase() === "svg" ? el : el.querySelector("svg");
  if (!svg) throw new Error("Plot produced no SVG");
  let s = svg.outerHTML;
  if (!/^<svg[^>]*\sxmlns=/.test(s)) {
    s = s.replace("<svg", '<svg xmlns="http://www.w3.org/2000/svg"');
  }
  return s;
}

/** Plot options rendered to an SVG string at the report's width. */
export function plot(options: Plot.PlotOptions): string {
  return svgText(
    Plot.plot(
      { document, width: WIDTH, style: { background: "white" }, ...options } as Plot.PlotOptions,
    ) as unknown as Element,
  );
}

/** The note that stands in for a chart without rows. */
export function noteChart(section: SectionData, caption: string): Chart {
  return {
    id: section.query.id,
    title: section.query.title,
    caption,
    svg: null,
    note: section.note,
    sql: section.query.sql,
    marks: {},
  };
}

// llama.cpp's configurations are marked (◆ and a suffix) beside the lab's own (●).
const engineMark = (r: Row) => (r.engine === "llama.cpp" ? " (llama.cpp)" : "");
const labelOf = (r: Row, multi: boolean) =>
  (multi ? `${r.pipeline} / ${r.configuration}` : String(r.configuration)) + engineMark(r);

/**
 * A quality scatter with its Pareto front as a staircase. `x` is memory (lower is better) or
 * speed (higher is better); quality is perplexity (lower is better) on y.
 */
function scatter(
  section: SectionData,
  x: { field: string; label: string; higherBetter: boolean },
  caption: string,
): Chart {
  const rows = section.rows.filter((r) => num(r[x.field]) !== null && num(r.ppl) !== null)
    .map((r): Row & { x: number; y: number; on_front: boolean } => ({
      ...r,
      x: num(r[x.field])!,
      y: num(r.ppl)!,
      on_front: r.on_front === true,
    }));
  if (!rows.length) {
    return noteChart(
      { ...section, note: section.note ?? `no data yet: ${section.query.empty}` },
      caption,
    );
  }
  const multi = new Set(rows.map((r) => r.pipeline)).size > 1;
  const front = rows.filter((r) => r.on_front).sort((a, b) => a.x - b.x);
  const xs = rows.map((r) => r.x);
  const spread = Math.max(...xs) / Math.max(1e-12, Math.min(...xs));
  const xLog = spread > 30 && Math.min(...xs) > 0;
  // Front points claim their label space first; a label that would overlap is left out.
  const candidates = (rows.length <= MAX_LABELS ? rows : front)
    .map((r) => ({ ...r, text: labelOf(r, multi) }))
    .sort((a, b) => Number(b.on_front) - Number(a.on_front));
  const labelled = nonOverlappingLabels(candidates, {
    width: WIDTH - 150,
    height: 380 - 80,
    xLog,
    dx: 8,
    fontSize: 11,
  });
  const svg = plot({
    height: 380,
    marginRight: 90,
    marginLeft: 60,
    grid: true,
    x: {
      label: x.label,
      type: xLog ? "log" : "linear",
      inset: 12,
      labelArrow: "none",
    },
    y: { label: "Perplexity (lower is better)", inset: 12, labelArrow: "none" },
    marks: [
      Plot.line(front, {
        x: "x",
        y: "y",
        z: "pipeline",
        curve: x.higherBetter ? "step-before" : "step-after",
        stroke: "#d1495b",
        strokeWidth: 2,
        strokeDasharray: "5,3",
      }),
      Plot.dot(rows, {
        x: "x",
        y: "y",
        r: 5,
        symbol: (r: Row) => (r.engine === "llama.cpp" ? "diamond" : "circle"),
        stroke: (r: Row) => (r.on_front ? "#d1495b" : "#4269d0"),
        fill: (r: Row) => (r.on_front ? "#d1495b" : "white"),
        strokeWidth: 1.5,
        title: (r: Row) =>
          `${labelOf(r, multi)}\n${x.label}: ${fmt(r.x)}\nppl: ${fmt(r.y)}${
            r.on_front ? "\non the Pareto front" : ""
          }`,
      }),
      Plot.text(labelled, {
        x: "x",
        y: "y",
        text: "text",
        dx: 8,
        textAnchor: "start",
        fontSize: 11,
      }),
    ],
  });
  return {
    id: section.query.id,
    title: section.query.title,
    caption,
    svg,
    sql: section.query.sql,
    marks: {
      dots: rows.length,
      lines: front.length ? new Set(front.map((r) => r.pipeline)).size : 0,
    },
  };
}

function prefillDecode(section: SectionData, preferred: Set<string>): Chart {
  let caption =
    "Tokens per second in prefill (the prompt, in parallel) and decode (one token at a time), " +
    "with the KV cache, by batch size; log scale. Bars are 95% bootstrap intervals of the " +
    "medians over the repeats.";
  const multi = new Set(section.rows.map((r) => r.pipeline)).size > 1;
  // Beyond a dozen lines the chart is unreadable: keep the memory/quality front first.
  const all = [...new Set(section.rows.map((r) => labelOf(r, multi)))];
  let keep = new Set(all);
  if (all.length > MAX_SERIES_LABELS) {
    const first = all.filter((s) => preferred.has(s));
    const rest = all.filter((s) => !preferred.has(s));
    keep = new Set([...first, ...rest].slice(0, MAX_SERIES_LABELS));
    caption += ` Showing ${keep.size} of ${all.length} configurations (the Pareto front ` +
      `first); the SQL below lists all.`;
  }
  const long: Row[] = [];
  for (const r of section.rows) {
    const series = labelOf(r, multi);
    if (!keep.has(series)) continue;
    for (const phase of ["prefill", "decode"] as const) {
      const v = num(r[`${phase}_tps`]);
      if (v !== null && v > 0 && num(r.batch) !== null) {
        long.push({
          series,
          batch: num(r.batch),
          phase,
          tps: v,
          lo: num(r[`${phase}_tps_lo`]),
          hi: num(r[`${phase}_tps_hi`]),
          noisy: r.noisy === true,
          pipeline: r.pipeline,
        });
      }
    }
  }
  if (!long.length) return noteChart(section, caption);
  const noisy = new Set(long.filter((r) => r.noisy).map((r) => r.series));
  if (noisy.size) {
    caption += ` Marked (noisy): ${noisy.size} configuration${noisy.size > 1 ? "s" : ""} ` +
      `timed while other processes took a significant share of the cores.`;
  }
  const bars = long.filter((r) =>
    r.lo !== null && r.hi !== null && (r.lo as number) > 0 && (r.hi as number) > (r.lo as number)
  );
  const series = new Set(long.map((r) => r.series));
  const batches = [...new Set(long.map((r) => r.batch as number))].sort((a, b) => a - b);
  const labels = series.size <= MAX_SERIES_LABELS;
  const svg = plot({
    height: 360,
    marginRight: 80,
    marginLeft: 60,
    grid: true,
    fx: { label: null, domain: ["prefill", "decode"], tickFormat: (d: string) => `${d} tokens/s` },
    x: { label: "batch size", type: "point", domain: batches, inset: 10 },
    y: { label: "tokens/s", type: "log" },
    color: { type: "categorical" },
    marks: [
      Plot.frame({ strokeOpacity: 0.15 }),
      Plot.line(long, { fx: "phase", x: "batch", y: "tps", z: "series", stroke: "series" }),
      Plot.ruleX(bars, { fx: "phase", x: "batch", y1: "lo", y2: "hi", stroke: "series" }),
      Plot.dot(long, {
        fx: "phase",
        x: "batch",
        y: "tps",
        fill: (r: Row) => (r.noisy ? "white" : r.series),
        stroke: "series",
        r: 3,
        title: (r: Row) =>
          `${r.series}, batch ${r.batch}: ${fmt(r.tps)} ${r.phase} tokens/s` +
          (r.lo !== null && r.hi !== null ? ` (95% CI ${fmt(r.lo)}–${fmt(r.hi)})` : "") +
          (r.noisy ? ", noisy" : ""),
      }),
      ...(labels
        ? [Plot.text(
          long,
          Plot.selectLast({
            fx: "phase",
            x: "batch",
            y: "tps",
            z: "series",
            text: "series",
            fill: "series",
            dx: 6,
            textAnchor: "start",
            fontSize: 11,
          }),
        )]
        : []),
    ],
  });
  const seriesPhases = new Set(long.map((r) => `${r.series}|${r.phase}`)).size;
  return {
    id: section.query.id,
    title: section.query.title,
    caption,
    svg,
    sql: section.query.sql,
    marks: { dots: long.length, lines: seriesPhases },
  };
}

function moduleRank(m: string): number {
  // Names may be bare (q_proj) or paths (self_attn.q_proj): the last part decides.
  const i = MODULE_ORDER.indexOf(m.split(".").pop() ?? m);
  return i < 0 ? MODULE_ORDER.length : i;
}

function sensitivity(section: SectionData): Chart {
  const rows = section.rows.filter((r) => num(r.value) !== null && num(r.layer) !== null);
  const mode = String(rows[0]?.mode ?? "");
  const metric = mode === "weight" ? "relative weight error" : "output MSE";
  const caption = `How much each linear module's ${metric} grows under the variant ` +
    `(${mode || "isolated"} mode), per decoder layer; darker is more sensitive.`;
  if (!rows.length) return noteChart(section, caption);
  const multi = new Set(rows.map((r) => r.pipeline)).size > 1;
  const name = (r: Row) => (multi ? `${r.pipeline} / ${r.variant}` : String(r.variant));
  const variants = [...new Set(rows.map(name))];
  const shown = new Set(variants.slice(0, MAX_VARIANTS));
  const data = rows.map((r): Row & { v: string } => ({ ...r, v: name(r) }))
    .filter((r) => shown.has(r.v));
  const modules = [...new Set(data.map((r) => String(r.module)))]
    .sort((a, b) => moduleRank(a) - moduleRank(b) || a.localeCompare(b));
  const layers = [...new Set(data.map((r) => num(r.layer)!))].sort((a, b) => a - b);
  const facet = shown.size > 1;
  const cellH = Math.max(14, Math.min(26, 360 / layers.length));
  const heightOne = layers.length * cellH;
  const values = data.map((r) => num(r.value)!);
  const maxV = Math.max(...values);
  const withText = data.length <= 160;
  const chart = plot({
    height: (heightOne + (facet ? 24 : 0)) * shown.size + 70,
    marginLeft: 60,
    marginRight: facet
      ? Math.min(280, 12 + 6.5 * Math.max(...[...shown].map((v) => v.length)))
      : 20,
    marginBottom: 50,
    padding: 0.04,
    x: { label: "module", domain: modules, tickRotate: modules.length > 6 ? -20 : 0 },
    y: { label: "layer", domain: layers },
    fy: facet ? { label: null, domain: [...shown] } : undefined,
    color: { type: "sqrt", scheme: "YlOrRd", domain: [0, maxV || 1] },
    marks: [
      Plot.cell(data, {
        x: "module",
        y: "layer",
        fy: facet ? "v" : undefined,
        fill: "value",
        inset: 0.5,
        title: (r: Row) =>
          `${r.v}\nlayer ${r.layer} ${r.module}\nMSE ${fmt(r.mse)}  cosine ${
            fmt(r.cosine)
          }  rel. error ${fmt(r.rel_error)}`,
      }),
      ...(withText
        ? [Plot.text(data, {
          x: "module",
          y: "layer",
          fy: facet ? "v" : undefined,
          text: (r: Row) => fmt(r.value),
          fill: (r: Row) => (num(r.value)! > 0.55 * maxV ? "white" : "black"),
          fontSize: 10,
        })]
        : []),
    ],
  });
  // Plot's continuous legends draw on a canvas, which has no headless stand-in: a strip of
  // bars on the same colour scale does the same job in plain SVG.
  const steps = Array.from({ length: 48 }, (_, i) => ({
    x1: (maxV * i) / 48,
    x2: (maxV * (i + 1)) / 48,
    v: (maxV * (i + 0.5)) / 48,
  }));
  const legend = plot({
    width: 340,
    height: 60,
    marginTop: 6,
    marginLeft: 14,
    marginRight: 20,
    marginBottom: 34,
    x: {
      domain: [0, maxV || 1],
      label: metric,
      labelAnchor: "center",
      labelArrow: "none",
      ticks: 4,
    },
    y: { axis: null },
    color: { type: "sqrt", scheme: "YlOrRd", domain: [0, maxV || 1] },
    marks: [Plot.barX(steps, { x1: "x1", x2: "x2", fill: "v" })],
  });
  const more = variants.length > shown.size
    ? ` Showing ${shown.size} of ${variants.length} variants; the SQL below lists all.`
    : "";
  return {
    id: section.query.id,
    title: section.query.title,
    caption: caption + more,
    svg: stackSvgs([legend, chart]),
    sql: section.query.sql,
    marks: { cells: data.length },
  };
}

function training(section: SectionData): Chart {
  const caption = "Training loss per step for each fine-tuning run (latest run of each pipeline).";
  const rows = section.rows.filter((r) => num(r.step) !== null && num(r.loss) !== null)
    .map((r) => ({ ...r, series: `${r.pipeline} / ${r.run}` }));
  if (!rows.length) return noteChart(section, caption);
  const series = new Set(rows.map((r) => r.series));
  const svg = plot({
    height: 360,
    marginRight: 170,
    grid: true,
    x: { label: "step" },
    y: { label: "loss" },
    marks: [
      Plot.line(rows, { x: "step", y: "loss", z: "series", stroke: "series", strokeWidth: 1.5 }),
      ...(series.size <= MAX_SERIES_LABELS
        ? [Plot.text(
          rows,
          Plot.selectLast({
            x: "step",
            y: "loss",
            z: "series",
            text: (r: Row) => String(r.run),
            fill: "series",
            dx: 6,
            textAnchor: "start",
            fontSize: 11,
          }),
        )]
        : []),
    ],
  });
  return {
    id: section.query.id,
    title: section.query.title,
    caption,
    svg,
    sql: section.query.sql,
    marks: { lines: series.size },
  };
}

/**
 * Stacks SVGs vertically into one (nested <svg> elements), for a chart with its legend and
 * for summary.png; widths and heights are read from each root's attributes.
 */
export function stackSvgs(svgs: string[], opts: { gap?: number; title?: string } = {}): string {
  const gap = opts.gap ?? 8;
  let y = opts.title ? 34 : 0;
  let width = 0;
  const parts: string[] = [];
  if (opts.title) {
    parts.push(
      `<text x="12" y="24" font-family="system-ui, sans-serif" font-size="18" font-weight="bold">${
        escapeXml(opts.title)
      }</text>`,
    );
  }
  for (const s of svgs) {
    const w = Number(/<svg[^>]*?\swidth="([\d.]+)"/.exec(s)?.[1] ?? WIDTH);
    const h = Number(/<svg[^>]*?\sheight="([\d.]+)"/.exec(s)?.[1] ?? 300);
    parts.push(s.replace("<svg", `<svg x="0" y="${y}"`));
    y += h + gap;
    width = Math.max(width, w);
  }
  const height = y - gap;
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" style="max-width:100%;height:auto;background:white">${
    parts.join("")
  }</svg>`;
}

/** Escapes text for XML and HTML. */
export function escapeXml(s: string): string {
  return s.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;")
    .replaceAll('"', "&quot;");
}

/** Renders every chart of the report from its data (sections without rows become notes). */
export function renderCharts(data: ReportData): Chart[] {
  const s = (id: string) => data.sections.get(id)!;
  return [
    scatter(
      s("memory_quality"),
      { field: "weight_mb", label: "Weight memory (MB)", higherBetter: false },
      "Each dot is a configuration; filled red dots are not beaten on both weight memory and " +
        "perplexity by any other (the Pareto front, dashed).",
    ),
    scatter(
      s("speed_quality"),
      { field: "decode_tps", label: "Decode tokens/s (batch 1)", higherBetter: true },
      "Decode speed at the smallest profiled batch and prompt against perplexity; filled red " +
        "dots form the speed/quality Pareto front.",
    ),
    prefillDecode(
      s("prefill_decode"),
      new Set(
        s("memory_quality").rows.filter((r) => r.on_front === true).map((r) =>
          labelOf(r, new Set(s("memory_quality").rows.map((x) => x.pipeline)).size > 1)
        ),
      ),
    ),
    sensitivity(s("sensitivity")),
    training(s("training")),
    ...servingCharts(s("serving_latency"), s("serving_throughput")),
  ];
}
