// loadModel: an HF checkpoint folder in, a runnable model (with its tokenizer) out.
import { type DType, linear, tidy, zeros } from "../ffi/mod.ts";
import { type ModelConfig, readConfig } from "./config.ts";
import { LlamaModel } from "./llama.ts";
import { ShardedCheckpoint } from "./safetensors.ts";
import { loadWeights } from "./weights.ts";
import { loadTokenizer } from "./tokenizer.ts";
import { isQuantizedFolder, loadQuantizedModel } from "./quant/checkpoint.ts";
import { applyAdapter } from "./lora.ts";

/** Options of loadModel. */
export interface LoadModelOptions {
  /** Compute and storage dtype of the weights (default float32). */
  dtype?: DType;
  /** "cpu" (default), "cuda" or "cuda:N". */
  device?: string;
  /** Whether to load tokenizer.json when present (default true). */
  tokenizer?: boolean;
  /** A LoRA adapter folder (PEFT format, made here or by PEFT) to apply after loading. */
  adapter?: string;
}

const FLOAT_DTYPES: DType[] = ["float32", "bfloat16", "float16", "float64"];

/**
 * Loads a Llama-family HF checkpoint folder (config.json + safetensors [+ tokenizer.json]),
 * or a folder written by the quantize stage (its own compute dtype), then applies `adapter`.
 */
export function loadModel(dir: string, opts: LoadModelOptions = {}): LlamaModel {
  const model = isQuantizedFolder(dir)
    ? loadQuantizedModel(dir, { device: opts.device })
    : loadDense(dir, opts);
  if (opts.adapter) {
    try {
      applyAdapter(model, opts.adapter);
    } catch (e) {
      model.dispose();
      throw e;
    }
  }
  return model;
}

function loadDense(dir: string, opts: LoadModelOptions): LlamaModel {
  const dtype = opts.dtype ?? "float32";
  if (!FLOAT_DTYPES.includes(dtype)) {
    throw new RangeError(`loadModel: dtype '${dtype}' is not one of ${FLOAT_DTYPES.join(", ")}`);
  }
  const device = opts.device ?? "cpu";
  checkDtypeRuns(dtype, device);
  const config = readConfig(dir);
  mergeGenerationConfig(dir, config);
  const weights = (() => {
    using ckpt = ShardedCheckpoint.open(dir);
    return loadWeights(ckpt, config, { dtype, device });
  })();
  const model = new LlamaModel(config, weights, { dtype, device, source: dir });
  try {
    if (opts.tokenizer !== false) model.tokenizer = loadTokenizer(dir);
  } catch (e) {
    model.dispose();
    throw e;
  }
  return model;
}

// libtorch 1.13 has no float16 matmul on the CPU; say so before loading.
function checkDtypeRuns(dtype: DType, device: string): void {
  if (dtype !== "float16" || device !== "cpu") return;
  try {
    tidy(() => linear(zeros([1, 2], { dtype }), zeros([2, 2], { dtype })));
  } catch (e) {
    throw new RangeError(
      `loadModel: float16 matrix multiplication is not available on the CPU with this libtorch ` +
        `(${(e as Error).message}). Use dtype "bfloat16" or "float32" on the CPU.`,
    );
  }
}

// generation_config.json may list more stop ids than config.json (Llama 3 instruct).
function mergeGenerationConfig(dir: string, config: ModelConfig): void {
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(Deno.readTextFileSync(`${dir.replace(/\/+$/, "")}/generation_config.json`));
  } catch {
    return;
  }
  const ids = (v: unknown) => (Array.isArray(v) ? v : [v]).filter((x) => Number.isInteger(x));
  for (const id of ids(raw.eos_token_id)) {
    if (!config.eosTokenIds.includes(id)) config.eosTokenIds.push(id);
  }
  if (config.padTokenId === null && Number.isInteger(raw.pad_token_id)) {
    config.padTokenId = raw.pad_token_id as number;
  }
}
