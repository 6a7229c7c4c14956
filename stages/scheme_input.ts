// How the quantize stage opens its input model in a scheme: straight from the checkpoint,
// one linear weight at a time, so a model larger than memory can be quantized.
import type { InputInfo } from "../engine/mod.ts";
import type { DType } from "../ffi/mod.ts";
import { loadIntoScheme } from "../models/load.ts";
import type { LlamaModel } from "../models/llama.ts";
import { assertFiniteWeights } from "../models/finite_weights.ts";
import { isQuantizedFolder } from "../models/quant/checkpoint.ts";
import {
  type QuantizationReport,
  quantizeModel,
  type QuantizeOptions,
} from "../models/quant/quantize_model.ts";
import { modelSource, openModel } from "./model_input.ts";

/** A model opened in a scheme, with quantizeModel's report. */
export interface SchemeModel {
  model: LlamaModel;
  report: QuantizationReport;
  /** Bytes of the same model held dense in its compute dtype. */
  denseBytes: number;
}

/**
 * Opens the model of an input stage in a quantization scheme. A plain checkpoint is read
 * straight into the scheme (each linear weight packed as it is read, its dense copy freed);
 * one with an adapter, or already quantized, is opened as before and given to quantizeModel,
 * which refuses the adapted or packed modules. NaN/Inf weights are refused either way.
 */
export function openModelInScheme(
  input: InputInfo,
  quantize: QuantizeOptions,
  opts: {
    dtype?: DType;
    device?: string;
    onModule?: (done: number, total: number, name: string) => void;
  } = {},
): SchemeModel {
  const { dir, adapter } = modelSource(input);
  if (!adapter && !isQuantizedFolder(dir)) {
    // Linear weights are checked for NaN/Inf as they are read; embeddings and norms here.
    const { model, report, denseBytes } = loadIntoScheme(dir, { ...opts, quantize });
    try {
      assertFiniteWeights(model);
    } catch (e) {
      model.dispose();
      throw e;
    }
    return { model, report, denseBytes };
  }
  const model = openModel(input, { dtype: opts.dtype, device: opts.device });
  try {
    const denseBytes = model.weightBytes();
    return { model, report: quantizeModel(model, quantize), denseBytes };
  } catch (e) {
    model.dispose();
    throw e;
  }
}
