// A load test at one request rate: seeded Poisson arrivals (or all at once for "inf"), an
// optional cap on requests in flight, and the per-rate summary (throughput, goodput under SLOs,
// latency percentiles) the serving tables hold.
import { quantile, rng } from "../models/profile/stats.ts";
import {
  type BenchRequest,
  type EndpointOptions,
  pendingResult,
  type RequestResult,
  sendRequest,
} from "./load_client.ts";

/** A request's outcome with when it was sent. */
export interface TimedResult extends RequestResult {
  index: number;
  /** Milliseconds after the first send. */
  sentMs: number;
}

/** Latency objectives a request must meet to count towards goodput. */
export interface Slo {
  ttftMs: number;
  tpotMs: number;
}

/** Send times (ms from the start) for `n` requests at `rate` per second, seeded. */
export function arrivalTimes(n: number, rate: number, seed: number): number[] {
  if (!Number.isFinite(rate)) return new Array(n).fill(0);
  const r = rng(seed);
  let t = 0;
  return Array.from({ length: n }, (_, i) => {
    if (i > 0) t += (-Math.log(1 - r()) / rate) * 1000;
    return t;
  });
}

/** Runs `requests` against the endpoint at `rate` per second (Infinity: all at once). */
export async function runAtRate(
  o: EndpointOptions,
  requests: readonly BenchRequest[],
  rate: number,
  opts: { seed: number; maxConcurrency?: number; signal?: AbortSignal },
): Promise<{ results: TimedResult[]; durationS: number }> {
  const times = arrivalTimes(requests.length, rate, opts.seed);
  let inFlight = 0;
  const waiters: (() => void)[] = [];
  const t0 = performance.now();
  const one = async (i: number): Promise<TimedResult> => {
    const wait = times[i] - (performance.now() - t0);
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    while (opts.maxConcurrency && inFlight >= opts.maxConcurrency) {
      await new Promise<void>((r) => waiters.push(r));
    }
    inFlight++;
    const sentMs = performance.now() - t0;
    try {
      if (opts.signal?.aborted) return cancelled(i, sentMs);
      return { ...(await sendRequest(o, requests[i])), index: i, sentMs };
    } finally {
      inFlight--;
      waiters.shift()?.();
    }
  };
  const results = await Promise.all(requests.map((_, i) => one(i)));
  const ends = results.map((r) => r.sentMs + (r.e2eMs ?? 0));
  return { results, durationS: Math.max(1e-9, Math.max(...ends)) / 1000 };
}

function cancelled(index: number, sentMs: number): TimedResult {
  return { index, sentMs, ...pendingResult("cancelled: the run was interrupted") };
}

/** One rate's figures. */
export interface RateSummary {
  requests: number;
  completed: number;
  failed: number;
  durationS: number;
  requestsPerS: number;
  outputTokensPerS: number;
  /** Completed requests per second that met both SLOs. */
  goodputPerS: number;
  /** Share of all requests that completed within both SLOs. */
  sloAttainment: number;
  [percentile: string]: number | null;
}

const pct = (xs: number[], q: number) => (xs.length ? quantile(xs, q) : null);

/** Throughput, goodput and p50/p90/p99 of TTFT, TPOT, ITL and E2E over `results`. */
export function summarize(
  results: readonly TimedResult[],
  durationS: number,
  slo: Slo,
): RateSummary {
  const ok = results.filter((r) => r.ok);
  const good = ok.filter((r) =>
    (r.ttftMs ?? Infinity) <= slo.ttftMs && (r.tpotMs ?? 0) <= slo.tpotMs
  );
  const out: RateSummary = {
    requests: results.length,
    completed: ok.length,
    failed: results.length - ok.length,
    durationS,
    requestsPerS: ok.length / durationS,
    outputTokensPerS: ok.reduce((s, r) => s + (r.outputTokens ?? 0), 0) / durationS,
    goodputPerS: good.length / durationS,
    sloAttainment: results.length ? good.length / results.length : 0,
  };
  const series: [string, number[]][] = [
    ["ttft", ok.map((r) => r.ttftMs!)],
    ["tpot", ok.filter((r) => r.tpotMs !== null).map((r) => r.tpotMs!)],
    ["itl", ok.flatMap((r) => r.itlMs)],
    ["e2e", ok.map((r) => r.e2eMs!)],
  ];
  for (const [name, xs] of series) {
    out[`${name}_mean_ms`] = xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : null;
    for (const q of [50, 90, 99]) out[`${name}_p${q}_ms`] = pct(xs, q / 100);
  }
  return out;
}
