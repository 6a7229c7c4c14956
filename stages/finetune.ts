// The `finetune` stage: full, LoRA or QLoRA fine-tuning of a Llama-family checkpoint on
// instruction data (or plain text), writing PEFT adapters or an HF checkpoint.
import { z } from "zod";
import { join } from "node:path";
import { existsSync } from "node:fs";
import { absPath, fileHash, folderFingerprint, modelSource } from "./model_input.ts";
import { defineStage, type InputInfo } from "../engine/mod.ts";
import { loadModel } from "../models/load.ts";
import { assertFiniteWeights } from "../models/finite_weights.ts";
import { checkPositions } from "../models/limits.ts";
import { applyAdapter, mergeAdapter, saveAdapter } from "../models/lora/mod.ts";
import {
  type Dataset,
  describeBad,
  loadInstructionData,
  prepareMethod,
  saveCheckpoint,
  splitDataset,
  textBlocks,
  train,
} from "../models/train/mod.ts";

const template = z.union([
  z.enum(["default", "chat"]),
  z.string().describe("one template with {instruction} and {input}"),
  z.object({ withInput: z.string(), withoutInput: z.string() }).strict(),
]);

/** The finetune stage's params. */
export const finetuneParams = z.object({
  /** HF checkpoint folder, when no model input is given (relative to the working directory). */
  model: z.string().optional(),
  method: z.enum(["full", "lora", "qlora"]).default("lora"),
  /** Alpaca-style JSON/JSONL (instruction, input?, output), or a .txt corpus. */
  data: z.string().default("data/instructions.jsonl"),
  /** "auto": text for .txt files, instructions otherwise. */
  format: z.enum(["auto", "instructions", "text"]).default("auto"),
  template: template.default("default"),
  maxLength: z.number().int().min(8).default(256),
  overLong: z.enum(["truncate", "drop"]).default("truncate"),
  valFraction: z.number().min(0).max(0.9).default(0.1),
  // LoRA / QLoRA
  r: z.number().int().positive().default(8),
  alpha: z.number().positive().default(16),
  dropout: z.number().min(0).max(0.99).default(0.05),
  targetModules: z.union([z.string(), z.array(z.string()).min(1)]).default(["q_proj", "v_proj"]),
  rslora: z.boolean().default(false),
  quantScheme: z.enum(["nf4", "nf4-nodq", "fp4", "fp4-nodq"]).default("nf4"),
  /** Fold the adapter into the weights and also write a full HF checkpoint. */
  merge: z.boolean().default(false),
  // Training
  steps: z.number().int().positive().default(100),
  batchSize: z.number().int().positive().default(4),
  gradAccum: z.number().int().positive().default(1),
  lr: z.number().positive().default(2e-4),
  schedule: z.enum(["constant", "linear", "cosine"]).default("cosine"),
  warmupSteps: z.number().int().min(0).default(0),
  weightDecay: z.number().min(0).default(0),
  maxGradNorm: z.number().min(0).default(1),
  seed: z.number().int().default(0),
  evalEvery: z.number().int().min(0).default(0),
  /** Recompute each decoder layer in the backward: less activation memory, ~1/3 more compute. */
  gradientCheckpointing: z.boolean().default(false),
  dtype: z.enum(["float32", "bfloat16", "float64"]).default("float32"),
  device: z.string().default("cpu"),
}).strict();

/** Parsed finetune params. */
export type FinetuneParams = z.output<typeof finetuneParams>;

/** What the stage returns (meta.output), for stages downstream. */
export interface FinetuneOutput {
  method: string;
  /** Adapter folder inside the artifacts (lora/qlora). */
  adapter: string | null;
  /** HF checkpoint folder inside the artifacts (full, or merge: true). */
  model: string | null;
  /** The base model folder the adapter applies to. */
  baseModel: string;
  /** A short label, e.g. "lora r=8". */
  label: string;
  trainableParams: number;
  totalParams: number;
  valLossBefore: number | null;
  valLossAfter: number | null;
}

/**
 * The HF folder (and adapter, if any) that a model input or the `model` param names. Inputs
 * follow stages/model_input.ts's ModelOutput: `model`, or `adapter` on `baseModel`.
 */
export function resolveModelDir(
  input: InputInfo | undefined,
  param: string | undefined,
  cwd: string,
): { dir: string; adapter: string | null } {
  if (input) return modelSource(input);
  if (!param) {
    throw new Error(
      'finetune: give a model input (load(...)) or the "model" param (an HF checkpoint folder)',
    );
  }
  const dir = absPath(param, cwd);
  if (!existsSync(join(dir, "config.json"))) {
    throw new Error(
      `finetune: model folder ${dir} has no config.json; point "model" at an HF checkpoint`,
    );
  }
  return { dir, adapter: null };
}

/** Fine-tunes a model: `finetune(model, { method: "qlora", r: 16, ... })`. */
export const finetune = defineStage({
  kind: "finetune",
  inputs: ["model?"],
  params: finetuneParams,
  // The data file (and a path-named model's weights) change results without changing params.
  keyExtra: async (p, cwd) => {
    const abs = (f: string) => absPath(f, cwd);
    // Every file of a path-named model counts, every shard included, by content.
    return {
      data: await fileHash(abs(p.data)),
      ...(p.model ? { model: folderFingerprint(abs(p.model)) } : {}),
    };
  },
  run: async (ctx) => {
    const p = ctx.params;
    const { dir: modelDir, adapter: inputAdapter } = resolveModelDir(
      ctx.inputs.model,
      p.model,
      ctx.cwd,
    );
    const dataPath = absPath(p.data, ctx.cwd);
    const model = loadModel(modelDir, { dtype: p.dtype, device: p.device });
    try {
      // Training from NaN weights or past the model's positions gives numbers, not an error.
      assertFiniteWeights(model, { adapter: inputAdapter });
      checkPositions(
        model,
        p.maxLength,
        `finetune: maxLength ${p.maxLength}`,
        `set maxLength to ${model.config.maxPositionEmbeddings} or less`,
      );
      // Training continues from an adapted input: its adapter is folded in first.
      if (inputAdapter) {
        if (p.method !== "full" && !p.merge) {
          throw new Error(
            `finetune: the input is an adapter (${inputAdapter}); a new ${p.method} adapter on top of it ` +
              "would not apply to the original base. Use merge: true (writes the merged model) or method full.",
          );
        }
        applyAdapter(model, inputAdapter);
        mergeAdapter(model);
        ctx.log(`merged the input's adapter ${inputAdapter} before training`);
      }
      const tok = model.tokenizer;
      if (!tok) {
        throw new Error(
          `finetune: ${modelDir} has no tokenizer.json; the data cannot be tokenized`,
        );
      }
      const asText = p.format === "text" || (p.format === "auto" && dataPath.endsWith(".txt"));
      const ds: Dataset = asText
        ? textBlocks(dataPath, { tokenizer: tok, blockSize: p.maxLength })
        : loadInstructionData(dataPath, {
          tokenizer: tok,
          template: p.template,
          maxLength: p.maxLength,
          overLong: p.overLong,
        });
      ctx.metric("data_records", ds.records, "records");
      ctx.metric("data_bad_records", ds.bad.count, "records");
      ctx.metric("data_truncated", ds.truncated, "records");
      ctx.metric("data_tokens", ds.tokens, "tokens");
      if (ds.bad.count > 0) ctx.log(`data: ${describeBad(ds.bad)}`);
      const split = splitDataset(ds.examples, { valFraction: p.valFraction, seed: p.seed });
      ctx.metric("train_examples", split.train.length, "examples");
      ctx.metric("val_examples", split.val.length, "examples");

      const prepared = prepareMethod(model, p.method, {
        r: p.r,
        alpha: p.alpha,
        dropout: p.dropout,
        targetModules: p.targetModules,
        rslora: p.rslora,
        seed: p.seed,
      }, { quantScheme: p.quantScheme });
      if (prepared.adapted.length) ctx.log(`LoRA on ${prepared.adapted.length} modules`);

      const result = await train(model, prepared.trainable, split, {
        steps: p.steps,
        batchSize: p.batchSize,
        gradAccum: p.gradAccum,
        lr: p.lr,
        schedule: p.schedule,
        warmupSteps: p.warmupSteps,
        weightDecay: p.weightDecay,
        maxGradNorm: p.maxGradNorm,
        seed: p.seed,
        evalEvery: p.evalEvery,
        gradientCheckpointing: p.gradientCheckpointing,
      }, {
        onStep: (row) =>
          ctx.record("train_steps", {
            step: row.step,
            loss: row.loss,
            lr: row.lr,
            grad_norm: row.grad_norm,
            tokens_per_s: row.tokens_per_s,
            peak_mem_bytes: row.peak_mem_bytes,
            tokens: row.tokens,
          }),
        onEval: (row) => ctx.record("train_evals", { ...row }),
        onProgress: (done, total, msg) => ctx.progress(done, total, msg),
        signal: ctx.signal,
      });
      if (result.error) {
        const last = result.steps.slice(-3).map((s) => s.loss.toFixed(4)).join(", ");
        throw new Error(
          `finetune (${p.method}): ${result.error}${last ? ` (last losses: ${last})` : ""}`,
        );
      }
      ctx.metric("trainable_params", result.trainableParams, "params");
      ctx.metric("total_params", result.totalParams, "params");
      ctx.metric("train_time_s", result.trainSeconds, "s");
      ctx.metric("train_tokens", result.tokens, "tokens");
      ctx.metric(
        "train_tokens_per_s",
        result.tokens / Math.max(1e-9, result.trainSeconds),
        "tokens/s",
      );
      if (result.steps.length) {
        ctx.metric("final_train_loss", result.steps[result.steps.length - 1].loss);
      }
      if (result.valBefore) {
        ctx.metric("val_loss_before", result.valBefore.loss);
        ctx.metric("val_ppl_before", result.valBefore.perplexity);
      }
      if (result.valAfter) {
        ctx.metric("val_loss_after", result.valAfter.loss);
        ctx.metric("val_ppl_after", result.valAfter.perplexity);
      }
      const mem = result.memory;
      ctx.metric("peak_mem_bytes", mem.peak.bytes, "bytes");
      for (const part of ["weights", "gradients", "optimizer", "activations"] as const) {
        ctx.metric(`mem_${part}_bytes`, mem[part].bytes, "bytes");
        ctx.record("train_memory", { part, bytes: mem[part].bytes, source: mem[part].source });
      }
      ctx.record("train_memory", { part: "peak", bytes: mem.peak.bytes, source: mem.peak.source });

      let adapter: string | null = null;
      let merged: string | null = null;
      if (p.method === "full") {
        saveCheckpoint(model, join(ctx.outDir, "model"));
        merged = "model";
      } else {
        saveAdapter(model, join(ctx.outDir, "adapter"), { baseModel: modelDir });
        adapter = "adapter";
        if (p.merge) {
          mergeAdapter(model, join(ctx.outDir, "model"));
          merged = "model";
        }
      }
      const output: FinetuneOutput = {
        method: p.method,
        adapter,
        model: merged,
        baseModel: modelDir,
        label: p.method === "full" ? "full" : `${p.method} r=${p.r}`,
        trainableParams: result.trainableParams,
        totalParams: result.totalParams,
        valLossBefore: result.valBefore?.loss ?? null,
        valLossAfter: result.valAfter?.loss ?? null,
      };
      return output;
    } finally {
      model.dispose();
    }
  },
});
