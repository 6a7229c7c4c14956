// The report and the dashboard in a real browser (headless Chromium, one instance for both):
// charts rendered with the expected number of marks, no console errors; the dashboard refreshes
// as results appear, its SQL box answers a query and refuses a write. Screenshots are kept.
import assert from "node:assert/strict";
import { join } from "node:path";
import { artifactsDir, Browser, hasChromium, NO_CHROMIUM } from "./report_chromium.ts";
import { writeSampleResults } from "../reports/sample_data.ts";
import { buildReport } from "../reports/build.ts";
import { startDashboard } from "../reports/serve.ts";

Deno.test("report and dashboard in headless Chromium", async (t) => {
  if (!hasChromium()) {
    console.log(NO_CHROMIUM);
    return;
  }
  const dir = Deno.makeTempDirSync({ prefix: "lab-browser-" });
  const staged = join(dir, "staged");
  const sample = await writeSampleResults(staged);
  const b = await Browser.launch();
  const count = (sel: string) =>
    b.eval<number>(`document.querySelectorAll(${JSON.stringify(sel)}).length`);
  try {
    await t.step("the report: every chart's marks, the table, the SQL", async () => {
      const out = join(dir, "report.html");
      await buildReport(staged, { out });
      await b.goto(`file://${out}`);
      // The scatter charts draw symbols (llama.cpp's points are diamonds), which Plot renders as
      // paths; the prefill/decode chart draws circles.
      assert.equal(await count('#memory_quality g[aria-label="dot"] path'), sample.configs);
      assert.equal(await count('#speed_quality g[aria-label="dot"] path'), sample.configs);
      // The memory/quality front: the filled red dots, joined by one staircase.
      assert.equal(
        await count('#memory_quality g[aria-label="dot"] path[fill="#d1495b"]'),
        sample.front,
      );
      assert.equal(await count('#memory_quality g[aria-label="line"] path'), 1);
      assert.equal(await count('#prefill_decode g[aria-label="dot"] circle'), sample.profilePoints);
      assert.equal(
        await count('#prefill_decode g[aria-label="line"] path'),
        sample.profileSeries * 2,
      );
      assert.equal(await count('#sensitivity g[aria-label="cell"] rect'), sample.cells);
      assert.equal(await count('#training g[aria-label="line"] path'), sample.trainRuns);
      assert.equal(await count("#tradeoff tbody tr"), sample.configs);
      assert.equal(await count("#tradeoff tbody tr.front"), sample.front);
      assert.equal(await count("#warnings tbody tr"), sample.warnings);
      // 9 sections; the sample has no serving benchmark, so its two charts are notes.
      assert.equal(await count("section pre code"), 9);
      // Every chart has a real size once laid out.
      const widths = await b.eval<number[]>(
        `[...document.querySelectorAll("figure > svg")].map((s) => s.getBoundingClientRect().width)`,
      );
      assert.equal(widths.length, 5);
      for (const w of widths) assert.ok(w > 300, `chart width ${w}`);
      assert.deepEqual(b.errors, []);
      const shot = join(artifactsDir(), "report.png");
      await b.screenshot(shot);
      console.log(`report screenshot: ${shot}`);
    });

    await t.step("the dashboard: refreshes, SQL box answers and refuses", async () => {
      const results = join(dir, "results");
      const dash = await startDashboard({ resultsDir: results, port: 0, pollMs: 250 });
      try {
        await b.goto(dash.url);
        await b.waitFor(`document.querySelector("#sections .note")`);
        assert.match(
          await b.eval<string>(`document.querySelector("#sections").textContent`),
          /no results in/,
        );
        // Results appear (as after a sweep's first flush): the page picks them up by itself.
        Deno.renameSync(staged, results);
        await b.waitFor(
          `document.querySelectorAll('#memory_quality g[aria-label="dot"] path').length === ${sample.configs}`,
        );
        assert.equal(await count('#sensitivity g[aria-label="cell"] rect'), sample.cells);
        assert.equal(await count('#training g[aria-label="line"] path'), sample.trainRuns);
        await b.waitFor(`document.querySelectorAll("#runs tbody tr").length === 1`);
        assert.match(
          await b.eval<string>(`document.querySelector("#runs tbody tr").textContent`),
          /sample-sweep\s*ok/,
        );
        // The SQL box answers a query...
        await b.eval(`document.querySelector("#sql-input").value =
          "SELECT configuration, weight_mb FROM quant_tradeoff ORDER BY weight_mb"`);
        await b.eval(`document.querySelector("#sql-run").click()`);
        await b.waitFor(
          `document.querySelectorAll("#sql-result tbody tr").length === ${sample.configs}`,
        );
        assert.equal(
          await b.eval<string>(`document.querySelector("#sql-result tbody tr td").textContent`),
          "nf4",
        );
        await b.eval(`window.scrollTo(0, 0)`);
        const shot = join(artifactsDir(), "dashboard.png");
        await b.screenshot(shot, { fullPage: false });
        console.log(`dashboard screenshot: ${shot}`);
        // ...and refuses a write, with a message.
        await b.eval(`document.querySelector("#sql-input").value = "DELETE FROM runs"`);
        await b.eval(`document.querySelector("#sql-run").click()`);
        await b.waitFor(`document.querySelector("#sql-status.refused")`);
        assert.match(
          await b.eval<string>(`document.querySelector("#sql-status").textContent`),
          /refused: DELETE changes the database/,
        );
        assert.equal(await count("#sql-result tr"), 0);
        const runs = await b.eval<number>(
          `fetch("/api/sql", { method: "POST", body: JSON.stringify({ sql: "SELECT count(*) AS n FROM runs" }) })
             .then((r) => r.json()).then((a) => a.rows[0].n)`,
        );
        assert.equal(runs, 1);
        assert.deepEqual(b.errors, []);
      } finally {
        await dash.close();
      }
    });
  } finally {
    await b.close();
  }
});
