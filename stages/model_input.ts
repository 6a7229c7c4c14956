// How stages find and open the model an input stage produced.
import { isAbsolute, join } from "node:path";
import type { InputInfo } from "../engine/mod.ts";
import { hashFile } from "../engine/file_hash.ts";
import type { DType } from "../ffi/mod.ts";
import { loadModel } from "../models/load.ts";
import type { LlamaModel } from "../models/llama.ts";
import { assertFiniteWeights } from "../models/finite_weights.ts";
import { LabError } from "../errors.ts";

/**
 * What model-producing stages return (meta.output): folders relative to their
 * artifacts (or absolute, for a checkpoint the user owns).
 */
export interface ModelOutput {
  /** An HF (or quantized) checkpoint folder. */
  model?: string | null;
  /** A LoRA adapter folder to apply on `baseModel`. */
  adapter?: string | null;
  baseModel?: string;
  /** A short label of what the model is, e.g. "nf4" or "lora r=8". */
  label?: string;
  /** A GGUF file (relative to the artifacts) that the llama.cpp engine runs. */
  gguf?: string;
  /** "llama.cpp" for a GGUF model; absent: libtorch. */
  engine?: string;
}

function exists(p: string): boolean {
  try {
    Deno.statSync(p);
    return true;
  } catch {
    return false;
  }
}

function resolve(input: InputInfo, p: string): string {
  return isAbsolute(p) ? p : join(input.artifacts, p);
}

/** The checkpoint folder and adapter an input stage left. */
export function modelSource(input: InputInfo): { dir: string; adapter: string | null } {
  const out = (input.output ?? {}) as ModelOutput;
  if (out.model) {
    const dir = resolve(input, out.model);
    if (exists(join(dir, "config.json"))) return { dir, adapter: null };
  }
  if (out.adapter && out.baseModel) {
    return { dir: out.baseModel, adapter: resolve(input, out.adapter) };
  }
  for (const dir of [join(input.artifacts, "model"), input.artifacts]) {
    if (exists(join(dir, "config.json"))) return { dir, adapter: null };
  }
  throw new Error(
    `input stage "${input.name}" (${input.kind}) left no model: no config.json in ${input.artifacts}`,
  );
}

/**
 * Opens the model of an input stage on `device`, refusing one with NaN or Inf weights (it
 * would run and produce NULL or empty results that look like success).
 */
export function openModel(
  input: InputInfo,
  opts: { dtype?: DType; device?: string } = {},
): LlamaModel {
  if (((input.output ?? {}) as ModelOutput).gguf) {
    throw new LabError(
      `input "${input.name}" is a llama.cpp (GGUF) model: this stage runs libtorch models ` +
        "only; profile, evaluate (perplexity and the lab's task files, not lm-eval YAML) and " +
        "analyze (as the variant) take llama.cpp models",
    );
  }
  const { dir, adapter } = modelSource(input);
  const model = loadModel(dir, { ...opts, adapter: adapter ?? undefined });
  try {
    assertFiniteWeights(model, { adapter });
  } catch (e) {
    model.dispose();
    throw e;
  }
  return model;
}

/** The label of an input's model, for tables: its output label, else its stage name. */
export function modelLabel(input: InputInfo): string {
  return ((input.output ?? {}) as ModelOutput).label ?? input.name;
}

/**
 * A content fingerprint of a checkpoint folder for cache keys: the BLAKE3 of every file in it
 * (every shard, the config, the tokenizer), each hashed once per (inode, size, mtime).
 */
export function folderFingerprint(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  let names: string[];
  try {
    names = [...Deno.readDirSync(dir)].filter((e) => e.isFile).map((e) => e.name).sort();
  } catch {
    return out; // A missing folder is reported when the stage runs.
  }
  for (const name of names) {
    try {
      out[name] = hashFile(join(dir, name));
    } catch {
      out[name] = "unreadable";
    }
  }
  return out;
}

/** A data file's content hash (BLAKE3, memoised) for cache keys; "missing" when absent. */
export function fileHash(path: string): Promise<string> {
  try {
    return Promise.resolve(hashFile(path));
  } catch {
    return Promise.resolve("missing");
  }
}

/** A path param made absolute against the coordinator's working directory. */
export function absPath(p: string, cwd: string): string {
  return isAbsolute(p) ? p : join(cwd, p);
}
