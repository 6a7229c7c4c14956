// Hugging Face config.json for the Llama family, normalised into one shape.
import { LabError } from "../errors.ts";

/** A config.json problem, naming the file and field. */
export class ConfigError extends LabError {
  /** Creates the error; the message already names the file and field. */
  constructor(message: string) {
    super(message);
    this.name = "ConfigError";
  }
}

/** The architectures this loader runs. */
export const SUPPORTED_ARCHITECTURES = [
  "LlamaForCausalLM",
  "MistralForCausalLM",
  "Qwen2ForCausalLM",
  "Phi3ForCausalLM",
] as const;

/** One of SUPPORTED_ARCHITECTURES. */
export type Architecture = typeof SUPPORTED_ARCHITECTURES[number];

/** RoPE frequency scaling. */
export type RopeScaling =
  | { type: "default" }
  | { type: "linear"; factor: number }
  | {
    type: "llama3";
    factor: number;
    lowFreqFactor: number;
    highFreqFactor: number;
    originalMaxPositionEmbeddings: number;
  };

/** A decoder-only Llama-family model's shape and behaviour. */
export interface ModelConfig {
  /** The first entry of `architectures`, e.g. "LlamaForCausalLM". */
  architecture: Architecture;
  /** `model_type` (e.g. "llama", "qwen2"), or the architecture when the file has none. */
  modelType: string;
  /** Number of token ids: rows of the embedding and of the output head. */
  vocabSize: number;
  /** Width of the residual stream (model dimension). */
  hiddenSize: number;
  /** Width of the MLP between its up/gate and down projections. */
  intermediateSize: number;
  /** Number of decoder layers (`num_hidden_layers`). */
  numLayers: number;
  /** Number of query heads per attention layer. */
  numHeads: number;
  /** Number of key/value heads (fewer than numHeads for grouped-query attention; divides it). */
  numKvHeads: number;
  /** Width of one attention head; `head_dim`, else hiddenSize / numHeads. Always even. */
  headDim: number;
  /** Epsilon added to the mean square in RMSNorm; 1e-6 when the file has none. */
  rmsNormEps: number;
  /** RoPE base frequency; 10000 when the file has none. */
  ropeTheta: number;
  /** How RoPE frequencies are stretched for longer contexts ("default" when not at all). */
  ropeScaling: RopeScaling;
  /** Longest context in tokens the model was trained for; 2048 when the file has none. */
  maxPositionEmbeddings: number;
  /** Whether the output head reuses the input embedding matrix instead of its own `lm_head`. */
  tieWordEmbeddings: boolean;
  /** Keys at or before `i - slidingWindow` are hidden from query `i`; null: no window. */
  slidingWindow: number | null;
  /** Whether q/k/v projections carry biases (Qwen2, Llama `attention_bias`). */
  qkvBias: boolean;
  /** Whether o_proj carries a bias (Llama `attention_bias`). */
  oBias: boolean;
  /** Whether the MLP projections carry biases (Llama `mlp_bias`). */
  mlpBias: boolean;
  /** Phi3 stores q/k/v as one `qkv_proj` and gate/up as one `gate_up_proj`. */
  fusedProjections: boolean;
  /** Beginning-of-sequence token id (the first when the file lists several), or null. */
  bosTokenId: number | null;
  /** Token ids that end generation; empty when the file names none. */
  eosTokenIds: number[];
  /** Padding token id (the first when the file lists several), or null. */
  padTokenId: number | null;
  /** The dtype the checkpoint declares (`torch_dtype`), if any. */
  torchDtype: string | null;
  /** The config.json as read. */
  raw: Record<string, unknown>;
}

/** A parsed JSON object, such as the contents of config.json. */
export type Json = Record<string, unknown>;

function field(raw: Json, src: string) {
  const num = (name: string, opts: { int?: boolean; min?: number; def?: number } = {}) => {
    const v = raw[name];
    if (v === undefined || v === null) {
      if (opts.def !== undefined) return opts.def;
      throw new ConfigError(`${src}: required field "${name}" is missing`);
    }
    if (typeof v !== "number" || !Number.isFinite(v) || (opts.int && !Number.isInteger(v))) {
      throw new ConfigError(
        `${src}: field "${name}" must be ${opts.int ? "an integer" : "a number"}, got ${
          JSON.stringify(v)
        }`,
      );
    }
    if (opts.min !== undefined && v < opts.min) {
      throw new ConfigError(`${src}: field "${name}" must be at least ${opts.min}, got ${v}`);
    }
    return v;
  };
  const bool = (name: string, def: boolean) => {
    const v = raw[name];
    if (v === undefined || v === null) return def;
    if (typeof v !== "boolean") {
      throw new ConfigError(
        `${src}: field "${name}" must be true or false, got ${JSON.stringify(v)}`,
      );
    }
    return v;
  };
  const tokenIds = (name: string): number[] => {
    const v = raw[name];
    if (v === undefined || v === null) return [];
    const list = Array.isArray(v) ? v : [v];
    for (const x of list) {
      if (!Number.isInteger(x) || (x as number) < 0) {
        throw new ConfigError(`${src}: field "${name}" must be a token id or a list of them`);
      }
    }
    return list as number[];
  };
  return { num, bool, tokenIds };
}

function ropeScalingOf(raw: Json, src: string, arch: Architecture): RopeScaling {
  const rs = raw.rope_scaling;
  if (rs === undefined || rs === null) return { type: "default" };
  if (typeof rs !== "object" || Array.isArray(rs)) {
    throw new ConfigError(`${src}: field "rope_scaling" must be an object or null`);
  }
  const r = rs as Json;
  const type = (r.rope_type ?? r.type) as string | undefined;
  const f = field(r, `${src} rope_scaling`);
  switch (type) {
    case "default":
      return { type: "default" };
    case "linear":
      return { type: "linear", factor: f.num("factor", { min: 1 }) };
    case "llama3":
      return {
        type: "llama3",
        factor: f.num("factor", { min: 1 }),
        lowFreqFactor: f.num("low_freq_factor"),
        highFreqFactor: f.num("high_freq_factor"),
        originalMaxPositionEmbeddings: f.num("original_max_position_embeddings", {
          int: true,
          min: 1,
        }),
      };
    default:
      throw new ConfigError(
        `${src}: rope_scaling type ${JSON.stringify(type)} is not supported for ${arch} ` +
          '(supported: "default", "linear", "llama3")',
      );
  }
}

/** Parses a config.json object; `src` names the file in errors. */
export function parseConfig(raw: Json, src = "config.json"): ModelConfig {
  const archs = raw.architectures;
  const arch = Array.isArray(archs) && archs.length > 0 ? archs[0] : undefined;
  if (typeof arch !== "string") {
    throw new ConfigError(
      `${src}: field "architectures" is missing; expected one of ${
        SUPPORTED_ARCHITECTURES.join(", ")
      }`,
    );
  }
  if (!(SUPPORTED_ARCHITECTURES as readonly string[]).includes(arch)) {
    throw new ConfigError(
      `${src}: architecture "${arch}" is not supported; supported: ${
        SUPPORTED_ARCHITECTURES.join(", ")
      }`,
    );
  }
  const a = arch as Architecture;
  const f = field(raw, src);
  const hiddenSize = f.num("hidden_size", { int: true, min: 1 });
  const numHeads = f.num("num_attention_heads", { int: true, min: 1 });
  const numKvHeads = f.num("num_key_value_heads", { int: true, min: 1, def: numHeads });
  if (numHeads % numKvHeads !== 0) {
    throw new ConfigError(
      `${src}: num_attention_heads (${numHeads}) must be a multiple of num_key_value_heads ` +
        `(${numKvHeads})`,
    );
  }
  const headDim = f.num("head_dim", { int: true, min: 1, def: hiddenSize / numHeads });
  if (!Number.isInteger(headDim) || headDim % 2 !== 0) {
    throw new ConfigError(
      `${src}: head dimension ${headDim} (hidden_size / num_attention_heads) must be an even integer`,
    );
  }
  const act = raw.hidden_act ?? "silu";
  if (act !== "silu") {
    throw new ConfigError(`${src}: hidden_act "${act}" is not supported (only "silu")`);
  }
  let slidingWindow: number | null = null;
  if (a === "MistralForCausalLM" || (a === "Qwen2ForCausalLM" && raw.use_sliding_window === true)) {
    const sw = raw.sliding_window;
    if (sw !== null && sw !== undefined) {
      slidingWindow = f.num("sliding_window", { int: true, min: 1 });
    }
  }
  if (a === "Qwen2ForCausalLM" && raw.use_sliding_window === true) {
    const maxWindowLayers = raw.max_window_layers;
    const layers = raw.num_hidden_layers;
    if (
      typeof maxWindowLayers === "number" && typeof layers === "number" && maxWindowLayers < layers
    ) {
      throw new ConfigError(
        `${src}: Qwen2 sliding window on only some layers (max_window_layers=${maxWindowLayers}) ` +
          "is not supported",
      );
    }
  }
  const attentionBias = f.bool("attention_bias", false);
  const eos = f.tokenIds("eos_token_id");
  const bos = f.tokenIds("bos_token_id");
  const pad = f.tokenIds("pad_token_id");
  const cfg: ModelConfig = {
    architecture: a,
    modelType: typeof raw.model_type === "string" ? raw.model_type : a,
    vocabSize: f.num("vocab_size", { int: true, min: 1 }),
    hiddenSize,
    intermediateSize: f.num("intermediate_size", { int: true, min: 1 }),
    numLayers: f.num("num_hidden_layers", { int: true, min: 1 }),
    numHeads,
    numKvHeads,
    headDim,
    rmsNormEps: f.num("rms_norm_eps", { min: 0, def: 1e-6 }),
    ropeTheta: f.num("rope_theta", { min: 0, def: 10000 }),
    ropeScaling: ropeScalingOf(raw, src, a),
    maxPositionEmbeddings: f.num("max_position_embeddings", { int: true, min: 1, def: 2048 }),
    tieWordEmbeddings: f.bool("tie_word_embeddings", false),
    slidingWindow,
    qkvBias: a === "Qwen2ForCausalLM" || (a === "LlamaForCausalLM" && attentionBias),
    oBias: a === "LlamaForCausalLM" && attentionBias,
    mlpBias: a === "LlamaForCausalLM" && f.bool("mlp_bias", false),
    fusedProjections: a === "Phi3ForCausalLM",
    bosTokenId: bos[0] ?? null,
    eosTokenIds: eos,
    padTokenId: pad[0] ?? null,
    torchDtype: typeof raw.torch_dtype === "string" ? raw.torch_dtype : null,
    raw,
  };
  if (a === "Phi3ForCausalLM" && raw.rope_scaling) {
    // Phi3's longrope/su scaling uses its own per-dimension factors.
    const rs = raw.rope_scaling as Json;
    const t = rs.type ?? rs.rope_type;
    if (t !== "default" && t !== "linear") {
      throw new ConfigError(`${src}: Phi3 rope_scaling type "${t}" is not supported`);
    }
  }
  return cfg;
}

/** Reads and parses `dir/config.json`. */
export function readConfig(dir: string): ModelConfig {
  const path = `${dir.replace(/\/+$/, "")}/config.json`;
  let text: string;
  try {
    text = Deno.readTextFileSync(path);
  } catch (e) {
    throw new ConfigError(`cannot read ${path}: ${(e as Error).message}`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new ConfigError(`${path} is not valid JSON: ${(e as Error).message}`);
  }
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) {
    throw new ConfigError(`${path} must hold a JSON object`);
  }
  return parseConfig(raw as Json, path);
}

/** Number of parameters a config implies (tied embeddings counted once). */
export function configParameterCount(c: ModelConfig): number {
  const h = c.hiddenSize, hd = c.headDim;
  const q = c.numHeads * hd, kv = c.numKvHeads * hd;
  let layer = h * (q + 2 * kv) + q * h + 3 * h * c.intermediateSize + 2 * h;
  if (c.qkvBias) layer += q + 2 * kv;
  if (c.oBias) layer += h;
  if (c.mlpBias) layer += 2 * c.intermediateSize + h;
  const embed = c.vocabSize * h;
  return embed + (c.tieWordEmbeddings ? 0 : embed) + c.numLayers * layer + h;
}
