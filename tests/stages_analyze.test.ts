// analyze / advise / cost stages end to end, into DuckDB.
import assert from "node:assert/strict";
import { runPipeline, silentReporter } from "../engine/mod.ts";
import { databasePath, LabDatabase } from "../engine/store.ts";
import { priceFor } from "../stages/cost.ts";

const PIPELINE = new URL("./fixtures/pipelines/analyze_small.ts", import.meta.url).pathname;

Deno.test("analyze, advise and cost stages write sensitivity, KLD, advice and prices", async () => {
  const results = Deno.makeTempDirSync({ prefix: "lab-analyze-" });
  try {
    const run = await runPipeline(PIPELINE, {
      resultsDir: results,
      executor: "inline",
      reporter: silentReporter,
    });
    assert.equal(run.status, "ok", run.failures.map((f) => f.error?.message).join("\n"));
    const db = await LabDatabase.open(databasePath(results), { readOnly: true });
    try {
      const q = async (sql: string) => (await db.query(sql)).rows;
      const modes = await q(
        `SELECT s.name, ls.mode, count(*) AS n FROM layer_sensitivity ls JOIN latest_stages s USING (key)
         GROUP BY ALL ORDER BY 1, 2`,
      );
      // tiny llama: 2 layers × 7 projections + lm_head = 15 modules per mode
      assert.deepEqual(modes.map((r) => `${r.name}:${r.mode}:${r.n}`), [
        "analyze:end_to_end:15",
        "analyze:isolated:15",
        "analyze:weight:15",
        "self:isolated:15",
      ]);
      const self = await q(
        `SELECT max(mse) AS mse, min(cosine) AS cos FROM layer_sensitivity JOIN latest_stages s USING (key)
         WHERE s.name = 'self'`,
      );
      assert.equal(self[0].mse, 0);
      assert.ok(Math.abs(Number(self[0].cos) - 1) < 1e-5);
      const kld = await q(
        `SELECT s.name, m.value FROM metrics m JOIN latest_stages s USING (key)
         WHERE m.name = 'kld_mean' ORDER BY 1`,
      );
      assert.equal(kld.length, 2);
      assert.ok(Number(kld[0].value) > 0, "nf4 vs base has KLD");
      assert.ok(Number(kld[1].value) < 1e-9, "base vs itself has none");
      const trials = await q(`SELECT max(weight_bytes) AS b FROM advisor_trials`);
      assert.ok(Number(trials[0].b) > 0);
      const met = await q(
        `SELECT name, value FROM metrics WHERE name IN ('advisor_weight_bytes', 'advisor_met') ORDER BY 1`,
      );
      assert.equal(met[0].value, 1, "budget met");
      const bytes = Number(met[1].value);
      assert.ok(bytes <= 140_000 && bytes > 120_607, `advised bytes ${bytes}`);
      const kept = await q(`SELECT count(*) FILTER (WHERE kept) AS k FROM advisor_choices`);
      // Every kept module is int8 in the mixed stage (the head and the embedding table are
      // int8 there by default, kept or not).
      const mixed = await q(
        `SELECT count(*) FILTER (WHERE scheme = 'int8') AS k FROM quant_modules JOIN latest_stages s USING (key)
         WHERE s.name = 'mixed' AND module IN (SELECT module FROM advisor_choices WHERE kept)`,
      );
      assert.equal(mixed[0].k, kept[0].k, "the quantize stage used the advice");
      const costs = await q(
        `SELECT usd_per_m_generated_tokens AS g, price_per_hour AS p, energy_j_per_token AS e FROM costs`,
      );
      assert.equal(costs.length, 1);
      assert.equal(costs[0].p, 3.6);
      assert.equal(costs[0].e, null); // no GPU: energy absent, never guessed
      const decode = await q(`SELECT decode_tps FROM profiles`);
      assertAlmost(Number(costs[0].g), (3.6 / 3600 / Number(decode[0].decode_tps)) * 1e6);
    } finally {
      db.close();
    }
  } finally {
    Deno.removeSync(results, { recursive: true });
  }
});

function assertAlmost(a: number, b: number) {
  assert.ok(Math.abs(a - b) <= 1e-9 * Math.max(1, Math.abs(b)), `${a} vs ${b}`);
}

Deno.test("prices come from the param, the GPU name, or the device kind", () => {
  const table = { cpu: 0.1, cuda: 2.5, gpus: { "NVIDIA H200": 3.5 } };
  assert.equal(priceFor("cpu", {}, table), 0.1);
  assert.equal(priceFor("cuda:0", { gpu: "NVIDIA H200" }, table), 3.5);
  assert.equal(priceFor("cuda:0", { gpu: "unknown" }, table), 2.5);
  assert.equal(priceFor("cpu", { pricePerHour: 9 }, table), 9);
  assert.throws(() => priceFor("cuda:0", {}, { cpu: 1 }), /no price for device 'cuda:0'/);
});
