import assert from "node:assert/strict";
import { join } from "node:path";
import { runPipeline } from "../engine/mod.ts";
import { LabDatabase, rebuildDatabase } from "../engine/store.ts";
import { basicPipeline, lab, queryRows, tempProject } from "./engine_helpers.ts";

async function snapshot(results: string): Promise<Record<string, unknown[]>> {
  const tables = await queryRows(
    results,
    "SELECT table_name FROM information_schema.tables WHERE table_schema='main' ORDER BY table_name",
  );
  const out: Record<string, unknown[]> = {};
  for (const { table_name } of tables) {
    out[String(table_name)] = await queryRows(
      results,
      `SELECT * FROM "${table_name}" ORDER BY ALL`,
    );
  }
  return out;
}

Deno.test("results land in DuckDB: runs, stages with coordinates, metrics and the wide view", async () => {
  const t = tempProject();
  const file = t.write("p.ts", basicPipeline("basic", [1, 2, 3]));
  await runPipeline(file, { resultsDir: t.results, executor: "inline" });
  await runPipeline(file, { resultsDir: t.results, executor: "inline" });
  const runs = await queryRows(
    t.results,
    "SELECT pipeline, status, n_stages, n_ran, n_cached FROM runs ORDER BY started_at, run_id",
  );
  assert.deepEqual(runs, [
    { pipeline: "basic", status: "ok", n_stages: 5, n_ran: 5, n_cached: 0 },
    { pipeline: "basic", status: "ok", n_stages: 5, n_ran: 0, n_cached: 5 },
  ]);
  const stages = await queryRows(
    t.results,
    "SELECT name, factor, count(*) AS n, sum(cached::INT) AS cached FROM stages_wide GROUP BY ALL ORDER BY name",
  );
  assert.deepEqual(stages, [
    { name: "combine", factor: null, n: 2, cached: 1 },
    { name: "scale[factor=1]", factor: 1, n: 2, cached: 1 },
    { name: "scale[factor=2]", factor: 2, n: 2, cached: 1 },
    { name: "scale[factor=3]", factor: 3, n: 2, cached: 1 },
    { name: "source", factor: null, n: 2, cached: 1 },
  ]);
  // Records are loaded once per cache entry, not once per run.
  assert.deepEqual(await queryRows(t.results, "SELECT count(*) AS n FROM metrics"), [{ n: 5 }]);
  const wide = await queryRows(
    t.results,
    "SELECT factor, sum FROM results_wide WHERE kind = 'scale' ORDER BY factor",
  );
  assert.deepEqual(wide, [{ factor: 1, sum: 10 }, { factor: 2, sum: 20 }, { factor: 3, sum: 30 }]);
  const params = await queryRows(
    t.results,
    "SELECT n, count FROM results_wide WHERE kind = 'source'",
  );
  assert.deepEqual(params, [{ n: 4, count: 4 }]);
});

Deno.test("db rebuild recreates the same rows from the cache alone", async () => {
  const t = tempProject();
  await runPipeline(t.write("p1.ts", basicPipeline("basic", [1, 2, 3])), {
    resultsDir: t.results,
    executor: "inline",
  });
  await runPipeline(t.write("p2.ts", basicPipeline("basic", [1, 4], { fail: [4] })), {
    resultsDir: t.results,
    executor: "inline",
  });
  const before = await snapshot(t.results);
  assert.ok(before.stages.length >= 9);
  Deno.removeSync(join(t.results, "lab.duckdb"));
  const r = await rebuildDatabase(t.results);
  assert.equal(r.runs, 2);
  const after = await snapshot(t.results);
  assert.deepEqual(after, before);
  // And through the CLI.
  const out = await lab(["--results", t.results, "db", "rebuild"]);
  assert.equal(out.code, 0, out.stderr);
  assert.match(out.stdout, /rebuilt .*: 2 runs, \d+ stage rows, 5 cache entries, \d+ result rows/);
  assert.deepEqual(await snapshot(t.results), before);
});

Deno.test("lab query prints a table, JSON and CSV; without SQL lists tables and columns", async () => {
  const t = tempProject();
  await runPipeline(t.write("p.ts", basicPipeline("basic", [1, 2])), {
    resultsDir: t.results,
    executor: "inline",
  });
  const sql = "select factor, sum from results_wide where kind = 'scale' order by factor";
  const table = await lab(["query", sql, "--results", t.results]);
  assert.equal(table.code, 0, table.stderr);
  assert.deepEqual(table.stdout.trim().split("\n").map((l) => l.trim().split(/\s+/)), [
    ["factor", "sum"],
    ["------", "---"],
    ["1", "10"],
    ["2", "20"],
    ["(2", "rows)"],
  ]);
  const json = await lab(["query", sql, "--json"], { env: { LAB_RESULTS: t.results } });
  assert.deepEqual(JSON.parse(json.stdout), [{ factor: 1, sum: 10 }, { factor: 2, sum: 20 }]);
  const csv = await lab(["--results", t.results, "query", sql, "--csv"]);
  assert.equal(csv.stdout.trim(), "factor,sum\n1,10\n2,20");
  const list = await lab(["--results", t.results, "query"]);
  assert.match(
    list.stdout,
    /^table metrics\(key VARCHAR, name VARCHAR, value DOUBLE, unit VARCHAR\)$/m,
  );
  assert.match(
    list.stdout,
    /^table part_sums\(key VARCHAR, factor DOUBLE, part VARCHAR, sum DOUBLE\)$/m,
  );
  assert.match(list.stdout, /^view results_wide\(/m);
  const bad = await lab(["--results", t.results, "query", "select nope from metrics"]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /error: query failed: .*nope/);
  const none = await lab(["--results", join(t.dir, "empty"), "query", "select 1"]);
  assert.equal(none.code, 2);
  assert.match(none.stderr, /no results database at .*lab\.duckdb yet/);
});

Deno.test("lab export --parquet writes every table, readable by DuckDB", async () => {
  const t = tempProject();
  await runPipeline(t.write("p.ts", basicPipeline("basic", [1, 2])), {
    resultsDir: t.results,
    executor: "inline",
  });
  const dir = join(t.dir, "parquet");
  const out = await lab(["--results", t.results, "export", "--parquet", dir]);
  assert.equal(out.code, 0, out.stderr);
  const files = [...Deno.readDirSync(dir)].map((e) => e.name).sort();
  for (
    const f of [
      "metrics.parquet",
      "runs.parquet",
      "stages.parquet",
      "results_wide.parquet",
      "part_sums.parquet",
    ]
  ) {
    assert.ok(files.includes(f), `${f} missing in ${files}`);
  }
  const db = await LabDatabase.open(join(t.dir, "check.duckdb"));
  try {
    const r = await db.query(
      `SELECT count(*)::INT AS n FROM read_parquet('${join(dir, "metrics.parquet")}')`,
    );
    assert.deepEqual(r.rows, [{ n: 4 }]);
  } finally {
    db.close();
  }
});

Deno.test("100,000 result rows load through the appender", async () => {
  const t = tempProject();
  const file = t.write(
    "p.ts",
    `import { defineStage, pipeline } from "${new URL("../engine/mod.ts", import.meta.url).href}";
const many = defineStage({
  kind: "many",
  run: (ctx) => { for (let i = 0; i < 100000; i++) ctx.record("train_steps", { step: i, loss: 1 / (i + 1), lr: 1e-4 }); },
});
export default pipeline("many", () => { many(); });
`,
  );
  const s = await runPipeline(file, { resultsDir: t.results, executor: "inline" });
  assert.equal(s.rowsLoaded, 100000);
  assert.deepEqual(
    await queryRows(t.results, "SELECT count(*) AS n, max(step) AS last FROM train_steps"),
    [{ n: 100000, last: 99999 }],
  );
});
