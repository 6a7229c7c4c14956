// The torch binding's public surface, exported from the project's mod.ts as `torch`.
import { L } from "./lib.ts";

export { setOpenMpWaiting, TorchError } from "./lib.ts";
export {
  type DeviceSpec,
  type DType,
  isFloating,
  ITEM_SIZE,
  type TensorData,
  type TypedArray,
} from "./dtype.ts";
export { type Nested, type Scalarish, Tensor } from "./tensor.ts";
export { keep, liveTensors, type Owned, tidy } from "./scope.ts";
export {
  arange,
  type CreateOptions,
  fromBytes,
  full,
  manualSeed,
  ones,
  rand,
  randn,
  tensor,
  zeros,
} from "./create.ts";
export {
  cat,
  crossEntropy,
  dropout,
  embedding,
  hasFusedAttention,
  layerNorm,
  linear,
  linearAsync,
  rmsNorm,
  scaledDotProductAttention,
  stack,
  where,
} from "./functional.ts";
export { AdamW, type AdamWOptions, clipGradNorm, noGrad } from "./autograd.ts";
export { cuda, memory, type MemoryStats, requireDevice } from "./device.ts";

/** The libtorch version the shim was built against, e.g. "1.13.0". */
export function version(): string {
  return Deno.UnsafePointerView.getCString(L().lt_version()!);
}

/** Sets libtorch's intra-op thread count. */
export function setNumThreads(n: number): void {
  L().lt_set_num_threads(n);
}

/** libtorch's intra-op thread count. */
export function getNumThreads(): number {
  return L().lt_get_num_threads();
}

export {
  dequantizeWeight,
  hasFloat8,
  KERNEL_ISAS,
  type KernelIsa,
  kernelIsa,
  QUANT_KIND,
  quantizedLinear,
  quantizedRows,
  quantizeWeight,
  type QuantKind,
} from "./quant.ts";
