// Serving under load: fp32, int8 and nf4 of one model, each served by the lab's OpenAI-compatible
// server with continuous batching and load-tested over HTTP at rising Poisson rates up to
// saturation ("inf": every request at once). Results: serving_results, serving_requests.
import { pipeline, quantize, serve_bench } from "../mod.ts";
import { trainedTinyModel } from "./trained_tiny.ts";

export default pipeline("serving", ({ sweep }) => {
  const base = trainedTinyModel();
  for (const scheme of sweep("scheme", ["fp32", "int8", "nf4"])) {
    serve_bench(quantize(base, { scheme }), {
      rates: [2, 8, 32, "inf"],
      requests: 32,
      promptTokens: [16, 48],
      outputTokens: 32,
      slo: { ttftMs: 500, tpotMs: 50 },
      server: { maxBatch: 8 },
    });
  }
});
