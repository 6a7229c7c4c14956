// Reads the lines a file has gained since the last look: how the coordinator follows a Slurm
// job's output (progress, logs, the result line) on the shared file system.

/** A growing text file read line by line, from where the previous read stopped. */
export class FileTail {
  readonly path: string;
  #offset = 0;
  #partial = "";
  #dec = new TextDecoder();

  constructor(path: string) {
    this.path = path;
  }

  /** Complete lines added since the last call (none while the file does not exist). */
  read(): string[] {
    let file: Deno.FsFile;
    try {
      file = Deno.openSync(this.path, { read: true });
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return [];
      throw e;
    }
    try {
      file.seekSync(this.#offset, Deno.SeekMode.Start);
      const buf = new Uint8Array(1 << 16);
      for (;;) {
        const n = file.readSync(buf);
        if (n === null || n === 0) break;
        this.#offset += n;
        this.#partial += this.#dec.decode(buf.subarray(0, n), { stream: true });
      }
    } finally {
      file.close();
    }
    const parts = this.#partial.split("\n");
    this.#partial = parts.pop() ?? "";
    return parts;
  }

  /** Everything left, the last unterminated line included: for a file that is complete. */
  readRest(): string[] {
    const lines = this.read();
    if (this.#partial) lines.push(this.#partial);
    this.#partial = "";
    return lines;
  }
}

/** The last `chars` characters of a text file ("" when it does not exist). */
export function fileEnd(path: string, chars = 2000): string {
  try {
    return Deno.readTextFileSync(path).slice(-chars).trim();
  } catch {
    return "";
  }
}
