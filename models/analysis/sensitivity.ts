// Layer-by-layer sensitivity: how far each linear module's output of a variant (quantized,
// fine-tuned, merged) strays from the reference model's on the same calibration tokens.
import { keep, noGrad, type Tensor, tidy } from "../../ffi/mod.ts";
import type { LinearLayer } from "../linear.ts";
import type { LlamaModel } from "../llama.ts";
import { linearModules, type ModuleSlot } from "../modules.ts";
import { assertComparable } from "./compare.ts";
import { denseWeight } from "./dense_weight.ts";

/** One row of the layer_sensitivity table. */
export interface SensitivityRow {
  /** Decoder layer, or -1 for lm_head. */
  layer: number;
  /** Module within the layer, e.g. "self_attn.q_proj". */
  module: string;
  /** "isolated", "end_to_end" or "weight". */
  mode: string;
  /** Mean squared difference of outputs (weights for mode "weight"). */
  mse: number;
  /** Mean over tokens of the cosine similarity of output vectors (1 for "weight": not defined). */
  cosine: number;
  /** ‖Δ‖_F / ‖reference‖_F. */
  relError: number;
  tokens: number;
}

class Stats {
  sq = 0;
  refSq = 0;
  cos = 0;
  n = 0;
  rows = 0;
  add(y: Tensor, ref: Tensor): void {
    tidy(() => {
      const a = y.to("float32").reshape([-1, y.size(-1)]);
      const b = ref.to("float32").reshape([-1, ref.size(-1)]);
      const d = a.sub(b);
      this.sq += d.square().sum().item();
      this.refSq += b.square().sum().item();
      const dots = a.mul(b).sum(-1);
      const norms = a.norm(-1).mul(b.norm(-1)).clamp(1e-12);
      this.cos += dots.div(norms).sum().item();
      this.n += a.numel;
      this.rows += a.size(0);
    });
  }
  row(slot: ModuleSlot, mode: string): SensitivityRow {
    const { layer, module } = split(slot);
    return {
      layer,
      module,
      mode,
      mse: this.sq / Math.max(1, this.n),
      cosine: this.cos / Math.max(1, this.rows),
      relError: Math.sqrt(this.sq / Math.max(1e-30, this.refSq)),
      tokens: this.rows,
    };
  }
}

function split(slot: ModuleSlot): { layer: number; module: string } {
  const m = /^model\.layers\.(\d+)\.(.+)$/.exec(slot.name);
  return m ? { layer: Number(m[1]), module: m[2] } : { layer: -1, module: slot.name };
}

/** A stand-in module that observes calls and returns `out(x)`. */
class Probe implements LinearLayer {
  constructor(readonly inner: LinearLayer, readonly out: (x: Tensor) => Tensor) {}
  get inFeatures() {
    return this.inner.inFeatures;
  }
  get outFeatures() {
    return this.inner.outFeatures;
  }
  forward(x: Tensor): Tensor {
    return this.out(x);
  }
  parameterCount() {
    return this.inner.parameterCount();
  }
  weightBytes() {
    return this.inner.weightBytes();
  }
  dispose() {
    this.inner.dispose();
  }
}

function withProbes<R>(
  slots: ModuleSlot[],
  make: (s: ModuleSlot, i: number) => Probe,
  fn: () => R,
) {
  const originals = slots.map((s) => s.get());
  slots.forEach((s, i) => s.set(make(s, i)));
  try {
    return fn();
  } finally {
    slots.forEach((s, i) => s.set(originals[i]));
  }
}

/** Options of layerSensitivity. */
export interface SensitivityOptions {
  modes?: ("isolated" | "end_to_end" | "weight")[];
  onProgress?: (done: number, total: number) => void;
}

/**
 * Compares every linear module of `variant` with `reference` over `batches` of token ids.
 * isolated: each variant module gets exactly the reference module's input (one reference
 * pass; errors do not compound). end_to_end: each model runs on its own. weight: relative
 * weight error.
 */
export function layerSensitivity(
  reference: LlamaModel,
  variant: LlamaModel,
  batches: number[][],
  opts: SensitivityOptions = {},
): SensitivityRow[] {
  assertComparable(reference, variant);
  const modes = opts.modes ?? ["isolated", "end_to_end", "weight"];
  const refSlots = linearModules(reference);
  const varSlots = linearModules(variant);
  if (refSlots.length !== varSlots.length) {
    throw new Error("analyze: the models have different linear modules (tied vs untied lm_head)");
  }
  const rows: SensitivityRow[] = [];
  const steps = batches.length * (modes.includes("isolated") ? 1 : 0) +
    batches.length * (modes.includes("end_to_end") ? 1 : 0);
  let done = 0;
  noGrad(() => {
    if (modes.includes("isolated")) {
      const stats = refSlots.map(() => new Stats());
      const varLayers = varSlots.map((s) => s.get());
      withProbes(refSlots, (s, i) => {
        const inner = s.get();
        return new Probe(inner, (x) => {
          const y = inner.forward(x);
          using v = varLayers[i].forward(x);
          stats[i].add(v, y);
          return y;
        });
      }, () => {
        for (const ids of batches) {
          tidy(() => {
            reference.forward([ids], { logits: "last" });
          });
          opts.onProgress?.(++done, steps);
        }
      });
      refSlots.forEach((s, i) => rows.push(stats[i].row(s, "isolated")));
    }
    if (modes.includes("end_to_end")) {
      const stats = refSlots.map(() => new Stats());
      for (const ids of batches) {
        const saved: Tensor[][] = refSlots.map(() => []);
        try {
          withProbes(refSlots, (s, i) => {
            const inner = s.get();
            return new Probe(inner, (x) => {
              const y = inner.forward(x);
              saved[i].push(keep(y.clone()));
              return y;
            });
          }, () => tidy(() => void reference.forward([ids], { logits: "last" })));
          const calls = refSlots.map(() => 0);
          withProbes(varSlots, (s, i) => {
            const inner = s.get();
            return new Probe(inner, (x) => {
              const y = inner.forward(x);
              stats[i].add(y, saved[i][calls[i]++]);
              return y;
            });
          }, () => tidy(() => void variant.forward([ids], { logits: "last" })));
        } finally {
          for (const list of saved) for (const t of list) t.dispose();
        }
        opts.onProgress?.(++done, steps);
      }
      refSlots.forEach((s, i) => rows.push(stats[i].row(s, "end_to_end")));
    }
    if (modes.includes("weight")) {
      refSlots.forEach((s, i) => {
        tidy(() => {
          const a = denseWeight(s.get());
          const b = denseWeight(varSlots[i].get());
          if (!a || !b) return;
          const d = b.sub(a);
          const { layer, module } = split(s);
          rows.push({
            layer,
            module,
            mode: "weight",
            mse: d.square().mean().item(),
            cosine: tidy(() =>
              a.flatten().mul(b.flatten()).sum().item() /
              Math.max(1e-30, a.norm().item() * b.norm().item())
            ),
            relError: d.norm().item() / Math.max(1e-30, a.norm().item()),
            tokens: 0,
          });
        });
      });
    }
  });
  return rows;
}
