// Element types and devices: names users write, codes libtorch uses.
import { TorchError } from "./lib.ts";

/** Element types the binding supports. */
export type DType =
  | "float32"
  | "float16"
  | "bfloat16"
  | "float64"
  | "int8"
  | "uint8"
  | "int16"
  | "int32"
  | "int64"
  | "bool"
  | "float8_e4m3fn";

// c10::ScalarType values; stable across libtorch 1.x and 2.x.
const CODES: Record<DType, number> = {
  uint8: 0,
  int8: 1,
  int16: 2,
  int32: 3,
  int64: 4,
  float16: 5,
  float32: 6,
  float64: 7,
  bool: 11,
  bfloat16: 15,
  float8_e4m3fn: 24,
};
const NAMES: Record<number, DType> = Object.fromEntries(
  Object.entries(CODES).map(([k, v]) => [v, k as DType]),
);

/** Bytes per element. */
export const ITEM_SIZE: Record<DType, number> = {
  uint8: 1,
  int8: 1,
  int16: 2,
  int32: 4,
  int64: 8,
  float16: 2,
  float32: 4,
  float64: 8,
  bool: 1,
  bfloat16: 2,
  float8_e4m3fn: 1,
};

/** libtorch's code for a dtype name, or a TorchError naming the valid ones. */
export function dtypeCode(d: DType | string): number {
  const c = CODES[d as DType];
  if (c === undefined) {
    throw new TorchError(`unknown dtype '${d}': use one of ${Object.keys(CODES).join(", ")}`);
  }
  return c;
}

/** The dtype name for a libtorch code. */
export function dtypeName(code: number): DType {
  const n = NAMES[code];
  if (!n) throw new TorchError(`libtorch returned dtype code ${code}, which the binding lacks`);
  return n;
}

/** True for floating-point dtypes. */
export function isFloating(d: DType): boolean {
  return d.startsWith("float") || d === "bfloat16";
}

/** Typed arrays accepted as tensor data. */
export type TypedArray =
  | Float32Array
  | Float64Array
  | Int8Array
  | Uint8Array
  | Int16Array
  | Int32Array
  | BigInt64Array
  | Uint16Array;

/** What `Tensor#data()` returns: a TypedArray, never Uint16Array (16-bit floats are widened). */
export type TensorData = Exclude<TypedArray, Uint16Array>;

/** The dtype a typed array holds by default. */
export function dtypeOfArray(a: TypedArray): DType {
  if (a instanceof Float32Array) return "float32";
  if (a instanceof Float64Array) return "float64";
  if (a instanceof Int8Array) return "int8";
  if (a instanceof Uint8Array) return "uint8";
  if (a instanceof Int16Array) return "int16";
  if (a instanceof Int32Array) return "int32";
  if (a instanceof BigInt64Array) return "int64";
  throw new TorchError("Uint16Array data needs an explicit dtype: 'float16' or 'bfloat16'");
}

/** A parsed device: libtorch's type code (0 cpu, 1 cuda) and index. */
export interface DeviceSpec {
  /** libtorch's device type code: 0 for CPU, 1 for CUDA. */
  type: number;
  /** Device ordinal (the N of "cuda:N"); 0 for CPU. */
  index: number;
  /** The normalised name: "cpu" or "cuda:N" (plain "cuda" becomes "cuda:0"). */
  name: string;
}

/** Parses "cpu", "cuda" or "cuda:N". */
export function parseDevice(d: string): DeviceSpec {
  if (d === "cpu") return { type: 0, index: 0, name: "cpu" };
  const m = /^cuda(?::(\d+))?$/.exec(d);
  if (!m) throw new TorchError(`unknown device '${d}': use 'cpu', 'cuda' or 'cuda:N'`);
  const index = m[1] ? Number(m[1]) : 0;
  return { type: 1, index, name: `cuda:${index}` };
}
