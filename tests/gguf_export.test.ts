// GGUF export checked against the lab's own forward: llama.cpp (through libllama) gives the
// lab's fp32 logits, perplexity and greedy ids on every fixture architecture it supports, and
// the file parses back (with @huggingface/gguf, an independent reader) key by key.
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { existsSync } from "node:fs";
import { gguf } from "@huggingface/gguf";
import { exportGguf } from "../models/gguf/export.ts";
import { LlamaCppModel } from "../models/llama_cpp/model.ts";
import { llamaCppGreedy, llamaCppSlidingNll } from "../models/llama_cpp/scoring.ts";
import { slidingNll } from "../models/eval/perplexity.ts";
import { loadModel } from "../models/load.ts";
import { createTinyModel } from "../models/tiny.ts";
import { BYTE_VOCAB } from "../models/byte_tokenizer.ts";
import { assertClose } from "./helpers.ts";

const FIXTURES = fileURLToPath(new URL("../../shared/fixtures/hf/", import.meta.url));
const present = existsSync(FIXTURES);
if (!present) console.warn(`SKIPPED gguf_export fixtures: none at ${FIXTURES}`);

const ids = Array.from({ length: 24 }, (_, i) => (i * 37 + 5) % 256);

for (const arch of ["llama", "llama3-rope", "qwen2", "phi3"]) {
  Deno.test({
    name: `${arch}: GGUF F32 in llama.cpp gives the lab's logits, perplexity and greedy ids`,
    ignore: !present,
    fn: () => {
      const dir = `${FIXTURES}${arch}`;
      const tmp = Deno.makeTempDirSync();
      try {
        const out = exportGguf(dir, `${tmp}/model.gguf`, "F32");
        using cpp = LlamaCppModel.open(out.path, { contextTokens: 64 });
        using lab = loadModel(dir);
        using labLogits = lab.forward([ids]);
        const got = cpp.logits(ids);
        assertClose(got.flatMap((r) => [...r]), labLogits.values(), 1e-4, `${arch} logits`);

        // Perplexity over the same sliding windows (three of them) of the same ids.
        const windows = { contextLength: 16, stride: 8 };
        const cppNll = llamaCppSlidingNll(cpp, ids, windows);
        const labNll = slidingNll(lab, ids, windows);
        assert.equal(cppNll.tokens, labNll.tokens);
        const rel = Math.abs(cppNll.nll - labNll.nll) / labNll.nll;
        assert.ok(rel <= 1e-5, `${arch}: windowed NLL ${cppNll.nll} vs lab ${labNll.nll}`);

        const prompt = ids.slice(0, 6);
        const greedy = lab.generate([prompt], { maxNewTokens: 10, stopTokens: [] });
        assert.deepEqual(llamaCppGreedy(cpp, prompt, 10), greedy.tokens[0].slice(0, 10));
      } finally {
        Deno.removeSync(tmp, { recursive: true });
      }
    },
  });
}

Deno.test({
  name: "mistral with a sliding window shorter than its context is refused, naming the field",
  ignore: !present,
  fn: () => {
    assert.throws(
      () => exportGguf(`${FIXTURES}mistral`, "/tmp/never.gguf"),
      /sliding_window=8 < max_position_embeddings=256/,
    );
  },
});

Deno.test("a lab model's GGUF parses back with every key and tensor shape", async () => {
  const tmp = Deno.makeTempDirSync();
  try {
    createTinyModel({ out: `${tmp}/m`, arch: "llama3", preset: "tiny" });
    for (const type of ["F32", "F16", "BF16"] as const) {
      const out = exportGguf(`${tmp}/m`, `${tmp}/m-${type}.gguf`, type);
      const { metadata, tensorInfos } = await gguf(out.path, { allowLocalFile: true });
      const md = metadata as Record<string, unknown>;
      assert.equal(md["general.architecture"], "llama");
      assert.equal(md["general.file_type"], { F32: 0, F16: 1, BF16: 32 }[type]);
      assert.equal(md["llama.block_count"], 2);
      assert.equal(md["llama.embedding_length"], 64);
      assert.equal(md["llama.attention.head_count_kv"], 2);
      assert.equal(md["llama.rope.freq_base"], 500000);
      const tokens = md["tokenizer.ggml.tokens"] as string[];
      assert.equal(tokens.length, BYTE_VOCAB);
      assert.deepEqual(tokens.slice(0, 4), ["<pad>", "<s>", "</s>", "Ā"]);
      assert.deepEqual((md["tokenizer.ggml.token_type"] as number[]).slice(0, 4), [3, 3, 3, 1]);
      assert.equal(md["tokenizer.ggml.bos_token_id"], 1);
      assert.equal(md["tokenizer.ggml.eos_token_id"], 2);
      const shapes = Object.fromEntries(tensorInfos.map((t) => [t.name, t.shape.map(Number)]));
      assert.deepEqual(shapes["token_embd.weight"], [64, BYTE_VOCAB]);
      assert.deepEqual(shapes["blk.1.attn_k.weight"], [64, 32]);
      assert.deepEqual(shapes["blk.0.ffn_down.weight"], [160, 64]);
      assert.deepEqual(shapes["rope_freqs.weight"], [8]);
      assert.equal(shapes["output.weight"], undefined, "tied: no output.weight");
      assert.equal(tensorInfos.length, 2 + 2 * 9 + 1);
      const types = new Set(tensorInfos.filter((t) => t.n_dims === 2).map((t) => t.dtype));
      assert.deepEqual([...types], [{ F32: 0, F16: 1, BF16: 30 }[type]]);
    }
  } finally {
    Deno.removeSync(tmp, { recursive: true });
  }
});

Deno.test("a SentencePiece-style tokenizer is refused, naming the file and what is supported", () => {
  const tmp = Deno.makeTempDirSync();
  try {
    createTinyModel({ out: `${tmp}/m`, arch: "llama", preset: "tiny" });
    Deno.writeTextFileSync(
      `${tmp}/m/tokenizer.json`,
      JSON.stringify({ model: { type: "Unigram", vocab: [] } }),
    );
    assert.throws(
      () => exportGguf(`${tmp}/m`, `${tmp}/m.gguf`),
      /tokenizer\.json is a Unigram tokenizer; the lab exports byte-level BPE tokenizers only/,
    );
    // Neither the file nor its temporary (m.gguf.tmp-PID) is left behind.
    assert.deepEqual([...Deno.readDirSync(tmp)].filter((e) => e.name.startsWith("m.gguf")), []);
  } finally {
    Deno.removeSync(tmp, { recursive: true });
  }
});

Deno.test("byte-level BPE merges and added tokens reach the GGUF, and llama.cpp loads them", async () => {
  const tmp = Deno.makeTempDirSync();
  try {
    createTinyModel({ out: `${tmp}/m`, arch: "qwen2", preset: "tiny" });
    const path = `${tmp}/m/tokenizer.json`;
    const tj = JSON.parse(Deno.readTextFileSync(path));
    // Replace two unused byte ids with a merged token and a user-defined one (vocab stays 259).
    tj.model.vocab["Ġt"] = 257;
    tj.model.merges = [["Ġ", "t"]];
    tj.added_tokens.push({ id: 258, content: "<tool>", special: false });
    for (const [k, v] of Object.entries(tj.model.vocab)) {
      if ((v === 257 && k !== "Ġt") || (v === 258 && k !== "<tool>")) delete tj.model.vocab[k];
    }
    Deno.writeTextFileSync(path, JSON.stringify(tj));
    const out = exportGguf(`${tmp}/m`, `${tmp}/m.gguf`);
    const md = (await gguf(out.path, { allowLocalFile: true })).metadata as Record<
      string,
      unknown
    >;
    assert.deepEqual(md["tokenizer.ggml.merges"], ["Ġ t"]);
    const tokens = md["tokenizer.ggml.tokens"] as string[];
    const types = md["tokenizer.ggml.token_type"] as number[];
    assert.deepEqual([tokens[257], types[257]], ["Ġt", 1]);
    assert.deepEqual([tokens[258], types[258]], ["<tool>", 4]);
    using m = LlamaCppModel.open(out.path, { contextTokens: 16 });
    assert.equal(m.vocabSize, 259);
  } finally {
    Deno.removeSync(tmp, { recursive: true });
  }
});
