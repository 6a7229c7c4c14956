// Quantizes a loaded model's linear modules in place, per a scheme and per-module overrides.
import type { DType, Tensor } from "../../ffi/mod.ts";
import { Linear, type LinearLayer } from "../linear.ts";
import type { LlamaModel } from "../llama.ts";
import { CastLinear } from "./cast_linear.ts";
import { moduleGlob } from "../../glob.ts";
import { linearModules } from "../modules.ts";
import { QuantizedLinear } from "./quantized_linear.ts";
import { parseScheme, type Scheme } from "./schemes.ts";
import { relativeError } from "./relative_error.ts";
import { isPacked } from "../embedding.ts";

/** How to quantize a model. */
export interface QuantizeOptions {
  /** Scheme for every linear module (see SCHEME_NAMES), e.g. "nf4" or "int4-g128". */
  scheme: string;
  /**
   * Per-module overrides: module-name glob → scheme, e.g.
   * `{ "lm_head": "bf16", "model.layers.0.*": "bf16" }`. The last matching glob wins.
   */
  keep?: Record<string, string>;
  /** Quantize-then-dequantize into dense weights: measures quality without the kernels. */
  simulate?: boolean;
  /** Fail on a module the scheme cannot hold (int4 group not dividing its width) instead of falling back. */
  strict?: boolean;
}

/** What happened to one module. */
export interface ModuleQuantization {
  module: string;
  scheme: string;
  params: number;
  /** Bytes of its stored form (packed data, scales, bias). */
  bytes: number;
  bitsPerParam: number;
  /** ‖W − dequant(Q(W))‖_F / ‖W‖_F. */
  relError: number;
}

/** The outcome of quantizeModel. */
export interface QuantizationReport {
  scheme: string;
  simulate: boolean;
  modules: ModuleQuantization[];
  /** Bytes of the whole model afterwards (embeddings and norms included). */
  weightBytes: number;
  seconds: number;
}

/** Name of the embedding table in `keep` globs and quantization reports. */
export const EMBED_MODULE = "model.embed_tokens";
const HEAD_MODULES = new Set(["lm_head", EMBED_MODULE]);

/**
 * The scheme lm_head and the embeddings take by default: int8 under 4-bit and fp8 schemes —
 * the output layer is the most sensitive matrix, which is why llama.cpp keeps it at 6–8 bits
 * too —, the scheme itself under int8, bf16 and fp16.
 */
export function headScheme(base: Scheme): Scheme {
  return base.kind === "cast" || base.kind === "int8" ? base : parseScheme("int8");
}

/**
 * The scheme of each module: the base scheme (headScheme's for lm_head and the embeddings)
 * unless a `keep` glob says otherwise; the last matching glob wins.
 */
export function moduleSchemes(
  names: string[],
  opts: QuantizeOptions,
  tiedEmbeddings = false,
): Map<string, Scheme> {
  const out = new Map<string, Scheme>();
  for (const n of names) {
    out.set(
      n,
      n === EMBED_MODULE ? embeddingScheme(tiedEmbeddings, opts) : resolveScheme(n, opts).scheme,
    );
  }
  return out;
}

function resolveScheme(name: string, opts: QuantizeOptions): { scheme: Scheme; explicit: boolean } {
  const base = parseScheme(opts.scheme);
  let scheme = HEAD_MODULES.has(name) ? headScheme(base) : base;
  let explicit = false;
  for (const [glob, s] of Object.entries(opts.keep ?? {})) {
    if (moduleGlob(glob)(name)) [scheme, explicit] = [parseScheme(s), true];
  }
  return { scheme, explicit };
}

/** The embedding table's scheme; a tied one is also lm_head, whose `keep` glob then wins. */
export function embeddingScheme(tied: boolean, opts: QuantizeOptions): Scheme {
  const head = resolveScheme("lm_head", opts);
  if (tied && head.explicit) return head.scheme;
  return resolveScheme(EMBED_MODULE, opts).scheme;
}

/**
 * The scheme a module of `inFeatures` inputs can use: int4 groups must divide a row, so
 * a module whose width the group size does not divide takes the largest of 128/64/32 that
 * does, or int8 — as llama.cpp falls back for tensors of awkward shapes. `strict` refuses instead.
 */
export function fitScheme(s: Scheme, inFeatures: number, strict = false): Scheme {
  if (s.kind !== "int4" || inFeatures % s.block === 0 || strict) return s;
  const g = [128, 64, 32].find((g) => g <= s.block && inFeatures % g === 0);
  return parseScheme(g ? `int4-g${g}` : "int8");
}

/**
 * The scheme a module of `[out, inF]` takes (fitScheme's fallback applied); throws naming the
 * module and the fix when int4's group still does not divide its width (strict).
 */
export function fitModuleScheme(
  name: string,
  out: number,
  inF: number,
  wanted: Scheme,
  strict = false,
): Scheme {
  const scheme = fitScheme(wanted, inF, strict);
  if (scheme.kind === "int4" && inF % scheme.block !== 0) {
    throw new Error(
      `quantize: module '${name}' [${out}x${inF}] cannot use scheme '${scheme.name}': ` +
        `in_features ${inF} is not a multiple of the group size ${scheme.block}. ` +
        `Pick another scheme for it, e.g. keep: { "${name}": "int8" }`,
    );
  }
  return scheme;
}

/** The embedding table's scheme, fitted and checked like a module's (see fitModuleScheme). */
export function fitTableScheme(
  tied: boolean,
  opts: QuantizeOptions,
  vocab: number,
  width: number,
): Scheme {
  const scheme = fitScheme(embeddingScheme(tied, opts), width, opts.strict);
  if (scheme.kind === "int4" && width % scheme.block !== 0) {
    throw new Error(
      `quantize: the embedding table [${vocab},${width}] cannot use scheme '${scheme.name}': ` +
        `its width ${width} is not a multiple of the group size ${scheme.block}. ` +
        `Pick another scheme for it, e.g. keep: { "embed_tokens": "int8" }`,
    );
  }
  return scheme;
}

/** Builds a module in `scheme` from a dense weight (which the caller still owns). */
export function quantizeLinear(
  weight: Tensor,
  bias: Tensor | null,
  scheme: Scheme,
  computeDtype: DType,
  simulate = false,
): LinearLayer {
  const ownBias = bias ? bias.clone() : null;
  if (scheme.kind === "cast") {
    if (scheme.dtype === computeDtype) return new Linear(weight.clone(), ownBias);
    if (!simulate) return CastLinear.fromWeight(weight, ownBias, scheme.dtype);
    using narrow = weight.to(scheme.dtype);
    return new Linear(narrow.to(computeDtype), ownBias);
  }
  const q = QuantizedLinear.fromWeight(weight, ownBias, scheme);
  if (!simulate) return q;
  const dense = new Linear(q.dequantize(computeDtype), ownBias);
  for (const p of q.parts) p.dispose();
  return dense;
}

export { ERROR_CHUNK, relativeError } from "./relative_error.ts";

/** ‖W − W'‖_F / ‖W‖_F of a module against its original weight; NaN for a layer kind it cannot read. */
export function layerRelativeError(original: Tensor, replaced: LinearLayer): number {
  if (replaced instanceof QuantizedLinear) return replaced.relativeError(original);
  if (replaced instanceof Linear || replaced instanceof CastLinear) {
    return relativeError(original, replaced.weight);
  }
  return NaN;
}

/** The error of an embedding table its scheme cannot pack, with the fix. */
export function embeddingSchemeError(shape: number[], scheme: Scheme, cause: unknown): Error {
  return new Error(
    `quantize: the embedding table [${shape}] cannot use scheme '${scheme.name}': ` +
      `${
        (cause as Error).message
      }. Pick another scheme for it, e.g. keep: { "embed_tokens": "int8" }`,
  );
}

/** A module's row of the quantization report. */
export function moduleRow(
  module: string,
  scheme: Scheme,
  layer: LinearLayer,
  relError: number,
): ModuleQuantization {
  const params = layer.parameterCount();
  const bytes = layer.weightBytes();
  return {
    module,
    scheme: scheme.name,
    params,
    bytes,
    bitsPerParam: (bytes * 8) / params,
    relError,
  };
}

// Replaces the embedding table (and a tied head, which reads it) with its packed form, stored
// once; a lookup then dequantizes only the rows it reads.
function quantizeEmbedding(
  model: LlamaModel,
  table: Tensor,
  scheme: Scheme,
  simulate = false,
): ModuleQuantization {
  const w = model.weights;
  const tied = model.config.tieWordEmbeddings;
  if (scheme.kind === "cast" && scheme.dtype === model.dtype) {
    return moduleRow(EMBED_MODULE, scheme, new Linear(table), 0); // stays as it is
  }
  const next = quantizeLinear(table, null, scheme, model.dtype, simulate);
  const relError = layerRelativeError(table, next);
  const packed = !(next instanceof Linear);
  w.embedTokens = packed ? next as QuantizedLinear | CastLinear : (next as Linear).weight;
  if (tied) w.lmHead = packed ? next : new Linear(w.embedTokens as Tensor);
  table.dispose();
  return moduleRow(EMBED_MODULE, scheme, next, relError);
}

/** Quantizes `model`'s linear modules in place and reports per-module sizes and errors. */
export function quantizeModel(model: LlamaModel, opts: QuantizeOptions): QuantizationReport {
  const started = performance.now();
  const slots = linearModules(model);
  const schemes = moduleSchemes(slots.map((s) => s.name), opts);
  // Check every module before changing any, so a refusal leaves the model as it was.
  const plan = slots.map((slot) => {
    const current = slot.get();
    if (!(current instanceof Linear)) {
      throw new Error(
        `quantize: module '${slot.name}' is already ${current.constructor.name}; ` +
          "quantize the unquantized model instead",
      );
    }
    const { outFeatures: out, inFeatures: inF } = current;
    const scheme = fitModuleScheme(slot.name, out, inF, schemes.get(slot.name)!, opts.strict);
    return { slot, current, scheme };
  });
  const table = model.weights.embedTokens;
  if (isPacked(table)) {
    throw new Error(
      `quantize: the embedding table is already ${table.constructor.name}; ` +
        "quantize the unquantized model instead",
    );
  }
  const [vocab, width] = table.shape;
  const tableScheme = fitTableScheme(model.config.tieWordEmbeddings, opts, vocab, width);
  const modules: ModuleQuantization[] = [];
  for (const { slot, current, scheme } of plan) {
    let next: LinearLayer;
    try {
      next = quantizeLinear(current.weight, current.bias, scheme, model.dtype, opts.simulate);
    } catch (e) {
      throw new Error(
        `quantize: module '${slot.name}' [${current.outFeatures}x${current.inFeatures}] ` +
          `cannot use scheme '${scheme.name}': ${(e as Error).message}. ` +
          `Pick another scheme for it, e.g. keep: { "${slot.name}": "int8" }`,
      );
    }
    const relError = layerRelativeError(current.weight, next);
    current.dispose();
    slot.set(next);
    modules.push(moduleRow(slot.name, scheme, next, relError));
  }
  try {
    modules.push(quantizeEmbedding(model, table, tableScheme, opts.simulate));
  } catch (e) {
    throw embeddingSchemeError(table.shape, tableScheme, e);
  }
  return {
    scheme: parseScheme(opts.scheme).name,
    simulate: !!opts.simulate,
    modules,
    weightBytes: model.weightBytes(),
    seconds: (performance.now() - started) / 1000,
  };
}
