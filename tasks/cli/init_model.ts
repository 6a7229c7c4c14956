// `lab init-model`: writes a tiny generated model folder.
import type { Command } from "commander";
import { LabError } from "../../engine/errors.ts";

/** `lab init-model --arch llama --preset tiny --out DIR` */
export function register(program: Command): void {
  program
    .command("init-model")
    .description(
      "write a random tiny HF-format model folder (config, safetensors weights, byte-level tokenizer)",
    )
    .requiredOption("--out <dir>", "folder to write")
    .option("--arch <arch>", "llama, llama3, mistral, qwen2 or phi3", "llama")
    .option("--preset <preset>", "tiny (~0.1M params), small (~3M) or 25m (~25M)", "tiny")
    .option("--seed <n>", "seed of the random weights", "0")
    .option("--dtype <dtype>", "stored dtype: float32, bfloat16 or float16", "float32")
    .option("--overwrite", "replace files in a non-empty folder")
    .action(async (opts) => {
      const { createTinyModel, TINY_ARCHS, TINY_PRESETS } = await import("../../models/tiny.ts");
      if (!(TINY_ARCHS as readonly string[]).includes(opts.arch)) {
        throw new LabError(`--arch ${opts.arch} is unknown; use one of ${TINY_ARCHS.join(", ")}`);
      }
      if (!(opts.preset in TINY_PRESETS)) {
        throw new LabError(
          `--preset ${opts.preset} is unknown; use one of ${Object.keys(TINY_PRESETS).join(", ")}`,
        );
      }
      if (!["float32", "bfloat16", "float16"].includes(opts.dtype)) {
        throw new LabError(`--dtype ${opts.dtype} is unknown; use float32, bfloat16 or float16`);
      }
      const seed = Number(opts.seed);
      if (!Number.isInteger(seed) || seed < 0) {
        throw new LabError(`--seed must be a non-negative integer, got ${opts.seed}`);
      }
      try {
        const info = createTinyModel({
          out: opts.out,
          arch: opts.arch,
          preset: opts.preset,
          seed,
          dtype: opts.dtype,
          overwrite: !!opts.overwrite,
        });
        console.log(
          `wrote ${info.dir}: ${opts.arch}/${opts.preset}, ${
            info.parameters.toLocaleString("en")
          } ` +
            `parameters (${info.files.join(", ")})`,
        );
      } catch (e) {
        throw new LabError((e as Error).message);
      }
    });
}
