// The `cost` stage: a price per device-hour turned into dollars per million tokens from profile rows.
import { z } from "zod";
import { parse } from "yaml";
import { defineStage } from "../engine/mod.ts";
import { absPath, fileHash } from "./model_input.ts";

/** The cost stage's params. */
export const costParams = z.object({
  /** USD per device-hour; default from `prices` by the profile's device. */
  pricePerHour: z.number().positive().optional(),
  /** YAML with per-device-kind defaults (cpu, cuda, gpus: {name: price}). */
  prices: z.string().default("configs/costs.yaml"),
  /** GPU model name to price, e.g. "NVIDIA H100" (GPU profiles only). */
  gpu: z.string().optional(),
}).strict();

/** The price per hour for a device, from the param or the prices file. */
export function priceFor(
  device: string,
  p: { pricePerHour?: number; gpu?: string },
  table: { cpu?: number; cuda?: number; gpus?: Record<string, number> },
): number {
  if (p.pricePerHour !== undefined) return p.pricePerHour;
  if (device.startsWith("cuda")) {
    const named = p.gpu ? table.gpus?.[p.gpu] : undefined;
    if (named !== undefined) return named;
    if (table.cuda !== undefined) return table.cuda;
  } else if (table.cpu !== undefined) return table.cpu;
  throw new Error(
    `cost: no price for device '${device}': set pricePerHour or add it to the prices file`,
  );
}

/** Prices a profile: `cost(profiled, { pricePerHour: 2.5 })`. */
export const cost = defineStage({
  kind: "cost",
  inputs: ["profile"],
  params: costParams,
  keyExtra: async (p, cwd) => ({ prices: await fileHash(absPath(p.prices, cwd)) }),
  run: async (ctx) => {
    const p = ctx.params;
    let table = {};
    if (p.pricePerHour === undefined) {
      const path = absPath(p.prices, ctx.cwd);
      try {
        table = parse(Deno.readTextFileSync(path)) ?? {};
      } catch (e) {
        throw new Error(`cost: cannot read prices ${path}: ${(e as Error).message}`);
      }
    }
    const rows = await ctx.inputs.profile.records("profiles");
    if (rows.length === 0) {
      throw new Error(`cost: input stage "${ctx.inputs.profile.name}" recorded no profiles rows`);
    }
    for (const r of rows) {
      const device = String(r.device ?? "cpu");
      const price = priceFor(device, p, table);
      const perSecond = price / 3600;
      const prefill = Number(r.prefill_tps), decode = Number(r.decode_tps);
      ctx.record("costs", {
        batch: Number(r.batch),
        prompt_tokens: Number(r.prompt_tokens),
        new_tokens: Number(r.new_tokens),
        kv_cache: r.kv_cache !== false,
        device,
        price_per_hour: price,
        usd_per_m_prompt_tokens: prefill > 0 ? (perSecond / prefill) * 1e6 : null,
        usd_per_m_generated_tokens: decode > 0 ? (perSecond / decode) * 1e6 : null,
        // measured only where the profile sampled GPU power; never estimated
        energy_j_per_token: r.energy_j_per_token ?? null,
      });
    }
  },
});
