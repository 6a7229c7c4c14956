// Deno FFI signatures of the benchmark probes (membw.cpp).
/** Symbols of the benchmark probes (membw.cpp). */
export const BENCH_SYMBOLS = {
  // bytes, threads, rounds → bytes/s (-1 on error). Blocking by design: it is a measurement.
  lt_read_bandwidth: { parameters: ["i64", "i32", "i32"], result: "f64" },
  lt_read_bandwidth_avx2: { parameters: [], result: "i32" },
} as const;
