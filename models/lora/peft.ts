// PEFT's adapter format: adapter_config.json + adapter_model.safetensors with tensors named
// `base_model.model.<module>.lora_{A,B}.weight`; saving an adapter and loading one (made here or
// by PEFT) onto a model.
import { type DType, type Tensor, tidy } from "../../ffi/mod.ts";
import type { LlamaModel } from "../llama.ts";
import { linearModules, type ModuleSlot } from "../modules.ts";
import { loadSafetensors, saveSafetensors } from "../safetensors.ts";
import { adapterInfo, loraLayers } from "./apply.ts";
import { LoraError, LoRALinear } from "./layer.ts";
import { matchesTarget } from "./targets.ts";

const PREFIX = "base_model.model.";

/** The PEFT tensor names of one module's adapter. */
export function peftKeys(module: string): { a: string; b: string } {
  return { a: `${PREFIX}${module}.lora_A.weight`, b: `${PREFIX}${module}.lora_B.weight` };
}

/** What adapter_config.json holds (PEFT's LoraConfig fields that matter here). */
export interface AdapterConfig {
  peft_type: "LORA";
  task_type: "CAUSAL_LM";
  r: number;
  lora_alpha: number;
  lora_dropout: number;
  target_modules: string[];
  bias: "none";
  use_rslora: boolean;
  [k: string]: unknown;
}

/** Options of saveAdapter. */
export interface SaveAdapterOptions {
  /** base_model_name_or_path in the config (default: the folder the model was loaded from). */
  baseModel?: string;
  /** dtype to store A and B in (default: as held). */
  dtype?: DType;
}

// PEFT re-wraps every module whose name matches target_modules; listing short names is the
// usual form, but only correct when the adapter covers every module with those names.
function targetList(model: LlamaModel, names: string[]): string[] {
  const shorts = [...new Set(names.map((n) => n.split(".").pop()!))].sort();
  const all = linearModules(model, { includeTiedHead: true }).filter((s) =>
    shorts.some((sh) => matchesTarget(s.name, sh))
  );
  return all.length === names.length ? shorts : [...names];
}

/** Writes adapter_config.json and adapter_model.safetensors (PEFT's format) into `dir`. */
export function saveAdapter(
  model: LlamaModel,
  dir: string,
  opts: SaveAdapterOptions = {},
): AdapterConfig {
  const layers = loraLayers(model);
  if (layers.length === 0) throw new LoraError("saveAdapter: the model carries no LoRA adapter");
  const first = layers[0][1];
  const info = adapterInfo.get(model);
  const rankPattern: Record<string, number> = {};
  const alphaPattern: Record<string, number> = {};
  for (const [name, l] of layers) {
    if (l.r !== first.r) rankPattern[name] = l.r;
    if (l.alpha !== first.alpha) alphaPattern[name] = l.alpha;
    if (l.rslora !== first.rslora) {
      throw new LoraError(
        "saveAdapter: adapters mix rsLoRA and plain scaling, which PEFT cannot express",
      );
    }
  }
  const config: AdapterConfig = {
    peft_type: "LORA",
    task_type: "CAUSAL_LM",
    base_model_name_or_path: opts.baseModel ?? model.source ?? null,
    r: first.r,
    lora_alpha: first.alpha,
    lora_dropout: info?.dropout ?? first.dropout,
    target_modules: targetList(model, layers.map(([n]) => n)),
    bias: "none",
    use_rslora: first.rslora,
    use_dora: false,
    fan_in_fan_out: false,
    init_lora_weights: true,
    inference_mode: true,
    modules_to_save: null,
    layers_to_transform: null,
    layers_pattern: null,
    rank_pattern: rankPattern,
    alpha_pattern: alphaPattern,
    revision: null,
  };
  Deno.mkdirSync(dir, { recursive: true });
  tidy(() => {
    const tensors = new Map<string, Tensor>();
    for (const [name, l] of layers) {
      const k = peftKeys(name);
      const conv = (t: Tensor) => {
        const d = t.detach();
        return opts.dtype && opts.dtype !== t.dtype ? d.to(opts.dtype) : d;
      };
      tensors.set(k.a, conv(l.loraA));
      tensors.set(k.b, conv(l.loraB));
    }
    saveSafetensors(`${dir}/adapter_model.safetensors`, tensors, { format: "pt" });
  });
  Deno.writeTextFileSync(`${dir}/adapter_config.json`, JSON.stringify(config, null, 2) + "\n");
  return config;
}

function readAdapterConfig(dir: string): Record<string, unknown> {
  const path = `${dir}/adapter_config.json`;
  let text: string;
  try {
    text = Deno.readTextFileSync(path);
  } catch (e) {
    throw new LoraError(
      `cannot read ${path}: ${(e as Error).message}; is ${dir} an adapter folder?`,
    );
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new LoraError(`${path} is not valid JSON: ${(e as Error).message}`);
  }
  if (!raw || typeof raw !== "object" || Array.isArray(raw)) {
    throw new LoraError(`${path} must hold a JSON object`);
  }
  return raw as Record<string, unknown>;
}

// PEFT picks a per-module rank/alpha from the first pattern key that matches the name's end.
function patternValue(pattern: unknown, name: string, fallback: number): number {
  if (!pattern || typeof pattern !== "object") return fallback;
  for (const [key, v] of Object.entries(pattern as Record<string, unknown>)) {
    let re: RegExp;
    try {
      re = new RegExp(`^(.*\\.)?${key}$`);
    } catch {
      continue;
    }
    if (re.test(name) && typeof v === "number") return v;
  }
  return fallback;
}

/** Options of applyAdapter. */
export interface ApplyAdapterOptions {
  /** Make A and B trainable (to continue training); default false. */
  trainable?: boolean;
}

/** Loads a PEFT LoRA adapter folder (made here or by PEFT) onto `model`; returns the modules it wrapped. */
export function applyAdapter(
  model: LlamaModel,
  dir: string,
  opts: ApplyAdapterOptions = {},
): string[] {
  dir = dir.replace(/\/+$/, "");
  const cfg = readAdapterConfig(dir);
  checkSupported(cfg, `${dir}/adapter_config.json`);
  const alpha = Number(cfg.lora_alpha ?? 8);
  const rslora = cfg.use_rslora === true;
  const dropout = Number(cfg.lora_dropout ?? 0);
  const stPath = `${dir}/adapter_model.safetensors`;
  try {
    Deno.statSync(stPath);
  } catch {
    throw new LoraError(
      `${dir} has no adapter_model.safetensors (adapter_model.bin pickles are not read; ` +
        `re-save with safe_serialization=True)`,
    );
  }
  const tensors = loadSafetensors(stPath, { dtype: model.dtype, device: model.device });
  const slots = new Map(linearModules(model, { includeTiedHead: true }).map((s) => [s.name, s]));
  let pairs: Map<string, AdapterPair>;
  try {
    pairs = adapterPairs(tensors, stPath);
    checkPairs(pairs, slots, stPath);
    checkTargets(cfg.target_modules, [...pairs.keys()], `${dir}/adapter_config.json`);
  } catch (e) {
    for (const t of tensors.values()) t.dispose();
    throw e;
  }
  const names: string[] = [];
  for (const [name, p] of pairs) {
    const slot = slots.get(name)!;
    const layer = new LoRALinear(slot.get(), p.a!, p.b!, {
      alpha: patternValue(cfg.alpha_pattern, name, alpha),
      dropout,
      rslora,
    });
    if (opts.trainable) {
      layer.loraA.requiresGrad_();
      layer.loraB.requiresGrad_();
    }
    slot.set(layer);
    names.push(name);
  }
  const first = names.length ? (slots.get(names[0])!.get() as LoRALinear) : null;
  adapterInfo.set(model, {
    r: first?.r ?? Number(cfg.r ?? 0),
    alpha,
    dropout,
    rslora,
    targetModules: Array.isArray(cfg.target_modules) ? cfg.target_modules.map(String) : names,
  });
  return names;
}

// The PEFT options this loader cannot honour, each refused with its name.
function checkSupported(cfg: Record<string, unknown>, where: string): void {
  if (cfg.peft_type !== "LORA") {
    throw new LoraError(
      `${where}: peft_type is ${JSON.stringify(cfg.peft_type)}; only "LORA" adapters load here`,
    );
  }
  if (cfg.use_dora === true) {
    throw new LoraError(`${where}: DoRA adapters (use_dora: true) are not supported`);
  }
  if (cfg.fan_in_fan_out === true) {
    throw new LoraError(
      `${where}: fan_in_fan_out adapters (GPT-2 Conv1D) do not fit Llama-family models`,
    );
  }
  if (cfg.bias !== undefined && cfg.bias !== "none") {
    throw new LoraError(
      `${where}: bias "${cfg.bias}" adapters are not supported; only bias "none"`,
    );
  }
  if (cfg.modules_to_save && Array.isArray(cfg.modules_to_save) && cfg.modules_to_save.length > 0) {
    throw new LoraError(
      `${where}: modules_to_save (${cfg.modules_to_save.join(", ")}) is not supported`,
    );
  }
}

type AdapterPair = { a?: Tensor; b?: Tensor };

// Groups the file's tensors into each module's A and B.
function adapterPairs(
  tensors: Map<string, Tensor>,
  stPath: string,
): Map<string, AdapterPair> {
  const pairs = new Map<string, AdapterPair>();
  for (const [key, t] of tensors) {
    // PEFT writes "<module>.lora_A.weight"; older files keep the adapter name: ".lora_A.default.weight".
    const m = /^base_model\.model\.(.+)\.lora_([AB])(?:\.[^.]+)?\.weight$/.exec(key);
    if (!m) {
      throw new LoraError(
        `${stPath}: tensor '${key}' is not a LoRA weight (expected base_model.model.<module>.lora_A.weight)`,
      );
    }
    const p = pairs.get(m[1]) ?? {};
    if (m[2] === "A") p.a = t;
    else p.b = t;
    pairs.set(m[1], p);
  }
  return pairs;
}

// Every pair must sit on a module of this model that carries no adapter yet, with fitting shapes.
function checkPairs(
  pairs: Map<string, AdapterPair>,
  slots: Map<string, ModuleSlot>,
  stPath: string,
): void {
  for (const [name, p] of pairs) {
    const slot = slots.get(name);
    if (!slot) {
      throw new LoraError(
        `${stPath}: adapter for '${name}', which this model does not have (its modules look like ` +
          `model.layers.0.self_attn.q_proj); was the adapter trained on another architecture?`,
      );
    }
    if (slot.get() instanceof LoRALinear) {
      throw new LoraError(`${name} already carries a LoRA adapter`);
    }
    if (!p.a || !p.b) {
      throw new LoraError(`${stPath}: '${name}' has lora_${p.a ? "A" : "B"} but not the other`);
    }
    const base = slot.get();
    const r = p.a.shape[0];
    if (
      p.a.shape[1] !== base.inFeatures || p.b.shape[0] !== base.outFeatures || p.b.shape[1] !== r
    ) {
      throw new LoraError(
        `${stPath}: '${name}' lora_A [${p.a.shape}] / lora_B [${p.b.shape}] do not fit the layer ` +
          `[${base.outFeatures}, ${base.inFeatures}]; the adapter belongs to a different model size`,
      );
    }
  }
}

/**
 * PEFT's reading of `target_modules`: a string is a regular expression the whole module name
 * must match (re.fullmatch), "all-linear" every projection but the output head, and a list
 * holds names that match a module's full name or its last dotted parts.
 */
export function peftTargetMatcher(targetModules: unknown): ((name: string) => boolean) | null {
  if (targetModules === "all-linear") return (name) => name !== "lm_head";
  if (typeof targetModules === "string") {
    let re: RegExp;
    try {
      re = new RegExp(`^(?:${targetModules})$`);
    } catch {
      return null;
    }
    return (name) => re.test(name);
  }
  if (Array.isArray(targetModules)) {
    const names = targetModules.map(String);
    return (name) => names.some((t) => name === t || name.endsWith(`.${t}`));
  }
  return null;
}

// PEFT would build adapters only on the modules target_modules selects and skip the file's other
// tensors, so an adapter outside them would load here but not there.
function checkTargets(targetModules: unknown, modules: string[], where: string): void {
  const match = peftTargetMatcher(targetModules);
  if (!match) return;
  const outside = modules.filter((m) => !match(m));
  if (outside.length) {
    throw new LoraError(
      `${where}: target_modules ${JSON.stringify(targetModules)} does not select ${outside[0]}` +
        `${outside.length > 1 ? ` (and ${outside.length - 1} more)` : ""}, which the adapter ` +
        "holds weights for; PEFT would skip them. Add the module to target_modules",
    );
  }
}
