// The built-in stage kinds.
import "./environment.ts";
import "./provenance.ts";
export { load, loadParams } from "./load.ts";
export { quantize, quantizeParams } from "./quantize.ts";
export { profile, profileParams } from "./profile.ts";
export { evaluate, evaluateParams } from "./evaluate.ts";
export { finetune, finetuneParams } from "./finetune.ts";
export { analyze, analyzeParams } from "./analyze.ts";
export { type AdviceOutput, advise, adviseParams } from "./advise.ts";
export { cost, costParams } from "./cost.ts";
export { serveBench as serve_bench, serveBenchParams } from "./serve_bench.ts";
