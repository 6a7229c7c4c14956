// Maps a Llama-family checkpoint's tensor names onto the model's layers,
// checking every name and shape against the config before loading anything.
import { type DType, type Tensor } from "../ffi/mod.ts";
import type { ModelConfig } from "./config.ts";
import { Linear, type LinearLayer } from "./linear.ts";
import { CheckpointError, type ShardedCheckpoint } from "./safetensors.ts";
import type { EmbeddingTable } from "./embedding.ts";

/** One decoder layer's parameters. */
export interface LayerWeights {
  inputNorm: Tensor;
  postAttentionNorm: Tensor;
  qProj: LinearLayer;
  kProj: LinearLayer;
  vProj: LinearLayer;
  oProj: LinearLayer;
  gateProj: LinearLayer;
  upProj: LinearLayer;
  downProj: LinearLayer;
}

/**
 * All parameters of a model. With tied embeddings, `lmHead` reads the embedding table: a dense
 * `Linear` over `embedTokens`, or the same packed table object.
 */
export interface ModelWeights {
  embedTokens: EmbeddingTable;
  layers: LayerWeights[];
  norm: Tensor;
  lmHead: LinearLayer;
}

/** The tensors a config implies, with their shapes, in checkpoint naming. */
export function expectedTensors(c: ModelConfig): Map<string, number[]> {
  const m = new Map<string, number[]>();
  const h = c.hiddenSize, hd = c.headDim, i = c.intermediateSize;
  const q = c.numHeads * hd, kv = c.numKvHeads * hd;
  m.set("model.embed_tokens.weight", [c.vocabSize, h]);
  for (let l = 0; l < c.numLayers; l++) {
    const p = `model.layers.${l}.`;
    m.set(`${p}input_layernorm.weight`, [h]);
    m.set(`${p}post_attention_layernorm.weight`, [h]);
    if (c.fusedProjections) {
      m.set(`${p}self_attn.qkv_proj.weight`, [q + 2 * kv, h]);
      m.set(`${p}mlp.gate_up_proj.weight`, [2 * i, h]);
    } else {
      m.set(`${p}self_attn.q_proj.weight`, [q, h]);
      m.set(`${p}self_attn.k_proj.weight`, [kv, h]);
      m.set(`${p}self_attn.v_proj.weight`, [kv, h]);
      m.set(`${p}mlp.gate_proj.weight`, [i, h]);
      m.set(`${p}mlp.up_proj.weight`, [i, h]);
      if (c.qkvBias) {
        m.set(`${p}self_attn.q_proj.bias`, [q]);
        m.set(`${p}self_attn.k_proj.bias`, [kv]);
        m.set(`${p}self_attn.v_proj.bias`, [kv]);
      }
      if (c.mlpBias) {
        m.set(`${p}mlp.gate_proj.bias`, [i]);
        m.set(`${p}mlp.up_proj.bias`, [i]);
        m.set(`${p}mlp.down_proj.bias`, [h]);
      }
    }
    m.set(`${p}self_attn.o_proj.weight`, [h, q]);
    if (c.oBias) m.set(`${p}self_attn.o_proj.bias`, [h]);
    m.set(`${p}mlp.down_proj.weight`, [h, i]);
  }
  m.set("model.norm.weight", [h]);
  if (!c.tieWordEmbeddings) m.set("lm_head.weight", [c.vocabSize, h]);
  return m;
}

/** Throws naming the first tensor the checkpoint lacks or holds in the wrong shape. */
export function validateCheckpoint(ckpt: ShardedCheckpoint, c: ModelConfig): void {
  for (const [name, shape] of expectedTensors(c)) {
    if (!ckpt.has(name)) {
      throw new CheckpointError(
        `${ckpt.dir}: tensor '${name}' is missing; config.json (${c.architecture}, ` +
          `${c.numLayers} layers) requires it`,
      );
    }
    const got = ckpt.shapeOf(name);
    if (got.length !== shape.length || got.some((d, k) => d !== shape[k])) {
      throw new CheckpointError(
        `${ckpt.dir}: tensor '${name}' has shape [${got}] but config.json implies [${shape}] ` +
          `(in ${ckpt.fileOf(name)})`,
      );
    }
    const dt = ckpt.dtypeOf(name);
    if (!dt.startsWith("float") && dt !== "bfloat16") {
      throw new CheckpointError(`${ckpt.dir}: tensor '${name}' is stored as ${dt}, not a float`);
    }
  }
}

/** Loads every parameter into `dtype` on `device`, one tensor at a time. */
export function loadWeights(
  ckpt: ShardedCheckpoint,
  c: ModelConfig,
  opts: { dtype: DType; device: string },
): ModelWeights {
  validateCheckpoint(ckpt, c);
  const owned: { dispose(): void }[] = [];
  const get = (name: string): Tensor => {
    const t = ckpt.load(name, opts);
    owned.push(t);
    return t;
  };
  const lin = (prefix: string, bias: boolean) =>
    new Linear(get(`${prefix}.weight`), bias ? get(`${prefix}.bias`) : null);
  // Splits rows of a fused projection into contiguous pieces.
  const split = (name: string, sizes: number[]): Linear[] => {
    using fused = ckpt.load(name, opts);
    const out: Linear[] = [];
    let at = 0;
    for (const n of sizes) {
      using view = fused.narrow(0, at, n);
      const w = view.contiguous();
      owned.push(w);
      out.push(new Linear(w));
      at += n;
    }
    return out;
  };
  try {
    const embedTokens = get("model.embed_tokens.weight");
    const layers: LayerWeights[] = [];
    const q = c.numHeads * c.headDim, kv = c.numKvHeads * c.headDim;
    for (let l = 0; l < c.numLayers; l++) {
      const p = `model.layers.${l}`;
      const inputNorm = get(`${p}.input_layernorm.weight`);
      const postAttentionNorm = get(`${p}.post_attention_layernorm.weight`);
      let qProj: Linear, kProj: Linear, vProj: Linear, gateProj: Linear, upProj: Linear;
      if (c.fusedProjections) {
        [qProj, kProj, vProj] = split(`${p}.self_attn.qkv_proj.weight`, [q, kv, kv]);
        [gateProj, upProj] = split(`${p}.mlp.gate_up_proj.weight`, [
          c.intermediateSize,
          c.intermediateSize,
        ]);
      } else {
        qProj = lin(`${p}.self_attn.q_proj`, c.qkvBias);
        kProj = lin(`${p}.self_attn.k_proj`, c.qkvBias);
        vProj = lin(`${p}.self_attn.v_proj`, c.qkvBias);
        gateProj = lin(`${p}.mlp.gate_proj`, c.mlpBias);
        upProj = lin(`${p}.mlp.up_proj`, c.mlpBias);
      }
      const oProj = lin(`${p}.self_attn.o_proj`, c.oBias);
      const downProj = lin(`${p}.mlp.down_proj`, c.mlpBias);
      layers.push({
        inputNorm,
        postAttentionNorm,
        qProj,
        kProj,
        vProj,
        oProj,
        gateProj,
        upProj,
        downProj,
      });
    }
    const norm = get("model.norm.weight");
    const lmHead = c.tieWordEmbeddings ? new Linear(embedTokens) : lin("lm_head", false);
    return { embedTokens, layers, norm, lmHead };
  } catch (e) {
    for (const t of owned) t.dispose();
    throw e;
  }
}
