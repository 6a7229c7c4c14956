// Maps a Llama-family checkpoint's tensor names onto the model's layers,
// checking every name and shape against the config before loading anything.
import type { DType, Tensor } from "../ffi/mod.ts";
import type { ModelConfig } from "./config.ts";
import { Linear, type LinearLayer } from "./linear.ts";
import { CheckpointError, type ShardedCheckpoint } from "./safetensors.ts";
import { type EmbeddingTable, isPacked } from "./embedding.ts";
import { LAYER_PROJECTIONS } from "./projections.ts";

export { LAYER_PROJECTIONS } from "./projections.ts";

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

// Every LAYER_PROJECTIONS field must be a LayerWeights projection.
LAYER_PROJECTIONS satisfies readonly (readonly [keyof LayerWeights, string])[];

/** A layer's seven projections in LAYER_PROJECTIONS' order (the fused C++ forward's order too). */
export function layerProjections(lw: LayerWeights): LinearLayer[] {
  return LAYER_PROJECTIONS.map(([field]) => lw[field]);
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

/**
 * Builds the layer of one linear module from its dense weight and bias, taking ownership of
 * both (it keeps them or frees them). `name` is the Hugging Face module name, e.g.
 * "model.layers.0.self_attn.q_proj" or "lm_head" (Phi-3's fused projections arrive split).
 */
export type LinearFactory = (name: string, weight: Tensor, bias: Tensor | null) => LinearLayer;

const denseLinear: LinearFactory = (_name, weight, bias) => new Linear(weight, bias);

/** Options of loadWeights. */
export interface LoadWeightsOptions {
  dtype: DType;
  device: string;
  /**
   * Called for each linear module as soon as its tensors are read (default: a dense Linear),
   * so a caller can pack it and free the dense weight before the next one is read. A tied
   * lm_head shares the embedding matrix and is not passed through it.
   */
  linear?: LinearFactory;
  /**
   * Called with the embedding table as soon as it is read (default: kept dense), taking
   * ownership of it; a packed table it returns is also a tied model's lm_head.
   */
  embedding?: (weight: Tensor) => EmbeddingTable;
}

/**
 * Loads every parameter into `dtype` on `device`, one tensor at a time. An untied lm_head
 * is read first: it is the largest matrix, and packing it while little else is held keeps
 * the peak of a quantizing load low.
 */
export function loadWeights(
  ckpt: ShardedCheckpoint,
  c: ModelConfig,
  opts: LoadWeightsOptions,
): ModelWeights {
  validateCheckpoint(ckpt, c);
  const make = opts.linear ?? denseLinear;
  const load = { dtype: opts.dtype, device: opts.device };
  const owned: { dispose(): void }[] = [];
  const get = (name: string): Tensor => {
    const t = ckpt.load(name, load);
    owned.push(t);
    return t;
  };
  // The factory owns what it is given, also when it throws.
  const build = (name: string, weight: Tensor, bias: Tensor | null): LinearLayer => {
    let layer: LinearLayer;
    try {
      layer = make(name, weight, bias);
    } catch (e) {
      weight.dispose();
      bias?.dispose();
      throw e;
    }
    owned.push(layer);
    return layer;
  };
  const table = (weight: Tensor): EmbeddingTable => {
    if (!opts.embedding) {
      owned.push(weight);
      return weight;
    }
    let t: EmbeddingTable;
    try {
      t = opts.embedding(weight);
    } catch (e) {
      weight.dispose();
      throw e;
    }
    owned.push(t);
    return t;
  };
  const lin = (prefix: string, bias: boolean): LinearLayer => {
    const w = ckpt.load(`${prefix}.weight`, load);
    let b: Tensor | null = null;
    try {
      if (bias) b = ckpt.load(`${prefix}.bias`, load);
    } catch (e) {
      w.dispose();
      throw e;
    }
    return build(prefix, w, b);
  };
  // Splits rows of a fused projection into contiguous pieces, each built before the next is cut.
  const split = (fusedName: string, names: string[], sizes: number[]): LinearLayer[] => {
    using fused = ckpt.load(fusedName, load);
    const out: LinearLayer[] = [];
    let at = 0;
    sizes.forEach((n, k) => {
      using view = fused.narrow(0, at, n);
      out.push(build(names[k], view.contiguous(), null));
      at += n;
    });
    return out;
  };
  try {
    const lmHead = c.tieWordEmbeddings ? null : lin("lm_head", false);
    const embedTokens = table(ckpt.load("model.embed_tokens.weight", load));
    const layers: LayerWeights[] = [];
    const q = c.numHeads * c.headDim, kv = c.numKvHeads * c.headDim;
    for (let l = 0; l < c.numLayers; l++) {
      const p = `model.layers.${l}`;
      const inputNorm = get(`${p}.input_layernorm.weight`);
      const postAttentionNorm = get(`${p}.post_attention_layernorm.weight`);
      let qProj: LinearLayer, kProj: LinearLayer, vProj: LinearLayer;
      let gateProj: LinearLayer, upProj: LinearLayer;
      if (c.fusedProjections) {
        [qProj, kProj, vProj] = split(
          `${p}.self_attn.qkv_proj.weight`,
          ["q_proj", "k_proj", "v_proj"].map((s) => `${p}.self_attn.${s}`),
          [q, kv, kv],
        );
        [gateProj, upProj] = split(
          `${p}.mlp.gate_up_proj.weight`,
          [`${p}.mlp.gate_proj`, `${p}.mlp.up_proj`],
          [c.intermediateSize, c.intermediateSize],
        );
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
    const head = lmHead ??
      (isPacked(embedTokens) ? embedTokens : new Linear(embedTokens));
    return { embedTokens, layers, norm, lmHead: head };
  } catch (e) {
    for (const t of owned) t.dispose();
    throw e;
  }
}
