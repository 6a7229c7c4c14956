// `lab report`: the HTML report with charts (and PNGs of them).
import type { Command } from "commander";
import { join } from "node:path";
import { resultsDir } from "./common.ts";

/** `lab report [--out FILE.html] [--png DIR]` */
export function register(program: Command): void {
  program
    .command("report")
    .description(
      "write one self-contained HTML report (tables, charts, the SQL behind each) from the results",
    )
    .option("--out <file>", "the HTML file to write (default: <results>/report.html)")
    .option("--png <dir>", "also write each chart as PNG, summary.png and layer_sensitivity.md")
    .action(async (opts: { out?: string; png?: string }, cmd: Command) => {
      const { buildReport } = await import("../../reports/build.ts");
      const dir = resultsDir(cmd);
      const out = opts.out ?? join(dir, "report.html");
      const r = await buildReport(dir, { out, pngDir: opts.png });
      const drawn = r.charts.filter((c) => c.svg).length;
      if (r.empty) {
        console.log(
          `note: ${dir} holds no runs yet; the report only says so (run a pipeline first)`,
        );
      }
      console.log(`wrote ${r.out} (${drawn} of ${r.charts.length} charts drawn)`);
      if (opts.png) console.log(`wrote ${r.pngs.length} files into ${opts.png}`);
    });
}
