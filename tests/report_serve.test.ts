// `lab serve`: the dashboard's API (state, read-only SQL box) and a port in use; the page
// itself is tested in Chromium in report_browser.test.ts.
import assert from "node:assert/strict";
import { join } from "node:path";
import { lab } from "./engine_helpers.ts";
import { writeSampleResults } from "../reports/sample_data.ts";
import { startDashboard } from "../reports/serve.ts";
import { refusal } from "../reports/sql.ts";
import { databasePath } from "../engine/store.ts";
import { LabError } from "../engine/errors.ts";

async function digest(path: string): Promise<string> {
  const h = await crypto.subtle.digest("SHA-256", Deno.readFileSync(path));
  return Array.from(new Uint8Array(h), (b) => b.toString(16).padStart(2, "0")).join("");
}

async function sql(url: string, statement: string) {
  const r = await fetch(new URL("api/sql", url), {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ sql: statement }),
  });
  assert.equal(r.status, 200);
  return await r.json();
}

Deno.test("SQL box: statements that write are refused by their text", () => {
  for (
    const s of [
      "INSERT INTO runs VALUES (1)",
      "  update metrics set value = 0",
      "delete from runs",
      "CREATE TABLE x (a INT)",
      "drop view pareto",
      "ALTER TABLE runs ADD COLUMN x INT",
      "COPY runs TO '/tmp/x.csv'",
      "ATTACH '/tmp/other.duckdb'",
      "INSTALL httpfs",
      "LOAD httpfs",
      "SET threads = 1",
      "PRAGMA enable_profiling",
      "/* hi */ -- there\n  DELETE FROM runs",
    ]
  ) {
    assert.match(refusal(s) ?? "", /^refused: \w+ changes the database/, s);
  }
  assert.match(refusal("select 1; drop table runs") ?? "", /one statement at a time/);
  assert.match(refusal("") ?? "", /empty statement/);
  assert.match(refusal("VACUUM") ?? "", /refused/);
  for (
    const s of [
      "SELECT * FROM runs",
      "with t as (select 1) select * from t",
      "FROM runs",
      "describe runs",
      "SHOW TABLES",
      "SUMMARIZE metrics",
      "EXPLAIN SELECT 1",
      "select 'delete from runs; drop' as s;",
      "-- a comment\nselect 1",
    ]
  ) {
    assert.equal(refusal(s), null, s);
  }
});

Deno.test("lab serve: state, read-only SQL box, port in use", async (t) => {
  const dir = Deno.makeTempDirSync({ prefix: "lab-serve-" });
  const results = join(dir, "results");
  const sample = await writeSampleResults(results);
  const before = await digest(databasePath(results));
  const dash = await startDashboard({ resultsDir: results, port: 0 });
  try {
    assert.match(dash.url, /^http:\/\/127\.0\.0\.1:\d+\/$/);

    await t.step("state: runs with progress and the rendered sections", async () => {
      const s = await (await fetch(new URL("api/state", dash.url))).json();
      assert.equal(s.runs.length, 1);
      assert.equal(s.runs[0].status, "ok");
      assert.equal(s.runs[0].done, s.runs[0].total);
      assert.equal((s.html.match(/<circle/g) ?? []).length > sample.configs, true);
      assert.match(s.html, /<details class="sql">/);
      // Unchanged since the signature: no re-render, no html.
      const again = await (await fetch(new URL(`api/state?since=${s.signature}`, dash.url)))
        .json();
      assert.equal(again.unchanged, true);
      assert.equal(again.html, undefined);
    });

    await t.step("SQL: a query answers, writes are refused, files are off limits", async () => {
      const ok = await sql(dash.url, "SELECT configuration, ppl FROM quant_tradeoff ORDER BY ppl");
      assert.equal(ok.ok, true);
      assert.deepEqual(ok.columns, ["configuration", "ppl"]);
      assert.equal(ok.rows.length, sample.configs);
      assert.equal(ok.rows[0].configuration, "fp32");
      const big = await sql(dash.url, "SELECT * FROM range(5000)");
      assert.equal(big.rows.length, 1000);
      assert.equal(big.truncated, true);
      assert.equal(typeof big.rows[0].range, "number");
      for (
        const w of [
          "DELETE FROM runs",
          "INSERT INTO metrics VALUES ('k', 'x', 1, 'u')",
          "DROP TABLE runs",
          "select 1; delete from runs",
        ]
      ) {
        const r = await sql(dash.url, w);
        assert.equal(r.ok, false, w);
        assert.equal(r.refused, true, w);
      }
      const file = await sql(dash.url, "SELECT * FROM read_text('/etc/hostname')");
      assert.equal(file.ok, false);
      assert.match(file.error, /disabled by configuration|Permission/);
      const bad = await sql(dash.url, "SELECT nope FROM runs");
      assert.equal(bad.ok, false);
      assert.equal(bad.refused, false);
      assert.match(bad.error, /nope/);
    });

    await t.step("a port in use: a clear message naming the port and --port", async () => {
      const port = Number(new URL(dash.url).port);
      await assert.rejects(
        () => startDashboard({ resultsDir: results, port }),
        (e: Error) =>
          e instanceof LabError &&
          new RegExp(`port ${port} on 127\\.0\\.0\\.1 is already in use.*--port`).test(e.message),
      );
      const r = await lab(["serve", "--results", results, "--port", String(port)]);
      assert.equal(r.code, 2);
      assert.match(r.stderr, new RegExp(`error: port ${port} .*already in use.*--port N`));
    });
  } finally {
    await dash.close();
  }
  assert.equal(await digest(databasePath(results)), before, "the dashboard changed lab.duckdb");
});
