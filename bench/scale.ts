// `deno task bench scale`: real-size models on this machine. A Llama-3.2-1B-shaped model
// (random fp32 weights, 4.94 GB) through every quantization scheme — load, quantize, weight
// bytes, prefill and decode speed, decode relative to fp32 and to the memory-bandwidth
// roofline measured in the same run — then an 8B-shaped bf16 checkpoint loaded into nf4
// (seconds, peak RSS), then LoRA and QLoRA training steps on the 1B shape with the memory
// split. Tiny models hide what matters here: at 25M parameters the weights sit in cache and
// no scheme is bandwidth-bound.
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import * as torch from "../ffi/mod.ts";
import { readBandwidth } from "../ffi/membw.ts";
import { parseScheme } from "../models/quant/schemes.ts";
import type { SyntheticShapeName } from "../models/synthetic.ts";
import { DEFAULT_MODELS_DIR, ensureModel } from "./scale_models.ts";
import { type Cell, markdownTable, num } from "./scale_table.ts";
import { REAL_SCALE_SCHEMES } from "../pipelines/real_scale.ts";
import type { LoadFigures, SchemeFigures, TrainFigures } from "./scale_worker.ts";

// The same schemes as the real-scale pipeline, so the bench and `lab run` fill the same table.
const DEFAULT_SCHEMES = REAL_SCALE_SCHEMES;

/** Decode speed relative to fp32 the project targets per scheme (batch 1, same run). */
const VS_FP32_TARGET: Record<string, number> = { "int4-g32": 4, nf4: 3.5, int8: 2, bf16: 1.7 };
const ROOFLINE_TARGET = 0.8;
const PREFILL_TARGET = 0.95;
const LOAD_RSS_TARGET = 8e9;

/** llama.cpp's CPU build on the same 1B shape, measured earlier on a machine of this kind. */
const LLAMA_CPP_REFERENCE = [
  { type: "F32", mb: 4943, tps: 6.1, ours: "fp32" },
  { type: "Q8_0", mb: 1313, tps: 17.4, ours: "int8" },
  { type: "Q4_0", mb: 763, tps: 36.3, ours: "int4-g32" },
];

const SHAPES: Record<
  string,
  { base: SyntheticShapeName; big: SyntheticShapeName; bwBytes: number }
> = {
  full: { base: "llama-3.2-1b", big: "llama-3.1-8b", bwBytes: 2 ** 31 },
  // The same structures at a few million parameters: checks the whole bench in a minute.
  small: { base: "mini-1b", big: "mini-8b", bwBytes: 2 ** 28 },
};

const HELP = `deno task bench scale [options]

Real-size benchmark: a Llama-3.2-1B-shaped model (random fp32 weights, 4.94 GB) through every
quantization scheme, an 8B-shaped bf16 checkpoint (16 GB, 4 shards) loaded into nf4, and LoRA /
QLoRA training steps on the 1B shape. Each measurement runs in a fresh process; schemes
alternate over rounds and the best figure of each is kept. Models are generated once into
${DEFAULT_MODELS_DIR} and reused (delete that folder to reclaim the disk).

options:
  --schemes a,b,…     schemes to measure (default ${DEFAULT_SCHEMES.join(",")})
  --rounds N          rounds over the schemes and training methods (default 2)
  --no-8b             skip the 8B-shaped load
  --no-train          skip the training steps
  --model DIR         use this checkpoint folder for the 1B role instead of generating one
  --model-8b DIR      use this checkpoint folder for the 8B role
  --shape full|small  small: the same structures at a few million parameters (a quick check)
  --models-dir DIR    where generated models live (default results/bench-models)
  --new-tokens N      tokens generated per decode measurement (default 32)
  --repeats N         timed runs per figure inside a process, best kept (default 2)
  --train-steps N     timed training steps per method, after one warm-up step (default 3)
  --json FILE         also write every figure as JSON
  -h, --help          this text

Threads: LAB_THREADS, else every core; the bandwidth probe uses the same count.`;

const WORKER = fileURLToPath(new URL("./scale_worker.ts", import.meta.url));
const log = (s: string) => console.log(s);
const MB = (b: number) => b / 1e6;

async function runWorker<T>(args: string[]): Promise<T> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--quiet", WORKER, ...args],
    stdout: "piped",
    stderr: "inherit",
  }).output();
  if (!out.success) {
    // The kernel's OOM killer ends a process with SIGKILL: say so instead of a bare code.
    const why = out.signal === "SIGKILL" || out.code === 137
      ? "killed (out of memory?)"
      : `exit code ${out.code}`;
    throw new Error(`${args.slice(0, 3).join(" ")}: ${why}`);
  }
  const lines = new TextDecoder().decode(out.stdout).trim().split("\n");
  return JSON.parse(lines[lines.length - 1]) as T;
}

// Per figure, the best over rounds: the highest speed, the lowest time; memory the highest
// (a peak seen once is a peak a user can hit).
function bestScheme(a: SchemeFigures | undefined, b: SchemeFigures): SchemeFigures {
  if (!a) return b;
  return {
    ...b,
    loadS: Math.min(a.loadS, b.loadS),
    quantizeS: Math.min(a.quantizeS, b.quantizeS),
    prefill128Tps: Math.max(a.prefill128Tps, b.prefill128Tps),
    prefill512Tps: Math.max(a.prefill512Tps, b.prefill512Tps),
    decodeB1Tps: Math.max(a.decodeB1Tps, b.decodeB1Tps),
    decodeB8Tps: Math.max(a.decodeB8Tps, b.decodeB8Tps),
    peakRssBytes: Math.max(a.peakRssBytes, b.peakRssBytes),
  };
}

function mark(ok: boolean): string {
  return ok ? "ok" : "MISS";
}

function schemeTables(
  schemes: string[],
  best: Map<string, SchemeFigures>,
  failed: Map<string, string>,
  bw: number,
  showReference: boolean,
): void {
  const fp32 = best.get("fp32");
  const rows: Cell[][] = schemes.map((s) => {
    const f = best.get(s);
    if (!f) return [s, `failed: ${failed.get(s) ?? "?"}`, ...Array(9).fill(null)];
    return [
      s,
      num(f.loadS, 1),
      s === "fp32" ? "–" : num(f.quantizeS, 1),
      num(MB(f.weightBytes), 0),
      num(f.prefill128Tps, 1),
      num(f.prefill512Tps, 1),
      num(f.decodeB1Tps, 2),
      num(f.decodeB8Tps, 2),
      fp32 ? `${num(f.decodeB1Tps / fp32.decodeB1Tps, 2)}x` : "–",
      num((f.decodeB1Tps * f.weightBytes) / bw, 2),
      num(MB(f.peakRssBytes), 0),
    ];
  });
  log("");
  log(
    markdownTable([
      "scheme",
      "load s",
      "quantize s",
      "weight MB",
      "prefill 128 tok/s",
      "prefill 512 tok/s",
      "decode b1 tok/s",
      "decode b8 tok/s",
      "b1 vs fp32",
      "of roofline",
      "peak RSS MB",
    ], rows),
  );
  log(
    `\nweight MB: every tensor the model holds (model.weightBytes()). of roofline: decode b1 tok/s ` +
      `× weight bytes ÷ ${num(bw / 1e9, 1)} GB/s (measured in this run); batch-1 decode reads ` +
      `every weight byte once per token, so 1.00 is the machine's limit.`,
  );
  // The targets, side by side with where each scheme landed.
  const targetRows: Cell[][] = [];
  for (const s of schemes) {
    const f = best.get(s);
    if (!f) continue;
    const roof = (f.decodeB1Tps * f.weightBytes) / bw;
    const packed = s !== "fp32" && !["bf16", "fp16"].includes(s);
    const vs = fp32 ? f.decodeB1Tps / fp32.decodeB1Tps : NaN;
    const pre = fp32 ? f.prefill512Tps / fp32.prefill512Tps : NaN;
    const vsTarget = VS_FP32_TARGET[s];
    targetRows.push([
      s,
      packed ? `${num(roof, 2)} ${mark(roof >= ROOFLINE_TARGET)}` : num(roof, 2),
      vsTarget ? `${num(vs, 2)}x / ${vsTarget}x ${mark(vs >= vsTarget)}` : `${num(vs, 2)}x`,
      s === "fp32" ? "1.00x" : `${num(pre, 2)}x ${mark(pre >= PREFILL_TARGET)}`,
    ]);
  }
  if (targetRows.length) {
    log("\ntargets:");
    log(
      markdownTable([
        "scheme",
        `roofline (packed >= ${ROOFLINE_TARGET})`,
        "decode vs fp32 / target",
        `prefill 512 vs fp32 (>= ${PREFILL_TARGET}x)`,
      ], targetRows),
    );
  }
  if (showReference) {
    log(
      "\nllama.cpp baseline — REFERENCE FIGURES measured earlier, not in this run " +
        "(llama.cpp's CPU build, same 1B shape, 2 threads, a machine of this kind reading ~31 " +
        "GB/s; `deno task bench engines` measures llama.cpp on these weights in one run):",
    );
    log(markdownTable(
      ["llama.cpp type", "its MB", "its decode b1 tok/s", "lab scheme", "lab tok/s", "lab / it"],
      LLAMA_CPP_REFERENCE.map((r) => {
        const f = best.get(r.ours);
        return [
          r.type,
          num(r.mb, 0),
          num(r.tps, 1),
          r.ours,
          f ? num(f.decodeB1Tps, 2) : "–",
          f ? `${num(f.decodeB1Tps / r.tps, 2)}x` : "–",
        ];
      }),
    ));
  }
}

function loadTable(f: LoadFigures, checkpointBytes: number, full: boolean): void {
  log(markdownTable(
    [
      "checkpoint GB",
      "into",
      "load s",
      "weight MB",
      "peak RSS GB",
      "peak RSS target",
      "generate tok/s",
      "path",
    ],
    [[
      num(checkpointBytes / 1e9, 2),
      f.scheme,
      num(f.seconds, 1),
      num(MB(f.weightBytes), 0),
      num(f.peakRssBytes / 1e9, 2),
      full ? `<= 8 GB ${mark(f.peakRssBytes <= LOAD_RSS_TARGET)}` : "(8B only)",
      num(f.generateTps, 2),
      f.path,
    ]],
  ));
}

function trainTables(best: Map<string, TrainFigures>, failed: Map<string, string>): void {
  const rows: Cell[][] = [];
  for (const m of ["lora", "qlora"]) {
    const f = best.get(m);
    if (!f) {
      if (failed.has(m)) rows.push([m, `failed: ${failed.get(m)}`, ...Array(7).fill(null)]);
      continue;
    }
    rows.push([
      m,
      num(f.trainable / 1e6, 2),
      num(f.tokensPerS, 1),
      num(f.stepMs / 1000, 2),
      num(MB(f.peakRssBytes), 0),
      num(MB(f.weightsBytes), 0),
      num(MB(f.adaptersOptimizerBytes), 0),
      num(MB(f.activationsBytes), 0),
      num(MB(f.loadPeakRssBytes), 0),
    ]);
  }
  log(markdownTable([
    "method",
    "trainable M",
    "tok/s",
    "step s",
    "peak RSS MB",
    "weights MB",
    "adapters+optim MB",
    "activations MB (est.)",
    "load peak MB",
  ], rows));
  log(
    "\npeak RSS: the process's high-water mark during the steps. weights: the frozen base as " +
      "held; adapters+optim: adapter weights, their gradients and AdamW's two moments; " +
      "activations: the rest of the peak (an estimate on the CPU: allocator slack included); " +
      "load peak: while loading and preparing, before training.",
  );
  const lora = best.get("lora"), qlora = best.get("qlora");
  if (lora && qlora) {
    log(
      `QLoRA / LoRA: peak RSS ${num(qlora.peakRssBytes / lora.peakRssBytes, 2)}x, weights ` +
        `${num(qlora.weightsBytes / lora.weightsBytes, 2)}x, tokens/s ` +
        `${num(qlora.tokensPerS / lora.tokensPerS, 2)}x`,
    );
  }
}

function elapsed(t0: number): string {
  return `${((performance.now() - t0) / 1000).toFixed(0)} s`;
}

// A mistake on the command line is the user's to fix: say what, without a stack trace.
function usageError(message: string): never {
  console.error(`bench scale: ${message}\nsee: deno task bench scale --help`);
  Deno.exit(2);
}

function parseOptions(args: string[]) {
  return parseArgs({
    args,
    options: {
      schemes: { type: "string", default: DEFAULT_SCHEMES.join(",") },
      rounds: { type: "string", default: "2" },
      "no-8b": { type: "boolean", default: false },
      "no-train": { type: "boolean", default: false },
      model: { type: "string" },
      "model-8b": { type: "string" },
      shape: { type: "string", default: "full" },
      "models-dir": { type: "string", default: DEFAULT_MODELS_DIR },
      "new-tokens": { type: "string", default: "32" },
      repeats: { type: "string", default: "2" },
      "train-steps": { type: "string", default: "3" },
      json: { type: "string" },
      help: { type: "boolean", short: "h", default: false },
    },
  });
}

/** Runs the real-size benchmark. */
export async function main(args: string[]): Promise<void> {
  let values: ReturnType<typeof parseOptions>["values"];
  try {
    values = parseOptions(args).values;
  } catch (e) {
    usageError((e as Error).message);
  }
  if (values.help) {
    console.log(HELP);
    return;
  }
  const shape = SHAPES[values.shape!];
  if (!shape) usageError(`--shape must be full or small, got '${values.shape}'`);
  const schemes = values.schemes!.split(",").map((s) => s.trim()).filter(Boolean);
  try {
    for (const s of schemes) parseScheme(s); // a typo fails now, not after an hour
  } catch (e) {
    usageError((e as Error).message);
  }
  const rounds = Number(values.rounds);
  if (!(Number.isInteger(rounds) && rounds >= 1)) usageError("--rounds must be a positive integer");
  for (const k of ["new-tokens", "repeats", "train-steps"] as const) {
    const n = Number(values[k]);
    if (!(Number.isInteger(n) && n >= 1)) usageError(`--${k} must be a positive integer`);
  }
  if (Number(values["new-tokens"]) < 2) {
    usageError("--new-tokens must be at least 2 (decode steps)");
  }
  const full = values.shape === "full";
  // Both sides (and every child process) wait the same way (see setOpenMpWaiting).
  torch.setOpenMpWaiting();
  const threads = torch.getNumThreads();
  const root = values["models-dir"]!;
  const t0 = performance.now();
  log(
    `bench scale: ${navigator.hardwareConcurrency} cores, ${threads} threads ` +
      `(LAB_THREADS=${Deno.env.get("LAB_THREADS") ?? "unset"}), ${rounds} round(s), ` +
      `shape ${values.shape}, libtorch ${torch.version()}`,
  );
  log(`benchmark models live in ${root} — delete them with: rm -rf ${root}`);
  const json: Record<string, unknown> = { threads, shape: values.shape, requested: schemes };

  // 1. Every scheme on the 1B shape.
  const baseDir = values.model ??
    ensureModel(root, { shape: shape.base, dtype: "float32", shards: 1, seed: 0 }, log);
  log(`\n== schemes on ${baseDir} ==`);
  const best = new Map<string, SchemeFigures>();
  const failed = new Map<string, string>();
  let bw = 0;
  for (let round = 0; round < rounds; round++) {
    // The roofline is measured each round, between the schemes, with the model's thread count.
    const b = readBandwidth({ bytes: shape.bwBytes, threads, rounds: 4 });
    bw = Math.max(bw, b.bytesPerS);
    log(
      `round ${round + 1}/${rounds}: memory read bandwidth ${num(b.bytesPerS / 1e9, 1)} GB/s ` +
        `(${threads} threads, ${num(b.bytes / 2 ** 30, 2)} GiB, ${b.avx2 ? "AVX2" : "scalar"}) ` +
        `[${elapsed(t0)}]`,
    );
    // Alternating the order spreads any drift (heat, other work) over all schemes.
    const order = round % 2 ? [...schemes].reverse() : schemes;
    for (const s of order) {
      try {
        const f = await runWorker<SchemeFigures>([
          "scheme",
          baseDir,
          s,
          "--new-tokens",
          values["new-tokens"]!,
          "--repeats",
          values.repeats!,
        ]);
        best.set(s, bestScheme(best.get(s), f));
      } catch (e) {
        failed.set(s, (e as Error).message);
        log(`  ${s} failed: ${(e as Error).message}`);
      }
      log(`  ${s} done (round ${round + 1}) [${elapsed(t0)}]`);
    }
  }
  schemeTables(schemes, best, failed, bw, full && !values.model);
  json.bandwidthBytesPerS = bw;
  json.schemes = Object.fromEntries(best);

  // 2. The 8B-shaped bf16 checkpoint straight into nf4.
  if (!values["no-8b"]) {
    log(`\n== 8B-shaped bf16 checkpoint → nf4 ==`);
    try {
      const bigDir = values["model-8b"] ??
        ensureModel(root, { shape: shape.big, dtype: "bfloat16", shards: 4, seed: 0 }, log);
      let bytes = 0;
      for (const e of Deno.readDirSync(bigDir)) {
        if (e.name.endsWith(".safetensors")) bytes += Deno.statSync(`${bigDir}/${e.name}`).size;
      }
      const f = await runWorker<LoadFigures>(["load", bigDir, "nf4"]);
      loadTable(f, bytes, full);
      json.load = f;
    } catch (e) {
      log(`8B load failed: ${(e as Error).message}`);
    }
    log(`[${elapsed(t0)}]`);
  }

  // 3. LoRA and QLoRA steps on the 1B shape.
  if (!values["no-train"]) {
    log(
      `\n== training on ${baseDir}: r 16, all linear modules, sequence 256, batch 1, ` +
        `gradient checkpointing ==`,
    );
    const bestTrain = new Map<string, TrainFigures>();
    const trainFailed = new Map<string, string>();
    for (let round = 0; round < rounds; round++) {
      const order = round % 2 ? ["qlora", "lora"] : ["lora", "qlora"];
      for (const m of order) {
        try {
          const f = await runWorker<TrainFigures>([
            "train",
            baseDir,
            m,
            "--steps",
            values["train-steps"]!,
            "--seq",
            "256",
            "--r",
            "16",
          ]);
          const prev = bestTrain.get(m);
          if (!prev || f.tokensPerS > prev.tokensPerS) bestTrain.set(m, f);
        } catch (e) {
          trainFailed.set(m, (e as Error).message);
          log(`  ${m} failed: ${(e as Error).message}`);
        }
        log(`  ${m} done (round ${round + 1}) [${elapsed(t0)}]`);
      }
    }
    trainTables(bestTrain, trainFailed);
    json.train = Object.fromEntries(bestTrain);
  }
  if (values.json) Deno.writeTextFileSync(values.json, JSON.stringify(json, null, 2) + "\n");
  log(`\ndone in ${elapsed(t0)}. The models stay in ${root} for the next run: rm -rf ${root}`);
}

if (import.meta.main) await main(Deno.args);
