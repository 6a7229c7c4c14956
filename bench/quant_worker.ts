// Measures one saved model in a fresh process: memory after loading and batch-1 decode speed.
import { memory, version } from "../ffi/mod.ts";
import { loadModel } from "../models/load.ts";
import { profileGeneration } from "../models/profile/generation.ts";

const [dir] = Deno.args;
version(); // loads libtorch first, so the baseline includes its code and allocator
const before = memory.stats().allocated;
const t0 = performance.now();
using model = loadModel(dir);
const loadS = (performance.now() - t0) / 1000;
const loaded = memory.stats();
const p = profileGeneration(model, { batch: 1, promptTokens: 32, newTokens: 64, kvCache: true }, {
  warmup: 1,
  repeats: 3,
});
console.log(JSON.stringify({
  rssBefore: before,
  rssLoaded: loaded.allocated,
  peakLoad: loaded.peak,
  weightBytes: model.weightBytes(),
  loadS,
  decodeTps: p.decodeTps,
  prefillTps: p.prefillTps,
}));
