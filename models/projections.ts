// The seven projections of a decoder layer, named once: the LayerWeights field and the Hugging
// Face module suffix. It imports nothing, so that reports and benchmarks may use the names
// without loading the model code or libtorch.

/** Per-layer projections: the LayerWeights field and its HF module suffix. */
export const LAYER_PROJECTIONS = [
  ["qProj", "self_attn.q_proj"],
  ["kProj", "self_attn.k_proj"],
  ["vProj", "self_attn.v_proj"],
  ["oProj", "self_attn.o_proj"],
  ["gateProj", "mlp.gate_proj"],
  ["upProj", "mlp.up_proj"],
  ["downProj", "mlp.down_proj"],
] as const;

/** The short module names ("q_proj", ..., "down_proj") in the same order. */
export const PROJECTION_NAMES: readonly string[] = LAYER_PROJECTIONS.map(([, s]) =>
  s.split(".").pop()!
);
