// Timing of generation: prefill vs decode, time to first token, per-token latency, memory.
import { cuda, memory } from "../../ffi/mod.ts";
import type { LlamaModel } from "../llama.ts";
import { checkPositions } from "../limits.ts";
import { quantile, rng, summary } from "./stats.ts";

/** One profiled configuration. */
export interface GenerationCase {
  batch: number;
  promptTokens: number;
  newTokens: number;
  /** Reuse keys/values (true) or recompute the whole prefix every step (false). */
  kvCache: boolean;
}

/** Figures of one configuration: medians over repeats, with min and max where useful. */
export interface GenerationProfile extends GenerationCase {
  repeats: number;
  ttftMs: number;
  ttftMinMs: number;
  ttftMaxMs: number;
  prefillTps: number;
  decodeTps: number;
  decodeTpsMin: number;
  decodeTpsMax: number;
  /** Per-token decode latency percentiles (ms per step, whole batch). */
  latencyP50Ms: number;
  latencyP95Ms: number;
  latencyP99Ms: number;
  /** Prompt in, all tokens out. */
  e2eMs: number;
  /** Peak memory during the measured runs (CUDA allocator, or process RSS high-water mark). */
  peakMemBytes: number;
  peakReservedBytes: number;
  memorySource: string;
}

/** Prompt rows of random ids (avoiding the special ids 0..2), seeded. */
export function syntheticPrompts(model: LlamaModel, batch: number, length: number, seed: number) {
  const r = rng(seed);
  const V = model.config.vocabSize;
  return Array.from(
    { length: batch },
    () => Array.from({ length }, () => 3 + Math.floor(r() * (V - 3))),
  );
}

interface Run {
  ttft: number;
  decodeMs: number;
  steps: number[];
  e2e: number;
}

function runOnce(model: LlamaModel, c: GenerationCase, prompts: number[][]): Run {
  const stamps: number[] = [];
  const t0 = performance.now();
  const r = model.generate(prompts, {
    maxNewTokens: c.newTokens,
    stopTokens: [],
    useCache: c.kvCache,
    addSpecialTokens: false,
    onToken: () => {
      cuda.synchronize();
      stamps.push(performance.now());
    },
  });
  const e2e = performance.now() - t0;
  const steps = stamps.slice(1).map((t, i) => t - stamps[i]);
  return { ttft: r.prefillMs, decodeMs: r.decodeMs, steps, e2e };
}

/** Profiles one configuration: `warmup` untimed runs, then `repeats` timed ones. */
export function profileGeneration(
  model: LlamaModel,
  c: GenerationCase,
  opts: { warmup?: number; repeats?: number; seed?: number } = {},
): GenerationProfile {
  checkPositions(
    model,
    c.promptTokens + c.newTokens,
    `profile: a prompt of ${c.promptTokens} tokens plus ${c.newTokens} new ones`,
    "lower promptTokens or newTokens",
  );
  const prompts = syntheticPrompts(model, c.batch, c.promptTokens, opts.seed ?? 0);
  for (let i = 0; i < (opts.warmup ?? 1); i++) runOnce(model, c, prompts);
  memory.resetPeak(model.device);
  const runs: Run[] = [];
  for (let i = 0; i < Math.max(1, opts.repeats ?? 3); i++) runs.push(runOnce(model, c, prompts));
  const mem = memory.stats(model.device);
  const ttft = summary(runs.map((r) => r.ttft));
  const decodeSteps = c.newTokens - 1;
  const dtps = runs.map((
    r,
  ) => (decodeSteps > 0 ? (c.batch * decodeSteps) / (r.decodeMs / 1000) : NaN));
  const dsum = summary(dtps);
  const lat = runs.flatMap((r) => r.steps);
  return {
    ...c,
    repeats: runs.length,
    ttftMs: ttft.median,
    ttftMinMs: ttft.min,
    ttftMaxMs: ttft.max,
    prefillTps: (c.batch * c.promptTokens) / (ttft.median / 1000),
    decodeTps: dsum.median,
    decodeTpsMin: dsum.min,
    decodeTpsMax: dsum.max,
    latencyP50Ms: quantile(lat, 0.5),
    latencyP95Ms: quantile(lat, 0.95),
    latencyP99Ms: quantile(lat, 0.99),
    e2eMs: summary(runs.map((r) => r.e2e)).median,
    peakMemBytes: mem.peak,
    peakReservedBytes: mem.peakReserved,
    memorySource: mem.source,
  };
}
