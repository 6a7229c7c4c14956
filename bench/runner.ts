/**
 * `deno task bench runner`: the pipeline runner's speed on a 1,000-node sweep of trivial
 * stages. Prints each figure against its target from issue 4:
 * - planning with cache checks (1,000 nodes) under 1 s;
 * - the fully cached second run of the whole `lab run` command under 2 s, Deno start-up included;
 * - loading 100,000 result rows into DuckDB under 1 s.
 */
import { join } from "node:path";
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { loadPipelineFile, planPipeline, runPipeline } from "../engine/mod.ts";
import { CacheStore } from "../engine/cache.ts";
import { clearSourceCache } from "../engine/source_hash.ts";
import { LabDatabase } from "../engine/store.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const ENGINE = new URL("../engine/mod.ts", import.meta.url).href;

function pipelineSource(nodes: number): string {
  // `roots` sources, each with children; nodes = roots * (1 + children).
  const roots = 10;
  const children = Math.max(0, Math.round(nodes / roots) - 1);
  return `import { z } from "zod";
import { defineStage, pipeline } from "${ENGINE}";
const tiny = defineStage({
  kind: "tiny",
  inputs: ["parent?"],
  params: z.object({ a: z.number().int(), b: z.number().int().default(-1), scale: z.number().default(1) }),
  run: (ctx) => { ctx.metric("value", ctx.params.a * 1000 + ctx.params.b); },
});
export default pipeline("bench-runner", ({ sweep }) => {
  for (const a of sweep("a", ${JSON.stringify([...Array(roots).keys()])})) {
    const root = tiny({ a });
    for (const b of sweep("b", Array.from({ length: ${children} }, (_, i) => i))) tiny(root, { a, b });
  }
});
`;
}

function rowsStageSource(rows: number, entries: number): string {
  return `import { z } from "zod";
import { defineStage, pipeline } from "${ENGINE}";
const rows = defineStage({
  kind: "rows",
  params: z.object({ part: z.number().int(), n: z.number().int() }),
  run: (ctx) => {
    for (let i = 0; i < ctx.params.n; i++) {
      ctx.record("profiles", { batch: i % 16, prompt_tokens: 128, new_tokens: 64, ttft_ms: i * 0.01, prefill_tps: 1000 + i, decode_tps: 100 + i % 7, latency_p50_ms: 1.5, latency_p95_ms: 2.5, peak_mem_bytes: 1 << 20 });
    }
  },
});
export default pipeline("bench-rows", ({ sweep }) => {
  for (const part of sweep("part", Array.from({ length: ${entries} }, (_, i) => i))) rows({ part, n: ${
    Math.ceil(rows / entries)
  } });
});
`;
}

function report(what: string, ms: number, targetMs: number): void {
  const ratio = ms / targetMs;
  console.log(
    `${what.padEnd(56)} ${ms.toFixed(0).padStart(6)} ms   target ${
      String(targetMs).padStart(5)
    } ms   ${ratio.toFixed(2)}x of budget ${ratio <= 1 ? "ok" : "OVER"}`,
  );
}

async function timeIt<T>(fn: () => Promise<T>): Promise<[T, number]> {
  const t0 = performance.now();
  const out = await fn();
  return [out, performance.now() - t0];
}

/** Runs the runner benchmark. Flags: --nodes N (1000), --rows N (100000), --repeat N (3), --keep. */
export async function main(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      nodes: { type: "string", default: "1000" },
      rows: { type: "string", default: "100000" },
      repeat: { type: "string", default: "3" },
      keep: { type: "boolean", default: false },
    },
  });
  const nodes = Number(values.nodes);
  const nRows = Number(values.rows);
  const repeat = Math.max(1, Number(values.repeat));
  const dir = Deno.makeTempDirSync({ prefix: "lab-bench-runner-" });
  const results = join(dir, "results");
  const file = join(dir, "sweep.ts");
  Deno.writeTextFileSync(file, pipelineSource(nodes));
  console.log(`runner benchmark in ${dir} (${navigator.hardwareConcurrency} cores)`);
  try {
    const loaded = await loadPipelineFile(file);
    // Cold planning: build, validate, key (source hashing included), look up the cache.
    clearSourceCache();
    const [plan, planCold] = await timeIt(() => planPipeline(loaded, { resultsDir: results }));
    report(`plan ${plan.nodes.length} nodes (empty cache, cold source hashes)`, planCold, 1000);

    const [first, firstMs] = await timeIt(() =>
      runPipeline(loaded, { resultsDir: results, executor: "inline" })
    );
    console.log(
      `first run, inline executor: ${first.counts.ok} stages ran in ${
        (firstMs / 1000).toFixed(2)
      } s ` +
        `(${(firstMs / Math.max(1, first.counts.ok)).toFixed(2)} ms/stage, DuckDB included)`,
    );
    if (first.status !== "ok") {
      throw new Error(`first run failed: ${first.failures[0]?.error?.message}`);
    }

    const planWarm: number[] = [];
    for (let i = 0; i < repeat; i++) {
      clearSourceCache();
      const [p, ms] = await timeIt(() => planPipeline(loaded, { resultsDir: results }));
      if (p.nodes.some((n) => n.action !== "cached")) throw new Error("expected every node cached");
      planWarm.push(ms);
    }
    report(
      `plan ${plan.nodes.length} nodes with cache checks (all cached)`,
      Math.min(...planWarm),
      1000,
    );

    // The whole command, as a user runs it: Deno start-up, import, plan, DuckDB rows for the run.
    const cmdMs: number[] = [];
    for (let i = 0; i < repeat; i++) {
      const t0 = performance.now();
      const out = await new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "-A",
          "--quiet",
          "--config",
          join(ROOT, "deno.json"),
          join(ROOT, "tasks/lab.ts"),
          "run",
          file,
          "--results",
          results,
          "--quiet",
        ],
        stdout: "piped",
        stderr: "piped",
      }).output();
      cmdMs.push(performance.now() - t0);
      const text = new TextDecoder().decode(out.stdout);
      if (!out.success || !/0 ran, \d+ cached/.test(text)) {
        throw new Error(
          `cached run did not behave: ${text}${new TextDecoder().decode(out.stderr)}`,
        );
      }
    }
    report(
      `cached second run: whole \`lab run\` command (best of ${repeat})`,
      Math.min(...cmdMs),
      2000,
    );

    // Loading 100,000 rows: a sweep of stages that record profiles rows, then a fresh database.
    const rowsFile = join(dir, "rows.ts");
    const entries = 100;
    Deno.writeTextFileSync(rowsFile, rowsStageSource(nRows, entries));
    const rowsResults = join(dir, "rows-results");
    await runPipeline(rowsFile, { resultsDir: rowsResults, executor: "inline", db: false });
    const cache = new CacheStore(rowsResults);
    const keys = [...cache.keys()];
    const loadMs: number[] = [];
    let loadedRows = 0;
    for (let i = 0; i < repeat; i++) {
      const dbPath = join(dir, `load-${i}.duckdb`);
      const db = await LabDatabase.open(dbPath);
      try {
        const [n, ms] = await timeIt(() => db.transaction(() => db.loadEntries(cache, keys)));
        loadedRows = n;
        loadMs.push(ms);
      } finally {
        db.close();
      }
    }
    report(
      `load ${loadedRows.toLocaleString("en")} rows from ${keys.length} entries into DuckDB`,
      Math.min(...loadMs),
      1000,
    );
  } finally {
    if (!values.keep) Deno.removeSync(dir, { recursive: true });
  }
}

if (import.meta.main) await main(Deno.args);
