// `lab compare A B`: two stages' results side by side.
import type { Command } from "commander";
import { collect, formatCsv, formatTable, resultsDir } from "./common.ts";

const pct = (
  x: number,
) => (Number.isFinite(x) ? `${x >= 0 ? "+" : ""}${(x * 100).toFixed(1)}%` : "—");

/** `lab compare A B` */
export function register(program: Command): void {
  program
    .command("compare")
    .description(
      "is a speed difference real? compare two runs, two timing stages (by name, e.g. a sweep " +
        "point) or two stage keys on their stored samples: change of the median with its 95% " +
        "bootstrap interval and a Mann–Whitney p-value, per configuration and metric",
    )
    .argument("<a>", "run id (or prefix), stage key (or prefix), or stage name")
    .argument("<b>", "the same, for the other side")
    .option(
      "--metric <name>",
      "only these metrics (ttft_ms, prefill_tps, decode_tps, latency_ms, e2e_ms; repeatable)",
      collect,
    )
    .option("--json", "print rows as JSON")
    .option("--csv", "print rows as CSV")
    .action(async (a: string, b: string, opts, cmd: Command) => {
      const { LabDatabase, databasePath } = await import("../../engine/store.ts");
      const { compareTimings } = await import("../../reports/compare.ts");
      const db = await LabDatabase.open(databasePath(resultsDir(cmd)), { readOnly: true });
      try {
        const r = await compareTimings(db, a, b, { metrics: opts.metric });
        const columns = [
          "stage",
          "config",
          "metric",
          "n_a",
          "n_b",
          "median_a",
          "median_b",
          "change",
          "change_lo",
          "change_hi",
          "p",
          "verdict",
        ];
        if (opts.json) return console.log(JSON.stringify(r.rows, null, 2));
        if (opts.csv) return console.log(formatCsv(columns, r.rows as never));
        console.log(`A: ${r.a}\nB: ${r.b}\n`);
        if (!r.rows.length) console.log("no configuration and metric in common");
        const shown = r.rows.map((x) => ({
          ...x,
          change: pct(x.change),
          "95% ci": `[${pct(x.change_lo)}, ${pct(x.change_hi)}]`,
          p: Number(x.p.toPrecision(2)),
        }));
        // The table shows the interval as one column where JSON and CSV keep its two bounds.
        const tableColumns = columns.filter((c) => c !== "change_hi")
          .map((c) => (c === "change_lo" ? "95% ci" : c));
        console.log(formatTable(tableColumns, shown));
        for (const u of r.unmatched) console.log(`(${u})`);
        for (const pair of r.pairs) {
          console.log(
            `${pair.stage} in SQL: lab query "SELECT * FROM compare('${pair.a}', '${pair.b}')"`,
          );
        }
      } finally {
        db.close();
      }
    });
}
