// The llama.cpp engine inside the quantize, profile, evaluate and analyze stages: a model
// input that carries a GGUF file (ModelOutput.gguf) runs through libllama instead of libtorch.
import { copyFileSync, existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import type { InputInfo, StageContext } from "../engine/mod.ts";
import { LabError } from "../errors.ts";
import { getNumThreads } from "../ffi/mod.ts";
import { exportGguf } from "../models/gguf/export.ts";
import { isUnquantized, type LlamaCppScheme, quantizeGguf } from "../models/llama_cpp/quantize.ts";
import { LlamaCppModel } from "../models/llama_cpp/model.ts";
import { loadTokenizer, type TextTokenizer } from "../models/tokenizer.ts";
import { readConfig } from "../models/config.ts";
import { modelLabel, type ModelOutput, modelSource } from "./model_input.ts";

/** The engine names of the `engine` columns. */
export type EngineName = "libtorch" | "llama.cpp";

/** The GGUF file an input stage left, or null when its model runs in libtorch. */
export function ggufOf(input: InputInfo): string | null {
  const out = (input.output ?? {}) as ModelOutput;
  return out.gguf ? join(input.artifacts, out.gguf) : null;
}

/** The engine an input's model runs in. */
export function engineOf(input: InputInfo): EngineName {
  return ggufOf(input) ? "llama.cpp" : "libtorch";
}

/** Threads llama.cpp runs with: the count libtorch uses, so both engines get the same cores. */
export function engineThreads(): number {
  return Math.max(1, getNumThreads());
}

const SIDE_FILES = [
  "config.json",
  "tokenizer.json",
  "tokenizer_config.json",
  "generation_config.json",
];

/** quantize(base, { engine: "llama.cpp", scheme }): HF folder → GGUF F32 → libllama's type. */
export function quantizeWithLlamaCpp(
  ctx: Pick<StageContext, "outDir" | "progress" | "metric" | "log">,
  input: InputInfo,
  scheme: LlamaCppScheme,
): ModelOutput {
  if (ggufOf(input)) {
    throw new LabError(
      `quantize: input "${input.name}" is already a llama.cpp model; quantize its libtorch source`,
    );
  }
  const { dir, adapter } = modelSource(input);
  if (adapter) {
    throw new LabError(
      `quantize: input "${input.name}" is a LoRA adapter; merge it (finetune with merge) first`,
    );
  }
  const out = join(ctx.outDir, "model");
  mkdirSync(out, { recursive: true });
  for (const f of SIDE_FILES) {
    if (existsSync(join(dir, f))) copyFileSync(join(dir, f), join(out, f));
  }
  const file = join(out, "model.gguf");
  const t0 = performance.now();
  if (isUnquantized(scheme)) {
    ctx.progress(0, 1, `writing GGUF ${scheme}`);
    exportGguf(dir, file, scheme);
  } else {
    ctx.progress(0, 2, "writing GGUF F32");
    const f32 = join(ctx.outDir, "f32.gguf");
    exportGguf(dir, f32, "F32");
    ctx.progress(1, 2, `llama_model_quantize ${scheme}`);
    quantizeGguf(f32, file, scheme, engineThreads());
    Deno.removeSync(f32);
  }
  ctx.metric("quantize_s", (performance.now() - t0) / 1000, "s");
  using m = LlamaCppModel.open(file, { contextTokens: 8 });
  // Whole-model figures (llama.cpp keeps embeddings and norms in its types too).
  ctx.metric("weight_bytes", m.weightBytes, "bytes");
  ctx.metric("parameters", m.parameters, "params");
  ctx.metric("bits_per_param", (m.weightBytes * 8) / m.parameters, "bits");
  ctx.metric("file_bytes", Deno.statSync(file).size, "bytes");
  ctx.log(`${modelLabel(input)} → llama.cpp ${scheme}: ${m.weightBytes} bytes`);
  return { model: "model", gguf: "model/model.gguf", engine: "llama.cpp", label: scheme };
}

/** Opens an input's GGUF with a context of `contextTokens` over `sequences` sequences. */
export function openLlamaCpp(
  input: InputInfo,
  contextTokens: number,
  sequences = 1,
): LlamaCppModel {
  const path = ggufOf(input);
  if (!path) throw new LabError(`input "${input.name}" is not a llama.cpp model`);
  return LlamaCppModel.open(path, { contextTokens, sequences, threads: engineThreads() });
}

/** The lab's tokenization of `text` for scoring an input's GGUF: BOS first, as scoringIds. */
export function llamaCppScoringIds(
  input: InputInfo,
  text: string,
): { ids: number[]; tokenizer: TextTokenizer } {
  const dir = join(input.artifacts, "model");
  const tokenizer = loadTokenizer(dir);
  if (!tokenizer) {
    throw new LabError(
      `evaluate: the llama.cpp model of "${input.name}" has no tokenizer.json; ` +
        "perplexity over text needs one",
    );
  }
  const bos = tokenizer.bosTokenId ?? readConfig(dir).bosTokenId;
  const ids = tokenizer.encode(text, { addSpecialTokens: false });
  return { ids: bos !== null && bos !== undefined ? [bos, ...ids] : ids, tokenizer };
}
