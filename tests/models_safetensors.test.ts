// Safetensors writer/reader round trips, header validation, shards and streaming.
import assert from "node:assert/strict";
import * as torch from "../ffi/mod.ts";
import {
  CheckpointError,
  createTinyModel,
  loadSafetensors,
  parseHeader,
  SafetensorsFile,
  saveSafetensors,
  ShardedCheckpoint,
} from "../models/mod.ts";

function tmpDir(): string {
  return Deno.makeTempDirSync({ prefix: "lab-st-test-" });
}

/** A raw safetensors file from a header object and a data section. */
function rawFile(header: unknown, data: Uint8Array, headerText?: string): Uint8Array {
  const json = new TextEncoder().encode(headerText ?? JSON.stringify(header));
  const out = new Uint8Array(8 + json.byteLength + data.byteLength);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.byteLength), true);
  out.set(json, 8);
  out.set(data, 8 + json.byteLength);
  return out;
}

Deno.test("saveSafetensors then loadSafetensors round-trips values, dtypes and metadata", () => {
  const start = torch.liveTensors();
  const dir = tmpDir();
  try {
    torch.tidy(() => {
      const a = torch.tensor([[1.5, -2], [3, 4.25]]);
      const b = torch.tensor([1, 2, 3], { dtype: "int64" });
      const c = torch.tensor([0.5, -1.25, 3], { dtype: "bfloat16" });
      const d = torch.tensor([true, false, true], { dtype: "bool" });
      saveSafetensors(`${dir}/x.safetensors`, { a, b, c, d }, { format: "pt", note: "hi" });
      using f = SafetensorsFile.open(`${dir}/x.safetensors`);
      assert.deepEqual(f.header.metadata, { format: "pt", note: "hi" });
      assert.deepEqual(f.names().sort(), ["a", "b", "c", "d"]);
      assert.equal(f.info("c")!.stDtype, "BF16");
      const got = loadSafetensors(`${dir}/x.safetensors`);
      assert.deepEqual(got.get("a")!.toArray(), [[1.5, -2], [3, 4.25]]);
      assert.deepEqual(got.get("b")!.toArray(), [1, 2, 3]);
      assert.equal(got.get("c")!.dtype, "bfloat16");
      assert.deepEqual(got.get("c")!.toArray(), [0.5, -1.25, 3]);
      assert.deepEqual(got.get("d")!.toArray(), [true, false, true]);
      // The header is padded to a multiple of 8 bytes, as the reference writer does.
      const bytes = Deno.readFileSync(`${dir}/x.safetensors`);
      const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
      assert.equal(n % 8, 0);
      for (const t of got.values()) t.dispose();
    });
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
  assert.equal(torch.liveTensors(), start);
});

Deno.test("loading converts BF16/F16 sources into the requested dtype, streaming large tensors", () => {
  const dir = tmpDir();
  try {
    torch.tidy(() => {
      torch.manualSeed(3);
      // 5 MB in bf16: streamed in row blocks when the chunk is smaller.
      const big = torch.randn([1280, 2048]).to("bfloat16");
      const half = torch.tensor([1, 2.5, -3], { dtype: "float16" });
      saveSafetensors(`${dir}/w.safetensors`, { big, half });
      using f = SafetensorsFile.open(`${dir}/w.safetensors`);
      const whole = f.load("big", { dtype: "float32" });
      const streamed = f.load("big", { dtype: "float32", chunkBytes: 100_000 });
      assert.equal(streamed.dtype, "float32");
      assert.deepEqual(streamed.shape, [1280, 2048]);
      assert.equal(streamed.sub(whole).abs().max().item(), 0);
      assert.equal(streamed.sub(big.to("float32")).abs().max().item(), 0);
      assert.deepEqual(f.load("half", { dtype: "float32" }).toArray(), [1, 2.5, -3]);
      assert.equal(f.load("half").dtype, "float16");
    });
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("corrupt headers are refused with the file and the problem named", () => {
  const f32 = (n: number) => new Uint8Array(4 * n);
  const ok = { a: { dtype: "F32", shape: [2], data_offsets: [0, 8] } };
  const cases: [string, Uint8Array, RegExp][] = [
    ["short file", new Uint8Array(5), /shorter than 8 bytes/],
    [
      "length past end",
      (() => {
        const b = rawFile(ok, f32(2));
        new DataView(b.buffer).setBigUint64(0, 10_000n, true);
        return b;
      })(),
      /runs past the end/,
    ],
    ["bad json", rawFile(null, f32(2), "{not json"), /not valid JSON/],
    ["not an object", rawFile([1, 2], new Uint8Array(0)), /not a JSON object/],
    [
      "unknown dtype",
      rawFile({ a: { dtype: "F128", shape: [2], data_offsets: [0, 8] } }, f32(2)),
      /'a' has unknown dtype "F128"/,
    ],
    [
      "bad shape",
      rawFile({ a: { dtype: "F32", shape: [-2], data_offsets: [0, 8] } }, f32(2)),
      /'a' has an invalid shape/,
    ],
    [
      "size mismatch",
      rawFile({ a: { dtype: "F32", shape: [3], data_offsets: [0, 8] } }, f32(2)),
      /'a' has data_offsets \[0, 8\] \(8 bytes\) but shape \[3\] of F32 needs 12/,
    ],
    [
      "outside the file",
      rawFile({ a: { dtype: "F32", shape: [4], data_offsets: [0, 16] } }, f32(2)),
      /'a' ends at byte 16 of the data section, past its end \(8 bytes\)/,
    ],
    [
      "overlap",
      rawFile({
        a: { dtype: "F32", shape: [2], data_offsets: [0, 8] },
        b: { dtype: "F32", shape: [2], data_offsets: [4, 12] },
      }, f32(3)),
      /'b' overlaps tensor 'a'/,
    ],
    ["trailing bytes", rawFile(ok, f32(3)), /4 trailing bytes/],
    [
      "bad metadata",
      rawFile({ __metadata__: { x: 1 }, ...ok }, f32(2)),
      /__metadata__\.x must be a string/,
    ],
  ];
  for (const [what, bytes, re] of cases) {
    assert.throws(
      () => parseHeader(bytes, bytes.byteLength, "w.safetensors"),
      (e: Error) =>
        e instanceof CheckpointError && /^w\.safetensors: /.test(e.message) && re.test(e.message),
      what,
    );
  }
  // Through the file reader too.
  const dir = tmpDir();
  try {
    Deno.writeFileSync(`${dir}/bad.safetensors`, cases[4][1]);
    assert.throws(() => SafetensorsFile.open(`${dir}/bad.safetensors`), /bad\.safetensors.*F128/);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("sharded checkpoints load through model.safetensors.index.json", () => {
  const dir = tmpDir();
  try {
    torch.tidy(() => {
      saveSafetensors(`${dir}/model-00001-of-00002.safetensors`, { a: torch.tensor([1, 2]) });
      saveSafetensors(`${dir}/model-00002-of-00002.safetensors`, { b: torch.tensor([3]) });
      Deno.writeTextFileSync(
        `${dir}/model.safetensors.index.json`,
        JSON.stringify({
          metadata: { total_size: 12 },
          weight_map: {
            a: "model-00001-of-00002.safetensors",
            b: "model-00002-of-00002.safetensors",
          },
        }),
      );
      using ck = ShardedCheckpoint.open(dir);
      assert.deepEqual(ck.names().sort(), ["a", "b"]);
      assert.deepEqual(ck.load("b").toArray(), [3]);
      assert.equal(ck.storedBytes(), 12);
      assert.throws(() => ck.load("c"), /no tensor 'c'/);
      // An index naming a tensor its shard lacks is refused.
      Deno.writeTextFileSync(
        `${dir}/model.safetensors.index.json`,
        JSON.stringify({ weight_map: { a: "model-00002-of-00002.safetensors" } }),
      );
      assert.throws(() => ShardedCheckpoint.open(dir), /places tensor 'a' in model-00002/);
    });
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("loading a 100 MB model raises peak RSS by at most 1.3× its weight bytes", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "lab-rss-" });
  try {
    createTinyModel({ out: dir, preset: "25m", seed: 0, dtype: "bfloat16" });
    // A fresh process, so other tests' allocations do not blur the high-water mark.
    const code = `
      import * as torch from ${JSON.stringify(new URL("../ffi/mod.ts", import.meta.url).href)};
      import { loadModel } from ${
      JSON.stringify(new URL("../models/mod.ts", import.meta.url).href)
    };
      torch.version();
      torch.memory.resetPeak();
      const before = torch.memory.allocated();
      const m = loadModel(${JSON.stringify(dir)}, { dtype: "float32" });
      console.log(JSON.stringify({ grew: torch.memory.peak() - before, weights: m.weightBytes() }));
    `;
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["eval", "--no-check", code],
      stdout: "piped",
      stderr: "inherit",
    }).output();
    assert.ok(out.success);
    const { grew, weights } = JSON.parse(new TextDecoder().decode(out.stdout).trim());
    assert.ok(weights > 100e6);
    assert.ok(grew <= 1.3 * weights, `peak grew ${grew} bytes for ${weights} bytes of weights`);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
