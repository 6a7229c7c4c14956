// Turns a loaded model into one ready for a fine-tuning method and returns what trains:
// full (every parameter), LoRA (adapters over frozen dense weights) or QLoRA (adapters
// over frozen NF4 weights with double quantization).
import type { Tensor } from "../../ffi/mod.ts";
import { Linear } from "../linear.ts";
import { isPacked } from "../embedding.ts";
import type { LlamaModel } from "../llama.ts";
import { applyLora, type LoraOptions, loraParameters } from "../lora/mod.ts";
import { linearModules } from "../modules.ts";
import { QuantizedLinear } from "../quant/quantized_linear.ts";
import { parseScheme } from "../quant/schemes.ts";

/** A fine-tuning method. */
export type Method = "full" | "lora" | "qlora";

/** The model's parameter tensors (tied embeddings once); throws if a layer is not dense. */
export function denseParameters(model: LlamaModel): Tensor[] {
  const w = model.weights;
  if (isPacked(w.embedTokens)) {
    throw new Error(
      "full fine-tuning needs dense weights, but the embedding table is quantized; " +
        "load the model without quantization",
    );
  }
  const out = new Set<Tensor>([w.embedTokens, w.norm]);
  for (const l of w.layers) {
    out.add(l.inputNorm);
    out.add(l.postAttentionNorm);
  }
  for (const s of linearModules(model, { includeTiedHead: true })) {
    const l = s.get();
    if (!(l instanceof Linear)) {
      throw new Error(
        `full fine-tuning needs dense weights, but ${s.name} is a ${l.constructor.name}; ` +
          "load the model without quantization or adapters",
      );
    }
    out.add(l.weight);
    if (l.bias) out.add(l.bias);
  }
  return [...out];
}

/**
 * Replaces every projection but lm_head with NF4 storage (blocks of 64, double-quantized
 * absmax), as QLoRA does; returns the module names quantized.
 */
export function quantizeForQlora(model: LlamaModel, scheme = "nf4"): string[] {
  const s = parseScheme(scheme);
  if (s.kind === "cast") throw new Error(`QLoRA needs a quantized scheme, got ${scheme}`);
  const names: string[] = [];
  for (const slot of linearModules(model, { includeTiedHead: true })) {
    if (slot.name === "lm_head") continue;
    const l = slot.get();
    if (!(l instanceof Linear)) continue;
    const q = QuantizedLinear.fromWeight(l.weight, l.bias, s);
    l.weight.dispose();
    slot.set(q);
    names.push(slot.name);
  }
  return names;
}

/** What prepareMethod did. */
export interface Prepared {
  method: Method;
  /** Tensors the optimizer updates (all require grad). */
  trainable: Tensor[];
  /** Modules wrapped with LoRA (lora/qlora). */
  adapted: string[];
  /** Modules stored quantized (qlora). */
  quantized: string[];
}

/** Sets `model` up for `method` and returns the trainable tensors. */
export function prepareMethod(
  model: LlamaModel,
  method: Method,
  lora?: LoraOptions,
  opts: { quantScheme?: string } = {},
): Prepared {
  if (method === "full") {
    const trainable = denseParameters(model);
    for (const t of trainable) t.requiresGrad_();
    return { method, trainable, adapted: [], quantized: [] };
  }
  if (!lora) throw new Error(`method "${method}" needs LoRA options (r, alpha, targetModules)`);
  const quantized = method === "qlora" ? quantizeForQlora(model, opts.quantScheme ?? "nf4") : [];
  const adapted = applyLora(model, lora);
  return { method, trainable: loraParameters(model), adapted, quantized };
}
