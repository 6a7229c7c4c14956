// The serving charts of the report: latency percentiles and throughput against the offered
// request rate, one line per served configuration ("inf", all requests at once, last).
import * as Plot from "@observablehq/plot";
import { type Chart, fmt, noteChart, plot } from "./charts.ts";
import type { Row, SectionData } from "./data.ts";

const num = (v: unknown): number | null => {
  const n = typeof v === "number" ? v : v == null || v === "" ? NaN : Number(v);
  return Number.isFinite(n) ? n : null;
};

function rateDomain(rows: Row[]): string[] {
  const rates = [...new Set(rows.map((r) => String(r.rate)))];
  return rates.sort((a, b) => (a === "inf" ? 1 : b === "inf" ? -1 : Number(a) - Number(b)));
}

const seriesOf = (r: Row, multi: boolean) =>
  multi ? `${r.pipeline} / ${r.scheme}` : String(r.scheme ?? r.stage);

/** Long-format points of `fields` (label → column) per configuration and rate. */
function points(section: SectionData, fields: Record<string, string>): Row[] {
  const multi = new Set(section.rows.map((r) => r.pipeline)).size > 1;
  return section.rows.flatMap((r) =>
    Object.entries(fields).flatMap(([metric, col]) => {
      const v = num(r[col]);
      return v === null || v <= 0
        ? []
        : [{ series: seriesOf(r, multi), rate: String(r.rate), metric, value: v }];
    })
  );
}

function rateChart(
  section: SectionData,
  fields: Record<string, string>,
  yLabel: string,
  caption: string,
): Chart {
  const long = points(section, fields);
  if (!long.length) return noteChart(section, caption);
  const svg = plot({
    height: 340,
    marginRight: 90,
    marginLeft: 60,
    grid: true,
    fx: { label: null },
    x: { label: "offered rate (requests/s)", type: "point", domain: rateDomain(long), inset: 10 },
    y: { label: yLabel, type: "log" },
    color: { type: "categorical", legend: true },
    marks: [
      Plot.frame({ strokeOpacity: 0.15 }),
      Plot.line(long, { fx: "metric", x: "rate", y: "value", z: "series", stroke: "series" }),
      Plot.dot(long, {
        fx: "metric",
        x: "rate",
        y: "value",
        fill: "series",
        r: 3,
        title: (r: Row) => `${r.series}, rate ${r.rate}: ${r.metric} ${fmt(r.value)}`,
      }),
    ],
  });
  return {
    id: section.query.id,
    title: section.query.title,
    caption,
    svg,
    sql: section.query.sql,
    marks: { dots: long.length, lines: new Set(long.map((r) => `${r.series}|${r.metric}`)).size },
  };
}

/** The latency-vs-rate and throughput-vs-rate charts. */
export function servingCharts(latency: SectionData, throughput: SectionData): Chart[] {
  return [
    rateChart(
      latency,
      { "TTFT p99": "ttft_p99_ms", "TPOT p99": "tpot_p99_ms", "E2E p99": "e2e_p99_ms" },
      "milliseconds",
      "Latency percentiles measured over HTTP at each offered rate (Poisson arrivals; inf: " +
        "every request at once); log scale. Latency rising steeply marks saturation.",
    ),
    rateChart(
      throughput,
      { "output tokens/s": "output_tokens_per_s", "goodput (requests/s)": "goodput_per_s" },
      "per second",
      "Output tokens per second and goodput (completed requests per second within the SLOs) " +
        "at each offered rate; log scale. Throughput flattens at saturation.",
    ),
  ];
}
