// Continuous batching over one model: sequences join the running batch at the next decode step
// and leave it when done, each in its own row of one shared KV cache.
//
// Layout: the cache has `maxBatch` rows on one shared column timeline whose write head is
// `cache.length`. Active sequences occupy rows [0, n) (a finished row is refilled by the last
// one); sequence r's keys live in columns [start_r, length) of its row and an attention mask
// hides the columns before start_r. Positions are baked into the keys by RoPE, so where a
// sequence sits on the timeline does not change its numbers. A new arrival is prefilled alone
// into a scratch cache and its keys copied so that they end at the write head.
import type { KVCache } from "../models/kv_cache.ts";
import type { LlamaModel } from "../models/llama.ts";
import { pickTokens, type SamplingOptions, seededRandom } from "../models/sampling.ts";
import type { Tensor } from "../ffi/mod.ts";
import { yieldToEventLoop } from "./event_loop.ts";

/** One sequence to generate. */
export interface SequenceRequest {
  prompt: readonly number[];
  maxTokens: number;
  sampling: SamplingOptions;
  seed: number;
  /** Token ids that end the sequence (empty to ignore end-of-sequence). */
  stopTokens: ReadonlySet<number>;
  /**
   * Called with each new token and, for the last one, why the sequence ends; returning true
   * ends it here (a stop string matched).
   */
  onToken?: (token: number, last: FinishReason | null) => boolean | void;
  /** Aborting it (a client that went away) frees the sequence's row at once. */
  signal?: AbortSignal;
}

/** Why a sequence ended. */
export type FinishReason = "stop" | "length" | "cancelled";

/** What a finished sequence produced. */
export interface SequenceResult {
  tokens: number[];
  finishReason: FinishReason;
  /** The largest number of sequences decoded together in one step while this one ran. */
  maxBatchSeen: number;
}

/** Thrown by submit() when every row is busy and the waiting queue is full. */
export class QueueFullError extends Error {
  constructor(maxBatch: number, maxWaiting: number) {
    super(`the server is full: ${maxBatch} requests running and ${maxWaiting} waiting`);
    this.name = "QueueFullError";
  }
}

/** Limits of a batcher. */
export interface BatcherOptions {
  maxBatch: number;
  maxWaiting: number;
  /** Longest prompt plus output a sequence may need (positions). */
  maxContext: number;
}

interface Sequence {
  req: SequenceRequest;
  tokens: number[];
  start: number;
  position: number;
  last: number;
  random: () => number;
  maxBatchSeen: number;
  resolve: (r: SequenceResult) => void;
  reject: (e: unknown) => void;
  onAbort: () => void;
}

/** Counters a server reports (and tests check). */
export interface BatcherStats {
  running: number;
  waiting: number;
  steps: number;
  /** The largest batch one decode step ran. */
  maxBatchRun: number;
  /** Times the live columns moved left (the timeline ran out, or was mostly dead columns). */
  compactions: number;
}

/** Schedules sequences over `model` with continuous batching. */
export class ContinuousBatcher {
  readonly model: LlamaModel;
  readonly options: BatcherOptions;
  readonly #cache: KVCache;
  readonly #active: Sequence[] = [];
  readonly #waiting: Sequence[] = [];
  #running = false;
  #closed = false;
  #steps = 0;
  #maxBatchRun = 0;
  #compactions = 0;

  constructor(model: LlamaModel, options: BatcherOptions) {
    this.model = model;
    this.options = options;
    // Twice the longest sequence: the timeline compacts before it runs out.
    this.#cache = model.createCache(options.maxBatch, 2 * options.maxContext + 1);
  }

  /** Current load. */
  stats(): BatcherStats {
    return {
      running: this.#active.length,
      waiting: this.#waiting.length,
      steps: this.#steps,
      maxBatchRun: this.#maxBatchRun,
      compactions: this.#compactions,
    };
  }

  /** Queues a sequence; resolves when it ends. Throws QueueFullError when full. */
  submit(req: SequenceRequest): Promise<SequenceResult> {
    if (this.#closed) return Promise.reject(new Error("the batcher is closed"));
    const { maxBatch, maxWaiting } = this.options;
    if (this.#active.length + this.#waiting.length >= maxBatch + maxWaiting) {
      throw new QueueFullError(maxBatch, maxWaiting);
    }
    if (req.signal?.aborted) {
      return Promise.resolve({ tokens: [], finishReason: "cancelled", maxBatchSeen: 0 });
    }
    return new Promise((resolve, reject) => {
      const seq: Sequence = {
        req,
        tokens: [],
        start: 0,
        position: req.prompt.length,
        last: 0,
        random: seededRandom(req.seed),
        maxBatchSeen: 0,
        resolve,
        reject,
        onAbort: () => this.#cancel(seq),
      };
      req.signal?.addEventListener("abort", seq.onAbort, { once: true });
      this.#waiting.push(seq);
      this.#kick();
    });
  }

  /** Stops scheduling, ends every sequence as cancelled and frees the cache. */
  close(): void {
    this.#closed = true;
    for (const s of [...this.#active, ...this.#waiting]) this.#finish(s, "cancelled");
    this.#active.length = 0;
    this.#waiting.length = 0;
    if (!this.#running) this.#cache.dispose();
  }

  #kick(): void {
    if (this.#running) return;
    this.#running = true;
    this.#loop().finally(() => {
      this.#running = false;
      if (this.#closed) this.#cache.dispose();
    });
  }

  // Prefills of new arrivals run first, then one decode step of every running sequence; the
  // event loop then takes new requests, disconnects and stream writes before the next round.
  async #loop(): Promise<void> {
    // Start on a later turn: submit() returns before the first token, and arrivals of the same
    // turn are admitted together.
    await yieldToEventLoop();
    while (!this.#closed && (this.#active.length > 0 || this.#waiting.length > 0)) {
      try {
        this.#admit();
        if (this.#active.length > 0) this.#decodeStep();
      } catch (e) {
        for (const s of this.#active.splice(0)) this.#fail(s, e);
        this.#cache.reset();
      }
      await yieldToEventLoop();
    }
    if (this.#active.length === 0) this.#cache.reset();
  }

  #admit(): void {
    while (this.#waiting.length > 0 && this.#active.length < this.options.maxBatch) {
      const seq = this.#waiting.shift()!;
      try {
        const first = this.#prefill(seq);
        this.#active.push(seq);
        this.#accept(seq, first);
      } catch (e) {
        this.#fail(seq, e);
      }
    }
  }

  /** Prefills `seq` alone and places its keys in the next free row, ending at the head. */
  #prefill(seq: Sequence): number {
    const p = seq.req.prompt.length;
    const cache = this.#cache;
    if (cache.length + 1 > cache.capacity) this.#compact();
    if (cache.length < p) this.#shift(p - cache.length);
    using scratch = this.model.createCache(1, p);
    using logits = this.model.forward([[...seq.req.prompt]], { cache: scratch, logits: "last" });
    const row = this.#active.length;
    seq.start = cache.length - p;
    for (let l = 0; l < cache.keys.length; l++) {
      for (
        const [dst, src] of [[cache.keys[l], scratch.keys[l]], [cache.values[l], scratch.values[l]]]
      ) {
        using r = dst.narrow(0, row, 1);
        using cols = r.narrow(2, seq.start, p);
        cols.copy_(src);
      }
    }
    return pickTokens(logits, seq.req.sampling, seq.random)[0];
  }

  #decodeStep(): void {
    const n = this.#active.length;
    const cache = this.#cache;
    // Every row attends over the whole timeline (masked where not its own): once the columns
    // no sequence needs outnumber the live ones, moving them costs less than reading them.
    const oldest = Math.min(...this.#active.map((s) => s.start));
    if (cache.length + 1 > cache.capacity || oldest > cache.length - oldest) this.#compact();
    const head = cache.length;
    const mask = this.#active.map((s) => {
      const row = new Array<number>(head + 1).fill(1);
      row.fill(0, 0, s.start);
      return row;
    });
    using view = cache.rowsView(n);
    using logits = this.model.forward(this.#active.map((s) => [s.last]), {
      cache: view,
      attentionMask: mask,
      positionIds: this.#active.map((s) => [s.position]),
      logits: "last",
    });
    cache.length = view.length;
    this.#steps++;
    this.#maxBatchRun = Math.max(this.#maxBatchRun, n);
    const next = this.#pick(logits);
    const batch = [...this.#active];
    batch.forEach((s, i) => {
      s.position++;
      s.maxBatchSeen = Math.max(s.maxBatchSeen, n);
      this.#accept(s, next[i]);
    });
  }

  /** One token per active row: greedy rows in one argmax, sampled rows each with their RNG. */
  #pick(logits: Tensor): number[] {
    const seqs = this.#active;
    if (seqs.every((s) => !s.req.sampling.temperature)) return pickTokens(logits, {}, Math.random);
    return seqs.map((s, i) => {
      using row = logits.narrow(0, i, 1);
      return pickTokens(row, s.req.sampling, s.random)[0];
    });
  }

  /** Records `token` for `seq` and ends the sequence when it should. */
  #accept(seq: Sequence, token: number): void {
    seq.tokens.push(token);
    seq.last = token;
    let end: FinishReason | null = seq.req.stopTokens.has(token)
      ? "stop"
      : seq.tokens.length >= seq.req.maxTokens
      ? "length"
      : null;
    if (seq.req.onToken?.(token, end) === true) end = "stop";
    if (end) this.#remove(seq, end);
  }

  #cancel(seq: Sequence): void {
    const w = this.#waiting.indexOf(seq);
    if (w >= 0) {
      this.#waiting.splice(w, 1);
      this.#finish(seq, "cancelled");
      return;
    }
    if (this.#active.includes(seq)) {
      this.#remove(seq, "cancelled");
      this.#kick();
    }
  }

  /** Frees `seq`'s row: the last active row moves into it. */
  #remove(seq: Sequence, reason: FinishReason): void {
    const row = this.#active.indexOf(seq);
    if (row < 0) return;
    const last = this.#active.length - 1;
    if (row !== last) {
      const moved = this.#active[last];
      const live = this.#cache.length - moved.start;
      for (const t of [...this.#cache.keys, ...this.#cache.values]) {
        using src = t.narrow(0, last, 1);
        using srcCols = src.narrow(2, moved.start, live);
        using dst = t.narrow(0, row, 1);
        using dstCols = dst.narrow(2, moved.start, live);
        dstCols.copy_(srcCols);
      }
      this.#active[row] = moved;
    }
    this.#active.pop();
    if (this.#active.length === 0) this.#cache.reset();
    this.#finish(seq, reason);
  }

  /** Moves every live column `by` columns right (a prompt longer than the head needs room). */
  #shift(by: number): void {
    this.#move(by);
  }

  /** Moves every live column left so that the oldest sequence starts at column 0. */
  #compact(): void {
    const oldest = Math.min(...this.#active.map((s) => s.start));
    this.#compactions++;
    this.#move(-oldest);
  }

  #move(by: number): void {
    const cache = this.#cache;
    const n = this.#active.length;
    if (n === 0 || by === 0) {
      cache.length = Math.max(0, cache.length + by);
      return;
    }
    const from = Math.min(...this.#active.map((s) => s.start));
    const width = cache.length - from;
    for (const t of [...cache.keys, ...cache.values]) {
      using rows = t.narrow(0, 0, n);
      using src = rows.narrow(2, from, width);
      using copy = src.clone();
      using dst = rows.narrow(2, from + by, width);
      dst.copy_(copy);
    }
    for (const s of this.#active) s.start += by;
    cache.length += by;
  }

  #finish(seq: Sequence, reason: FinishReason): void {
    seq.req.signal?.removeEventListener("abort", seq.onAbort);
    seq.resolve({ tokens: seq.tokens, finishReason: reason, maxBatchSeen: seq.maxBatchSeen });
  }

  #fail(seq: Sequence, e: unknown): void {
    seq.req.signal?.removeEventListener("abort", seq.onAbort);
    seq.reject(e);
  }
}
