// A `llama_batch` built in JS memory: tokens at positions of sequences, which of them return
// logits; the typed arrays stay referenced by the object for as long as libllama reads them.
import { BATCH } from "../../ffi/llama/structs.ts";

const addr = (a: ArrayBufferView<ArrayBuffer>) =>
  Deno.UnsafePointer.value(Deno.UnsafePointer.of(a));

/** One token of a batch. */
export interface BatchToken {
  id: number;
  pos: number;
  seq: number;
  logits: boolean;
}

/** A filled llama_batch and the memory it points into. */
export class TokenBatch {
  readonly struct = new Uint8Array(BATCH.size);
  readonly #keep: ArrayBufferView[];
  /** Index of each token asking for logits, in batch order (for llama_get_logits_ith). */
  readonly outputs: number[] = [];

  constructor(tokens: readonly BatchToken[], maxSeq: number) {
    const n = tokens.length;
    const ids = new Int32Array(n);
    const pos = new Int32Array(n);
    const nSeq = new Int32Array(n).fill(1);
    const seqIds = Int32Array.from({ length: maxSeq }, (_, i) => i);
    const seqPtr = new BigUint64Array(n);
    const logits = new Int8Array(n);
    const base = addr(seqIds);
    tokens.forEach((t, i) => {
      ids[i] = t.id;
      pos[i] = t.pos;
      seqPtr[i] = base + BigInt(t.seq * 4);
      logits[i] = t.logits ? 1 : 0;
      if (t.logits) this.outputs.push(i);
    });
    this.#keep = [ids, pos, nSeq, seqIds, seqPtr, logits];
    BATCH.set(this.struct, "n_tokens", n);
    BATCH.set(this.struct, "token", addr(ids));
    BATCH.set(this.struct, "embd", 0n);
    BATCH.set(this.struct, "pos", addr(pos));
    BATCH.set(this.struct, "n_seq_id", addr(nSeq));
    BATCH.set(this.struct, "seq_id", addr(seqPtr));
    BATCH.set(this.struct, "logits", addr(logits));
  }

  /** How many buffers the batch keeps alive (for tests of its lifetime). */
  get buffers(): number {
    return this.#keep.length;
  }
}
