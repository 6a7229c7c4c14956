// Two engines on one trained model: the lab's int8 / nf4 / int4-g32 (libtorch) and llama.cpp's
// Q8_0 / Q4_K_M / Q4_0 / IQ4_XS (GGUF through libllama), profiled with the same harness, scored
// on the same token ids and against the same fp32 reference:
//   deno task lab run pipelines/engines.ts
import { analyze, evaluate, pipeline, profile, quantize } from "../mod.ts";
import { trainedTinyModel } from "./trained_tiny.ts";

const CONFIGS = [
  "libtorch:fp32",
  "libtorch:int8",
  "libtorch:nf4",
  "libtorch:int4-g32",
  "llama.cpp:Q8_0",
  "llama.cpp:Q4_K_M",
  "llama.cpp:Q4_0",
  "llama.cpp:IQ4_XS",
];

/** The table the pipeline ends with (quant_tradeoff, both engines). */
export const ENGINES_SQL =
  `SELECT engine, configuration AS scheme, round(weight_mb, 2) AS weight_mb,
  round(bits_per_param, 2) AS bits_per_param, round(prefill_tps) AS prefill_tps,
  round(decode_tps) AS decode_tps, round(ppl, 3) AS ppl, round(kld_mean, 4) AS kld,
  round(top1_agreement, 3) AS top1
FROM quant_tradeoff WHERE pipeline = 'engines' ORDER BY engine, weight_mb DESC`;

export default pipeline("engines", ({ sweep }) => {
  const trained = trainedTinyModel();
  for (const config of sweep("config", CONFIGS)) {
    const [engine, scheme] = config.split(":");
    const q = engine === "llama.cpp"
      ? quantize(trained, { engine: "llama.cpp", scheme })
      : quantize(trained, { scheme });
    profile(q, { batch: [1, 4], promptTokens: [64], newTokens: 32, repeats: 3 });
    evaluate(q, { dataset: "data/eval.txt", contextLength: 256, stride: 128 });
    if (scheme !== "fp32") analyze(trained, q, { maxTokens: 512, contextLength: 128 });
  }
}, { summary: { title: "Engines: the lab's schemes and llama.cpp's types", sql: ENGINES_SQL } });
