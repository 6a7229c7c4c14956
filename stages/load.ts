// The `load` stage: names a Hugging Face checkpoint folder, or generates a tiny model or a
// real-size shaped one with random weights.
import { z } from "zod";
import { join } from "node:path";
import { defineStage } from "../engine/mod.ts";
import { configParameterCount, readConfig } from "../models/config.ts";
import { createTinyModel, TINY_ARCHS, TINY_PRESETS } from "../models/tiny.ts";
import { createSyntheticModel, SYNTHETIC_SHAPE_NAMES } from "../models/synthetic.ts";
import { absPath, folderFingerprint, type ModelOutput } from "./model_input.ts";

/** The load stage's params: exactly one of `model`, `tiny` or `synthetic`. */
export const loadParams = z.object({
  /** An HF checkpoint folder (config.json, *.safetensors, tokenizer.json). */
  model: z.string().optional(),
  /** Generate a random tiny model instead (tests, demos, the default sweep). */
  tiny: z.object({
    arch: z.enum(TINY_ARCHS).default("llama"),
    preset: z.enum(Object.keys(TINY_PRESETS) as [keyof typeof TINY_PRESETS]).default("tiny"),
    seed: z.number().int().default(0),
  }).strict().optional(),
  /**
   * Generate a real-size model in the shape of a released one (random weights), e.g.
   * `{ shape: "llama-3.2-1b" }` (4.94 GB in float32): speed and memory at the size that
   * matters, without downloading anything. Written once into the stage cache.
   */
  synthetic: z.object({
    shape: z.enum(SYNTHETIC_SHAPE_NAMES),
    dtype: z.enum(["float32", "bfloat16", "float16"]).default("float32"),
    shards: z.number().int().min(1).default(1),
    seed: z.number().int().default(0),
  }).strict().optional(),
}).strict().refine(
  (p) => [p.model, p.tiny, p.synthetic].filter((x) => x !== undefined).length === 1,
  {
    message: 'give exactly one of "model" (a checkpoint folder), "tiny" ({ arch, preset }) ' +
      'or "synthetic" ({ shape })',
  },
);

/**
 * Loads (names) a model: `load({ model: "models/llama-3.2-1b" })`,
 * `load({ tiny: { arch: "llama" } })` or `load({ synthetic: { shape: "llama-3.2-1b" } })`.
 */
export const load = defineStage({
  kind: "load",
  params: loadParams,
  // A folder named by path changes results when its files change.
  keyExtra: (p, cwd) => (p.model ? folderFingerprint(absPath(p.model, cwd)) : null),
  run: (ctx) => {
    const p = ctx.params;
    let dir: string;
    let label: string;
    let output: ModelOutput;
    if (p.tiny) {
      dir = join(ctx.outDir, "model");
      createTinyModel({ out: dir, arch: p.tiny.arch, preset: p.tiny.preset, seed: p.tiny.seed });
      label = `tiny-${p.tiny.arch}-${p.tiny.preset}`;
      output = { model: "model", label };
    } else if (p.synthetic) {
      dir = join(ctx.outDir, "model");
      const s = p.synthetic;
      ctx.log(`generating a ${s.shape}-shaped model (${s.dtype}, random weights)…`);
      createSyntheticModel({
        out: dir,
        shape: s.shape,
        dtype: s.dtype,
        shards: s.shards,
        seed: s.seed,
        onProgress: (done, total) => ctx.progress(done, total, "writing weights"),
      });
      label = `synthetic-${s.shape}`;
      output = { model: "model", label };
    } else {
      dir = absPath(p.model!, ctx.cwd);
      label = p.model!.replace(/\/+$/, "").split("/").pop()!;
      output = { model: dir, label };
    }
    const config = readConfig(dir);
    ctx.metric("parameters", configParameterCount(config), "params");
    ctx.metric("layers", config.numLayers);
    ctx.metric("hidden_size", config.hiddenSize);
    let bytes = 0;
    for (const e of Deno.readDirSync(dir)) {
      if (e.isFile && e.name.endsWith(".safetensors")) {
        bytes += Deno.statSync(join(dir, e.name)).size;
      }
    }
    ctx.metric("checkpoint_bytes", bytes, "bytes");
    ctx.log(
      `${config.architecture}, ${config.numLayers} layers, ${configParameterCount(config)} params`,
    );
    return output;
  },
});
