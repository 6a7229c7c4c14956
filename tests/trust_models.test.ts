// No silent wrong numbers from models: NaN/Inf weights, non-finite logits, contexts past
// max_position_embeddings and token ids past vocab_size are refused, naming what and why.
import assert from "node:assert/strict";
import { join } from "node:path";
import { full, tidy } from "../ffi/mod.ts";
import { LabError } from "../errors.ts";
import { runPipeline, silentReporter } from "../engine/mod.ts";
import { loadModel } from "../models/mod.ts";
import { createTinyModel } from "../models/tiny.ts";
import { loadSafetensors, saveSafetensors } from "../models/safetensors.ts";
import { allFinite, assertFiniteWeights, nonFiniteWeights } from "../models/finite_weights.ts";
import { perplexity } from "../models/eval/perplexity.ts";
import { multipleChoice } from "../models/eval/tasks.ts";
import { compareDistributions } from "../models/analysis/divergence.ts";
import { lab } from "./engine_helpers.ts";

const ROOT_MOD = new URL("../mod.ts", import.meta.url).href;
const TEXT = "The quick brown fox jumps over the lazy dog. ".repeat(8);

/** A tiny llama checkpoint, edited by `edit(tensors, config)` before it is written back. */
function tinyCheckpoint(
  edit: (
    tensors: Map<string, import("../ffi/mod.ts").Tensor>,
    config: Record<string, unknown>,
  ) => void = () => {},
): string {
  const dir = Deno.makeTempDirSync({ prefix: "lab-trust-" });
  createTinyModel({ arch: "llama", preset: "tiny", out: dir, seed: 3 });
  const file = join(dir, "model.safetensors");
  const tensors = loadSafetensors(file);
  const config = JSON.parse(Deno.readTextFileSync(join(dir, "config.json")));
  try {
    edit(tensors, config);
    saveSafetensors(file, tensors);
  } finally {
    for (const t of tensors.values()) t.dispose();
  }
  Deno.writeTextFileSync(join(dir, "config.json"), JSON.stringify(config));
  return dir;
}

const UP = "model.layers.1.mlp.up_proj.weight";

/** Plants NaN at 3 entries and +Inf at 2 of the layer-1 up projection. */
function withBadWeights(): string {
  return tinyCheckpoint((t) => {
    const w = t.get(UP)!;
    tidy(() => {
      w.narrow(0, 5, 3).narrow(1, 7, 1).fill_(NaN);
      w.narrow(0, 20, 2).narrow(1, 0, 1).fill_(Infinity);
    });
  });
}

Deno.test("NaN and Inf weights are found and named with their file and tensor", () => {
  const dir = withBadWeights();
  using model = loadModel(dir);
  const bad = nonFiniteWeights(model);
  assert.deepEqual(bad, [{
    tensor: UP,
    file: join(dir, "model.safetensors"),
    nan: 3,
    inf: 2,
  }]);
  assert.throws(
    () => assertFiniteWeights(model),
    (e: Error) =>
      e instanceof LabError &&
      e.message.includes(
        `${join(dir, "model.safetensors")}: tensor '${UP}' holds 3 NaN and 2 ` +
          "infinite values",
      ),
  );
  using good = loadModel(tinyCheckpoint());
  assert.deepEqual(nonFiniteWeights(good), []);
});

Deno.test("allFinite: a half-precision sum that overflows is not mistaken for Inf", () => {
  using big = full([4096], 1000, { dtype: "float16" });
  assert.equal(allFinite(big), true);
  using withInf = full([4], Infinity);
  assert.equal(allFinite(withInf), false);
  using withNan = full([4], NaN, { dtype: "bfloat16" });
  assert.equal(allFinite(withNan), false);
});

Deno.test("non-finite logits fail generation, perplexity and task scoring", () => {
  // loadModel alone does not check weights: the logits checks are the second line.
  using model = loadModel(withBadWeights());
  assert.throws(
    () => model.generate([[5, 6, 7]], { maxNewTokens: 3 }),
    (e: Error) =>
      e instanceof LabError && /produced non-finite logits .* at step 0/.test(e.message),
  );
  assert.throws(
    () => perplexity(model, TEXT, { contextLength: 32 }),
    (e: Error) =>
      e instanceof LabError && /perplexity: .*produced non-finite logits/.test(e.message),
  );
  assert.throws(
    () => multipleChoice(model, [{ question: "a b", choices: ["c", "d"], answer: 0 }]),
    (e: Error) => e instanceof LabError && /non-finite/.test(e.message),
  );
});

Deno.test("contexts past max_position_embeddings are refused in every path, with the numbers", () => {
  const dir = tinyCheckpoint((_, c) => (c.max_position_embeddings = 16));
  using model = loadModel(dir);
  assert.throws(
    () => model.generate([Array.from({ length: 40 }, (_, i) => 3 + i)], { maxNewTokens: 3 }),
    (e: Error) =>
      e instanceof LabError &&
      /a prompt of 40 tokens plus 3 new ones needs 43 positions, but the model allows 16 \(max_position_embeddings in .*config\.json\): shorten the prompt to fewer than 16 tokens/
        .test(e.message),
  );
  assert.throws(
    () => model.generate([[3, 4, 5, 6, 7, 8, 9, 10, 11, 12]], { maxNewTokens: 10 }),
    /needs 20 positions, but the model allows 16 .*: ask for at most 6 new tokens/,
  );
  // Exactly at the limit still runs.
  assert.equal(
    model.generate([[3, 4, 5, 6, 7, 8, 9, 10, 11, 12]], { maxNewTokens: 6, stopTokens: [] })
      .tokens[0].length,
    6,
  );
  assert.throws(
    () => perplexity(model, TEXT, { contextLength: 32 }),
    /perplexity with contextLength 32 needs 32 positions, but the model allows 16 .*: set contextLength to 16 or less/,
  );
  assert.ok(Number.isFinite(perplexity(model, TEXT, { contextLength: 16, stride: 8 }).ppl));
  assert.throws(
    () =>
      multipleChoice(model, [{ question: TEXT.slice(0, 40), choices: ["yes", "no"], answer: 0 }]),
    /needs \d+ positions, but the model allows 16/,
  );
  using other = loadModel(dir);
  assert.throws(
    () =>
      compareDistributions(model, other, Array.from({ length: 50 }, (_, i) => 3 + (i % 50)), {
        contextLength: 32,
      }),
    /analyze: windows of contextLength 32 needs 32 positions, but the model allows 16/,
  );
});

Deno.test("token ids past vocab_size: tokenizer.json and config.json disagree, both numbers", () => {
  const V = 40;
  const dir = tinyCheckpoint((t, c) => {
    for (const name of ["model.embed_tokens.weight", "lm_head.weight"]) {
      const w = t.get(name)!;
      t.set(name, w.narrow(0, 0, V).contiguous());
      w.dispose();
    }
    c.vocab_size = V;
  });
  using model = loadModel(dir);
  const agree =
    /tokenizer\.json and config\.json disagree: the tokenizer \(\d+ tokens\) produced token id \d+, but vocab_size in .*config\.json is 40/;
  assert.throws(() => perplexity(model, TEXT, { contextLength: 32 }), agree);
  assert.throws(() => model.generate("hello there", { maxNewTokens: 2 }), agree);
  assert.throws(
    () => model.generate([[3, 99]], { maxNewTokens: 2 }),
    /generate: prompt 0: token id 99 is outside the vocabulary \[0, 40\)/,
  );
});

Deno.test("stages fail on NaN weights, long contexts and empty files, naming each", async () => {
  const bad = withBadWeights();
  const good = tinyCheckpoint();
  const work = Deno.makeTempDirSync({ prefix: "lab-trust-pipe-" });
  const empty = join(work, "empty.txt");
  Deno.writeTextFileSync(empty, "  \n");
  const text = join(work, "text.txt");
  Deno.writeTextFileSync(text, TEXT);
  const file = join(work, "p.ts");
  Deno.writeTextFileSync(
    file,
    `import { evaluate, finetune, load, pipeline, profile } from "${ROOT_MOD}";
export default pipeline("trust", () => {
  const nan = load({ model: ${JSON.stringify(bad)} });
  evaluate(nan, { dataset: ${JSON.stringify(text)}, contextLength: 32 });
  profile(nan, { promptTokens: 4, newTokens: 2, repeats: 1, warmup: 0 });
  const ok = load({ model: ${JSON.stringify(good)} });
  evaluate(ok, { dataset: ${JSON.stringify(text)}, contextLength: 600 });
  evaluate(ok, { dataset: ${JSON.stringify(empty)} });
  evaluate(ok, { dataset: ${JSON.stringify(text)}, contextLength: 32 });
  finetune(ok, { data: ${
      JSON.stringify(join(Deno.cwd(), "data/instructions.jsonl"))
    }, maxLength: 1000, steps: 1 });
});
`,
  );
  const r = await runPipeline(file, {
    resultsDir: join(work, "results"),
    executor: "inline",
    reporter: silentReporter,
  });
  const errors = Object.fromEntries(
    r.outcomes.map((o) => [`${o.node.name}:${o.status}`, o.error?.message ?? ""]),
  );
  const failed = r.outcomes.filter((o) => o.status === "failed");
  assert.equal(failed.length, 5, JSON.stringify(errors, null, 1));
  const messageOf = (re: RegExp) => failed.map((o) => o.error!.message).filter((m) => re.test(m));
  assert.equal(
    messageOf(new RegExp(`model\\.safetensors: tensor '${UP.replaceAll(".", "\\.")}' holds 3 NaN`))
      .length,
    2,
    "evaluate and profile on the NaN model",
  );
  assert.equal(
    messageOf(/contextLength 600 needs 600 positions, but the model allows 512/).length,
    1,
  );
  assert.equal(messageOf(new RegExp(`dataset ${empty} is empty`)).length, 1);
  assert.equal(
    messageOf(
      /finetune: maxLength 1000 needs 1000 positions, but the model allows 512 .*: set maxLength to 512 or less/,
    )
      .length,
    1,
  );
  assert.ok(failed.every((o) => !o.error!.stack), "user errors carry no stack");
  assert.equal(r.outcomes.filter((o) => o.status === "ok").length, 3, "the good branch runs");
});

Deno.test("lab generate: NaN weights and over-long requests exit 2 with one line", async () => {
  const bad = await lab(["generate", "--model", withBadWeights(), "--prompt", "hi"]);
  assert.equal(bad.code, 2, bad.stderr);
  assert.match(bad.stderr.trim(), /^error: .*tensor 'model\.layers\.1\.mlp\.up_proj\.weight'/);
  assert.equal(bad.stderr.trim().split("\n").length, 1);
  const small = tinyCheckpoint((_, c) => (c.max_position_embeddings = 16));
  const long = await lab([
    "generate",
    "--model",
    small,
    "--prompt",
    "hello",
    "--max-new-tokens",
    "64",
  ]);
  assert.equal(long.code, 2, long.stderr);
  assert.match(long.stderr, /needs \d+ positions, but the model allows 16/);
});
