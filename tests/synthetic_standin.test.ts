// Shaped checkpoints with random weights (the stand-in for models/synthetic.ts): the shapes
// match the released models, shards and index are well formed, output is seeded, and a folder
// is only ever complete or absent.
import assert from "node:assert/strict";
import { join } from "node:path";
import { configParameterCount, parseConfig } from "../models/config.ts";
import { loadModel } from "../models/load.ts";
import { ShardedCheckpoint } from "../models/safetensors.ts";
import { expectedTensors } from "../models/weights.ts";
import {
  createShapedModel,
  readShapedInfo,
  shapedConfig,
  SYNTHETIC_SHAPE_NAMES,
} from "../models/synthetic_standin.ts";

Deno.test("shapes have the released models' parameter counts", () => {
  const count = (s: (typeof SYNTHETIC_SHAPE_NAMES)[number]) =>
    configParameterCount(parseConfig(shapedConfig(s), s));
  // Llama-3.2-1B: 1,235,814,400; Llama-3.1-8B: 8,030,261,248 (their model cards' totals).
  assert.equal(count("llama-3.2-1b"), 1_235_814_400);
  assert.equal(count("llama-3.1-8b"), 8_030_261_248);
  const c1 = parseConfig(shapedConfig("llama-3.2-1b"));
  assert.equal(c1.tieWordEmbeddings, true);
  assert.equal(c1.ropeScaling.type, "llama3");
  assert.equal(parseConfig(shapedConfig("llama-3.1-8b")).tieWordEmbeddings, false);
  assert.throws(() => shapedConfig("llama-70b" as "mini-1b"), /unknown model shape 'llama-70b'/);
});

Deno.test("a sharded bf16 model: index covers every tensor, loads, and is seeded", () => {
  const dir = Deno.makeTempDirSync({ prefix: "lab-shaped-" });
  try {
    const a = join(dir, "a");
    const info = createShapedModel({ out: a, shape: "mini-8b", dtype: "bfloat16", shards: 3 });
    assert.deepEqual(readShapedInfo(a), info);
    const index = JSON.parse(Deno.readTextFileSync(join(a, "model.safetensors.index.json")));
    const config = parseConfig(JSON.parse(Deno.readTextFileSync(join(a, "config.json"))));
    const expected = expectedTensors(config);
    assert.deepEqual(Object.keys(index.weight_map).sort(), [...expected.keys()].sort());
    const shards = new Set(Object.values(index.weight_map));
    assert.equal(shards.size, 3);
    let bytes = 0;
    for (const s of shards) bytes += Deno.statSync(join(a, s as string)).size;
    assert.ok(bytes > info.bytes && bytes < info.bytes + 3 * 65536, `${bytes} vs ${info.bytes}`);
    assert.equal(index.metadata.total_size, info.bytes);
    assert.equal(info.bytes, info.parameters * 2);
    {
      using ckpt = ShardedCheckpoint.open(a);
      assert.equal(ckpt.files.length, 3);
    }
    {
      using m = loadModel(a, { dtype: "bfloat16" });
      assert.equal(m.parameterCount(), info.parameters);
      assert.equal(m.weightBytes(), info.bytes);
    }
    // The same seed writes the same bytes; another seed does not.
    const b = join(dir, "b"), c = join(dir, "c");
    createShapedModel({ out: b, shape: "mini-8b", dtype: "bfloat16", shards: 3 });
    createShapedModel({ out: c, shape: "mini-8b", dtype: "bfloat16", shards: 3, seed: 1 });
    const first = (d: string) => Deno.readFileSync(join(d, "model-00002-of-00003.safetensors"));
    assert.deepEqual(first(b), first(a));
    assert.notDeepEqual(first(c), first(a));
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("an existing folder is refused; bad shards fail before anything is written", () => {
  const dir = Deno.makeTempDirSync({ prefix: "lab-shaped-" });
  try {
    assert.throws(
      () => createShapedModel({ out: dir, shape: "mini-1b" }),
      /already exists; remove it or choose another folder/,
    );
    const out = join(dir, "m");
    assert.throws(
      () => createShapedModel({ out, shape: "mini-1b", shards: 10_000 }),
      /shards must be an integer from 1 to/,
    );
    assert.deepEqual([...Deno.readDirSync(dir)], []);
    assert.equal(readShapedInfo(out), null);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
