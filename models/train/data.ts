// Training data: Alpaca-style instruction records rendered through a prompt
// template (loss on the response only), plain text chunked into blocks, a
// seeded train/validation split, and a count of the records that could not be used.
import { LabError } from "../../errors.ts";
import { seededRandom } from "../../seeded_random.ts";
import type { TextTokenizer } from "../tokenizer.ts";

/** Label value the loss ignores (as PyTorch's cross_entropy ignore_index). */
export const IGNORE_INDEX = -100;

/** One training sequence; `labels[t]` is the target for position t (unshifted, HF style). */
export interface Example {
  inputIds: number[];
  /** Same length as inputIds; IGNORE_INDEX where no loss is taken. */
  labels: number[];
}

/** Why a record was dropped. */
export type BadReason =
  | "invalid-json"
  | "missing-field"
  | "empty-output"
  | "non-utf8"
  | "over-long"
  | "not-an-object";

/** Records that could not be used, by reason, with the first few places. */
export interface BadRecords {
  count: number;
  byReason: Partial<Record<BadReason, number>>;
  /** The earliest few, by 1-based line number in the file. */
  first: { line: number; reason: BadReason; detail: string }[];
}

/** A tokenized data set and what happened on the way. */
export interface Dataset {
  examples: Example[];
  /** Records (or text lines) read. */
  records: number;
  bad: BadRecords;
  /** Records whose response was cut to fit maxLength. */
  truncated: number;
  /** Tokens over all examples. */
  tokens: number;
  /** Tokens that carry a loss. */
  targetTokens: number;
}

/** Thrown when a data file leaves no usable record; the message lists why. */
export class DataError extends LabError {
  constructor(message: string) {
    super(message);
    this.name = "DataError";
  }
}

const FIRST_BAD = 5;

function newBad(): BadRecords {
  return { count: 0, byReason: {}, first: [] };
}

function addBad(bad: BadRecords, line: number, reason: BadReason, detail: string): void {
  bad.count++;
  bad.byReason[reason] = (bad.byReason[reason] ?? 0) + 1;
  // Records are checked in more than one pass, so keep the earliest lines, not the first seen.
  bad.first.push({ line, reason, detail });
  bad.first.sort((a, b) => a.line - b.line);
  if (bad.first.length > FIRST_BAD) bad.first.length = FIRST_BAD;
}

/** "3 bad records (2 missing-field, 1 non-utf8); first at lines 4 (missing-field: …), …". */
export function describeBad(bad: BadRecords): string {
  if (bad.count === 0) return "no bad records";
  const reasons = Object.entries(bad.byReason).map(([r, n]) => `${n} ${r}`).join(", ");
  const where = bad.first.map((b) => `line ${b.line} (${b.reason}: ${b.detail})`).join("; ");
  return `${bad.count} bad record${bad.count === 1 ? "" : "s"} (${reasons}); first: ${where}`;
}

// ---------------------------------------------------------------- reading

/** A raw record with the line it starts on. */
export interface RawRecord {
  line: number;
  value: unknown;
}

const utf8 = new TextDecoder("utf-8", { fatal: true });
const lossy = new TextDecoder("utf-8");

function splitLines(bytes: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  let start = 0;
  for (let i = 0; i < bytes.length; i++) {
    if (bytes[i] === 0x0a) {
      out.push(bytes.subarray(start, i));
      start = i + 1;
    }
  }
  if (start < bytes.length) out.push(bytes.subarray(start));
  return out;
}

// Start lines of the top-level objects of a JSON array, by a scan that respects strings.
function objectStartLines(text: string): number[] {
  const out: number[] = [];
  let depth = 0, line = 1, inStr = false, esc = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (ch === "\n") line++;
    if (inStr) {
      if (esc) esc = false;
      else if (ch === "\\") esc = true;
      else if (ch === '"') inStr = false;
      continue;
    }
    if (ch === '"') inStr = true;
    else if (ch === "[" || ch === "{") {
      if (depth === 1) out.push(line);
      depth++;
    } else if (ch === "]" || ch === "}") depth--;
    else if (depth === 1 && ch !== "," && !/\s/.test(ch)) out.push(line); // a bare scalar element
  }
  return out;
}

/**
 * Reads a JSON array or JSONL file of records, keeping each record's line. Lines that are
 * not UTF-8 or not JSON are counted in `bad` instead of failing the read.
 */
export function readRecords(path: string): { records: RawRecord[]; bad: BadRecords } {
  let bytes: Uint8Array;
  try {
    bytes = Deno.readFileSync(path);
  } catch (e) {
    throw new DataError(`cannot read data file ${path}: ${(e as Error).message}`);
  }
  const bad = newBad();
  const records: RawRecord[] = [];
  const lines = splitLines(bytes);
  const firstChar = lossy.decode(bytes.subarray(0, 256)).trimStart()[0];
  if (firstChar === "[") {
    // A JSON array: lines with invalid UTF-8 poison the records that span them.
    const badLines = new Set<number>();
    lines.forEach((l, i) => {
      try {
        utf8.decode(l);
      } catch {
        badLines.add(i + 1);
      }
    });
    const text = lossy.decode(bytes);
    let arr: unknown;
    try {
      arr = JSON.parse(text);
    } catch (e) {
      throw new DataError(
        `${path} starts like a JSON array but does not parse: ${(e as Error).message}`,
      );
    }
    if (!Array.isArray(arr)) throw new DataError(`${path}: expected a JSON array of records`);
    const starts = objectStartLines(text);
    arr.forEach((value, i) => {
      const line = starts[i] ?? 0;
      const end = starts[i + 1] ?? lines.length + 1;
      let poisoned = 0;
      for (let l = line; l < end; l++) if (badLines.has(l)) poisoned = l;
      if (poisoned) addBad(bad, line, "non-utf8", `invalid UTF-8 bytes on line ${poisoned}`);
      else records.push({ line, value });
    });
    return { records, bad };
  }
  lines.forEach((l, i) => {
    const line = i + 1;
    let text: string;
    try {
      text = utf8.decode(l);
    } catch {
      addBad(bad, line, "non-utf8", "invalid UTF-8 bytes");
      return;
    }
    if (text.trim() === "") return;
    try {
      records.push({ line, value: JSON.parse(text) });
    } catch (e) {
      addBad(bad, line, "invalid-json", (e as Error).message.slice(0, 80));
    }
  });
  return { records, bad };
}

// ---------------------------------------------------------------- instruction data

/** A prompt template: `{instruction}` and `{input}` are replaced; the response follows it. */
export interface PromptTemplate {
  withInput: string;
  withoutInput: string;
}

/** The lab's default instruction template. */
export const DEFAULT_TEMPLATE: PromptTemplate = {
  withInput: "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n",
  withoutInput: "### Instruction:\n{instruction}\n\n### Response:\n",
};

/** Options of tokenizeInstructions / loadInstructionData. */
export interface InstructionOptions {
  tokenizer: TextTokenizer;
  /** "default" (DEFAULT_TEMPLATE), "chat" (the tokenizer's chat template), a template, or one string for both. */
  template?: "default" | "chat" | PromptTemplate | string;
  /** Longest sequence in tokens (prompt + response + end token). */
  maxLength: number;
  /** Records longer than maxLength: cut the response ("truncate", default) or drop them ("drop"). */
  overLong?: "truncate" | "drop";
  /** End-of-sequence id appended to the response (default: the tokenizer's). */
  eosTokenId?: number | null;
}

/** An instruction record after validation. */
export interface InstructionRecord {
  instruction: string;
  input: string;
  output: string;
}

function fill(tpl: string, r: InstructionRecord): string {
  return tpl.replaceAll("{instruction}", r.instruction).replaceAll("{input}", r.input);
}

/** The prompt text and response text of a record under a template. */
export function renderInstruction(
  r: InstructionRecord,
  tokenizer: TextTokenizer,
  template: InstructionOptions["template"] = "default",
): { prompt: string; response: string; chat: boolean } {
  if (template === "chat") {
    const user = r.input ? `${r.instruction}\n\n${r.input}` : r.instruction;
    const prompt = tokenizer.applyChatTemplate([{ role: "user", content: user }], {
      addGenerationPrompt: true,
    });
    const full = tokenizer.applyChatTemplate([{ role: "user", content: user }, {
      role: "assistant",
      content: r.output,
    }], { addGenerationPrompt: false });
    if (!full.startsWith(prompt)) {
      throw new DataError(
        "the tokenizer's chat template does not render the conversation as prompt + reply; " +
          'use template "default" or a custom template instead',
      );
    }
    return { prompt, response: full.slice(prompt.length), chat: true };
  }
  const tpl: PromptTemplate = template === "default"
    ? DEFAULT_TEMPLATE
    : typeof template === "string"
    ? { withInput: template, withoutInput: template }
    : template;
  return {
    prompt: fill(r.input ? tpl.withInput : tpl.withoutInput, r),
    response: r.output,
    chat: false,
  };
}

function validate(raw: RawRecord, bad: BadRecords): InstructionRecord | null {
  const v = raw.value;
  if (!v || typeof v !== "object" || Array.isArray(v)) {
    addBad(bad, raw.line, "not-an-object", "expected {instruction, input?, output}");
    return null;
  }
  const o = v as Record<string, unknown>;
  for (const f of ["instruction", "output"]) {
    if (typeof o[f] !== "string") {
      addBad(bad, raw.line, "missing-field", `no string "${f}"`);
      return null;
    }
  }
  if (o.input !== undefined && o.input !== null && typeof o.input !== "string") {
    addBad(bad, raw.line, "missing-field", '"input" is not a string');
    return null;
  }
  if ((o.output as string).trim() === "") {
    addBad(bad, raw.line, "empty-output", '"output" is empty');
    return null;
  }
  if ((o.instruction as string).trim() === "") {
    addBad(bad, raw.line, "missing-field", '"instruction" is empty');
    return null;
  }
  return {
    instruction: o.instruction as string,
    input: (o.input as string | undefined) ?? "",
    output: o.output as string,
  };
}

/** Validates, renders and tokenizes instruction records; the loss covers the response only. */
export function tokenizeInstructions(
  raws: readonly RawRecord[],
  opts: InstructionOptions,
  bad: BadRecords = newBad(),
): Dataset {
  const tok = opts.tokenizer;
  const eos = opts.eosTokenId === undefined ? tok.eosTokenId : opts.eosTokenId;
  const out: Dataset = {
    examples: [],
    records: raws.length + bad.count,
    bad,
    truncated: 0,
    tokens: 0,
    targetTokens: 0,
  };
  for (const raw of raws) {
    const r = validate(raw, bad);
    if (!r) continue;
    const { prompt, response, chat } = renderInstruction(r, tok, opts.template);
    // Chat templates write their own special tokens; plain templates get the tokenizer's BOS.
    const p = tok.encode(prompt, { addSpecialTokens: !chat });
    let resp = tok.encode(response, { addSpecialTokens: false });
    if (!chat && eos !== null && eos !== undefined) resp = [...resp, eos];
    if (p.length + resp.length > opts.maxLength) {
      if (opts.overLong === "drop" || p.length + 1 > opts.maxLength) {
        addBad(
          bad,
          raw.line,
          "over-long",
          `${p.length + resp.length} tokens > maxLength ${opts.maxLength}`,
        );
        continue;
      }
      resp = resp.slice(0, opts.maxLength - p.length);
      out.truncated++;
    }
    const inputIds = [...p, ...resp];
    const labels = [...p.map(() => IGNORE_INDEX), ...resp];
    out.examples.push({ inputIds, labels });
    out.tokens += inputIds.length;
    out.targetTokens += resp.length;
  }
  return out;
}

/** Reads an Alpaca-style JSON/JSONL file into tokenized examples; throws when none is usable. */
export function loadInstructionData(path: string, opts: InstructionOptions): Dataset {
  const { records, bad } = readRecords(path);
  const ds = tokenizeInstructions(records, opts, bad);
  if (ds.examples.length === 0) {
    throw new DataError(`${path}: no usable record (${ds.records} read; ${describeBad(ds.bad)})`);
  }
  return ds;
}

// ---------------------------------------------------------------- plain text

/** Options of loadTextBlocks. */
export interface TextOptions {
  tokenizer: TextTokenizer;
  /** Tokens per block. */
  blockSize: number;
}

/** Chunks a UTF-8 text file into fixed-length blocks for causal-LM training (loss everywhere). */
export function textBlocks(path: string, opts: TextOptions): Dataset {
  let bytes: Uint8Array;
  try {
    bytes = Deno.readFileSync(path);
  } catch (e) {
    throw new DataError(`cannot read text file ${path}: ${(e as Error).message}`);
  }
  const bad = newBad();
  const good: string[] = [];
  const lines = splitLines(bytes);
  lines.forEach((l, i) => {
    try {
      good.push(utf8.decode(l));
    } catch {
      addBad(bad, i + 1, "non-utf8", "invalid UTF-8 bytes");
    }
  });
  const ids = opts.tokenizer.encode(good.join("\n"), { addSpecialTokens: true });
  const n = opts.blockSize;
  const out: Dataset = {
    examples: [],
    records: lines.length,
    bad,
    truncated: 0,
    tokens: 0,
    targetTokens: 0,
  };
  for (let at = 0; at + 1 < ids.length; at += n) {
    const block = ids.slice(at, at + n);
    if (block.length < Math.min(n, 8)) break; // a ragged tail too short to teach anything
    out.examples.push({ inputIds: block, labels: [...block] });
    out.tokens += block.length;
    out.targetTokens += block.length - 1;
  }
  if (out.examples.length === 0) {
    throw new DataError(`${path}: no usable text (${ids.length} tokens; ${describeBad(bad)})`);
  }
  return out;
}

// ---------------------------------------------------------------- splitting

/** A padded micro-batch: ids `[B, T]` and next-token labels `[B, T-1]` as flat arrays. */
export interface Batch {
  ids: number[][];
  /** Targets of positions 0..T-2 (labels shifted left by one). */
  targets: BigInt64Array;
  /** Input tokens that are not padding. */
  tokens: number;
  /** Positions that carry a loss. */
  targetCount: number;
}

/** Fisher–Yates shuffle of a copy, driven by `rng`. */
export function shuffled<T>(items: readonly T[], rng: () => number): T[] {
  const a = [...items];
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(rng() * (i + 1));
    [a[i], a[j]] = [a[j], a[i]];
  }
  return a;
}

/**
 * Splits into train and validation after a seeded shuffle. `valFraction` of the items (at
 * least one when there are two or more) go to validation.
 */
export function splitDataset<T>(items: readonly T[], opts: { valFraction: number; seed: number }): {
  train: T[];
  val: T[];
} {
  if (!(opts.valFraction >= 0 && opts.valFraction < 1)) {
    throw new RangeError(`valFraction must be in [0, 1), got ${opts.valFraction}`);
  }
  const s = shuffled(items, seededRandom(opts.seed));
  let nVal = Math.round(s.length * opts.valFraction);
  if (opts.valFraction > 0 && nVal === 0 && s.length >= 2) nVal = 1;
  return { train: s.slice(nVal), val: s.slice(0, nVal) };
}
