// A seconds-long stand-in for pipelines/peft_compare.ts (a tiny model, a few steps each), for
// the notebooks when LAB_NOTEBOOK_QUICK=1, as `deno task notebooks` runs them.
import { finetune, load, pipeline } from "../../mod.ts";

const COMMON = {
  data: "data/instructions.jsonl",
  maxLength: 64,
  valFraction: 0.15,
  steps: 8,
  batchSize: 4,
  seed: 0,
  evalEvery: 4,
} as const;

export default pipeline("peft-compare", () => {
  const base = load({ tiny: { arch: "llama", preset: "tiny", seed: 0 } });
  const adapters = { lr: 1e-2, targetModules: "all-linear" } as const;
  finetune(base, { ...COMMON, method: "full", lr: 1e-3 }).named("full");
  finetune(base, { ...COMMON, ...adapters, method: "lora", r: 4, alpha: 8 }).named("lora-r4");
  finetune(base, { ...COMMON, ...adapters, method: "qlora", r: 4, alpha: 8 }).named("qlora-r4");
});
