// lm-eval task YAML on the lab's engine: log-likelihoods against the lab's own path, metrics by
// hand, Python-identical few-shot draws, rolling windows, generate_until, results.json, bad input.
import assert from "node:assert/strict";
import { join } from "node:path";
import { loadModel } from "../models/mod.ts";
import { createTinyModel } from "../models/tiny.ts";
import { continuationLogProb } from "../models/eval/tasks.ts";
import { slidingNll } from "../models/eval/perplexity.ts";
import {
  readResultsJson,
  readTaskConfig,
  resultsJson,
  runTask,
} from "../models/eval/lm_eval/mod.ts";
import { choiceItems } from "../models/eval/lm_eval/run_task.ts";
import { aggregate, meanStderr } from "../models/eval/lm_eval/metrics.ts";
import { PythonRandom } from "../models/eval/lm_eval/python_random.ts";
import { FewshotSampler } from "../models/eval/lm_eval/fewshot.ts";
import { loadSplit } from "../models/eval/lm_eval/documents.ts";
import { rollingLogLikelihood, rollingWindows } from "../models/eval/lm_eval/loglikelihood.ts";
import { assertClose } from "./helpers.ts";

const DATA = new URL("../data/", import.meta.url).pathname;
const REFERENCE = new URL("./fixtures/lm_eval/results_lm_eval.json", import.meta.url).pathname;
const dir = Deno.makeTempDirSync({ prefix: "lab-lm-eval-" });
const modelDir = join(dir, "model");
createTinyModel({ arch: "llama", preset: "tiny", out: modelDir, seed: 4 });

/** Writes a task YAML (and its data) into a fresh folder; returns the YAML's path. */
function task(yaml: string, files: Record<string, string> = {}): string {
  const d = Deno.makeTempDirSync({ dir });
  for (const [name, text] of Object.entries(files)) Deno.writeTextFileSync(join(d, name), text);
  Deno.writeTextFileSync(join(d, "task.yaml"), yaml);
  return join(d, "task.yaml");
}

const MC_LAB = Deno.readTextFileSync(DATA + "mc.jsonl").split("\n").filter((l) => l.trim())
  .slice(0, 6).join("\n");

Deno.test("a multiple_choice task gives the lab's own per-choice log-likelihoods on the same data", async () => {
  using model = loadModel(modelDir);
  // The lab's mc.jsonl as is: choices carry their leading space, so the delimiter is empty.
  const f = task(
    `task: lab_mc
dataset_path: json
dataset_kwargs: {data_files: {test: mc.jsonl}}
test_split: test
output_type: multiple_choice
doc_to_text: question
doc_to_choice: "{{choices}}"
doc_to_target: answer
target_delimiter: ""
`,
    { "mc.jsonl": MC_LAB },
  );
  const r = await runTask(model, readTaskConfig(f));
  const tok = model.tokenizer!;
  const items = MC_LAB.split("\n").map((l) => JSON.parse(l));
  let right = 0;
  items.forEach((item, i) => {
    const ctx = [tok.bosTokenId!, ...tok.encode(item.question, { addSpecialTokens: false })];
    const want = item.choices.map((c: string) =>
      continuationLogProb(model, ctx, tok.encode(c, { addSpecialTokens: false }))
    );
    assertClose(r.docs[i].logprobs, want, 1e-4, `document ${i}`);
    if (want.indexOf(Math.max(...want)) === item.answer) right++;
  });
  assert.equal(r.metrics.acc!.value, right / items.length);
  assert.equal(r.effective, 6);
});

Deno.test("acc_norm divides by characters, not bytes (hand-computed, non-ASCII)", () => {
  // "été" is 3 characters and 5 bytes: −4.5/3 = −1.5 < −7/6 ≈ −1.167, so by characters
  // "summer" wins; by bytes −4.5/5 = −0.9 > −1.167 and "été" would.
  assert.deepEqual(choiceItems([-4.5, -7], ["été", "summer"], 1), { acc: 0, acc_norm: 1 });
  assert.deepEqual(choiceItems([-4.5, -7], ["été", "summer"], 0), { acc: 1, acc_norm: 0 });
  // Characters are code points: an emoji outside the BMP counts once (Python's len).
  assert.deepEqual(choiceItems([-2, -3.5], ["😀", "ab"], 1), { acc: 0, acc_norm: 1 });
});

Deno.test("stderr is lm-eval's mean_stderr; aggregations by hand", () => {
  // 0,1,1,1: mean .75, sample variance .25, stderr sqrt(.25)/2 = .25.
  assertClose([meanStderr([0, 1, 1, 1])], [0.25], 1e-12);
  assert.deepEqual(aggregate("acc", [0, 1, 1, 1]), { value: 0.75, stderr: 0.25 });
  assert.equal(aggregate("acc", [1]).stderr, "N/A");
  assertClose([aggregate("perplexity", [-1, -3]).value], [Math.exp(2)], 1e-12);
  assertClose([aggregate("word_perplexity", [[-6, 2], [-2, 2]]).value], [Math.exp(2)], 1e-12);
  assertClose([aggregate("bits_per_byte", [[-Math.LN2 * 3, 2], [0, 1]]).value], [1], 1e-12);
});

Deno.test("few-shot draws are Python's random.Random(seed).sample, so lm-eval's", () => {
  // Reference values printed by CPython 3: random.Random(1234).sample(range(10), 3), then
  // .sample(range(50), 5); random.Random(2**40 + 7).getrandbits(32), then .sample(range(100), 8).
  const r = new PythonRandom(1234);
  const range = (n: number) => Array.from({ length: n }, (_, i) => i);
  assert.deepEqual(r.sample(range(10), 3), [7, 1, 0]);
  assert.deepEqual(r.sample(range(50), 5), [5, 37, 2, 42, 44]);
  const big = new PythonRandom(2 ** 40 + 7);
  assert.equal(big.uint32(), 2635837658);
  assert.deepEqual(big.sample(range(100), 8), [95, 81, 73, 90, 60, 32, 78, 16]);
});

Deno.test("few-shot contexts are seeded, reproducible, and never show the document itself", async () => {
  const t = readTaskConfig(DATA + "lm_eval/story_choice.yaml");
  const same = { ...t, fewshot_split: "test", num_fewshot: 3 };
  const docs = await loadSplit(same, "test");
  const a = new FewshotSampler(same, docs, "test", 7);
  const b = new FewshotSampler(same, docs, "test", 7);
  const c = new FewshotSampler(same, docs, "test", 8);
  const picksA = docs.map((_, i) => a.pick(i));
  assert.deepEqual(picksA, docs.map((_, i) => b.pick(i)));
  assert.notDeepEqual(picksA, docs.map((_, i) => c.pick(i)));
  picksA.forEach((p, i) => {
    assert.equal(p.length, 3);
    assert.ok(!p.includes(i), `document ${i} shown as its own example`);
  });
  // The text, by hand: example text, target delimiter, the gold choice, few-shot delimiter.
  const first = { ...t, fewshot_config: { sampler: "first_n" as const } };
  const train = await loadSplit(first, "train");
  const ctx = new FewshotSampler(first, train, "train").context(0);
  const d0 = train[0] as { question: string; choices: string[]; answer: number };
  assert.equal(ctx, `${d0.question} ${d0.choices[d0.answer]}\n\n`);
});

Deno.test("rolling windows are lm-eval's disjoint windows; their sum is the whole text's NLL", () => {
  const toks = Array.from({ length: 23 }, (_, i) => i);
  // By hand, max length 10: predict 0..9 after the prefix, 10..19 after 9, 20..22 after 12..19.
  assert.deepEqual(rollingWindows(toks, -1, 10), [
    { context: [-1], continuation: toks.slice(0, 10) },
    { context: [9], continuation: toks.slice(10, 20) },
    { context: toks.slice(12, 20), continuation: [20, 21, 22] },
  ]);
  using model = loadModel(modelDir);
  const text = "Once there was a fox. It ran to the river and back again.";
  const ids = [
    model.tokenizer!.bosTokenId!,
    ...model.tokenizer!.encode(text, { addSpecialTokens: false }),
  ];
  const whole = slidingNll(model, ids, { contextLength: ids.length });
  const rolled = rollingLogLikelihood(model, text, 512);
  assertClose([-rolled.logprob], [whole.nll], 1e-3, "one window");
  assert.equal(rolled.tokens, ids.length - 1);
  // Short windows see less context: a different, still finite, sum over the same tokens.
  const short = rollingLogLikelihood(model, text, 16);
  assert.equal(short.tokens, ids.length - 1);
  assert.ok(Number.isFinite(short.logprob) && short.logprob !== rolled.logprob);
});

Deno.test("generate_until stops at the first `until` string and cuts the text there", async () => {
  using model = loadModel(modelDir);
  const prompt = "Once there was";
  const full = model.tokenizer!.decode(
    model.generate([prompt], { maxNewTokens: 12, stopTokens: [] }).tokens[0],
    { skipSpecialTokens: true },
  );
  // A stop string: the first character that did not appear before it, at position ≥ 2.
  const k = [...full].findIndex((ch, i) => i >= 2 && !full.slice(0, i).includes(ch));
  assert.ok(k > 0, `no usable stop character in ${JSON.stringify(full)}`);
  const stop = full[k];
  const f = task(
    `task: gen
dataset_path: json
dataset_kwargs: {data_files: {test: d.jsonl}}
test_split: test
output_type: generate_until
doc_to_text: p
doc_to_target: a
generation_kwargs: {until: [${JSON.stringify(stop)}], max_gen_toks: 12}
`,
    { "d.jsonl": JSON.stringify({ p: prompt, a: full.slice(0, k) }) + "\n" },
  );
  const r = await runTask(model, readTaskConfig(f));
  assert.equal(r.docs[0].generated, full.slice(0, k));
  assert.equal(r.metrics.exact_match!.value, 1);
  // It stopped generating once the stop string appeared, not at max_gen_toks.
  const promptTokens = 1 + model.tokenizer!.encode(prompt, { addSpecialTokens: false }).length;
  assert.ok(r.docs[0].tokens - promptTokens < 12, `generated ${r.docs[0].tokens - promptTokens}`);
});

Deno.test("results.json has lm-eval's keys and reads as lm-eval's own results do", async () => {
  using model = loadModel(modelDir);
  const results = [];
  for (const f of ["story_choice", "story_answer"]) {
    results.push(await runTask(model, readTaskConfig(`${DATA}lm_eval/${f}.yaml`), { limit: 3 }));
  }
  const json = resultsJson(results, {
    model: "tiny",
    modelArgs: "pretrained=x",
    fewshotSeed: 1234,
    limit: 3,
    date: 1,
  });
  const reference = JSON.parse(Deno.readTextFileSync(REFERENCE));
  for (
    const key of [
      "results",
      "configs",
      "versions",
      "n-shot",
      "higher_is_better",
      "n-samples",
      "config",
    ]
  ) {
    assert.ok(key in json, `results.json lacks ${key}`);
    assert.equal(typeof json[key], typeof reference[key]);
  }
  const res = json.results as Record<string, Record<string, unknown>>;
  assert.deepEqual(Object.keys(res.story_choice), Object.keys(reference.results.toy_choice));
  assert.deepEqual((json["n-samples"] as Record<string, unknown>).story_choice, {
    original: 32,
    effective: 3,
  });
  assert.equal((json.versions as Record<string, number>).story_choice, 1);
  const file = join(dir, "results.json");
  Deno.writeTextFileSync(file, JSON.stringify(json));
  const ours = readResultsJson(file);
  const theirs = readResultsJson(REFERENCE);
  assert.deepEqual(
    ours.filter((m) => m.task === "story_choice").map((m) => [m.metric, m.filter]),
    theirs.filter((m) => m.task === "toy_choice").map((m) => [m.metric, m.filter]),
  );
  assert.equal(ours.find((m) => m.metric === "acc")!.value, results[0].metrics.acc!.value);
  assert.deepEqual(theirs.find((m) => m.metric === "bits_per_byte"), {
    task: "toy_text",
    metric: "bits_per_byte",
    filter: "none",
    value: 1.4594316186372973,
    stderr: null,
  });
});

Deno.test("a loglikelihood task over Parquet data: perplexity and is-greedy by hand", async () => {
  using model = loadModel(modelDir);
  const d = Deno.makeTempDirSync({ dir });
  const { DuckDBInstance } = await import("@duckdb/node-api");
  const db = await DuckDBInstance.create(":memory:");
  const conn = await db.connect();
  await conn.run(
    `COPY (SELECT * FROM (VALUES ('Once there was', 'a cat'), ('The sun', 'set.')) t(ctx, cont))
     TO '${join(d, "d.parquet")}' (FORMAT parquet)`,
  );
  conn.closeSync();
  db.closeSync();
  Deno.writeTextFileSync(
    join(d, "task.yaml"),
    `task: ll
dataset_path: parquet
dataset_kwargs: {data_files: {test: d.parquet}}
test_split: test
output_type: loglikelihood
doc_to_text: ctx
doc_to_target: cont
`,
  );
  const r = await runTask(model, readTaskConfig(join(d, "task.yaml")));
  const tok = model.tokenizer!;
  const enc = (s: string) => tok.encode(s, { addSpecialTokens: false });
  const lls = [["Once there was", " a cat"], ["The sun", " set."]].map(([c, t]) =>
    continuationLogProb(model, [tok.bosTokenId!, ...enc(c)], enc(t))
  );
  assertClose(r.docs.map((x) => x.logprobs[0]), lls, 1e-4, "log-likelihoods");
  assertClose([r.metrics.perplexity!.value], [Math.exp(-(lls[0] + lls[1]) / 2)], 1e-3);
  // A random tiny model does not produce these continuations greedily.
  assert.equal(r.metrics.acc!.value, 0);
});

const GOOD = `task: t
dataset_path: json
dataset_kwargs: {data_files: {test: d.jsonl}}
test_split: test
output_type: multiple_choice
doc_to_text: "Q: {{question}}"
doc_to_choice: choices
doc_to_target: answer
`;
const DOCS = MC_LAB;

Deno.test("bad task YAML: errors name the task file, the key and the document", async () => {
  using model = loadModel(modelDir);
  const bad = (yaml: string, files: Record<string, string> = { "d.jsonl": DOCS }) =>
    task(yaml, files);
  assert.throws(
    () => readTaskConfig(bad(GOOD.replace("multiple_choice", "ranking"))),
    /task\.yaml: key 'output_type': .*multiple_choice/,
  );
  assert.throws(
    () => readTaskConfig(bad(GOOD + "process_docs: utils.process\n")),
    /task\.yaml: unsupported key 'process_docs'/,
  );
  assert.throws(
    () =>
      readTaskConfig(bad(GOOD.replace("doc_to_choice: choices", "doc_to_choice: !function u.f"))),
    /task\.yaml: key 'doc_to_choice': !function u\.f names Python code/,
  );
  assert.throws(
    () => readTaskConfig(bad(GOOD.replace("dataset_path: json", "dataset_path: cais/mmlu"))),
    /key 'dataset_path': 'cais\/mmlu' names a dataset hub download.*dataset_path: json/,
  );
  const missing = bad(GOOD, {});
  await assert.rejects(
    () => runTask(model, readTaskConfig(missing)),
    /task\.yaml: key 'dataset_kwargs\.data_files' \(split test\): data file .*d\.jsonl does not exist/,
  );
  const docs = DOCS.split("\n");
  docs[3] = JSON.stringify({ choices: ["a", "b"], answer: 0 });
  const noField = bad(GOOD, { "d.jsonl": docs.join("\n") });
  await assert.rejects(
    () => runTask(model, readTaskConfig(noField)),
    /task\.yaml: key 'doc_to_text', document 3 of split test: the template uses 'question'/,
  );
  const badTarget = bad(GOOD.replace("doc_to_target: answer", 'doc_to_target: "{{answer + 10}}"'));
  await assert.rejects(
    () => runTask(model, readTaskConfig(badTarget)),
    /key 'doc_to_target', document 0 of split test: the target 11 is neither/,
  );
});

Deno.test({
  name: "cleanup",
  fn: () => Deno.removeSync(dir, { recursive: true }),
});
