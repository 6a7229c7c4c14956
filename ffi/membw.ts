// Memory read bandwidth, measured by the shim's streaming-sum probe (membw.cpp): the roofline
// of batch-1 decode, which reads every weight byte once per token.
import { L, lastError, TorchError } from "./lib.ts";

/** Options of readBandwidth. */
export interface ReadBandwidthOptions {
  /** Bytes streamed per round (default 2 GiB: far beyond any cache, like a model's weights). */
  bytes?: number;
  /** Worker threads (default: the thread count libtorch uses, i.e. LAB_THREADS or the cores). */
  threads?: number;
  /** Rounds; the best one counts (default 6). */
  rounds?: number;
}

/** A bandwidth measurement. */
export interface ReadBandwidth {
  bytesPerS: number;
  bytes: number;
  threads: number;
  rounds: number;
  /** Whether the AVX2 loop ran (false: scalar fallback, or LAB_MEMBW_SCALAR=1). */
  avx2: boolean;
}

/** Measures memory read bandwidth (bytes/s) with a multi-threaded streaming sum, best of rounds. */
export function readBandwidth(opts: ReadBandwidthOptions = {}): ReadBandwidth {
  const lib = L();
  const bytes = Math.floor(opts.bytes ?? 2 ** 31);
  const threads = opts.threads ?? lib.lt_get_num_threads();
  const rounds = opts.rounds ?? 6;
  const bps = lib.lt_read_bandwidth(BigInt(bytes), threads, rounds);
  if (!(bps > 0)) throw new TorchError(`readBandwidth: ${lastError()}`);
  return { bytesPerS: bps, bytes, threads, rounds, avx2: lib.lt_read_bandwidth_avx2() === 1 };
}
