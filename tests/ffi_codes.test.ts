// The op codes and quant kinds TypeScript declares (ffi/ops.ts, ffi/quant.ts) against what the
// native switches accept: every declared code must reach its case (an op may still refuse the
// test's operands, but never as an unknown code), and every undeclared one must be refused as
// unknown, so that the two sides cannot drift apart unnoticed.
import assert from "node:assert/strict";
import { L, lastError } from "../ffi/lib.ts";
import {
  BINARY,
  DIM_OP,
  INDEX_OP,
  REDUCE,
  RSCALAR,
  SHAPE_OP,
  TENSOR_ONLY_BINARY,
  UNARY,
} from "../ffi/ops.ts";
import { QUANT_KIND } from "../ffi/quant.ts";
import { handleArray } from "../ffi/tensor.ts";
import * as torch from "../ffi/mod.ts";

type Call = (code: number) => Deno.PointerValue | number;

// Every code from -1 to a few past the largest declared one: declared ones must not come back
// "unknown", the others must.
function assertAcceptsExactly(family: string, declared: number[], call: Call): void {
  const max = Math.max(...declared);
  for (let code = -1; code <= max + 3; code++) {
    const r = call(code);
    const failed = r === null || (typeof r === "number" && r < 0);
    if (r !== null && typeof r !== "number") L().lt_free(r);
    const unknown = failed && /unknown/.test(lastError());
    if (declared.includes(code)) {
      assert.ok(!unknown, `${family} code ${code} is declared but native says: ${lastError()}`);
    } else {
      assert.ok(
        unknown,
        `${family} code ${code} is not declared in TypeScript but native takes it`,
      );
    }
  }
}

const codes = (t: Record<string, number>) => Object.values(t);

Deno.test("every op code TypeScript declares reaches its native case, and only those", () => {
  using a = torch.randn([2, 3]);
  using b = torch.randn([2, 3]);
  using idx = torch.tensor([0, 1], { dtype: "int64" });
  const dims = new BigInt64Array([2n, 3n]);
  assertAcceptsExactly("lt_unary", codes(UNARY), (op) => L().lt_unary(op, a.handle));
  assertAcceptsExactly("lt_binary", codes(BINARY), (op) => L().lt_binary(op, a.handle, b.handle));
  const tensorOnly: readonly string[] = TENSOR_ONLY_BINARY;
  const scalar = [
    ...Object.entries(BINARY).filter(([k]) => !tensorOnly.includes(k)).map(([, v]) => v),
    ...codes(RSCALAR),
  ];
  assertAcceptsExactly("lt_binary_scalar", scalar, (op) => L().lt_binary_scalar(op, a.handle, 2));
  assertAcceptsExactly("lt_reduce", codes(REDUCE), (op) => L().lt_reduce(op, a.handle, null, 0, 0));
  assertAcceptsExactly("lt_dim_op", codes(DIM_OP), (op) => L().lt_dim_op(op, a.handle, 0n, 1));
  assertAcceptsExactly(
    "lt_shape_op",
    codes(SHAPE_OP),
    (op) => L().lt_shape_op(op, a.handle, dims, 2),
  );
  assertAcceptsExactly(
    "lt_index_op",
    codes(INDEX_OP),
    (op) => L().lt_index_op(op, a.handle, 0n, idx.handle, b.handle),
  );
});

Deno.test("every quant kind TypeScript declares is known natively, and only those", () => {
  using w = torch.randn([4, 8]);
  const params = new BigInt64Array([4n, 8n, 8n, 0n]);
  const parts = handleArray([w]);
  assertAcceptsExactly(
    "lt_q_dequantize",
    codes(QUANT_KIND),
    (kind) => L().lt_q_dequantize(kind, parts, 1, params, 6, 0),
  );
  // "half" is a plain cast (CastLinear keeps the weight as it is): nothing to quantize.
  const quantized = Object.entries(QUANT_KIND).filter(([k]) => k !== "half").map(([, v]) => v);
  const out = new BigUint64Array(4);
  assertAcceptsExactly("lt_q_quantize", quantized, (kind) => {
    const n = L().lt_q_quantize(kind, w.handle, new BigInt64Array([8n, 0n]), out);
    for (let i = 0; i < n; i++) L().lt_free(Deno.UnsafePointer.create(out[i]));
    return n;
  });
});
