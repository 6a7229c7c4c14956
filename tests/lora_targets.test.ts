// The lab's one glob dialect over stage and module names, and PEFT's own reading of
// target_modules (a string is a full-match regular expression) when an adapter is loaded.
import assert from "node:assert/strict";
import { globToRegExp, moduleGlob } from "../glob.ts";
import { globMatcher } from "../engine/plan.ts";
import { applyAdapter, peftTargetMatcher, selectModules } from "../models/lora/mod.ts";
import { loadModel } from "../models/mod.ts";
import { saveSafetensors } from "../models/safetensors.ts";
import { createTinyModel } from "../models/tiny.ts";
import * as torch from "../ffi/mod.ts";

const root = Deno.makeTempDirSync({ prefix: "lora_targets_" });
const tiny = `${root}/tiny`;
createTinyModel({ out: tiny, arch: "llama", preset: "tiny", seed: 3 });

Deno.test("one glob dialect: * any run (dots too), ? one character, the rest literal", () => {
  assert.ok(globToRegExp("quantize*").test("quantize[scheme=int8]"));
  assert.ok(globToRegExp("load?").test("load2"));
  assert.ok(!globToRegExp("load?").test("load"));
  assert.ok(!globToRegExp("a.b").test("axb"), "a dot is literal");
  const stage = globMatcher("quant*");
  assert.ok(stage({ name: "q1", kind: "quantize" }), "a stage glob matches the kind too");
  assert.ok(moduleGlob("q_proj")("model.layers.3.self_attn.q_proj"), "short name = suffix");
  assert.ok(!moduleGlob("q_proj")("model.layers.3.self_attn.qq_proj"));
  assert.ok(moduleGlob("model.layers.?.mlp.*")("model.layers.1.mlp.up_proj"));
  assert.ok(!moduleGlob("model.layers.?.mlp.*")("model.layers.10.mlp.up_proj"));
});

Deno.test("targetModules use the same dialect as keep globs", () => {
  using m = loadModel(tiny);
  const names = selectModules(m, ["model.layers.?.mlp.down_proj"]).map((s) => s.name);
  assert.deepEqual(names, ["model.layers.0.mlp.down_proj", "model.layers.1.mlp.down_proj"]);
});

Deno.test("PEFT's target_modules: a string is a full-match regex, a list holds suffix names", () => {
  const re = peftTargetMatcher(".*layers\\.1\\..*(q_proj|v_proj)")!;
  assert.ok(re("model.layers.1.self_attn.q_proj"));
  assert.ok(!re("model.layers.0.self_attn.q_proj"));
  // A full match, not a search: "q_proj" alone as a string selects no full module name.
  assert.ok(!peftTargetMatcher("q_proj")!("model.layers.1.self_attn.q_proj"));
  const list = peftTargetMatcher(["q_proj"])!;
  assert.ok(list("model.layers.1.self_attn.q_proj"));
  assert.ok(!peftTargetMatcher("all-linear")!("lm_head"));
  assert.equal(peftTargetMatcher(undefined), null);
});

function writeAdapter(dir: string, targetModules: unknown): void {
  Deno.mkdirSync(dir, { recursive: true });
  torch.manualSeed(4);
  const t = new Map<string, torch.Tensor>([
    ["base_model.model.model.layers.1.self_attn.q_proj.lora_A.weight", torch.randn([2, 64])],
    ["base_model.model.model.layers.1.self_attn.q_proj.lora_B.weight", torch.randn([64, 2])],
  ]);
  saveSafetensors(`${dir}/adapter_model.safetensors`, t);
  for (const v of t.values()) v.dispose();
  Deno.writeTextFileSync(
    `${dir}/adapter_config.json`,
    JSON.stringify({ peft_type: "LORA", r: 2, lora_alpha: 4, target_modules: targetModules }),
  );
}

Deno.test("applyAdapter reads target_modules as PEFT does and refuses weights it would skip", () => {
  using m = loadModel(tiny);
  writeAdapter(`${root}/regex`, ".*\\.layers\\.1\\.self_attn\\.q_proj");
  assert.deepEqual(applyAdapter(m, `${root}/regex`), ["model.layers.1.self_attn.q_proj"]);
  using m2 = loadModel(tiny);
  // As a regex "q_proj" fully matches no module name, so PEFT would not load these weights.
  writeAdapter(`${root}/search`, "q_proj");
  const before = torch.liveTensors();
  assert.throws(
    () => applyAdapter(m2, `${root}/search`),
    /target_modules "q_proj" does not select model\.layers\.1\.self_attn\.q_proj/,
  );
  assert.equal(torch.liveTensors(), before, "a refused adapter frees its tensors");
});
