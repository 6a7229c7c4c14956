// The TypeScript Tensor over the shim's opaque handles.
import { check, checkStatus, L, lastError, TorchError } from "./lib.ts";
import { type DType, dtypeCode, dtypeName, ITEM_SIZE, type TensorData } from "./dtype.ts";
import { BINARY, DIM_OP, INDEX_OP, REDUCE, RSCALAR, SHAPE_OP, UNARY } from "./ops.ts";
import { track, untrack } from "./scope.ts";
import { requireDevice } from "./device.ts";

const MAX_DIMS = 64;
// Reused for every call that passes or returns a shape; calls are synchronous.
const shapeScratch = new BigInt64Array(MAX_DIMS);
const deviceScratch = new Int32Array(2);
const itemScratch = new Float64Array(1);
const pairScratch = new BigUint64Array(2);

/** Copies `dims` into the scratch buffer for a call. */
export function shapeArg(dims: readonly number[]): BigInt64Array {
  if (dims.length > MAX_DIMS) throw new TorchError(`too many dimensions (${dims.length})`);
  for (let i = 0; i < dims.length; i++) {
    const d = dims[i];
    if (!Number.isInteger(d)) {
      throw new TorchError(`shape entries must be integers, got ${JSON.stringify(dims)}`);
    }
    shapeScratch[i] = BigInt(d);
  }
  return shapeScratch;
}

/** Packs handles into a pointer array for calls taking several tensors. */
export function handleArray(ts: readonly Tensor[]): BigUint64Array {
  const out = new BigUint64Array(ts.length);
  for (let i = 0; i < ts.length; i++) out[i] = BigInt(Deno.UnsafePointer.value(ts[i].handle));
  return out;
}

function fromHandleValue(v: bigint): Tensor {
  return new Tensor(Deno.UnsafePointer.create(v)!);
}

const registry = new FinalizationRegistry<Deno.PointerObject>((ptr) => {
  L().lt_free(ptr);
  untrack();
});

/** A tensor operand, or a number applied to every element (binary ops take either). */
export type Scalarish = Tensor | number;
/** A number, a boolean, or arrays of them nested to any depth (one level per dimension). */
export type Nested = number | boolean | Nested[];

/** A libtorch tensor. Free it with dispose(), `using`, or a tidy() scope. */
export class Tensor {
  #ptr: Deno.PointerObject | null;
  #shape: number[] | null = null;
  #dtype: DType | null = null;

  /** Wraps a handle returned by the shim; the Tensor owns it. */
  constructor(ptr: Deno.PointerObject) {
    this.#ptr = ptr;
    track(this);
    registry.register(this, ptr, this);
  }

  /** The native handle; throws once the tensor was freed. */
  get handle(): Deno.PointerObject {
    if (this.#ptr === null) {
      throw new TorchError(
        "tensor used after dispose(): it was freed by dispose(), `using`, or the end of a " +
          "tidy() scope. Return it from the tidy() callback or call keep(t) to keep it alive.",
      );
    }
    return this.#ptr;
  }

  /** True once freed. */
  get isDisposed(): boolean {
    return this.#ptr === null;
  }

  /** Frees the native tensor now. Safe to call twice. */
  dispose(): void {
    if (this.#ptr === null) return;
    registry.unregister(this);
    L().lt_free(this.#ptr);
    this.#ptr = null;
    untrack();
  }

  /** Frees the tensor at the end of a `using` block; same as dispose(). */
  [Symbol.dispose](): void {
    this.dispose();
  }

  // ------------------------------------------------------------ metadata

  /** Sizes of each dimension. */
  get shape(): number[] {
    if (this.#shape) return this.#shape;
    const n = checkStatus(L().lt_shape(this.handle, shapeScratch), "shape");
    const s = new Array<number>(n);
    for (let i = 0; i < n; i++) s[i] = Number(shapeScratch[i]);
    this.#shape = s;
    return s;
  }

  /** Number of dimensions. */
  get ndim(): number {
    return this.shape.length;
  }

  /** Number of elements. */
  get numel(): number {
    let n = 1;
    for (const d of this.shape) n *= d;
    return n;
  }

  /** Element type. */
  get dtype(): DType {
    if (this.#dtype) return this.#dtype;
    this.#dtype = dtypeName(checkStatus(L().lt_dtype(this.handle), "dtype"));
    return this.#dtype;
  }

  /** "cpu" or "cuda:N". */
  get device(): string {
    checkStatus(L().lt_device(this.handle, deviceScratch), "device");
    return deviceScratch[0] === 1 ? `cuda:${deviceScratch[1]}` : "cpu";
  }

  /** Whether autograd tracks operations on this tensor. */
  get requiresGrad(): boolean {
    return checkStatus(L().lt_requires_grad(this.handle), "requiresGrad") === 1;
  }

  /** Size of dimension `dim` (negative counts from the end). */
  size(dim: number): number {
    const s = this.shape;
    const d = dim < 0 ? s.length + dim : dim;
    if (d < 0 || d >= s.length) {
      throw new TorchError(`dimension ${dim} out of range for shape [${s}]`);
    }
    return s[d];
  }

  /** Bytes of its elements. */
  get nbytes(): number {
    return this.numel * ITEM_SIZE[this.dtype];
  }

  /** A one-line summary (shape, dtype, device), or "Tensor(disposed)" once freed. */
  toString(): string {
    return this.isDisposed
      ? "Tensor(disposed)"
      : `Tensor(shape=[${this.shape}], dtype=${this.dtype}, device=${this.device})`;
  }

  // ------------------------------------------------------------ read back

  /** The raw little-endian bytes of its elements, in row-major order. */
  bytes(): Uint8Array {
    const out = new Uint8Array(this.nbytes);
    checkStatus(L().lt_copy_out(this.handle, out, BigInt(out.byteLength)), "bytes");
    return out;
  }

  /** Elements as a typed array (float16/bfloat16 are widened to Float32Array). */
  data(): TensorData {
    const dt = this.dtype;
    if (dt === "float16" || dt === "bfloat16" || dt === "float8_e4m3fn") {
      using f = this.to("float32");
      return f.data();
    }
    const buf = this.bytes().buffer;
    switch (dt) {
      case "float32":
        return new Float32Array(buf);
      case "float64":
        return new Float64Array(buf);
      case "int8":
        return new Int8Array(buf);
      case "int16":
        return new Int16Array(buf);
      case "int32":
        return new Int32Array(buf);
      case "int64":
        return new BigInt64Array(buf);
      default:
        return new Uint8Array(buf);
    }
  }

  /** Elements as a flat array of numbers, in row-major order. */
  values(): number[] {
    const d = this.data();
    const out = new Array<number>(d.length);
    for (let i = 0; i < d.length; i++) out[i] = Number(d[i]);
    return out;
  }

  /** Elements as nested arrays of numbers (booleans for bool). */
  toArray(): Nested {
    const flat = this.data();
    const isBool = this.dtype === "bool";
    const conv = (i: number): number | boolean => {
      const v = flat[i];
      return isBool ? v !== 0 : Number(v);
    };
    const shape = this.shape;
    if (shape.length === 0) return conv(0);
    let pos = 0;
    const build = (d: number): Nested[] => {
      const out: Nested[] = new Array(shape[d]);
      for (let i = 0; i < shape[d]; i++) {
        out[i] = d === shape.length - 1 ? conv(pos++) : build(d + 1);
      }
      return out;
    };
    return build(0);
  }

  /** The value of a one-element tensor. */
  item(): number {
    checkStatus(L().lt_item(this.handle, itemScratch), "item");
    return itemScratch[0];
  }

  // ------------------------------------------------------------ helpers

  #unary(op: number, name: string): Tensor {
    return new Tensor(check(L().lt_unary(op, this.handle), name));
  }

  #binary(op: number, other: Scalarish, name: string): Tensor {
    if (typeof other === "number") {
      return new Tensor(check(L().lt_binary_scalar(op, this.handle, other), name));
    }
    return new Tensor(check(L().lt_binary(op, this.handle, other.handle), name));
  }

  #reduce(op: number, dims: number | number[] | undefined, keepdim: boolean, name: string) {
    const d = dims === undefined ? [] : Array.isArray(dims) ? dims : [dims];
    return new Tensor(
      check(L().lt_reduce(op, this.handle, shapeArg(d), d.length, keepdim ? 1 : 0), name),
    );
  }

  #dimOp(op: number, dim: number, arg: number, name: string): Tensor {
    return new Tensor(check(L().lt_dim_op(op, this.handle, BigInt(dim), arg), name));
  }

  #shapeOp(op: number, dims: readonly number[], name: string): Tensor {
    return new Tensor(
      check(L().lt_shape_op(op, this.handle, shapeArg(dims), dims.length), name),
    );
  }

  #indexOp(op: number, dim: number, index: Tensor, src: Tensor | null, name: string): Tensor {
    return new Tensor(
      check(
        L().lt_index_op(op, this.handle, BigInt(dim), index.handle, src ? src.handle : null),
        name,
      ),
    );
  }

  // ------------------------------------------------------------ elementwise

  /** Elementwise `this + o`, broadcasting; `o` may be a number. */
  add(o: Scalarish): Tensor {
    return this.#binary(BINARY.add, o, "add");
  }
  /** Elementwise `this - o`, broadcasting; `o` may be a number. */
  sub(o: Scalarish): Tensor {
    return this.#binary(BINARY.sub, o, "sub");
  }
  /** Elementwise `this * o`, broadcasting; `o` may be a number. */
  mul(o: Scalarish): Tensor {
    return this.#binary(BINARY.mul, o, "mul");
  }
  /** Elementwise true division `this / o` (integers give a float result). */
  div(o: Scalarish): Tensor {
    return this.#binary(BINARY.div, o, "div");
  }
  /** Elementwise `this ** o`, broadcasting; `o` may be a number. */
  pow(o: Scalarish): Tensor {
    return this.#binary(BINARY.pow, o, "pow");
  }
  /** `s - this`. */
  rsub(s: number): Tensor {
    return new Tensor(check(L().lt_binary_scalar(RSCALAR.rsub, this.handle, s), "rsub"));
  }
  /** Elementwise larger of `this` and `o` (NaN if either is NaN). */
  maximum(o: Scalarish): Tensor {
    return this.#binary(BINARY.maximum, o, "maximum");
  }
  /** Elementwise smaller of `this` and `o` (NaN if either is NaN). */
  minimum(o: Scalarish): Tensor {
    return this.#binary(BINARY.minimum, o, "minimum");
  }
  /** Elementwise `this == o` as a bool tensor. */
  eq(o: Scalarish): Tensor {
    return this.#binary(BINARY.eq, o, "eq");
  }
  /** Elementwise `this != o` as a bool tensor. */
  ne(o: Scalarish): Tensor {
    return this.#binary(BINARY.ne, o, "ne");
  }
  /** Elementwise `this < o` as a bool tensor. */
  lt(o: Scalarish): Tensor {
    return this.#binary(BINARY.lt, o, "lt");
  }
  /** Elementwise `this <= o` as a bool tensor. */
  le(o: Scalarish): Tensor {
    return this.#binary(BINARY.le, o, "le");
  }
  /** Elementwise `this > o` as a bool tensor. */
  gt(o: Scalarish): Tensor {
    return this.#binary(BINARY.gt, o, "gt");
  }
  /** Elementwise `this >= o` as a bool tensor. */
  ge(o: Scalarish): Tensor {
    return this.#binary(BINARY.ge, o, "ge");
  }
  /** Elementwise bitwise AND of integer or bool tensors. */
  bitwiseAnd(o: Scalarish): Tensor {
    return this.#binary(BINARY.bitwiseAnd, o, "bitwiseAnd");
  }
  /** Elementwise bitwise OR of integer or bool tensors. */
  bitwiseOr(o: Scalarish): Tensor {
    return this.#binary(BINARY.bitwiseOr, o, "bitwiseOr");
  }
  /** Elementwise bitwise XOR of integer or bool tensors. */
  bitwiseXor(o: Scalarish): Tensor {
    return this.#binary(BINARY.bitwiseXor, o, "bitwiseXor");
  }
  /** Elementwise left shift of integers by `o` bits. */
  shiftLeft(o: Scalarish): Tensor {
    return this.#binary(BINARY.shiftLeft, o, "shiftLeft");
  }
  /** Elementwise right shift of integers by `o` bits (arithmetic for signed types). */
  shiftRight(o: Scalarish): Tensor {
    return this.#binary(BINARY.shiftRight, o, "shiftRight");
  }
  /** Elementwise remainder with the sign of the divisor, like Python's `%`. */
  remainder(o: Scalarish): Tensor {
    return this.#binary(BINARY.remainder, o, "remainder");
  }
  /** Elementwise division rounded toward negative infinity, like Python's `//`. */
  floorDivide(o: Scalarish): Tensor {
    return this.#binary(BINARY.floorDivide, o, "floorDivide");
  }
  /** Elementwise logical AND (nonzero is true) as a bool tensor. */
  logicalAnd(o: Tensor): Tensor {
    return this.#binary(BINARY.logicalAnd, o, "logicalAnd");
  }
  /** Elementwise logical OR (nonzero is true) as a bool tensor. */
  logicalOr(o: Tensor): Tensor {
    return this.#binary(BINARY.logicalOr, o, "logicalOr");
  }
  /** Matrix product with torch.matmul's broadcasting over leading (batch) dimensions. */
  matmul(o: Tensor): Tensor {
    return this.#binary(BINARY.matmul, o, "matmul");
  }
  /** matmul on a worker thread, leaving the event loop free. */
  async matmulAsync(o: Tensor): Promise<Tensor> {
    const p = await L().lt_binary_async(BINARY.matmul, this.handle, o.handle);
    if (p === null) throw new TorchError(`matmul: ${lastError(true)}`);
    return new Tensor(p);
  }
  /** Batched matrix product of [b, n, m] and [b, m, p] into [b, n, p], without broadcasting. */
  bmm(o: Tensor): Tensor {
    return this.#binary(BINARY.bmm, o, "bmm");
  }

  /** Elementwise `-this`. */
  neg(): Tensor {
    return this.#unary(UNARY.neg, "neg");
  }
  /** Elementwise absolute value. */
  abs(): Tensor {
    return this.#unary(UNARY.abs, "abs");
  }
  /** Elementwise e to the power of each element. */
  exp(): Tensor {
    return this.#unary(UNARY.exp, "exp");
  }
  /** Elementwise natural logarithm. */
  log(): Tensor {
    return this.#unary(UNARY.log, "log");
  }
  /** Elementwise `log(1 + x)`, accurate for small x. */
  log1p(): Tensor {
    return this.#unary(UNARY.log1p, "log1p");
  }
  /** Elementwise square root. */
  sqrt(): Tensor {
    return this.#unary(UNARY.sqrt, "sqrt");
  }
  /** Elementwise reciprocal square root, `1 / sqrt(x)`. */
  rsqrt(): Tensor {
    return this.#unary(UNARY.rsqrt, "rsqrt");
  }
  /** Elementwise hyperbolic tangent. */
  tanh(): Tensor {
    return this.#unary(UNARY.tanh, "tanh");
  }
  /** Elementwise logistic function, `1 / (1 + exp(-x))`. */
  sigmoid(): Tensor {
    return this.#unary(UNARY.sigmoid, "sigmoid");
  }
  /** Elementwise SiLU (swish), `x * sigmoid(x)`. */
  silu(): Tensor {
    return this.#unary(UNARY.silu, "silu");
  }
  /** GELU; `approximate: "tanh"` for the tanh form. */
  gelu(approximate: "none" | "tanh" = "none"): Tensor {
    return this.#unary(approximate === "tanh" ? UNARY.geluTanh : UNARY.gelu, "gelu");
  }
  /** Elementwise `max(x, 0)`. */
  relu(): Tensor {
    return this.#unary(UNARY.relu, "relu");
  }
  /** Elementwise sine (radians). */
  sin(): Tensor {
    return this.#unary(UNARY.sin, "sin");
  }
  /** Elementwise cosine (radians). */
  cos(): Tensor {
    return this.#unary(UNARY.cos, "cos");
  }
  /** Elementwise rounding to the nearest integer, ties to even. */
  round(): Tensor {
    return this.#unary(UNARY.round, "round");
  }
  /** Elementwise rounding toward negative infinity. */
  floor(): Tensor {
    return this.#unary(UNARY.floor, "floor");
  }
  /** Elementwise rounding toward positive infinity. */
  ceil(): Tensor {
    return this.#unary(UNARY.ceil, "ceil");
  }
  /** Elementwise rounding toward zero. */
  trunc(): Tensor {
    return this.#unary(UNARY.trunc, "trunc");
  }
  /** Elementwise sign: -1, 0 or 1. */
  sign(): Tensor {
    return this.#unary(UNARY.sign, "sign");
  }
  /** Elementwise bitwise NOT (logical NOT for bool). */
  bitwiseNot(): Tensor {
    return this.#unary(UNARY.bitwiseNot, "bitwiseNot");
  }
  /** Elementwise logical NOT (zero becomes true) as a bool tensor. */
  logicalNot(): Tensor {
    return this.#unary(UNARY.logicalNot, "logicalNot");
  }
  /** This tensor in row-major contiguous memory (a copy only when it is not already). */
  contiguous(): Tensor {
    return this.#unary(UNARY.contiguous, "contiguous");
  }
  /** A copy with its own storage, still part of the autograd graph. */
  clone(): Tensor {
    return this.#unary(UNARY.clone, "clone");
  }
  /** A tensor sharing storage, outside the autograd graph. */
  detach(): Tensor {
    return this.#unary(UNARY.detach, "detach");
  }
  /** Bool tensor, true where the element is NaN. */
  isnan(): Tensor {
    return this.#unary(UNARY.isnan, "isnan");
  }
  /** Bool tensor, true where the element is +Infinity or -Infinity. */
  isinf(): Tensor {
    return this.#unary(UNARY.isinf, "isinf");
  }
  /** Bool tensor, true where the element is neither NaN nor infinite. */
  isfinite(): Tensor {
    return this.#unary(UNARY.isfinite, "isfinite");
  }
  /** Elementwise `1 / x`. */
  reciprocal(): Tensor {
    return this.#unary(UNARY.reciprocal, "reciprocal");
  }
  /** Elementwise `x * x`. */
  square(): Tensor {
    return this.#unary(UNARY.square, "square");
  }
  /** Elementwise Gauss error function. */
  erf(): Tensor {
    return this.#unary(UNARY.erf, "erf");
  }
  /** Clamps into [min, max]; either bound may be omitted. */
  clamp(min?: number | null, max?: number | null): Tensor {
    const hasLo = min !== undefined && min !== null;
    const hasHi = max !== undefined && max !== null;
    return new Tensor(
      check(
        L().lt_clamp(this.handle, hasLo ? min : 0, hasHi ? max : 0, hasLo ? 1 : 0, hasHi ? 1 : 0),
        "clamp",
      ),
    );
  }

  // ------------------------------------------------------------ reductions

  /** Sum over all elements, or over `dims` (kept as size 1 when `keepdim`). */
  sum(dims?: number | number[], keepdim = false): Tensor {
    return this.#reduce(REDUCE.sum, dims, keepdim, "sum");
  }
  /** Arithmetic mean over all elements, or over `dims` (floating-point dtypes only). */
  mean(dims?: number | number[], keepdim = false): Tensor {
    return this.#reduce(REDUCE.mean, dims, keepdim, "mean");
  }
  /** Maximum values (over all elements, or over `dims`). */
  max(dims?: number | number[], keepdim = false): Tensor {
    return this.#reduce(REDUCE.amax, dims, keepdim, "max");
  }
  /** Minimum values (over all elements, or over `dims`). */
  min(dims?: number | number[], keepdim = false): Tensor {
    return this.#reduce(REDUCE.amin, dims, keepdim, "min");
  }
  /** Product of all elements, or along `dim`. */
  prod(dim?: number, keepdim = false): Tensor {
    return this.#reduce(REDUCE.prod, dim, keepdim, "prod");
  }
  /** Index of the largest value along `dim`, or in the flattened tensor when `dim` is omitted. */
  argmax(dim?: number, keepdim = false): Tensor {
    return this.#reduce(REDUCE.argmax, dim, keepdim, "argmax");
  }
  /** Index of the smallest value along `dim`, or in the flattened tensor when `dim` is omitted. */
  argmin(dim?: number, keepdim = false): Tensor {
    return this.#reduce(REDUCE.argmin, dim, keepdim, "argmin");
  }
  /** Sample standard deviation (Bessel-corrected). */
  std(dims?: number | number[], keepdim = false): Tensor {
    return this.#reduce(REDUCE.std, dims, keepdim, "std");
  }
  /** Sample variance (Bessel-corrected), over all elements or over `dims`. */
  var(dims?: number | number[], keepdim = false): Tensor {
    return this.#reduce(REDUCE.var, dims, keepdim, "var");
  }
  /** L2 norm. */
  norm(dims?: number | number[], keepdim = false): Tensor {
    return this.#reduce(REDUCE.norm, dims, keepdim, "norm");
  }
  /** `log(sum(exp(x)))` over `dims`, computed without overflow. */
  logsumexp(dims: number | number[], keepdim = false): Tensor {
    return this.#reduce(REDUCE.logsumexp, dims, keepdim, "logsumexp");
  }
  /** True where any element (over all, or along `dim`) is nonzero. */
  any(dim?: number, keepdim = false): Tensor {
    return this.#reduce(REDUCE.any, dim, keepdim, "any");
  }
  /** True where every element (over all, or along `dim`) is nonzero. */
  all(dim?: number, keepdim = false): Tensor {
    return this.#reduce(REDUCE.all, dim, keepdim, "all");
  }

  // ------------------------------------------------------------ along a dim

  /** Softmax along `dim`: exponentials normalised to sum to 1. */
  softmax(dim: number): Tensor {
    return this.#dimOp(DIM_OP.softmax, dim, 0, "softmax");
  }
  /** Log of softmax along `dim`, computed stably. */
  logSoftmax(dim: number): Tensor {
    return this.#dimOp(DIM_OP.logSoftmax, dim, 0, "logSoftmax");
  }
  /** Running sum along `dim`. */
  cumsum(dim: number): Tensor {
    return this.#dimOp(DIM_OP.cumsum, dim, 0, "cumsum");
  }
  /** Removes dimension `dim` of size 1, or every size-1 dimension. */
  squeeze(dim?: number): Tensor {
    if (dim === undefined) return this.#dimOp(DIM_OP.squeezeAll, 0, 0, "squeeze");
    return this.#dimOp(DIM_OP.squeeze, dim, 0, "squeeze");
  }
  /** A view with a new size-1 dimension inserted at `dim`. */
  unsqueeze(dim: number): Tensor {
    return this.#dimOp(DIM_OP.unsqueeze, dim, 0, "unsqueeze");
  }
  /** Upper triangle of the last two dimensions: zeroes below diagonal `k` (k > 0 is above the main one). */
  triu(k = 0): Tensor {
    return this.#dimOp(DIM_OP.triu, 0, k, "triu");
  }
  /** Lower triangle of the last two dimensions: zeroes above diagonal `k` (k > 0 is above the main one). */
  tril(k = 0): Tensor {
    return this.#dimOp(DIM_OP.tril, 0, k, "tril");
  }
  /** A copy with the order of entries along `dim` reversed. */
  flip(dim: number): Tensor {
    return this.#dimOp(DIM_OP.flip, dim, 0, "flip");
  }
  /** Repeats each entry along `dim` `repeats` times in place (a a b b, not a b a b). */
  repeatInterleave(repeats: number, dim: number): Tensor {
    return this.#dimOp(DIM_OP.repeatInterleave, dim, repeats, "repeatInterleave");
  }

  // ------------------------------------------------------------ shape

  /** The same elements in a new shape (one entry may be -1); a view when possible, else a copy. */
  reshape(shape: readonly number[]): Tensor {
    return this.#shapeOp(SHAPE_OP.reshape, shape, "reshape");
  }
  /** A view with a new shape over the same storage; fails when the layout does not allow one. */
  view(shape: readonly number[]): Tensor {
    return this.#shapeOp(SHAPE_OP.view, shape, "view");
  }
  /** A view with the dimensions reordered: dimension i of the result is `dims[i]` of this. */
  permute(dims: readonly number[]): Tensor {
    return this.#shapeOp(SHAPE_OP.permute, dims, "permute");
  }
  /** A view broadcasting size-1 dimensions to `shape` without copying (-1 keeps a size). */
  expand(shape: readonly number[]): Tensor {
    return this.#shapeOp(SHAPE_OP.expand, shape, "expand");
  }
  /** A copy tiled `reps[i]` times along each dimension i. */
  repeat(reps: readonly number[]): Tensor {
    return this.#shapeOp(SHAPE_OP.repeat, reps, "repeat");
  }
  /** Merges dimensions start..end (inclusive) into one. */
  flatten(start = 0, end = -1): Tensor {
    const s = this.shape;
    const a = start < 0 ? s.length + start : start;
    const b = end < 0 ? s.length + end : end;
    const merged = s.slice(a, b + 1).reduce((x, y) => x * y, 1);
    return this.reshape([...s.slice(0, a), merged, ...s.slice(b + 1)]);
  }
  /** A view with dimensions `d0` and `d1` swapped. */
  transpose(d0: number, d1: number): Tensor {
    return new Tensor(check(L().lt_transpose(this.handle, BigInt(d0), BigInt(d1)), "transpose"));
  }
  /** A view of `length` entries along `dim` from `start`. */
  narrow(dim: number, start: number, length: number): Tensor {
    return new Tensor(
      check(L().lt_narrow(this.handle, BigInt(dim), BigInt(start), BigInt(length)), "narrow"),
    );
  }
  /** A view like Python's `t[start:end:step]` along `dim`. */
  slice(dim: number, start = 0, end = Number.MAX_SAFE_INTEGER, step = 1): Tensor {
    return new Tensor(
      check(
        L().lt_slice(this.handle, BigInt(dim), BigInt(start), BigInt(end), BigInt(step)),
        "slice",
      ),
    );
  }
  /** Pieces of `size` entries along `dim` (the last may be shorter). */
  split(size: number, dim = 0): Tensor[] {
    return this.#split(size, dim, false, "split");
  }
  /** `n` near-equal pieces along `dim`. */
  chunk(n: number, dim = 0): Tensor[] {
    return this.#split(n, dim, true, "chunk");
  }
  #split(n: number, dim: number, chunks: boolean, name: string): Tensor[] {
    const cap = Math.max(1, chunks ? n : Math.ceil(this.size(dim) / Math.max(1, n)));
    const out = new BigUint64Array(cap);
    const k = checkStatus(
      L().lt_split(this.handle, BigInt(n), BigInt(dim), chunks ? 1 : 0, out, cap),
      name,
    );
    return Array.from({ length: k }, (_, i) => fromHandleValue(out[i]));
  }

  // ------------------------------------------------------------ indexing

  /** Entries along `dim` at the positions in the 1-D integer `index`, in that order. */
  indexSelect(dim: number, index: Tensor): Tensor {
    return this.#indexOp(INDEX_OP.indexSelect, dim, index, null, "indexSelect");
  }
  /** Picks, along `dim`, the entry `index` names for each position of `index` (shape of `index`). */
  gather(dim: number, index: Tensor): Tensor {
    return this.#indexOp(INDEX_OP.gather, dim, index, null, "gather");
  }
  /** A copy with `src` values written, along `dim`, to the positions `index` names. */
  scatter(dim: number, index: Tensor, src: Tensor): Tensor {
    return this.#indexOp(INDEX_OP.scatter, dim, index, src, "scatter");
  }
  /** A copy with `src` values added, along `dim`, at the positions `index` names (repeats add up). */
  scatterAdd(dim: number, index: Tensor, src: Tensor): Tensor {
    return this.#indexOp(INDEX_OP.scatterAdd, dim, index, src, "scatterAdd");
  }
  /** A copy whose slices along `dim` at positions `index` are replaced by the slices of `src`. */
  indexCopy(dim: number, index: Tensor, src: Tensor): Tensor {
    return this.#indexOp(INDEX_OP.indexCopy, dim, index, src, "indexCopy");
  }
  /** A copy with the slices of `src` added to the slices along `dim` at positions `index`. */
  indexAdd(dim: number, index: Tensor, src: Tensor): Tensor {
    return this.#indexOp(INDEX_OP.indexAdd, dim, index, src, "indexAdd");
  }
  /** Where `mask` is true, `value`; elsewhere this tensor's element. */
  maskedFill(mask: Tensor, value: number): Tensor {
    return new Tensor(check(L().lt_masked_fill(this.handle, mask.handle, value), "maskedFill"));
  }
  /** The k largest (or smallest) entries along `dim`: [values, indices]. */
  topk(k: number, dim = -1, largest = true): [Tensor, Tensor] {
    checkStatus(
      L().lt_topk(this.handle, BigInt(k), BigInt(dim), largest ? 1 : 0, pairScratch),
      "topk",
    );
    return [fromHandleValue(pairScratch[0]), fromHandleValue(pairScratch[1])];
  }
  /** Sorted values and their indices along `dim`. */
  sort(dim = -1, descending = false): [Tensor, Tensor] {
    checkStatus(L().lt_sort(this.handle, BigInt(dim), descending ? 1 : 0, pairScratch), "sort");
    return [fromHandleValue(pairScratch[0]), fromHandleValue(pairScratch[1])];
  }
  /** Samples `n` indices per row from the (unnormalised) probabilities. */
  multinomial(n: number, replacement = false): Tensor {
    return new Tensor(
      check(L().lt_multinomial(this.handle, BigInt(n), replacement ? 1 : 0), "multinomial"),
    );
  }

  // ------------------------------------------------------------ conversion

  /** Converts dtype and/or moves to a device. */
  to(target: DType | string | { dtype?: DType; device?: string }): Tensor {
    let dtype: string | undefined;
    let device: string | undefined;
    if (typeof target === "string") {
      if (target === "cpu" || target.startsWith("cuda")) device = target;
      else dtype = target;
    } else {
      dtype = target.dtype;
      device = target.device;
    }
    const code = dtype === undefined ? -1 : dtypeCode(dtype);
    const dev = device === undefined ? null : requireDevice(device);
    return new Tensor(
      check(L().lt_to(this.handle, code, dev ? dev.type : -1, dev ? dev.index : 0), "to"),
    );
  }

  /** Copies `src` into this tensor in place (broadcasting), outside autograd. */
  copy_(src: Tensor): this {
    checkStatus(L().lt_copy_(this.handle, src.handle), "copy_");
    return this;
  }

  /** Sets every element to `value` in place. */
  fill_(value: number): this {
    checkStatus(L().lt_fill_(this.handle, value), "fill_");
    return this;
  }

  // ------------------------------------------------------------ autograd

  /** Turns gradient tracking on or off for this (leaf) tensor. */
  requiresGrad_(on = true): this {
    checkStatus(L().lt_set_requires_grad(this.handle, on ? 1 : 0), "requiresGrad_");
    return this;
  }

  /** Back-propagates from this tensor (a scalar unless `grad` is given). */
  backward(grad?: Tensor): void {
    checkStatus(L().lt_backward(this.handle, grad ? grad.handle : null), "backward");
  }

  /** The accumulated gradient, or null when none was computed. */
  get grad(): Tensor | null {
    const p = L().lt_grad(this.handle);
    if (p === null) {
      const msg = lastError();
      if (msg) throw new TorchError(`grad: ${msg}`);
      return null;
    }
    return new Tensor(p);
  }

  /** Drops the accumulated gradient. */
  zeroGrad(): void {
    checkStatus(L().lt_zero_grad(this.handle), "zeroGrad");
  }
}
