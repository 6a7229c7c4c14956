// Tensor constructors.
import { check, L, TorchError } from "./lib.ts";
import { type DType, dtypeCode, dtypeOfArray, type TypedArray } from "./dtype.ts";
import { requireDevice } from "./device.ts";
import { type Nested, shapeArg, Tensor } from "./tensor.ts";

/** Where and as what a new tensor is made. */
export interface CreateOptions {
  /** Element type; when omitted float32 (int64 for arange), and tensor() keeps a typed array's. */
  dtype?: DType;
  /** "cpu" (the default) or "cuda:N". */
  device?: string;
}

function inferShape(data: Nested): number[] {
  const shape: number[] = [];
  let cur: Nested = data;
  while (Array.isArray(cur)) {
    shape.push(cur.length);
    cur = cur[0] as Nested;
    if (cur === undefined) break;
  }
  return shape;
}

function flatten(data: Nested, shape: number[], out: number[], depth = 0): void {
  if (depth === shape.length) {
    if (typeof data !== "number" && typeof data !== "boolean") {
      throw new TorchError("tensor(): nested arrays are ragged or hold non-numbers");
    }
    out.push(Number(data));
    return;
  }
  if (!Array.isArray(data) || data.length !== shape[depth]) {
    throw new TorchError(
      `tensor(): nested arrays are ragged: expected length ${shape[depth]} at depth ${depth}`,
    );
  }
  for (const d of data) flatten(d, shape, out, depth + 1);
}

function toTyped(values: number[], dtype: DType): ArrayBufferView {
  switch (dtype) {
    case "float32":
      return new Float32Array(values);
    case "float64":
      return new Float64Array(values);
    case "int8":
      return new Int8Array(values);
    case "uint8":
    case "bool":
      return new Uint8Array(values.map((v) => (dtype === "bool" ? (v ? 1 : 0) : v)));
    case "int16":
      return new Int16Array(values);
    case "int32":
      return new Int32Array(values);
    case "int64":
      return new BigInt64Array(values.map((v) => BigInt(Math.trunc(v))));
    default:
      return new Float32Array(values);
  }
}

/** A tensor from raw little-endian bytes of `dtype` elements. */
export function fromBytes(
  bytes: ArrayBufferView,
  dtype: DType,
  shape: readonly number[],
  device?: string,
): Tensor {
  const numel = shape.reduce((a, b) => a * b, 1);
  const need = numel * (ITEM_BYTES[dtype] ?? 1);
  if (bytes.byteLength !== need) {
    throw new TorchError(
      `fromBytes: ${bytes.byteLength} bytes given, shape [${shape}] of ${dtype} needs ${need}`,
    );
  }
  const u8 = new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const t = new Tensor(
    check(L().lt_from_data(u8, shapeArg(shape), shape.length, dtypeCode(dtype)), "fromBytes"),
  );
  if (!device || device === "cpu") return t;
  using _t = t;
  return t.to({ device });
}

const ITEM_BYTES: Partial<Record<DType, number>> = {
  float32: 4,
  float64: 8,
  float16: 2,
  bfloat16: 2,
  int8: 1,
  uint8: 1,
  int16: 2,
  int32: 4,
  int64: 8,
  bool: 1,
  float8_e4m3fn: 1,
};

/**
 * A tensor from numbers, nested arrays or a typed array. Numbers default to
 * float32; typed arrays keep their element type unless `dtype` says otherwise.
 */
export function tensor(
  data: Nested | TypedArray,
  opts: CreateOptions & { shape?: readonly number[] } = {},
): Tensor {
  let typed: ArrayBufferView;
  let dtype: DType;
  let shape: readonly number[];
  if (ArrayBuffer.isView(data)) {
    const arr = data as TypedArray;
    const natural = opts.dtype === "float16" || opts.dtype === "bfloat16"
      ? opts.dtype
      : dtypeOfArray(arr);
    shape = opts.shape ?? [arr.length];
    typed = arr;
    dtype = natural;
  } else {
    const inferred = inferShape(data);
    const flat: number[] = [];
    flatten(data, inferred, flat);
    shape = opts.shape ?? inferred;
    dtype = opts.dtype ?? (typeof data === "boolean" ? "bool" : "float32");
    if (dtype === "float16" || dtype === "bfloat16" || dtype === "float8_e4m3fn") {
      using f = fromBytes(toTyped(flat, "float32"), "float32", shape);
      return f.to({ dtype, device: opts.device });
    }
    typed = toTyped(flat, dtype);
  }
  const numel = shape.reduce((a, b) => a * b, 1);
  const itemBytes = ITEM_BYTES[dtype] ?? 1;
  if (numel * itemBytes !== typed.byteLength) {
    throw new TorchError(
      `tensor(): shape [${shape}] needs ${numel} elements, the data has ${
        typed.byteLength / itemBytes
      }`,
    );
  }
  const t = fromBytes(typed, dtype, shape);
  const wanted = opts.dtype && opts.dtype !== dtype ? opts.dtype : undefined;
  if (!wanted && (!opts.device || opts.device === "cpu")) return t;
  using _t = t;
  return t.to({ dtype: wanted, device: opts.device });
}

function dev(opts: CreateOptions) {
  return requireDevice(opts.device ?? "cpu");
}

/** A tensor filled with `value`. */
export function full(shape: readonly number[], value: number, opts: CreateOptions = {}): Tensor {
  const d = dev(opts);
  const code = dtypeCode(opts.dtype ?? "float32");
  return new Tensor(
    check(L().lt_full(shapeArg(shape), shape.length, value, code, d.type, d.index), "full"),
  );
}

/** A tensor of zeros. */
export function zeros(shape: readonly number[], opts: CreateOptions = {}): Tensor {
  return full(shape, 0, opts);
}

/** A tensor of ones. */
export function ones(shape: readonly number[], opts: CreateOptions = {}): Tensor {
  return full(shape, 1, opts);
}

/** Values from `start` (inclusive) to `end` (exclusive); int64 by default. */
export function arange(
  start: number,
  end?: number,
  step = 1,
  opts: CreateOptions = {},
): Tensor {
  const [a, b] = end === undefined ? [0, start] : [start, end];
  const d = dev(opts);
  const code = dtypeCode(opts.dtype ?? "int64");
  return new Tensor(check(L().lt_arange(a, b, step, code, d.type, d.index), "arange"));
}

function random(kind: number, shape: readonly number[], opts: CreateOptions, name: string) {
  const d = dev(opts);
  const code = dtypeCode(opts.dtype ?? "float32");
  return new Tensor(
    check(L().lt_random(kind, shapeArg(shape), shape.length, code, d.type, d.index), name),
  );
}

/** Standard normal samples. */
export function randn(shape: readonly number[], opts: CreateOptions = {}): Tensor {
  return random(0, shape, opts, "randn");
}

/** Uniform samples in [0, 1). */
export function rand(shape: readonly number[], opts: CreateOptions = {}): Tensor {
  return random(1, shape, opts, "rand");
}

/** Seeds libtorch's generators (CPU and CUDA). */
export function manualSeed(seed: number): void {
  L().lt_manual_seed(BigInt(seed));
}
