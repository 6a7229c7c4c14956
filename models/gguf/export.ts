// Hugging Face checkpoint folder → GGUF (F32 / F16 / BF16) that llama.cpp loads: architecture
// metadata, tensor names, Llama's Q/K row permutation, llama3 RoPE factors, the tokenizer.
import { join } from "node:path";
import type { DType, Tensor } from "../../ffi/mod.ts";
import { LabError } from "../../errors.ts";
import { type ModelConfig, readConfig } from "../config.ts";
import { ShardedCheckpoint } from "../safetensors.ts";
import { inverseFrequencies } from "../rope.ts";
import { tokenizerMetadata } from "./tokenizer.ts";
import { type GgufTensor, type GgufTensorType, type GgufValue, writeGguf } from "./writer.ts";

/** The GGUF storage types export writes. */
export const GGUF_EXPORT_TYPES = ["F32", "F16", "BF16"] as const;

/** llama_ftype of each export type (general.file_type). */
const FILE_TYPE: Record<GgufTensorType, number> = { F32: 0, F16: 1, BF16: 32 };
const TORCH_DTYPE: Record<GgufTensorType, DType> = {
  F32: "float32",
  F16: "float16",
  BF16: "bfloat16",
};

/** llama.cpp's architecture name for each architecture the lab loads. */
const GGUF_ARCH: Record<string, string> = {
  LlamaForCausalLM: "llama",
  MistralForCausalLM: "llama",
  Qwen2ForCausalLM: "qwen2",
  Phi3ForCausalLM: "phi3",
};

/** What exportGguf wrote. */
export interface GgufExport {
  path: string;
  arch: string;
  type: GgufTensorType;
  bytes: number;
  tensors: number;
}

/** Throws when llama.cpp cannot run `c` as the lab does; returns the GGUF architecture. */
export function ggufArchitecture(c: ModelConfig, src: string): string {
  const arch = GGUF_ARCH[c.architecture];
  if (!arch) throw new LabError(`${src}: llama.cpp export does not support ${c.architecture}`);
  if (c.slidingWindow !== null && c.slidingWindow < c.maxPositionEmbeddings) {
    throw new LabError(
      `${src}: sliding_window=${c.slidingWindow} < max_position_embeddings=` +
        `${c.maxPositionEmbeddings}: llama.cpp's ${arch} architecture attends to the whole ` +
        `context, so it would score this model differently; use a model without a window`,
    );
  }
  if (arch === "phi3" && c.ropeScaling.type !== "default") {
    throw new LabError(`${src}: Phi-3 with rope_scaling is not exported to GGUF (longrope)`);
  }
  return arch;
}

function hparams(c: ModelConfig, arch: string, type: GgufTensorType): [string, GgufValue][] {
  const u32 = (value: number): GgufValue => ({ type: "u32", value });
  const f32 = (value: number): GgufValue => ({ type: "f32", value });
  const kv: [string, GgufValue][] = [
    ["general.architecture", { type: "string", value: arch }],
    // Not the model type: llama.cpp keys token rules off names like "phi3" in general.name.
    ["general.name", { type: "string", value: "lab-export" }],
    ["general.file_type", u32(FILE_TYPE[type])],
    [`${arch}.vocab_size`, u32(c.vocabSize)],
    [`${arch}.context_length`, u32(c.maxPositionEmbeddings)],
    [`${arch}.embedding_length`, u32(c.hiddenSize)],
    [`${arch}.feed_forward_length`, u32(c.intermediateSize)],
    [`${arch}.block_count`, u32(c.numLayers)],
    [`${arch}.attention.head_count`, u32(c.numHeads)],
    [`${arch}.attention.head_count_kv`, u32(c.numKvHeads)],
    [`${arch}.attention.key_length`, u32(c.headDim)],
    [`${arch}.attention.value_length`, u32(c.headDim)],
    [`${arch}.attention.layer_norm_rms_epsilon`, f32(c.rmsNormEps)],
    [`${arch}.rope.dimension_count`, u32(c.headDim)],
    [`${arch}.rope.freq_base`, f32(c.ropeTheta)],
  ];
  if (c.ropeScaling.type === "linear") {
    kv.push([`${arch}.rope.scaling.type`, { type: "string", value: "linear" }]);
    kv.push([`${arch}.rope.scaling.factor`, f32(c.ropeScaling.factor)]);
  }
  return kv;
}

/** GGUF name of an HF tensor, or null for tensors llama.cpp does not take. */
export function ggufTensorName(hf: string): string | null {
  const top: Record<string, string> = {
    "model.embed_tokens.weight": "token_embd.weight",
    "model.norm.weight": "output_norm.weight",
    "lm_head.weight": "output.weight",
  };
  if (top[hf]) return top[hf];
  const m = /^model\.layers\.(\d+)\.(.+)\.(weight|bias)$/.exec(hf);
  if (!m) return null;
  const part: Record<string, string> = {
    input_layernorm: "attn_norm",
    post_attention_layernorm: "ffn_norm",
    "self_attn.q_proj": "attn_q",
    "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output",
    "self_attn.qkv_proj": "attn_qkv",
    "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up",
    "mlp.gate_up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
  };
  return part[m[2]] ? `blk.${m[1]}.${part[m[2]]}.${m[3]}` : null;
}

/**
 * HF rotates halves of each head, llama.cpp's "llama" rope rotates adjacent pairs: reorder
 * each head's rows from [x0..x(d/2-1), y0..] to [x0, y0, x1, y1, …] (llama.cpp's converter).
 */
function permuteHeads(w: Tensor, heads: number): Tensor {
  const [rows, ...rest] = w.shape;
  using split = w.reshape([heads, 2, rows / heads / 2, ...rest]);
  using swapped = split.transpose(1, 2);
  using c = swapped.contiguous();
  return c.reshape(w.shape);
}

function llama3RopeFactors(c: ModelConfig): Float32Array {
  const base = inverseFrequencies({ ...c, ropeScaling: { type: "default" } });
  const scaled = inverseFrequencies(c);
  return base.map((b, i) => b / scaled[i]);
}

function tensorOf(ckpt: ShardedCheckpoint, hf: string, c: ModelConfig, arch: string): Tensor {
  const t = ckpt.load(hf, { dtype: "float32" });
  if (arch !== "llama") return t;
  const heads = hf.endsWith("q_proj.weight") || hf.endsWith("q_proj.bias")
    ? c.numHeads
    : hf.endsWith("k_proj.weight") || hf.endsWith("k_proj.bias")
    ? c.numKvHeads
    : 0;
  if (!heads) return t;
  using _t = t;
  return permuteHeads(t, heads);
}

function checkpointTensors(
  ckpt: ShardedCheckpoint,
  c: ModelConfig,
  arch: string,
  type: GgufTensorType,
): GgufTensor[] {
  const out: GgufTensor[] = [];
  for (const hf of ckpt.names()) {
    const name = ggufTensorName(hf);
    if (!name) {
      if (hf.endsWith("rotary_emb.inv_freq")) continue;
      throw new LabError(
        `GGUF export: ${ckpt.dir} holds '${hf}', which llama.cpp has no slot for ` +
          "(a model the lab quantized? export the unquantized checkpoint)",
      );
    }
    const shape = ckpt.shapeOf(hf);
    // Norms and biases stay F32, as llama.cpp's converter keeps 1-D tensors.
    const t = shape.length === 1 ? "F32" : type;
    out.push({
      name,
      shape,
      type: t,
      data: () => {
        using w = tensorOf(ckpt, hf, c, arch);
        using cast = w.to({ dtype: TORCH_DTYPE[t] });
        return cast.bytes();
      },
    });
  }
  return out;
}

/** Writes `dir`'s model as GGUF `type` at `out` (the folder's config, weights and tokenizer). */
export function exportGguf(dir: string, out: string, type: GgufTensorType = "F32"): GgufExport {
  const c = readConfig(dir);
  const arch = ggufArchitecture(c, join(dir, "config.json"));
  using ckpt = ShardedCheckpoint.open(dir);
  const tensors = checkpointTensors(ckpt, c, arch, type);
  if (c.ropeScaling.type === "llama3") {
    const f = llama3RopeFactors(c);
    tensors.push({
      name: "rope_freqs.weight",
      shape: [f.length],
      type: "F32",
      data: () => new Uint8Array(f.buffer, f.byteOffset, f.byteLength),
    });
  }
  const metadata = new Map<string, GgufValue>([
    ...hparams(c, arch, type),
    ...tokenizerMetadata(dir, c),
  ]);
  const bytes = writeGguf(out, metadata, tensors);
  return { path: out, arch, type, bytes, tensors: tensors.length };
}
