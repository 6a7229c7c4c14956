// The `analyze` stage: a variant (quantized, fine-tuned, merged) against its reference —
// layer-by-layer sensitivity, KL divergence and agreement, and warnings where metrics disagree.
import { z } from "zod";
import { checkPositions } from "../models/limits.ts";
import { defineStage } from "../engine/mod.ts";
import { calibrationIds, chunk } from "../models/analysis/compare.ts";
import { layerSensitivity } from "../models/analysis/sensitivity.ts";
import { compareDistributions } from "../models/analysis/divergence.ts";
import {
  checkChoiceItem,
  type ChoiceItem,
  multipleChoice,
  readJsonl,
} from "../models/eval/tasks.ts";
import { absPath, fileHash, modelLabel, openModel } from "./model_input.ts";
import { engineOf, openLlamaCpp } from "./llama_cpp.ts";
import { compareWithLlamaCpp } from "../models/llama_cpp/divergence.ts";
import type { LlamaModel } from "../models/llama.ts";

/** The analyze stage's params. */
export const analyzeParams = z.object({
  /** Calibration text for sensitivity and divergence. */
  calibration: z.string().default("data/eval.txt"),
  maxTokens: z.number().int().min(8).default(1024),
  contextLength: z.number().int().min(4).default(128),
  modes: z.array(z.enum(["isolated", "end_to_end", "weight"])).min(1)
    .default(["isolated", "end_to_end", "weight"]),
  /** A multiple-choice file to compare accuracy too (optional). */
  tasks: z.string().optional(),
  /** When PPL is within `pplWithin` of the reference but KLD or agreement say otherwise, warn. */
  warn: z.object({
    pplWithin: z.number().positive().default(0.02),
    kldAbove: z.number().positive().default(0.05),
    top1Below: z.number().min(0).max(1).default(0.9),
    accuracyDrop: z.number().positive().default(0.05),
  }).strict().default({ pplWithin: 0.02, kldAbove: 0.05, top1Below: 0.9, accuracyDrop: 0.05 }),
  device: z.string().default("cpu"),
}).strict();

/** Analyzes `variant` against `reference`: `analyze(base, q, { calibration: "data/eval.txt" })`. */
export const analyze = defineStage({
  kind: "analyze",
  inputs: ["reference", "variant"],
  params: analyzeParams,
  keyExtra: async (p, cwd) => ({
    calibration: await fileHash(absPath(p.calibration, cwd)),
    tasks: p.tasks ? await fileHash(absPath(p.tasks, cwd)) : null,
  }),
  run: (ctx) => {
    const p = ctx.params;
    const path = absPath(p.calibration, ctx.cwd);
    let text: string;
    try {
      text = Deno.readTextFileSync(path);
    } catch (e) {
      throw new Error(`analyze: cannot read calibration text ${path}: ${(e as Error).message}`);
    }
    using ref = openModel(ctx.inputs.reference, { device: p.device });
    // A llama.cpp variant is scored by libllama on the same ids (no per-layer view inside it).
    const viaLlamaCpp = engineOf(ctx.inputs.variant) === "llama.cpp";
    using variant = viaLlamaCpp ? null : openModel(ctx.inputs.variant, { device: p.device });
    checkPositions(
      ref,
      p.contextLength,
      `analyze: windows of contextLength ${p.contextLength}`,
      `set contextLength to ${ref.config.maxPositionEmbeddings} or less`,
    );
    const ids = calibrationIds(ref, text, p.maxTokens);
    const label = `${modelLabel(ctx.inputs.variant)} vs ${modelLabel(ctx.inputs.reference)}`;
    let d;
    if (variant) {
      sensitivity(ctx, ref, variant, ids, p, label);
      ctx.progress(1, 2, "KL divergence");
      d = compareDistributions(ref, variant, ids, { contextLength: p.contextLength });
    } else {
      ctx.progress(1, 2, `KL divergence: ${label} (llama.cpp)`);
      using cpp = openLlamaCpp(ctx.inputs.variant, p.contextLength);
      d = compareWithLlamaCpp(ref, cpp, ids, { contextLength: p.contextLength });
    }
    ctx.metric("kld_mean", d.meanKld, "nats");
    ctx.metric("kld_p99", d.p99Kld, "nats");
    ctx.metric("kld_max", d.maxKld, "nats");
    ctx.metric("top1_agreement", d.top1Agreement);
    ctx.metric("ppl_reference", d.pplReference);
    ctx.metric("ppl_variant", d.pplVariant);
    ctx.metric("ppl_ratio", d.pplRatio);
    ctx.metric("analyzed_tokens", d.tokens, "tokens");
    const warn = (kind: string, metric: string, value: number, message: string) =>
      ctx.record("warnings", { kind, severity: "warning", metric, value, message });
    const pplClose = Math.abs(d.pplRatio - 1) <= p.warn.pplWithin;
    const pplText = `PPL is within ${(p.warn.pplWithin * 100).toFixed(0)}% of the reference ` +
      `(ratio ${d.pplRatio.toFixed(4)})`;
    if (pplClose && d.meanKld > p.warn.kldAbove) {
      warn(
        "ppl_hides_kld",
        "kld_mean",
        d.meanKld,
        `${label}: ${pplText} but mean KLD is ${
          d.meanKld.toFixed(4)
        } (> ${p.warn.kldAbove}): the next-token distributions changed more than PPL shows`,
      );
    }
    if (pplClose && d.top1Agreement < p.warn.top1Below) {
      warn(
        "ppl_hides_top1",
        "top1_agreement",
        d.top1Agreement,
        `${label}: ${pplText} but the ` +
          `top-1 token agrees only ${(d.top1Agreement * 100).toFixed(1)}% of the time`,
      );
    }
    if (p.tasks && variant) {
      const items = readJsonl<ChoiceItem>(absPath(p.tasks, ctx.cwd), checkChoiceItem);
      const a = multipleChoice(ref, items).accuracy;
      const b = multipleChoice(variant, items).accuracy;
      ctx.metric("accuracy_reference", a);
      ctx.metric("accuracy_variant", b);
      if (pplClose && a - b > p.warn.accuracyDrop) {
        warn(
          "ppl_hides_accuracy",
          "accuracy_variant",
          b,
          `${label}: ${pplText} but ` +
            `multiple-choice accuracy fell from ${a.toFixed(3)} to ${b.toFixed(3)}`,
        );
      }
    }
    ctx.progress(2, 2);
  },
});

/** Layer-by-layer sensitivity rows of two libtorch models. */
function sensitivity(
  ctx: {
    progress(d: number, t?: number, m?: string): void;
    record(t: string, r: Record<string, unknown>): void;
  },
  ref: LlamaModel,
  variant: LlamaModel,
  ids: number[],
  p: { contextLength: number; modes: ("isolated" | "end_to_end" | "weight")[] },
  label: string,
): void {
  ctx.progress(0, 2, `sensitivity: ${label}`);
  const rows = layerSensitivity(ref, variant, chunk(ids, p.contextLength), {
    modes: p.modes,
    onProgress: (d, t) => ctx.progress(d / Math.max(1, t), 2, "sensitivity"),
  });
  for (const r of rows) {
    ctx.record("layer_sensitivity", {
      layer: r.layer,
      module: r.module,
      mode: r.mode,
      mse: r.mse,
      cosine: r.cosine,
      rel_error: r.relError,
      tokens: r.tokens,
    });
  }
}
