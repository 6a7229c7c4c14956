// The llama.cpp engine through the stages: quantize with engine "llama.cpp", profile, evaluate
// and analyze its GGUF, rows in the same tables as the lab's own engine, told apart by `engine`.
import assert from "node:assert/strict";
import { loadPipelineFile, planPipeline, runPipeline, silentReporter } from "../engine/mod.ts";
import { databasePath, LabDatabase } from "../engine/store.ts";
import { buildReport } from "../reports/build.ts";

const PIPELINE = new URL("./fixtures/pipelines/engines_small.ts", import.meta.url).pathname;

Deno.test("both engines fill profiles, evals and quant_tradeoff, scored on the same ids", async () => {
  const results = Deno.makeTempDirSync({ prefix: "lab-engines-" });
  try {
    const run = await runPipeline(PIPELINE, {
      resultsDir: results,
      executor: "inline",
      reporter: silentReporter,
    });
    assert.equal(run.status, "ok", run.failures.map((f) => f.error?.message).join("\n"));
    const db = await LabDatabase.open(databasePath(results), { readOnly: true });
    try {
      const t = await db.query(
        `SELECT engine, configuration, weight_mb, bits_per_param, ppl, decode_tps, prefill_tps,
                kld_mean, top1_agreement FROM quant_tradeoff ORDER BY engine, weight_mb DESC`,
      );
      const rows = t.rows as Record<string, number | string>[];
      assert.deepEqual(rows.map((r) => `${r.engine} ${r.configuration}`), [
        "libtorch fp32",
        "libtorch int8",
        "llama.cpp F32",
        "llama.cpp Q8_0",
      ]);
      const [fp32, , f32, q8] = rows as Record<string, number>[];
      // llama.cpp's F32 GGUF scores the lab's token ids as the lab does.
      assert.ok(Math.abs(f32.ppl - fp32.ppl) / fp32.ppl <= 1e-5, `${f32.ppl} vs ${fp32.ppl}`);
      assert.ok(f32.kld_mean < 1e-6 && f32.top1_agreement === 1, `F32 kld ${f32.kld_mean}`);
      assert.ok(q8.kld_mean > f32.kld_mean && q8.kld_mean < 0.05, `Q8_0 kld ${q8.kld_mean}`);
      assert.ok(q8.weight_mb < f32.weight_mb);
      for (const r of rows as Record<string, number>[]) {
        assert.ok(r.decode_tps > 0 && r.prefill_tps > 0 && r.ppl > 1);
      }
      const prof = await db.query(
        `SELECT engine, count(*) AS n FROM profiles GROUP BY engine ORDER BY engine`,
      );
      assert.deepEqual(prof.rows, [{ engine: "libtorch", n: 4 }, { engine: "llama.cpp", n: 4 }]);
      const ev = await db.query(
        `SELECT engine, count(DISTINCT metric) AS n FROM evals GROUP BY engine ORDER BY engine`,
      );
      assert.deepEqual(ev.rows, [{ engine: "libtorch", n: 4 }, { engine: "llama.cpp", n: 4 }]);
    } finally {
      db.close();
    }
    // The report's scatter plots and trade-off table mark llama.cpp's configurations.
    const report = await buildReport(results, { out: `${results}/report.html` });
    const memory = report.charts.find((c) => c.id === "memory_quality")!;
    assert.match(memory.svg ?? "", /Q8_0 \(llama\.cpp\)/);
    assert.match(memory.svg ?? "", /int8</);
    const html = Deno.readTextFileSync(report.out);
    assert.match(html, /<td>llama\.cpp<\/td>/);
  } finally {
    Deno.removeSync(results, { recursive: true });
  }
});

Deno.test("a type llama.cpp does not know is a plan-time error listing the valid ones", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "lab-engines-bad-" });
  try {
    const file = `${dir}/bad.ts`;
    const mod = new URL("../mod.ts", import.meta.url).href;
    Deno.writeTextFileSync(
      file,
      `import { load, pipeline, quantize } from "${mod}";
export default pipeline("bad", () => {
  quantize(load({ tiny: { arch: "llama", preset: "tiny" } }), { engine: "llama.cpp", scheme: "Q4_K_X" });
});`,
    );
    await assert.rejects(
      async () => planPipeline(await loadPipelineFile(file), { resultsDir: dir }),
      /"Q4_K_X" is not a llama\.cpp type: use one of F32, F16, BF16, Q8_0, Q6_K, .*IQ4_XS/,
    );
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
