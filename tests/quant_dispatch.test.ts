// Every packed-kernel path (AVX-512, AVX2, scalar; decode rows 1..8 and tiled prefill; 1 and 2
// threads) against an independent reference: the weight dequantized by the composed tensor-op
// path, multiplied in float64.
import assert from "node:assert/strict";
import { torch } from "../mod.ts";
import { getNumThreads, KERNEL_ISAS, kernelIsa, setNumThreads } from "../ffi/mod.ts";
import { QuantizedLinear } from "../models/quant/quantized_linear.ts";
import { CastLinear } from "../models/quant/cast_linear.ts";
import { parseScheme } from "../models/quant/schemes.ts";
import type { LinearLayer } from "../models/linear.ts";

const { tidy } = torch;

const PACKED = ["int8", "nf4", "nf4-nodq", "fp4", "fp4-nodq", "int4-g32", "int4-g64", "int4-g128"];
const HALF = ["bf16", "fp16"];

// [out, in] shapes: blocks aligned with rows; nf4 blocks of 64 straddling rows of 96 (and, at
// 180 rows, a double-quantization group of 256 blocks ending mid-row); a width no vector path
// takes (scalar); enough rows at a wide input that prefill takes several tiles.
const SHAPES: [number, number][] = [[72, 256], [37, 96], [180, 96], [20, 70], [300, 16384]];
// Prefill tiles hold at least 256 rows and up to 16 MB: [300, 16384] takes two.
const WIDE = 16384;
const BATCHES = [1, 2, 3, 4, 5, 6, 7, 8, 24];

function layerFor(scheme: string, w: torch.Tensor): LinearLayer | null {
  const s = parseScheme(scheme);
  if (s.kind === "cast") return CastLinear.fromWeight(w, null, s.dtype);
  if (s.kind === "int4" && w.shape[1] % s.block !== 0) return null; // the quantizer refuses
  return QuantizedLinear.fromWeight(w, null, s as never);
}

// The dense weight, by a path that shares no code with the kernels.
function referenceWeight(layer: LinearLayer): torch.Tensor {
  if (layer instanceof CastLinear) return layer.weight.to("float64");
  return (layer as QuantizedLinear).dequantize("float32", true).to("float64");
}

function checkLayer(scheme: string, shape: [number, number], what: string): void {
  tidy(() => {
    const w = torch.randn(shape).mul(0.05);
    const layer = layerFor(scheme, w);
    if (!layer) return;
    const ref = referenceWeight(layer);
    for (const m of BATCHES) {
      if (m > 8 && shape[1] < WIDE && scheme !== "nf4") continue; // prefill: a few cases suffice
      if (shape[1] === WIDE && m !== 1 && m <= 8) continue; // the wide shape: decode once, prefill
      const x = torch.randn([m, shape[1]]);
      const want = x.to("float64").matmul(ref.transpose(0, 1)).values();
      const got = layer.forward(x).values();
      const scale = Math.sqrt(shape[1]) * 0.05;
      let worst = 0;
      for (let i = 0; i < want.length; i++) {
        worst = Math.max(worst, Math.abs(Number(got[i]) - Number(want[i])));
      }
      assert.ok(
        worst <= 2e-5 * scale * Math.sqrt(shape[1] / 64),
        `${what} ${scheme} [${shape}] rows=${m}: max error ${worst}`,
      );
    }
    layer.dispose();
  });
}

Deno.test("the CPU reports which kernel paths it runs, and forcing one is clamped to it", () => {
  const active = kernelIsa();
  assert.ok(KERNEL_ISAS.includes(active));
  try {
    const top = kernelIsa("avx512"); // the best the CPU has
    assert.ok(KERNEL_ISAS.indexOf(top) >= KERNEL_ISAS.indexOf(active));
    assert.equal(kernelIsa("scalar"), "scalar");
    assert.equal(kernelIsa("avx2"), top === "scalar" ? "scalar" : "avx2");
  } finally {
    kernelIsa(active);
  }
});

for (const isa of KERNEL_ISAS) {
  Deno.test(`packed kernels (${isa}) equal the dequantized product, decode rows 1..8 and prefill, 1 and 2 threads`, () => {
    const best = kernelIsa();
    const threads = getNumThreads();
    try {
      if (kernelIsa(isa) !== isa) return; // this CPU lacks it (CI machines have AVX2 at least)
      torch.manualSeed(11);
      for (const t of [1, 2]) {
        setNumThreads(t);
        for (const scheme of [...PACKED, ...HALF]) {
          for (const shape of SHAPES) checkLayer(scheme, shape, `${isa} threads=${t}`);
        }
      }
    } finally {
      setNumThreads(threads);
      kernelIsa(best);
    }
  });
}

Deno.test("bf16 activations through the packed kernels stay within bf16 rounding of the float32 result", () => {
  tidy(() => {
    torch.manualSeed(12);
    const w = torch.randn([64, 256]).mul(0.05);
    for (const scheme of ["int8", "nf4", "int4-g32", "bf16"]) {
      const layer = layerFor(scheme, w)!;
      for (const m of [1, 8, 16]) {
        const x = torch.randn([m, 256]);
        const want = layer.forward(x).values();
        const got = layer.forward(x.to("bfloat16"));
        assert.equal(got.dtype, "bfloat16");
        const g = got.to("float32").values();
        for (let i = 0; i < want.length; i++) {
          assert.ok(
            Math.abs(g[i] - want[i]) <= 0.02 * Math.abs(want[i]) + 0.02,
            `${scheme} rows=${m} [${i}]: ${g[i]} vs ${want[i]}`,
          );
        }
      }
      layer.dispose();
    }
  });
});

Deno.test("bad shapes are errors, not crashes; an empty batch gives an empty result", () => {
  tidy(() => {
    const w = torch.randn([8, 64]);
    const q = QuantizedLinear.fromWeight(w, null, parseScheme("int8") as never);
    assert.throws(
      () => q.forward(torch.randn([1, 32])),
      /does not end in the layer's in_features 64/,
    );
    const empty = q.forward(torch.randn([0, 64]));
    assert.deepEqual(empty.shape, [0, 8]);
    // A declared width of 0 (a damaged quantization.json) must not divide by zero.
    const zero = new QuantizedLinear(parseScheme("int8") as never, q.parts, [8, 0], null);
    assert.throws(() => zero.forward(torch.randn([1, 0])), /shape \[out, in\] with in > 0/);
    assert.throws(
      () => zero.rows(torch.tensor(new BigInt64Array([0n]), { shape: [1] })),
      /in_features > 0/,
    );
    q.dispose();
  });
});
