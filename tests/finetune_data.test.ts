// Training data: instruction rendering, response-only labels, truncation, bad records with
// line numbers, text blocks and the seeded split.
import assert from "node:assert/strict";
import { loadModel } from "../models/mod.ts";
import { createTinyModel } from "../models/tiny.ts";
import {
  DataError,
  describeBad,
  IGNORE_INDEX,
  loadInstructionData,
  readRecords,
  renderInstruction,
  splitDataset,
  textBlocks,
} from "../models/train/mod.ts";

const root = Deno.makeTempDirSync({ prefix: "finetune_data_" });
createTinyModel({ out: `${root}/tiny` });
const model = loadModel(`${root}/tiny`);
const tok = model.tokenizer!;
const BUNDLED = new URL("../data/instructions.jsonl", import.meta.url).pathname;

function write(name: string, text: string | Uint8Array): string {
  const p = `${root}/${name}`;
  if (typeof text === "string") Deno.writeTextFileSync(p, text);
  else Deno.writeFileSync(p, text);
  return p;
}

Deno.test("instruction records: loss on response tokens only, EOS appended, BOS first", () => {
  const p = write("one.jsonl", JSON.stringify({ instruction: "Add 2 and 3.", output: "5" }) + "\n");
  const ds = loadInstructionData(p, { tokenizer: tok, maxLength: 128 });
  assert.equal(ds.examples.length, 1);
  const e = ds.examples[0];
  const prompt = "### Instruction:\nAdd 2 and 3.\n\n### Response:\n";
  const promptIds = tok.encode(prompt);
  assert.deepEqual(e.inputIds.slice(0, promptIds.length), promptIds);
  assert.equal(e.inputIds[0], tok.bosTokenId);
  assert.deepEqual(e.inputIds.slice(promptIds.length), [
    ...tok.encode("5", { addSpecialTokens: false }),
    tok.eosTokenId,
  ]);
  assert.ok(e.labels.slice(0, promptIds.length).every((l) => l === IGNORE_INDEX));
  assert.deepEqual(e.labels.slice(promptIds.length), e.inputIds.slice(promptIds.length));
  assert.equal(ds.targetTokens, 2);
});

Deno.test("templates: input section, custom template, the tokenizer's chat template", () => {
  const r = { instruction: "Reverse the word.", input: "lamp", output: "pmal" };
  assert.equal(
    renderInstruction(r, tok).prompt,
    "### Instruction:\nReverse the word.\n\n### Input:\nlamp\n\n### Response:\n",
  );
  assert.equal(
    renderInstruction(r, tok, "Q: {instruction} {input}\nA: ").prompt,
    "Q: Reverse the word. lamp\nA: ",
  );
  const chat = renderInstruction(r, tok, "chat");
  assert.equal(chat.prompt, "<|user|>\nReverse the word.\n\nlamp</s>\n<|assistant|>\n");
  assert.equal(chat.response, "pmal</s>\n");
  const p = write("chat.jsonl", JSON.stringify(r));
  const ds = loadInstructionData(p, { tokenizer: tok, maxLength: 128, template: "chat" });
  const e = ds.examples[0];
  const n = tok.encode(chat.prompt, { addSpecialTokens: false }).length;
  assert.equal(e.labels.filter((l) => l !== IGNORE_INDEX).length, e.inputIds.length - n);
});

Deno.test("bad records are counted by reason with their first line numbers", () => {
  const good = JSON.stringify({ instruction: "Say hi.", output: "hi" });
  const lines = [
    good, // 1
    JSON.stringify({ instruction: "No output." }), // 2 missing-field
    "{not json", // 3
    JSON.stringify({ instruction: "Empty.", output: "  " }), // 4 empty-output
    "", // 5 blank: skipped silently
    JSON.stringify({ instruction: "x".repeat(200), output: "y" }), // 6 over-long
    "PLACEHOLDER", // 7 non-utf8
    JSON.stringify([1, 2]), // 8 not an object
    good, // 9
  ];
  const enc = new TextEncoder();
  const parts = lines.map((l) =>
    l === "PLACEHOLDER" ? new Uint8Array([0x7b, 0xff, 0xfe, 0x7d]) : enc.encode(l)
  );
  const bytes = new Uint8Array(parts.reduce((s, p) => s + p.length + 1, 0));
  let at = 0;
  for (const p of parts) {
    bytes.set(p, at);
    bytes[at + p.length] = 0x0a;
    at += p.length + 1;
  }
  const ds = loadInstructionData(write("bad.jsonl", bytes), { tokenizer: tok, maxLength: 64 });
  assert.equal(ds.examples.length, 2);
  assert.equal(ds.bad.count, 6);
  assert.deepEqual(ds.bad.byReason, {
    "missing-field": 1,
    "invalid-json": 1,
    "empty-output": 1,
    "over-long": 1,
    "non-utf8": 1,
    "not-an-object": 1,
  });
  assert.deepEqual(ds.bad.first.map((b) => b.line), [2, 3, 4, 6, 7]); // the first five, in file order
  assert.match(describeBad(ds.bad), /6 bad records .*line 2 \(missing-field/);
});

Deno.test("no usable record is an error that says why", () => {
  const p = write(
    "none.jsonl",
    JSON.stringify({ instruction: "a" }) + "\n" + JSON.stringify({ output: "b" }) + "\n",
  );
  assert.throws(
    () => loadInstructionData(p, { tokenizer: tok, maxLength: 64 }),
    (e: Error) =>
      e instanceof DataError && /no usable record.*2 bad records.*line 1/.test(e.message),
  );
});

Deno.test("over-long records: the response is truncated, or the record dropped", () => {
  const rec = {
    instruction: "Count.",
    output: "1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20",
  };
  const p = write("long.jsonl", JSON.stringify(rec));
  const cut = loadInstructionData(p, { tokenizer: tok, maxLength: 48 });
  assert.equal(cut.truncated, 1);
  assert.equal(cut.examples[0].inputIds.length, 48);
  assert.throws(
    () => loadInstructionData(p, { tokenizer: tok, maxLength: 48, overLong: "drop" }),
    /over-long/,
  );
});

Deno.test("JSON arrays report the line each bad record starts on", () => {
  const text =
    '[\n  {"instruction": "a", "output": "b"},\n  {"instruction": "c"},\n  {\n    "output": "d"\n  }\n]\n';
  const { records, bad } = readRecords(write("arr.json", text));
  assert.deepEqual(records.map((r) => r.line), [2, 3, 4]);
  assert.equal(bad.count, 0);
  const ds = loadInstructionData(write("arr2.json", text), { tokenizer: tok, maxLength: 64 });
  assert.deepEqual(ds.bad.first.map((b) => b.line), [3, 4]);
});

Deno.test("plain text is chunked into fixed-length blocks with the loss everywhere", () => {
  const p = write("corpus.txt", "the quick brown fox jumps over the lazy dog\n".repeat(10));
  const ds = textBlocks(p, { tokenizer: tok, blockSize: 64 });
  assert.equal(ds.examples.length, Math.ceil(441 / 64));
  assert.ok(ds.examples.slice(0, -1).every((e) => e.inputIds.length === 64));
  assert.deepEqual(ds.examples[0].labels, ds.examples[0].inputIds);
});

Deno.test("the split is seeded: same seed, same split; another seed, another", () => {
  const items = Array.from({ length: 50 }, (_, i) => i);
  const a = splitDataset(items, { valFraction: 0.2, seed: 1 });
  const b = splitDataset(items, { valFraction: 0.2, seed: 1 });
  const c = splitDataset(items, { valFraction: 0.2, seed: 2 });
  assert.equal(a.val.length, 10);
  assert.equal(a.train.length, 40);
  assert.deepEqual(a, b);
  assert.notDeepEqual(a.val, c.val);
  assert.deepEqual([...a.train, ...a.val].sort((x, y) => x - y), items);
});

Deno.test("the bundled instruction set is clean and fits the byte tokenizer", () => {
  const ds = loadInstructionData(BUNDLED, { tokenizer: tok, maxLength: 128 });
  assert.equal(ds.bad.count, 0);
  assert.equal(ds.truncated, 0);
  assert.ok(ds.examples.length >= 60 && ds.examples.length <= 150, `${ds.examples.length} records`);
});

globalThis.addEventListener("unload", () => model.dispose());
