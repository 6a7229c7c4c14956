// Quantizes a loaded model's linear modules in place, per a scheme and per-module overrides.
import { type DType, type Tensor, tidy } from "../../ffi/mod.ts";
import { Linear, type LinearLayer } from "../linear.ts";
import type { LlamaModel } from "../llama.ts";
import { CastLinear } from "./cast_linear.ts";
import { globMatcher, linearModules } from "../modules.ts";
import { QuantizedLinear } from "./quantized_linear.ts";
import { parseScheme, type Scheme } from "./schemes.ts";

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

/** The scheme of each module: the base scheme unless a `keep` glob says otherwise. */
export function moduleSchemes(names: string[], opts: QuantizeOptions): Map<string, Scheme> {
  const base = parseScheme(opts.scheme);
  const rules = Object.entries(opts.keep ?? {}).map(([glob, s]) => ({
    match: globMatcher(glob),
    scheme: parseScheme(s),
  }));
  const out = new Map<string, Scheme>();
  for (const n of names) {
    let s = base;
    for (const r of rules) if (r.match(n)) s = r.scheme;
    out.set(n, s);
  }
  return out;
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

function relativeError(original: Tensor, replaced: LinearLayer): number {
  return tidy(() => {
    let w: Tensor;
    if (replaced instanceof QuantizedLinear) w = replaced.dequantize("float32");
    else if (replaced instanceof Linear || replaced instanceof CastLinear) {
      w = replaced.weight.to("float32");
    } else return NaN;
    const o = original.to("float32");
    return w.sub(o).norm().item() / Math.max(o.norm().item(), 1e-30);
  });
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
    const scheme = fitScheme(schemes.get(slot.name)!, current.inFeatures, opts.strict);
    if (scheme.kind === "int4" && current.inFeatures % scheme.block !== 0) {
      throw new Error(
        `quantize: module '${slot.name}' [${current.outFeatures}x${current.inFeatures}] ` +
          `cannot use scheme '${scheme.name}': in_features ${current.inFeatures} is not a ` +
          `multiple of the group size ${scheme.block}. ` +
          `Pick another scheme for it, e.g. keep: { "${slot.name}": "int8" }`,
      );
    }
    return { slot, current, scheme };
  });
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
    const relError = relativeError(current.weight, next);
    current.dispose();
    slot.set(next);
    const params = next.parameterCount();
    const bytes = next.weightBytes();
    modules.push({
      module: slot.name,
      scheme: scheme.name,
      params,
      bytes,
      bitsPerParam: (bytes * 8) / params,
      relError,
    });
  }
  return {
    scheme: parseScheme(opts.scheme).name,
    simulate: !!opts.simulate,
    modules,
    weightBytes: model.weightBytes(),
    seconds: (performance.now() - started) / 1000,
  };
}
