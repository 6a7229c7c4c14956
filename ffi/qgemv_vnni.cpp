// Integer decode path for 4-bit weights (int4, nf4, fp4) on CPUs with AVX-512 VNNI: the
// activations are quantized to int8 (one scale per 128 inputs) and multiplied with the codes
// (int4) or their byte-table values (nf4/fp4) by `vpdpbusd`, 64 multiply-adds per instruction.
//
// Why a second path: the float-table kernel (qgemv.cpp) spends ~3 shuffle and ~3 arithmetic
// vector ops per 32 weights, so one core decodes ~8 GB/s of 4-bit weights from cache — about
// what it can pull from memory, leaving no slack to hide memory stalls. Here 128 weights cost
// ~8 ops. The price is the activation rounding: each input is rounded to 1/254 of its chunk's
// largest magnitude, which docs/quantization.md measures against the scheme's own error.
// `LAB_KERNELS=avx512` keeps the exact float-table path.
//
// Layout: per input row, each chunk of 128 values is stored as its 64 even elements, then its
// 64 odd ones (the high and low nibbles of the chunk's 64 packed bytes), so one 64-byte load of
// codes meets two 64-byte loads of activations. Lane j of a product covers elements 8j..8j+7.
#include "qkernels.h"

#include <ATen/Parallel.h>
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

namespace lab {
namespace {

#define LAB_VNNI \
  __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,fma,f16c")))

constexpr int64_t kChunk = 128;

// The activation rows, quantized (see the layout above).
struct QuantizedRows {
  int64_t cols = 0, group = 0;
  std::vector<int8_t> q;      // [m, cols], chunks de-interleaved
  std::vector<float> scale;   // [m, cols / 128]: the value of one step of q
  std::vector<float> gsum;    // [m, cols / group]: Σ of the dequantized inputs of each group
  std::vector<float> gscale;  // [m, cols / group]: the scale of each group's chunk
};

// Quantizes one chunk: q = round-to-nearest-even(x · 127 / max|x|), stored de-interleaved;
// gsum[g] = scale · Σ q over the chunk's group g. The scale and its reciprocal are rounded
// once from double so that references can repeat them exactly.
LAB_VNNI void quantize_chunk(const float* x, int64_t group, int8_t* q, float* scale,
                             float* gsum) {
  __m512 v[8];
  __m512 amax = _mm512_setzero_ps();
  __mmask16 bad = 0;  // NaN or infinity: max_ps would drop a NaN, and int8 cannot hold either
  for (int t = 0; t < 8; t++) {
    v[t] = _mm512_loadu_ps(x + 16 * t);
    amax = _mm512_max_ps(amax, _mm512_abs_ps(v[t]));
    bad |= _mm512_fpclass_ps_mask(v[t], 0x99);
  }
  const float m = _mm512_reduce_max_ps(amax);
  const __m512 inv = _mm512_set1_ps(m > 0 && !bad ? static_cast<float>(127.0 / m) : 0.0f);
  // A non-finite input makes the chunk's scale NaN, so every output it touches is NaN, as the
  // float path's would be.
  *scale = bad ? std::numeric_limits<float>::quiet_NaN() : static_cast<float>(m / 127.0);
  const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
  __m512i sums[4];  // per 32 inputs: evens 16t..16t+15 plus odds 16t..16t+15
  for (int t = 0; t < 4; t++) {
    const __m512 a = _mm512_mul_ps(v[2 * t], inv), b = _mm512_mul_ps(v[2 * t + 1], inv);
    const __m512i qe = _mm512_cvtps_epi32(_mm512_permutex2var_ps(a, even, b));
    const __m512i qo = _mm512_cvtps_epi32(_mm512_permutex2var_ps(a, odd, b));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(q + 16 * t), _mm512_cvtsepi32_epi8(qe));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(q + kChunk / 2 + 16 * t), _mm512_cvtsepi32_epi8(qo));
    sums[t] = _mm512_add_epi32(qe, qo);
  }
  const int per = static_cast<int>(group / 32);
  for (int g = 0; g < 4 / per; g++) {
    __m512i s = sums[g * per];
    for (int k = 1; k < per; k++) s = _mm512_add_epi32(s, sums[g * per + k]);
    gsum[g] = static_cast<float>(_mm512_reduce_add_epi32(s)) * *scale;
  }
}

QuantizedRows quantize_rows(const float* x, int64_t m, int64_t cols, int64_t group) {
  QuantizedRows qx;
  qx.cols = cols;
  qx.group = group;
  const int64_t chunks = cols / kChunk, groups = cols / group;
  qx.q.resize(m * cols);
  qx.scale.resize(m * chunks);
  qx.gsum.resize(m * groups);
  qx.gscale.resize(m * groups);
  for (int64_t r = 0; r < m; r++) {
    for (int64_t c = 0; c < chunks; c++) {
      quantize_chunk(x + r * cols + c * kChunk, group, qx.q.data() + r * cols + c * kChunk,
                     &qx.scale[r * chunks + c], &qx.gsum[r * groups + c * (kChunk / group)]);
      for (int64_t g = 0; g < kChunk / group; g++) {
        qx.gscale[r * groups + c * (kChunk / group) + g] = qx.scale[r * chunks + c];
      }
    }
  }
  return qx;
}

// The unsigned bytes nf4 / fp4 codes stand for: round(127 · code book) + 128, rounded half away
// from zero. The integer path multiplies these, so each code-book value moves by at most
// 1/254 of the block's absmax (docs/quantization.md compares it with the format's own error).
struct ByteTable {
  uint8_t v[16];
  explicit ByteTable(const float* table) {
    for (int q = 0; q < 16; q++) v[q] = static_cast<uint8_t>(std::lround(table[q] * 127.0f) + 128);
  }
};

// One output row's group scales and zero points (padded by 16 so the kernel may load 16 from
// any group of the row). int4: (code - zero) · scale, as the float kernels read them. nf4/fp4:
// the byte table's (byte - 128) · absmax / 127.
LAB_VNNI void group_params(const PackedWeight& w, int64_t g0, int64_t n, float* scale,
                           float* zero) {
  block_scales_avx512(w, g0, n, scale, zero);
  if (w.kind == 3) return;
  for (int64_t k = 0; k < n; k++) {
    scale[k] *= 1.0f / 127;
    zero[k] = 128.0f;
  }
}

// Σ_g scale[g] · zero[g] · gsum[g]: the zero points' share of a row's dot product.
LAB_VNNI float zero_term(const float* scale, const float* zero, const float* gsum, int64_t n) {
  __m512 acc = _mm512_setzero_ps();
  int64_t g = 0;
  for (; g + 16 <= n; g += 16) {
    const __m512 sz = _mm512_mul_ps(_mm512_loadu_ps(scale + g), _mm512_loadu_ps(zero + g));
    acc = _mm512_fmadd_ps(sz, _mm512_loadu_ps(gsum + g), acc);
  }
  float s = _mm512_reduce_add_ps(acc);
  for (; g < n; g++) s += scale[g] * zero[g] * gsum[g];
  return s;
}

template <int M>
LAB_VNNI void rows_vnni(const PackedWeight& w, const QuantizedRows& qx, float* y, int64_t o0,
                        int64_t o1) {
  const int64_t cols = w.cols, group = w.block, groups = cols / group, chunks = cols / kChunk;
  const int64_t per_chunk = kChunk / group;
  // Lane j (elements 8j..8j+7 of a chunk) belongs to the chunk's group j / (group / 8).
  const int shift = group == 32 ? 2 : group == 64 ? 3 : 4;
  const __m512i lane_group = _mm512_srli_epi32(
      _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15), shift);
  const __m512i nibble = _mm512_set1_epi8(0x0F);
  const bool table = w.kind != 3;
  __m512i bytes = _mm512_setzero_si512();  // nf4/fp4: the byte table in each 16-byte lane
  if (table) {
    const ByteTable t(w.table);
    bytes = _mm512_broadcast_i32x4(_mm_loadu_si128(reinterpret_cast<const __m128i*>(t.v)));
  }
  const int64_t stride = groups + 16;  // padded: the kernel loads 16 scales from any group
  std::vector<float> scale(stride), zero(stride), xscale(M * stride);
  for (int64_t o = o0; o < o1; o++) {
    group_params(w, o * groups, groups, scale.data(), zero.data());
    // Each group's weight scale times its chunk's activation scale, per input row.
    for (int r = 0; r < M; r++) {
      const float* gs = qx.gscale.data() + r * groups;
      int64_t g = 0;
      for (; g + 16 <= groups; g += 16) {
        _mm512_storeu_ps(&xscale[r * stride + g],
                         _mm512_mul_ps(_mm512_loadu_ps(&scale[g]), _mm512_loadu_ps(gs + g)));
      }
      for (; g < groups; g++) xscale[r * stride + g] = scale[g] * gs[g];
    }
    const uint8_t* row = w.packed + o * cols / 2;
    __m512 acc[M];
    for (int r = 0; r < M; r++) acc[r] = _mm512_setzero_ps();
    for (int64_t c = 0; c < chunks; c++) {
      const uint8_t* p = row + c * kChunk / 2;
      _mm_prefetch(reinterpret_cast<const char*>(p) + kPrefetchBytes, _MM_HINT_T0);
      const __m512i v = _mm512_loadu_si512(p);
      __m512i lo = _mm512_and_si512(v, nibble);
      __m512i hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), nibble);
      if (table) {
        lo = _mm512_shuffle_epi8(bytes, lo);
        hi = _mm512_shuffle_epi8(bytes, hi);
      }
      for (int r = 0; r < M; r++) {
        const int8_t* xq = qx.q.data() + r * cols + c * kChunk;
        __m512i dot = _mm512_dpbusd_epi32(_mm512_setzero_si512(), hi, _mm512_loadu_si512(xq));
        dot = _mm512_dpbusd_epi32(dot, lo, _mm512_loadu_si512(xq + kChunk / 2));
        const __m512 sv = _mm512_permutexvar_ps(
            lane_group, _mm512_loadu_ps(&xscale[r * stride + c * per_chunk]));
        acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), sv, acc[r]);
      }
    }
    for (int r = 0; r < M; r++) {
      const float zt = zero_term(scale.data(), zero.data(), qx.gsum.data() + r * groups, groups);
      y[r * w.rows + o] = _mm512_reduce_add_ps(acc[r]) - zt;
    }
  }
}

using VnniFn = void (*)(const PackedWeight&, const QuantizedRows&, float*, int64_t, int64_t);

VnniFn pick_vnni(int64_t m) {
  switch (m) {
    case 1: return rows_vnni<1>;
    case 2: return rows_vnni<2>;
    case 3: return rows_vnni<3>;
    case 4: return rows_vnni<4>;
    case 5: return rows_vnni<5>;
    case 6: return rows_vnni<6>;
    case 7: return rows_vnni<7>;
    default: return rows_vnni<8>;
  }
}

}  // namespace

bool gemv_vnni_supported(const PackedWeight& w) {
  return (w.kind == 1 || w.kind == 2 || w.kind == 3) && w.cols % kChunk == 0 &&
         (w.block == 32 || w.block == 64 || w.block == 128);
}

void gemv_vnni(const PackedWeight& w, const float* x, int64_t m, float* y) {
  const QuantizedRows qx = quantize_rows(x, m, w.cols, w.block);
  const VnniFn fn = pick_vnni(m);
  at::parallel_for(0, w.rows, 64, [&](int64_t o0, int64_t o1) { fn(w, qx, y, o0, o1); });
}

}  // namespace lab
