// Packed-weight matrix-vector kernels for decoding (1–8 input rows): memory-bound, so the
// goal is to stream each packed byte once at the machine's bandwidth.
//
// Why float FMA over a shuffle table, not integer dot products: with AVX-512 a 16-entry
// float table is one register and `vpermps` decodes 16 nibbles in one instruction, so a
// 4-bit weight costs ~3 vector ops per 16 values — fast enough to saturate memory on two
// cores — and the products are exactly those of the dequantized weight (only the order of
// summation differs). Quantizing the activations to int8 (llama.cpp's Q8 path) would add
// an error of its own, which the lab would then have to report as part of every scheme.
//
// The codes of a byte are element 2i (high nibble) and 2i+1 (low nibble). Rather than
// re-interleave decoded values, the activations are de-interleaved once per call: each
// chunk of 32 (AVX-512) or 16 (AVX2) inputs is stored as its even elements, then its odd.
//
// Functions compiled for AVX2 / AVX-512 carry target attributes and run only when the CPU
// reports those sets (never assumed at compile time).
#include "qkernels.h"

#include <ATen/Parallel.h>
#include <c10/util/Half.h>
#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

namespace lab {
namespace {

#define LAB_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,fma,f16c")))
#define LAB_AVX2 __attribute__((target("avx2,fma,f16c")))

Isa cpu_best() {
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq")) {
    return __builtin_cpu_supports("avx512vnni") ? Isa::Vnni : Isa::Avx512;
  }
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
      __builtin_cpu_supports("f16c")) {
    return Isa::Avx2;
  }
  return Isa::Scalar;
}

Isa from_env(Isa best) {
  const char* e = std::getenv("LAB_KERNELS");
  if (e == nullptr || *e == 0) return best;
  const std::string v(e);
  Isa want = v == "scalar" ? Isa::Scalar
             : v == "avx2"  ? Isa::Avx2
             : v == "avx512" ? Isa::Avx512
                             : best;
  return std::min(want, best);
}

// Read inside parallel regions, written only by set_isa (tests): relaxed atomics suffice.
std::atomic<Isa> g_isa{from_env(cpu_best())};

float half_bits_to_float(uint16_t h) { return static_cast<float>(c10::Half(h, c10::Half::from_bits())); }
float bf16_bits_to_float(uint16_t h) {
  uint32_t u = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// Walks the blocks (groups) of one row in order without a division per block: the
// kernels' inner loops are a few instructions, so an integer divide per block would
// cost as much as the decoding itself.
struct BlockCursor {
  const PackedWeight& w;
  int64_t b, b2, left, left2;  // block index, its scale index, elements left in each
  BlockCursor(const PackedWeight& pw, int64_t e) : w(pw) {
    b = e / w.block;
    left = w.block - e % w.block;
    b2 = w.block2 ? b / w.block2 : 0;
    left2 = w.block2 ? w.block2 - b % w.block2 : 0;
  }
  // Moves on by `n` elements (n divides the block); true when a new block starts.
  bool advance(int64_t n) {
    left -= n;
    if (left > 0) return false;
    b++;
    left = w.block;
    if (w.block2 && --left2 == 0) {
      b2++;
      left2 = w.block2;
    }
    return true;
  }
  float absmax() const { return w.block2 ? w.qabsmax[b] * w.scale2[b2] + w.offset : w.absmax[b]; }
};

// The 16 values the codes of the cursor's block stand for.
inline void block_lut(const BlockCursor& c, float* lut) {
  if (c.w.kind == 3) {
    const float sc = half_bits_to_float(c.w.gscale[c.b]), z = c.w.zero[c.b];
    for (int q = 0; q < 16; q++) lut[q] = (q - z) * sc;
  } else {
    const float am = c.absmax();
    for (int q = 0; q < 16; q++) lut[q] = c.w.table[q] * am;
  }
}

// ---------------------------------------------------------------- scalar (and reference)

void dequant_row(const PackedWeight& w, int64_t o, float* out) {
  const int64_t cols = w.cols;
  switch (w.kind) {
    case 0:
      for (int64_t i = 0; i < cols; i++) out[i] = static_cast<float>(w.q8[o * cols + i]);
      return;
    case kDenseF32:
      std::memcpy(out, w.f32 + o * cols, cols * sizeof(float));
      return;
    case 5: {
      const uint16_t* r = w.half + o * cols;
      for (int64_t i = 0; i < cols; i++) {
        out[i] = w.bf16 ? bf16_bits_to_float(r[i]) : half_bits_to_float(r[i]);
      }
      return;
    }
    default: {
      const int64_t base = o * cols;
      BlockCursor cur(w, base);
      float lut[16];
      block_lut(cur, lut);
      for (int64_t i = 0; i < cols; i++) {
        const int64_t e = base + i;
        const uint8_t byte = w.packed[e / 2];
        out[i] = lut[(e % 2 == 0) ? (byte >> 4) : (byte & 0x0F)];
        if (cur.advance(1) && i + 1 < cols) block_lut(cur, lut);
      }
    }
  }
}

float dot_scalar(const float* a, const float* b, int64_t n) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    for (int k = 0; k < 8; k++) acc[k] += a[i + k] * b[i + k];
  }
  float s = 0;
  for (; i < n; i++) s += a[i] * b[i];
  return s + ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}

void rows_scalar(const PackedWeight& w, const float* x, int64_t m, float* y, int64_t o0,
                 int64_t o1) {
  std::vector<float> row(w.cols);
  for (int64_t o = o0; o < o1; o++) {
    dequant_row(w, o, row.data());
    const float s = w.kind == 0 ? w.rowscale[o] : 1.0f;
    for (int64_t r = 0; r < m; r++) y[r * w.rows + o] = dot_scalar(x + r * w.cols, row.data(), w.cols) * s;
  }
}

// ---------------------------------------------------------------- AVX-512

LAB_AVX512 inline __m512 lut512(const BlockCursor& c) {
  if (c.w.kind == 3) {
    const __m512 iota = _mm512_setr_ps(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const __m512 z = _mm512_set1_ps(static_cast<float>(c.w.zero[c.b]));
    return _mm512_mul_ps(_mm512_sub_ps(iota, z), _mm512_set1_ps(_cvtsh_ss(c.w.gscale[c.b])));
  }
  return _mm512_mul_ps(_mm512_loadu_ps(c.w.table), _mm512_set1_ps(c.absmax()));
}

}  // namespace

// Declared in qkernels.h: the integer path (qgemv_vnni.cpp) reads the same per-block values.
LAB_AVX512 void block_scales_avx512(const PackedWeight& w, int64_t b0, int64_t n, float* scale,
                                    float* zero) {
  int64_t k = 0;
  if (w.kind == 3) {
    for (; k + 16 <= n; k += 16) {
      const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w.gscale + b0 + k));
      _mm512_storeu_ps(scale + k, _mm512_cvtph_ps(h));
      const __m128i z = _mm_loadu_si128(reinterpret_cast<const __m128i*>(w.zero + b0 + k));
      _mm512_storeu_ps(zero + k, _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(z)));
    }
    for (; k < n; k++) {
      scale[k] = _cvtsh_ss(w.gscale[b0 + k]);
      zero[k] = w.zero[b0 + k];
    }
    return;
  }
  if (!w.block2) {
    std::memcpy(scale, w.absmax + b0, n * sizeof(float));
    return;
  }
  // Double-quantized: one division per row, then walk the groups of block2 blocks.
  int64_t b2 = b0 / w.block2, left2 = w.block2 - b0 % w.block2;
  for (; k < n; k++) {
    scale[k] = w.qabsmax[b0 + k] * w.scale2[b2] + w.offset;
    if (--left2 == 0) {
      b2++;
      left2 = w.block2;
    }
  }
}

namespace {

// The 16 values a block's codes stand for: (code - zero) · scale for int4, code book · absmax else.
LAB_AVX512 inline __m512 block_table(bool int4, __m512 codes, float scale, float zero) {
  if (int4) return _mm512_mul_ps(_mm512_sub_ps(codes, _mm512_set1_ps(zero)), _mm512_set1_ps(scale));
  return _mm512_mul_ps(codes, _mm512_set1_ps(scale));
}

// One chunk of 32 codes at column s: decode through `lut`, multiply-add into each row's sums.
template <int M>
LAB_AVX512 __attribute__((always_inline)) inline void chunk4_avx512(
    const uint8_t* row, const float* xs, int64_t cols, int64_t s, __m512 lut, __m512 (&acc)[M][2]) {
  _mm_prefetch(reinterpret_cast<const char*>(row + s / 2) + kPrefetchBytes, _MM_HINT_T0);
  const __m512i v = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(row + s / 2)));
  const __m512 hi = _mm512_permutexvar_ps(_mm512_srli_epi32(v, 4), lut);
  const __m512 lo = _mm512_permutexvar_ps(v, lut);  // uses the low 4 bits of each index
  for (int r = 0; r < M; r++) {
    acc[r][0] = _mm512_fmadd_ps(hi, _mm512_loadu_ps(xs + r * cols + s), acc[r][0]);
    acc[r][1] = _mm512_fmadd_ps(lo, _mm512_loadu_ps(xs + r * cols + s + 16), acc[r][1]);
  }
}

// 4-bit rows; `xs` holds the M input rows de-interleaved per 32. Each row is walked block by
// block (the first may start mid-block when blocks straddle rows), one table per block.
template <int M>
LAB_AVX512 void rows4_avx512(const PackedWeight& w, const float* xs, float* y, int64_t o0,
                             int64_t o1) {
  const int64_t cols = w.cols, block = w.block;
  const bool int4 = w.kind == 3;
  const __m512 codes = int4 ? _mm512_setr_ps(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15)
                            : _mm512_loadu_ps(w.table);
  std::vector<float> scale(cols / 32 + 2), zero(cols / 32 + 2);
  for (int64_t o = o0; o < o1; o++) {
    __m512 acc[M][2];
    for (int r = 0; r < M; r++) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
    const uint8_t* row = w.packed + o * cols / 2;
    const int64_t base = o * cols, b0 = base / block;
    const int64_t nblocks = (base + cols - 1) / block - b0 + 1;
    block_scales_avx512(w, b0, nblocks, scale.data(), zero.data());
    // One flat loop over the chunks with a countdown to the next block: measured faster than
    // nested block / chunk loops, whose inner loop runs only 1–4 times.
    int64_t k = 0, left = (b0 + 1) * block - base;
    __m512 lut = block_table(int4, codes, scale[0], zero[0]);
    for (int64_t s = 0; s < cols; s += 32) {
      chunk4_avx512<M>(row, xs, cols, s, lut, acc);
      left -= 32;
      if (left == 0 && s + 32 < cols) {
        left = block;
        k++;
        lut = block_table(int4, codes, scale[k], zero[k]);
      }
    }
    for (int r = 0; r < M; r++) {
      y[r * w.rows + o] = _mm512_reduce_add_ps(_mm512_add_ps(acc[r][0], acc[r][1]));
    }
  }
}

// int8 and half rows: widen 32 values, two FMAs per input row.
template <int M>
LAB_AVX512 void rows8_16_avx512(const PackedWeight& w, const float* x, float* y, int64_t o0,
                                int64_t o1) {
  const int64_t cols = w.cols;
  for (int64_t o = o0; o < o1; o++) {
    __m512 acc[M][2];
    for (int r = 0; r < M; r++) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
    for (int64_t s = 0; s < cols; s += 32) {
      __m512 a, b;
      if (w.kind == kDenseF32) {
        const float* f = w.f32 + o * cols + s;
        _mm_prefetch(reinterpret_cast<const char*>(f) + 2 * kPrefetchBytes, _MM_HINT_T0);
        _mm_prefetch(reinterpret_cast<const char*>(f) + 2 * kPrefetchBytes + 64, _MM_HINT_T0);
        a = _mm512_loadu_ps(f);
        b = _mm512_loadu_ps(f + 16);
      } else if (w.kind == 0) {
        const int8_t* q = w.q8 + o * cols + s;
        _mm_prefetch(reinterpret_cast<const char*>(q) + 2 * kPrefetchBytes, _MM_HINT_T0);
        a = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(q))));
        b = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(q + 16))));
      } else {
        const uint16_t* h = w.half + o * cols + s;
        _mm_prefetch(reinterpret_cast<const char*>(h) + 2 * kPrefetchBytes, _MM_HINT_T0);
        _mm_prefetch(reinterpret_cast<const char*>(h) + 2 * kPrefetchBytes + 64, _MM_HINT_T0);
        const __m256i h0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(h));
        const __m256i h1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(h + 16));
        if (w.bf16) {
          a = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h0), 16));
          b = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h1), 16));
        } else {
          a = _mm512_cvtph_ps(h0);
          b = _mm512_cvtph_ps(h1);
        }
      }
      for (int r = 0; r < M; r++) {
        acc[r][0] = _mm512_fmadd_ps(a, _mm512_loadu_ps(x + r * cols + s), acc[r][0]);
        acc[r][1] = _mm512_fmadd_ps(b, _mm512_loadu_ps(x + r * cols + s + 16), acc[r][1]);
      }
    }
    const float sc = w.kind == 0 ? w.rowscale[o] : 1.0f;
    for (int r = 0; r < M; r++) {
      y[r * w.rows + o] = _mm512_reduce_add_ps(_mm512_add_ps(acc[r][0], acc[r][1])) * sc;
    }
  }
}

// ---------------------------------------------------------------- AVX2

LAB_AVX2 inline float hsum256(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
  return _mm_cvtss_f32(s);
}

// 16-entry lookup: the low 3 bits pick within each half of the table, bit 3 picks the half.
LAB_AVX2 inline __m256 lookup16(__m256 lo_tab, __m256 hi_tab, __m256i idx) {
  const __m256 a = _mm256_permutevar8x32_ps(lo_tab, idx);
  const __m256 b = _mm256_permutevar8x32_ps(hi_tab, idx);
  return _mm256_blendv_ps(a, b, _mm256_castsi256_ps(_mm256_slli_epi32(idx, 28)));
}

// 4-bit rows; `xs` holds the M input rows de-interleaved per 16.
template <int M>
LAB_AVX2 void rows4_avx2(const PackedWeight& w, const float* xs, float* y, int64_t o0,
                         int64_t o1) {
  const int64_t cols = w.cols;
  alignas(32) float lut[16];
  for (int64_t o = o0; o < o1; o++) {
    __m256 acc[M][2];
    for (int r = 0; r < M; r++) acc[r][0] = acc[r][1] = _mm256_setzero_ps();
    const uint8_t* row = w.packed + o * cols / 2;
    const int64_t base = o * cols;
    BlockCursor cur(w, base);
    block_lut(cur, lut);
    __m256 lo_tab = _mm256_load_ps(lut), hi_tab = _mm256_load_ps(lut + 8);
    for (int64_t s = 0; s < cols; s += 16) {
      _mm_prefetch(reinterpret_cast<const char*>(row + s / 2) + kPrefetchBytes, _MM_HINT_T0);
      const __m256i v = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(row + s / 2)));
      const __m256 hi = lookup16(lo_tab, hi_tab, _mm256_srli_epi32(v, 4));
      const __m256 lo = lookup16(lo_tab, hi_tab, v);
      for (int r = 0; r < M; r++) {
        acc[r][0] = _mm256_fmadd_ps(hi, _mm256_loadu_ps(xs + r * cols + s), acc[r][0]);
        acc[r][1] = _mm256_fmadd_ps(lo, _mm256_loadu_ps(xs + r * cols + s + 8), acc[r][1]);
      }
      if (cur.advance(16) && s + 16 < cols) {
        block_lut(cur, lut);
        lo_tab = _mm256_load_ps(lut);
        hi_tab = _mm256_load_ps(lut + 8);
      }
    }
    for (int r = 0; r < M; r++) y[r * w.rows + o] = hsum256(_mm256_add_ps(acc[r][0], acc[r][1]));
  }
}

template <int M>
LAB_AVX2 void rows8_16_avx2(const PackedWeight& w, const float* x, float* y, int64_t o0,
                            int64_t o1) {
  const int64_t cols = w.cols;
  for (int64_t o = o0; o < o1; o++) {
    __m256 acc[M][2];
    for (int r = 0; r < M; r++) acc[r][0] = acc[r][1] = _mm256_setzero_ps();
    for (int64_t s = 0; s < cols; s += 16) {
      __m256 a, b;
      if (w.kind == kDenseF32) {
        const float* f = w.f32 + o * cols + s;
        _mm_prefetch(reinterpret_cast<const char*>(f) + 2 * kPrefetchBytes, _MM_HINT_T0);
        a = _mm256_loadu_ps(f);
        b = _mm256_loadu_ps(f + 8);
      } else if (w.kind == 0) {
        const int8_t* q = w.q8 + o * cols + s;
        _mm_prefetch(reinterpret_cast<const char*>(q) + 2 * kPrefetchBytes, _MM_HINT_T0);
        a = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(q))));
        b = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(q + 8))));
      } else {
        const uint16_t* h = w.half + o * cols + s;
        _mm_prefetch(reinterpret_cast<const char*>(h) + 2 * kPrefetchBytes, _MM_HINT_T0);
        const __m128i h0 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(h));
        const __m128i h1 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(h + 8));
        if (w.bf16) {
          a = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h0), 16));
          b = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h1), 16));
        } else {
          a = _mm256_cvtph_ps(h0);
          b = _mm256_cvtph_ps(h1);
        }
      }
      for (int r = 0; r < M; r++) {
        acc[r][0] = _mm256_fmadd_ps(a, _mm256_loadu_ps(x + r * cols + s), acc[r][0]);
        acc[r][1] = _mm256_fmadd_ps(b, _mm256_loadu_ps(x + r * cols + s + 8), acc[r][1]);
      }
    }
    const float sc = w.kind == 0 ? w.rowscale[o] : 1.0f;
    for (int r = 0; r < M; r++) y[r * w.rows + o] = hsum256(_mm256_add_ps(acc[r][0], acc[r][1])) * sc;
  }
}

// ---------------------------------------------------------------- dense rows (prefill tiles)

// Row o of the dense weight (int8 rows times their scale), 32 values per step.
LAB_AVX512 void dense_row_avx512(const PackedWeight& w, int64_t o, float* dst) {
  const int64_t cols = w.cols;
  if (w.kind == 0 || w.kind == 5) {
    const __m512 sc = _mm512_set1_ps(w.kind == 0 ? w.rowscale[o] : 1.0f);
    for (int64_t s = 0; s < cols; s += 16) {
      __m512 v;
      if (w.kind == 0) {
        const __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i*>(w.q8 + o * cols + s));
        v = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q)), sc);
      } else {
        const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w.half + o * cols + s));
        v = w.bf16 ? _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16))
                   : _mm512_cvtph_ps(h);
      }
      _mm512_storeu_ps(dst + s, v);
    }
    return;
  }
  // Decoded high nibbles are the even elements, low nibbles the odd: interleave them back.
  const __m512i even = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
  const __m512i odd = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
  const uint8_t* row = w.packed + o * cols / 2;
  BlockCursor cur(w, o * cols);
  __m512 lut = lut512(cur);
  for (int64_t s = 0; s < cols; s += 32) {
    const __m512i v = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(row + s / 2)));
    const __m512 hi = _mm512_permutexvar_ps(_mm512_srli_epi32(v, 4), lut);
    const __m512 lo = _mm512_permutexvar_ps(v, lut);
    _mm512_storeu_ps(dst + s, _mm512_permutex2var_ps(hi, even, lo));
    _mm512_storeu_ps(dst + s + 16, _mm512_permutex2var_ps(hi, odd, lo));
    if (cur.advance(32) && s + 32 < cols) lut = lut512(cur);
  }
}

LAB_AVX2 void dense_row_avx2(const PackedWeight& w, int64_t o, float* dst) {
  const int64_t cols = w.cols;
  if (w.kind == 0 || w.kind == 5) {
    const __m256 sc = _mm256_set1_ps(w.kind == 0 ? w.rowscale[o] : 1.0f);
    for (int64_t s = 0; s < cols; s += 8) {
      __m256 v;
      if (w.kind == 0) {
        const __m128i q = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(w.q8 + o * cols + s));
        v = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q)), sc);
      } else {
        const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(w.half + o * cols + s));
        v = w.bf16 ? _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16))
                   : _mm256_cvtph_ps(h);
      }
      _mm256_storeu_ps(dst + s, v);
    }
    return;
  }
  alignas(32) float lut[16];
  const uint8_t* row = w.packed + o * cols / 2;
  BlockCursor cur(w, o * cols);
  block_lut(cur, lut);
  __m256 lo_tab = _mm256_load_ps(lut), hi_tab = _mm256_load_ps(lut + 8);
  for (int64_t s = 0; s < cols; s += 16) {
    const __m256i v = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(row + s / 2)));
    const __m256 hi = lookup16(lo_tab, hi_tab, _mm256_srli_epi32(v, 4));
    const __m256 lo = lookup16(lo_tab, hi_tab, v);
    const __m256 a = _mm256_unpacklo_ps(hi, lo), b = _mm256_unpackhi_ps(hi, lo);
    _mm256_storeu_ps(dst + s, _mm256_permute2f128_ps(a, b, 0x20));
    _mm256_storeu_ps(dst + s + 8, _mm256_permute2f128_ps(a, b, 0x31));
    if (cur.advance(16) && s + 16 < cols) {
      block_lut(cur, lut);
      lo_tab = _mm256_load_ps(lut);
      hi_tab = _mm256_load_ps(lut + 8);
    }
  }
}

// ---------------------------------------------------------------- dispatch

// Input rows with each chunk of `chunk` values split into its even, then its odd elements.
std::vector<float> deinterleave(const float* x, int64_t m, int64_t cols, int64_t chunk) {
  std::vector<float> out(m * cols);
  const int64_t half = chunk / 2;
  for (int64_t r = 0; r < m; r++) {
    for (int64_t s = 0; s < cols; s += chunk) {
      const float* src = x + r * cols + s;
      float* dst = out.data() + r * cols + s;
      for (int64_t j = 0; j < half; j++) {
        dst[j] = src[2 * j];
        dst[half + j] = src[2 * j + 1];
      }
    }
  }
  return out;
}

// Row o of the dense weight (int8 rows times their scale).
void dequant_scaled_row(const PackedWeight& w, int64_t o, float* dst) {
  const Isa isa = gemv_supported(w) ? active_isa() : Isa::Scalar;
  if (isa >= Isa::Avx512) return dense_row_avx512(w, o, dst);
  if (isa == Isa::Avx2) return dense_row_avx2(w, o, dst);
  dequant_row(w, o, dst);
  if (w.kind == 0) {
    const float s = w.rowscale[o];
    for (int64_t i = 0; i < w.cols; i++) dst[i] *= s;
  }
}

using RowsFn = void (*)(const PackedWeight&, const float*, float*, int64_t, int64_t);

template <template <int> class K>
RowsFn pick(int64_t m) {
  switch (m) {
    case 1: return K<1>::f;
    case 2: return K<2>::f;
    case 3: return K<3>::f;
    case 4: return K<4>::f;
    case 5: return K<5>::f;
    case 6: return K<6>::f;
    case 7: return K<7>::f;
    default: return K<8>::f;
  }
}
template <int M> struct R4x512 { static constexpr RowsFn f = rows4_avx512<M>; };
template <int M> struct R8x512 { static constexpr RowsFn f = rows8_16_avx512<M>; };
template <int M> struct R4x2 { static constexpr RowsFn f = rows4_avx2<M>; };
template <int M> struct R8x2 { static constexpr RowsFn f = rows8_16_avx2<M>; };

}  // namespace

Isa active_isa() { return g_isa.load(std::memory_order_relaxed); }

Isa set_isa(int wanted) {
  const Isa best = cpu_best();
  g_isa.store(std::min(static_cast<Isa>(std::max(0, std::min(3, wanted))), best));
  return active_isa();
}

bool gemv_supported(const PackedWeight& w) {
  if (w.cols % 32 != 0) return false;
  if (w.kind == 0 || w.kind == 5 || w.kind == kDenseF32) return true;
  return (w.kind == 1 || w.kind == 2 || w.kind == 3) && w.block % 32 == 0;
}

void gemv(const PackedWeight& w, const float* x, int64_t m, float* y) {
  if (m < 1 || m > 8) throw std::invalid_argument("gemv takes 1 to 8 input rows");
  const Isa isa = gemv_supported(w) ? g_isa.load(std::memory_order_relaxed) : Isa::Scalar;
  if (isa == Isa::Vnni && gemv_vnni_supported(w)) return gemv_vnni(w, x, m, y);
  const bool four_bit = w.kind == 1 || w.kind == 2 || w.kind == 3;
  std::vector<float> xs;
  const float* xin = x;
  if (four_bit && isa != Isa::Scalar) {
    xs = deinterleave(x, m, w.cols, isa >= Isa::Avx512 ? 32 : 16);
    xin = xs.data();
  }
  RowsFn fn = nullptr;
  if (isa >= Isa::Avx512) fn = four_bit ? pick<R4x512>(m) : pick<R8x512>(m);
  if (isa == Isa::Avx2) fn = four_bit ? pick<R4x2>(m) : pick<R8x2>(m);
  // Enough rows per task that a thread streams a long run of memory.
  at::parallel_for(0, w.rows, 64, [&](int64_t o0, int64_t o1) {
    if (fn) fn(w, xin, y, o0, o1);
    else rows_scalar(w, x, m, y, o0, o1);
  });
}

void dequantize_rows(const PackedWeight& w, int64_t o0, int64_t o1, float* out) {
  at::parallel_for(o0, o1, 16, [&](int64_t a, int64_t b) {
    for (int64_t o = a; o < b; o++) dequant_scaled_row(w, o, out + (o - o0) * w.cols);
  });
}

void gather_rows(const PackedWeight& w, const int64_t* ids, int64_t n, float* out) {
  at::parallel_for(0, n, 16, [&](int64_t a, int64_t b) {
    for (int64_t i = a; i < b; i++) dequant_scaled_row(w, ids[i], out + i * w.cols);
  });
}

}  // namespace lab
