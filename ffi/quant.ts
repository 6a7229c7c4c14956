// Bindings of the quantized-weight kernels (quant.cpp).
import { check, checkStatus, L } from "./lib.ts";
import { type DType, dtypeCode } from "./dtype.ts";
import { handleArray, Tensor } from "./tensor.ts";

/** Kernel format codes of quant.cpp. */
export const QUANT_KIND = { int8: 0, nf4: 1, fp4: 2, int4: 3, fp8: 4, half: 5 } as const;
/** A kernel format name. */
export type QuantKind = keyof typeof QUANT_KIND;

/** Instruction sets of the packed-weight kernels, slowest first. */
export const KERNEL_ISAS = ["scalar", "avx2", "avx512", "vnni"] as const;
/** One of KERNEL_ISAS. */
export type KernelIsa = typeof KERNEL_ISAS[number];

/**
 * The instruction set the packed-weight kernels use: the best the CPU has, unless
 * `LAB_KERNELS` (scalar | avx2 | avx512 | vnni) lowers it. Given `force`, switches to it (clamped to
 * what the CPU has) and returns the one now in use — tests use this to cover every path.
 */
export function kernelIsa(force?: KernelIsa): KernelIsa {
  const code = L().lt_q_kernel_isa(force === undefined ? -1 : KERNEL_ISAS.indexOf(force));
  return KERNEL_ISAS[code];
}

/** Whether this libtorch has float8 dtypes (2.1+). */
export function hasFloat8(): boolean {
  return L().lt_q_has_float8() === 1;
}

/**
 * Quantizes a weight; returns the storage tensors of the format (see quant.cpp).
 * `block` is the block or group size, `block2` the double-quantization block (0 = off).
 */
export function quantizeWeight(kind: QuantKind, w: Tensor, block = 64, block2 = 0): Tensor[] {
  const out = new BigUint64Array(4);
  const n = checkStatus(
    L().lt_q_quantize(
      QUANT_KIND[kind],
      w.handle,
      new BigInt64Array([BigInt(block), BigInt(block2)]),
      out,
    ),
    `quantize ${kind}`,
  );
  return Array.from({ length: n }, (_, i) => new Tensor(Deno.UnsafePointer.create(out[i])!));
}

function params(outF: number, inF: number, block: number, block2: number): BigInt64Array {
  return new BigInt64Array([BigInt(outF), BigInt(inF), BigInt(block), BigInt(block2)]);
}

/** The dense [out, in] weight; `composed` uses the tensor-op reference path. */
export function dequantizeWeight(
  kind: QuantKind,
  parts: readonly Tensor[],
  shape: [number, number],
  opts: { block?: number; block2?: number; dtype?: DType; composed?: boolean } = {},
): Tensor {
  return new Tensor(
    check(
      L().lt_q_dequantize(
        QUANT_KIND[kind],
        handleArray(parts),
        parts.length,
        params(shape[0], shape[1], opts.block ?? 64, opts.block2 ?? 0),
        dtypeCode(opts.dtype ?? "float32"),
        opts.composed ? 1 : 0,
      ),
      `dequantize ${kind}`,
    ),
  );
}

/** Rows `ids` of the dense weight as float32 `[...ids.shape, in]`, dequantizing only those rows. */
export function quantizedRows(
  kind: QuantKind,
  parts: readonly Tensor[],
  shape: [number, number],
  block: number,
  block2: number,
  ids: Tensor,
): Tensor {
  return new Tensor(
    check(
      L().lt_q_rows(
        QUANT_KIND[kind],
        handleArray(parts),
        parts.length,
        params(shape[0], shape[1], block, block2),
        ids.handle,
      ),
      `quantized embedding lookup (${kind})`,
    ),
  );
}

/** `x @ dequant(W)ᵀ + bias` in one native call. */
export function quantizedLinear(
  kind: QuantKind,
  x: Tensor,
  parts: readonly Tensor[],
  shape: [number, number],
  block: number,
  block2: number,
  bias: Tensor | null,
): Tensor {
  return new Tensor(
    check(
      L().lt_q_linear(
        QUANT_KIND[kind],
        x.handle,
        handleArray(parts),
        parts.length,
        params(shape[0], shape[1], block, block2),
        bias ? bias.handle : null,
      ),
      `quantized linear (${kind})`,
    ),
  );
}
