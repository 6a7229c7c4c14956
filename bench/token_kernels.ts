// `deno task bench token-kernels`: one batch-1 decode token's matrix-vector products alone — every
// projection of the Llama-3.2-1B shape and its tied int8 head, packed in a scheme — against the
// memory-read roofline measured in the same run. `bench scale` times the whole decode step, so
// the difference between the two is what a token spends outside the packed kernels.
import { parseArgs } from "node:util";
import * as torch from "../ffi/mod.ts";
import { setOpenMpWaiting } from "../ffi/lib.ts";
import { readBandwidth } from "../ffi/membw.ts";
import { QuantizedLinear } from "../models/quant/quantized_linear.ts";
import { parseScheme } from "../models/quant/schemes.ts";

const HIDDEN = 2048, KV = 512, FFN = 8192, LAYERS = 16, VOCAB = 128256;
// [out, in] of one layer's projections: q, k, v, o, gate, up, down.
const LAYER_SHAPES: [number, number][] = [
  [HIDDEN, HIDDEN],
  [KV, HIDDEN],
  [KV, HIDDEN],
  [HIDDEN, HIDDEN],
  [FFN, HIDDEN],
  [FFN, HIDDEN],
  [HIDDEN, FFN],
];

function packed(scheme: string, shape: [number, number]): QuantizedLinear {
  using w = torch.randn(shape);
  return QuantizedLinear.fromWeight(w, null, parseScheme(scheme) as never);
}

/** Times one token's products (best of `rounds`) and prints them against the roofline. */
export async function main(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      scheme: { type: "string", default: "nf4" },
      rounds: { type: "string", default: "6" },
    },
  });
  setOpenMpWaiting();
  const scheme = values.scheme!;
  console.log(`packing the 1B shape's ${LAYERS * 7} projections in ${scheme} and an int8 head…`);
  const layers = Array.from({ length: LAYERS }, () => LAYER_SHAPES.map((s) => packed(scheme, s)))
    .flat();
  const head = packed("int8", [VOCAB, HIDDEN]);
  const bytes = [...layers, head].reduce((s, l) => s + l.weightBytes(), 0);
  const bw = readBandwidth().bytesPerS;
  const xs = new Map([HIDDEN, FFN].map((n) => [n, torch.randn([1, n])]));
  let best = Infinity, bestProj = Infinity;
  for (let r = 0; r < Number(values.rounds); r++) {
    const t0 = performance.now();
    for (const l of layers) torch.tidy(() => l.forward(xs.get(l.inFeatures)!).values());
    const t1 = performance.now();
    torch.tidy(() => head.forward(xs.get(HIDDEN)!).values());
    const t2 = performance.now();
    best = Math.min(best, t2 - t0);
    bestProj = Math.min(bestProj, t1 - t0);
  }
  const gbs = bytes / (best / 1e3) / 1e9;
  console.log(
    `${scheme}: ${(bytes / 1e6).toFixed(0)} MB of weights; one token's products ${
      best.toFixed(1)
    } ms (projections ${bestProj.toFixed(1)}, head ${(best - bestProj).toFixed(1)}): ` +
      `${gbs.toFixed(1)} GB/s = ${(gbs / (bw / 1e9)).toFixed(2)} of the ${
        (bw / 1e9).toFixed(1)
      } GB/s roofline (kernels: ${torch.kernelIsa()}); roofline time ${
        (bytes / bw * 1e3).toFixed(1)
      } ms`,
  );
  await Promise.resolve();
}
