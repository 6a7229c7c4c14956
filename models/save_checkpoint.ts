// Writes a model's current weights as a Hugging Face checkpoint folder that
// loadModel (and transformers) read back: config.json, model.safetensors and
// the tokenizer files of the folder it was loaded from.
import { cat, type DType, noGrad, type Tensor, tidy } from "../ffi/mod.ts";
import { Linear, type LinearLayer } from "./linear.ts";
import type { LlamaModel } from "./llama.ts";
import { QuantizedLinear } from "./quant/quantized_linear.ts";
import { CastLinear } from "./quant/cast_linear.ts";
import { isPacked } from "./embedding.ts";
import { saveSafetensors } from "./safetensors.ts";

const COPIED = [
  "generation_config.json",
  "tokenizer.json",
  "tokenizer_config.json",
  "special_tokens_map.json",
];

/** Options of saveCheckpoint. */
export interface SaveCheckpointOptions {
  /** dtype to store the weights in (default: the model's). */
  dtype?: DType;
}

function denseParts(layer: LinearLayer, name: string, dtype: DType): [Tensor, Tensor | null] {
  if (layer instanceof Linear) {
    return [layer.weight.detach().to(dtype), layer.bias?.detach().to(dtype) ?? null];
  }
  if (layer instanceof QuantizedLinear) {
    return [layer.dequantize(dtype), layer.bias?.detach().to(dtype) ?? null];
  }
  if (layer instanceof CastLinear) {
    return [layer.weight.detach().to(dtype), layer.bias?.detach().to(dtype) ?? null];
  }
  throw new Error(
    `saveCheckpoint: ${name} is a ${layer.constructor.name}; merge LoRA adapters first (mergeAdapter) ` +
      `or save them with saveAdapter`,
  );
}

/** Writes `model` as an HF checkpoint into `dir` (created); quantized layers are written dense. */
export function saveCheckpoint(
  model: LlamaModel,
  dir: string,
  opts: SaveCheckpointOptions = {},
): void {
  const dtype = opts.dtype ?? model.dtype;
  const c = model.config;
  dir = dir.replace(/\/+$/, "");
  Deno.mkdirSync(dir, { recursive: true });
  noGrad(() =>
    tidy(() => {
      const t = new Map<string, Tensor>();
      const w = model.weights;
      const table = w.embedTokens;
      t.set(
        "model.embed_tokens.weight",
        isPacked(table)
          ? denseParts(table, "model.embed_tokens", dtype)[0]
          : table.detach().to(dtype),
      );
      w.layers.forEach((lw, l) => {
        const p = `model.layers.${l}`;
        t.set(`${p}.input_layernorm.weight`, lw.inputNorm.detach().to(dtype));
        t.set(`${p}.post_attention_layernorm.weight`, lw.postAttentionNorm.detach().to(dtype));
        const put = (layer: LinearLayer, name: string) => {
          const [wt, b] = denseParts(layer, name, dtype);
          t.set(`${name}.weight`, wt);
          if (b) t.set(`${name}.bias`, b);
        };
        if (c.fusedProjections) {
          const parts = (ls: LinearLayer[], name: string) =>
            ls.map((x) => denseParts(x, name, dtype)[0]);
          t.set(
            `${p}.self_attn.qkv_proj.weight`,
            cat(parts([lw.qProj, lw.kProj, lw.vProj], `${p}.self_attn.qkv_proj`), 0),
          );
          t.set(
            `${p}.mlp.gate_up_proj.weight`,
            cat(parts([lw.gateProj, lw.upProj], `${p}.mlp.gate_up_proj`), 0),
          );
        } else {
          put(lw.qProj, `${p}.self_attn.q_proj`);
          put(lw.kProj, `${p}.self_attn.k_proj`);
          put(lw.vProj, `${p}.self_attn.v_proj`);
          put(lw.gateProj, `${p}.mlp.gate_proj`);
          put(lw.upProj, `${p}.mlp.up_proj`);
        }
        put(lw.oProj, `${p}.self_attn.o_proj`);
        put(lw.downProj, `${p}.mlp.down_proj`);
      });
      t.set("model.norm.weight", w.norm.detach().to(dtype));
      if (!c.tieWordEmbeddings) t.set("lm_head.weight", denseParts(w.lmHead, "lm_head", dtype)[0]);
      saveSafetensors(`${dir}/model.safetensors`, t, { format: "pt" });
    })
  );
  const raw = { ...c.raw, torch_dtype: dtype };
  Deno.writeTextFileSync(`${dir}/config.json`, JSON.stringify(raw, null, 2) + "\n");
  if (model.source) {
    const src = model.source.replace(/\/+$/, "");
    for (const f of COPIED) {
      try {
        Deno.copyFileSync(`${src}/${f}`, `${dir}/${f}`);
      } catch (e) {
        if (!(e instanceof Deno.errors.NotFound)) throw e;
      }
    }
  }
}
