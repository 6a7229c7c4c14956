// The finetune stage through the runner: records, artifacts, and divergence as a recorded error.
import assert from "node:assert/strict";
import { join } from "node:path";
import { runPipeline } from "../engine/mod.ts";
import { createTinyModel } from "../models/tiny.ts";
import { loadModel } from "../models/mod.ts";
import { applyAdapter } from "../models/lora/mod.ts";
import { ENGINE, queryRows, tempProject } from "./engine_helpers.ts";

const STAGE = new URL("../stages/finetune.ts", import.meta.url).href;
const DATA = new URL("../data/instructions.jsonl", import.meta.url).pathname;
const t = tempProject();
const tiny = join(t.dir, "tiny");
createTinyModel({ out: tiny, seed: 2 });

function pipelineFile(name: string, params: Record<string, unknown>): string {
  return t.write(
    `${name}.ts`,
    `import { pipeline } from "${ENGINE}";
import { finetune } from "${STAGE}";
export default pipeline(${JSON.stringify(name)}, () => {
  finetune(${JSON.stringify({ model: tiny, data: DATA, ...params })});
});
`,
  );
}

Deno.test("finetune stage (lora): train_steps rows, metrics, a PEFT adapter that loads", async () => {
  const file = pipelineFile("ft-lora", {
    method: "lora",
    steps: 4,
    batchSize: 4,
    lr: 1e-2,
    maxLength: 128,
    targetModules: "all-linear",
  });
  const s = await runPipeline(file, { resultsDir: t.results, executor: "inline", db: true });
  assert.equal(s.status, "ok", JSON.stringify(s.failures.map((f) => f.error?.message)));
  const steps = await queryRows(
    t.results,
    "select step, loss, lr, grad_norm, tokens from train_steps order by step",
  );
  assert.deepEqual(steps.map((r) => Number(r.step)), [1, 2, 3, 4]);
  assert.ok(
    steps.every((r) =>
      Number.isFinite(Number(r.loss)) && Number(r.grad_norm) > 0 && Number(r.tokens) > 0
    ),
  );
  const metrics = new Map(
    (await queryRows(t.results, "select name, value from metrics")).map((
      r,
    ) => [r.name, Number(r.value)]),
  );
  // r·(in+out) per module: q, o 8·128; k, v 8·96; gate, up, down 8·224; two layers.
  assert.equal(metrics.get("trainable_params"), 2 * 8 * (2 * 128 + 2 * 96 + 3 * 224));
  assert.ok(metrics.get("val_loss_after")! < metrics.get("val_loss_before")!);
  assert.equal(metrics.get("data_bad_records"), 0);
  for (
    const k of [
      "mem_weights_bytes",
      "mem_gradients_bytes",
      "mem_optimizer_bytes",
      "mem_activations_bytes",
    ]
  ) {
    assert.ok(metrics.has(k), k);
  }
  const mem = await queryRows(t.results, "select part, source from train_memory order by part");
  assert.deepEqual(mem.map((r) => r.part), [
    "activations",
    "gradients",
    "optimizer",
    "peak",
    "weights",
  ]);
  const summary = await queryRows(
    t.results,
    "select method, r, trainable_params, peak_mb, tokens_per_s, val_loss_before, val_loss_after from finetune_summary",
  );
  assert.equal(summary.length, 1);
  assert.equal(summary[0].method, "lora");
  assert.equal(Number(summary[0].r), 8);
  assert.equal(Number(summary[0].trainable_params), metrics.get("trainable_params"));
  assert.ok(Number(summary[0].peak_mb) > 0 && Number(summary[0].tokens_per_s) > 0);
  const key = s.outcomes[0].node.key;
  const adapter = join(t.results, "cache", key, "artifacts", "adapter");
  using m = loadModel(tiny);
  assert.equal(applyAdapter(m, adapter).length, 14);
});

Deno.test("finetune stage: a NaN loss fails the stage with a recorded, plain error", async () => {
  const file = pipelineFile("ft-nan", {
    method: "full",
    steps: 20,
    lr: 1e30,
    maxGradNorm: 0,
    maxLength: 128,
  });
  const s = await runPipeline(file, { resultsDir: t.results, executor: "inline", db: true });
  assert.equal(s.status, "failed");
  assert.equal(s.failures.length, 1);
  assert.match(
    s.failures[0].error!.message,
    /finetune \(full\): (loss|gradient norm) became (NaN|Infinity)/,
  );
  const rows = await queryRows(
    t.results,
    "select status, error from stages where pipeline = 'ft-nan'",
  );
  assert.equal(rows[0].status, "failed");
  assert.match(String(rows[0].error), /became (NaN|Infinity) at step/);
});

Deno.test("finetune stage: bad params name the field", async () => {
  const file = pipelineFile("ft-bad", { method: "dora" });
  await assert.rejects(
    () => runPipeline(file, { resultsDir: t.results, executor: "inline", db: false }),
    /method/,
  );
});
