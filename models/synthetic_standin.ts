// Real-size checkpoints with random weights, in the shape of released models, for the scale
// benchmark and the real-scale pipeline.
//
// STAND-IN: issue 12 item 4 adds models/synthetic.ts (`createSyntheticModel`); when it lands,
// the bench (bench/scale_models.ts) and the load stage's `synthetic` param call it instead and
// this file goes. It exists so that the benchmark and pipeline can be written and tried now.
//
// Weights are written tensor by tensor, in row chunks, straight into the safetensors files:
// an 8B-shaped bf16 checkpoint (16 GB) never has more than one chunk in memory. The folder is
// written under a temporary name and renamed when complete, so a half-written model (a full
// disk, an interrupted run) is never mistaken for a finished one.
import { dirname } from "node:path";
import { type DType, ITEM_SIZE, manualSeed, ones, randn } from "../ffi/mod.ts";
import { parseConfig } from "./config.ts";
import { expectedTensors } from "./weights.ts";

/** Shapes of released models (random weights), and small copies of them for quick runs. */
export const SYNTHETIC_SHAPES = {
  /** Llama-3.2-1B: tied embeddings, llama3 RoPE scaling (1.24B parameters). */
  "llama-3.2-1b": {
    hidden: 2048,
    layers: 16,
    intermediate: 8192,
    heads: 32,
    kvHeads: 8,
    vocab: 128256,
    tied: true,
    ropeFactor: 32,
  },
  /** Llama-3.1-8B: untied head, llama3 RoPE scaling (8.03B parameters). */
  "llama-3.1-8b": {
    hidden: 4096,
    layers: 32,
    intermediate: 14336,
    heads: 32,
    kvHeads: 8,
    vocab: 128256,
    tied: false,
    ropeFactor: 8,
  },
  /** The 1B's structure (tied, GQA 4:1, llama3 RoPE) at ~5M parameters: smoke runs. */
  "mini-1b": {
    hidden: 256,
    layers: 4,
    intermediate: 1024,
    heads: 8,
    kvHeads: 2,
    vocab: 8192,
    tied: true,
    ropeFactor: 32,
  },
  /** The 8B's structure (untied) at ~9M parameters: smoke runs. */
  "mini-8b": {
    hidden: 384,
    layers: 4,
    intermediate: 1344,
    heads: 8,
    kvHeads: 2,
    vocab: 8192,
    tied: false,
    ropeFactor: 8,
  },
} as const;
/** One of SYNTHETIC_SHAPES. */
export type SyntheticShape = keyof typeof SYNTHETIC_SHAPES;
/** The shape names, for schemas and help text. */
export const SYNTHETIC_SHAPE_NAMES = Object.keys(SYNTHETIC_SHAPES) as [
  SyntheticShape,
  ...SyntheticShape[],
];

/** Options of createShapedModel. */
export interface ShapedModelOptions {
  /** Folder to write; must not exist (it is renamed into place when complete). */
  out: string;
  shape: SyntheticShape;
  /** Stored dtype (default float32). */
  dtype?: "float32" | "bfloat16" | "float16";
  /** Number of safetensors shards (default 1; >1 writes model.safetensors.index.json). */
  shards?: number;
  seed?: number;
  /** Called as bytes are written. */
  onProgress?: (written: number, total: number) => void;
}

/** What a shaped folder holds; also written as its `synthetic.json` completeness marker. */
export interface ShapedModelInfo {
  shape: SyntheticShape;
  dtype: string;
  shards: number;
  seed: number;
  parameters: number;
  bytes: number;
}

/** Name of the marker written last: its presence means the folder is complete. */
export const SHAPED_MARKER = "synthetic.json";

/** The config.json of a shape (HF Llama fields). */
export function shapedConfig(shape: SyntheticShape, dtype = "float32"): Record<string, unknown> {
  const s = SYNTHETIC_SHAPES[shape];
  if (!s) {
    throw new RangeError(
      `unknown model shape '${shape}': use one of ${SYNTHETIC_SHAPE_NAMES.join(", ")}`,
    );
  }
  return {
    architectures: ["LlamaForCausalLM"],
    model_type: "llama",
    vocab_size: s.vocab,
    hidden_size: s.hidden,
    intermediate_size: s.intermediate,
    num_hidden_layers: s.layers,
    num_attention_heads: s.heads,
    num_key_value_heads: s.kvHeads,
    head_dim: s.hidden / s.heads,
    max_position_embeddings: 131072,
    rms_norm_eps: 1e-5,
    hidden_act: "silu",
    rope_theta: 500000.0,
    rope_scaling: {
      rope_type: "llama3",
      factor: s.ropeFactor,
      low_freq_factor: 1.0,
      high_freq_factor: 4.0,
      original_max_position_embeddings: 8192,
    },
    tie_word_embeddings: s.tied,
    attention_bias: false,
    mlp_bias: false,
    bos_token_id: 1,
    eos_token_id: 2,
    initializer_range: 0.02,
    torch_dtype: dtype,
    use_cache: true,
  };
}

/** The marker of a complete shaped folder, or null (absent, incomplete or not one). */
export function readShapedInfo(dir: string): ShapedModelInfo | null {
  try {
    return JSON.parse(Deno.readTextFileSync(`${dir}/${SHAPED_MARKER}`));
  } catch {
    return null;
  }
}

/** Free bytes on the file system holding `dir` (or its nearest existing parent); null if unknown. */
export function freeDiskBytes(dir: string): number | null {
  let d = dir;
  while (d !== dirname(d)) {
    try {
      Deno.statSync(d);
      break;
    } catch {
      d = dirname(d);
    }
  }
  try {
    const out = new Deno.Command("df", { args: ["-B1", "--output=avail", d] }).outputSync();
    const n = Number(new TextDecoder().decode(out.stdout).trim().split("\n").pop());
    return Number.isFinite(n) ? n : null;
  } catch {
    return null;
  }
}

// Chunks of this many elements: large enough that the FFI calls cost nothing, small enough
// that generating an 8B-shaped model holds a few hundred MB.
const CHUNK = 1 << 24;
const STD = 0.02;

/** Writes a shaped checkpoint with seeded random weights (normal, std 0.02; norms 1). */
export function createShapedModel(opts: ShapedModelOptions): ShapedModelInfo {
  const dtype: DType = opts.dtype ?? "float32";
  const shards = opts.shards ?? 1;
  const seed = opts.seed ?? 0;
  const out = opts.out.replace(/\/+$/, "");
  try {
    Deno.statSync(out);
    throw new Error(`${out} already exists; remove it or choose another folder`);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  const raw = shapedConfig(opts.shape, dtype);
  const config = parseConfig(raw, `${opts.shape} config`);
  const tensors = [...expectedTensors(config).entries()];
  const size = ITEM_SIZE[dtype];
  const bytesOf = (shape: number[]) => shape.reduce((a, b) => a * b, 1) * size;
  const total = tensors.reduce((s, [, shape]) => s + bytesOf(shape), 0);
  const free = freeDiskBytes(out);
  if (free !== null && free < total * 1.02 + 1e8) {
    throw new Error(
      `not enough disk for the ${opts.shape} ${dtype} model: it needs ${gb(total)} GB, ` +
        `${gb(free)} GB are free where ${out} goes. Free some space or choose another folder.`,
    );
  }
  const groups = splitShards(tensors.map(([n, s]) => [n, bytesOf(s)]), shards);
  const tmp = `${out}.tmp-${Deno.pid}`;
  Deno.mkdirSync(tmp, { recursive: true });
  try {
    manualSeed(seed);
    const shapes = new Map(tensors);
    const names = (i: number) =>
      shards === 1
        ? "model.safetensors"
        : `model-${String(i + 1).padStart(5, "0")}-of-${
          String(shards).padStart(5, "0")
        }.safetensors`;
    const weightMap: Record<string, string> = {};
    let written = 0;
    for (const [i, group] of groups.entries()) {
      const file = names(i);
      for (const n of group) weightMap[n] = file;
      writeShard(`${tmp}/${file}`, group, shapes, dtype, (n) => {
        written += n;
        opts.onProgress?.(written, total);
      });
    }
    const write = (f: string, v: unknown) =>
      Deno.writeTextFileSync(`${tmp}/${f}`, JSON.stringify(v, null, 2) + "\n");
    write("config.json", raw);
    write("generation_config.json", { bos_token_id: 1, eos_token_id: 2 });
    if (shards > 1) {
      write("model.safetensors.index.json", {
        metadata: { total_size: total },
        weight_map: weightMap,
      });
    }
    const info: ShapedModelInfo = {
      shape: opts.shape,
      dtype,
      shards,
      seed,
      parameters: tensors.reduce((s, [, shape]) => s + shape.reduce((a, b) => a * b, 1), 0),
      bytes: total,
    };
    write(SHAPED_MARKER, info);
    Deno.renameSync(tmp, out);
    return info;
  } catch (e) {
    Deno.removeSync(tmp, { recursive: true });
    throw e;
  }
}

function gb(n: number): string {
  return (n / 1e9).toFixed(1);
}

// Consecutive tensors into `n` shards of about equal bytes (HF keeps layers together the same way).
function splitShards(sizes: [string, number][], n: number): string[][] {
  if (!(Number.isInteger(n) && n >= 1 && n <= sizes.length)) {
    throw new RangeError(`shards must be an integer from 1 to ${sizes.length}, got ${n}`);
  }
  const total = sizes.reduce((s, [, b]) => s + b, 0);
  const groups: string[][] = [[]];
  let acc = 0;
  for (const [i, [name, b]] of sizes.entries()) {
    const left = sizes.length - i;
    const needed = n - groups.length;
    // Start the next shard once this one holds its share, keeping one tensor per later shard.
    if (
      groups[groups.length - 1].length > 0 && needed > 0 &&
      (acc >= (total * groups.length) / n || left <= needed)
    ) {
      groups.push([]);
    }
    groups[groups.length - 1].push(name);
    acc += b;
  }
  return groups;
}

function writeShard(
  path: string,
  names: string[],
  shapes: Map<string, number[]>,
  dtype: DType,
  advance: (bytes: number) => void,
): void {
  const code = { float32: "F32", bfloat16: "BF16", float16: "F16" }[dtype as string]!;
  const size = ITEM_SIZE[dtype];
  const header: Record<string, unknown> = { __metadata__: { format: "pt" } };
  let pos = 0;
  for (const n of names) {
    const shape = shapes.get(n)!;
    const len = shape.reduce((a, b) => a * b, 1) * size;
    header[n] = { dtype: code, shape, data_offsets: [pos, pos + len] };
    pos += len;
  }
  let json = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil(json.byteLength / 8) * 8;
  if (padded !== json.byteLength) {
    const p = new Uint8Array(padded).fill(0x20);
    p.set(json);
    json = p;
  }
  const file = Deno.openSync(path, { write: true, create: true, truncate: true });
  try {
    const len = new Uint8Array(8);
    new DataView(len.buffer).setBigUint64(0, BigInt(json.byteLength), true);
    writeAll(file, len);
    writeAll(file, json);
    for (const n of names) {
      const shape = shapes.get(n)!;
      if (shape.length === 1) {
        using t = ones(shape, { dtype });
        writeAll(file, t.bytes());
        advance(t.nbytes);
        continue;
      }
      const cols = shape[1];
      const rowsPerChunk = Math.max(1, Math.floor(CHUNK / cols));
      for (let r = 0; r < shape[0]; r += rowsPerChunk) {
        const rows = Math.min(rowsPerChunk, shape[0] - r);
        using x = randn([rows, cols]);
        using s = x.mul(STD);
        using c = s.to(dtype);
        writeAll(file, c.bytes());
        advance(c.nbytes);
      }
    }
  } finally {
    file.close();
  }
}

function writeAll(file: Deno.FsFile, buf: Uint8Array): void {
  let done = 0;
  while (done < buf.byteLength) done += file.writeSync(buf.subarray(done));
}
