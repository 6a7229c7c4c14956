// Memory read bandwidth probe: the roofline that batch-1 decode is measured against.
//
// Decode of one token reads every weight byte once, so its speed limit on a CPU is the
// bandwidth at which the cores can stream memory, not the FLOPs. Benchmarks measure that
// bandwidth in the same run (same machine state, same thread count) rather than quoting
// a figure measured on another day.
//
// The probe sums a buffer of `bytes` split across `threads` workers, best of `rounds`.
// Workers are started once and meet at a barrier before and after every round, so thread
// start-up stays out of the timing. The AVX2 loop keeps four independent accumulators so
// that the adds never become the bottleneck; it is chosen at run time, with a scalar
// fallback for machines without AVX2 (and without assuming any compile-time flag).
#include <immintrin.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

extern "C" void lt_set_error(const char* msg);

namespace {

// A reusable spin barrier (C++17 has no std::barrier). Spinning is right here: the wait
// is the length of one sweep at most, and a sleeping worker would wake late.
class SpinBarrier {
 public:
  explicit SpinBarrier(int n) : n_(n) {}
  void wait() {
    const int gen = gen_.load(std::memory_order_acquire);
    if (count_.fetch_add(1, std::memory_order_acq_rel) + 1 == n_) {
      count_.store(0, std::memory_order_relaxed);
      gen_.fetch_add(1, std::memory_order_acq_rel);
      return;
    }
    while (gen_.load(std::memory_order_acquire) == gen) _mm_pause();
  }

 private:
  const int n_;
  std::atomic<int> count_{0};
  std::atomic<int> gen_{0};
};

__attribute__((target("avx2"))) double sum_avx2(const float* p, int64_t n) {
  __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
  __m256 a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    a0 = _mm256_add_ps(a0, _mm256_load_ps(p + i));
    a1 = _mm256_add_ps(a1, _mm256_load_ps(p + i + 8));
    a2 = _mm256_add_ps(a2, _mm256_load_ps(p + i + 16));
    a3 = _mm256_add_ps(a3, _mm256_load_ps(p + i + 24));
  }
  __m256 s = _mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3));
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, s);
  double total = 0;
  for (float v : lanes) total += v;
  for (; i < n; i++) total += p[i];
  return total;
}

double sum_scalar(const float* p, int64_t n) {
  // Eight accumulators let the compiler keep several loads in flight without AVX2.
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    for (int k = 0; k < 8; k++) acc[k] += p[i + k];
  }
  double total = 0;
  for (float v : acc) total += v;
  for (; i < n; i++) total += p[i];
  return total;
}

bool use_avx2() {
  // LAB_MEMBW_SCALAR=1 forces the fallback, so both paths can be compared on one machine.
  const char* force = std::getenv("LAB_MEMBW_SCALAR");
  if (force && force[0] == '1') return false;
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2");
}

// Where the sums go, so that the reads are observable.
volatile double g_sink = 0;

}  // namespace

extern "C" {

// Streams `bytes` (rounded down to whole 128-byte lines) with `threads` workers, best of
// `rounds`; returns bytes per second, or -1 with the last error set.
double lt_read_bandwidth(int64_t bytes, int32_t threads, int32_t rounds) {
  try {
    if (bytes < 4096) throw std::invalid_argument("bytes must be at least 4096");
    if (threads < 1 || threads > 1024) throw std::invalid_argument("threads must be 1..1024");
    if (rounds < 1) throw std::invalid_argument("rounds must be at least 1");
    const int64_t n = (bytes / 128) * 32;  // floats, in whole 128-byte chunks
    float* buf = static_cast<float*>(std::aligned_alloc(64, static_cast<size_t>(n) * 4));
    if (!buf) throw std::runtime_error("could not allocate " + std::to_string(bytes) + " bytes");
    const bool avx2 = use_avx2();
    // Slices in whole 32-float chunks, so every slice stays 128-byte aligned.
    const int64_t chunks = n / 32;
    auto slice = [&](int t, int64_t* begin, int64_t* len) {
      const int64_t c0 = chunks * t / threads, c1 = chunks * (t + 1) / threads;
      *begin = c0 * 32;
      *len = (c1 - c0) * 32;
    };
    SpinBarrier barrier(threads);
    std::vector<double> sink(threads, 0.0);
    double best = 0;
    // Workers wait for all to exist: if starting one fails, the others are told to leave
    // instead of waiting forever at a barrier sized for a pool that never filled.
    std::atomic<int> go{0};
    auto work = [&](int t) {
      while (go.load(std::memory_order_acquire) == 0) _mm_pause();
      if (go.load(std::memory_order_acquire) < 0) return;
      int64_t b, len;
      slice(t, &b, &len);
      // Each worker writes its own slice first, so the pages are really there (not the
      // shared zero page) and, on a multi-socket machine, near the worker that reads them.
      for (int64_t i = 0; i < len; i++) buf[b + i] = static_cast<float>((b + i) & 7);
      for (int r = 0; r < rounds; r++) {
        barrier.wait();
        const auto t0 = std::chrono::steady_clock::now();
        sink[t] += avx2 ? sum_avx2(buf + b, len) : sum_scalar(buf + b, len);
        barrier.wait();
        if (t == 0) {
          const double s =
              std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
          const double bw = static_cast<double>(n) * 4 / s;
          if (bw > best) best = bw;
        }
      }
    };
    std::vector<std::thread> pool;
    try {
      for (int t = 1; t < threads; t++) pool.emplace_back(work, t);
    } catch (...) {
      go.store(-1, std::memory_order_release);
      for (auto& th : pool) th.join();
      std::free(buf);
      throw;
    }
    go.store(1, std::memory_order_release);
    work(0);
    for (auto& th : pool) th.join();
    std::free(buf);
    // The sums must be used, or the compiler may drop the reads.
    double total = 0;
    for (double v : sink) total += v;
    g_sink = total;
    return best;
  } catch (const std::exception& e) {
    lt_set_error(e.what());
    return -1;
  }
}

// 1 when the AVX2 loop is used (runtime check and LAB_MEMBW_SCALAR), else 0.
int32_t lt_read_bandwidth_avx2(void) { return use_avx2() ? 1 : 0; }

}  // extern "C"
