// The real-size pipeline and the load stage's synthetic models: the full pipeline is planned
// (never run: it takes an hour), and the same pipeline runs end to end on a mini shape so that
// its summary query keeps answering.
import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  LabError,
  loadPipelineFile,
  planPipeline,
  runPipeline,
  silentReporter,
} from "../engine/mod.ts";
import { databasePath, LabDatabase } from "../engine/store.ts";
import { REAL_SCALE_SCHEMES, SUMMARY_SQL } from "../pipelines/real_scale.ts";

const PIPELINE = fileURLToPath(new URL("../pipelines/real_scale.ts", import.meta.url));
const REAL_SCALE = new URL("../pipelines/real_scale.ts", import.meta.url).href;
const STAGES = new URL("../stages/mod.ts", import.meta.url).href;
const ENGINE = new URL("../engine/mod.ts", import.meta.url).href;

function scratch(): string {
  return Deno.makeTempDirSync({ prefix: "lab-real-scale-" });
}

Deno.test("pipelines/real_scale.ts plans: one 1B-shaped load, every scheme quantized and profiled", async () => {
  const dir = scratch();
  try {
    const plan = await planPipeline(await loadPipelineFile(PIPELINE), {
      resultsDir: join(dir, "results"),
    });
    assert.equal(plan.pipeline, "real-scale");
    type Params = Record<string, unknown>;
    const params = (n: { params: unknown }) => n.params as Params;
    const loads = plan.nodes.filter((n) => n.kind === "load");
    assert.equal(loads.length, 1);
    assert.deepEqual(params(loads[0]), {
      synthetic: { shape: "llama-3.2-1b", dtype: "float32", shards: 1, seed: 0 },
    });
    const quants = plan.nodes.filter((n) => n.kind === "quantize");
    assert.deepEqual(quants.map((n) => params(n).scheme), REAL_SCALE_SCHEMES);
    for (const s of ["fp32", "bf16", "int8", "int4-g32", "int4-g64", "int4-g128", "nf4", "fp4"]) {
      assert.ok(REAL_SCALE_SCHEMES.includes(s), `${s} is in the sweep`);
    }
    const profiles = plan.nodes.filter((n) => n.kind === "profile");
    assert.equal(profiles.length, 2 * quants.length);
    const b1 = profiles.find((n) => n.name === "profile-b1[scheme=nf4]")!;
    assert.deepEqual([params(b1).batch, params(b1).promptTokens], [1, [128, 512]]);
    const b8 = profiles.find((n) => n.name === "profile-b8[scheme=nf4]")!;
    assert.deepEqual([params(b8).batch, params(b8).promptTokens], [8, 32]);
    // Every profile reads the quantize stage of its own scheme.
    for (const p of profiles) {
      const q = quants.find((n) => n.key === p.inputKeys.model)!;
      assert.ok(p.name.endsWith(`[scheme=${params(q).scheme}]`), p.name);
    }
    assert.ok(plan.nodes.every((n) => n.action === "run"));
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("load: synthetic, model and tiny are exclusive; an unknown shape names the choices", async () => {
  const dir = scratch();
  try {
    const planOf = async (params: string) => {
      const file = join(dir, `p${Math.random().toString(36).slice(2)}.ts`);
      Deno.writeTextFileSync(
        file,
        `import { pipeline } from "${ENGINE}";\nimport { load } from "${STAGES}";\n` +
          `export default pipeline("x", () => { load(${params}); });\n`,
      );
      try {
        await planPipeline(await loadPipelineFile(file), { resultsDir: join(dir, "results") });
      } catch (e) {
        assert.ok(e instanceof LabError, String(e));
        return e.message;
      }
      return "planned";
    };
    assert.match(
      await planOf(`{ synthetic: { shape: "mini-1b" }, tiny: {} }`),
      /exactly one of "model".*"tiny".*"synthetic"/,
    );
    assert.match(await planOf(`{ synthetic: { shape: "llama-70b" } }`), /llama-3\.2-1b/);
    assert.equal(await planOf(`{ synthetic: { shape: "mini-8b", shards: 2 } }`), "planned");
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("the real-scale pipeline on a mini shape runs and its summary answers per scheme", async () => {
  const dir = scratch();
  try {
    const file = join(dir, "mini.ts");
    Deno.writeTextFileSync(
      file,
      `import { realScalePipeline } from "${REAL_SCALE}";\n` +
        `export default realScalePipeline({ shape: "mini-1b", schemes: ["fp32", "nf4"] });\n`,
    );
    const results = join(dir, "results");
    const run = await runPipeline(file, { resultsDir: results, reporter: silentReporter });
    assert.equal(run.status, "ok", run.failures.map((f) => f.error?.message).join("\n"));
    const db = await LabDatabase.open(databasePath(results), { readOnly: true });
    try {
      const t = await db.query(SUMMARY_SQL);
      const rows = t.rows as Record<string, number | string>[];
      assert.deepEqual(rows.map((r) => r.scheme), ["fp32", "nf4"]);
      const [fp32, nf4] = rows as Record<string, number>[];
      assert.ok(nf4.weight_mb < fp32.weight_mb / 2, `${nf4.weight_mb} vs ${fp32.weight_mb}`);
      assert.equal(fp32.b1_vs_fp32, 1);
      for (const r of rows as Record<string, number>[]) {
        for (const c of ["prefill_128_tps", "prefill_512_tps", "decode_b1_tps", "decode_b8_tps"]) {
          assert.ok(r[c] > 0, `${r.scheme} ${c} = ${r[c]}`);
        }
        assert.ok(r.peak_mb > 0 && r.b1_read_gb_s > 0);
      }
    } finally {
      db.close();
    }
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
