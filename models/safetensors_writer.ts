// A safetensors file written tensor by tensor as the data is produced: the header needs
// every size up front, which declared shapes give, so nothing holds more than one piece.
import { type DType, ITEM_SIZE } from "../ffi/mod.ts";
import { CheckpointError, encodeHeader } from "./safetensors.ts";
import { writeAll } from "./file_write.ts";

/** A tensor to be written: its name, dtype and shape. */
export interface TensorDeclaration {
  name: string;
  dtype: DType;
  shape: number[];
}

/** Bytes a declared tensor takes. */
export function declaredBytes(t: TensorDeclaration): number {
  return t.shape.reduce((a, b) => a * b, 1) * ITEM_SIZE[t.dtype];
}

/**
 * Writes a safetensors file whose tensors are declared first and whose bytes arrive later,
 * in declaration order, in pieces of any size. The file goes to a temporary name and is
 * renamed into place by close() only when every byte arrived.
 */
export class SafetensorsWriter {
  readonly path: string;
  readonly #tmp: string;
  #file: Deno.FsFile | null;
  readonly #tensors: TensorDeclaration[];
  readonly #sizes: number[];
  #index = 0;
  #written = 0;

  private constructor(path: string, tmp: string, file: Deno.FsFile, tensors: TensorDeclaration[]) {
    this.path = path;
    this.#tmp = tmp;
    this.#file = file;
    this.#tensors = tensors;
    this.#sizes = tensors.map(declaredBytes);
  }

  /** Writes the header of `tensors` (in that order) to a temporary file next to `path`. */
  static create(
    path: string,
    tensors: TensorDeclaration[],
    metadata: Record<string, string> = { format: "pt" },
  ): SafetensorsWriter {
    const head = encodeHeader(path, tensors, metadata);
    const tmp = `${path}.tmp-${Deno.pid}`;
    const file = Deno.openSync(tmp, { write: true, create: true, truncate: true });
    const w = new SafetensorsWriter(path, tmp, file, tensors);
    try {
      w.#put(head);
      w.#advance();
    } catch (e) {
      w.abort();
      throw e;
    }
    return w;
  }

  /** The tensor whose bytes come next, or null when all arrived. */
  get next(): TensorDeclaration | null {
    return this.#tensors[this.#index] ?? null;
  }

  /** Appends the next bytes of the current tensor; a piece may not cross into the next tensor. */
  write(bytes: Uint8Array): void {
    const t = this.next;
    if (!t) throw new CheckpointError(`${this.path}: more bytes than the declared tensors hold`);
    const left = this.#sizes[this.#index] - this.#written;
    if (bytes.byteLength > left) {
      throw new CheckpointError(
        `${this.path}: ${bytes.byteLength} bytes given for tensor '${t.name}', which has ${left} left`,
      );
    }
    this.#put(bytes);
    this.#written += bytes.byteLength;
    this.#advance();
  }

  // Moves past complete tensors (empty ones are complete at once).
  #advance(): void {
    while (this.#index < this.#tensors.length && this.#written === this.#sizes[this.#index]) {
      this.#index++;
      this.#written = 0;
    }
  }

  #put(bytes: Uint8Array): void {
    if (!this.#file) throw new CheckpointError(`${this.path}: write after close`);
    writeAll(this.#file, bytes);
  }

  /** Checks every declared byte arrived and renames the file into place. */
  close(): void {
    const t = this.next;
    if (t) {
      this.abort();
      throw new CheckpointError(
        `${this.path}: tensor '${t.name}' and those after it were not written`,
      );
    }
    this.#file?.close();
    this.#file = null;
    Deno.renameSync(this.#tmp, this.path);
  }

  /** Closes and removes the temporary file. */
  abort(): void {
    this.#file?.close();
    this.#file = null;
    try {
      Deno.removeSync(this.#tmp);
    } catch { /* already gone */ }
  }
}
