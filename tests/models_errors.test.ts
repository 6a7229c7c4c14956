// Checkpoints a user can get wrong: each error names the field, tensor or file.
import assert from "node:assert/strict";
import { copyFileSync } from "node:fs";
import * as torch from "../ffi/mod.ts";
import {
  CheckpointError,
  ConfigError,
  createTinyModel,
  loadModel,
  loadSafetensors,
  saveSafetensors,
} from "../models/mod.ts";

/** A fresh tiny llama folder, edited by `edit`, then loaded expecting `re`. */
function expectLoadError(
  edit: (dir: string) => void,
  re: RegExp,
  kind: new (...a: never[]) => Error = CheckpointError,
) {
  const dir = Deno.makeTempDirSync({ prefix: "lab-bad-model-" });
  try {
    createTinyModel({ out: dir, arch: "llama", seed: 1, overwrite: true });
    edit(dir);
    const start = torch.liveTensors();
    assert.throws(() => loadModel(dir), (e: Error) => {
      assert.ok(e instanceof kind, `expected ${kind.name}, got ${e.name}: ${e.message}`);
      assert.match(e.message, re);
      return true;
    });
    assert.equal(torch.liveTensors(), start, "a failed load frees what it loaded");
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
}

function editConfig(dir: string, f: (c: Record<string, unknown>) => void) {
  const c = JSON.parse(Deno.readTextFileSync(`${dir}/config.json`));
  f(c);
  Deno.writeTextFileSync(`${dir}/config.json`, JSON.stringify(c));
}

function rewriteWeights(dir: string, f: (m: Map<string, torch.Tensor>) => void) {
  const m = loadSafetensors(`${dir}/model.safetensors`);
  try {
    f(m);
    saveSafetensors(`${dir}/model.safetensors`, m);
  } finally {
    for (const t of m.values()) t.dispose();
  }
}

Deno.test("an unknown architecture is refused, naming it and the supported ones", () => {
  expectLoadError(
    (d) => editConfig(d, (c) => (c.architectures = ["GPT2LMHeadModel"])),
    /config\.json: architecture "GPT2LMHeadModel" is not supported; supported: LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM, Phi3ForCausalLM/,
    ConfigError,
  );
});

Deno.test("a missing or malformed config field is named", () => {
  expectLoadError(
    (d) => editConfig(d, (c) => delete c.hidden_size),
    /config\.json: required field "hidden_size" is missing/,
    ConfigError,
  );
  expectLoadError(
    (d) => editConfig(d, (c) => (c.num_key_value_heads = 3)),
    /num_attention_heads \(4\) must be a multiple of num_key_value_heads \(3\)/,
    ConfigError,
  );
  expectLoadError(
    (d) => editConfig(d, (c) => (c.rope_scaling = { rope_type: "yarn", factor: 4 })),
    /rope_scaling type "yarn" is not supported/,
    ConfigError,
  );
});

Deno.test("a tensor missing from the weights is named", () => {
  expectLoadError(
    (d) =>
      rewriteWeights(d, (m) => {
        m.get("model.layers.1.mlp.down_proj.weight")!.dispose();
        m.delete("model.layers.1.mlp.down_proj.weight");
      }),
    /tensor 'model\.layers\.1\.mlp\.down_proj\.weight' is missing; config\.json \(LlamaForCausalLM, 2 layers\) requires it/,
  );
});

Deno.test("a config and weights that disagree on a shape name the tensor and both shapes", () => {
  expectLoadError(
    (d) => editConfig(d, (c) => (c.intermediate_size = 128)),
    /tensor 'model\.layers\.0\.mlp\.gate_proj\.weight' has shape \[160,64\] but config\.json implies \[128,64\]/,
  );
});

Deno.test("a folder with only pickled .bin weights is refused, saying why and how to convert", () => {
  expectLoadError(
    (d) => {
      Deno.renameSync(`${d}/model.safetensors`, `${d}/pytorch_model.bin`);
    },
    /only pickled PyTorch weights \(pytorch_model\.bin\).*arbitrary code.*safe_serialization=True/,
  );
});

Deno.test("a corrupt safetensors header names the file", () => {
  expectLoadError((d) => {
    const bytes = Deno.readFileSync(`${d}/model.safetensors`);
    bytes[12] = "!".charCodeAt(0); // inside the JSON header
    bytes[9] = "{".charCodeAt(0);
    Deno.writeFileSync(`${d}/model.safetensors`, bytes);
  }, /model\.safetensors: corrupt safetensors header: the header is not valid JSON/);
  expectLoadError(
    (d) => {
      const bytes = Deno.readFileSync(`${d}/model.safetensors`);
      Deno.writeFileSync(`${d}/model.safetensors`, bytes.subarray(0, bytes.byteLength - 16));
    },
    /model\.safetensors: corrupt safetensors header: tensor '.*' ends at byte \d+ of the data section, past its end/,
  );
});

Deno.test("missing folder and missing config.json are named", () => {
  assert.throws(
    () => loadModel("/nonexistent/model-dir"),
    /cannot read \/nonexistent\/model-dir\/config\.json/,
  );
  const dir = Deno.makeTempDirSync();
  try {
    createTinyModel({ out: `${dir}/m`, seed: 0 });
    copyFileSync(`${dir}/m/model.safetensors`, `${dir}/model.safetensors`);
    assert.throws(() => loadModel(dir), /config\.json/);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("float16 on the CPU is refused up front where libtorch cannot multiply it", () => {
  const dir = Deno.makeTempDirSync();
  try {
    createTinyModel({ out: dir, seed: 0, overwrite: true });
    let ok = true;
    try {
      torch.tidy(() =>
        torch.linear(
          torch.zeros([1, 2], { dtype: "float16" }),
          torch.zeros([2, 2], { dtype: "float16" }),
        )
      );
    } catch {
      ok = false;
    }
    if (ok) {
      using m = loadModel(dir, { dtype: "float16" });
      assert.equal(m.dtype, "float16");
    } else {
      assert.throws(
        () => loadModel(dir, { dtype: "float16" }),
        /float16 .* not available on the CPU.*bfloat16/,
      );
    }
    assert.throws(() => loadModel(dir, { dtype: "int8" as never }), /dtype 'int8' is not one of/);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
