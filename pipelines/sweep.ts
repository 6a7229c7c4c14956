// The default sweep (`deno task sweep`): a small model trained on the bundled text, then every
// quantization scheme this libtorch supports, each profiled and evaluated.
import { analyze, evaluate, pipeline, profile, quantize } from "../mod.ts";
import { trainedTinyModel } from "./trained_tiny.ts";
import { supportedSchemes } from "../models/quant/schemes.ts";

// Schemes in the table: the casts, int8, the 4-bit formats, fp8 where libtorch has it.
const SCHEMES = ["fp32", "fp16", "bf16", "int8", "nf4", "fp4", "int4-g64", "int4-g128", "fp8-e4m3"]
  .filter((s) => supportedSchemes().includes(s));

/** The table the sweep ends with (the quant_tradeoff view answers it). */
export const SUMMARY_SQL = `SELECT configuration, round(weight_mb, 2) AS weight_mb,
  round(bits_per_param, 2) AS bits, round(peak_mb) AS peak_mb, round(ttft_ms, 1) AS ttft_ms,
  round(prefill_tps) AS prefill_tps, round(decode_tps) AS decode_tps, round(ppl, 3) AS ppl,
  round(delta_ppl, 3) AS delta_ppl_vs_fp32, round(kld_mean, 4) AS kld,
  round(accuracy, 3) AS mc_accuracy
FROM quant_tradeoff WHERE pipeline = 'sweep' ORDER BY weight_mb DESC`;

export default pipeline("sweep", ({ sweep }) => {
  const trained = trainedTinyModel();
  for (const scheme of sweep("scheme", SCHEMES)) {
    const q = quantize(trained, { scheme });
    profile(q, { batch: [1, 8], promptTokens: [64], newTokens: 32, repeats: 3 });
    evaluate(q, { dataset: "data/eval.txt", contextLength: 256, stride: 128 });
    evaluate(q, { dataset: "data/mc.jsonl" });
    // How far each scheme moves the model, layer by layer and in next-token distributions.
    if (scheme !== "fp32") analyze(trained, q, { maxTokens: 512, contextLength: 128 });
  }
}, { summary: { title: "Quantization trade-offs (memory, speed, quality)", sql: SUMMARY_SQL } });
