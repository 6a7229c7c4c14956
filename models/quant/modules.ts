// Names and slots of a model's linear modules, in Hugging Face naming, and glob matching over them.
import type { LinearLayer } from "../linear.ts";
import type { LayerWeights, ModelWeights } from "../weights.ts";

/** Per-layer projections: the LayerWeights field and its HF module suffix. */
export const LAYER_PROJECTIONS = [
  ["qProj", "self_attn.q_proj"],
  ["kProj", "self_attn.k_proj"],
  ["vProj", "self_attn.v_proj"],
  ["oProj", "self_attn.o_proj"],
  ["gateProj", "mlp.gate_proj"],
  ["upProj", "mlp.up_proj"],
  ["downProj", "mlp.down_proj"],
] as const satisfies readonly (readonly [keyof LayerWeights, string])[];

/** A linear module of a model: its name, current layer, and a way to replace it. */
export interface ModuleSlot {
  name: string;
  /** Decoder layer index, or -1 for lm_head. */
  layer: number;
  get(): LinearLayer;
  set(next: LinearLayer): void;
}

/**
 * Every linear module, in a fixed order. lm_head is included unless it shares
 * the embedding matrix (tied embeddings), which must stay dense.
 */
export function linearModules(w: ModelWeights, tied: boolean): ModuleSlot[] {
  const out: ModuleSlot[] = [];
  w.layers.forEach((lw, l) => {
    for (const [field, suffix] of LAYER_PROJECTIONS) {
      out.push({
        name: `model.layers.${l}.${suffix}`,
        layer: l,
        get: () => lw[field] as LinearLayer,
        set: (next) => {
          (lw as unknown as Record<string, LinearLayer>)[field] = next;
        },
      });
    }
  });
  if (!tied) {
    out.push({ name: "lm_head", layer: -1, get: () => w.lmHead, set: (n) => (w.lmHead = n) });
  }
  return out;
}

/**
 * A module-name glob: `*` matches any run of characters (dots included), and a
 * pattern also matches at any dotted suffix, so "q_proj" matches
 * "model.layers.3.self_attn.q_proj" and "model.layers.0.*" matches layer 0 only.
 */
export function globMatcher(pattern: string): (name: string) => boolean {
  const body = pattern.split("*").map((p) => p.replace(/[.+?^${}()|[\]\\]/g, "\\$&")).join(".*");
  const re = new RegExp(`^(?:.*\\.)?${body}$`);
  return (name) => re.test(name);
}
