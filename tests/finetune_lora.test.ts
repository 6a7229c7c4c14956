// LoRA layers, adapters in PEFT's format, merging, and gradients against finite differences.
import assert from "node:assert/strict";
import { Linear, loadModel } from "../models/mod.ts";
import { createTinyModel } from "../models/tiny.ts";
import {
  applyAdapter,
  applyLora,
  LoraError,
  loraLayers,
  LoRALinear,
  loraParameters,
  loraScaling,
  matchesTarget,
  mergeAdapter,
  saveAdapter,
  selectModules,
} from "../models/lora/mod.ts";
import { linearModules } from "../models/modules.ts";
import { readHeader, saveSafetensors } from "../models/safetensors.ts";
import * as torch from "../ffi/mod.ts";
import { assertClose } from "./helpers.ts";

torch.setNumThreads(2);
const root = Deno.makeTempDirSync({ prefix: "finetune_lora_" });
const tiny = `${root}/tiny`;
createTinyModel({ out: tiny, arch: "llama", preset: "tiny", seed: 3 });
const IDS = [[1, 40, 41, 42, 43, 44, 45, 46], [1, 90, 91, 92, 93, 94, 95, 96]];
const ALL = ["all-linear", "lm_head"];

function logits(m: ReturnType<typeof loadModel>): Float32Array {
  using l = torch.noGrad(() => m.forward(IDS));
  return l.data() as Float32Array;
}

// Gives every B random values so that adapters change the output.
function randomizeB(m: ReturnType<typeof loadModel>, scale = 0.05): void {
  torch.manualSeed(11);
  torch.noGrad(() => {
    for (const [, l] of loraLayers(m)) {
      using r = torch.randn(l.loraB.shape, { dtype: l.loraB.dtype });
      using s = r.mul(scale);
      l.loraB.copy_(s);
    }
  });
}

Deno.test("LoRA with B = 0 gives exactly the base model's logits", () => {
  using m = loadModel(tiny);
  const base = logits(m);
  const names = applyLora(m, { r: 4, alpha: 8, targetModules: ALL, seed: 0 });
  assert.equal(names.length, 2 * 7 + 1);
  const adapted = logits(m);
  assert.deepEqual(new Uint8Array(adapted.buffer), new Uint8Array(base.buffer));
});

Deno.test("LoRA init: A ~ U(-1/sqrt(in), 1/sqrt(in)) like PEFT's kaiming_uniform_(a=sqrt(5)), B zeros, scaling", () => {
  using m = loadModel(tiny);
  applyLora(m, { r: 8, alpha: 16, targetModules: ["q_proj"], seed: 0 });
  const [, l] = loraLayers(m)[0];
  const a = l.loraA.values();
  const bound = 1 / Math.sqrt(l.inFeatures);
  assert.ok(a.every((v) => Math.abs(v) <= bound));
  assert.ok(Math.max(...a) > 0.9 * bound && Math.min(...a) < -0.9 * bound);
  assert.ok(l.loraB.values().every((v) => v === 0));
  assert.equal(l.scaling, 2);
  assert.equal(loraScaling(16, 8, true), 2);
  assert.ok(l.loraA.requiresGrad && l.loraB.requiresGrad);
});

Deno.test("target modules: PEFT suffix names, globs, all-linear, and clear errors", () => {
  using m = loadModel(tiny);
  const names = (t: string | string[]) => selectModules(m, t).map((s) => s.name);
  assert.deepEqual(names(["q_proj", "v_proj"]), [
    "model.layers.0.self_attn.q_proj",
    "model.layers.0.self_attn.v_proj",
    "model.layers.1.self_attn.q_proj",
    "model.layers.1.self_attn.v_proj",
  ]);
  assert.equal(names("all-linear").length, 14);
  assert.ok(!names("all-linear").includes("lm_head"));
  assert.deepEqual(names("model.layers.1.mlp.*"), [
    "model.layers.1.mlp.gate_proj",
    "model.layers.1.mlp.up_proj",
    "model.layers.1.mlp.down_proj",
  ]);
  assert.deepEqual(names("model.layers.0.self_attn.o_proj"), ["model.layers.0.self_attn.o_proj"]);
  assert.ok(matchesTarget("model.layers.3.mlp.up_proj", "up_proj"));
  assert.ok(!matchesTarget("model.layers.3.mlp.up_proj", "p_proj"));
  assert.throws(() => selectModules(m, ["qq_proj"]), LoraError);
  assert.equal(linearModules(m, { includeTiedHead: true }).length, 15);
});

Deno.test("LoRA parameter gradients match finite differences (float64)", () => {
  using m = loadModel(tiny, { dtype: "float64" });
  applyLora(m, { r: 2, alpha: 4, targetModules: ["q_proj", "down_proj", "lm_head"], seed: 5 });
  randomizeB(m, 0.2);
  const ids = [[1, 50, 60, 70, 80, 90]];
  const target = torch.tensor(new BigInt64Array([60n, 70n, 80n, 90n, 100n]));
  // forward() returns float32 logits; the loss is built from the float64 final hidden state.
  const loss = () =>
    torch.tidy(() => {
      const out = m.forwardDetailed(ids);
      const l = m.weights.lmHead.forward(out.hiddenStates[out.hiddenStates.length - 1]);
      return torch.crossEntropy(l.narrow(1, 0, 5).reshape([5, -1]), target);
    });
  torch.tidy(() => loss().backward());
  // Attention softmax runs in float32 even for float64 models, so the step cannot be tiny.
  const eps = 1e-3;
  let checked = 0;
  for (const p of loraParameters(m)) {
    using g = p.grad!;
    const grad = g.values();
    const flatP = p.reshape([-1]); // a view: writing it perturbs p
    for (const idx of [0, Math.floor(p.numel / 2), p.numel - 1]) {
      const orig = flatP.narrow(0, idx, 1).item();
      const at = (v: number) => {
        torch.noGrad(() => {
          using cell = flatP.narrow(0, idx, 1);
          cell.fill_(v);
        });
        return torch.noGrad(() => torch.tidy(() => loss().item()));
      };
      const fd = (at(orig + eps) - at(orig - eps)) / (2 * eps);
      at(orig);
      assert.ok(
        Math.abs(fd - grad[idx]) <= 2e-5 + 5e-3 * Math.abs(fd),
        `grad ${grad[idx]} vs finite difference ${fd}`,
      );
      checked++;
    }
    flatP.dispose();
  }
  target.dispose();
  assert.equal(checked, 5 * 2 * 3); // q_proj, down_proj in 2 layers + lm_head; A and B; 3 entries
});

Deno.test("adapter: PEFT key names and config fields; save -> load round trip is exact", () => {
  const dir = `${root}/adapter1`;
  let ref: Float32Array;
  {
    using m = loadModel(tiny);
    applyLora(m, { r: 4, alpha: 8, dropout: 0.05, targetModules: ["q_proj", "v_proj"], seed: 1 });
    randomizeB(m);
    ref = logits(m);
    const cfg = saveAdapter(m, dir);
    assert.equal(cfg.peft_type, "LORA");
  }
  const cfg = JSON.parse(Deno.readTextFileSync(`${dir}/adapter_config.json`));
  assert.equal(cfg.peft_type, "LORA");
  assert.equal(cfg.task_type, "CAUSAL_LM");
  assert.equal(cfg.r, 4);
  assert.equal(cfg.lora_alpha, 8);
  assert.equal(cfg.lora_dropout, 0.05);
  assert.equal(cfg.bias, "none");
  assert.equal(cfg.use_rslora, false);
  assert.deepEqual(cfg.target_modules, ["q_proj", "v_proj"]);
  const header = readHeader(`${dir}/adapter_model.safetensors`);
  assert.deepEqual([...header.tensors.keys()].sort(), [
    "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight",
    "base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight",
    "base_model.model.model.layers.0.self_attn.v_proj.lora_A.weight",
    "base_model.model.model.layers.0.self_attn.v_proj.lora_B.weight",
    "base_model.model.model.layers.1.self_attn.q_proj.lora_A.weight",
    "base_model.model.model.layers.1.self_attn.q_proj.lora_B.weight",
    "base_model.model.model.layers.1.self_attn.v_proj.lora_A.weight",
    "base_model.model.model.layers.1.self_attn.v_proj.lora_B.weight",
  ]);
  assert.deepEqual(
    header.tensors.get("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight")!.shape,
    [4, 64],
  );
  assert.deepEqual(
    header.tensors.get("base_model.model.model.layers.0.self_attn.v_proj.lora_B.weight")!.shape,
    [32, 4],
  );
  using m2 = loadModel(tiny);
  const names = applyAdapter(m2, dir);
  assert.equal(names.length, 4);
  const got = logits(m2);
  assert.deepEqual(new Uint8Array(got.buffer), new Uint8Array(ref.buffer));
  const [, l] = loraLayers(m2)[0];
  assert.ok(!l.loraA.requiresGrad, "loaded adapters are frozen unless asked");
  using m3 = loadModel(tiny, { adapter: dir });
  assert.deepEqual(new Uint8Array(logits(m3).buffer), new Uint8Array(ref.buffer));
});

Deno.test("adapter written the PEFT way (adapter-name keys, rank/alpha patterns, rsLoRA) loads", () => {
  const dir = `${root}/adapter_peft`;
  Deno.mkdirSync(dir, { recursive: true });
  torch.manualSeed(2);
  const t = new Map<string, torch.Tensor>();
  const key = (mod: string, ab: string) =>
    `base_model.model.model.layers.1.${mod}.lora_${ab}.weight`;
  t.set(key("self_attn.o_proj", "A"), torch.randn([2, 64]));
  t.set(key("self_attn.o_proj", "B"), torch.randn([64, 2]));
  t.set(key("mlp.up_proj", "A"), torch.randn([4, 64]));
  t.set(key("mlp.up_proj", "B"), torch.randn([160, 4]));
  const bf = new Map([...t].map(([k, v]) => [k, v.to("bfloat16")]));
  saveSafetensors(`${dir}/adapter_model.safetensors`, bf);
  for (const v of [...t.values(), ...bf.values()]) v.dispose();
  Deno.writeTextFileSync(
    `${dir}/adapter_config.json`,
    JSON.stringify({
      peft_type: "LORA",
      task_type: "CAUSAL_LM",
      r: 4,
      lora_alpha: 16,
      lora_dropout: 0.1,
      target_modules: ["o_proj", "up_proj"],
      bias: "none",
      use_rslora: true,
      rank_pattern: { o_proj: 2 },
      alpha_pattern: { "layers.1.self_attn.o_proj": 4 },
      fan_in_fan_out: false,
    }),
  );
  using m = loadModel(tiny);
  const names = applyAdapter(m, dir);
  assert.deepEqual(names.sort(), ["model.layers.1.mlp.up_proj", "model.layers.1.self_attn.o_proj"]);
  const byName = new Map(loraLayers(m));
  assert.equal(byName.get("model.layers.1.self_attn.o_proj")!.scaling, 4 / Math.sqrt(2));
  assert.equal(byName.get("model.layers.1.mlp.up_proj")!.scaling, 16 / 2);
  assert.equal(byName.get("model.layers.1.mlp.up_proj")!.loraA.dtype, "float32");
});

Deno.test("applyAdapter refuses adapters that do not fit, naming the problem", () => {
  const dir = `${root}/adapter_bad`;
  Deno.mkdirSync(dir, { recursive: true });
  const a = torch.randn([2, 32]), b = torch.randn([64, 2]);
  saveSafetensors(
    `${dir}/adapter_model.safetensors`,
    new Map([
      ["base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight", a],
      ["base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight", b],
    ]),
  );
  a.dispose();
  b.dispose();
  Deno.writeTextFileSync(
    `${dir}/adapter_config.json`,
    JSON.stringify({ peft_type: "LORA", r: 2, lora_alpha: 2 }),
  );
  using m = loadModel(tiny);
  const before = torch.liveTensors();
  assert.throws(() => applyAdapter(m, dir), /do not fit the layer/);
  assert.equal(torch.liveTensors(), before);
  Deno.writeTextFileSync(`${dir}/adapter_config.json`, JSON.stringify({ peft_type: "IA3" }));
  assert.throws(() => applyAdapter(m, dir), /only "LORA"/);
  assert.throws(() => applyAdapter(m, `${root}/nowhere`), /adapter folder/);
});

Deno.test("merged checkpoint equals base + adapter forward", () => {
  const out = `${root}/merged`;
  let ref: Float32Array;
  {
    using m = loadModel(tiny);
    applyLora(m, { r: 4, alpha: 8, targetModules: ALL, seed: 1 });
    randomizeB(m);
    ref = logits(m);
    const merged = mergeAdapter(m, out);
    assert.equal(merged.length, 15);
    assert.equal(loraLayers(m).length, 0);
    assertClose(logits(m), ref, 2e-5, "merged in place");
  }
  using m2 = loadModel(out);
  assert.ok(m2.weights.layers[0].qProj instanceof Linear);
  assertClose(logits(m2), ref, 2e-5, "merged checkpoint");
  assert.ok(m2.tokenizer, "tokenizer files travel with the checkpoint");
});

Deno.test("LoRALinear refuses adapters of the wrong shape", () => {
  using w = torch.zeros([8, 4]);
  const base = new Linear(w);
  using a = torch.zeros([2, 5]);
  using b = torch.zeros([8, 2]);
  assert.throws(() => new LoRALinear(base, a, b, { alpha: 2 }), /do not fit/);
});
