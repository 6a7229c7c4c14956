// The built-in stages end to end: load → quantize → profile / evaluate, results in DuckDB.
import assert from "node:assert/strict";
import { runPipeline, silentReporter } from "../engine/mod.ts";
import { databasePath, LabDatabase } from "../engine/store.ts";

const PIPELINE = new URL("./fixtures/pipelines/quant_small.ts", import.meta.url).pathname;

Deno.test("quantize, profile and evaluate stages fill the tables and the quant_tradeoff view", async () => {
  const results = Deno.makeTempDirSync({ prefix: "lab-stages-" });
  try {
    const first = await runPipeline(PIPELINE, {
      resultsDir: results,
      executor: "inline",
      reporter: silentReporter,
    });
    assert.equal(first.status, "ok", first.failures.map((f) => f.error?.message).join("\n"));
    assert.equal(first.counts.ok, 10);
    const db = await LabDatabase.open(databasePath(results), { readOnly: true });
    try {
      const t = await db.query(
        `SELECT configuration, weight_mb, bits_per_param, ppl, delta_ppl, decode_tps, peak_mb
         FROM quant_tradeoff ORDER BY weight_mb DESC`,
      );
      assert.deepEqual(t.rows.map((r) => r.configuration), ["fp32", "int8", "nf4"]);
      const [fp32, int8, nf4] = t.rows as Record<string, number>[];
      assert.equal(fp32.delta_ppl, 0);
      assert.ok(Math.abs(fp32.bits_per_param - 32) < 1e-9);
      assert.ok(int8.bits_per_param > 8 && int8.bits_per_param < 8.6);
      assert.ok(nf4.bits_per_param < 6 && nf4.bits_per_param > 4); // lm_head kept in int8
      for (const r of t.rows as Record<string, number>[]) {
        assert.ok(r.ppl > 1 && Number.isFinite(r.ppl));
        assert.ok(r.decode_tps > 0 && r.peak_mb > 0);
      }
      const prof = await db.query(
        `SELECT count(*) AS n, count(DISTINCT kv_cache) AS kv, min(repeats) AS reps FROM profiles`,
      );
      assert.deepEqual(prof.rows[0], { n: 12, kv: 2, reps: 1 });
      const mods = await db.query(
        `SELECT scheme, count(*) AS n FROM quant_modules GROUP BY scheme ORDER BY scheme`,
      );
      // qwen2 tiny: 2 layers × 7 projections + lm_head + the embedding table per quantize
      // stage; under nf4 the head and the table default to int8.
      assert.deepEqual(mods.rows, [
        { scheme: "fp32", n: 16 },
        { scheme: "int8", n: 18 },
        { scheme: "nf4", n: 14 },
      ]);
      // The built shim, the device kind and the CPU are part of every built-in stage's key.
      const env = await db.query(
        `SELECT DISTINCT json_extract_string(env, '$.shim') AS shim,
                json_extract_string(env, '$.device') AS device FROM cache_entries`,
      );
      assert.equal(env.rows.length, 1);
      assert.match(String(env.rows[0].shim), /^[0-9a-f]{16}$/);
      assert.equal(env.rows[0].device, "cpu");
      const ev = await db.query(`SELECT DISTINCT metric FROM evals ORDER BY metric`);
      assert.deepEqual(ev.rows.map((r) => r.metric), ["bits_per_byte", "nll", "ppl", "word_ppl"]);
    } finally {
      db.close();
    }
    const second = await runPipeline(PIPELINE, {
      resultsDir: results,
      executor: "inline",
      reporter: silentReporter,
    });
    assert.equal(second.counts.ok, 0);
    assert.equal(second.counts.cached, 10);
  } finally {
    Deno.removeSync(results, { recursive: true });
  }
});
