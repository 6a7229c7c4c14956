// Op codes of the shim's generic entry points; shim_internal.h names the same codes and
// tests/ffi_codes.test.ts checks that the native switches accept exactly these.

/** lt_unary codes. */
export const UNARY = {
  neg: 0,
  abs: 1,
  exp: 2,
  log: 3,
  sqrt: 4,
  rsqrt: 5,
  tanh: 6,
  sigmoid: 7,
  silu: 8,
  gelu: 9,
  relu: 10,
  sin: 11,
  cos: 12,
  round: 13,
  floor: 14,
  ceil: 15,
  sign: 16,
  bitwiseNot: 17,
  logicalNot: 18,
  contiguous: 19,
  clone: 20,
  detach: 21,
  isnan: 22,
  isinf: 23,
  reciprocal: 24,
  square: 25,
  erf: 26,
  geluTanh: 27,
  isfinite: 28,
  log1p: 29,
  trunc: 30,
} as const;

/** lt_binary / lt_binary_scalar codes. */
export const BINARY = {
  add: 0,
  sub: 1,
  mul: 2,
  div: 3,
  pow: 4,
  maximum: 5,
  minimum: 6,
  eq: 7,
  ne: 8,
  lt: 9,
  le: 10,
  gt: 11,
  ge: 12,
  bitwiseAnd: 13,
  bitwiseOr: 14,
  bitwiseXor: 15,
  shiftLeft: 16,
  shiftRight: 17,
  matmul: 18,
  bmm: 19,
  remainder: 20,
  floorDivide: 21,
  logicalAnd: 22,
  logicalOr: 23,
  atan2: 24,
} as const;

/** BINARY ops with no number form: lt_binary_scalar refuses them (their methods take a Tensor). */
export const TENSOR_ONLY_BINARY = ["matmul", "bmm", "logicalAnd", "logicalOr", "atan2"] as const;

/** lt_binary_scalar codes with the scalar on the left. */
export const RSCALAR = { rsub: 30, rdiv: 31, rpow: 32 } as const;

/** lt_reduce codes. */
export const REDUCE = {
  sum: 0,
  mean: 1,
  amax: 2,
  amin: 3,
  prod: 4,
  argmax: 5,
  argmin: 6,
  std: 7,
  var: 8,
  norm: 9,
  logsumexp: 10,
  any: 11,
  all: 12,
} as const;

/** lt_dim_op codes. */
export const DIM_OP = {
  softmax: 0,
  logSoftmax: 1,
  cumsum: 2,
  squeeze: 3,
  unsqueeze: 4,
  triu: 5,
  tril: 6,
  flip: 7,
  squeezeAll: 8,
  repeatInterleave: 9,
} as const;

/** lt_shape_op codes. */
export const SHAPE_OP = { reshape: 0, view: 1, permute: 2, expand: 3, repeat: 4 } as const;

/** lt_index_op codes. */
export const INDEX_OP = {
  indexSelect: 0,
  gather: 1,
  scatter: 2,
  scatterAdd: 3,
  indexCopy: 4,
  indexAdd: 5,
} as const;
