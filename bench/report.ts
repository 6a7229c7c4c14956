/**
 * `deno task bench report`: the time to build the report (read the database, render every
 * chart, write the HTML) for a synthetic sweep of 1,000 configurations, against the 3 s
 * target; with --png also the PNG rendering. Best of a few rounds; the first is a warm-up.
 */
import { join } from "node:path";
import { parseArgs } from "node:util";
import { buildReport } from "../reports/build.ts";
import { writeSampleResults } from "../reports/sample_data.ts";

const TARGET_S = 3;

/** Runs the benchmark; args: [--points N] [--rounds N] [--png]. */
export async function main(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      points: { type: "string", default: "1000" },
      rounds: { type: "string", default: "3" },
      png: { type: "boolean", default: false },
    },
  });
  const points = Number(values.points);
  const rounds = Math.max(1, Number(values.rounds));
  const dir = Deno.makeTempDirSync({ prefix: "lab-bench-report-" });
  try {
    const results = join(dir, "results");
    const t0 = performance.now();
    await writeSampleResults(results, {
      configs: points,
      batches: [1, 2, 4, 8, 16],
      variants: 6,
      layers: 22,
      trainRuns: 4,
      steps: 500,
      warnings: 50,
    });
    console.log(
      `synthetic results: ${points} configurations × 5 batch sizes, 6 × 22 × 7 sensitivity ` +
        `cells, 4 × 500 training steps (written in ${
          ((performance.now() - t0) / 1000).toFixed(1)
        } s)`,
    );
    const times: number[] = [];
    const pngTimes: number[] = [];
    let size = 0;
    for (let i = 0; i <= rounds; i++) {
      const out = join(dir, `report-${i}.html`);
      const t = performance.now();
      const r = await buildReport(results, { out });
      const s = (performance.now() - t) / 1000;
      size = Deno.statSync(r.out).size;
      if (values.png) {
        const tp = performance.now();
        await buildReport(results, { out, pngDir: join(dir, `png-${i}`) });
        if (i) pngTimes.push((performance.now() - tp) / 1000);
      }
      if (i) times.push(s); // round 0 warms up the JIT and DuckDB
    }
    const best = Math.min(...times);
    console.log(
      `report for ${points} sweep points: ${best.toFixed(2)} s (best of ${rounds}; ` +
        `${(size / 1e6).toFixed(1)} MB of HTML) = ${
          (best / TARGET_S).toFixed(2)
        }× the ${TARGET_S} s ` +
        `target ${best < TARGET_S ? "(met)" : "(MISSED)"}`,
    );
    if (pngTimes.length) {
      console.log(`with --png (HTML + PNGs): ${Math.min(...pngTimes).toFixed(2)} s`);
    }
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
}

if (import.meta.main) await main(Deno.args);
