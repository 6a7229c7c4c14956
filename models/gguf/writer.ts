// The GGUF container (version 3): typed metadata, tensor descriptors, 32-byte-aligned data,
// written tensor by tensor so a model larger than memory streams through.
import { LabError } from "../../errors.ts";
import { writeAll, writeFileAtomically } from "../file_write.ts";

/** A metadata value with its GGUF type. */
export type GgufValue =
  | { type: "u32" | "i32" | "f32" | "u64"; value: number }
  | { type: "bool"; value: boolean }
  | { type: "string"; value: string }
  | { type: "array"; of: "string"; value: string[] }
  | { type: "array"; of: "i32" | "u32" | "f32"; value: number[] };

/** Storage types the writer emits (ggml_type ids in GGML_TYPE_IDS). */
export type GgufTensorType = "F32" | "F16" | "BF16";

/** ggml_type ids of the unquantized types (ggml.h). */
export const GGML_TYPE_IDS: Record<GgufTensorType, number> = { F32: 0, F16: 1, BF16: 30 };

const TYPE_BYTES: Record<GgufTensorType, number> = { F32: 4, F16: 2, BF16: 2 };

/** One tensor to write: `shape` outermost first (PyTorch order); `data()` its row-major bytes. */
export interface GgufTensor {
  name: string;
  shape: number[];
  type: GgufTensorType;
  data: () => Uint8Array;
}

const VALUE_TYPE = { u32: 4, i32: 5, f32: 6, bool: 7, string: 8, array: 9, u64: 10 } as const;

/** The alignment of tensor data (GGUF's default, `general.alignment`). */
export const GGUF_ALIGNMENT = 32;

class Bytes {
  #parts: Uint8Array[] = [];
  length = 0;
  #push(b: Uint8Array) {
    this.#parts.push(b);
    this.length += b.byteLength;
  }
  num(kind: "u32" | "i32" | "f32" | "u64" | "u8", v: number | bigint) {
    const b = new Uint8Array(kind === "u64" ? 8 : kind === "u8" ? 1 : 4);
    const d = new DataView(b.buffer);
    if (kind === "u32") d.setUint32(0, Number(v), true);
    else if (kind === "i32") d.setInt32(0, Number(v), true);
    else if (kind === "f32") d.setFloat32(0, Number(v), true);
    else if (kind === "u8") d.setUint8(0, Number(v));
    else d.setBigUint64(0, BigInt(v), true);
    this.#push(b);
  }
  str(s: string) {
    const b = new TextEncoder().encode(s);
    this.num("u64", b.byteLength);
    this.#push(b);
  }
  concat(): Uint8Array {
    const out = new Uint8Array(this.length);
    let at = 0;
    for (const p of this.#parts) {
      out.set(p, at);
      at += p.byteLength;
    }
    return out;
  }
}

function writeValue(b: Bytes, v: GgufValue): void {
  b.num("u32", VALUE_TYPE[v.type]);
  if (v.type === "string") return b.str(v.value);
  if (v.type === "bool") return b.num("u8", v.value ? 1 : 0);
  if (v.type !== "array") return b.num(v.type, v.value);
  b.num("u32", VALUE_TYPE[v.of]);
  b.num("u64", v.value.length);
  for (const x of v.value) {
    if (v.of === "string") b.str(x as string);
    else b.num(v.of, x as number);
  }
}

const align = (n: number) => Math.ceil(n / GGUF_ALIGNMENT) * GGUF_ALIGNMENT;

/** Bytes a tensor's data takes. */
export function tensorBytes(t: Pick<GgufTensor, "shape" | "type">): number {
  return t.shape.reduce((a, b) => a * b, 1) * TYPE_BYTES[t.type];
}

function header(metadata: Map<string, GgufValue>, tensors: GgufTensor[]): Uint8Array {
  const b = new Bytes();
  b.num("u32", 0x46554747); // "GGUF" little-endian
  b.num("u32", 3);
  b.num("u64", tensors.length);
  b.num("u64", metadata.size);
  for (const [k, v] of metadata) {
    b.str(k);
    writeValue(b, v);
  }
  let offset = 0;
  for (const t of tensors) {
    b.str(t.name);
    b.num("u32", t.shape.length);
    // GGUF lists dimensions innermost first (ggml's ne[0] is the row length).
    for (const d of [...t.shape].reverse()) b.num("u64", d);
    b.num("u32", GGML_TYPE_IDS[t.type]);
    b.num("u64", offset);
    offset += align(tensorBytes(t));
  }
  const head = b.concat();
  const out = new Uint8Array(align(head.byteLength));
  out.set(head);
  return out;
}

/**
 * Writes a GGUF file at `path` (through a temporary file, renamed when complete). Returns the file's
 * size in bytes.
 */
export function writeGguf(
  path: string,
  metadata: Map<string, GgufValue>,
  tensors: GgufTensor[],
): number {
  const names = new Set<string>();
  for (const t of tensors) {
    if (names.has(t.name)) throw new LabError(`GGUF ${path}: tensor '${t.name}' written twice`);
    names.add(t.name);
  }
  return writeFileAtomically(path, (f) => {
    const head = header(metadata, tensors);
    writeAll(f, head);
    let size = head.byteLength;
    for (const t of tensors) {
      const data = t.data();
      if (data.byteLength !== tensorBytes(t)) {
        throw new LabError(
          `GGUF ${path}: tensor '${t.name}' has ${data.byteLength} bytes, ` +
            `expected ${tensorBytes(t)} for ${t.type} [${t.shape.join(", ")}]`,
        );
      }
      writeAll(f, data);
      const pad = align(data.byteLength) - data.byteLength;
      if (pad) writeAll(f, new Uint8Array(pad));
      size += data.byteLength + pad;
    }
    return size;
  });
}
