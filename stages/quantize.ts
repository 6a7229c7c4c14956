// The `quantize` stage: a model in, the same model with its linear weights in a scheme out.
import { z } from "zod";
import { join } from "node:path";
import { defineStage } from "../engine/mod.ts";
import { moduleSchemes } from "../models/quant/quantize_model.ts";
import { saveQuantizedModel } from "../models/quant/checkpoint.ts";
import { parseScheme, SCHEME_NAMES } from "../models/quant/schemes.ts";
import { requireDisk } from "../models/host_resources.ts";
import { modelLabel, type ModelOutput } from "./model_input.ts";
import { openModelInScheme } from "./scheme_input.ts";
import {
  isLlamaCppScheme,
  LLAMA_CPP_SCHEME_NAMES,
  type LlamaCppScheme,
} from "../models/llama_cpp/quantize.ts";
import { quantizeWithLlamaCpp } from "./llama_cpp.ts";

/** A quantization scheme name, checked when the pipeline is planned. */
export const schemeName = z.string().refine((s) => {
  try {
    parseScheme(s);
    return true;
  } catch {
    return false;
  }
}, {
  message: `a quantization scheme: ${SCHEME_NAMES.join(", ")} (fp8-e4m3 needs libtorch >= 2.1)`,
});

/** The quantize stage's params. */
export const quantizeParams = z.object({
  /** A lab scheme (SCHEME_NAMES), or with engine "llama.cpp" one of LLAMA_CPP_SCHEME_NAMES. */
  scheme: z.string(),
  /** "llama.cpp": export to GGUF and quantize with libllama (absent: the lab's own kernels). */
  engine: z.enum(["libtorch", "llama.cpp"]).optional(),
  /** Per-module overrides: glob → scheme, e.g. { "lm_head": "bf16", "model.layers.0.*": "bf16" }. */
  keep: z.record(z.string(), schemeName).default({}),
  /** Quantize then dequantize into dense weights: quality of any scheme without its kernels. */
  simulate: z.boolean().default(false),
  /** Fail when an int4 group size does not divide a module's width (default: fall back). */
  strict: z.boolean().default(false),
  /** Compute dtype of activations, embeddings and norms. */
  dtype: z.enum(["float32", "bfloat16", "float16"]).default("float32"),
  device: z.string().default("cpu"),
}).strict().superRefine((p, ctx) => {
  const problem = p.engine === "llama.cpp"
    ? llamaCppSchemeProblem(p)
    : schemeName.safeParse(p.scheme).success
    ? null
    : `scheme: a quantization scheme: ${SCHEME_NAMES.join(", ")} (fp8-e4m3 needs libtorch >= ` +
      `2.1), or with engine: "llama.cpp" one of ${LLAMA_CPP_SCHEME_NAMES.join(", ")}`;
  if (problem) ctx.addIssue({ code: "custom", message: problem, path: ["scheme"] });
});

function llamaCppSchemeProblem(p: { scheme: string; keep: object; simulate: boolean }) {
  if (!isLlamaCppScheme(p.scheme)) {
    return `"${p.scheme}" is not a llama.cpp type: use one of ${LLAMA_CPP_SCHEME_NAMES.join(", ")}`;
  }
  if (Object.keys(p.keep).length || p.simulate) {
    return 'keep and simulate apply to the libtorch engine only, not to engine: "llama.cpp"';
  }
  return null;
}

/**
 * Quantizes a model: `quantize(base, { scheme: "nf4", keep: { lm_head: "bf16" } })`, or through
 * llama.cpp: `quantize(base, { engine: "llama.cpp", scheme: "Q4_K_M" })`.
 */
export const quantize = defineStage({
  kind: "quantize",
  // An advise stage's output supplies `keep` globs (merged under the explicit ones).
  inputs: ["model", "advice?"],
  params: quantizeParams,
  run: (ctx) => {
    const p = ctx.params;
    if (p.engine === "llama.cpp") {
      return quantizeWithLlamaCpp(ctx, ctx.inputs.model, p.scheme as LlamaCppScheme);
    }
    const advised = (ctx.inputs.advice?.output as { keep?: Record<string, string> } | undefined)
      ?.keep ?? {};
    const keep = { ...advised, ...p.keep };
    ctx.progress(0, 1, `quantizing to ${p.scheme}`);
    // Each linear weight is packed as it is read: a checkpoint larger than memory fits.
    const opened = openModelInScheme(
      ctx.inputs.model,
      { scheme: p.scheme, keep, simulate: p.simulate, strict: p.strict },
      {
        dtype: p.dtype,
        device: p.device,
        onModule: (done, total, name) => ctx.progress(done, total + 1, `packing ${name}`),
      },
    );
    using model = opened.model;
    const report = opened.report;
    const before = opened.denseBytes;
    // Always said and recorded, so "int4-g128" is never silently partly int8.
    const assigned = moduleSchemes(
      report.modules.map((m) => m.module),
      { scheme: p.scheme, keep },
      model.config.tieWordEmbeddings,
    );
    const fallbacks = report.modules.filter((m) => m.scheme !== assigned.get(m.module)!.name);
    ctx.metric("fallback_modules", fallbacks.length);
    if (fallbacks.length) {
      ctx.log(
        `${fallbacks.length} modules use a fallback scheme (width not divisible by the group): ` +
          [...new Set(fallbacks.map((m) => m.scheme))].join(", "),
      );
    }
    const params = report.modules.reduce((s, m) => s + m.params, 0);
    const linearBytes = report.modules.reduce((s, m) => s + m.bytes, 0);
    for (const m of report.modules) {
      ctx.record("quant_modules", {
        module: m.module,
        scheme: m.scheme,
        params: m.params,
        bytes: m.bytes,
        bits_per_param: m.bitsPerParam,
        rel_error: m.relError,
      });
    }
    ctx.metric("weight_bytes", report.weightBytes, "bytes");
    ctx.metric("weight_bytes_before", before, "bytes");
    ctx.metric("linear_bytes", linearBytes, "bytes");
    ctx.metric("linear_params", params, "params");
    ctx.metric("bits_per_param", (linearBytes * 8) / params, "bits");
    ctx.metric("bytes_per_param", linearBytes / params, "bytes");
    ctx.metric(
      "mean_rel_error",
      report.modules.reduce((s, m) => s + m.relError, 0) / report.modules.length,
    );
    ctx.metric("max_rel_error", Math.max(...report.modules.map((m) => m.relError)));
    ctx.metric("quantize_s", report.seconds, "s");
    // Refuse before writing: a failed stage leaves no cache entry, a full disk a broken file.
    requireDisk(
      report.weightBytes + (16 << 20),
      ctx.outDir,
      "saving the quantized model",
      "Free space on that disk, or run with --results (or LAB_RESULTS) on a larger one.",
    );
    saveQuantizedModel(model, join(ctx.outDir, "model"));
    ctx.progress(1, 1);
    const kept = Object.keys(keep).length ? `+keep${Object.keys(keep).length}` : "";
    const output: ModelOutput = {
      model: "model",
      label: `${p.scheme}${kept}${p.simulate ? " (sim)" : ""}`,
    };
    ctx.log(`${modelLabel(ctx.inputs.model)} → ${output.label}: ${report.weightBytes} bytes`);
    return output;
  },
});
