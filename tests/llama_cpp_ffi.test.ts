// libllama's struct layouts: the defaults libllama returns, read back field by field through
// the layouts in ffi/llama/structs.ts, equal the defaults the pinned llama.cpp source sets;
// and the binding's refusals (no library, a broken file, a bad id) are errors, not crashes.
import assert from "node:assert/strict";
import { llamaCpp, LlamaCppError, llamaSystemInfo } from "../ffi/llama/lib.ts";
import {
  LLAMA_CPP_PACKAGE,
  LLAMA_CPP_VERSION,
  LlamaCppUnavailable,
  locateLlamaCpp,
} from "../ffi/llama/locate.ts";
import { createTinyModel } from "../models/tiny.ts";
import { exportGguf } from "../models/gguf/export.ts";
import { LlamaCppModel } from "../models/llama_cpp/model.ts";
import {
  CONTEXT_PARAMS,
  type CStruct,
  MODEL_PARAMS,
  QUANTIZE_PARAMS,
} from "../ffi/llama/structs.ts";

function readAll(s: CStruct, buf: Uint8Array): Record<string, unknown> {
  assert.equal(buf.byteLength, s.size, `${s.name}: size`);
  return Object.fromEntries([...s.offsets.keys()].map((k) => [k, s.get(buf, k)]));
}

Deno.test("deno.json pins the libllama package locate.ts opens", () => {
  const imports = JSON.parse(Deno.readTextFileSync(new URL("../deno.json", import.meta.url)))
    .imports;
  assert.equal(imports[LLAMA_CPP_PACKAGE], `npm:${LLAMA_CPP_PACKAGE}@${LLAMA_CPP_VERSION}`);
});

Deno.test("llama_model_default_params reads back as llama-model.cpp sets it", () => {
  const got = readAll(MODEL_PARAMS, llamaCpp().llama_model_default_params());
  assert.deepEqual(got, {
    devices: 0n,
    tensor_buft_overrides: 0n,
    n_gpu_layers: -1,
    split_mode: 1, // LLAMA_SPLIT_MODE_LAYER
    load_mode: -1, // LLAMA_LOAD_MODE_AUTO
    lazy_mode: 1, // LLAMA_LAZY_MODE_AUTO
    main_gpu: 0,
    tensor_split: 0n,
    progress_callback: 0n,
    progress_callback_user_data: 0n,
    kv_overrides: 0n,
    vocab_only: false,
    check_tensors: false,
    use_extra_bufts: true,
    no_host: false,
    no_alloc: false,
    load_mtp: false,
  });
});

Deno.test("llama_context_default_params reads back as llama-context.cpp sets it", () => {
  const got = readAll(CONTEXT_PARAMS, llamaCpp().llama_context_default_params());
  assert.deepEqual(got, {
    n_ctx: 512,
    n_batch: 2048,
    n_ubatch: 512,
    n_seq_max: 1,
    n_rs_seq: 0,
    n_outputs_max: 0,
    n_outputs_max_per_seq: 1,
    n_threads: 4, // GGML_DEFAULT_N_THREADS
    n_threads_batch: 4,
    ctx_type: 0,
    rope_scaling_type: -1,
    pooling_type: -1,
    attention_type: -1,
    flash_attn_type: -1,
    rope_freq_base: 0,
    rope_freq_scale: 0,
    yarn_ext_factor: -1,
    yarn_attn_factor: -1,
    yarn_beta_fast: -1,
    yarn_beta_slow: -1,
    yarn_orig_ctx: 0,
    defrag_thold: -1,
    cb_eval: 0n,
    cb_eval_user_data: 0n,
    type_k: 1, // GGML_TYPE_F16
    type_v: 1,
    abort_callback: 0n,
    abort_callback_data: 0n,
    embeddings: false,
    offload_kqv: true,
    no_perf: true,
    op_offload: true,
    swa_full: true,
    kv_unified: false,
    samplers: 0n,
    n_samplers: 0n,
    ctx_other: 0n,
  });
});

Deno.test("llama_model_quantize_default_params reads back as llama-quant.cpp sets it", () => {
  const got = readAll(QUANTIZE_PARAMS, llamaCpp().llama_model_quantize_default_params());
  assert.deepEqual(got, {
    nthread: 0,
    ftype: 7, // LLAMA_FTYPE_MOSTLY_Q8_0
    output_tensor_type: 43, // GGML_TYPE_COUNT
    token_embedding_type: 43,
    allow_requantize: false,
    quantize_output_tensor: true,
    only_copy: false,
    pure: false,
    keep_split: false,
    dry_run: false,
    imatrix: 0n,
    kv_overrides: 0n,
    tt_overrides: 0n,
    prune_layers: 0n,
    max_buf_size: 8n * 1024n ** 3n, // LLAMA_QUANT_MAX_BUF_SIZE
  });
});

Deno.test("a ggml CPU backend was chosen and reports its features", () => {
  assert.match(llamaSystemInfo(), /CPU : .*AVX2 = 1/);
});

Deno.test("a folder without libllama is refused with how to get it", () => {
  const dir = Deno.makeTempDirSync();
  Deno.env.set("LLAMA_CPP_LIB_DIR", dir);
  try {
    assert.throws(() => locateLlamaCpp(), (e: Error) => {
      assert.ok(e instanceof LlamaCppUnavailable);
      assert.match(e.message, /LLAMA_CPP_LIB_DIR=.* holds no libllama\.\*\.so/);
      return true;
    });
  } finally {
    Deno.env.delete("LLAMA_CPP_LIB_DIR");
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("a truncated GGUF and an id outside the vocabulary fail with libllama's reason", () => {
  const tmp = Deno.makeTempDirSync();
  try {
    createTinyModel({ out: `${tmp}/m`, arch: "llama", preset: "tiny" });
    const { path } = exportGguf(`${tmp}/m`, `${tmp}/m.gguf`);
    const bytes = Deno.readFileSync(path);
    Deno.writeFileSync(`${tmp}/cut.gguf`, bytes.subarray(0, bytes.byteLength - 1000));
    assert.throws(
      () => LlamaCppModel.open(`${tmp}/cut.gguf`, { contextTokens: 16 }),
      (e: Error) => {
        assert.ok(e instanceof LlamaCppError);
        assert.match(e.message, /libllama could not load .*cut\.gguf: .*(error|fail)/i);
        return true;
      },
    );
    using m = LlamaCppModel.open(path, { contextTokens: 16 });
    assert.throws(
      () => m.logits([1, 5, 9999]),
      /token id 9999 is outside the vocabulary \(0\.\.258\)/,
    );
  } finally {
    Deno.removeSync(tmp, { recursive: true });
  }
});
