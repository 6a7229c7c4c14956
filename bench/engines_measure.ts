// The measurements of `bench engines`: each configuration opened in its engine (the lab's
// schemes in libtorch, llama.cpp's types through libllama), speed in alternating rounds, and
// quality against the lab's fp32 reference on the same token ids.
import { join } from "node:path";
import { loadIntoScheme, loadModel } from "../models/load.ts";
import type { LlamaModel } from "../models/llama.ts";
import { exportGguf } from "../models/gguf/export.ts";
import { LlamaCppModel } from "../models/llama_cpp/model.ts";
import { isUnquantized, type LlamaCppScheme, quantizeGguf } from "../models/llama_cpp/quantize.ts";
import { profileLlamaCpp } from "../models/llama_cpp/profile.ts";
import { llamaCppSlidingNll } from "../models/llama_cpp/scoring.ts";
import { compareWithLlamaCpp } from "../models/llama_cpp/divergence.ts";
import { type GenerationCase, profileGenerations } from "../models/profile/generation.ts";
import { slidingNll } from "../models/eval/perplexity.ts";
import { compareDistributions } from "../models/analysis/divergence.ts";
import { configParameterCount, readConfig } from "../models/config.ts";
import { summary } from "../models/profile/stats.ts";

const median = (xs: number[]) => summary(xs).median;

/** One row of the engines table. */
export interface EngineConfig {
  engine: "libtorch" | "llama.cpp";
  scheme: string;
}

/** An opened configuration. */
type Opened =
  | { kind: "libtorch"; model: LlamaModel; bytes: number; params: number }
  | { kind: "llama.cpp"; model: LlamaCppModel; bytes: number; params: number };

/** Opens `c` from the HF folder `dir` (llama.cpp: GGUF written into `tmp`). */
export function openConfig(dir: string, c: EngineConfig, tmp: string, ctx: number, seqs = 1) {
  if (c.engine === "libtorch") {
    const model = c.scheme === "fp32"
      ? loadModel(dir)
      : loadIntoScheme(dir, { quantize: c.scheme, measureError: false }).model;
    const opened: Opened = {
      kind: "libtorch",
      model,
      bytes: model.weightBytes(),
      params: configParameterCount(readConfig(dir)),
    };
    return opened;
  }
  const s = c.scheme as LlamaCppScheme;
  const f32 = join(tmp, "f32.gguf");
  const out = join(tmp, `${s}.gguf`);
  if (isUnquantized(s)) exportGguf(dir, out, s);
  else {
    try {
      Deno.statSync(f32);
    } catch {
      exportGguf(dir, f32, "F32");
    }
    quantizeGguf(f32, out, s);
  }
  const model = LlamaCppModel.open(out, { contextTokens: ctx, sequences: seqs });
  const opened: Opened = {
    kind: "llama.cpp",
    model,
    bytes: model.weightBytes,
    params: model.parameters,
  };
  return opened;
}

/** Frees an opened configuration. */
export function closeConfig(o: Opened): void {
  if (o.kind === "libtorch") o.model.dispose();
  else o.model.close();
}

/** Prefill and decode tokens/s of every configuration: `rounds` rounds, each timing all once. */
export function measureSpeed(opened: Opened[], c: GenerationCase, rounds: number) {
  const prefill: number[][] = opened.map(() => []);
  const decode: number[][] = opened.map(() => []);
  for (let r = 0; r < rounds; r++) {
    opened.forEach((o, i) => {
      const opts = { warmup: r === 0 ? 1 : 0, repeats: 1 };
      const [p] = o.kind === "libtorch"
        ? profileGenerations(o.model, [c], opts)
        : profileLlamaCpp(o.model, [c], opts);
      prefill[i].push(p.prefillTps);
      decode[i].push(p.decodeTps);
    });
  }
  return opened.map((_, i) => ({ prefillTps: median(prefill[i]), decodeTps: median(decode[i]) }));
}

/** PPL over `ids` (sliding windows) and KLD / top-1 against `ref`, in the configuration's engine. */
export function measureQuality(ref: LlamaModel, o: Opened, ids: number[], ctx: number) {
  const windows = { contextLength: ctx, stride: ctx / 2 };
  const nll = o.kind === "libtorch"
    ? slidingNll(o.model, ids, windows)
    : llamaCppSlidingNll(o.model, ids, windows);
  const d = o.kind === "libtorch"
    ? compareDistributions(ref, o.model, ids, windows)
    : compareWithLlamaCpp(ref, o.model, ids, windows);
  return { ppl: Math.exp(nll.nll / nll.tokens), kld: d.meanKld, top1: d.top1Agreement };
}
