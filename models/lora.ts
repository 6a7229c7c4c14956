// LoRA adapters over any LinearLayer (dense or quantized), in PEFT's layout:
// A [r, in] Kaiming-uniform, B [out, r] zeros, output scaled by alpha/r (or
// alpha/sqrt(r) with rsLoRA), saved as adapter_config.json +
// adapter_model.safetensors under `base_model.model.<module>.lora_{A,B}.weight`.
import { LabError } from "../errors.ts";
import {
  dropout as dropoutOp,
  type DType,
  keep,
  linear,
  manualSeed,
  noGrad,
  rand,
  type Tensor,
  tidy,
  zeros,
} from "../ffi/mod.ts";
import { linearModules as allModules, type ModuleSlot } from "./modules.ts";
import { Linear, type LinearLayer } from "./linear.ts";
import type { LlamaModel } from "./llama.ts";
import { QuantizedLinear } from "./quant/quantized_linear.ts";
import { loadSafetensors, saveSafetensors } from "./safetensors.ts";
import { saveCheckpoint } from "./save_checkpoint.ts";

/** An adapter, a config or a target list that cannot be used, with the reason and the fix. */
export class LoraError extends LabError {
  constructor(message: string) {
    super(message);
    this.name = "LoraError";
  }
}

/** How LoRALinear scales B·A: alpha/r, or alpha/sqrt(r) with rsLoRA. */
export function loraScaling(r: number, alpha: number, rslora = false): number {
  return rslora ? alpha / Math.sqrt(r) : alpha / r;
}

/** `y = base(x) + scaling · B·A·dropout(x)` with the base frozen and A, B trainable. */
export class LoRALinear implements LinearLayer {
  readonly base: LinearLayer;
  /** `[r, in]`. */
  readonly loraA: Tensor;
  /** `[out, r]`. */
  readonly loraB: Tensor;
  readonly r: number;
  readonly alpha: number;
  readonly rslora: boolean;
  readonly scaling: number;
  /** Dropout probability on the adapter's input while training. */
  dropout: number;
  /** Dropout is active only while true (set by the training loop). */
  training = false;
  readonly inFeatures: number;
  readonly outFeatures: number;

  constructor(
    base: LinearLayer,
    loraA: Tensor,
    loraB: Tensor,
    opts: { alpha: number; dropout?: number; rslora?: boolean },
  ) {
    const [r, inA] = loraA.shape;
    const [outB, rB] = loraB.shape;
    if (inA !== base.inFeatures || outB !== base.outFeatures || rB !== r) {
      throw new LoraError(
        `LoRA shapes do not fit the layer [${base.outFeatures}, ${base.inFeatures}]: ` +
          `lora_A is [${loraA.shape}] (want [r, ${base.inFeatures}]), lora_B is [${loraB.shape}] ` +
          `(want [${base.outFeatures}, r])`,
      );
    }
    this.base = base;
    this.loraA = loraA;
    this.loraB = loraB;
    this.r = r;
    this.alpha = opts.alpha;
    this.rslora = opts.rslora ?? false;
    this.scaling = loraScaling(r, opts.alpha, this.rslora);
    this.dropout = opts.dropout ?? 0;
    this.inFeatures = base.inFeatures;
    this.outFeatures = base.outFeatures;
  }

  /**
   * Wraps `base` with fresh adapters as PEFT initialises them: A from
   * kaiming_uniform_(a=√5), i.e. U(−1/√in, 1/√in), and B zeros.
   */
  static create(
    base: LinearLayer,
    opts: {
      r: number;
      alpha: number;
      dropout?: number;
      rslora?: boolean;
      dtype: DType;
      device: string;
    },
  ): LoRALinear {
    if (!Number.isInteger(opts.r) || opts.r < 1) {
      throw new LoraError(`LoRA rank r must be a positive integer, got ${opts.r}`);
    }
    const bound = 1 / Math.sqrt(base.inFeatures);
    const a = tidy(() => {
      const u = rand([opts.r, base.inFeatures], { device: opts.device });
      return u.mul(2 * bound).sub(bound).to(opts.dtype);
    });
    const b = zeros([base.outFeatures, opts.r], { dtype: opts.dtype, device: opts.device });
    a.requiresGrad_();
    b.requiresGrad_();
    return new LoRALinear(base, a, b, opts);
  }

  forward(x: Tensor): Tensor {
    const y = this.base.forward(x);
    const out = tidy(() => {
      let h = x.dtype === this.loraA.dtype ? x : x.to(this.loraA.dtype);
      if (this.training && this.dropout > 0) h = dropoutOp(h, this.dropout, true);
      let d = linear(linear(h, this.loraA), this.loraB).mul(this.scaling);
      if (d.dtype !== y.dtype) d = d.to(y.dtype);
      return y.add(d);
    });
    y.dispose();
    return out;
  }

  /** The dense update `scaling · B·A` `[out, in]` in float32. */
  delta(): Tensor {
    return noGrad(() =>
      tidy(() => this.loraB.to("float32").matmul(this.loraA.to("float32")).mul(this.scaling))
    );
  }

  /** The adapter's trainable tensors. */
  parameters(): Tensor[] {
    return [this.loraA, this.loraB];
  }

  parameterCount(): number {
    return this.base.parameterCount() + this.loraA.numel + this.loraB.numel;
  }

  /** Parameters of the adapter alone. */
  adapterParameterCount(): number {
    return this.loraA.numel + this.loraB.numel;
  }

  weightBytes(): number {
    return this.base.weightBytes() + this.loraA.nbytes + this.loraB.nbytes;
  }

  dispose(): void {
    this.base.dispose();
    this.loraA.dispose();
    this.loraB.dispose();
  }
}

// ---------------------------------------------------------------- module names

export type { ModuleSlot };

/** Every projection of `model`, lm_head included (even when tied), named as in its checkpoint. */
export function linearModules(model: LlamaModel): ModuleSlot[] {
  return allModules(model, { includeTiedHead: true });
}

function globToRegExp(glob: string): RegExp {
  const esc = glob.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*").replace(/\?/g, ".");
  return new RegExp(`^${esc}$`);
}

/** Whether module `name` matches one target pattern (PEFT's suffix rule, plus globs). */
export function matchesTarget(name: string, pattern: string): boolean {
  if (pattern === "all-linear") return name !== "lm_head";
  if (/[*?]/.test(pattern)) {
    const re = globToRegExp(pattern);
    return re.test(name) ||
      name.split(".").some((_, i, parts) => re.test(parts.slice(i).join(".")));
  }
  return name === pattern || name.endsWith(`.${pattern}`);
}

/** The modules `targets` select, in model order; throws naming the fix when none match. */
export function selectModules(
  model: LlamaModel,
  targets: string | readonly string[],
): ModuleSlot[] {
  const patterns = typeof targets === "string" ? [targets] : [...targets];
  if (patterns.length === 0) {
    throw new LoraError(
      'targetModules is empty: name modules like ["q_proj", "v_proj"] or "all-linear"',
    );
  }
  const slots = linearModules(model);
  const hit = (s: ModuleSlot) =>
    patterns.some((p) =>
      matchesTarget(s.name, p) || (s.fusedInto !== null && matchesTarget(s.fusedInto, p))
    );
  const chosen = slots.filter(hit);
  if (chosen.length === 0) {
    throw new LoraError(
      `targetModules ${JSON.stringify(patterns)} matched no module of this model; module names ` +
        `look like "model.layers.0.self_attn.q_proj", "model.layers.0.mlp.down_proj", "lm_head" ` +
        `(short names like "q_proj", globs like "model.layers.1*.mlp.*", or "all-linear")`,
    );
  }
  const fusedHit = chosen.find((s) => s.fusedInto !== null);
  if (fusedHit) {
    throw new LoraError(
      `targetModules selects ${fusedHit.name}, which this ${model.config.architecture} checkpoint stores fused ` +
        `as ${fusedHit.fusedInto}; LoRA on fused projections is not supported yet. Target o_proj and ` +
        `down_proj instead.`,
    );
  }
  if (chosen.some((s) => s.name === "lm_head") && model.config.tieWordEmbeddings) {
    throw new LoraError(
      "targetModules selects lm_head, which shares its weight with the embeddings in this model; " +
        "leave lm_head out",
    );
  }
  return chosen;
}

// ---------------------------------------------------------------- applying

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

interface AdapterInfo {
  r: number;
  alpha: number;
  dropout: number;
  rslora: boolean;
  targetModules: string[];
}

const adapterInfo = new WeakMap<LlamaModel, AdapterInfo>();

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
  for (const s of linearModules(model)) {
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

// ---------------------------------------------------------------- PEFT format

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
  const all = linearModules(model).filter((s) => shorts.some((sh) => matchesTarget(s.name, sh)));
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
  const where = `${dir}/adapter_config.json`;
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
  const slots = new Map(linearModules(model).map((s) => [s.name, s]));
  const pairs = new Map<string, { a?: Tensor; b?: Tensor }>();
  try {
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

/**
 * Folds every adapter into its base weight (W + scaling·B·A) and drops the adapters; a
 * quantized base becomes dense in the model's dtype. With `out`, also writes the merged
 * model there as a full Hugging Face checkpoint.
 */
export function mergeAdapter(model: LlamaModel, out?: string): string[] {
  const merged: string[] = [];
  for (const slot of linearModules(model)) {
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
