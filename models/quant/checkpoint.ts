// Saving a quantized model as a folder (config, tokenizer, safetensors, quantization.json)
// and loading it back.
import { copyFileSync, existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import type { DType, Tensor } from "../../ffi/mod.ts";
import { readConfig } from "../config.ts";
import { Linear, type LinearLayer } from "../linear.ts";
import { LlamaModel } from "../llama.ts";
import { CheckpointError, saveSafetensors, ShardedCheckpoint } from "../safetensors.ts";
import { loadTokenizer } from "../tokenizer.ts";
import type { LayerWeights, ModelWeights } from "../weights.ts";
import { type EmbeddingTable, isPacked } from "../embedding.ts";
import { CastLinear } from "./cast_linear.ts";
import { LAYER_PROJECTIONS, linearModules } from "../modules.ts";
import { partNames, QuantizedLinear } from "./quantized_linear.ts";
import { parseScheme } from "./schemes.ts";
import { EMBED_MODULE } from "./quantize_model.ts";

/** File naming a quantized folder's per-module formats. */
export const QUANT_MANIFEST = "quantization.json";
const FORMAT = "llm-efficiency-lab/quantized-v1";
const SIDE_FILES = [
  "tokenizer.json",
  "tokenizer_config.json",
  "generation_config.json",
  "special_tokens_map.json",
];

interface ModuleEntry {
  scheme: string;
  shape: [number, number];
  bias: boolean;
}

interface Manifest {
  format: string;
  compute_dtype: DType;
  modules: Record<string, ModuleEntry>;
}

function schemeOf(layer: LinearLayer, compute: DType): string {
  if (layer instanceof QuantizedLinear) return layer.scheme.name;
  if (layer instanceof CastLinear) {
    return { float16: "fp16", bfloat16: "bf16", float32: "fp32" }[layer.weight.dtype as string] ??
      layer.weight.dtype;
  }
  return { float16: "fp16", bfloat16: "bf16", float32: "fp32" }[compute as string] ?? compute;
}

function moduleTensors(name: string, layer: LinearLayer): [string, Tensor][] {
  if (layer instanceof QuantizedLinear) return layer.namedTensors(name);
  if (layer instanceof Linear || layer instanceof CastLinear) {
    const out: [string, Tensor][] = [[`${name}.weight`, layer.weight]];
    if (layer.bias) out.push([`${name}.bias`, layer.bias]);
    return out;
  }
  throw new CheckpointError(`cannot save module '${name}' of type ${layer.constructor.name}`);
}

function packedTable(layer: LinearLayer): EmbeddingTable {
  if (layer instanceof QuantizedLinear || layer instanceof CastLinear) return layer;
  if (layer instanceof Linear) return layer.weight;
  throw new CheckpointError(`the embedding table cannot be a ${layer.constructor.name}`);
}

/** True when `dir` holds a model saved by saveQuantizedModel. */
export function isQuantizedFolder(dir: string): boolean {
  return existsSync(join(dir, QUANT_MANIFEST));
}

/** Writes `model` (quantized or not) to `dir`: loadModel/loadQuantizedModel read it back. */
export function saveQuantizedModel(model: LlamaModel, dir: string): void {
  mkdirSync(dir, { recursive: true });
  if (!model.source) {
    throw new CheckpointError("saveQuantizedModel: the model has no source folder");
  }
  copyFileSync(join(model.source, "config.json"), join(dir, "config.json"));
  for (const f of SIDE_FILES) {
    if (existsSync(join(model.source, f))) copyFileSync(join(model.source, f), join(dir, f));
  }
  const w = model.weights;
  const tensors = new Map<string, Tensor>();
  const modules: Record<string, ModuleEntry> = {};
  const addModule = (name: string, layer: LinearLayer) => {
    const named = moduleTensors(name, layer);
    modules[name] = {
      scheme: schemeOf(layer, model.dtype),
      shape: [layer.outFeatures, layer.inFeatures],
      bias: named.some(([n]) => n.endsWith(".bias")),
    };
    for (const [n, t] of named) tensors.set(n, t);
  };
  // A packed table is saved once, as a module; a tied head reads it back from there.
  if (isPacked(w.embedTokens)) addModule(EMBED_MODULE, w.embedTokens);
  else tensors.set("model.embed_tokens.weight", w.embedTokens);
  tensors.set("model.norm.weight", w.norm);
  w.layers.forEach((l, i) => {
    tensors.set(`model.layers.${i}.input_layernorm.weight`, l.inputNorm);
    tensors.set(`model.layers.${i}.post_attention_layernorm.weight`, l.postAttentionNorm);
  });
  for (const slot of linearModules(model)) addModule(slot.name, slot.get());
  saveSafetensors(join(dir, "model.safetensors"), tensors, { format: "pt", lab: FORMAT });
  const manifest: Manifest = { format: FORMAT, compute_dtype: model.dtype, modules };
  Deno.writeTextFileSync(join(dir, QUANT_MANIFEST), JSON.stringify(manifest, null, 2) + "\n");
}

function readManifest(dir: string): Manifest {
  const path = join(dir, QUANT_MANIFEST);
  let m: Manifest;
  try {
    m = JSON.parse(Deno.readTextFileSync(path));
  } catch (e) {
    throw new CheckpointError(`${path}: ${(e as Error).message}`);
  }
  if (m.format !== FORMAT) {
    throw new CheckpointError(`${path}: format '${m.format}' is not '${FORMAT}'`);
  }
  return m;
}

/** Loads a folder written by saveQuantizedModel. `device` moves it; the compute dtype is kept. */
export function loadQuantizedModel(dir: string, opts: { device?: string } = {}): LlamaModel {
  const device = opts.device ?? "cpu";
  const manifest = readManifest(dir);
  const config = readConfig(dir);
  const dtype = manifest.compute_dtype;
  using ckpt = ShardedCheckpoint.open(dir);
  const owned: { dispose(): void }[] = [];
  const get = (name: string, as?: DType): Tensor => {
    if (!ckpt.has(name)) {
      throw new CheckpointError(`${dir}: tensor '${name}' is missing from model.safetensors`);
    }
    const t = ckpt.load(name, { dtype: as, device });
    owned.push(t);
    return t;
  };
  const module = (name: string): LinearLayer => {
    const e = manifest.modules[name];
    if (!e) throw new CheckpointError(`${dir}: ${QUANT_MANIFEST} does not list module '${name}'`);
    const bias = e.bias ? get(`${name}.bias`) : null;
    const scheme = parseScheme(e.scheme);
    if (scheme.kind === "cast") {
      const weight = get(`${name}.weight`);
      return scheme.dtype === dtype ? new Linear(weight, bias) : new CastLinear(weight, bias);
    }
    const parts = partNames(scheme).map((p) => get(`${name}.${p}`));
    return new QuantizedLinear(scheme, parts, e.shape, bias);
  };
  try {
    const embedTokens = manifest.modules[EMBED_MODULE]
      ? packedTable(module(EMBED_MODULE))
      : get("model.embed_tokens.weight", dtype);
    const layers: LayerWeights[] = [];
    for (let l = 0; l < config.numLayers; l++) {
      const p = `model.layers.${l}`;
      const lw: Record<string, unknown> = {
        inputNorm: get(`${p}.input_layernorm.weight`, dtype),
        postAttentionNorm: get(`${p}.post_attention_layernorm.weight`, dtype),
      };
      for (const [field, suffix] of LAYER_PROJECTIONS) lw[field] = module(`${p}.${suffix}`);
      layers.push(lw as unknown as LayerWeights);
    }
    const norm = get("model.norm.weight", dtype);
    const lmHead = !config.tieWordEmbeddings
      ? module("lm_head")
      : isPacked(embedTokens)
      ? embedTokens
      : new Linear(embedTokens);
    const weights: ModelWeights = { embedTokens, layers, norm, lmHead };
    const model = new LlamaModel(config, weights, { dtype, device, source: dir });
    model.tokenizer = loadTokenizer(dir);
    return model;
  } catch (e) {
    for (const t of owned) t.dispose();
    throw e;
  }
}
