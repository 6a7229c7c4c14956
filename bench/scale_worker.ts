// One measurement of `deno task bench scale`, in a fresh process so that one scheme's freed
// memory, page cache warmth or allocator state does not colour the next, and so that the
// peak RSS (VmHWM) is this measurement's alone. Progress goes to stderr; the last stdout line
// is the JSON result.
//
//   scale_worker.ts scheme DIR SCHEME [--new-tokens N] [--repeats R]
//   scale_worker.ts load DIR SCHEME          (the 8B-shaped bf16 checkpoint into a scheme)
//   scale_worker.ts train DIR METHOD [--steps N] [--seq T] [--r R]
import { parseArgs } from "node:util";
import * as torch from "../ffi/mod.ts";
import type { LlamaModel } from "../models/llama.ts";
import { loadIntoScheme, loadModel } from "../models/load.ts";
import { profileGeneration } from "../models/profile/generation.ts";
import {
  type Example,
  type Method,
  prepareMethod,
  seededRandom,
  train,
} from "../models/train/mod.ts";

/** Figures of one scheme (`scheme` mode). */
export interface SchemeFigures {
  scheme: string;
  threads: number;
  loadS: number;
  quantizeS: number;
  weightBytes: number;
  prefill128Tps: number;
  prefill512Tps: number;
  decodeB1Tps: number;
  decodeB8Tps: number;
  peakRssBytes: number;
}

/** Figures of loading a checkpoint into a scheme (`load` mode). */
export interface LoadFigures {
  scheme: string;
  seconds: number;
  weightBytes: number;
  /** VmHWM of the whole process: the load's peak (the generate after it needs far less). */
  peakRssBytes: number;
  baselineRssBytes: number;
  generateTps: number;
  generated: number;
  /** How the model was loaded: "streamed into the scheme" (packed as read) or "dense" (fp32). */
  path: string;
}

/** Figures of a few training steps (`train` mode). */
export interface TrainFigures {
  method: string;
  tokensPerS: number;
  stepMs: number;
  peakRssBytes: number;
  baselineRssBytes: number;
  /** Frozen base weights as held during training. */
  weightsBytes: number;
  /** Adapter weights + their gradients + AdamW moments. */
  adaptersOptimizerBytes: number;
  /** Peak minus everything else (estimate on the CPU, allocator slack included). */
  activationsBytes: number;
  trainable: number;
  loadPeakRssBytes: number;
}

const log = (s: string) => console.error(`    ${s}`);

/**
 * Opens `dir` with its linear weights in `scheme`: read straight into the scheme (each weight
 * packed as it is read, so the 8B-shaped checkpoint loads within 8 GB). `quantizeS` is the
 * packing time inside the load, `loadS` the rest (reading, converting); fp32 loads dense.
 */
function openInScheme(dir: string, scheme: string, dtype: "float32" | "bfloat16") {
  if (scheme === "fp32") {
    const t0 = performance.now();
    const model = loadModel(dir, { dtype, tokenizer: false });
    return { model, loadS: (performance.now() - t0) / 1000, quantizeS: 0, path: "dense" };
  }
  const { model, report, seconds } = loadIntoScheme(dir, {
    quantize: scheme,
    dtype,
    tokenizer: false,
    measureError: false, // the bench reports speed and memory, not the error
  });
  return {
    model,
    loadS: seconds - report.seconds,
    quantizeS: report.seconds,
    path: "streamed into the scheme",
  };
}

// The best of `n` single timed runs: on a shared 2-core machine the fastest run is the one
// least disturbed by other work.
function bestRun(
  model: LlamaModel,
  c: { batch: number; promptTokens: number; newTokens: number },
  n: number,
  warmup: number,
) {
  let prefill = 0, decode = 0;
  for (let i = 0; i < n; i++) {
    const p = profileGeneration(model, { ...c, kvCache: true }, {
      warmup: i === 0 ? warmup : 0,
      repeats: 1,
    });
    prefill = Math.max(prefill, p.prefillTps);
    if (Number.isFinite(p.decodeTps)) decode = Math.max(decode, p.decodeTps);
  }
  return { prefill, decode };
}

function measureScheme(dir: string, scheme: string, newTokens: number, repeats: number) {
  torch.version(); // loads libtorch (and applies LAB_THREADS) before anything is timed
  const { model, loadS, quantizeS } = openInScheme(dir, scheme, "float32");
  using _m = model;
  log(`${scheme}: loaded in ${loadS.toFixed(1)} s, quantized in ${quantizeS.toFixed(1)} s`);
  const p128 = bestRun(model, { batch: 1, promptTokens: 128, newTokens }, repeats, 1);
  log(
    `${scheme}: prefill 128 ${p128.prefill.toFixed(1)} tok/s, decode b1 ${p128.decode.toFixed(2)}`,
  );
  const p512 = bestRun(model, { batch: 1, promptTokens: 512, newTokens: 1 }, repeats, 0);
  log(`${scheme}: prefill 512 ${p512.prefill.toFixed(1)} tok/s`);
  // Batch 8 decodes after a short prompt: its prefill (8 rows) would otherwise dominate.
  const b8 = bestRun(model, { batch: 8, promptTokens: 32, newTokens }, repeats, 0);
  log(`${scheme}: decode b8 ${b8.decode.toFixed(2)} tok/s`);
  const figures: SchemeFigures = {
    scheme,
    threads: torch.getNumThreads(),
    loadS,
    quantizeS,
    weightBytes: model.weightBytes(),
    prefill128Tps: p128.prefill,
    prefill512Tps: p512.prefill,
    decodeB1Tps: p128.decode,
    decodeB8Tps: b8.decode,
    peakRssBytes: torch.memory.stats().peak,
  };
  return figures;
}

function measureLoad(dir: string, scheme: string): LoadFigures {
  torch.version();
  const baselineRssBytes = torch.memory.stats().allocated;
  const t0 = performance.now();
  const { model, path } = openInScheme(dir, scheme, "bfloat16");
  using _m = model;
  const seconds = (performance.now() - t0) / 1000;
  const peakRssBytes = torch.memory.stats().peak;
  log(
    `loaded into ${scheme} in ${seconds.toFixed(1)} s, peak RSS ${
      (peakRssBytes / 1e9).toFixed(2)
    } GB`,
  );
  const prompt = Array.from({ length: 16 }, (_, i) => 3 + i * 97);
  const r = model.generate([prompt], { maxNewTokens: 8, stopTokens: [], addSpecialTokens: false });
  const generateTps = r.steps > 1 ? (r.steps - 1) / (r.decodeMs / 1000) : NaN;
  log(`generated ${r.steps} tokens (${generateTps.toFixed(2)} tok/s decode)`);
  return {
    scheme,
    seconds,
    weightBytes: model.weightBytes(),
    peakRssBytes,
    baselineRssBytes,
    generateTps,
    generated: r.steps,
    path,
  };
}

// Repeating motifs give the loss something to learn, as bench/train.ts does.
function syntheticExamples(n: number, seq: number, vocab: number): Example[] {
  const rng = seededRandom(1);
  return Array.from({ length: n }, () => {
    const motif = Array.from({ length: 8 }, () => 3 + Math.floor(rng() * (vocab - 3)));
    const ids = Array.from({ length: seq }, (_, t) => motif[t % 8]);
    return { inputIds: ids, labels: ids };
  });
}

/** Steps left out of the step-time median: the first pays allocations and page faults. */
const TRAIN_WARMUP = 1;

async function measureTrain(dir: string, method: Method, steps: number, seq: number, r: number) {
  torch.version();
  const baselineRssBytes = torch.memory.stats().allocated;
  using model = loadModel(dir, { tokenizer: false });
  const p = prepareMethod(model, method, {
    r,
    alpha: 2 * r,
    targetModules: "all-linear",
    seed: 0,
  });
  const loadPeakRssBytes = torch.memory.stats().peak;
  log(`${method}: ${p.adapted.length} modules adapted, ${p.quantized.length} quantized`);
  const res = await train(model, p.trainable, {
    train: syntheticExamples(16, seq, model.config.vocabSize),
    val: [],
  }, {
    steps: steps + TRAIN_WARMUP,
    batchSize: 1,
    gradAccum: 1,
    lr: 1e-4,
    schedule: "constant",
    warmupSteps: 0,
    weightDecay: 0,
    maxGradNorm: 1,
    seed: 0,
    evalEvery: 0,
    gradientCheckpointing: true,
  }, { onProgress: (_d, _t, msg) => log(`${method}: ${msg}`) });
  if (res.error) throw new Error(res.error);
  const ms = res.steps.slice(TRAIN_WARMUP).map((s) => 1000 * s.tokens / s.tokens_per_s).sort((
    a,
    b,
  ) => a - b);
  const stepMs = ms[Math.floor((ms.length - 1) / 2)];
  const m = res.memory;
  const trainableBytes = m.gradients.bytes; // gradients have the adapters' size and dtype
  const figures: TrainFigures = {
    method,
    tokensPerS: seq / (stepMs / 1000),
    stepMs,
    peakRssBytes: m.peak.bytes,
    baselineRssBytes,
    weightsBytes: m.weights.bytes - trainableBytes,
    adaptersOptimizerBytes: trainableBytes + m.gradients.bytes + m.optimizer.bytes,
    activationsBytes: m.activations.bytes,
    trainable: res.trainableParams,
    loadPeakRssBytes,
  };
  return figures;
}

if (import.meta.main) {
  const { values, positionals } = parseArgs({
    args: Deno.args,
    allowPositionals: true,
    options: {
      "new-tokens": { type: "string", default: "32" },
      repeats: { type: "string", default: "2" },
      steps: { type: "string", default: "3" },
      seq: { type: "string", default: "256" },
      r: { type: "string", default: "16" },
    },
  });
  const [mode, dir, what] = positionals;
  let out: unknown;
  if (mode === "scheme") {
    out = measureScheme(dir, what, Number(values["new-tokens"]), Number(values.repeats));
  } else if (mode === "load") {
    out = measureLoad(dir, what);
  } else if (mode === "train") {
    out = await measureTrain(
      dir,
      what as Method,
      Number(values.steps),
      Number(values.seq),
      Number(values.r),
    );
  } else {
    console.error(`scale_worker: unknown mode '${mode}' (scheme, load or train)`);
    Deno.exit(2);
  }
  console.log(JSON.stringify(out));
}
