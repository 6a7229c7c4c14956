// Putting LoRA adapters on a model and taking them off: wrap the selected projections, list
// the adapters and their tensors, switch dropout, and merge them back into dense weights.
import { type DType, keep, manualSeed, type Tensor, tidy } from "../../ffi/mod.ts";
import { Linear } from "../linear.ts";
import type { LlamaModel } from "../llama.ts";
import { linearModules } from "../modules.ts";
import { QuantizedLinear } from "../quant/quantized_linear.ts";
import { saveCheckpoint } from "../save_checkpoint.ts";
import { LoraError, LoRALinear } from "./layer.ts";
import { selectModules } from "./targets.ts";

/** Options of applyLora. */
export interface LoraOptions {
  r: number;
  alpha: number;
  dropout?: number;
  /** Module names, short names ("q_proj"), globs, or "all-linear" (every projection but lm_head). */
  targetModules: string | readonly string[];
  /** Scale by alpha/sqrt(r) instead of alpha/r. */
  rslora?: boolean;
  /** Seeds A's initialisation. */
  seed?: number;
  /** dtype of A and B (default: the model's dtype). */
  dtype?: DType;
}

/** The settings an adapter was applied with, kept for saveAdapter. */
export interface AdapterInfo {
  r: number;
  alpha: number;
  dropout: number;
  rslora: boolean;
  targetModules: string[];
}

/** Per model: how its adapters were made (applyLora / applyAdapter), read when saving. */
export const adapterInfo = new WeakMap<LlamaModel, AdapterInfo>();

/** Wraps the selected projections in LoRALinear (base frozen); returns the wrapped module names. */
export function applyLora(model: LlamaModel, opts: LoraOptions): string[] {
  if (!(opts.alpha > 0)) throw new LoraError(`LoRA alpha must be positive, got ${opts.alpha}`);
  const p = opts.dropout ?? 0;
  if (!(p >= 0 && p < 1)) throw new LoraError(`LoRA dropout must be in [0, 1), got ${p}`);
  const slots = selectModules(model, opts.targetModules);
  for (const s of slots) {
    if (s.get() instanceof LoRALinear) {
      throw new LoraError(`${s.name} already carries a LoRA adapter; merge or remove it first`);
    }
  }
  if (opts.seed !== undefined) manualSeed(opts.seed);
  const dtype = opts.dtype ?? model.dtype;
  for (const s of slots) {
    s.set(
      LoRALinear.create(s.get(), {
        r: opts.r,
        alpha: opts.alpha,
        dropout: p,
        rslora: opts.rslora,
        dtype,
        device: model.device,
      }),
    );
  }
  adapterInfo.set(model, {
    r: opts.r,
    alpha: opts.alpha,
    dropout: p,
    rslora: opts.rslora ?? false,
    targetModules: typeof opts.targetModules === "string"
      ? [opts.targetModules]
      : [...opts.targetModules],
  });
  return slots.map((s) => s.name);
}

/** The model's LoRA layers with their module names. */
export function loraLayers(model: LlamaModel): [string, LoRALinear][] {
  const out: [string, LoRALinear][] = [];
  for (const s of linearModules(model, { includeTiedHead: true })) {
    const l = s.get();
    if (l instanceof LoRALinear) out.push([s.name, l]);
  }
  return out;
}

/** Every A and B tensor of the model, in module order. */
export function loraParameters(model: LlamaModel): Tensor[] {
  return loraLayers(model).flatMap(([, l]) => l.parameters());
}

/** Turns adapter dropout on (training) or off (evaluation). */
export function setLoraTraining(model: LlamaModel, on: boolean): void {
  for (const [, l] of loraLayers(model)) l.training = on;
}

/**
 * Folds every adapter into its base weight (W + scaling·B·A) and drops the adapters; a
 * quantized base becomes dense in the model's dtype. With `out`, also writes the merged
 * model there as a full Hugging Face checkpoint.
 */
export function mergeAdapter(model: LlamaModel, out?: string): string[] {
  const merged: string[] = [];
  for (const slot of linearModules(model, { includeTiedHead: true })) {
    const l = slot.get();
    if (!(l instanceof LoRALinear)) continue;
    const base = l.base;
    let weight: Tensor;
    let bias: Tensor | null;
    if (base instanceof Linear) {
      weight = tidy(() => {
        const w = base.weight.detach();
        return w.to("float32").add(l.delta()).to(w.dtype);
      });
      bias = base.bias;
      base.weight.dispose();
    } else if (base instanceof QuantizedLinear) {
      weight = tidy(() => base.dequantize("float32").add(l.delta()).to(model.dtype));
      bias = base.bias ? keep(base.bias.clone()) : null;
      base.dispose();
    } else {
      throw new LoraError(`${slot.name}: cannot merge into a ${base.constructor.name}`);
    }
    keep(weight);
    l.loraA.dispose();
    l.loraB.dispose();
    slot.set(new Linear(weight, bias));
    merged.push(slot.name);
  }
  adapterInfo.delete(model);
  if (out) saveCheckpoint(model, out);
  return merged;
}
