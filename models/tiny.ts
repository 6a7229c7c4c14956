// The tiny-model factory: writes a complete HF-format folder (config, seeded
// random safetensors weights, byte-level tokenizer) that loadModel runs.
import { type DType, manualSeed, ones, randn, type Tensor } from "../ffi/mod.ts";
import { parseConfig } from "./config.ts";
import { expectedTensors } from "./weights.ts";
import { saveSafetensors } from "./safetensors.ts";
import {
  BYTE_SPECIALS,
  BYTE_VOCAB,
  byteLevelTokenizerConfig,
  byteLevelTokenizerJson,
} from "./byte_tokenizer.ts";

/** Architectures the factory writes; "llama3" is Llama with llama3 RoPE scaling and tied embeddings. */
export const TINY_ARCHS = ["llama", "llama3", "mistral", "qwen2", "phi3"] as const;
/** One of TINY_ARCHS. */
export type TinyArch = typeof TINY_ARCHS[number];

/** Model sizes: "tiny" (~0.1M params, tests), "small" (~3M), "25m" (~25M, the decode benchmark). */
export const TINY_PRESETS = {
  tiny: { hidden: 64, intermediate: 160, layers: 2, heads: 4, kvHeads: 2, maxPositions: 512 },
  small: { hidden: 256, intermediate: 688, layers: 4, heads: 8, kvHeads: 4, maxPositions: 1024 },
  "25m": { hidden: 512, intermediate: 1536, layers: 8, heads: 8, kvHeads: 4, maxPositions: 2048 },
} as const;
/** One of the preset names. */
export type TinyPreset = keyof typeof TINY_PRESETS;

/** Options of createTinyModel. */
export interface TinyModelOptions {
  /** Folder to write (created; must be empty or absent unless `overwrite`). */
  out: string;
  /** Architecture to write (default "llama"). */
  arch?: TinyArch;
  /** Size preset (default "tiny"). */
  preset?: TinyPreset;
  /** Seed of the random weights (default 0). */
  seed?: number;
  /** dtype of the stored weights (default float32). */
  dtype?: DType;
  /** Standard deviation of the matrices (default 0.02, as transformers initialises). */
  initStd?: number;
  /** Replace files in a non-empty `out`. */
  overwrite?: boolean;
}

/** What createTinyModel wrote. */
export interface TinyModelInfo {
  /** The folder written. */
  dir: string;
  /** The config.json written. */
  config: Record<string, unknown>;
  /** Total number of weight elements across all tensors. */
  parameters: number;
  /** The file names written into `dir` (config, weights, tokenizer files). */
  files: string[];
}

const ARCH_CLASS: Record<TinyArch, string> = {
  llama: "LlamaForCausalLM",
  llama3: "LlamaForCausalLM",
  mistral: "MistralForCausalLM",
  qwen2: "Qwen2ForCausalLM",
  phi3: "Phi3ForCausalLM",
};

/** The config.json a tiny model of `arch` and `preset` gets. */
export function tinyConfig(arch: TinyArch, preset: TinyPreset): Record<string, unknown> {
  const p = TINY_PRESETS[preset];
  if (!p) {
    throw new RangeError(
      `unknown preset '${preset}': use one of ${Object.keys(TINY_PRESETS).join(", ")}`,
    );
  }
  const cls = ARCH_CLASS[arch];
  if (!cls) throw new RangeError(`unknown arch '${arch}': use one of ${TINY_ARCHS.join(", ")}`);
  const base: Record<string, unknown> = {
    architectures: [cls],
    model_type: arch === "llama3" ? "llama" : arch,
    vocab_size: BYTE_VOCAB,
    hidden_size: p.hidden,
    intermediate_size: p.intermediate,
    num_hidden_layers: p.layers,
    num_attention_heads: p.heads,
    num_key_value_heads: p.kvHeads,
    max_position_embeddings: p.maxPositions,
    rms_norm_eps: 1e-5,
    hidden_act: "silu",
    rope_theta: 10000.0,
    rope_scaling: null,
    tie_word_embeddings: false,
    bos_token_id: BYTE_SPECIALS.bos,
    eos_token_id: BYTE_SPECIALS.eos,
    pad_token_id: BYTE_SPECIALS.pad,
    attention_dropout: 0.0,
    initializer_range: 0.02,
    torch_dtype: "float32",
    use_cache: true,
  };
  switch (arch) {
    case "llama":
      return { ...base, attention_bias: false, mlp_bias: false };
    case "llama3":
      return {
        ...base,
        attention_bias: false,
        mlp_bias: false,
        rope_theta: 500000.0,
        tie_word_embeddings: true,
        rope_scaling: {
          rope_type: "llama3",
          factor: 8.0,
          low_freq_factor: 1.0,
          high_freq_factor: 4.0,
          original_max_position_embeddings: Math.max(64, p.maxPositions / 8),
        },
      };
    case "mistral":
      return { ...base, sliding_window: Math.max(16, p.maxPositions / 4) };
    case "qwen2":
      return {
        ...base,
        rope_theta: 1000000.0,
        use_sliding_window: false,
        sliding_window: null,
        max_window_layers: p.layers,
      };
    case "phi3":
      return {
        ...base,
        original_max_position_embeddings: p.maxPositions,
        sliding_window: null,
        embd_pdrop: 0.0,
        resid_pdrop: 0.0,
      };
  }
}

/** True when `dir` does not exist or holds nothing. */
export function isEmptyOrAbsent(dir: string): boolean {
  try {
    for (const _ of Deno.readDirSync(dir)) return false;
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return true;
    throw e;
  }
}

/**
 * Writes config.json and the byte-level tokenizer files (tokenizer.json, tokenizer_config.json,
 * generation_config.json, special_tokens_map.json) of a generated model into `dir`.
 */
export function writeModelSideFiles(
  dir: string,
  config: Record<string, unknown>,
  maxPositions: number,
): void {
  const write = (f: string, v: unknown) =>
    Deno.writeTextFileSync(`${dir}/${f}`, JSON.stringify(v, null, 2) + "\n");
  write("config.json", config);
  write("generation_config.json", {
    bos_token_id: BYTE_SPECIALS.bos,
    eos_token_id: BYTE_SPECIALS.eos,
    pad_token_id: BYTE_SPECIALS.pad,
  });
  write("tokenizer.json", byteLevelTokenizerJson());
  write("tokenizer_config.json", byteLevelTokenizerConfig(maxPositions));
  write("special_tokens_map.json", { bos_token: "<s>", eos_token: "</s>", pad_token: "<pad>" });
}

/** Writes a complete tiny HF checkpoint folder and returns what it wrote. */
export function createTinyModel(opts: TinyModelOptions): TinyModelInfo {
  const arch = opts.arch ?? "llama";
  const preset = opts.preset ?? "tiny";
  const dtype = opts.dtype ?? "float32";
  const std = opts.initStd ?? 0.02;
  const dir = opts.out.replace(/\/+$/, "");
  if (!opts.overwrite && !isEmptyOrAbsent(dir)) {
    throw new Error(`${dir} exists and is not empty; choose another folder or pass overwrite`);
  }
  const raw = tinyConfig(arch, preset);
  raw.torch_dtype = dtype;
  const config = parseConfig(raw, `${arch}/${preset} config`);
  Deno.mkdirSync(dir, { recursive: true });
  manualSeed(opts.seed ?? 0);
  const tensors = new Map<string, Tensor>();
  let parameters = 0;
  try {
    for (const [name, shape] of expectedTensors(config)) {
      const norm = name.endsWith("norm.weight");
      let t: Tensor;
      if (norm) t = ones(shape, { dtype });
      else {
        using r = randn(shape);
        using s = r.mul(shape.length === 1 ? std / 2 : std);
        t = s.to(dtype);
      }
      tensors.set(name, t);
      parameters += t.numel;
    }
    saveSafetensors(`${dir}/model.safetensors`, tensors, { format: "pt" });
  } finally {
    for (const t of tensors.values()) t.dispose();
  }
  writeModelSideFiles(dir, raw, config.maxPositionEmbeddings);
  return {
    dir,
    config: raw,
    parameters,
    files: [
      "config.json",
      "generation_config.json",
      "model.safetensors",
      "tokenizer.json",
      "tokenizer_config.json",
      "special_tokens_map.json",
    ],
  };
}
