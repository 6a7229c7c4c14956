// loadModel: an HF checkpoint folder in, a runnable model (with its tokenizer) out.
import { type DType, linear, tidy, zeros } from "../ffi/mod.ts";
import { type ModelConfig, readConfig } from "./config.ts";
import { LlamaModel } from "./llama.ts";
import { ShardedCheckpoint } from "./safetensors.ts";
import { loadWeights, type LoadWeightsOptions } from "./weights.ts";
import { loadTokenizer } from "./tokenizer.ts";
import { isQuantizedFolder, loadQuantizedModel } from "./quant/checkpoint.ts";
import { applyAdapter } from "./lora/mod.ts";
import type { QuantizationReport } from "./quant/quantize_model.ts";
import {
  denseWeightBytes,
  quantizeOptionsOf,
  type QuantizeSpec,
  StreamingQuantizer,
} from "./quant/stream_quantizer.ts";
import { memoryRoom, requireMemory } from "./host_resources.ts";

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
  /**
   * Load straight into a quantization scheme: a name ("nf4", "int4-g128", …) or
   * `{ scheme, keep?, strict?, simulate? }` as quantizeModel takes. Each linear weight is
   * packed as it is read and its dense copy freed, so checkpoints larger than memory load;
   * the result is bit-identical to loading dense and calling quantizeModel.
   */
  quantize?: QuantizeSpec;
}

/** What loadIntoScheme gives. */
export interface SchemeLoad {
  /** The loaded model, its projections in the requested scheme. */
  model: LlamaModel;
  /** Per-module sizes and errors, as quantizeModel reports them (seconds: packing only). */
  report: QuantizationReport;
  /** Bytes the model would have held loaded dense in its compute dtype. */
  denseBytes: number;
  /** Wall seconds of the whole load (reading, packing, tokenizer). */
  seconds: number;
}

const FLOAT_DTYPES: DType[] = ["float32", "bfloat16", "float16", "float64"];

/**
 * Loads a Llama-family HF checkpoint folder (config.json + safetensors [+ tokenizer.json]),
 * or a folder written by the quantize stage (its own compute dtype), then applies `adapter`.
 */
export function loadModel(dir: string, opts: LoadModelOptions = {}): LlamaModel {
  if (opts.quantize !== undefined) {
    // The report is not returned here, so its error measurement would be wasted time.
    return loadIntoScheme(dir, { ...opts, quantize: opts.quantize, measureError: false }).model;
  }
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

/**
 * Loads an HF checkpoint folder straight into a quantization scheme: each linear weight is
 * read, packed and freed before the next, so the peak is about the packed model plus one
 * dense matrix. Returns the model with quantizeModel's report. Options as loadModel's.
 */
export function loadIntoScheme(
  dir: string,
  opts: LoadModelOptions & {
    quantize: QuantizeSpec;
    /** Called after each module is packed, e.g. for progress. */
    onModule?: (done: number, total: number, name: string) => void;
    /** int8 / fp8 matrices are packed this many values at a time (default 16M). */
    rowBlockElements?: number;
    /**
     * Measure each module's relative error for the report (default true); it costs about as
     * much time as packing. Without it the report's relError values are NaN.
     */
    measureError?: boolean;
  },
): SchemeLoad {
  const started = performance.now();
  const options = quantizeOptionsOf(opts.quantize);
  if (isQuantizedFolder(dir)) {
    throw new Error(
      `loadModel: ${dir} is already quantized (it has quantization.json); load it without ` +
        "'quantize', or quantize the original checkpoint",
    );
  }
  const { dtype, device } = computeTarget(opts);
  const config = readConfig(dir);
  mergeGenerationConfig(dir, config);
  const quantizer = StreamingQuantizer.plan(config, options, {
    dtype,
    source: dir,
    onModule: opts.onModule,
    rowBlockElements: opts.rowBlockElements,
    measureError: opts.measureError,
  });
  const peak = quantizer.estimatePeakBytes();
  if (device === "cpu") {
    requireMemory(
      peak,
      `loading ${dir} into ${options.scheme} (${dtype} compute)`,
      "Free memory, pick a smaller scheme, or load with dtype bfloat16 (embeddings and norms " +
        "take half).",
    );
  }
  const model = buildModel(dir, config, dtype, device, {
    linear: quantizer.factory,
    embedding: quantizer.table,
  }, opts.tokenizer);
  try {
    if (opts.adapter) applyAdapter(model, opts.adapter);
    return {
      model,
      report: quantizer.report(model),
      denseBytes: denseWeightBytes(config, dtype),
      seconds: (performance.now() - started) / 1000,
    };
  } catch (e) {
    model.dispose();
    throw e;
  }
}

function computeTarget(opts: LoadModelOptions): { dtype: DType; device: string } {
  const dtype = opts.dtype ?? "float32";
  if (!FLOAT_DTYPES.includes(dtype)) {
    throw new RangeError(`loadModel: dtype '${dtype}' is not one of ${FLOAT_DTYPES.join(", ")}`);
  }
  const device = opts.device ?? "cpu";
  checkDtypeRuns(dtype, device);
  return { dtype, device };
}

// Sum of the folder's safetensors file sizes (headers included).
function checkpointBytes(dir: string): number {
  let n = 0;
  for (const e of Deno.readDirSync(dir)) {
    if (e.isFile && e.name.endsWith(".safetensors")) n += Deno.statSync(`${dir}/${e.name}`).size;
  }
  return n;
}

// Reads the weights (each projection through `pack.linear`, the table through
// `pack.embedding`) and the tokenizer.
function buildModel(
  dir: string,
  config: ModelConfig,
  dtype: DType,
  device: string,
  pack: Pick<LoadWeightsOptions, "linear" | "embedding">,
  tokenizer: boolean | undefined,
): LlamaModel {
  // A checkpoint too big to sit in the page cache beside everything else is read once:
  // keeping its pages would only push out what others use.
  const room = memoryRoom();
  const dropPageCache = room !== null && checkpointBytes(dir) > room.bytes / 2;
  const weights = (() => {
    using ckpt = ShardedCheckpoint.open(dir, { dropPageCache });
    return loadWeights(ckpt, config, {
      dtype,
      device,
      ...pack,
    });
  })();
  const model = new LlamaModel(config, weights, { dtype, device, source: dir });
  try {
    if (tokenizer !== false) model.tokenizer = loadTokenizer(dir);
  } catch (e) {
    model.dispose();
    throw e;
  }
  return model;
}

function loadDense(dir: string, opts: LoadModelOptions): LlamaModel {
  const { dtype, device } = computeTarget(opts);
  const config = readConfig(dir);
  mergeGenerationConfig(dir, config);
  if (device === "cpu") {
    requireMemory(
      denseWeightBytes(config, dtype) + (256 << 20),
      `loading ${dir} (${dtype})`,
      `Load it straight into a scheme, e.g. loadModel(dir, { quantize: "nf4" }) or a quantize ` +
        "stage, or use dtype bfloat16.",
    );
  }
  return buildModel(dir, config, dtype, device, {}, opts.tokenizer);
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
