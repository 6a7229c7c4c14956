// The `serve_bench` stage: load-tests an OpenAI-compatible endpoint over HTTP at a sweep of
// request rates (TTFT, TPOT, ITL, E2E, throughput, goodput), either a URL the user runs (vLLM,
// TGI, llama-server, Ollama, …) or the lab's own server started over the input model.
import { z } from "zod";
import { defineStage, type StageContext } from "../engine/mod.ts";
import { LabError } from "../errors.ts";
import { loadTokenizer } from "../models/tokenizer.ts";
import { absPath, modelLabel, modelSource } from "./model_input.ts";
import { datasetRequests, type LengthSpec, syntheticRequests } from "../serve/bench_prompts.ts";
import type { EndpointOptions } from "../serve/load_client.ts";
import { runAtRate, summarize, type TimedResult } from "../serve/load_run.ts";
import { startServerProcess } from "../serve/server_process.ts";

const length = z.union([
  z.number().int().positive(),
  z.tuple([z.number().int().positive(), z.number().int().positive()]).refine(
    ([a, b]) => a <= b,
    "a range [min, max] needs min ≤ max",
  ),
]);

/** The serve_bench stage's params. */
export const serveBenchParams = z.object({
  /** An endpoint to test; absent: serve the input model with `lab serve-model`. */
  url: z.string().url().optional(),
  /** The model id to request (default: the first id /v1/models lists). */
  model: z.string().optional(),
  endpoint: z.enum(["completions", "chat"]).default("completions"),
  /** Requests per second, Poisson arrivals; "inf" sends every request at once. */
  rates: z.array(z.union([z.number().positive(), z.literal("inf")])).min(1).default([
    1,
    2,
    4,
    "inf",
  ]),
  /** Requests per rate. */
  requests: z.number().int().positive().default(32),
  promptTokens: length.default(32),
  outputTokens: length.default(32),
  /** A JSONL file of `{ "prompt": …, "output_tokens"?: … }` instead of synthetic prompts. */
  dataset: z.string().optional(),
  /** A tokenizer.json folder to size prompts and count tokens when testing a URL. */
  tokenizer: z.string().optional(),
  slo: z.object({ ttftMs: z.number().positive(), tpotMs: z.number().positive() }).strict()
    .default({ ttftMs: 1000, tpotMs: 100 }),
  seed: z.number().int().default(0),
  maxConcurrency: z.number().int().positive().optional(),
  /** Ask for exactly outputTokens (vLLM's ignore_eos; servers without it ignore or refuse it). */
  ignoreEos: z.boolean().default(true),
  timeouts: z.object({
    connectS: z.number().positive().default(30),
    firstTokenS: z.number().positive().default(60),
    totalS: z.number().positive().default(300),
  }).strict().default({ connectS: 30, firstTokenS: 60, totalS: 300 }),
  /** The lab server's batching limits (with a model input). */
  server: z.object({
    maxBatch: z.number().int().positive().default(8),
    maxWaiting: z.number().int().min(0).default(1024),
    maxContext: z.number().int().positive().optional(),
  }).strict().default({ maxBatch: 8, maxWaiting: 1024 }),
}).strict();

type Params = z.output<typeof serveBenchParams>;

/** Load-tests a server: `serve_bench(q, { rates: [1, 4, "inf"] })` or `serve_bench({ url })`. */
export const serveBench = defineStage({
  kind: "serve_bench",
  inputs: ["model?"],
  // Latencies measured while other stages share the cores are not worth recording.
  exclusive: true,
  params: serveBenchParams,
  run: async (ctx) => {
    const p = ctx.params;
    const input = ctx.inputs.model;
    if (!p.url && !input) {
      throw new LabError("serve_bench: give `url` (an endpoint to test) or a model input to serve");
    }
    if (p.url && input) {
      throw new LabError("serve_bench: give either `url` or a model input, not both");
    }
    const dir = input ? modelSource(input).dir : null;
    const tokDir = p.tokenizer ? absPath(p.tokenizer, ctx.cwd) : dir;
    const tokenizer = tokDir ? loadTokenizer(tokDir) : null;
    const count = tokenizer
      ? (s: string) => tokenizer.encode(s, { addSpecialTokens: false }).length
      : undefined;
    const server = dir
      ? await startServerProcess({
        modelDir: dir,
        ...p.server,
        log: (l) => ctx.log(`server: ${l}`),
      })
      : null;
    try {
      const url = server?.url ?? p.url!;
      const model = p.model ?? server?.modelName ?? await firstModel(url);
      const endpoint: EndpointOptions = {
        url,
        model,
        endpoint: p.endpoint,
        ignoreEos: p.ignoreEos,
        countTokens: count,
        timeouts: {
          connectMs: p.timeouts.connectS * 1000,
          firstTokenMs: p.timeouts.firstTokenS * 1000,
          totalMs: p.timeouts.totalS * 1000,
        },
      };
      const label = input ? modelLabel(input) : model;
      const failed = await runRates(ctx, p, endpoint, count, label);
      if (failed.every(Boolean)) {
        throw new LabError(
          `serve_bench: every request to ${url} failed (see serving_requests.error)`,
        );
      }
      return { url: p.url ?? null, model, label };
    } finally {
      await server?.stop();
    }
  },
});

/** Every rate in turn; returns, per rate, whether all its requests failed. */
async function runRates(
  ctx: StageContext<Params, unknown>,
  p: Params,
  endpoint: EndpointOptions,
  count: ((s: string) => number) | undefined,
  label: string,
): Promise<boolean[]> {
  const requests = p.dataset
    ? datasetRequests(absPath(p.dataset, ctx.cwd), p.requests, p.outputTokens as LengthSpec, p.seed)
    : syntheticRequests(
      p.requests,
      p.promptTokens as LengthSpec,
      p.outputTokens as LengthSpec,
      p.seed,
      count,
    );
  const out: boolean[] = [];
  for (const [i, rate] of p.rates.entries()) {
    ctx.signal.throwIfAborted();
    ctx.progress(i, p.rates.length, `rate ${rate}`);
    const perS = rate === "inf" ? Infinity : rate;
    const { results, durationS } = await runAtRate(endpoint, requests, perS, {
      seed: p.seed + i,
      maxConcurrency: p.maxConcurrency,
      signal: ctx.signal,
    });
    for (const r of results) {
      ctx.record("serving_requests", requestRow(r, rate, requests[r.index].prompt, count));
    }
    const s = summarize(results, durationS, p.slo);
    ctx.record("serving_summary", {
      rate: String(rate),
      rate_per_s: rate === "inf" ? null : rate,
      model: label,
      endpoint: endpoint.endpoint,
      max_concurrency: p.maxConcurrency ?? null,
      slo_ttft_ms: p.slo.ttftMs,
      slo_tpot_ms: p.slo.tpotMs,
      ...Object.fromEntries(Object.entries(s).map(([k, v]) => [snake(k), v])),
    });
    ctx.log(
      `rate ${rate}: ${s.completed}/${s.requests} ok, ${s.requestsPerS.toFixed(2)} req/s, ` +
        `${s.outputTokensPerS.toFixed(1)} tok/s, TTFT p99 ${s.ttft_p99_ms?.toFixed(1)} ms`,
    );
    out.push(s.completed === 0);
  }
  ctx.progress(p.rates.length, p.rates.length);
  return out;
}

const snake = (k: string) => k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);

function requestRow(
  r: TimedResult,
  rate: number | "inf",
  prompt: string,
  count: ((s: string) => number) | undefined,
): Record<string, unknown> {
  return {
    rate: String(rate),
    request: r.index,
    sent_ms: r.sentMs,
    status: r.status,
    ok: r.ok,
    error: r.error,
    ttft_ms: r.ttftMs,
    tpot_ms: r.tpotMs,
    e2e_ms: r.e2eMs,
    itl_ms: r.itlMs,
    prompt_tokens: r.promptTokens ?? (count ? count(prompt) : null),
    output_tokens: r.outputTokens,
    token_source: r.tokenSource,
  };
}

/** The first model id an endpoint lists, or an error saying why there is none. */
async function firstModel(url: string): Promise<string> {
  const root = url.replace(/\/+$/, "").replace(/\/v1$/, "");
  try {
    const res = await fetch(`${root}/v1/models`, { signal: AbortSignal.timeout(10_000) });
    const body = await res.json();
    const id = body?.data?.[0]?.id;
    if (typeof id === "string") return id;
    throw new Error(`GET /v1/models answered ${res.status} without a model id`);
  } catch (e) {
    throw new LabError(
      `serve_bench: cannot tell which model ${url} serves (${(e as Error).message}); set \`model\``,
    );
  }
}
