// loadModel: an HF checkpoint folder in, a runnable model (with its tokenizer) out.
import { type DType } from "../ffi/mod.ts";
import { readConfig } from "./config.ts";
import { LlamaModel } from "./llama.ts";
import { ShardedCheckpoint } from "./safetensors.ts";
import { loadWeights } from "./weights.ts";
import { loadTokenizer } from "./tokenizer.ts";

/** Options of loadModel. */
export interface LoadModelOptions {
  /** Compute and storage dtype of the weights (default float32). */
  dtype?: DType;
  /** "cpu" (default), "cuda" or "cuda:N". */
  device?: string;
  /** Whether to load tokenizer.json when present (default true). */
  tokenizer?: boolean;
}

const FLOAT_DTYPES: DType[] = ["float32", "bfloat16", "float16", "float64"];

/** Loads a Llama-family HF checkpoint folder (config.json + safetensors [+ tokenizer.json]). */
export function loadModel(dir: string, opts: LoadModelOptions = {}): LlamaModel {
  const dtype = opts.dtype ?? "float32";
  if (!FLOAT_DTYPES.includes(dtype)) {
    throw new RangeError(`loadModel: dtype '${dtype}' is not one of ${FLOAT_DTYPES.join(", ")}`);
  }
  const device = opts.device ?? "cpu";
  const config = readConfig(dir);
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
