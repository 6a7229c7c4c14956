// Perplexity and task metrics against transformers' reference logits and hand computation.
import assert from "node:assert/strict";
import * as torch from "../ffi/mod.ts";
import { loadModel } from "../models/mod.ts";
import { loadSafetensors } from "../models/safetensors.ts";
import { createTinyModel } from "../models/tiny.ts";
import { perplexity, slidingNll } from "../models/eval/perplexity.ts";
import { checkChoiceItem, exactMatch, multipleChoice, readJsonl } from "../models/eval/tasks.ts";
import { assertClose, fixtureTestName, haveHfFixtures, HF_FIXTURES } from "./helpers.ts";

const FIXTURES = HF_FIXTURES;

/** −ln softmax(row)[t] in float64. */
function nllOf(row: ArrayLike<number>, t: number): number {
  let m = -Infinity;
  for (let i = 0; i < row.length; i++) m = Math.max(m, row[i]);
  let z = 0;
  for (let i = 0; i < row.length; i++) z += Math.exp(row[i] - m);
  return -(row[t] - m - Math.log(z));
}

Deno.test({
  name: fixtureTestName("token NLL of a full window equals the one from transformers' logits"),
  ignore: !haveHfFixtures,
  fn() {
    using model = loadModel(FIXTURES + "llama");
    const ref = loadSafetensors(FIXTURES + "llama/reference.safetensors");
    const ids = (ref.get("input_ids")!.toArray() as number[][])[0];
    const logits = ref.get("logits")!.data() as Float32Array; // [2, 16, 256]
    let want = 0;
    for (let t = 1; t < 16; t++) want += nllOf(logits.subarray((t - 1) * 256, t * 256), ids[t]);
    const got = slidingNll(model, ids, { contextLength: 16 });
    assert.equal(got.tokens, 15);
    assertClose([got.nll], [want], 2e-3, "NLL");
    for (const t of ref.values()) t.dispose();
  },
});

Deno.test({
  name: fixtureTestName(
    "sliding windows score each token once, with the context the stride leaves",
  ),
  ignore: !haveHfFixtures,
  fn() {
    using model = loadModel(FIXTURES + "qwen2");
    const ids = Array.from({ length: 40 }, (_, i) => 3 + ((i * 37) % 250));
    const seen: number[] = [];
    const got = slidingNll(model, ids, { contextLength: 10, stride: 9 }, (t) => seen.push(t));
    assert.deepEqual(seen, Array.from({ length: 39 }, (_, i) => i + 1));
    assert.equal(got.tokens, 39);
    // Independent recomputation: windows end at ctx, ctx + stride, …; token t gets the
    // context from the start of the first window reaching it, scored by its own forward pass.
    const ctx = 20, stride = 6;
    let want = 0;
    for (let t = 1; t < ids.length; t++) {
      let end = ctx;
      while (end <= t) end += stride;
      const begin = Math.max(0, Math.min(end, ids.length) - ctx);
      const w = ids.slice(begin, t + 1);
      want += torch.tidy(() => {
        const lg = model.forward([w]).data() as Float32Array;
        return nllOf(lg.subarray((w.length - 2) * 256, (w.length - 1) * 256), ids[t]);
      });
    }
    const sliding = slidingNll(model, ids, { contextLength: ctx, stride });
    assertClose([sliding.nll], [want], 2e-3, "sliding NLL");
    const big = slidingNll(model, ids, { contextLength: 40 });
    const overlapped = slidingNll(model, ids, { contextLength: 40, stride: 7 });
    assertClose([overlapped.nll], [big.nll], 1e-3);
  },
});

Deno.test("perplexity reports word PPL and bits per byte consistently", () => {
  const dir = Deno.makeTempDirSync({ prefix: "lab-ppl-" });
  try {
    createTinyModel({ arch: "llama", preset: "tiny", out: dir, seed: 3 });
    using model = loadModel(dir);
    const text = "The quick test sentence has seven words.\nAnd one more line here.";
    const r = perplexity(model, text, { contextLength: 32, stride: 16 });
    const bytes = new TextEncoder().encode(text).byteLength;
    assert.equal(r.bytes, bytes);
    assert.equal(r.words, 12);
    assertClose([r.ppl], [Math.exp(r.nll / r.tokens)], 1e-9);
    assertClose([r.bitsPerByte], [r.nll / (bytes * Math.LN2)], 1e-9);
    assertClose([r.wordPpl], [Math.exp(r.nll / 12)], 1e-6);
    // A random-weight byte model is near uniform: PPL close to the vocabulary size.
    assert.ok(r.ppl > 50, `ppl ${r.ppl}`);
    assert.throws(() => perplexity(model, "   "), /text is empty/);
    assert.throws(() => perplexity(model, text, { stride: 0 }), /stride must be in/);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("multiple choice picks the most likely continuation; exact match checks the prefix", () => {
  const dir = Deno.makeTempDirSync({ prefix: "lab-mc-" });
  try {
    createTinyModel({ arch: "llama", preset: "tiny", out: dir, seed: 4 });
    using model = loadModel(dir);
    // Items built so that the answer is whatever the model itself prefers: accuracy must be 1.
    const ctx = "Once there was";
    const choices = [" a cat.", " two dogs.", " nothing!"];
    const tok = model.tokenizer!;
    const scores = choices.map((c) =>
      torch.tidy(() => {
        const cids = tok.encode(ctx, { addSpecialTokens: false });
        const ids = [tok.bosTokenId ?? 1, ...cids, ...tok.encode(c, { addSpecialTokens: false })];
        const lg = model.forward([ids]).data() as Float32Array;
        let lp = 0;
        const V = model.config.vocabSize;
        for (let t = cids.length + 1; t < ids.length; t++) {
          lp -= nllOf(lg.subarray((t - 1) * V, t * V), ids[t]);
        }
        return lp;
      })
    );
    const best = scores.indexOf(Math.max(...scores));
    const worst = scores.indexOf(Math.min(...scores));
    const r1 = multipleChoice(model, [{ question: ctx, choices, answer: best }]);
    assert.equal(r1.accuracy, 1);
    const r0 = multipleChoice(model, [{ question: ctx, choices, answer: worst }]);
    assert.equal(r0.accuracy, 0);
    // Exact match: the answer is exactly what greedy decoding produces in 4 tokens.
    let found = false;
    for (const prompt of ["Hello", "Hi", "A", "The", "x", "Once", "0", "Yes", "No", "Go"]) {
      const g = model.generate([prompt], { maxNewTokens: 4, stopTokens: [] });
      const produced = tok.decode(g.tokens[0], { skipSpecialTokens: true }).trim();
      if (produced.length < 2) continue;
      const hit = exactMatch(model, [{ prompt, answer: produced }], { maxNewTokens: 4 });
      assert.equal(hit.exactMatch, 1, `prompt ${prompt} -> ${JSON.stringify(produced)}`);
      const other = produced.slice(0, -1) + (produced.endsWith("#") ? "%" : "#");
      const cut = exactMatch(model, [{ prompt, answer: other }], { maxNewTokens: 4 });
      assert.equal(cut.exactMatch, 0);
      found = true;
      break;
    }
    assert.ok(found, "no prompt with a visible continuation");
    const miss = exactMatch(model, [{ prompt: "Hello", answer: "\u2603\u2603 unlikely" }]);
    assert.equal(miss.exactMatch, 0);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("task files: bad records name the file, line and field", () => {
  const f = Deno.makeTempFileSync({ suffix: ".jsonl" });
  Deno.writeTextFileSync(
    f,
    '{"question":"q","choices":["a","b"],"answer":1}\n{"question":"q","choices":["a"],"answer":0}\n',
  );
  assert.throws(() => readJsonl(f, checkChoiceItem), new RegExp(`${f}:2: field "choices"`));
  Deno.writeTextFileSync(f, "{oops\n");
  assert.throws(() => readJsonl(f, checkChoiceItem), /:1: not valid JSON/);
  Deno.removeSync(f);
  const items = readJsonl(new URL("../data/mc.jsonl", import.meta.url).pathname, checkChoiceItem);
  assert.equal(items.length, 40);
});
