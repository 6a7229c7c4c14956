// Names and slots of a model's linear modules, in Hugging Face naming (glob.ts matches them).
import type { LinearLayer } from "./linear.ts";
import type { LlamaModel } from "./llama.ts";
import { LAYER_PROJECTIONS } from "./projections.ts";

export { LAYER_PROJECTIONS } from "./projections.ts";

/** A linear module of a model: its name, current layer, and a way to replace it. */
export interface ModuleSlot {
  /** e.g. "model.layers.0.self_attn.q_proj" or "lm_head". */
  name: string;
  /** Decoder layer index, or -1 for lm_head. */
  layer: number;
  /** For Phi-3's split projections: the fused checkpoint module they came from. */
  fusedInto: string | null;
  get(): LinearLayer;
  set(next: LinearLayer): void;
}

/**
 * Every linear module of `model`, in a fixed order, named as in its Hugging Face checkpoint.
 * lm_head is left out when it shares the embedding matrix (tied embeddings), unless
 * `includeTiedHead`: quantization must leave it dense, an adapter may still wrap it.
 */
export function linearModules(
  model: LlamaModel,
  opts: { includeTiedHead?: boolean } = {},
): ModuleSlot[] {
  const w = model.weights;
  const fused = model.config.fusedProjections;
  const out: ModuleSlot[] = [];
  w.layers.forEach((lw, l) => {
    for (const [field, suffix] of LAYER_PROJECTIONS) {
      let fusedInto: string | null = null;
      if (fused && /^self_attn\.[qkv]_proj$/.test(suffix)) {
        fusedInto = `model.layers.${l}.self_attn.qkv_proj`;
      } else if (fused && /^mlp\.(gate|up)_proj$/.test(suffix)) {
        fusedInto = `model.layers.${l}.mlp.gate_up_proj`;
      }
      out.push({
        name: `model.layers.${l}.${suffix}`,
        layer: l,
        fusedInto,
        get: () => lw[field] as LinearLayer,
        set: (next) => {
          (lw as unknown as Record<string, LinearLayer>)[field] = next;
        },
      });
    }
  });
  if (!model.config.tieWordEmbeddings || opts.includeTiedHead) {
    out.push({
      name: "lm_head",
      layer: -1,
      fusedInto: null,
      get: () => w.lmHead,
      set: (n) => (w.lmHead = n),
    });
  }
  return out;
}
