// Markdown tables for benchmark output: aligned in a terminal, pasteable into docs as they are.

/** A cell: text, or a number shown with `digits` decimals (NaN and null print as "–"). */
export type Cell = string | number | null;

/** Formats a number with fixed decimals, "–" when missing or not finite. */
export function num(x: number | null | undefined, digits = 1): string {
  return x === null || x === undefined || !Number.isFinite(x) ? "–" : x.toFixed(digits);
}

/** Renders rows under headers as a Markdown table; numeric-looking columns align right. */
export function markdownTable(headers: string[], rows: Cell[][]): string {
  const text = rows.map((r) => r.map((c) => (typeof c === "number" ? num(c) : c ?? "–")));
  const widths = headers.map((h, i) => Math.max(h.length, ...text.map((r) => r[i].length)));
  const numeric = headers.map((_, i) =>
    text.length > 0 && text.every((r) => /^[-+]?[\d.,]+[x%]?$|^–$/.test(r[i]))
  );
  const line = (cells: string[]) =>
    `| ${
      cells.map((c, i) => (numeric[i] ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join(" | ")
    } |`;
  const rule = `| ${
    widths.map((w, i) => (numeric[i] ? "-".repeat(w - 1) + ":" : "-".repeat(w)))
      .join(" | ")
  } |`;
  return [line(headers), rule, ...text.map(line)].join("\n");
}
