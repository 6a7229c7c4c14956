// The built-in stage kinds.
export { load, loadParams } from "./load.ts";
export { quantize, quantizeParams } from "./quantize.ts";
export { profile, profileParams } from "./profile.ts";
export { evaluate, evaluateParams } from "./evaluate.ts";
export { finetune, finetuneParams } from "./finetune.ts";
export { type ModelOutput, modelSource, openModel } from "./model_input.ts";
