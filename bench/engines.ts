// `deno task bench engines`: the lab's int8 / nf4 / int4-g32 against llama.cpp's Q8_0 / Q4_K_M /
// Q4_0 / IQ4_XS on the same weights — speed and weight MB on one model (the 1B shape of
// `bench scale` for real figures), PPL and KLD against fp32 on another, one table.
import { parseArgs } from "node:util";
import { getNumThreads, setNumThreads } from "../ffi/mod.ts";
import { readBandwidth } from "../ffi/membw.ts";
import { createTinyModel } from "../models/tiny.ts";
import { loadModel } from "../models/load.ts";
import { scoringIds } from "../models/eval/perplexity.ts";
import { llamaSystemInfo } from "../ffi/llama/lib.ts";
import {
  closeConfig,
  type EngineConfig,
  measureQuality,
  measureSpeed,
  openConfig,
} from "./engines_measure.ts";

const CONFIGS: EngineConfig[] = [
  ...["int8", "nf4", "int4-g32"].map((scheme) => ({ engine: "libtorch" as const, scheme })),
  ...["Q8_0", "Q4_K_M", "Q4_0", "IQ4_XS"].map((scheme) => ({
    engine: "llama.cpp" as const,
    scheme,
  })),
];

const HELP = `deno task bench engines [--speed-model DIR] [--quality-model DIR] [--prompt N]
  [--new N] [--rounds N] [--threads N] [--eval-tokens N] [--context N]

Speed (prefill, decode tokens/s at batch 1) and weight MB on --speed-model; PPL over
data/eval.txt and mean KLD against the fp32 model on --quality-model. Without them both are a
generated 25M-parameter model (random weights: its PPL and KLD show the method, not quality).
Real figures: --speed-model results/bench-models/llama-3.2-1b-float32 (made by bench scale).`;

function args(argv: string[]) {
  const { values } = parseArgs({
    args: argv,
    options: {
      "speed-model": { type: "string" },
      "quality-model": { type: "string" },
      prompt: { type: "string", default: "128" },
      new: { type: "string", default: "32" },
      rounds: { type: "string", default: "3" },
      threads: { type: "string", default: "2" },
      "eval-tokens": { type: "string", default: "1024" },
      context: { type: "string", default: "256" },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  return values;
}

function row(cells: (string | number)[]): string {
  return "| " + cells.map((c) => typeof c === "number" ? c.toPrecision(4) : c).join(" | ") + " |";
}

/** Runs the benchmark and prints the engines table. */
export async function main(argv: string[]): Promise<void> {
  const o = args(argv);
  if (o.help) return console.log(HELP);
  setNumThreads(Number(o.threads));
  const tmp = await Deno.makeTempDir({ prefix: "lab-bench-engines-" });
  try {
    let generated: string | null = null;
    if (!o["speed-model"] || !o["quality-model"]) {
      generated = `${tmp}/llama-25m`;
      createTinyModel({ out: generated, arch: "llama", preset: "25m", seed: 0 });
    }
    const speedDir = o["speed-model"] ?? generated!;
    const qualityDir = o["quality-model"] ?? generated!;
    console.log(`threads ${getNumThreads()}; llama.cpp ${llamaSystemInfo().slice(0, 60)}…`);
    const bw = readBandwidth({ threads: getNumThreads() }).bytesPerS;
    console.log(
      `read bandwidth ${(bw / 1e9).toFixed(1)} GB/s (decode roofline = bw / weight bytes)`,
    );
    const gen = {
      batch: 1,
      promptTokens: Number(o.prompt),
      newTokens: Number(o.new),
      kvCache: true,
    };
    const ctx = gen.promptTokens + gen.newTokens;
    const speedTmp = `${tmp}/speed`, qualityTmp = `${tmp}/quality`;
    Deno.mkdirSync(speedTmp);
    Deno.mkdirSync(qualityTmp);
    const opened = CONFIGS.map((c) => openConfig(speedDir, c, speedTmp, ctx));
    const speed = measureSpeed(opened, gen, Number(o.rounds));
    const sizes = opened.map((x) => ({ bytes: x.bytes, params: x.params }));
    opened.forEach(closeConfig);
    using ref = loadModel(qualityDir);
    const text = Deno.readTextFileSync(new URL("../data/eval.txt", import.meta.url));
    const ids = scoringIds(ref, text).slice(0, Number(o["eval-tokens"]));
    const qctx = Math.min(Number(o.context), ref.config.maxPositionEmbeddings);
    const quality = CONFIGS.map((c) => {
      const q = openConfig(qualityDir, c, qualityTmp, qctx);
      try {
        return measureQuality(ref, q, ids, qctx);
      } finally {
        closeConfig(q);
      }
    });
    console.log(`\nspeed: ${speedDir} (batch 1, prompt ${gen.promptTokens}, ${gen.newTokens} new)`);
    console.log(
      `quality: ${qualityDir} (${ids.length} tokens of data/eval.txt, windows ${qctx})\n`,
    );
    console.log(
      row([
        "engine",
        "scheme",
        "weight MB",
        "bits/param",
        "prefill tok/s",
        "decode tok/s",
        "decode / roofline",
        "PPL",
        "KLD",
        "top-1",
      ]),
    );
    console.log(row(Array(10).fill("---")));
    CONFIGS.forEach((c, i) => {
      const s = speed[i], z = sizes[i], q = quality[i];
      const roof = bw / z.bytes;
      console.log(
        row([
          c.engine,
          c.scheme,
          z.bytes / 1e6,
          (z.bytes * 8) / z.params,
          s.prefillTps,
          s.decodeTps,
          s.decodeTps / roof,
          q.ppl,
          q.kld,
          q.top1,
        ]),
      );
    });
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
}
