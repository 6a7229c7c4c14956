// A dynamic-batching server replayed over a synthetic request trace, in virtual time.
//
// Requests arrive by a seeded Poisson process. The batcher waits until it holds
// `maxBatch` requests or the oldest has waited `maxWaitMs`, then serves them as one
// batch (left-padded prompts, decoding until the longest output is done). Service
// times are measured on the real model; idle gaps between arrivals are skipped,
// so a long trace costs only its compute.
import type { LlamaModel } from "../llama.ts";
import { quantile, rng } from "./stats.ts";
import { syntheticPrompts } from "./generation.ts";

/** The trace and the batcher's limits. */
export interface TraceOptions {
  requests: number;
  /** Mean arrival rate, requests per second. */
  ratePerS: number;
  /** Prompt lengths drawn uniformly from [min, max]. */
  promptTokens: [number, number];
  /** Output lengths drawn uniformly from [min, max]. */
  outputTokens: [number, number];
  maxBatch: number;
  maxWaitMs: number;
  seed?: number;
}

/** Per-request outcome. */
export interface RequestOutcome {
  id: number;
  arrivalMs: number;
  promptTokens: number;
  outputTokens: number;
  batch: number;
  queueMs: number;
  ttftMs: number;
  latencyMs: number;
}

/** Aggregate figures of a replay. */
export interface DynamicBatchingResult {
  requests: RequestOutcome[];
  batches: number;
  meanBatch: number;
  /** Generated tokens per second of virtual time from first arrival to last completion. */
  throughputTps: number;
  latencyP50Ms: number;
  latencyP95Ms: number;
  latencyP99Ms: number;
  ttftP50Ms: number;
  ttftP95Ms: number;
}

interface Request {
  id: number;
  arrival: number;
  prompt: number[];
  output: number;
}

/** Builds the seeded trace. */
export function makeTrace(model: LlamaModel, o: TraceOptions): Request[] {
  const r = rng(o.seed ?? 0);
  const uni = ([a, b]: [number, number]) => a + Math.floor(r() * (b - a + 1));
  let t = 0;
  return Array.from({ length: o.requests }, (_, id) => {
    t += (-Math.log(1 - r()) / o.ratePerS) * 1000;
    const len = uni(o.promptTokens);
    return {
      id,
      arrival: t,
      prompt: syntheticPrompts(model.config.vocabSize, 1, len, (o.seed ?? 0) * 7919 + id)[0],
      output: uni(o.outputTokens),
    };
  });
}

/** Replays the trace through the batcher on `model`. */
export function simulateDynamicBatching(model: LlamaModel, o: TraceOptions): DynamicBatchingResult {
  if (o.maxBatch < 1 || o.maxWaitMs < 0 || o.ratePerS <= 0) {
    throw new RangeError("dynamic batching: need maxBatch >= 1, maxWaitMs >= 0, ratePerS > 0");
  }
  const trace = makeTrace(model, o);
  const outcomes: RequestOutcome[] = [];
  let clock = 0;
  let next = 0;
  let batches = 0;
  while (next < trace.length) {
    // The server is free at `clock`: the first waiting request opens a batch window.
    const first = trace[next];
    const open = Math.max(clock, first.arrival);
    const deadline = first.arrival + o.maxWaitMs;
    const group: Request[] = [];
    while (next < trace.length && group.length < o.maxBatch) {
      const req = trace[next];
      if (req.arrival > Math.max(open, deadline)) break;
      group.push(req);
      next++;
    }
    const start = group.length === o.maxBatch
      ? Math.max(open, group[group.length - 1].arrival)
      : Math.max(open, deadline);
    const maxOut = Math.max(...group.map((g) => g.output));
    const stamps: number[] = [];
    const t0 = performance.now();
    model.generate(group.map((g) => g.prompt), {
      maxNewTokens: maxOut,
      stopTokens: [],
      addSpecialTokens: false,
      onToken: () => stamps.push(performance.now() - t0),
    });
    batches++;
    for (const g of group) {
      outcomes.push({
        id: g.id,
        arrivalMs: g.arrival,
        promptTokens: g.prompt.length,
        outputTokens: g.output,
        batch: group.length,
        queueMs: start - g.arrival,
        ttftMs: start + stamps[0] - g.arrival,
        latencyMs: start + stamps[g.output - 1] - g.arrival,
      });
    }
    clock = start + stamps[stamps.length - 1];
  }
  const lat = outcomes.map((x) => x.latencyMs);
  const ttft = outcomes.map((x) => x.ttftMs);
  const span = clock - trace[0].arrival;
  const generated = trace.reduce((s, t) => s + t.output, 0);
  return {
    requests: outcomes,
    batches,
    meanBatch: trace.length / batches,
    throughputTps: generated / (span / 1000),
    latencyP50Ms: quantile(lat, 0.5),
    latencyP95Ms: quantile(lat, 0.95),
    latencyP99Ms: quantile(lat, 0.99),
    ttftP50Ms: quantile(ttft, 0.5),
    ttftP95Ms: quantile(ttft, 0.95),
  };
}
