// Every packed-kernel path (AVX-512, AVX2, scalar; decode rows 1..8 and tiled prefill; 1 and 2
// threads) against an independent reference: the weight dequantized by the composed tensor-op
// path, multiplied in float64.
import assert from "node:assert/strict";
import * as torch from "../ffi/mod.ts";
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

// Round half to even, as the CPU's vector conversion does.
function roundEven(v: number): number {
  const r = Math.round(v);
  return Math.abs(v - Math.trunc(v)) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

// The int4 decode path on VNNI CPUs rounds the activations to int8, one scale per 128 inputs:
// q = round(x · f32(127 / max|x|)), value q · f32(max|x| / 127), all in float32 as the kernel.
function roundedActivations(x: number[], cols: number): number[] {
  const out = new Array<number>(x.length);
  for (let c = 0; c < x.length; c += 128) {
    let amax = 0;
    for (let i = c; i < c + 128; i++) amax = Math.max(amax, Math.abs(x[i]));
    const inv = amax > 0 ? Math.fround(127 / amax) : 0;
    const step = Math.fround(amax / 127);
    for (let i = c; i < c + 128; i++) out[i] = roundEven(Math.fround(x[i] * inv)) * step;
  }
  return cols % 128 === 0 ? out : x;
}

// Whether a decode call takes the integer path (see ffi/qgemv_vnni.cpp): 4-bit formats, rows a
// multiple of 128 wide (so blocks of 32..128 never straddle rows), at most 8 input rows.
function takesIntegerPath(isa: string, scheme: string, cols: number, m: number): boolean {
  const fourBit = ["int4", "nf4", "fp4"].some((k) => scheme.startsWith(k));
  return isa === "vnni" && fourBit && cols % 128 === 0 && m <= 8;
}

// The integer path multiplies nf4/fp4 codes through bytes round(127 · code) + 128 (half away
// from zero): the dequantized weight with each code-book value moved to that grid.
function byteTableWeight(layer: QuantizedLinear, dense: torch.Tensor): torch.Tensor {
  const kind = layer.scheme.kind as "nf4" | "fp4";
  const codes = tidy(() => {
    const all = torch.tensor(new Uint8Array([0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef]));
    return torch.dequantizeWeight(kind, [all, torch.ones([1])], [1, 16], { block: 64 }).values();
  });
  const ratio = codes.map((v) =>
    v === 0 ? 1 : Math.sign(v) * Math.round(Math.abs(v) * 127) / 127 / v
  );
  const packed = layer.parts[0].values();
  const w = dense.values();
  const out = new Float64Array(w.length);
  for (let e = 0; e < w.length; e++) {
    const byte = packed[e >> 1];
    out[e] = w[e] * ratio[e % 2 === 0 ? byte >> 4 : byte & 0x0f];
  }
  return torch.tensor(out, { shape: dense.shape });
}

function checkLayer(scheme: string, shape: [number, number], what: string, isa: string): void {
  tidy(() => {
    const w = torch.randn(shape).mul(0.05);
    const layer = layerFor(scheme, w);
    if (!layer) return;
    const ref = referenceWeight(layer);
    for (const m of BATCHES) {
      if (m > 8 && shape[1] < WIDE && scheme !== "nf4") continue; // prefill: a few cases suffice
      if (shape[1] === WIDE && m !== 1 && m <= 8) continue; // the wide shape: decode once, prefill
      const x = torch.randn([m, shape[1]]);
      const xin = takesIntegerPath(isa, scheme, shape[1], m)
        ? torch.tensor(new Float64Array(roundedActivations(x.values(), shape[1])), {
          shape: [m, shape[1]],
        })
        : x.to("float64");
      const table = takesIntegerPath(isa, scheme, shape[1], m) && /^(nf4|fp4)/.test(scheme);
      const wref = table ? byteTableWeight(layer as QuantizedLinear, ref) : ref;
      const want = xin.matmul(wref.transpose(0, 1)).values();
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
    const top = kernelIsa("vnni"); // the best the CPU has
    assert.ok(KERNEL_ISAS.indexOf(top) >= KERNEL_ISAS.indexOf(active));
    const avx512 = kernelIsa("avx512");
    assert.equal(avx512, top === "vnni" ? "avx512" : top);
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
          for (const shape of SHAPES) checkLayer(scheme, shape, `${isa} threads=${t}`, isa);
        }
      }
    } finally {
      setNumThreads(threads);
      kernelIsa(best);
    }
  });
}

Deno.test("the integer 4-bit decode path's rounding is small next to the scheme's own error", () => {
  const best = kernelIsa();
  try {
    if (kernelIsa("vnni") !== "vnni") return; // this CPU lacks AVX-512 VNNI
    tidy(() => {
      torch.manualSeed(13);
      const w = torch.randn([256, 1024]).mul(0.05);
      const x = torch.randn([1, 1024]);
      const exact = x.matmul(w.transpose(0, 1)).values();
      for (const scheme of ["int4-g32", "int4-g64", "int4-g128", "nf4", "nf4-nodq", "fp4"]) {
        const layer = layerFor(scheme, w)!;
        const integer = layer.forward(x).values();
        kernelIsa("avx512");
        const float = layer.forward(x).values(); // the same packed weight, nothing rounded
        kernelIsa("vnni");
        const norm = (a: number[], b: number[]) =>
          Math.sqrt(a.reduce((s, v, i) => s + (v - b[i]) ** 2, 0));
        const rounding = norm(integer, float), scheme_error = norm(float, exact);
        assert.ok(
          rounding <= 0.25 * scheme_error,
          `${scheme}: integer-path rounding ${rounding} vs weight quantization ${scheme_error}`,
        );
        layer.dispose();
      }
    });
  } finally {
    kernelIsa(best);
  }
});

Deno.test("a NaN or infinite activation gives NaN outputs on every decode path", () => {
  const best = kernelIsa();
  try {
    for (const isa of KERNEL_ISAS) {
      if (kernelIsa(isa) !== isa) continue;
      tidy(() => {
        torch.manualSeed(14);
        const w = torch.randn([16, 256]).mul(0.05);
        for (const scheme of ["int4-g32", "nf4", "int8"]) {
          const layer = layerFor(scheme, w)!;
          for (const bad of [NaN, Infinity]) {
            const x = torch.randn([1, 256]).values();
            x[5] = bad;
            const y = layer.forward(torch.tensor(new Float32Array(x), { shape: [1, 256] }));
            assert.ok(
              y.values().every((v) => Number.isNaN(v) || !Number.isFinite(v)),
              `${isa} ${scheme} ${bad}`,
            );
          }
          layer.dispose();
        }
      });
    }
  } finally {
    kernelIsa(best);
  }
});

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
