// LoRA: the layer (layer.ts), which modules a target list selects (targets.ts), applying and
// merging adapters (apply.ts), and PEFT's adapter format (peft.ts).
export { LoraError, LoRALinear, loraScaling } from "./layer.ts";
export { matchesTarget, selectModules } from "./targets.ts";
export {
  applyLora,
  loraLayers,
  type LoraOptions,
  loraParameters,
  mergeAdapter,
  setLoraTraining,
} from "./apply.ts";
export {
  type AdapterConfig,
  applyAdapter,
  type ApplyAdapterOptions,
  peftKeys,
  peftTargetMatcher,
  saveAdapter,
  type SaveAdapterOptions,
} from "./peft.ts";
export type { ModuleSlot } from "../modules.ts";
