// The tiny-model factory, the tokenizer, batched generation and sampling.
import assert from "node:assert/strict";
import * as torch from "../ffi/mod.ts";
import {
  configParameterCount,
  createTinyModel,
  loadModel,
  samplingProbabilities,
  TINY_ARCHS,
  type TinyArch,
} from "../models/mod.ts";
import { assertClose } from "./helpers.ts";

function withTiny(arch: TinyArch, fn: (dir: string) => void) {
  const dir = Deno.makeTempDirSync({ prefix: `lab-tiny-${arch}-` });
  const start = torch.liveTensors();
  try {
    createTinyModel({ out: dir, arch, seed: 7, overwrite: true, initStd: 0.2 });
    fn(dir);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
  assert.equal(torch.liveTensors(), start, "every tensor is freed");
}

for (const arch of TINY_ARCHS) {
  Deno.test(`tiny ${arch}: the factory's folder loads, runs, and generates the same with or without the cache`, () => {
    withTiny(arch, (dir) => {
      const files = [...Deno.readDirSync(dir)].map((e) => e.name).sort();
      assert.deepEqual(files, [
        "config.json",
        "generation_config.json",
        "model.safetensors",
        "special_tokens_map.json",
        "tokenizer.json",
        "tokenizer_config.json",
      ]);
      using model = loadModel(dir);
      assert.equal(
        model.config.architecture,
        JSON.parse(Deno.readTextFileSync(`${dir}/config.json`)).architectures[0],
      );
      assert.equal(model.config.vocabSize, 259);
      assert.ok(model.tokenizer);
      assert.equal(model.parameterCount(), configParameterCount(model.config));
      assert.equal(model.weightBytes(), model.parameterCount() * 4);
      using logits = model.forward([[1, 50, 60, 70]]);
      assert.deepEqual(logits.shape, [1, 4, 259]);
      const a = model.generate("Hello there", { maxNewTokens: 12, stopTokens: [] });
      const b = model.generate("Hello there", {
        maxNewTokens: 12,
        stopTokens: [],
        useCache: false,
      });
      assert.equal(a.tokens[0].length, 12);
      assert.deepEqual(a.tokens, b.tokens);
      assert.equal(typeof a.text![0], "string");
    });
  });
}

Deno.test("same seed, same weights; different seed, different weights", () => {
  const d = Deno.makeTempDirSync();
  try {
    createTinyModel({ out: `${d}/a`, seed: 1 });
    createTinyModel({ out: `${d}/b`, seed: 1 });
    createTinyModel({ out: `${d}/c`, seed: 2 });
    const bytes = (x: string) => Deno.readFileSync(`${d}/${x}/model.safetensors`);
    assert.deepEqual(bytes("a"), bytes("b"));
    assert.notDeepEqual(bytes("a"), bytes("c"));
    assert.throws(() => createTinyModel({ out: `${d}/a`, seed: 1 }), /exists and is not empty/);
    assert.throws(
      () => createTinyModel({ out: `${d}/z`, preset: "huge" as never }),
      /unknown preset 'huge'/,
    );
  } finally {
    Deno.removeSync(d, { recursive: true });
  }
});

Deno.test("the byte-level tokenizer round-trips any text and adds BOS", () => {
  withTiny("llama", (dir) => {
    using model = loadModel(dir);
    const tok = model.tokenizer!;
    const text = "Hello, wörld! 🙂 \n\ttabs & 中文";
    const ids = tok.encode(text);
    assert.equal(ids[0], 1, "BOS first");
    assert.deepEqual(ids.slice(1, 6), [..."Hello"].map((c) => 3 + c.charCodeAt(0)));
    assert.equal(ids.length, 1 + new TextEncoder().encode(text).length);
    assert.equal(tok.decode(ids), text);
    assert.deepEqual(tok.encode("hi", { addSpecialTokens: false }), [3 + 104, 3 + 105]);
    assert.equal(tok.eosTokenId, 2);
    assert.equal(tok.padTokenId, 0);
    assert.equal(
      tok.applyChatTemplate([{ role: "user", content: "hi" }]),
      "<|user|>\nhi</s>\n<|assistant|>\n",
    );
  });
});

Deno.test("a left-padded batch gives each row what it gets alone", () => {
  withTiny("mistral", (dir) => {
    using model = loadModel(dir);
    const prompts = [[1, 40, 41], [1, 80, 81, 82, 83, 84, 85, 86]];
    const batch = model.generate(prompts, { maxNewTokens: 8, stopTokens: [], outputLogits: true });
    using bl = batch.logits!;
    assert.equal(batch.promptLength, 8);
    assert.deepEqual(batch.sequences[0].slice(0, 5), [0, 0, 0, 0, 0]);
    for (let b = 0; b < 2; b++) {
      const alone = model.generate([prompts[b]], {
        maxNewTokens: 8,
        stopTokens: [],
        outputLogits: true,
      });
      using al = alone.logits!;
      assert.deepEqual(batch.tokens[b], alone.tokens[0]);
      using row = bl.narrow(0, b, 1);
      assertClose(row.values(), al.values(), 1e-4, `row ${b} logits`);
    }
  });
});

Deno.test("stop tokens end a row; stopped rows are filled with the pad id", () => {
  withTiny("llama", (dir) => {
    using model = loadModel(dir);
    const free = model.generate([[1, 10, 11], [1, 90]], { maxNewTokens: 6, stopTokens: [] });
    const stopAt = free.tokens[0][1];
    const res = model.generate([[1, 10, 11], [1, 90]], {
      maxNewTokens: 6,
      stopTokens: [stopAt],
      padTokenId: 0,
    });
    assert.deepEqual(res.tokens[0], free.tokens[0].slice(0, free.tokens[0].indexOf(stopAt) + 1));
    assert.equal(res.stopped[0], true);
    const k = res.tokens[0].length;
    assert.deepEqual(res.sequences[0].slice(3 + k), new Array(res.steps - k).fill(0));
    const one = model.generate([[1, 10, 11]], { maxNewTokens: 6, stopTokens: [stopAt] });
    assert.equal(one.steps, one.tokens[0].length, "a lone row stops generating at its stop token");
  });
});

Deno.test("sampling: a seed repeats a run, top-k 1 is greedy, bad options are named", () => {
  withTiny("qwen2", (dir) => {
    using model = loadModel(dir);
    const p = [[1, 20, 30, 40]];
    const opts = { maxNewTokens: 16, stopTokens: [], temperature: 1.0, topP: 0.9 };
    const a = model.generate(p, { ...opts, seed: 11 });
    const b = model.generate(p, { ...opts, seed: 11 });
    const c = model.generate(p, { ...opts, seed: 12 });
    assert.deepEqual(a.tokens, b.tokens);
    assert.notDeepEqual(a.tokens, c.tokens);
    const greedy = model.generate(p, { maxNewTokens: 16, stopTokens: [] });
    const k1 = model.generate(p, {
      maxNewTokens: 16,
      stopTokens: [],
      temperature: 0.7,
      topK: 1,
      seed: 3,
    });
    assert.deepEqual(k1.tokens, greedy.tokens);
    assert.throws(() => model.generate(p, { temperature: -1 }), /temperature must be ≥ 0/);
    assert.throws(() => model.generate(p, { temperature: 1, topP: 0 }), /topP must be in \(0, 1\]/);
    assert.throws(
      () => model.generate(p, { maxNewTokens: 0 }),
      /maxNewTokens must be a positive integer/,
    );
    assert.throws(
      () => model.generate([[1, 999]]),
      /token id 999 is outside the vocabulary \[0, 259\)/,
    );
  });
});

Deno.test("samplingProbabilities applies temperature, then top-k, then top-p", () => {
  torch.tidy(() => {
    const logits = torch.tensor([[Math.log(0.5), Math.log(0.3), Math.log(0.15), Math.log(0.05)]]);
    assertClose(
      samplingProbabilities(logits, { temperature: 1 }).values(),
      [0.5, 0.3, 0.15, 0.05],
      1e-6,
    );
    assertClose(samplingProbabilities(logits, { temperature: 1, topK: 2 }).values(), [
      0.625,
      0.375,
      0,
      0,
    ], 1e-6);
    // top-p 0.8 keeps 0.5 + 0.3 (mass before 0.15 is already 0.8).
    assertClose(samplingProbabilities(logits, { temperature: 1, topP: 0.8 }).values(), [
      0.5,
      0.3,
      0,
      0,
    ], 1e-6);
    assertClose(samplingProbabilities(logits, { temperature: 1, topP: 0.81 }).values(), [
      0.5,
      0.3,
      0.15,
      0,
    ], 1e-6);
    const hot = samplingProbabilities(logits, { temperature: 2 }).values();
    const want = [0.5, 0.3, 0.15, 0.05].map(Math.sqrt);
    const z = want.reduce((x, y) => x + y);
    assertClose(hot, want.map((v) => v / z), 1e-6);
  });
});

Deno.test("lab init-model and lab generate run end to end", async () => {
  const { main } = await import("../tasks/lab.ts");
  const dir = Deno.makeTempDirSync();
  try {
    assert.equal(
      await main(["init-model", "--arch", "phi3", "--out", `${dir}/m`, "--seed", "3"]),
      0,
    );
    assert.ok(Deno.statSync(`${dir}/m/tokenizer.json`).isFile);
    const code = await main([
      "generate",
      "--model",
      `${dir}/m`,
      "--prompt",
      "Hi",
      "--max-new-tokens",
      "4",
    ]);
    assert.equal(code, 0);
    assert.equal(await main(["init-model", "--arch", "gpt2", "--out", `${dir}/x`]), 2);
    assert.equal(await main(["generate", "--model", `${dir}/missing`, "--prompt", "Hi"]), 2);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
