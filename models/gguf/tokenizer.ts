// The tokenizer part of a GGUF: tokenizer.json's byte-level BPE (vocab, merges, special ids)
// as llama.cpp's "gpt2" vocabulary; a folder without tokenizer.json gets the byte alphabet.
import { existsSync } from "node:fs";
import { join } from "node:path";
import { LabError } from "../../errors.ts";
import { bytesToUnicode } from "../byte_tokenizer.ts";
import type { ModelConfig } from "../config.ts";
import type { GgufValue } from "./writer.ts";

/** llama.cpp's token types (llama.h `llama_token_type`). */
const TOKEN_TYPE = { normal: 1, control: 3, userDefined: 4, unused: 5 } as const;

interface TokenizerJson {
  model?: { type?: string; vocab?: Record<string, number>; merges?: (string | string[])[] };
  added_tokens?: { id: number; content: string; special?: boolean }[];
  pre_tokenizer?: unknown;
}

function mentionsByteLevel(x: unknown): boolean {
  return JSON.stringify(x ?? null).includes('"ByteLevel"');
}

function readTokenizerJson(path: string): TokenizerJson {
  try {
    return JSON.parse(Deno.readTextFileSync(path));
  } catch (e) {
    throw new LabError(`GGUF export: cannot read ${path}: ${(e as Error).message}`);
  }
}

function vocabArrays(tj: TokenizerJson, path: string, vocabSize: number) {
  const tokens: string[] = new Array(vocabSize);
  const types: number[] = new Array(vocabSize).fill(TOKEN_TYPE.normal);
  for (const [text, id] of Object.entries(tj.model?.vocab ?? {})) {
    if (id >= vocabSize) {
      throw new LabError(
        `GGUF export: ${path} has token id ${id} ('${text}') but config.json's vocab_size is ` +
          `${vocabSize}; the tokenizer and the embedding table must agree`,
      );
    }
    tokens[id] = text;
  }
  for (const t of tj.added_tokens ?? []) {
    if (t.id >= vocabSize) continue;
    tokens[t.id] = t.content;
    types[t.id] = t.special ? TOKEN_TYPE.control : TOKEN_TYPE.userDefined;
  }
  for (let i = 0; i < vocabSize; i++) {
    if (tokens[i] === undefined) {
      // Embedding rows no token uses (vocab padded for speed), named as llama.cpp's converter does.
      tokens[i] = `[PAD${i}]`;
      types[i] = TOKEN_TYPE.unused;
    }
  }
  return { tokens, types };
}

function byteAlphabet(vocabSize: number) {
  const chars = bytesToUnicode();
  const tokens = Array.from({ length: vocabSize }, (_, i) => i < 256 ? chars[i] : `<id_${i}>`);
  return { tokens, types: new Array(vocabSize).fill(TOKEN_TYPE.normal) };
}

/**
 * The `tokenizer.ggml.*` keys for the model in `dir`. Byte-level BPE is exported as is;
 * other tokenizer models are refused, naming what is unsupported.
 */
export function tokenizerMetadata(dir: string, c: ModelConfig): [string, GgufValue][] {
  const path = join(dir, "tokenizer.json");
  let vocab: { tokens: string[]; types: number[] };
  let merges: string[] = [];
  if (existsSync(path)) {
    const tj = readTokenizerJson(path);
    const kind = tj.model?.type;
    if (kind !== "BPE" || !mentionsByteLevel(tj.pre_tokenizer)) {
      throw new LabError(
        `GGUF export: ${path} is a ${kind ?? "unknown"} tokenizer` +
          (kind === "BPE" ? " without a ByteLevel pre-tokenizer (SentencePiece-style)" : "") +
          `; the lab exports byte-level BPE tokenizers only (GPT-2, Llama 3, Qwen2 style)`,
      );
    }
    vocab = vocabArrays(tj, path, c.vocabSize);
    merges = (tj.model?.merges ?? []).map((m) => Array.isArray(m) ? m.join(" ") : m);
  } else {
    vocab = byteAlphabet(c.vocabSize);
  }
  const ids: [string, GgufValue][] = [];
  const id = (k: string, v: number | null) => {
    if (v !== null && v >= 0 && v < c.vocabSize) ids.push([k, { type: "u32", value: v }]);
  };
  id("tokenizer.ggml.bos_token_id", c.bosTokenId);
  id("tokenizer.ggml.eos_token_id", c.eosTokenIds[0] ?? null);
  id("tokenizer.ggml.padding_token_id", c.padTokenId);
  return [
    ["tokenizer.ggml.model", { type: "string", value: "gpt2" }],
    // The lab tokenizes and hands llama.cpp ids, so the pre-tokenizer regex is GPT-2's default.
    ["tokenizer.ggml.pre", { type: "string", value: "default" }],
    ["tokenizer.ggml.tokens", { type: "array", of: "string", value: vocab.tokens }],
    ["tokenizer.ggml.token_type", { type: "array", of: "i32", value: vocab.types }],
    ["tokenizer.ggml.merges", { type: "array", of: "string", value: merges }],
    ...ids,
    ["tokenizer.ggml.add_bos_token", { type: "bool", value: c.bosTokenId !== null }],
  ];
}
