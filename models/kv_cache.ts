// A preallocated key/value cache: one [batch, kvHeads, capacity, headDim]
// buffer per layer, filled in place as tokens arrive.
import { type DType, ITEM_SIZE, type Tensor, zeros } from "../ffi/mod.ts";
import type { ModelConfig } from "./config.ts";

/** Sizes of a cache. */
export interface KVCacheOptions {
  /** Number of sequences the cache holds side by side (the buffers' first dimension). */
  batch: number;
  /** Maximum number of positions (prompt plus new tokens). */
  capacity: number;
  /** Element type of the key and value buffers. */
  dtype: DType;
  /** Where the buffers live: "cpu" (the default) or "cuda:N". */
  device?: string;
}

/** Keys and values of every layer for up to `capacity` positions. */
export class KVCache {
  /** Number of sequences held (the buffers' first dimension). */
  readonly batch: number;
  /** Maximum number of positions per sequence. */
  readonly capacity: number;
  /** One key buffer per layer, each [batch, numKvHeads, capacity, headDim]. */
  readonly keys: Tensor[];
  /** One value buffer per layer, each [batch, numKvHeads, capacity, headDim]. */
  readonly values: Tensor[];
  /** Positions filled so far. */
  length = 0;

  /** Allocates zeroed key and value buffers for every layer of `config`. */
  constructor(config: ModelConfig, opts: KVCacheOptions) {
    if (!Number.isInteger(opts.batch) || opts.batch < 1) {
      throw new RangeError(`KVCache: batch must be a positive integer, got ${opts.batch}`);
    }
    if (!Number.isInteger(opts.capacity) || opts.capacity < 1) {
      throw new RangeError(`KVCache: capacity must be a positive integer, got ${opts.capacity}`);
    }
    this.batch = opts.batch;
    this.capacity = opts.capacity;
    const shape = [opts.batch, config.numKvHeads, opts.capacity, config.headDim];
    this.keys = [];
    this.values = [];
    try {
      for (let i = 0; i < config.numLayers; i++) {
        this.keys.push(zeros(shape, { dtype: opts.dtype, device: opts.device }));
        this.values.push(zeros(shape, { dtype: opts.dtype, device: opts.device }));
      }
    } catch (e) {
      this.dispose();
      throw e;
    }
  }

  /** Checks that `n` more positions fit. */
  ensureRoom(n: number): void {
    if (this.length + n > this.capacity) {
      throw new RangeError(
        `KV cache full: ${this.length} positions held, ${n} more requested, capacity ` +
          `${this.capacity}. Create the cache with a larger capacity.`,
      );
    }
  }

  /**
   * A cache over the first `rows` rows of this one's buffers (the storage is shared), for a
   * batch whose rows come and go between steps. Dispose the view; the buffers stay.
   */
  rowsView(rows: number): KVCache {
    if (!Number.isInteger(rows) || rows < 1 || rows > this.batch) {
      throw new RangeError(`KVCache.rowsView: rows must be in [1, ${this.batch}], got ${rows}`);
    }
    const view = Object.create(KVCache.prototype) as KVCache;
    Object.assign(view, {
      batch: rows,
      capacity: this.capacity,
      keys: this.keys.map((t) => t.narrow(0, 0, rows)),
      values: this.values.map((t) => t.narrow(0, 0, rows)),
      length: this.length,
    });
    return view;
  }

  /** Forgets the cached positions (the buffers are kept). */
  reset(): void {
    this.length = 0;
  }

  /** Bytes of the cache buffers. */
  bytes(): number {
    let n = 0;
    for (const t of [...this.keys, ...this.values]) {
      if (!t.isDisposed) n += t.numel * ITEM_SIZE[t.dtype];
    }
    return n;
  }

  /** Frees the buffers. */
  dispose(): void {
    for (const t of this.keys) t.dispose();
    for (const t of this.values) t.dispose();
  }

  /** Frees the buffers at the end of a `using` block; same as dispose(). */
  [Symbol.dispose](): void {
    this.dispose();
  }
}
