// Packed-weight matrix-vector kernels (qgemv.cpp): the decode path of quantized layers.
#pragma once
#include <cstdint>

namespace lab {

// One [rows, cols] weight in a packed format, read in place (nothing is converted per call).
struct PackedWeight {
  int kind = -1;  // quant.cpp's codes: 0 int8, 1 nf4, 2 fp4, 3 int4, 5 half; kDenseF32 float
  int64_t rows = 0, cols = 0;
  int64_t block = 0;   // nf4/fp4 block, int4 group
  int64_t block2 = 0;  // double-quantization block of the absmax values (0 = plain f32 absmax)
  const uint8_t* packed = nullptr;  // 4-bit codes, high nibble first
  const float* table = nullptr;     // nf4/fp4 code book (16 values)
  const float* absmax = nullptr;    // nf4/fp4 per block, when block2 == 0
  const int8_t* qabsmax = nullptr;  // nf4/fp4 per block, double-quantized
  const float* scale2 = nullptr;    //   … its scales, one per block2 blocks
  float offset = 0;                 //   … and offset
  const uint16_t* gscale = nullptr;  // int4 per-group scale (IEEE half bits)
  const uint8_t* zero = nullptr;     // int4 per-group zero point
  const int8_t* q8 = nullptr;        // int8 values
  const float* rowscale = nullptr;   // int8 per-row scale
  const uint16_t* half = nullptr;    // fp16 / bf16 bits
  bool bf16 = false;
  const float* f32 = nullptr;        // a dense float weight (kDenseF32)
};

// The kind of a dense float32 weight: batched decode (2–8 rows) streams it through the same
// kernels, since BLAS's GEMM packs the whole weight on every call and so reads it ~3 times.
constexpr int kDenseF32 = 6;

// Instruction sets the kernels dispatch between (chosen at run time). Vnni adds the integer
// 4-bit decode path (qgemv_vnni.cpp) to Avx512's float kernels.
enum class Isa { Scalar = 0, Avx2 = 1, Avx512 = 2, Vnni = 3 };

// Bytes ahead of the read position to prefetch. One core's stream is latency-bound: the
// hardware prefetcher alone keeps too few lines in flight for loops that consume a few
// bytes per cycle. Measured on a 4-bit [8192, 2048] weight streamed from memory, one core:
// 3.3 GB/s without, 4.8 at 512 bytes ahead, 6.6 at 1 KiB, 7.2–7.6 at 2–4 KiB; with both cores,
// 4 KiB was a few percent ahead of 2 KiB.
constexpr int kPrefetchBytes = 4096;

// The set in use: the best the CPU has, unless LAB_KERNELS (scalar|avx2|avx512|vnni) or
// set_isa lowers it.
Isa active_isa();
// Forces an instruction set (clamped to what the CPU has); returns the one now in use.
Isa set_isa(int wanted);

// Whether `w` has a vectorised decode path (widths divisible by 32, blocks by 32).
bool gemv_supported(const PackedWeight& w);

// y[r * rows + o] = Σ_i x[r * cols + i] · W[o, i] for r < m (≤ 8), every output row o,
// threaded over output rows. Each packed byte is read once per call.
void gemv(const PackedWeight& w, const float* x, int64_t m, float* y);

// Whether `w` has the integer decode path: int4 / nf4 / fp4 with groups (blocks) of 32, 64
// or 128 and a width that is a multiple of 128.
bool gemv_vnni_supported(const PackedWeight& w);

// gemv for such weights on a CPU with AVX-512 VNNI: activations rounded to int8 per 128 inputs.
void gemv_vnni(const PackedWeight& w, const float* x, int64_t m, float* y);

// The scale (and, for int4, the zero point) of blocks [b0, b0 + n) as floats, converted 16 at a
// time so the kernels' inner loops only broadcast them. AVX-512 code: call it only on a CPU that
// has AVX-512 (the Avx512 and Vnni paths).
void block_scales_avx512(const PackedWeight& w, int64_t b0, int64_t n, float* scale, float* zero);

// Dequantizes rows [o0, o1) into out ([o1 - o0, cols] floats).
void dequantize_rows(const PackedWeight& w, int64_t o0, int64_t o1, float* out);

// Dequantizes the listed rows (each in [0, rows), checked by the caller) into out
// ([n, cols] floats): an embedding lookup that reads only the rows it needs.
void gather_rows(const PackedWeight& w, const int64_t* ids, int64_t n, float* out);

}  // namespace lab
