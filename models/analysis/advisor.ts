// The mixed-precision advisor: which modules to keep in a fallback scheme so that a model
// quantized to a base scheme meets a budget, chosen greedily by measured sensitivity per
// extra byte and verified by evaluating the result.
import type { LlamaModel } from "../llama.ts";
import { linearModules } from "../modules.ts";
import { fitScheme, quantizeModel } from "../quant/quantize_model.ts";
import { packedBytes, parseScheme } from "../quant/schemes.ts";
import { compareDistributions } from "./divergence.ts";
import { layerSensitivity } from "./sensitivity.ts";

/** At least one limit; the advisor keeps as few modules as meet all the given ones. */
export interface Budget {
  maxMeanKld?: number;
  maxDeltaPpl?: number;
  maxWeightBytes?: number;
}

/** What the advisor needs. */
export interface AdvisorOptions {
  scheme: string;
  fallback: string;
  budget: Budget;
  /** Token rows for the sensitivity pass. */
  calibration: number[][];
  /** Token ids the budget is checked on (KLD, ΔPPL). */
  evaluation: number[];
  contextLength?: number;
  onProgress?: (message: string) => void;
}

/** One evaluated configuration. */
export interface AdvisorTrial {
  kept: number;
  weightBytes: number;
  meanKld: number;
  deltaPpl: number;
}

/** The advice. */
export interface Advice {
  /** `keep` globs for the quantize stage: module → fallback scheme. */
  keep: Record<string, string>;
  /** Modules in the order the advisor would add them, with their score. */
  ranking: { module: string; score: number; extraBytes: number }[];
  chosen: AdvisorTrial;
  /** Whether the chosen configuration meets every limit. */
  met: boolean;
  trials: AdvisorTrial[];
}

/**
 * Advises on `reference` (the unquantized model). `load()` returns a fresh copy of it each
 * time (the advisor quantizes copies and frees them).
 */
export function adviseMixedPrecision(
  reference: LlamaModel,
  load: () => LlamaModel,
  o: AdvisorOptions,
): Advice {
  const b = o.budget;
  if (b.maxMeanKld === undefined && b.maxDeltaPpl === undefined && b.maxWeightBytes === undefined) {
    throw new Error("advise: give a budget: maxMeanKld, maxDeltaPpl or maxWeightBytes");
  }
  const base = parseScheme(o.scheme), fallback = parseScheme(o.fallback);
  const evaluate = (keep: Record<string, string>, kept: number): AdvisorTrial => {
    using m = load();
    quantizeModel(m, { scheme: o.scheme, keep });
    const d = compareDistributions(reference, m, o.evaluation, { contextLength: o.contextLength });
    return {
      kept,
      weightBytes: m.weightBytes(),
      meanKld: d.meanKld,
      deltaPpl: d.pplVariant - d.pplReference,
    };
  };
  // Sensitivity of each module under the base scheme, fed the reference's inputs.
  o.onProgress?.("measuring sensitivity");
  const rows = (() => {
    using q = load();
    quantizeModel(q, { scheme: o.scheme });
    return layerSensitivity(reference, q, o.calibration, { modes: ["isolated"] });
  })();
  const slots = linearModules(reference);
  const ranking = slots.map((s) => {
    const layer = s.get();
    const row = rows.find((r) =>
      (r.layer === -1 ? r.module : `model.layers.${r.layer}.${r.module}`) === s.name
    )!;
    const fitted = fitScheme(base, layer.inFeatures);
    const extra = packedBytes(fallback, layer.outFeatures, layer.inFeatures) -
      packedBytes(fitted, layer.outFeatures, layer.inFeatures);
    // Squared output error per token this module adds, per byte it would cost to avoid.
    const damage = row.mse * layer.outFeatures;
    return { module: s.name, score: damage / Math.max(1, extra), extraBytes: extra };
  }).sort((x, y) => y.score - x.score);
  const keepOf = (k: number) =>
    Object.fromEntries(ranking.slice(0, k).map((r) => [r.module, o.fallback]));
  const fits = (t: AdvisorTrial) =>
    (b.maxMeanKld === undefined || t.meanKld <= b.maxMeanKld) &&
    (b.maxDeltaPpl === undefined || t.deltaPpl <= b.maxDeltaPpl) &&
    (b.maxWeightBytes === undefined || t.weightBytes <= b.maxWeightBytes);
  const trials: AdvisorTrial[] = [];
  const trial = (k: number) => {
    const found = trials.find((t) => t.kept === k);
    if (found) return found;
    o.onProgress?.(`evaluating ${k} of ${ranking.length} modules kept in ${o.fallback}`);
    const t = evaluate(keepOf(k), k);
    trials.push(t);
    return t;
  };
  // A byte limit caps how many modules can be kept; quality limits need at least some.
  let hi = ranking.length;
  if (b.maxWeightBytes !== undefined) {
    const baseBytes = trial(0).weightBytes;
    let k = 0, bytes = baseBytes;
    while (k < ranking.length && bytes + ranking[k].extraBytes <= b.maxWeightBytes) {
      bytes += ranking[k].extraBytes;
      k++;
    }
    hi = k;
  }
  let chosen: AdvisorTrial;
  if (b.maxMeanKld === undefined && b.maxDeltaPpl === undefined) {
    chosen = trial(hi);
  } else if (fits(trial(0))) {
    chosen = trial(0);
  } else {
    // Smallest k in (0, hi] that meets the quality limits (error falls as modules are kept).
    let lo = 0;
    if (!fits(trial(hi))) {
      chosen = trial(hi);
    } else {
      while (hi - lo > 1) {
        const mid = (lo + hi) >> 1;
        if (fits(trial(mid))) hi = mid;
        else lo = mid;
      }
      chosen = trial(hi);
    }
  }
  return {
    keep: keepOf(chosen.kept),
    ranking,
    chosen,
    met: fits(chosen),
    trials: trials.sort((x, y) => x.kept - y.kept),
  };
}
