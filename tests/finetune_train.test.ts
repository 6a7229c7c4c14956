// The training loop with each method: overfitting a handful of examples, frozen weights,
// QLoRA's NF4 base, full checkpoints, schedules, and divergence reported as an error.
import assert from "node:assert/strict";
import { Linear, type LlamaModel, loadModel } from "../models/mod.ts";
import { createTinyModel } from "../models/tiny.ts";
import { loraLayers, LoRALinear } from "../models/lora/mod.ts";
import { QuantizedLinear } from "../models/quant/quantized_linear.ts";
import {
  checkpointedBackward,
  type Example,
  lrAt,
  makeBatch,
  type Method,
  prepareMethod,
  saveCheckpoint,
  train,
  type TrainConfig,
} from "../models/train/mod.ts";
import * as torch from "../ffi/mod.ts";
import { assertClose } from "./helpers.ts";

torch.setNumThreads(2);
const root = Deno.makeTempDirSync({ prefix: "finetune_train_" });
const tiny = `${root}/tiny`;
createTinyModel({ out: tiny, arch: "llama", preset: "tiny", seed: 1 });

const TEXTS = ["2+3=5", "abc->cba", "hello->olleh", "7*6=42"];
function examples(m: LlamaModel): Example[] {
  return TEXTS.map((t) => {
    const ids = m.tokenizer!.encode(t);
    return { inputIds: ids, labels: ids };
  });
}
const CFG: TrainConfig = {
  steps: 30,
  batchSize: 4,
  gradAccum: 1,
  lr: 1e-2,
  schedule: "constant",
  warmupSteps: 0,
  weightDecay: 0,
  maxGradNorm: 1,
  seed: 0,
  evalEvery: 10,
};
// lm_head is adapted too: the tiny model's random lm_head alone cannot produce sharp logits.
const LORA = { r: 8, alpha: 16, targetModules: ["all-linear", "lm_head"], seed: 1 };

function snapshot(m: LlamaModel): Map<string, Uint8Array> {
  const out = new Map<string, Uint8Array>();
  const w = m.weights;
  out.set("embed", (w.embedTokens as torch.Tensor).bytes());
  out.set("norm", w.norm.bytes());
  w.layers.forEach((l, i) => {
    out.set(`${i}.in`, l.inputNorm.bytes());
    out.set(`${i}.post`, l.postAttentionNorm.bytes());
    for (const [k, p] of Object.entries(l)) {
      let base = p as unknown;
      if (base instanceof LoRALinear) base = base.base;
      if (base instanceof Linear) out.set(`${i}.${k}`, base.weight.bytes());
      if (base instanceof QuantizedLinear) {
        base.parts.forEach((t, j) => out.set(`${i}.${k}.${j}`, t.bytes()));
      }
    }
  });
  let head = w.lmHead as unknown;
  if (head instanceof LoRALinear) head = head.base;
  out.set("lm_head", (head as Linear).weight.bytes());
  return out;
}

// Loss must fall below initial/FACTOR within CFG.steps steps on 4 memorised sequences.
const FACTOR = 5;

for (const method of ["full", "lora", "qlora"] as Method[]) {
  Deno.test(`${method}: ${CFG.steps} steps overfit 4 examples (loss falls ${FACTOR}x or more)`, async () => {
    const live = torch.liveTensors();
    {
      using m = loadModel(tiny);
      const data = examples(m);
      const p = prepareMethod(m, method, LORA);
      const before = method === "full" ? null : snapshot(m);
      const cfg = { ...CFG, lr: method === "full" ? 3e-3 : 1e-2 };
      const stepRows: number[] = [];
      const r = await train(m, p.trainable, { train: data, val: data }, cfg, {
        onStep: (row) => stepRows.push(row.step),
      });
      assert.equal(r.error, null);
      assert.equal(r.steps.length, CFG.steps);
      assert.deepEqual(stepRows, Array.from({ length: CFG.steps }, (_, i) => i + 1));
      assert.equal(r.evals.length, 4); // before, after 10, after 20, after 30
      const l0 = r.valBefore!.loss, l1 = r.valAfter!.loss;
      assert.ok(
        l1 < l0 / FACTOR,
        `${method}: validation loss ${l0.toFixed(3)} -> ${l1.toFixed(3)}`,
      );
      assert.ok(Math.abs(r.valAfter!.perplexity - Math.exp(l1)) < 1e-9);
      assert.ok(
        r.steps.every((s) =>
          Number.isFinite(s.grad_norm) && s.tokens_per_s > 0 && s.peak_mem_bytes > 0
        ),
      );
      assert.equal(r.memory.gradients.bytes, r.trainableParams * 4);
      assert.equal(r.memory.optimizer.bytes, 2 * r.trainableParams * 4);
      if (method === "full") {
        assert.equal(r.trainableParams, m.parameterCount());
      } else {
        // r·(in+out) per adapted module.
        const expected = loraLayers(m).reduce(
          (s, [, l]) => s + 8 * (l.inFeatures + l.outFeatures),
          0,
        );
        assert.equal(r.trainableParams, expected);
        const after = snapshot(m);
        for (const [k, v] of before!) assert.deepEqual(after.get(k), v, `frozen ${k} changed`);
      }
      if (method === "qlora") {
        for (const [name, l] of loraLayers(m)) {
          if (name === "lm_head") {
            assert.ok(l.base instanceof Linear);
            continue;
          }
          assert.ok(
            l.base instanceof QuantizedLinear,
            `${name} base is ${l.base.constructor.name}`,
          );
          assert.equal(l.base.scheme.kind, "nf4");
          assert.equal(l.base.scheme.block2, 256, "double quantization");
          assert.equal(l.base.parts[0].dtype, "uint8");
        }
        assert.ok(r.memory.weights.bytes < 0.6 * loadModelBytes());
      }
    }
    assert.equal(torch.liveTensors(), live, "training leaks no tensors");
  });
}

function loadModelBytes(): number {
  using m = loadModel(tiny);
  return m.weightBytes();
}

Deno.test("full fine-tune: checkpoint written and reloaded gives the trained logits", async () => {
  using m = loadModel(tiny);
  const p = prepareMethod(m, "full");
  await train(m, p.trainable, { train: examples(m), val: [] }, { ...CFG, steps: 3, lr: 1e-3 });
  const out = `${root}/full_ckpt`;
  saveCheckpoint(m, out);
  const ids = [m.tokenizer!.encode("abc->")];
  using a = torch.noGrad(() => m.forward(ids));
  using m2 = loadModel(out);
  using b = m2.forward(ids);
  assertClose(b.data() as Float32Array, a.data() as Float32Array, 0, "reloaded");
});

Deno.test("gradient accumulation: 2 x batch 2 equals 1 x batch 4 (same tokens, same update)", async () => {
  const run = async (batchSize: number, gradAccum: number) => {
    using m = loadModel(tiny);
    const data = examples(m);
    const p = prepareMethod(m, "full");
    const r = await train(m, p.trainable, { train: data, val: data }, {
      ...CFG,
      steps: 2,
      batchSize,
      gradAccum,
      lr: 1e-3,
    });
    return r;
  };
  const a = await run(4, 1), b = await run(2, 2);
  assert.ok(Math.abs(a.steps[0].loss - b.steps[0].loss) < 1e-5);
  assert.ok(Math.abs(a.steps[0].grad_norm - b.steps[0].grad_norm) < 1e-4);
  assert.ok(Math.abs(a.valAfter!.loss - b.valAfter!.loss) < 1e-4);
});

Deno.test("a diverging run stops with a clear error instead of crashing", async () => {
  using m = loadModel(tiny);
  const data = examples(m);
  const p = prepareMethod(m, "full");
  const r = await train(m, p.trainable, { train: data, val: data }, {
    ...CFG,
    steps: 20,
    lr: 1e30,
    maxGradNorm: 0,
  });
  assert.match(r.error ?? "", /(loss|gradient norm) became (NaN|Infinity|-Infinity) at step \d+/);
  assert.ok(r.steps.length < 20);
  assert.equal(r.valAfter, null);
});

Deno.test("learning-rate schedules with warm-up", () => {
  const c = { lr: 1, steps: 10, warmupSteps: 2 };
  assert.deepEqual([0, 1].map((s) => lrAt(s, { ...c, schedule: "constant" })), [0.5, 1]);
  assert.equal(lrAt(5, { ...c, schedule: "constant" }), 1);
  assert.equal(lrAt(2, { ...c, schedule: "linear" }), 1);
  assert.equal(lrAt(6, { ...c, schedule: "linear" }), 0.5);
  assert.ok(Math.abs(lrAt(6, { ...c, schedule: "cosine" }) - 0.5) < 1e-12);
  assert.ok(lrAt(9, { ...c, schedule: "cosine" }) < 0.05);
});

Deno.test("batches are right-padded and padding carries no loss", () => {
  const b = makeBatch([{ inputIds: [1, 5, 6, 7], labels: [-100, -100, 6, 7] }, {
    inputIds: [1, 9],
    labels: [1, 9],
  }], 0);
  assert.deepEqual(b.ids, [[1, 5, 6, 7], [1, 9, 0, 0]]);
  assert.deepEqual([...b.targets].map(Number), [-100, 6, 7, 9, -100, -100]);
  assert.equal(b.tokens, 6);
  assert.equal(b.targetCount, 3);
});

Deno.test("gradient checkpointing: same loss and gradients as the plain backward", () => {
  for (
    const [method, arch] of [["full", "llama"], ["lora", "mistral"], ["qlora", "qwen2"]] as const
  ) {
    const dir = `${root}/ckpt_${arch}`;
    createTinyModel({ out: dir, arch, preset: "tiny", seed: 4, overwrite: true });
    const grads = (checkpointing: boolean) => {
      using m = loadModel(dir);
      const p = prepareMethod(m, method, { ...LORA, seed: 2 });
      if (method !== "full") {
        // Non-zero B so that every adapter parameter gets a gradient.
        torch.manualSeed(9);
        torch.noGrad(() => {
          for (const [, l] of loraLayers(m)) {
            using r = torch.randn(l.loraB.shape);
            using s = r.mul(0.05);
            l.loraB.copy_(s);
          }
        });
      }
      const batch = makeBatch(examples(m), 0);
      let loss: number;
      if (checkpointing) loss = checkpointedBackward(m, batch, 0.5);
      else {
        loss = torch.tidy(() => {
          const logits = m.forward(batch.ids);
          const [B, T, V] = logits.shape;
          const sum = torch.crossEntropy(
            logits.narrow(1, 0, T - 1).reshape([B * (T - 1), V]),
            torch.tensor(batch.targets),
            { reduction: "sum" },
          );
          sum.mul(0.5).backward();
          return sum.item();
        });
      }
      const g = p.trainable.map((t) => {
        using gt = t.grad!;
        return gt.values();
      });
      return { loss, g };
    };
    const a = grads(false), b = grads(true);
    assert.ok(Math.abs(a.loss - b.loss) < 1e-4, `${method}: loss ${a.loss} vs ${b.loss}`);
    // Relative to the gradient's size: libtorch's reductions may split work differently
    // between the two paths (and with the threads it gets), which moves the last bits.
    a.g.forEach((ga, i) => {
      const scale = ga.reduce((m, x) => Math.max(m, Math.abs(x)), 1);
      assertClose(b.g[i], ga, 1e-5 * scale, `${method} (${arch}) grad ${i}`);
    });
  }
});
