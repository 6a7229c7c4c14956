// Safetensors reading and writing: a validated header, then tensors streamed
// one at a time through a bounded scratch buffer, so a load never holds a
// second copy of the weights.
import { type DType, fromBytes, ITEM_SIZE, type Tensor, zeros } from "../ffi/mod.ts";
import { basename } from "node:path";
import { type PageCacheDropper, pageCacheDropper } from "./host_resources.ts";
import { writeAll, writeFileAtomically } from "./file_write.ts";

/** An error in a safetensors file or checkpoint, naming the file and what is wrong. */
export class CheckpointError extends Error {
  /** Creates the error; the message names the file and what is wrong. */
  constructor(message: string) {
    super(message);
    this.name = "CheckpointError";
  }
}

/** Safetensors dtype codes and the binding's dtype they load as (null: not loadable). */
const ST_DTYPES: Record<string, { dtype: DType | null; size: number }> = {
  F64: { dtype: "float64", size: 8 },
  F32: { dtype: "float32", size: 4 },
  F16: { dtype: "float16", size: 2 },
  BF16: { dtype: "bfloat16", size: 2 },
  I64: { dtype: "int64", size: 8 },
  I32: { dtype: "int32", size: 4 },
  I16: { dtype: "int16", size: 2 },
  I8: { dtype: "int8", size: 1 },
  U8: { dtype: "uint8", size: 1 },
  BOOL: { dtype: "bool", size: 1 },
  F8_E4M3: { dtype: "float8_e4m3fn", size: 1 },
  F8_E5M2: { dtype: null, size: 1 },
  U16: { dtype: null, size: 2 },
  U32: { dtype: null, size: 4 },
  U64: { dtype: null, size: 8 },
};

/** The safetensors dtype code of each binding dtype that has one. */
export const DTYPE_TO_ST: Partial<Record<DType, string>> = {
  float64: "F64",
  float32: "F32",
  float16: "F16",
  bfloat16: "BF16",
  int64: "I64",
  int32: "I32",
  int16: "I16",
  int8: "I8",
  uint8: "U8",
  bool: "BOOL",
  float8_e4m3fn: "F8_E4M3",
};

/** One tensor's entry in a safetensors header. */
export interface TensorInfo {
  /** The tensor's name in the checkpoint, e.g. "model.layers.0.mlp.up_proj.weight". */
  name: string;
  /** The safetensors dtype code, e.g. "BF16". */
  stDtype: string;
  /** Sizes of each dimension; empty for a scalar. */
  shape: number[];
  /** Byte range inside the data section (after the header). */
  begin: number;
  /** End of the byte range (exclusive), relative to the data section. */
  end: number;
}

/** A parsed, validated safetensors header. */
export interface SafetensorsHeader {
  /** Each tensor's entry, by name, in the order the header lists them. */
  tensors: Map<string, TensorInfo>;
  /** The `__metadata__` string map (e.g. `format: "pt"`); empty when absent. */
  metadata: Record<string, string>;
  /** Offset of the data section from the start of the file. */
  dataStart: number;
}

// Headers above this size are refused rather than parsed (the reference
// implementation uses the same limit).
const MAX_HEADER = 100_000_000;

/** Parses and validates a header given the file's first bytes and total size. */
export function parseHeader(
  headerBytes: Uint8Array,
  fileSize: number,
  file = "safetensors file",
): SafetensorsHeader {
  const bad = (why: string) => new CheckpointError(`${file}: corrupt safetensors header: ${why}`);
  if (fileSize < 8 || headerBytes.byteLength < 8) throw bad("the file is shorter than 8 bytes");
  const n = Number(
    new DataView(headerBytes.buffer, headerBytes.byteOffset, 8).getBigUint64(0, true),
  );
  if (n > MAX_HEADER) throw bad(`header length ${n} exceeds the ${MAX_HEADER}-byte limit`);
  if (8 + n > fileSize) {
    throw bad(`header length ${n} runs past the end of the ${fileSize}-byte file`);
  }
  if (headerBytes.byteLength < 8 + n) throw bad("header truncated");
  let json: unknown;
  try {
    json = JSON.parse(
      new TextDecoder("utf-8", { fatal: true }).decode(headerBytes.subarray(8, 8 + n)),
    );
  } catch (e) {
    throw bad(`the header is not valid JSON (${(e as Error).message})`);
  }
  if (json === null || typeof json !== "object" || Array.isArray(json)) {
    throw bad("the header is not a JSON object");
  }
  const dataStart = 8 + n;
  const dataSize = fileSize - dataStart;
  const tensors = new Map<string, TensorInfo>();
  let metadata: Record<string, string> = {};
  for (const [name, raw] of Object.entries(json as Record<string, unknown>)) {
    if (name === "__metadata__") {
      if (raw === null || typeof raw !== "object" || Array.isArray(raw)) {
        throw bad("__metadata__ must be an object of strings");
      }
      for (const [k, v] of Object.entries(raw)) {
        if (typeof v !== "string") throw bad(`__metadata__.${k} must be a string`);
      }
      metadata = raw as Record<string, string>;
      continue;
    }
    if (raw === null || typeof raw !== "object") throw bad(`entry '${name}' is not an object`);
    const e = raw as Record<string, unknown>;
    const stDtype = e.dtype;
    if (typeof stDtype !== "string" || !(stDtype in ST_DTYPES)) {
      throw bad(`tensor '${name}' has unknown dtype ${JSON.stringify(stDtype)}`);
    }
    const shape = e.shape;
    if (
      !Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && (d as number) >= 0)
    ) {
      throw bad(`tensor '${name}' has an invalid shape ${JSON.stringify(shape)}`);
    }
    const offs = e.data_offsets;
    if (
      !Array.isArray(offs) || offs.length !== 2 ||
      !offs.every((o) => Number.isSafeInteger(o) && (o as number) >= 0)
    ) {
      throw bad(`tensor '${name}' has invalid data_offsets ${JSON.stringify(offs)}`);
    }
    const [begin, end] = offs as number[];
    const numel = (shape as number[]).reduce((a, b) => a * b, 1);
    const want = numel * ST_DTYPES[stDtype].size;
    if (end < begin || end - begin !== want) {
      throw bad(
        `tensor '${name}' has data_offsets [${begin}, ${end}] (${end - begin} bytes) but ` +
          `shape [${shape}] of ${stDtype} needs ${want} bytes`,
      );
    }
    if (end > dataSize) {
      throw bad(
        `tensor '${name}' ends at byte ${end} of the data section, past its end (${dataSize} bytes)`,
      );
    }
    tensors.set(name, { name, stDtype, shape: shape as number[], begin, end });
  }
  // Tensors must tile the data section: no overlaps (and, as the reference
  // implementation requires, no gaps or trailing bytes).
  const sorted = [...tensors.values()].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let pos = 0;
  for (const t of sorted) {
    if (t.begin < pos) {
      const prev = sorted[sorted.indexOf(t) - 1];
      throw bad(`tensor '${t.name}' overlaps tensor '${prev?.name}' at byte ${t.begin}`);
    }
    if (t.begin > pos) throw bad(`${t.begin - pos} unused bytes before tensor '${t.name}'`);
    pos = t.end;
  }
  if (pos !== dataSize) throw bad(`${dataSize - pos} trailing bytes after the last tensor`);
  return { tensors, metadata, dataStart };
}

/** Where and as what to materialise a loaded tensor. */
export interface LoadTensorOptions {
  /** Target dtype (default: the stored dtype). Floating sources convert to it. */
  dtype?: DType;
  /** Target device, "cpu" (the default) or "cuda:N". */
  device?: string;
  /** Largest read in bytes; bigger tensors stream in row blocks (default 32 MiB). */
  chunkBytes?: number;
}

// Large tensors stream through a scratch buffer of at most this many bytes.
const CHUNK_BYTES = 32 << 20;

/** How to open safetensors files. */
export interface OpenOptions {
  /**
   * Drop each tensor's pages from the OS page cache once read (posix_fadvise DONTNEED), for
   * checkpoints read once that are too big to keep cached. No effect where unsupported.
   */
  dropPageCache?: boolean;
}

/** An open safetensors file: header parsed, tensors read on demand. */
export class SafetensorsFile {
  /** The file's path as given to open(). */
  readonly path: string;
  /** The parsed header: tensor entries, metadata and where the data starts. */
  readonly header: SafetensorsHeader;
  #file: Deno.FsFile | null;
  #scratch: Uint8Array | null = null;
  #dropper: PageCacheDropper | null = null;

  private constructor(path: string, file: Deno.FsFile, header: SafetensorsHeader) {
    this.path = path;
    this.#file = file;
    this.header = header;
  }

  /** Opens and validates `path`. */
  static open(path: string, opts: OpenOptions = {}): SafetensorsFile {
    let file: Deno.FsFile;
    try {
      file = Deno.openSync(path, { read: true });
    } catch (e) {
      throw new CheckpointError(`cannot open ${path}: ${(e as Error).message}`);
    }
    try {
      const size = file.statSync().size;
      const first = new Uint8Array(Math.min(size, 8));
      readFully(file, first, 0);
      let bytes = first;
      if (size >= 8) {
        const n = Number(new DataView(first.buffer).getBigUint64(0, true));
        if (n <= MAX_HEADER && 8 + n <= size) {
          bytes = new Uint8Array(8 + n);
          readFully(file, bytes, 0);
        }
      }
      const f = new SafetensorsFile(path, file, parseHeader(bytes, size, path));
      if (opts.dropPageCache) f.#dropper = pageCacheDropper(path);
      return f;
    } catch (e) {
      file.close();
      throw e;
    }
  }

  /** Names of the tensors in the file. */
  names(): string[] {
    return [...this.header.tensors.keys()];
  }

  /** The header entry for `name`, or undefined. */
  info(name: string): TensorInfo | undefined {
    return this.header.tensors.get(name);
  }

  /** The stored tensor's binding dtype (throws for dtypes the binding lacks). */
  dtypeOf(name: string): DType {
    const info = this.#require(name);
    const dt = ST_DTYPES[info.stDtype].dtype;
    if (!dt) {
      throw new CheckpointError(
        `${this.path}: tensor '${name}' is stored as ${info.stDtype}, which cannot be loaded`,
      );
    }
    return dt;
  }

  #require(name: string): TensorInfo {
    const info = this.header.tensors.get(name);
    if (!info) throw new CheckpointError(`${this.path}: no tensor named '${name}'`);
    return info;
  }

  #readAt(buf: Uint8Array, fileOffset: number): void {
    if (!this.#file) throw new CheckpointError(`${this.path}: read after close()`);
    readFully(this.#file, buf, fileOffset);
    this.#dropper?.drop(fileOffset, buf.byteLength);
  }

  #scratchOf(n: number): Uint8Array {
    if (!this.#scratch || this.#scratch.byteLength < n) this.#scratch = new Uint8Array(n);
    return this.#scratch.subarray(0, n);
  }

  /** Reads tensor `name` into a new Tensor, converting dtype and device as asked. */
  load(name: string, opts: LoadTensorOptions = {}): Tensor {
    const info = this.#require(name);
    const src = this.dtypeOf(name);
    const dtype = opts.dtype ?? src;
    const device = opts.device ?? "cpu";
    const bytes = info.end - info.begin;
    const at = this.header.dataStart + info.begin;
    const chunk = opts.chunkBytes ?? CHUNK_BYTES;
    if (bytes <= chunk || info.shape.length === 0) {
      const buf = this.#scratchOf(bytes);
      this.#readAt(buf, at);
      const t = fromBytes(buf, src, info.shape);
      if (dtype === src && device === "cpu") return t;
      using _t = t;
      return t.to({ dtype, device });
    }
    // Stream row blocks into a preallocated tensor of the target dtype, so the
    // peak is the weights plus one chunk, whatever the conversion.
    const rowBytes = bytes / info.shape[0];
    const rowsPer = Math.max(1, Math.floor(chunk / rowBytes));
    const out = zeros(info.shape, { dtype, device });
    try {
      for (let r = 0; r < info.shape[0]; r += rowsPer) {
        const n = Math.min(rowsPer, info.shape[0] - r);
        const buf = this.#scratchOf(n * rowBytes);
        this.#readAt(buf, at + r * rowBytes);
        using chunk = fromBytes(buf, src, [n, ...info.shape.slice(1)]);
        using dst = out.narrow(0, r, n);
        dst.copy_(chunk);
      }
    } catch (e) {
      out.dispose();
      throw e;
    }
    return out;
  }

  /** Closes the file and drops the scratch buffer. */
  close(): void {
    this.#file?.close();
    this.#file = null;
    this.#scratch = null;
    this.#dropper?.close();
    this.#dropper = null;
  }

  /** Closes the file at the end of a `using` block; same as close(). */
  [Symbol.dispose](): void {
    this.close();
  }
}

function readFully(file: Deno.FsFile, buf: Uint8Array, offset: number): void {
  file.seekSync(offset, Deno.SeekMode.Start);
  let got = 0;
  while (got < buf.byteLength) {
    const n = file.readSync(buf.subarray(got));
    if (n === null || n === 0) {
      throw new CheckpointError(`unexpected end of file at byte ${offset + got}`);
    }
    got += n;
  }
}

/** Parses a safetensors file's header without reading tensors. */
export function readHeader(path: string): SafetensorsHeader {
  using f = SafetensorsFile.open(path);
  return f.header;
}

/** Loads every tensor of a file (for small files: references, adapters). */
export function loadSafetensors(path: string, opts: LoadTensorOptions = {}): Map<string, Tensor> {
  using f = SafetensorsFile.open(path);
  const out = new Map<string, Tensor>();
  try {
    for (const name of f.names()) out.set(name, f.load(name, opts));
  } catch (e) {
    for (const t of out.values()) t.dispose();
    throw e;
  }
  return out;
}

/**
 * A safetensors file's head for tensors in file order: the 8-byte length, then the JSON
 * header padded to 8 bytes (the data section starts aligned, as the reference writer pads it).
 */
export function encodeHeader(
  path: string,
  tensors: { name: string; dtype: DType; shape: number[] }[],
  metadata: Record<string, string>,
): Uint8Array {
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length > 0) header.__metadata__ = metadata;
  let pos = 0;
  for (const t of tensors) {
    if (t.name === "__metadata__" || t.name in header) {
      throw new CheckpointError(`${path}: tensor name '${t.name}' is reserved or repeated`);
    }
    const st = DTYPE_TO_ST[t.dtype];
    if (!st) {
      throw new CheckpointError(`tensor '${t.name}': dtype ${t.dtype} has no safetensors code`);
    }
    const n = t.shape.reduce((a, b) => a * b, 1) * ITEM_SIZE[t.dtype];
    header[t.name] = { dtype: st, shape: t.shape, data_offsets: [pos, pos + n] };
    pos += n;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil(json.byteLength / 8) * 8;
  const out = new Uint8Array(8 + padded).fill(0x20, 8);
  new DataView(out.buffer).setBigUint64(0, BigInt(padded), true);
  out.set(json, 8);
  return out;
}

/**
 * Writes tensors to `path` as safetensors, tensor by tensor, through a
 * temporary file renamed into place. Entries are sorted by name.
 */
export function saveSafetensors(
  path: string,
  tensors: Map<string, Tensor> | Record<string, Tensor>,
  metadata: Record<string, string> = { format: "pt" },
): void {
  const entries = (tensors instanceof Map ? [...tensors.entries()] : Object.entries(tensors))
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const head = encodeHeader(
    path,
    entries.map(([name, t]) => ({ name, dtype: t.dtype, shape: t.shape })),
    metadata,
  );
  writeFileAtomically(path, (file) => {
    writeAll(file, head);
    for (const [, t] of entries) {
      if (t.device !== "cpu") {
        using c = t.to("cpu");
        writeAll(file, c.bytes());
      } else {
        writeAll(file, t.bytes());
      }
    }
  });
}

/** A checkpoint's tensors across one file or several shards. */
export class ShardedCheckpoint {
  /** The checkpoint directory. */
  readonly dir: string;
  /** The open safetensors files: one, or every shard the index lists. */
  readonly files: SafetensorsFile[];
  #where = new Map<string, SafetensorsFile>();

  private constructor(dir: string, files: SafetensorsFile[], where: Map<string, SafetensorsFile>) {
    this.dir = dir;
    this.files = files;
    this.#where = where;
  }

  /**
   * Opens the safetensors weights of an HF folder: `model.safetensors`, or the
   * shards listed by `model.safetensors.index.json`. Pickled `.bin` weights
   * are refused.
   */
  static open(dir: string, opts: OpenOptions = {}): ShardedCheckpoint {
    const join = (f: string) => `${dir.replace(/\/+$/, "")}/${f}`;
    const exists = (f: string) => {
      try {
        return Deno.statSync(join(f)).isFile;
      } catch {
        return false;
      }
    };
    let names: string[];
    try {
      names = [...Deno.readDirSync(dir)].map((e) => e.name);
    } catch (e) {
      throw new CheckpointError(`cannot read checkpoint folder ${dir}: ${(e as Error).message}`);
    }
    const files: SafetensorsFile[] = [];
    const where = new Map<string, SafetensorsFile>();
    const openAll = (list: string[]) => {
      try {
        for (const f of list) files.push(SafetensorsFile.open(join(f), opts));
      } catch (e) {
        for (const f of files) f.close();
        throw e;
      }
    };
    if (exists("model.safetensors.index.json")) {
      const indexPath = join("model.safetensors.index.json");
      let index: { weight_map?: Record<string, string> };
      try {
        index = JSON.parse(Deno.readTextFileSync(indexPath));
      } catch (e) {
        throw new CheckpointError(`${indexPath} is not valid JSON: ${(e as Error).message}`);
      }
      const map = index.weight_map;
      if (!map || typeof map !== "object") {
        throw new CheckpointError(`${indexPath} has no "weight_map" object`);
      }
      const shards = [...new Set(Object.values(map))].sort();
      for (const s of shards) {
        if (typeof s !== "string" || s.includes("/") || !exists(s)) {
          throw new CheckpointError(`${indexPath} names shard '${s}', which is not in ${dir}`);
        }
      }
      openAll(shards);
      for (const [tensor, shard] of Object.entries(map)) {
        const f = files[shards.indexOf(shard)];
        if (!f.info(tensor)) {
          for (const x of files) x.close();
          throw new CheckpointError(
            `${indexPath} places tensor '${tensor}' in ${shard}, but that file does not hold it`,
          );
        }
        where.set(tensor, f);
      }
    } else if (exists("model.safetensors")) {
      openAll(["model.safetensors"]);
      for (const n of files[0].names()) where.set(n, files[0]);
    } else {
      const shards = names.filter((n) => /\.safetensors$/.test(n) && !/^reference/.test(n)).sort();
      const pickles = names.filter((n) => /\.(bin|pt|pth|ckpt)$/.test(n));
      if (shards.length === 0) {
        if (pickles.length > 0) {
          throw new CheckpointError(
            `${dir} holds only pickled PyTorch weights (${pickles.join(", ")}). They are not ` +
              "loaded: unpickling can execute arbitrary code. Convert them to safetensors first, " +
              "e.g. in Python: AutoModelForCausalLM.from_pretrained(dir).save_pretrained(out, " +
              "safe_serialization=True)",
          );
        }
        throw new CheckpointError(
          `${dir} has no model.safetensors, no model.safetensors.index.json and no *.safetensors`,
        );
      }
      openAll(shards);
      for (const f of files) {
        for (const n of f.names()) {
          if (where.has(n)) {
            for (const x of files) x.close();
            throw new CheckpointError(
              `tensor '${n}' appears in both ${basename(where.get(n)!.path)} and ${
                basename(f.path)
              }`,
            );
          }
          where.set(n, f);
        }
      }
    }
    return new ShardedCheckpoint(dir, files, where);
  }

  /** Every tensor name. */
  names(): string[] {
    return [...this.#where.keys()];
  }

  /** Whether the checkpoint holds `name`. */
  has(name: string): boolean {
    return this.#where.has(name);
  }

  /** The stored shape of `name`. */
  shapeOf(name: string): number[] {
    return this.#file(name).info(name)!.shape;
  }

  /** The stored dtype of `name`. */
  dtypeOf(name: string): DType {
    return this.#file(name).dtypeOf(name);
  }

  /** Which file holds `name`. */
  fileOf(name: string): string {
    return this.#file(name).path;
  }

  #file(name: string): SafetensorsFile {
    const f = this.#where.get(name);
    if (!f) throw new CheckpointError(`${this.dir}: the checkpoint has no tensor '${name}'`);
    return f;
  }

  /** Loads `name` as a Tensor. */
  load(name: string, opts: LoadTensorOptions = {}): Tensor {
    return this.#file(name).load(name, opts);
  }

  /** Total bytes of the stored tensors. */
  storedBytes(): number {
    let n = 0;
    for (const [name, f] of this.#where) {
      const i = f.info(name)!;
      n += i.end - i.begin;
    }
    return n;
  }

  /** Closes every file. */
  close(): void {
    for (const f of this.files) f.close();
  }

  /** Closes every file at the end of a `using` block; same as close(). */
  [Symbol.dispose](): void {
    this.close();
  }
}
