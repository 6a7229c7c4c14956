/**
 * A synthetic results database with every table the report draws from, written through the
 * store: the report tests and `bench report` use it so they need neither torch nor a sweep.
 * Values are made up but shaped like the real tables (same stage kinds, inputs and names).
 */
import { join } from "node:path";
import { databasePath, LabDatabase, type StageRow } from "../engine/store.ts";
import type { Row } from "../engine/types.ts";
import { PROJECTION_NAMES } from "../models/projections.ts";
import { seededRandom } from "../seeded_random.ts";

/** The hand-made configurations of the small sample: name, weight MB, PPL, decode tok/s. */
export const SAMPLE_CONFIGS: [string, number, number, number][] = [
  ["fp32", 100, 10.0, 50],
  ["bf16", 50, 10.01, 95],
  ["int8", 25, 10.05, 180],
  ["int8-bad", 30, 10.3, 150], // dominated by int8 on memory, speed and quality
  ["int4-g128", 15, 10.4, 240],
  ["nf4", 14, 10.6, 260],
];

export interface SampleOptions {
  /** Number of quantized configurations; the first six are SAMPLE_CONFIGS, the rest random. */
  configs?: number;
  batches?: number[];
  /** Analyze stages (variants) with layer_sensitivity rows. */
  variants?: number;
  layers?: number;
  modules?: string[];
  /** Fine-tuning stages with train_steps, and steps per run. */
  trainRuns?: number;
  steps?: number;
  warnings?: number;
  /** Record advisor_* metrics and an advisor_choices table. */
  advisor?: boolean;
  seed?: number;
}

/** What was written, for tests to compare with what they see. */
export interface SampleSummary {
  configs: number;
  front: number;
  profileSeries: number;
  profilePoints: number;
  cells: number;
  trainRuns: number;
  warnings: number;
}

export const SAMPLE_MODULES = PROJECTION_NAMES;

/** Writes a synthetic lab.duckdb (and its run manifest) into `resultsDir`. */
export async function writeSampleResults(
  resultsDir: string,
  opts: SampleOptions = {},
): Promise<SampleSummary> {
  const o = {
    configs: 6,
    batches: [1, 4, 16],
    variants: 2,
    layers: 4,
    modules: SAMPLE_MODULES,
    trainRuns: 3,
    steps: 40,
    warnings: 2,
    advisor: true,
    seed: 7,
    ...opts,
  };
  const rand = seededRandom(o.seed);
  Deno.mkdirSync(join(resultsDir, "runs"), { recursive: true });
  const db = await LabDatabase.open(databasePath(resultsDir));
  const runId = "20250101T000000Z-sample";
  const pipeline = "sample-sweep";
  const stages: StageRow[] = [];
  const stage = (key: string, name: string, kind: string, params: unknown, inputs: unknown) =>
    stages.push({
      key,
      run_id: runId,
      pipeline,
      name,
      kind,
      params,
      inputs,
      coords: {},
      cached: false,
      status: "ok",
      wall_s: 0.1,
      error: null,
      device: "cpu",
    });
  const metrics: Row[] = [];
  const profiles: Row[] = [];
  const evals: Row[] = [];
  stage("base0000", "load", "load", { tiny: {} }, {});
  const points: { name: string; mb: number; ppl: number; tps: number }[] = [];
  for (let i = 0; i < o.configs; i++) {
    if (i < SAMPLE_CONFIGS.length) {
      const [name, mb, ppl, tps] = SAMPLE_CONFIGS[i];
      points.push({ name, mb, ppl, tps });
    } else {
      const mb = 5 + rand() * 95;
      points.push({
        name: `mix-${i}`,
        mb,
        ppl: 10 + 2 / mb * 10 * (0.5 + rand()),
        tps: 5000 / mb * (0.6 + 0.8 * rand()),
      });
    }
  }
  points.forEach((p, i) => {
    const q = `q${i}`, pr = `p${i}`, ev = `e${i}`;
    stage(q, `quantize[scheme=${p.name}]`, "quantize", { scheme: p.name }, { model: "base0000" });
    stage(pr, `profile[scheme=${p.name}]`, "profile", {}, { model: q });
    stage(ev, `evaluate[scheme=${p.name}]`, "evaluate", {}, { model: q });
    metrics.push(
      { key: q, name: "weight_bytes", value: p.mb * 1e6, unit: "bytes" },
      { key: q, name: "bits_per_param", value: 32 * p.mb / 100, unit: "bits" },
    );
    for (const b of o.batches) {
      profiles.push({
        key: pr,
        batch: b,
        prompt_tokens: 128,
        new_tokens: 32,
        kv_cache: true,
        ttft_ms: 20 * p.mb / 100 + b,
        prefill_tps: p.tps * 12 * Math.sqrt(b),
        decode_tps: p.tps * b ** 0.8,
        peak_mem_bytes: Math.round((p.mb + 30 + 2 * b) * 1e6),
      });
    }
    evals.push(
      { key: ev, dataset: "data/eval.txt", metric: "ppl", value: p.ppl, tokens: 1000 },
      {
        key: ev,
        dataset: "data/eval.txt",
        metric: "bits_per_byte",
        value: p.ppl / 8,
        tokens: 1000,
      },
    );
  });
  const sens: Row[] = [];
  for (let v = 0; v < o.variants; v++) {
    const key = `a${v}`;
    stage(key, `analyze[scheme=${points[(v + 4) % points.length].name}]`, "analyze", {}, {
      reference: "q0",
      model: `q${(v + 4) % points.length}`,
    });
    for (let l = 0; l < o.layers; l++) {
      for (const [mi, m] of o.modules.entries()) {
        // Layer 0's down_proj is the most sensitive, the last layer the least.
        const base = (o.layers - l) * 0.001 * (1 + mi / 10) * (v + 1);
        const mse = l === 0 && m === "down_proj" ? base * 8 : base;
        for (const mode of ["isolated", "end_to_end"]) {
          sens.push({
            key,
            layer: l,
            module: m,
            mse: mode === "isolated" ? mse : mse * 3,
            cosine: 1 - mse,
            rel_error: mse * 2,
            mode,
            tokens: 512,
          });
        }
      }
    }
  }
  const train: Row[] = [];
  for (let t = 0; t < o.trainRuns; t++) {
    const key = `f${t}`;
    const method = ["full", "lora", "qlora"][t % 3];
    stage(key, `finetune[method=${method}${t >= 3 ? t : ""}]`, "finetune", { method }, {
      model: "base0000",
    });
    for (let s = 1; s <= o.steps; s++) {
      train.push({
        key,
        step: s,
        loss: 3 * Math.exp(-s / (10 + 5 * t)) + 1 + 0.05 * rand(),
        lr: 1e-4,
        grad_norm: 1,
        tokens_per_s: 1000,
        tokens: s * 512,
      });
    }
  }
  const warnings: Row[] = [];
  for (let w = 0; w < o.warnings; w++) {
    warnings.push({
      key: `a${w % Math.max(1, o.variants)}`,
      kind: "ppl_hides_kld",
      severity: w === 0 ? "warning" : "info",
      message: `PPL within 2% of the base while mean KLD rose ${5 + w}× (sample ${w})`,
      metric: "kld_mean",
      value: 0.1 * (w + 1),
    });
  }
  if (o.advisor) {
    stage("adv0", "advise", "advise", { scheme: "nf4", fallback: "bf16" }, {
      model: "base0000",
    });
    metrics.push(
      { key: "adv0", name: "advisor_met", value: 1, unit: null },
      { key: "adv0", name: "advisor_kept_modules", value: 2, unit: "modules" },
      { key: "adv0", name: "advisor_kld_mean", value: 0.012, unit: "nats" },
    );
  }
  const finished = new Date("2025-01-01T00:01:00Z").toISOString();
  const run = {
    run_id: runId,
    pipeline,
    file: "pipelines/sample.ts",
    started_at: "2025-01-01T00:00:00.000Z",
    finished_at: finished,
    host: "sample",
    device: "cpu",
    libtorch: "1.13.1",
    status: "ok",
    n_stages: stages.length,
    n_ran: stages.length,
    n_cached: 0,
    n_failed: 0,
    n_skipped: 0,
    env: {},
  };
  try {
    await db.transaction(async () => {
      await db.writeRun(run);
      await db.appendStages(stages);
      await db.append("metrics", metrics);
      await db.append("profiles", profiles);
      await db.append("evals", evals);
      await db.append("layer_sensitivity", sens);
      await db.append("train_steps", train);
      await db.append("warnings", warnings);
      if (o.advisor) {
        // As the advise stage records it: every ranked module, `kept` for the chosen ones.
        await db.conn.run(
          `CREATE TABLE IF NOT EXISTS advisor_choices (key VARCHAR, rank DOUBLE, module VARCHAR,
             score DOUBLE, extra_bytes DOUBLE, kept BOOLEAN)`,
        );
        await db.conn.run(
          `INSERT INTO advisor_choices VALUES
             ('adv0', 1, 'layers.0.mlp.down_proj', 0.9, 1000, true),
             ('adv0', 2, 'layers.1.mlp.down_proj', 0.5, 1000, true),
             ('adv0', 3, 'layers.2.mlp.down_proj', 0.1, 1000, false)`,
        );
      }
    });
    await db.refreshViews();
  } finally {
    db.close();
  }
  Deno.writeTextFileSync(
    join(resultsDir, "runs", `${runId}.json`),
    JSON.stringify({ run, stages }),
  );
  const front =
    points.filter((a) =>
      !points.some((b) =>
        b !== a && b.mb <= a.mb && b.ppl <= a.ppl && (b.mb < a.mb || b.ppl < a.ppl)
      )
    ).length;
  return {
    configs: points.length,
    front,
    profileSeries: points.length,
    profilePoints: points.length * o.batches.length * 2,
    cells: Math.min(o.variants, 6) * o.layers * o.modules.length,
    trainRuns: o.trainRuns,
    warnings: o.warnings,
  };
}
