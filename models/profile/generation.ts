// Timing of generation: prefill vs decode, time to first token, per-token latency, memory.
import { cuda, memory } from "../../ffi/mod.ts";
import type { LlamaModel } from "../llama.ts";
import { checkPositions } from "../limits.ts";
import { bootstrapMedian, type MedianCI, quantile, rng, summary } from "./stats.ts";

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
  /** 95% bootstrap intervals of the medians (TTFT, prefill and decode tokens/s, step latency). */
  ci: {
    ttftMs: MedianCI;
    prefillTps: MedianCI;
    decodeTps: MedianCI;
    latencyMs: MedianCI;
  };
  /** Every repeat's raw figures, in the order taken; latencies hold each decode step. */
  samples: {
    ttftMs: number[];
    prefillTps: number[];
    decodeTps: number[];
    e2eMs: number[];
    latencyMs: number[][];
  };
}

/** Prompt rows of random ids (avoiding the special ids 0..2), seeded. */
export function syntheticPrompts(vocabSize: number, batch: number, length: number, seed: number) {
  const r = rng(seed);
  const V = vocabSize;
  return Array.from(
    { length: batch },
    () => Array.from({ length }, () => 3 + Math.floor(r() * (V - 3))),
  );
}

/** One timed run's figures (ms): first token, the decode steps, prompt-in to last-token-out. */
export interface Run {
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
  opts: ProfileOptions = {},
): GenerationProfile {
  return profileGenerations(model, [c], opts)[0];
}

/** Options of profileGenerations(). */
export interface ProfileOptions {
  warmup?: number;
  repeats?: number;
  seed?: number;
  /** Called before each timed run (case index, repeat). */
  onRun?: (caseIndex: number, repeat: number) => void;
}

/**
 * Profiles several configurations: each warmed up `warmup` times, then `repeats` rounds that
 * time every configuration once in turn. Alternating spreads a slow spell of a shared machine
 * over all configurations instead of landing it on one, so their comparison stays fair.
 */
export function profileGenerations(
  model: LlamaModel,
  cases: readonly GenerationCase[],
  opts: ProfileOptions = {},
): GenerationProfile[] {
  for (const c of cases) {
    checkPositions(
      model,
      c.promptTokens + c.newTokens,
      `profile: a prompt of ${c.promptTokens} tokens plus ${c.newTokens} new ones`,
      "lower promptTokens or newTokens",
    );
  }
  const prompts = cases.map((c) =>
    syntheticPrompts(model.config.vocabSize, c.batch, c.promptTokens, opts.seed ?? 0)
  );
  return alternateRounds(cases, (i) => runOnce(model, cases[i], prompts[i]), model.device, opts);
}

/**
 * The schedule every engine's profile runs: each case warmed up `warmup` times, then `repeats`
 * rounds that time every case once in turn (`runCase(i)`), each case keeping its own memory peak.
 */
export function alternateRounds(
  cases: readonly GenerationCase[],
  runCase: (caseIndex: number) => Run,
  device: string,
  opts: ProfileOptions,
): GenerationProfile[] {
  for (const i of cases.keys()) {
    for (let w = 0; w < (opts.warmup ?? 1); w++) runCase(i);
  }
  const repeats = Math.max(1, opts.repeats ?? 3);
  const runs: Run[][] = cases.map(() => []);
  const peaks = cases.map(() => ({ peak: 0, reserved: 0, source: "" }));
  for (let r = 0; r < repeats; r++) {
    for (const i of cases.keys()) {
      opts.onRun?.(i, r);
      // The high-water mark restarts per run, so each configuration keeps its own peak.
      memory.resetPeak(device);
      runs[i].push(runCase(i));
      const mem = memory.stats(device);
      peaks[i] = {
        peak: Math.max(peaks[i].peak, mem.peak),
        reserved: Math.max(peaks[i].reserved, mem.peakReserved),
        source: mem.source,
      };
    }
  }
  return cases.map((c, i) => summarize(c, runs[i], peaks[i]));
}

/** A configuration's runs summarized: medians, percentiles, bootstrap intervals, samples. */
export function summarize(
  c: GenerationCase,
  runs: Run[],
  mem: { peak: number; reserved: number; source: string },
): GenerationProfile {
  const ttfts = runs.map((r) => r.ttft);
  const ttft = summary(ttfts);
  const decodeSteps = c.newTokens - 1;
  const dtps = runs.map((
    r,
  ) => (decodeSteps > 0 ? (c.batch * decodeSteps) / (r.decodeMs / 1000) : NaN));
  const ptps = ttfts.map((t) => (c.batch * c.promptTokens) / (t / 1000));
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
    peakReservedBytes: mem.reserved,
    memorySource: mem.source,
    ci: {
      ttftMs: bootstrapMedian(ttfts),
      prefillTps: bootstrapMedian(ptps),
      decodeTps: bootstrapMedian(dtps),
      latencyMs: bootstrapMedian(lat),
    },
    samples: {
      ttftMs: ttfts,
      prefillTps: ptps,
      decodeTps: dtps,
      e2eMs: runs.map((r) => r.e2e),
      latencyMs: runs.map((r) => r.steps),
    },
  };
}
