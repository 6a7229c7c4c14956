// `deno task bench quant [--model DIR] [--schemes a,b]`: bytes per parameter, memory of the
// loaded model, batch-1 decode speed relative to fp32, and time to quantize, per scheme.
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { loadModel } from "../models/load.ts";
import { createTinyModel } from "../models/tiny.ts";
import { quantizeModel } from "../models/quant/quantize_model.ts";
import { saveQuantizedModel } from "../models/quant/checkpoint.ts";
import { supportedSchemes } from "../models/quant/schemes.ts";
import { readBandwidth } from "../ffi/membw.ts";

const TARGETS: Record<string, number> = { int8: 1.01, nf4: 0.52, "int4-g128": 0.54 };

interface Worker {
  rssBefore: number;
  rssLoaded: number;
  peakLoad: number;
  weightBytes: number;
  loadS: number;
  decodeTps: number;
  prefillTps: number;
}

async function measure(dir: string): Promise<Worker> {
  const worker = fileURLToPath(new URL("./quant_worker.ts", import.meta.url));
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", worker, dir],
    stderr: "inherit",
  }).output();
  if (!out.success) throw new Error(`measuring ${dir} failed`);
  const lines = new TextDecoder().decode(out.stdout).trim().split("\n");
  return JSON.parse(lines[lines.length - 1]);
}

/** Runs the benchmark and prints one row per scheme. */
export async function main(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: { model: { type: "string" }, schemes: { type: "string" } },
  });
  const tmp = Deno.makeTempDirSync({ prefix: "lab-bench-quant-" });
  try {
    let dir = values.model;
    if (!dir) {
      dir = `${tmp}/base`;
      console.log("generating the ~25M-parameter benchmark model (tiny factory, preset 25m)…");
      createTinyModel({ out: dir, arch: "llama", preset: "25m", seed: 0 });
    }
    const schemes = values.schemes?.split(",") ??
      ["fp32", "bf16", "int8", "nf4", "fp4", "int4-g128", "int4-g32", "fp8-e4m3"].filter((s) =>
        supportedSchemes().includes(s)
      );
    const rows: Record<string, unknown>[] = [];
    // The roofline of batch-1 decode, measured in this run (see docs/benchmarks.md).
    const memBw = readBandwidth().bytesPerS;
    console.log(`memory read bandwidth: ${(memBw / 1e9).toFixed(1)} GB/s`);
    let fp32Tps = NaN, fp32Rss = NaN;
    for (const scheme of schemes) {
      using model = loadModel(dir);
      const r = quantizeModel(model, { scheme });
      const out = `${tmp}/${scheme}`;
      saveQuantizedModel(model, out);
      const linParams = r.modules.reduce((s, m) => s + m.params, 0);
      const linBytes = r.modules.reduce((s, m) => s + m.bytes, 0);
      const w = await measure(out);
      if (scheme === "fp32") {
        fp32Tps = w.decodeTps;
        fp32Rss = w.rssLoaded - w.rssBefore;
      }
      const rss = w.rssLoaded - w.rssBefore;
      rows.push({
        scheme,
        "bytes/param": (linBytes / linParams).toFixed(3),
        target: TARGETS[scheme] ? `<= ${TARGETS[scheme]}` : "",
        "model MB": (w.weightBytes / 1e6).toFixed(1),
        "loaded RSS MB": (rss / 1e6).toFixed(1),
        "RSS vs fp32": (rss / fp32Rss).toFixed(2),
        "decode t/s": w.decodeTps.toFixed(1),
        "vs fp32": (w.decodeTps / fp32Tps).toFixed(2),
        "of mem-bw limit": (w.decodeTps / (memBw / w.weightBytes)).toFixed(2),
        "quantize s": r.seconds.toFixed(2),
      });
      console.log(`${scheme} done`);
    }
    console.table(rows);
    console.log(
      "bytes/param counts the linear layers' packed storage with scales; 'of mem-bw limit' is " +
        "decode t/s over 13.0 GB/s ÷ model bytes.",
    );
  } finally {
    Deno.removeSync(tmp, { recursive: true });
  }
}
