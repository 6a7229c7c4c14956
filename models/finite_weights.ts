// A checkpoint with NaN or Inf weights runs without an error and yields NaN logits: perplexity
// comes out NULL and generation empty, both "ok". So every model a stage opens is checked once,
// right after loading, and a bad tensor is named with the file it came from.
import { join } from "node:path";
import { noGrad, Tensor, tidy } from "../ffi/mod.ts";
import { LabError } from "../errors.ts";
import type { LlamaModel } from "./llama.ts";
import { linearModules } from "./modules.ts";
import { readHeader } from "./safetensors.ts";

const FLOATING = new Set(["float32", "float16", "bfloat16", "float64"]);

/** A weight holding non-finite values. */
export interface NonFiniteWeight {
  /** Checkpoint-style name, e.g. "model.layers.1.mlp.up_proj.weight". */
  tensor: string;
  /** The safetensors file it was read from, when one holds it. */
  file: string | null;
  nan: number;
  inf: number;
}

/** The tensors of a linear layer of any kind (dense, cast, quantized parts, LoRA), by name. */
function* layerTensors(prefix: string, layer: unknown): Generator<[string, Tensor]> {
  const l = layer as Record<string, unknown>;
  if (isTensor(l.weight)) yield [`${prefix}.weight`, l.weight];
  if (isTensor(l.bias)) yield [`${prefix}.bias`, l.bias];
  if (Array.isArray(l.parts)) {
    for (const [i, p] of l.parts.entries()) if (isTensor(p)) yield [`${prefix}.parts[${i}]`, p];
  }
  if (isTensor(l.loraA)) yield [`${prefix}.lora_A.weight`, l.loraA];
  if (isTensor(l.loraB)) yield [`${prefix}.lora_B.weight`, l.loraB];
  if (l.base) yield* layerTensors(prefix, l.base);
}

function isTensor(x: unknown): x is Tensor {
  return x instanceof Tensor;
}

/** Every floating tensor of `model`, named as in its checkpoint. */
export function* namedWeights(model: LlamaModel): Generator<[string, Tensor]> {
  const w = model.weights;
  const table = w.embedTokens;
  if (isTensor(table)) yield ["model.embed_tokens.weight", table];
  else yield* layerTensors("model.embed_tokens", table);
  for (const [l, lw] of w.layers.entries()) {
    yield [`model.layers.${l}.input_layernorm.weight`, lw.inputNorm];
    yield [`model.layers.${l}.post_attention_layernorm.weight`, lw.postAttentionNorm];
  }
  yield ["model.norm.weight", w.norm];
  for (const slot of linearModules(model, { includeTiedHead: true })) {
    const head = slot.name === "lm_head" && model.config.tieWordEmbeddings;
    for (const [name, t] of layerTensors(slot.name, slot.get())) {
      // A tied head's weight is the embedding, checked above.
      if (head && (t === table || !isTensor(table))) continue;
      yield [name, t];
    }
  }
}

/** Whether `t` holds only finite values: one sum first (cheap), exact only when it is not. */
export function allFinite(t: Tensor): boolean {
  if (!FLOATING.has(t.dtype)) return true;
  return noGrad(() =>
    tidy(() => {
      // A sum overflows only for half precision with huge weights; then the exact test decides.
      if (Number.isFinite(t.sum().item())) return true;
      return t.isfinite().all().item() !== 0;
    })
  );
}

function countNonFinite(t: Tensor): { nan: number; inf: number } {
  return noGrad(() =>
    tidy(() => {
      const nan = t.isnan().sum().item();
      const bad = t.numel - t.isfinite().sum().item();
      return { nan, inf: bad - nan };
    })
  );
}

/** Safetensors files in `dirs`, with their tensor names (headers only). */
function checkpointFiles(dirs: (string | null | undefined)[]): [string, string[]][] {
  const out: [string, string[]][] = [];
  for (const dir of dirs) {
    if (!dir) continue;
    let names: string[];
    try {
      names = [...Deno.readDirSync(dir)].filter((e) => e.isFile && e.name.endsWith(".safetensors"))
        .map((e) => e.name).sort();
    } catch {
      continue;
    }
    for (const n of names) {
      try {
        out.push([join(dir, n), [...readHeader(join(dir, n)).tensors.keys()]]);
      } catch {
        /* the loader already accepted what it read; an unreadable extra file names nothing */
      }
    }
  }
  return out;
}

/** The file holding `tensor`: its exact name, else a stored tensor of the same module. */
function fileOf(tensor: string, files: [string, string[]][]): string | null {
  const module = tensor.replace(/\.(weight|bias|parts\[\d+\]|lora_[AB]\.weight)$/, "");
  const lora = /lora_[AB]/.exec(tensor)?.[0];
  for (const [file, names] of files) {
    if (names.includes(tensor)) return file;
  }
  for (const [file, names] of files) {
    if (
      names.some((n) =>
        lora ? n.includes(`${module}.${lora}`) : n.startsWith(`${module}.`) || n === module
      )
    ) return file;
  }
  return null;
}

/** Every weight of `model` with NaN or Inf values (empty when all are finite). */
export function nonFiniteWeights(
  model: LlamaModel,
  opts: { adapter?: string | null } = {},
): NonFiniteWeight[] {
  const bad: [string, Tensor][] = [];
  const seen = new Set<Tensor>();
  for (const [name, t] of namedWeights(model)) {
    if (seen.has(t)) continue;
    seen.add(t);
    if (!allFinite(t)) bad.push([name, t]);
  }
  if (!bad.length) return [];
  const files = checkpointFiles([model.source, opts.adapter]);
  return bad.map(([tensor, t]) => ({ tensor, file: fileOf(tensor, files), ...countNonFinite(t) }));
}

/** Throws a LabError naming the file and tensor of each non-finite weight of `model`. */
export function assertFiniteWeights(
  model: LlamaModel,
  opts: { adapter?: string | null } = {},
): void {
  const bad = nonFiniteWeights(model, opts);
  if (!bad.length) return;
  const where = (b: NonFiniteWeight) =>
    `${b.file ?? model.source ?? "the model"}: tensor '${b.tensor}' holds ` +
    [b.nan ? `${b.nan} NaN` : "", b.inf ? `${b.inf} infinite` : ""].filter(Boolean).join(" and ") +
    " values";
  const list = bad.slice(0, 5).map(where);
  if (bad.length > 5) list.push(`and ${bad.length - 5} more tensors`);
  throw new LabError(
    `the model's weights are not all finite, so every figure computed from them would be ` +
      `NaN or wrong: ${list.join("; ")}. The checkpoint is damaged (a diverged training run or ` +
      `a bad conversion): re-export or re-download it.`,
  );
}
