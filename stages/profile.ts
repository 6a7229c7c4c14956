// The `profile` stage: prefill vs decode, time to first token, latency percentiles, memory,
// over a grid of batch sizes, prompt lengths, output lengths and KV cache on/off; optionally a
// dynamic-batching replay of a synthetic request trace.
import { z } from "zod";
import { defineStage } from "../engine/mod.ts";
import { profileGeneration } from "../models/profile/generation.ts";
import { simulateDynamicBatching } from "../models/profile/dynamic_batching.ts";
import { openModel } from "./model_input.ts";
import { startPowerSampler } from "../models/profile/power.ts";

const list = z.union([z.number().int().positive(), z.array(z.number().int().positive()).min(1)]);
const range = z.tuple([z.number().int().positive(), z.number().int().positive()]);

/** The profile stage's params. */
export const profileParams = z.object({
  batch: list.default([1]),
  promptTokens: list.default([32]),
  newTokens: list.default([16]),
  /** true: reuse keys/values; false: recompute the prefix every step; both: [true, false]. */
  kvCache: z.union([z.boolean(), z.array(z.boolean()).min(1)]).default(true),
  warmup: z.number().int().min(0).default(1),
  repeats: z.number().int().min(1).default(3),
  seed: z.number().int().default(0),
  device: z.string().default("cpu"),
  /** A dynamic-batching replay over a seeded Poisson request trace. */
  dynamic: z.object({
    requests: z.number().int().positive().default(32),
    ratePerS: z.number().positive().default(20),
    promptTokens: range.default([16, 64]),
    outputTokens: range.default([8, 32]),
    maxBatch: z.number().int().positive().default(8),
    maxWaitMs: z.number().min(0).default(20),
    seed: z.number().int().default(0),
  }).strict().optional(),
}).strict();

const asList = <T>(x: T | T[]): T[] => (Array.isArray(x) ? x : [x]);

/** Profiles a model: `profile(q, { batch: [1, 8], promptTokens: [128, 512], newTokens: 64 })`. */
export const profile = defineStage({
  kind: "profile",
  inputs: ["model"],
  // Timings taken while other stages share the cores are not worth recording.
  exclusive: true,
  params: profileParams,
  run: async (ctx) => {
    const p = ctx.params;
    using model = openModel(ctx.inputs.model, { device: p.device });
    const gpu = model.device.startsWith("cuda") ? Number(model.device.split(":")[1] ?? 0) : null;
    const weightBytes = model.weightBytes();
    const grid = asList(p.batch).flatMap((batch) =>
      asList(p.promptTokens).flatMap((promptTokens) =>
        asList(p.newTokens).flatMap((newTokens) =>
          asList(p.kvCache).map((kvCache) => ({ batch, promptTokens, newTokens, kvCache }))
        )
      )
    );
    const total = grid.length + (p.dynamic ? 1 : 0);
    for (const [i, c] of grid.entries()) {
      ctx.signal.throwIfAborted();
      ctx.progress(
        i,
        total,
        `b${c.batch} p${c.promptTokens} n${c.newTokens}${c.kvCache ? "" : " no-kv"}`,
      );
      // GPU power is sampled while the configuration runs; on the CPU energy stays absent.
      const sampler = gpu === null ? null : startPowerSampler(gpu);
      const r = profileGeneration(model, c, { warmup: p.warmup, repeats: p.repeats, seed: p.seed });
      const watts = sampler ? await sampler.stop() : null;
      ctx.record("profiles", {
        batch: r.batch,
        prompt_tokens: r.promptTokens,
        new_tokens: r.newTokens,
        kv_cache: r.kvCache,
        repeats: r.repeats,
        ttft_ms: r.ttftMs,
        ttft_min_ms: r.ttftMinMs,
        ttft_max_ms: r.ttftMaxMs,
        prefill_tps: r.prefillTps,
        decode_tps: r.decodeTps,
        decode_tps_min: r.decodeTpsMin,
        decode_tps_max: r.decodeTpsMax,
        latency_p50_ms: r.latencyP50Ms,
        latency_p95_ms: r.latencyP95Ms,
        latency_p99_ms: r.latencyP99Ms,
        e2e_ms: r.e2eMs,
        peak_mem_bytes: r.peakMemBytes,
        peak_reserved_bytes: r.peakReservedBytes,
        memory_source: r.memorySource,
        weight_bytes: weightBytes,
        device: model.device,
        power_w: watts,
        energy_j_per_token: watts === null
          ? null
          : (watts * r.e2eMs / 1000) / (c.batch * c.newTokens),
      });
    }
    if (p.dynamic) {
      ctx.progress(grid.length, total, "dynamic batching replay");
      const d = simulateDynamicBatching(model, p.dynamic);
      for (const r of d.requests) {
        ctx.record("batching_requests", {
          request: r.id,
          arrival_ms: r.arrivalMs,
          prompt_tokens: r.promptTokens,
          output_tokens: r.outputTokens,
          batch: r.batch,
          queue_ms: r.queueMs,
          ttft_ms: r.ttftMs,
          latency_ms: r.latencyMs,
        });
      }
      ctx.metric("dynamic_throughput_tps", d.throughputTps, "tokens/s");
      ctx.metric("dynamic_mean_batch", d.meanBatch);
      ctx.metric("dynamic_latency_p50_ms", d.latencyP50Ms, "ms");
      ctx.metric("dynamic_latency_p95_ms", d.latencyP95Ms, "ms");
      ctx.metric("dynamic_latency_p99_ms", d.latencyP99Ms, "ms");
      ctx.metric("dynamic_ttft_p50_ms", d.ttftP50Ms, "ms");
      ctx.metric("dynamic_ttft_p95_ms", d.ttftP95Ms, "ms");
    }
    ctx.metric("weight_bytes", weightBytes, "bytes");
    ctx.progress(total, total);
  },
});
