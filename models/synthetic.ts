// Real-size random checkpoints for benchmarks: any Llama shape, written shard by shard and
// tensor by tensor as the values are drawn, so a 16 GB model is made in a few hundred MB.
import { type DType, manualSeed, ones, randn, tidy } from "../ffi/mod.ts";
import { parseConfig } from "./config.ts";
import { expectedTensors } from "./weights.ts";
import { BYTE_SPECIALS, BYTE_VOCAB } from "./byte_tokenizer.ts";
import { declaredBytes, SafetensorsWriter, type TensorDeclaration } from "./safetensors_writer.ts";
import { isEmptyOrAbsent, writeModelSideFiles } from "./tiny.ts";
import { requireDisk } from "./host_resources.ts";

/** The dimensions of a Llama-family model. */
export interface SyntheticShape {
  /** Width of the residual stream (`hidden_size`). */
  hidden: number;
  /** Number of decoder layers. */
  layers: number;
  /** Width of the MLP (`intermediate_size`). */
  intermediate: number;
  /** Number of query heads. */
  heads: number;
  /** Number of key/value heads (grouped-query attention when fewer than `heads`). */
  kvHeads: number;
  /** Vocabulary size: rows of the embedding and of lm_head. */
  vocab: number;
  /** lm_head shares the embedding matrix (default false). */
  tied?: boolean;
  /**
   * Llama 3 RoPE scaling with this factor and theta 500000, as Llama 3.1 (8) and 3.2 (32) use;
   * absent: plain RoPE, theta 10000.
   */
  ropeFactor?: number;
  /** max_position_embeddings (default 131072 with ropeFactor, else 4096). */
  maxPositions?: number;
}

/** Shapes of released models (and small copies of their structure), for `shape` by name. */
export const SYNTHETIC_SHAPES = {
  /** Llama-3.2-1B: 1,235,814,400 parameters, tied embeddings. */
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
  /** Llama-3.1-8B: 8,030,261,248 parameters, untied. */
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
} as const satisfies Record<string, SyntheticShape>;
/** One of SYNTHETIC_SHAPES' names. */
export type SyntheticShapeName = keyof typeof SYNTHETIC_SHAPES;
/** The shape names, for schemas and help text. */
export const SYNTHETIC_SHAPE_NAMES = Object.keys(SYNTHETIC_SHAPES) as [
  SyntheticShapeName,
  ...SyntheticShapeName[],
];

/** Options of createSyntheticModel. */
export interface SyntheticModelOptions {
  /**
   * Folder to write; must be absent or empty. The model is written into `<out>.tmp-<pid>` and
   * renamed into place when complete, so a folder at `out` is never half-written.
   */
  out: string;
  /** The model's dimensions, or the name of one of SYNTHETIC_SHAPES. */
  shape: SyntheticShape | SyntheticShapeName;
  /** Stored dtype (default float32). */
  dtype?: "float32" | "bfloat16" | "float16";
  /**
   * Number of safetensors shards, 1 to the number of tensors (default 1: model.safetensors);
   * more writes model-0000k-of-0000n.safetensors of about equal bytes (consecutive tensors,
   * none split) and model.safetensors.index.json.
   */
  shards?: number;
  /** Seed of the random weights (default 0): the same seed and shape write the same bytes. */
  seed?: number;
  /** Standard deviation of the matrices (default 0.02, as transformers initialises; norms are ones). */
  initStd?: number;
  /** Called as tensor bytes are written. */
  onProgress?: (written: number, total: number) => void;
}

/** What a synthetic folder holds; also its `synthetic.json` marker, written last. */
export interface SyntheticModelSummary {
  /** The shape's name, or its dimensions when given explicitly. */
  shape: SyntheticShapeName | SyntheticShape;
  /** Name of the dtype the weights are stored in, e.g. "bfloat16". */
  dtype: string;
  /** Number of safetensors files the tensors are spread over. */
  shards: number;
  /** Seed the random weights were drawn with. */
  seed: number;
  /** Total number of weight elements across all tensors. */
  parameters: number;
  /** Bytes of the tensors (all shards, headers excluded). */
  bytes: number;
}

/** What createSyntheticModel wrote. */
export interface SyntheticModelInfo extends SyntheticModelSummary {
  /** The folder written. */
  dir: string;
  /** The config.json written. */
  config: Record<string, unknown>;
  /** Every file written, relative to `dir`. */
  files: string[];
  /** Wall-clock seconds the whole write took. */
  seconds: number;
}

/** Name of the marker written last into a synthetic folder: present means complete. */
export const SYNTHETIC_MARKER = "synthetic.json";

/** The marker of a complete synthetic folder, or null (absent, incomplete or not one). */
export function readSyntheticInfo(dir: string): SyntheticModelSummary | null {
  try {
    return JSON.parse(Deno.readTextFileSync(`${dir.replace(/\/+$/, "")}/${SYNTHETIC_MARKER}`));
  } catch {
    return null;
  }
}

/** The HF config.json of a Llama model of `shape` stored as `dtype`. */
export function syntheticConfig(shape: SyntheticShape, dtype: DType): Record<string, unknown> {
  const maxPositions = shape.maxPositions ?? (shape.ropeFactor ? 131072 : 4096);
  return {
    architectures: ["LlamaForCausalLM"],
    model_type: "llama",
    vocab_size: shape.vocab,
    hidden_size: shape.hidden,
    intermediate_size: shape.intermediate,
    num_hidden_layers: shape.layers,
    num_attention_heads: shape.heads,
    num_key_value_heads: shape.kvHeads,
    head_dim: shape.hidden / shape.heads,
    max_position_embeddings: maxPositions,
    rms_norm_eps: 1e-5,
    hidden_act: "silu",
    rope_theta: shape.ropeFactor ? 500000.0 : 10000.0,
    rope_scaling: shape.ropeFactor
      ? {
        rope_type: "llama3",
        factor: shape.ropeFactor,
        low_freq_factor: 1.0,
        high_freq_factor: 4.0,
        original_max_position_embeddings: 8192,
      }
      : null,
    tie_word_embeddings: !!shape.tied,
    attention_bias: false,
    mlp_bias: false,
    bos_token_id: BYTE_SPECIALS.bos,
    eos_token_id: BYTE_SPECIALS.eos,
    pad_token_id: BYTE_SPECIALS.pad,
    attention_dropout: 0.0,
    initializer_range: 0.02,
    torch_dtype: dtype,
    use_cache: true,
  };
}

function checkShape(s: SyntheticShape): void {
  const ints = ["hidden", "layers", "intermediate", "heads", "kvHeads", "vocab"] as const;
  for (const k of ints) {
    if (!Number.isSafeInteger(s[k]) || s[k] < 1) {
      throw new RangeError(
        `createSyntheticModel: shape.${k} must be a positive integer, got ${s[k]}`,
      );
    }
  }
  if (s.hidden % s.heads) {
    throw new RangeError(
      `createSyntheticModel: shape.hidden ${s.hidden} is not a multiple of shape.heads ${s.heads}`,
    );
  }
  if (s.heads % s.kvHeads) {
    throw new RangeError(
      `createSyntheticModel: shape.heads ${s.heads} is not a multiple of shape.kvHeads ${s.kvHeads}`,
    );
  }
  if (s.vocab < BYTE_VOCAB) {
    throw new RangeError(
      `createSyntheticModel: shape.vocab must be at least ${BYTE_VOCAB} (the byte-level tokenizer's ids)`,
    );
  }
}

// Consecutive tensors into `n` groups of about equal bytes, none empty (HF keeps layers
// together the same way).
function shardGroups(tensors: TensorDeclaration[], n: number): TensorDeclaration[][] {
  if (!(Number.isInteger(n) && n >= 1 && n <= tensors.length)) {
    throw new RangeError(
      `createSyntheticModel: shards must be an integer from 1 to ${tensors.length} (the ` +
        `number of tensors), got ${n}`,
    );
  }
  const total = tensors.reduce((s, t) => s + declaredBytes(t), 0);
  const groups: TensorDeclaration[][] = [[]];
  let acc = 0;
  for (const [i, t] of tensors.entries()) {
    const left = tensors.length - i;
    const needed = n - groups.length;
    // Start the next group once this one holds its share, keeping one tensor per later group.
    if (
      groups[groups.length - 1].length > 0 && needed > 0 &&
      (acc >= (total * groups.length) / n || left <= needed)
    ) {
      groups.push([]);
    }
    groups[groups.length - 1].push(t);
    acc += declaredBytes(t);
  }
  return groups;
}

// Values are drawn in pieces of this many elements (64 MB of float32).
const CHUNK_ELEMENTS = 1 << 24;

// Draws `t` piece by piece into the writer; `wrote` hears of each piece's bytes.
function writeRandom(
  w: SafetensorsWriter,
  t: TensorDeclaration,
  std: number,
  wrote: (bytes: number) => void,
): void {
  if (/norm\.weight$/.test(t.name)) {
    // Norm weights are ones, as transformers initialises them (and small).
    using one = ones(t.shape, { dtype: t.dtype });
    w.write(one.bytes());
    wrote(one.nbytes);
    return;
  }
  const rows = t.shape[0];
  const cols = t.shape.slice(1).reduce((a, b) => a * b, 1);
  const per = Math.max(1, Math.floor(CHUNK_ELEMENTS / cols));
  const std1 = t.shape.length === 1 ? std / 2 : std;
  for (let r = 0; r < rows; r += per) {
    const n = Math.min(per, rows - r);
    const bytes = tidy(() => randn([n, ...t.shape.slice(1)]).mul(std1).to(t.dtype).bytes());
    w.write(bytes);
    wrote(bytes.byteLength);
  }
}

/**
 * Writes a random Llama-family HF checkpoint folder of any shape (config.json, safetensors in
 * `shards` files, byte-level tokenizer, and a `synthetic.json` marker written last) that
 * loadModel runs. Tensors are drawn in 64 MB pieces and written as drawn, so memory stays
 * well under 1 GB whatever the model's size; the disk must hold the whole model (checked
 * first). Example, the 16 GB Llama-3.1-8B shape:
 * `createSyntheticModel({ out: "/tmp/llama-8b", shape: "llama-3.1-8b", dtype: "bfloat16", shards: 4 })`;
 * delete it with `rm -r /tmp/llama-8b`.
 */
export function createSyntheticModel(opts: SyntheticModelOptions): SyntheticModelInfo {
  const started = performance.now();
  const shape: SyntheticShape = typeof opts.shape === "string"
    ? SYNTHETIC_SHAPES[opts.shape]
    : opts.shape;
  if (!shape) {
    throw new RangeError(
      `createSyntheticModel: unknown shape '${opts.shape}': give dimensions or one of ` +
        SYNTHETIC_SHAPE_NAMES.join(", "),
    );
  }
  checkShape(shape);
  const dtype = opts.dtype ?? "float32";
  if (!["float32", "bfloat16", "float16"].includes(dtype)) {
    throw new RangeError(
      `createSyntheticModel: dtype '${dtype}' is not one of float32, bfloat16, float16`,
    );
  }
  const shards = opts.shards ?? 1;
  const seed = opts.seed ?? 0;
  const dir = opts.out.replace(/\/+$/, "");
  if (!isEmptyOrAbsent(dir)) {
    throw new Error(`${dir} exists and is not empty; remove it or choose another folder`);
  }
  const raw = syntheticConfig(shape, dtype);
  const config = parseConfig(raw, "synthetic config");
  const tensors: TensorDeclaration[] = [...expectedTensors(config)].map(([name, s]) => ({
    name,
    dtype,
    shape: s,
  }));
  const groups = shardGroups(tensors, shards);
  const bytes = tensors.reduce((s, t) => s + declaredBytes(t), 0);
  requireDisk(
    bytes + (64 << 20),
    dir,
    `createSyntheticModel (${typeof opts.shape === "string" ? opts.shape : "shape"}, ${dtype})`,
    "Write it to a file system with more room, or choose a smaller shape or dtype.",
  );
  const names = groups.length === 1
    ? ["model.safetensors"]
    : groups.map((_, k) =>
      `model-${String(k + 1).padStart(5, "0")}-of-${String(groups.length).padStart(5, "0")}` +
      ".safetensors"
    );
  const tmp = `${dir}.tmp-${Deno.pid}`;
  Deno.mkdirSync(tmp, { recursive: true });
  try {
    manualSeed(seed);
    const std = opts.initStd ?? 0.02;
    const weightMap: Record<string, string> = {};
    let written = 0;
    const wrote = (n: number) => {
      written += n;
      opts.onProgress?.(written, bytes);
    };
    groups.forEach((group, k) => {
      const w = SafetensorsWriter.create(`${tmp}/${names[k]}`, group, { format: "pt" });
      try {
        for (const t of group) {
          writeRandom(w, t, std, wrote);
          weightMap[t.name] = names[k];
        }
        w.close();
      } catch (e) {
        w.abort();
        throw e;
      }
    });
    const files = [...names];
    if (groups.length > 1) {
      Deno.writeTextFileSync(
        `${tmp}/model.safetensors.index.json`,
        JSON.stringify({ metadata: { total_size: bytes }, weight_map: weightMap }, null, 2) + "\n",
      );
      files.push("model.safetensors.index.json");
    }
    writeModelSideFiles(tmp, raw, config.maxPositionEmbeddings);
    const summary: SyntheticModelSummary = {
      shape: opts.shape,
      dtype,
      shards: groups.length,
      seed,
      parameters: tensors.reduce((s, t) => s + t.shape.reduce((a, b) => a * b, 1), 0),
      bytes,
    };
    Deno.writeTextFileSync(`${tmp}/${SYNTHETIC_MARKER}`, JSON.stringify(summary, null, 2) + "\n");
    files.push(
      "config.json",
      "generation_config.json",
      "tokenizer.json",
      "tokenizer_config.json",
      "special_tokens_map.json",
      SYNTHETIC_MARKER,
    );
    // An empty `out` (e.g. made by mkdtemp) gives way; rename(2) replaces an empty folder.
    Deno.renameSync(tmp, dir);
    return { ...summary, dir, config: raw, files, seconds: (performance.now() - started) / 1000 };
  } catch (e) {
    Deno.removeSync(tmp, { recursive: true });
    throw e;
  }
}
