/**
 * PNG output for `lab report --png DIR`: each chart's SVG rasterized with resvg (no browser),
 * a summary.png of the main charts side by side, and layer_sensitivity.md in plain words.
 */
import { Resvg } from "@resvg/resvg-js";
import { join } from "node:path";
import { type Chart, escapeXml, fmt } from "./charts.ts";
import type { ReportData, Row } from "./data.ts";

/** Rasterizes an SVG string at 2× its width (sharp on high-density screens). */
export function svgToPng(svg: string): Uint8Array {
  const width = Number(/<svg[^>]*?\swidth="([\d.]+)"/.exec(svg)?.[1] ?? 680);
  const r = new Resvg(svg, {
    fitTo: { mode: "width", value: Math.round(width * 2) },
    background: "white",
    font: {
      loadSystemFonts: true,
      defaultFontFamily: "DejaVu Sans",
      sansSerifFamily: "DejaVu Sans",
    },
  });
  return r.render().asPng();
}

/** Lays SVGs out in a grid of `cols` columns, with a title on top. */
export function gridSvgs(svgs: string[], cols: number, title: string): string {
  const size = (s: string) => ({
    w: Number(/<svg[^>]*?\swidth="([\d.]+)"/.exec(s)?.[1] ?? 680),
    h: Number(/<svg[^>]*?\sheight="([\d.]+)"/.exec(s)?.[1] ?? 380),
  });
  const gap = 16;
  const top = 44;
  const sizes = svgs.map(size);
  const colW = Math.max(...sizes.map((s) => s.w));
  const parts: string[] = [];
  let y = top;
  for (let i = 0; i < svgs.length; i += cols) {
    const rowH = Math.max(...sizes.slice(i, i + cols).map((s) => s.h));
    for (let j = 0; j < cols && i + j < svgs.length; j++) {
      parts.push(svgs[i + j].replace("<svg", `<svg x="${j * (colW + gap)}" y="${y}"`));
    }
    y += rowH + gap;
  }
  const width = cols * colW + (cols - 1) * gap;
  const height = y - gap;
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}"><rect width="100%" height="100%" fill="white"/><text x="12" y="28" font-family="DejaVu Sans, sans-serif" font-size="20" font-weight="bold">${
    escapeXml(title)
  }</text>${parts.join("")}</svg>`;
}

/** The chart's title drawn above it, so a PNG on its own says what it shows. */
function titled(c: Chart): string {
  const svg = c.svg!;
  const w = Number(/<svg[^>]*?\swidth="([\d.]+)"/.exec(svg)?.[1] ?? 680);
  const h = Number(/<svg[^>]*?\sheight="([\d.]+)"/.exec(svg)?.[1] ?? 380);
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${
    h + 30
  }" viewBox="0 0 ${w} ${
    h + 30
  }"><rect width="100%" height="100%" fill="white"/><text x="8" y="20" font-family="DejaVu Sans, sans-serif" font-size="15" font-weight="bold">${
    escapeXml(c.title)
  }</text>${svg.replace("<svg", '<svg x="0" y="30"')}</svg>`;
}

/**
 * Writes <id>.png per drawn chart, summary.png and layer_sensitivity.md into `dir`; returns the
 * paths written.
 */
export function writePngs(dir: string, data: ReportData, charts: Chart[]): string[] {
  Deno.mkdirSync(dir, { recursive: true });
  const written: string[] = [];
  const drawn = charts.filter((c) => c.svg);
  for (const c of drawn) {
    const p = join(dir, `${c.id}.png`);
    Deno.writeFileSync(p, svgToPng(titled(c)));
    written.push(p);
  }
  const main = ["memory_quality", "speed_quality", "prefill_decode", "sensitivity", "training"]
    .map((id) => drawn.find((c) => c.id === id)).filter((c): c is Chart => !!c);
  const summary = main.length
    ? gridSvgs(main.map(titled), main.length > 1 ? 2 : 1, "LLM Efficiency Lab: summary")
    : emptySummary(data);
  const sp = join(dir, "summary.png");
  Deno.writeFileSync(sp, svgToPng(summary));
  written.push(sp);
  const md = join(dir, "layer_sensitivity.md");
  Deno.writeTextFileSync(md, sensitivityMarkdown(data));
  written.push(md);
  return written;
}

function emptySummary(data: ReportData): string {
  return `<svg xmlns="http://www.w3.org/2000/svg" width="680" height="120" viewBox="0 0 680 120"><rect width="100%" height="100%" fill="white"/><text x="12" y="30" font-family="DejaVu Sans, sans-serif" font-size="20" font-weight="bold">LLM Efficiency Lab: summary</text><text x="12" y="70" font-family="DejaVu Sans, sans-serif" font-size="14">No charts yet in ${
    escapeXml(data.resultsDir)
  }: run a sweep (deno task sweep).</text></svg>`;
}

const n = (v: unknown) => (typeof v === "number" ? v : Number(v));

/**
 * layer_sensitivity.md: the most and least sensitive layers (mean over modules and variants),
 * the most sensitive module of each variant, and the advisor's suggestion when one exists.
 */
export function sensitivityMarkdown(data: ReportData): string {
  const s = data.sections.get("sensitivity")!;
  const lines = ["# Layer sensitivity", ""];
  const rows = s.rows.filter((r) => Number.isFinite(n(r.value)));
  if (!rows.length) {
    lines.push(`No layer sensitivity measured yet in ${data.resultsDir}: ${s.query.empty}.`, "");
  } else {
    const mode = String(rows[0].mode);
    const metric = mode === "weight" ? "relative weight error" : "output MSE";
    const variants = [...new Set(rows.map((r) => `${r.pipeline} / ${r.variant}`))];
    const byLayer = new Map<number, number[]>();
    for (const r of rows) {
      const l = n(r.layer);
      if (!byLayer.has(l)) byLayer.set(l, []);
      byLayer.get(l)!.push(n(r.value));
    }
    const ranked = [...byLayer].map(([layer, vs]) => ({
      layer,
      mean: vs.reduce((a, b) => a + b, 0) / vs.length,
    })).sort((a, b) => b.mean - a.mean);
    const k = Math.min(3, Math.ceil(ranked.length / 2));
    const list = (xs: typeof ranked) =>
      xs.map((x) => `layer ${x.layer} (mean ${metric} ${fmt(x.mean)})`).join(", ");
    lines.push(
      `Measured in ${mode} mode on ${variants.length} variant${variants.length === 1 ? "" : "s"} ` +
        `(${
          variants.join(", ")
        }), ${byLayer.size} layers. A layer's sensitivity is its ${metric} ` +
        `(per linear module), averaged over its modules and the variants.`,
      "",
      `- **Most sensitive:** ${list(ranked.slice(0, k))}. Keep these in higher precision first.`,
      `- **Least sensitive:** ${
        list(ranked.slice(-k).reverse())
      }. These tolerate the low-bit scheme best.`,
      "",
    );
    lines.push("Most sensitive module per variant:", "");
    for (const v of variants) {
      const top = rows.filter((r) => `${r.pipeline} / ${r.variant}` === v)
        .sort((a, b) => n(b.value) - n(a.value))[0];
      lines.push(`- ${v}: layer ${top.layer} ${top.module} (${metric} ${fmt(top.value)})`);
    }
    lines.push("");
  }
  lines.push("## Advisor", "", ...advisorLines(data), "");
  return lines.join("\n");
}

function advisorLines(data: ReportData): string[] {
  const { metrics, choices } = data.advisor;
  if (!metrics.length && !choices?.rows.length) {
    return [
      "No advisor run exists in these results: add an analyze stage with the mixed-precision " +
      "advisor (see pipelines/surgery.ts) to get a suggestion of which modules to keep in " +
      "higher precision.",
    ];
  }
  const out: string[] = [];
  if (choices?.rows.length) {
    const stages = [...new Set(choices.rows.map((r) => `${r.pipeline} / ${r.stage}`))];
    for (const st of stages) {
      const rows = choices.rows.filter((r) => `${r.pipeline} / ${r.stage}` === st)
        .sort((a, b) => n(a.rank ?? 0) - n(b.rank ?? 0));
      // advise records every module it ranked, with `kept` marking the ones it chose.
      const kept = choices.columns.includes("kept") ? rows.filter((r) => r.kept === true) : rows;
      const mods = [...new Set(kept.map((r: Row) => String(r.module ?? r.name ?? "?")))];
      const fallback = rows[0].fallback ? String(rows[0].fallback) : "higher precision";
      const base = rows[0].base_scheme ? ` and quantizing the rest to ${rows[0].base_scheme}` : "";
      out.push(
        mods.length
          ? `${st}: the advisor suggests keeping ${mods.length} module${
            mods.length === 1 ? "" : "s"
          } in ${fallback}${base}: ${mods.slice(0, 20).join(", ")}${mods.length > 20 ? ", …" : ""}.`
          : `${st}: the advisor keeps no module in ${fallback}: the base scheme alone meets the budget.`,
      );
    }
  }
  if (metrics.length) {
    out.push("", "Advisor figures:", "");
    for (const m of metrics) {
      if (m.name === "advisor_met") {
        out.push(`- ${m.pipeline} / ${m.stage}: budget met: ${n(m.value) ? "yes" : "no"}`);
        continue;
      }
      out.push(
        `- ${m.pipeline} / ${m.stage}: ${
          String(m.name).replace(/^advisor_/, "").replaceAll("_", " ")
        } = ${fmt(m.value)}${m.unit ? " " + m.unit : ""}`,
      );
    }
  }
  return out;
}
