// `lab report`: the HTML over a synthetic results folder, opened in headless Chromium; the
// PNGs and layer_sensitivity.md; empty and missing results folders.
import assert from "node:assert/strict";
import { join } from "node:path";
import { lab } from "./engine_helpers.ts";
import { writeSampleResults } from "../reports/sample_data.ts";
import { databasePath, LabDatabase } from "../engine/store.ts";

async function digest(path: string): Promise<string> {
  const h = await crypto.subtle.digest("SHA-256", Deno.readFileSync(path));
  return Array.from(new Uint8Array(h), (b) => b.toString(16).padStart(2, "0")).join("");
}

Deno.test("lab report: self-contained HTML with the SQL under each chart, PNGs", async (t) => {
  const dir = Deno.makeTempDirSync({ prefix: "lab-report-" });
  const results = join(dir, "results");
  await writeSampleResults(results);
  const before = await digest(databasePath(results));
  const pngDir = join(dir, "png");
  const r = await lab(["report", "--results", results, "--png", pngDir]);
  assert.equal(r.code, 0, r.stderr);
  // The sample has no serving benchmark: its two charts are notes.
  assert.match(r.stdout, /5 of 7 charts drawn/);
  const out = join(results, "report.html");
  const html = Deno.readTextFileSync(out);
  assert.equal(await digest(databasePath(results)), before, "the report changed lab.duckdb");

  await t.step("self-contained: no script, no external reference", () => {
    assert.doesNotMatch(html, /<script/i);
    assert.doesNotMatch(html, /\s(src|href)="(https?:)?\/\//i);
    assert.doesNotMatch(html, /url\((https?:)?\/\//i);
    assert.doesNotMatch(html, /<link\b/i);
    // The SQL of each section is printed under it.
    const sqlBlocks = html.match(/<details class="sql">/g) ?? [];
    assert.equal(sqlBlocks.length, 9);
    assert.match(html, /FROM quant_tradeoff t/);
    assert.match(html, /FROM layer_sensitivity l/);
  });

  await t.step("--png: one PNG per chart, summary.png, layer_sensitivity.md", () => {
    for (
      const f of [
        "memory_quality",
        "speed_quality",
        "prefill_decode",
        "sensitivity",
        "training",
        "summary",
      ]
    ) {
      const bytes = Deno.readFileSync(join(pngDir, `${f}.png`));
      assert.deepEqual([...bytes.slice(1, 4)], [0x50, 0x4e, 0x47], `${f}.png is a PNG`);
      assert.ok(bytes.length > 5000, `${f}.png has content`);
    }
    const md = Deno.readTextFileSync(join(pngDir, "layer_sensitivity.md"));
    // The sample makes layer 0 the most sensitive and the last layer the least.
    assert.match(md, /\*\*Most sensitive:\*\* layer 0 /);
    assert.match(md, /\*\*Least sensitive:\*\* layer 3 /);
    assert.match(md, /layer 0 down_proj/);
    assert.match(
      md,
      /advise: the advisor suggests keeping 2 modules in bf16 and quantizing the rest to nf4: layers\.0\.mlp\.down_proj, layers\.1\.mlp\.down_proj\./,
    );
    assert.match(md, /advise: kept modules = 2 modules/);
    console.log(`report PNGs: ${pngDir}`);
  });
});

Deno.test("lab report: an empty results database gives notes, not errors", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "lab-report-" });
  const results = join(dir, "results");
  Deno.mkdirSync(results);
  (await LabDatabase.open(databasePath(results))).close();
  const before = await digest(databasePath(results));
  const out = join(dir, "r.html");
  const { buildReport } = await import("../reports/build.ts");
  const res = await buildReport(results, { out, pngDir: join(dir, "png") });
  assert.equal(res.empty, true);
  assert.equal(res.charts.filter((c) => c.svg).length, 0);
  const html = Deno.readTextFileSync(out);
  assert.equal((html.match(/no data yet: /g) ?? []).length, 8);
  assert.match(html, /no data yet: run a serving benchmark/);
  assert.match(html, /no data yet: run a quantization sweep/);
  assert.match(html, /no data yet: run a fine-tuning pipeline/);
  assert.doesNotMatch(html, /<svg/);
  const md = Deno.readTextFileSync(join(dir, "png", "layer_sensitivity.md"));
  assert.match(md, /No layer sensitivity measured yet/);
  assert.match(md, /No advisor run exists/);
  assert.ok(Deno.statSync(join(dir, "png", "summary.png")).size > 1000);
  assert.equal(await digest(databasePath(results)), before);
});

Deno.test("lab report: a missing results folder is a clear error and creates nothing", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "lab-report-" });
  const missing = join(dir, "nope");
  const r = await lab(["report", "--results", missing]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /no results folder at .*nope: run a pipeline first/);
  assert.throws(() => Deno.statSync(missing));
  // A folder without a database: named, and left as it was.
  const empty = join(dir, "empty");
  Deno.mkdirSync(empty);
  const r2 = await lab(["report", "--results", empty]);
  assert.equal(r2.code, 2);
  assert.match(r2.stderr, /no results in .*empty yet \(no lab\.duckdb\)/);
  assert.deepEqual([...Deno.readDirSync(empty)], []);
});

Deno.test("lab report: sections with some tables missing degrade to notes", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "lab-report-" });
  const results = join(dir, "results");
  await writeSampleResults(results, { variants: 0, trainRuns: 0, warnings: 0, advisor: false });
  // An older database without the layer_sensitivity and warnings tables.
  const db = await LabDatabase.open(databasePath(results));
  await db.conn.run("DROP TABLE layer_sensitivity; DROP TABLE warnings");
  db.close();
  const { buildReport } = await import("../reports/build.ts");
  const res = await buildReport(results, { out: join(dir, "r.html"), pngDir: join(dir, "png") });
  const drawn = res.charts.filter((c) => c.svg).map((c) => c.id);
  assert.deepEqual(drawn, ["memory_quality", "speed_quality", "prefill_decode"]);
  const notes = Object.fromEntries(res.charts.filter((c) => !c.svg).map((c) => [c.id, c.note]));
  assert.match(notes.sensitivity!, /^no data yet: run a pipeline with an analyze stage/);
  assert.match(notes.training!, /^no data yet: run a fine-tuning pipeline/);
  const md = Deno.readTextFileSync(join(dir, "png", "layer_sensitivity.md"));
  assert.match(md, /No advisor run exists/);
});

Deno.test("speed/quality front: hand-made points, ties included, match the pairwise definition", async () => {
  const { SPEED_QUALITY } = await import("../reports/queries.ts");
  const dir = Deno.makeTempDirSync({ prefix: "lab-report-" });
  const db = await LabDatabase.open(join(dir, "t.duckdb"));
  try {
    // [configuration, decode tok/s, ppl]: c is beaten by b (faster, same ppl); e ties d exactly
    // (neither beats the other); f is as fast as a with a worse ppl; g is another pipeline.
    const pts: [string, string, number, number][] = [
      ["p", "a", 100, 10],
      ["p", "b", 200, 11],
      ["p", "c", 150, 11],
      ["p", "d", 300, 12],
      ["p", "e", 300, 12],
      ["p", "f", 100, 10.5],
      ["q", "g", 50, 20],
    ];
    await db.conn.run(
      "CREATE TEMP TABLE quant_tradeoff (pipeline VARCHAR, configuration VARCHAR, engine VARCHAR, decode_tps DOUBLE, ppl DOUBLE, weight_mb DOUBLE)",
    );
    for (const [p, c, tps, ppl] of pts) {
      await db.conn.run(
        `INSERT INTO quant_tradeoff VALUES ('${p}', '${c}', 'libtorch', ${tps}, ${ppl}, 1)`,
      );
    }
    const rows = (await db.query(SPEED_QUALITY.sql)).rows;
    const front = rows.filter((r) => r.on_front).map((r) => r.configuration).sort();
    assert.deepEqual(front, ["a", "b", "d", "e", "g"]);
  } finally {
    db.close();
  }
});
