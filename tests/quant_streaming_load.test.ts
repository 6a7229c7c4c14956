// Loading straight into a scheme (each linear packed as it is read) against load-then-quantize,
// the synthetic checkpoint generator, resource checks, and the quantize stage's streaming path.
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { fixtureTestName, haveHfFixtures, HF_FIXTURES } from "./helpers.ts";
import { join } from "node:path";
import * as torch from "../ffi/mod.ts";
import { loadModel } from "../models/mod.ts";
import { loadIntoScheme } from "../models/load.ts";
import type { LlamaModel } from "../models/llama.ts";
import { Linear } from "../models/linear.ts";
import { linearModules } from "../models/modules.ts";
import { CastLinear } from "../models/quant/cast_linear.ts";
import { QuantizedLinear } from "../models/quant/quantized_linear.ts";
import {
  quantizeLinear,
  quantizeModel,
  type QuantizeOptions,
} from "../models/quant/quantize_model.ts";
import { quantizeLinearByRows } from "../models/quant/pack_rows.ts";
import { parseScheme } from "../models/quant/schemes.ts";
import { loadQuantizedModel, saveQuantizedModel } from "../models/quant/checkpoint.ts";
import {
  createSyntheticModel,
  readSyntheticInfo,
  SYNTHETIC_SHAPES,
  syntheticConfig,
  type SyntheticShapeName,
} from "../models/synthetic.ts";
import { configParameterCount, parseConfig } from "../models/config.ts";
import {
  loadSafetensors,
  readHeader,
  saveSafetensors,
  ShardedCheckpoint,
} from "../models/safetensors.ts";
import { LabError } from "../errors.ts";
import { SafetensorsWriter } from "../models/safetensors_writer.ts";
import {
  freeDiskBytes,
  parseBytes,
  requireDisk,
  requireMemory,
  ResourceError,
} from "../models/host_resources.ts";
import { runPipeline, silentReporter } from "../engine/mod.ts";

const FIXTURES = HF_FIXTURES;
if (!haveHfFixtures) console.warn(`skipping fixture checkpoints: ${FIXTURES} is absent`);
const IDS = [[5, 17, 99, 3, 200, 45, 12, 8], [7, 1, 2, 250, 30, 4, 66, 9]];

/** The tensors of a module (or a dense table), by name. */
function moduleTensors(name: string, layer: unknown, out: Map<string, torch.Tensor>): void {
  if (layer instanceof torch.Tensor) out.set(name, layer);
  else if (layer instanceof QuantizedLinear) {
    layer.parts.forEach((p, k) => out.set(`${name}.part${k}`, p));
  } else if (layer instanceof Linear || layer instanceof CastLinear) {
    out.set(`${name}.weight`, layer.weight);
  } else throw new Error(`unexpected module type ${(layer as object).constructor.name}`);
  const bias = (layer as { bias?: torch.Tensor | null }).bias;
  if (bias) out.set(`${name}.bias`, bias);
}

/** Every tensor a model holds, by checkpoint-style name. */
function tensorsOf(m: LlamaModel): Map<string, torch.Tensor> {
  const out = new Map<string, torch.Tensor>();
  const w = m.weights;
  moduleTensors("embed", w.embedTokens, out);
  out.set("norm", w.norm);
  w.layers.forEach((l, i) => {
    out.set(`${i}.in_norm`, l.inputNorm);
    out.set(`${i}.post_norm`, l.postAttentionNorm);
  });
  for (const slot of linearModules(m, { includeTiedHead: true })) {
    moduleTensors(slot.name, slot.get(), out);
  }
  return out;
}

/** Asserts two models hold bit-identical tensors of the same kinds and give identical logits. */
function assertSameModel(a: LlamaModel, b: LlamaModel, what: string): void {
  const kinds = (m: LlamaModel) => [
    m.weights.embedTokens.constructor.name,
    ...linearModules(m, { includeTiedHead: true }).map((s) => s.get().constructor.name),
  ];
  const ka = kinds(a), kb = kinds(b);
  assert.deepEqual(kb, ka, `${what}: module types`);
  const ta = tensorsOf(a), tb = tensorsOf(b);
  assert.deepEqual([...tb.keys()], [...ta.keys()], `${what}: tensor names`);
  for (const [name, t] of ta) {
    const u = tb.get(name)!;
    assert.equal(u.dtype, t.dtype, `${what}: ${name} dtype`);
    assert.deepEqual(u.shape, t.shape, `${what}: ${name} shape`);
    assert.ok(
      Buffer.from(u.bytes()).equals(Buffer.from(t.bytes())),
      `${what}: ${name} bytes differ`,
    );
  }
  assert.equal(b.weightBytes(), a.weightBytes(), `${what}: weight bytes`);
  using la = a.forward(IDS);
  using lb = b.forward(IDS);
  assert.ok(Buffer.from(lb.bytes()).equals(Buffer.from(la.bytes())), `${what}: logits differ`);
}

/** Loads `dir` both ways and compares models and reports. */
function compareBothWays(dir: string, q: QuantizeOptions, dtype: torch.DType = "float32"): void {
  const what = `${dir} ${JSON.stringify(q)} ${dtype}`;
  using ref = loadModel(dir, { dtype });
  const expected = quantizeModel(ref, q);
  const got = loadIntoScheme(dir, { quantize: q, dtype });
  using m = got.model;
  assertSameModel(ref, m, what);
  const strip = (r: typeof expected) => ({ ...r, seconds: 0 });
  assert.deepEqual(strip(got.report), strip(expected), `${what}: report`);
  using dense = loadModel(dir, { dtype });
  assert.equal(got.denseBytes, dense.weightBytes(), `${what}: dense bytes`);
}

Deno.test({
  name: fixtureTestName(
    "loading into a scheme equals load-then-quantize on every fixture architecture",
  ),
  ignore: !haveHfFixtures,
  fn() {
    const live = torch.liveTensors();
    const cases: [string, QuantizeOptions][] = [
      ["llama", { scheme: "nf4" }],
      ["llama", { scheme: "int8", keep: { "model.layers.0.*": "bf16", lm_head: "fp4-nodq" } }],
      ["llama3-rope", { scheme: "nf4" }], // tied: one packed table is embedding and head
      ["llama3-rope", { scheme: "int4-g32", keep: { lm_head: "fp4" } }], // the head's glob wins
      ["llama", { scheme: "nf4", keep: { "model.embed_tokens": "fp32" } }], // the table stays
      ["qwen2", { scheme: "fp32" }],
      ["qwen2", { scheme: "int4-g32", keep: { "*.o_proj": "int8" } }], // biases
      ["phi3", { scheme: "fp4" }], // fused qkv / gate_up, split as read
      ["phi3", { scheme: "int4-g128" }], // widths the group does not divide fall back
      ["mistral", { scheme: "bf16", simulate: true }],
      ["mistral", { scheme: "nf4-nodq", keep: { "*.down_proj": "fp32" } }],
    ];
    for (const [arch, q] of cases) compareBothWays(FIXTURES + arch, q);
    compareBothWays(FIXTURES + "llama", { scheme: "nf4" }, "bfloat16");
    assert.equal(torch.liveTensors(), live, "no tensors leaked");
  },
});

Deno.test("sharded and single-file synthetic checkpoints load into a scheme bit-identically", () => {
  const tmp = Deno.makeTempDirSync({ prefix: "lab-stream-" });
  try {
    const shape = {
      hidden: 128,
      layers: 3,
      intermediate: 320,
      heads: 4,
      kvHeads: 2,
      vocab: 300,
      ropeFactor: 8,
    };
    const sharded = createSyntheticModel({
      out: `${tmp}/sharded`,
      shape,
      dtype: "bfloat16",
      shards: 3,
      seed: 5,
    });
    assert.deepEqual(
      sharded.files.filter((f) => f.endsWith(".safetensors")),
      [1, 2, 3].map((k) => `model-0000${k}-of-00003.safetensors`),
    );
    const single = createSyntheticModel({
      out: `${tmp}/single`,
      shape: { ...shape, tied: true },
      seed: 5,
    });
    assert.deepEqual(single.files.filter((f) => f.endsWith(".safetensors")), ["model.safetensors"]);
    for (const q of [{ scheme: "nf4" }, { scheme: "int8", keep: { lm_head: "int4-g64" } }]) {
      compareBothWays(sharded.dir, q);
      compareBothWays(single.dir, q);
    }
    compareBothWays(sharded.dir, { scheme: "fp4" }, "bfloat16");
    // The quantize option of loadModel is the same load.
    using a = loadModel(sharded.dir, { quantize: "nf4" });
    using b = loadIntoScheme(sharded.dir, { quantize: { scheme: "nf4" } }).model;
    assertSameModel(a, b, "loadModel quantize option");
    const quick = loadIntoScheme(sharded.dir, { quantize: "nf4", measureError: false });
    using c = quick.model;
    assertSameModel(a, c, "without the error measurement");
    assert.ok(quick.report.modules.every((r) => Number.isNaN(r.relError)));
  } finally {
    Deno.removeSync(tmp, { recursive: true });
  }
});

Deno.test("per-row formats packed in row blocks are bit-identical to the whole matrix", () => {
  const live = torch.liveTensors();
  for (const [dtype, scheme] of [["float32", "int8"], ["bfloat16", "int8"], ["float32", "nf4"]]) {
    using w = torch.tidy(() => torch.randn([37, 24]).mul(0.1).to(dtype as torch.DType));
    using b = torch.randn([37]);
    const s = parseScheme(scheme);
    const whole = quantizeLinear(w, b, s, dtype as torch.DType);
    const blocks = quantizeLinearByRows(w, b, s, dtype as torch.DType, false, 100);
    try {
      assert.equal(blocks.constructor.name, whole.constructor.name);
      const t1 = new Map<string, torch.Tensor>(), t2 = new Map<string, torch.Tensor>();
      moduleTensors("m", whole, t1);
      moduleTensors("m", blocks, t2);
      assert.deepEqual([...t2.keys()], [...t1.keys()]);
      for (const [n, t] of t1) {
        assert.deepEqual(t2.get(n)!.shape, t.shape, `${scheme} ${n}`);
        assert.deepEqual(t2.get(n)!.bytes(), t.bytes(), `${dtype} ${scheme} ${n}`);
      }
    } finally {
      whole.dispose();
      blocks.dispose();
    }
  }
  assert.equal(torch.liveTensors(), live);
});

Deno.test({
  name: fixtureTestName(
    "int8 matrices packed in row blocks while loading: same model, error summed by block",
  ),
  ignore: !haveHfFixtures,
  fn() {
    for (const [arch, scheme] of [["llama", "nf4"], ["llama3-rope", "int8"], ["qwen2", "int8"]]) {
      const dir = FIXTURES + arch;
      using ref = loadModel(dir);
      const expected = quantizeModel(ref, { scheme });
      const got = loadIntoScheme(dir, { quantize: scheme, rowBlockElements: 1000 });
      using m = got.model;
      assertSameModel(ref, m, `${arch} ${scheme} in blocks`);
      const byName = new Map(got.report.modules.map((r) => [r.module, r]));
      for (const want of expected.modules) {
        const row = byName.get(want.module)!;
        assert.deepEqual({ ...row, relError: 0 }, { ...want, relError: 0 }, want.module);
        assert.ok(
          Math.abs(row.relError - want.relError) <= 1e-6 * want.relError,
          `${arch} ${want.module}: rel error ${row.relError} vs ${want.relError}`,
        );
      }
    }
  },
});

Deno.test("createSyntheticModel writes the declared shape, reproducibly, in about-equal shards", () => {
  const tmp = Deno.makeTempDirSync({ prefix: "lab-synth-" });
  try {
    const shape = { hidden: 64, layers: 4, intermediate: 160, heads: 4, kvHeads: 1, vocab: 512 };
    const a = createSyntheticModel({ out: `${tmp}/a`, shape, shards: 2, seed: 9, initStd: 0.05 });
    const b = createSyntheticModel({ out: `${tmp}/b`, shape, shards: 2, seed: 9, initStd: 0.05 });
    const expectParams = 2 * 512 * 64 + 64 +
      4 * (2 * 64 + 64 * 64 * 2 + 2 * 64 * 16 + 3 * 64 * 160);
    assert.equal(a.parameters, expectParams);
    assert.equal(a.bytes, expectParams * 4);
    const index = JSON.parse(Deno.readTextFileSync(`${a.dir}/model.safetensors.index.json`));
    assert.equal(index.metadata.total_size, a.bytes);
    const sizes = a.files.filter((f) => f.endsWith(".safetensors")).map((f) => {
      const h = readHeader(`${a.dir}/${f}`);
      return [...h.tensors.values()].reduce((s, t) => s + t.end - t.begin, 0);
    });
    assert.equal(sizes.length, 2);
    assert.ok(Math.max(...sizes) < 0.7 * a.bytes, `shards ${sizes} are not balanced`);
    for (const f of a.files.filter((f) => f.endsWith(".safetensors"))) {
      assert.deepEqual(Deno.readFileSync(`${a.dir}/${f}`), Deno.readFileSync(`${b.dir}/${f}`));
    }
    using ck = ShardedCheckpoint.open(a.dir);
    using up = ck.load("model.layers.2.mlp.up_proj.weight");
    const std = torch.tidy(() => up.std().item());
    assert.ok(Math.abs(std - 0.05) < 0.005, `std ${std}`);
    using norm = ck.load("model.layers.1.input_layernorm.weight");
    assert.ok(norm.values().every((v) => v === 1));
    using m = loadModel(a.dir);
    assert.equal(m.config.numKvHeads, 1);
    assert.equal(m.config.tieWordEmbeddings, false);
    assert.ok(m.tokenizer, "tokenizer files were written");
    assert.deepEqual(readSyntheticInfo(a.dir), {
      shape,
      dtype: "float32",
      shards: 2,
      seed: 9,
      parameters: expectParams,
      bytes: expectParams * 4,
    });
    assert.throws(
      () => createSyntheticModel({ out: a.dir, shape }),
      /exists and is not empty; remove it or choose another folder/,
    );
    assert.throws(
      () => createSyntheticModel({ out: `${tmp}/c`, shape, shards: 1000 }),
      /shards must be an integer from 1 to 39 \(the number of tensors\), got 1000/,
    );
    assert.ok(!existsSync(`${tmp}/c`), "a refused model leaves nothing");
    assert.throws(
      () => createSyntheticModel({ out: `${tmp}/c`, shape: { ...shape, heads: 5 } }),
      /shape.hidden 64 is not a multiple of shape.heads 5/,
    );
    assert.throws(
      () => createSyntheticModel({ out: `${tmp}/c`, shape: "llama-9b" as "llama-3.1-8b" }),
      /unknown shape 'llama-9b'/,
    );
  } finally {
    Deno.removeSync(tmp, { recursive: true });
  }
});

Deno.test("named synthetic shapes have the released models' parameter counts and RoPE", () => {
  const params = (name: SyntheticShapeName) =>
    configParameterCount(parseConfig(syntheticConfig(SYNTHETIC_SHAPES[name], "bfloat16")));
  // Llama-3.2-1B: 1,235,814,400; Llama-3.1-8B: 8,030,261,248 (their model cards' totals).
  assert.equal(params("llama-3.2-1b"), 1_235_814_400);
  assert.equal(params("llama-3.1-8b"), 8_030_261_248);
  const c1 = parseConfig(syntheticConfig(SYNTHETIC_SHAPES["llama-3.2-1b"], "float32"));
  assert.equal(c1.tieWordEmbeddings, true);
  assert.equal(c1.ropeScaling.type, "llama3");
  assert.equal((c1.ropeScaling as { factor: number }).factor, 32);
  const c8 = parseConfig(syntheticConfig(SYNTHETIC_SHAPES["llama-3.1-8b"], "bfloat16"));
  assert.equal(c8.tieWordEmbeddings, false);
  assert.equal((c8.ropeScaling as { factor: number }).factor, 8);
});

Deno.test({
  name: fixtureTestName("bad schemes and options are refused before any tensor is read"),
  ignore: !haveHfFixtures,
  fn() {
    const live = torch.liveTensors();
    const dir = FIXTURES + "llama";
    assert.throws(() => loadModel(dir, { quantize: "nf5" }), /unknown quantization scheme 'nf5'/);
    assert.throws(
      () => loadModel(dir, { quantize: { scheme: "nf4", keep: { lm_head: "int3" } } }),
      /unknown quantization scheme 'int3'/,
    );
    assert.throws(
      () => loadModel(dir, { quantize: { keep: {} } as unknown as QuantizeOptions }),
      /option 'quantize' must be a scheme name/,
    );
    assert.throws(
      () => loadModel(FIXTURES + "phi3", { quantize: { scheme: "int4-g128", strict: true } }),
      /cannot use scheme 'int4-g128': in_features \d+ is not a multiple of the group size 128/,
    );
    assert.throws(
      () =>
        loadModel(dir, {
          quantize: { scheme: "int8", keep: { embed_tokens: "int4-g128" }, strict: true },
        }),
      /the embedding table \[256,64\] cannot use scheme 'int4-g128': its width 64 is not a multiple/,
    );
    assert.equal(torch.liveTensors(), live, "nothing was loaded");
  },
});

Deno.test({
  name: fixtureTestName(
    "a quantized folder is not quantized again; dropping the page cache reads the same",
  ),
  ignore: !haveHfFixtures,
  fn() {
    const tmp = Deno.makeTempDirSync({ prefix: "lab-stream-" });
    try {
      const { model, report } = loadIntoScheme(FIXTURES + "qwen2", { quantize: "int8" });
      using m = model;
      assert.equal(report.modules.length, 16); // 2 layers × 7, lm_head, the embedding table
      saveQuantizedModel(m, `${tmp}/q`);
      assert.throws(
        () => loadModel(`${tmp}/q`, { quantize: "nf4" }),
        /is already quantized \(it has quantization.json\)/,
      );
      using ck = ShardedCheckpoint.open(FIXTURES + "qwen2", { dropPageCache: true });
      using plain = ShardedCheckpoint.open(FIXTURES + "qwen2");
      for (const n of ck.names()) {
        using x = ck.load(n);
        using y = plain.load(n, { chunkBytes: 1024 });
        assert.deepEqual(x.bytes(), y.bytes(), n);
      }
    } finally {
      Deno.removeSync(tmp, { recursive: true });
    }
  },
});

Deno.test("memory and disk checks name the need", () => {
  assert.equal(parseBytes("8G"), 8 * 2 ** 30);
  assert.equal(parseBytes("512MiB"), 512 * 2 ** 20);
  assert.equal(parseBytes("1000"), 1000);
  assert.throws(() => parseBytes("lots"), /not a byte count/);
  const free = freeDiskBytes(Deno.cwd());
  assert.ok(free !== null && free > 0, `free disk ${free}`);
  assert.ok(freeDiskBytes("/no/such/folder/below") !== null, "a missing path uses its parent");
  assert.throws(
    () => requireDisk(1e18, Deno.cwd(), "writing it", "Free space."),
    (e: Error) =>
      e instanceof ResourceError &&
      /writing it needs about 1000000000\.00 GB of disk/.test(e.message) &&
      /Free space\.$/.test(e.message),
  );
  requireDisk(1, Deno.cwd(), "writing it", "");
  requireMemory(1, "a byte", "");
  Deno.env.set("LAB_MEMORY_BUDGET", "1M");
  try {
    assert.throws(
      () => requireMemory(2e9, "loading x", "Free memory."),
      /loading x needs about 2\.00 GB of memory, but only 0\.00 GB is available \(LAB_MEMORY_BUDGET=1M/,
    );
  } finally {
    Deno.env.delete("LAB_MEMORY_BUDGET");
  }
});

Deno.test({
  name: fixtureTestName(
    "a load that does not fit in memory fails first, naming the need, holding nothing",
  ),
  ignore: !haveHfFixtures,
  fn() {
    const live = torch.liveTensors();
    Deno.env.set("LAB_MEMORY_BUDGET", "1M");
    try {
      assert.throws(
        () => loadModel(FIXTURES + "llama", { quantize: "nf4" }),
        (e: Error) =>
          e instanceof ResourceError &&
          /loading .*llama into nf4 \(float32 compute\) needs about 0\.\d\d GB of memory/.test(
            e.message,
          ),
      );
      assert.throws(
        () => loadModel(FIXTURES + "llama"),
        /needs about .* Load it straight into a scheme, e.g. loadModel\(dir, \{ quantize: "nf4" \}\)/,
      );
    } finally {
      Deno.env.delete("LAB_MEMORY_BUDGET");
    }
    assert.equal(torch.liveTensors(), live);
  },
});

Deno.test("a NaN or Inf weight is refused as it is read, named with its file", () => {
  const tmp = Deno.makeTempDirSync({ prefix: "lab-stream-nan-" });
  try {
    const shape = { hidden: 64, layers: 2, intermediate: 128, heads: 4, kvHeads: 2, vocab: 300 };
    const { dir } = createSyntheticModel({ out: `${tmp}/m`, shape, shards: 2 });
    const up = "model.layers.1.mlp.up_proj.weight";
    using ck = ShardedCheckpoint.open(dir);
    const file = ck.fileOf(up);
    const tensors = loadSafetensors(file);
    const w = tensors.get(up)!;
    torch.tidy(() => {
      w.narrow(0, 5, 3).narrow(1, 7, 1).fill_(NaN);
      w.narrow(0, 9, 2).narrow(1, 1, 1).fill_(Infinity);
    });
    saveSafetensors(file, tensors);
    for (const t of tensors.values()) t.dispose();
    const live = torch.liveTensors();
    assert.throws(
      () => loadModel(dir, { quantize: "nf4" }),
      (e: Error) =>
        e instanceof LabError &&
        e.message.startsWith(`${file}: tensor '${up}' holds 3 NaN and 2 infinite values`),
    );
    assert.equal(torch.liveTensors(), live, "the partial load was freed");
  } finally {
    Deno.removeSync(tmp, { recursive: true });
  }
});

Deno.test("SafetensorsWriter refuses wrong sizes and leaves no file behind", () => {
  const tmp = Deno.makeTempDirSync({ prefix: "lab-writer-" });
  try {
    const path = `${tmp}/x.safetensors`;
    const decl = [
      { name: "a", dtype: "float32" as const, shape: [2, 3] },
      { name: "empty", dtype: "int8" as const, shape: [0] },
      { name: "b", dtype: "int8" as const, shape: [4] },
    ];
    const w = SafetensorsWriter.create(path, decl);
    w.write(new Uint8Array(16));
    assert.throws(
      () => w.write(new Uint8Array(16)),
      /16 bytes given for tensor 'a', which has 8 left/,
    );
    w.write(new Uint8Array(8));
    assert.equal(w.next?.name, "b");
    assert.throws(() => w.close(), /tensor 'b' and those after it were not written/);
    assert.deepEqual([...Deno.readDirSync(tmp)], []);
    const v = SafetensorsWriter.create(path, decl);
    using a = torch.arange(0, 6, 1, { dtype: "float32" }).reshape([2, 3]);
    v.write(a.bytes());
    v.write(new Uint8Array([1, 2, 3, 4]));
    v.close();
    using ck = ShardedCheckpoint.open(tmp);
    using back = ck.load("a");
    assert.deepEqual(back.values(), [0, 1, 2, 3, 4, 5]);
    using b = ck.load("b");
    assert.deepEqual(b.values(), [1, 2, 3, 4]);
  } finally {
    Deno.removeSync(tmp, { recursive: true });
  }
});

Deno.test("the quantize stage loads into its scheme: same rows and weights as load-then-quantize; out of memory leaves no entry", async () => {
  const pipeline = new URL("./fixtures/pipelines/quant_stream.ts", import.meta.url).pathname;
  const results = Deno.makeTempDirSync({ prefix: "lab-stream-stage-" });
  const cache = join(results, "cache");
  const entries = (kind: string) =>
    [...Deno.readDirSync(cache)].filter((e) => {
      try {
        return JSON.parse(Deno.readTextFileSync(join(cache, e.name, "meta.json"))).kind === kind;
      } catch {
        return false;
      }
    }).map((e) => join(cache, e.name));
  try {
    Deno.env.set("LAB_MEMORY_BUDGET", "1M");
    let run;
    try {
      run = await runPipeline(pipeline, {
        resultsDir: results,
        executor: "inline",
        reporter: silentReporter,
      });
    } finally {
      Deno.env.delete("LAB_MEMORY_BUDGET");
    }
    assert.equal(run.status, "failed");
    assert.equal(run.counts.ok, 1);
    assert.match(
      run.failures[0].error?.message ?? "",
      /into nf4 \(float32 compute\) needs about .* of memory/,
    );
    assert.deepEqual(entries("quantize"), []);
    assert.deepEqual([...Deno.readDirSync(cache)].filter((e) => e.name.startsWith(".tmp")), []);

    run = await runPipeline(pipeline, {
      resultsDir: results,
      executor: "inline",
      reporter: silentReporter,
    });
    assert.equal(run.status, "ok", run.failures.map((f) => f.error?.message).join("\n"));
    const [q] = entries("quantize");
    const [base] = entries("load");
    const rows = Deno.readTextFileSync(join(q, "records.jsonl")).trim().split("\n").map((l) =>
      JSON.parse(l)
    );
    const modules = rows.filter((r) => r.table === "quant_modules").map((r) => r.row);
    const metric = (n: string) =>
      rows.find((r) => r.table === "metrics" && r.row.name === n)?.row.value;

    const keep = { lm_head: "int8", "model.layers.1.mlp.*": "int4-g32" };
    using ref = loadModel(join(base, "artifacts", "model"));
    const before = ref.weightBytes();
    const report = quantizeModel(ref, { scheme: "nf4", keep });
    assert.deepEqual(
      modules,
      report.modules.map((m) => ({
        module: m.module,
        scheme: m.scheme,
        params: m.params,
        bytes: m.bytes,
        bits_per_param: m.bitsPerParam,
        rel_error: m.relError,
      })),
    );
    assert.equal(metric("weight_bytes"), report.weightBytes);
    assert.equal(metric("weight_bytes_before"), before);
    using saved = loadQuantizedModel(join(q, "artifacts", "model"));
    assertSameModel(ref, saved, "quantize stage output");
  } finally {
    Deno.removeSync(results, { recursive: true });
  }
});
