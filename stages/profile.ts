// The `profile` stage: prefill vs decode, time to first token, latency percentiles, memory,
// over a grid of batch sizes, prompt lengths, output lengths and KV cache on/off; optionally a
// dynamic-batching replay of a synthetic request trace.
import { z } from "zod";
import { defineStage } from "../engine/mod.ts";
import {
  type GenerationCase,
  type GenerationProfile,
  profileGenerations,
} from "../models/profile/generation.ts";
import { watchConditions } from "../models/profile/conditions.ts";
import { simulateDynamicBatching } from "../models/profile/dynamic_batching.ts";
import { openModel } from "./model_input.ts";
import { startPowerSampler } from "../models/profile/power.ts";
import { engineOf } from "./llama_cpp.ts";
import { profileWithLlamaCpp } from "./llama_cpp_profile.ts";

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
  /** Timed runs per configuration, taken in alternating rounds over the grid. */
  repeats: z.number().int().min(1).default(5),
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

/** The profile stage's params, validated. */
export type ProfileParams = z.output<typeof profileParams>;

/** Every configuration the params name: batch × prompt × new tokens × KV cache. */
export function profileGrid(p: ProfileParams): GenerationCase[] {
  return asList(p.batch).flatMap((batch) =>
    asList(p.promptTokens).flatMap((promptTokens) =>
      asList(p.newTokens).flatMap((newTokens) =>
        asList(p.kvCache).map((kvCache) => ({ batch, promptTokens, newTokens, kvCache }))
      )
    )
  );
}

/** Profiles a model: `profile(q, { batch: [1, 8], promptTokens: [128, 512], newTokens: 64 })`. */
export const profile = defineStage({
  kind: "profile",
  inputs: ["model"],
  // Timings taken while other stages share the cores are not worth recording.
  exclusive: true,
  params: profileParams,
  run: async (ctx) => {
    const p = ctx.params;
    if (engineOf(ctx.inputs.model) === "llama.cpp") return profileWithLlamaCpp(ctx, p);
    using model = openModel(ctx.inputs.model, { device: p.device });
    const gpu = model.device.startsWith("cuda") ? Number(model.device.split(":")[1] ?? 0) : null;
    const weightBytes = model.weightBytes();
    const grid = profileGrid(p);
    const total = grid.length + (p.dynamic ? 1 : 0);
    const label = (c: GenerationCase) =>
      `b${c.batch} p${c.promptTokens} n${c.newTokens}${c.kvCache ? "" : " no-kv"}`;
    const watch = watchConditions();
    const results: { r: GenerationProfile; watts: number | null }[] = [];
    if (gpu === null) {
      // On the CPU, configurations alternate round by round (see profileGenerations).
      const profiles = profileGenerations(model, grid, {
        warmup: p.warmup,
        repeats: p.repeats,
        seed: p.seed,
        onRun: (i, r) => {
          ctx.signal.throwIfAborted();
          ctx.progress(
            r * grid.length + i,
            p.repeats * grid.length,
            `round ${r + 1}: ${label(grid[i])}`,
          );
        },
      });
      for (const r of profiles) results.push({ r, watts: null });
    } else {
      // GPU power is sampled per configuration, so each runs its repeats in one go.
      for (const [i, c] of grid.entries()) {
        ctx.signal.throwIfAborted();
        ctx.progress(i, total, label(c));
        const sampler = startPowerSampler(gpu);
        const [r] = profileGenerations(model, [c], {
          warmup: p.warmup,
          repeats: p.repeats,
          seed: p.seed,
        });
        results.push({ r, watts: sampler ? await sampler.stop() : null });
      }
    }
    const conditions = watch();
    recordProfiles(ctx, results, {
      weightBytes,
      device: model.device,
      engine: "libtorch",
      noisy: conditions.noisy,
    });
    recordConditions(ctx, conditions);
    if (conditions.noisy) {
      ctx.log(
        `noisy: other processes took ${
          Math.round((conditions.othersShare ?? 0) * 100)
        }% of the cores while timing (load ${conditions.load1Before} → ${conditions.load1After})`,
      );
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

/** The timing_conditions row of a profile stage: how busy the machine was while it timed. */
export function recordConditions(
  ctx: { record(table: string, row: Record<string, unknown>): void },
  conditions: ReturnType<ReturnType<typeof watchConditions>>,
): void {
  ctx.record("timing_conditions", {
    load1_before: conditions.load1Before,
    load1_after: conditions.load1After,
    wall_s: conditions.wallS,
    own_cpu_s: conditions.ownCpuS,
    other_cpu_s: conditions.otherCpuS,
    cores: conditions.cores,
    others_share: conditions.othersShare,
    noisy: conditions.noisy,
    cpu_model: conditions.cpuModel,
    cpu_flags: conditions.cpuFlags,
    governor: conditions.governor,
  });
}

/** The profiles rows (and their raw samples) of one profile stage, of either engine. */
export function recordProfiles(
  ctx: { record(table: string, row: Record<string, unknown>): void },
  results: { r: GenerationProfile; watts: number | null }[],
  how: { weightBytes: number; device: string; engine: string; noisy: boolean },
): void {
  for (const { r, watts } of results) {
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
      weight_bytes: how.weightBytes,
      device: how.device,
      engine: how.engine,
      power_w: watts,
      energy_j_per_token: watts === null
        ? null
        : (watts * r.e2eMs / 1000) / (r.batch * r.newTokens),
      ttft_ci_lo_ms: r.ci.ttftMs.lo,
      ttft_ci_hi_ms: r.ci.ttftMs.hi,
      prefill_tps_ci_lo: r.ci.prefillTps.lo,
      prefill_tps_ci_hi: r.ci.prefillTps.hi,
      decode_tps_ci_lo: r.ci.decodeTps.lo,
      decode_tps_ci_hi: r.ci.decodeTps.hi,
      latency_ci_lo_ms: r.ci.latencyMs.lo,
      latency_ci_hi_ms: r.ci.latencyMs.hi,
      noisy: how.noisy,
    });
    recordSamples(ctx, r);
  }
}

/** Every repeat's raw figures of one configuration into timing_samples. */
function recordSamples(
  ctx: { record(table: string, row: Record<string, unknown>): void },
  r: GenerationProfile,
): void {
  const base = {
    batch: r.batch,
    prompt_tokens: r.promptTokens,
    new_tokens: r.newTokens,
    kv_cache: r.kvCache,
  };
  const perRepeat: [string, number[]][] = [
    ["ttft_ms", r.samples.ttftMs],
    ["prefill_tps", r.samples.prefillTps],
    ["decode_tps", r.samples.decodeTps],
    ["e2e_ms", r.samples.e2eMs],
  ];
  for (const [metric, values] of perRepeat) {
    values.forEach((value, repeat) => {
      if (Number.isFinite(value)) {
        ctx.record("timing_samples", { ...base, metric, repeat, step: null, value });
      }
    });
  }
  r.samples.latencyMs.forEach((steps, repeat) =>
    steps.forEach((value, step) =>
      ctx.record("timing_samples", { ...base, metric: "latency_ms", repeat, step, value })
    )
  );
}
