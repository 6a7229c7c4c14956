// The `advise` stage: which modules to keep in a fallback scheme so that a quantized model meets
// a budget; its output is the `keep` config a following quantize stage takes as input.
import { z } from "zod";
import { defineStage } from "../engine/mod.ts";
import { adviseMixedPrecision } from "../models/analysis/advisor.ts";
import { calibrationIds, chunk } from "../models/analysis/compare.ts";
import { schemeName } from "./quantize.ts";
import { absPath, fileHash, modelSource, openModel } from "./model_input.ts";
import { loadModel } from "../models/load.ts";

const scheme = schemeName;

/** The advise stage's params. */
export const adviseParams = z.object({
  scheme: scheme.default("nf4"),
  fallback: scheme.default("bf16"),
  budget: z.object({
    maxMeanKld: z.number().positive().optional(),
    maxDeltaPpl: z.number().positive().optional(),
    maxWeightBytes: z.number().int().positive().optional(),
  }).strict().refine((b) => Object.values(b).some((v) => v !== undefined), {
    message: "give maxMeanKld, maxDeltaPpl or maxWeightBytes",
  }),
  calibration: z.string().default("data/eval.txt"),
  maxTokens: z.number().int().min(8).default(512),
  contextLength: z.number().int().min(4).default(128),
  device: z.string().default("cpu"),
}).strict();

/** What advise returns: `quantize(base, advice, { scheme })` reads `keep`. */
export interface AdviceOutput {
  /** Per-module scheme overrides, for quantize's `keep`. */
  keep: Record<string, string>;
  /** The scheme advised for the rest of the model. */
  scheme: string;
  /** The scheme kept for sensitive modules. */
  fallback: string;
  /** Whether the advice meets the error budget. */
  met: boolean;
}

/** Advises a mixed-precision config: `advise(base, { scheme: "nf4", budget: { maxMeanKld: 0.01 } })`. */
export const advise = defineStage({
  kind: "advise",
  inputs: ["model"],
  params: adviseParams,
  keyExtra: async (p, cwd) => ({ calibration: await fileHash(absPath(p.calibration, cwd)) }),
  run: (ctx) => {
    const p = ctx.params;
    const text = Deno.readTextFileSync(absPath(p.calibration, ctx.cwd));
    using ref = openModel(ctx.inputs.model, { device: p.device });
    const { dir, adapter } = modelSource(ctx.inputs.model);
    const ids = calibrationIds(ref, text, p.maxTokens);
    const advice = adviseMixedPrecision(
      ref,
      () => loadModel(dir, { device: p.device, adapter: adapter ?? undefined }),
      {
        scheme: p.scheme,
        fallback: p.fallback,
        budget: p.budget,
        calibration: chunk(ids, p.contextLength),
        evaluation: ids,
        contextLength: p.contextLength,
        onProgress: (m) => ctx.progress(0, undefined, m),
      },
    );
    const kept = new Set(Object.keys(advice.keep));
    advice.ranking.forEach((r, i) =>
      ctx.record("advisor_choices", {
        rank: i + 1,
        module: r.module,
        score: r.score,
        extra_bytes: r.extraBytes,
        kept: kept.has(r.module),
      })
    );
    for (const t of advice.trials) {
      ctx.record("advisor_trials", {
        kept: t.kept,
        weight_bytes: t.weightBytes,
        mean_kld: t.meanKld,
        delta_ppl: t.deltaPpl,
      });
    }
    ctx.metric("advisor_met", advice.met ? 1 : 0);
    ctx.metric("advisor_kept_modules", kept.size, "modules");
    ctx.metric("advisor_weight_bytes", advice.chosen.weightBytes, "bytes");
    ctx.metric("advisor_kld_mean", advice.chosen.meanKld, "nats");
    ctx.metric("advisor_delta_ppl", advice.chosen.deltaPpl);
    ctx.log(
      `${advice.met ? "met" : "could not meet"} the budget keeping ${kept.size} modules in ` +
        `${p.fallback}: KLD ${advice.chosen.meanKld.toFixed(4)}, ΔPPL ${
          advice.chosen.deltaPpl.toFixed(4)
        }, ${advice.chosen.weightBytes} bytes`,
    );
    const out: AdviceOutput = {
      keep: advice.keep,
      scheme: p.scheme,
      fallback: p.fallback,
      met: advice.met,
    };
    return out;
  },
});
