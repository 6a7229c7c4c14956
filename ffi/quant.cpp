// Quantized-weight kernels: quantize, dequantize, and linear layers that
// dequantize one layer's weight in a single native pass right before the
// matrix product (no dequantized copy of the model is kept).
//
// Formats (kind):
//   0 int8  symmetric per output channel: [q int8 [out,in], scale f32 [out]]
//   1 nf4   4-bit NormalFloat, absmax per block:        see `Blockwise`
//   2 fp4   4-bit e2m1, absmax per block:               see `Blockwise`
//   3 int4  asymmetric per group of a row: [packed u8 [out*in/2], scale f16 [out,in/g],
//           zero u8 [out,in/g]]
//   4 fp8   e4m3 per output channel (libtorch >= 2.1): [q f8 [out,in], scale f32 [out]]
//   5 half  a float16 or bfloat16 weight widened per call: [w [out,in]]
// Blockwise 4-bit tensors: [packed u8 [ceil(n/2)], absmax f32 [nb]] or, with double
// quantization, [packed, qabsmax i8 [nb], scale2 f32 [ceil(nb/block2)], offset f32 [1]].
// Packing: element 2i in the high nibble of byte i, element 2i+1 in the low nibble.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include "qkernels.h"
#include "quant_ops.h"
#include "shim_internal.h"
#include <torch/csrc/autograd/custom_function.h>
#include <torch/version.h>

#include <algorithm>
#if defined(__AVX2__) || defined(__F16C__)
#include <immintrin.h>
#endif
#include <cmath>
#include <string>
#include <vector>


namespace {

const float NF4[16] = {-1.0f,
                       -0.6961928009986877f,
                       -0.5250730514526367f,
                       -0.39491748809814453f,
                       -0.28444138169288635f,
                       -0.18477343022823334f,
                       -0.09105003625154495f,
                       0.0f,
                       0.07958029955625534f,
                       0.16093020141124725f,
                       0.24611230194568634f,
                       0.33791524171829224f,
                       0.44070982933044434f,
                       0.5626170039176941f,
                       0.7229568362236023f,
                       1.0f};

// e2m1 magnitudes {0, .5, 1, 1.5, 2, 3, 4, 6} scaled to [-1, 1]; codes 8..15 are negative.
const float FP4[16] = {0.0f,         0.5f / 6,  1.0f / 6,  1.5f / 6,  2.0f / 6,  3.0f / 6,
                       4.0f / 6,     1.0f,      -0.0f,     -0.5f / 6, -1.0f / 6, -1.5f / 6,
                       -2.0f / 6,    -3.0f / 6, -4.0f / 6, -1.0f};

const float* code_table(int kind) {
  if (kind == 1) return NF4;
  if (kind == 2) return FP4;
  throw std::invalid_argument("not a 4-bit code-book format: " + std::to_string(kind));
}

// Nearest code index for a value in [-1, 1]: a branch-free binary search over the midpoints
// of the sorted code book (4 comparisons instead of 16 distances: quantizing an 8B-parameter
// model is billions of these). A value exactly on a midpoint takes the lower code.
struct Nearest {
  float mid[15];
  uint8_t index[16];
  explicit Nearest(const float* table) {
    std::vector<std::pair<float, uint8_t>> v;
    for (int i = 0; i < 16; i++) v.push_back({table[i], static_cast<uint8_t>(i)});
    std::stable_sort(v.begin(), v.end(), [](auto& a, auto& b) { return a.first < b.first; });
    for (int i = 0; i < 16; i++) index[i] = v[i].second;
    // Equal values (fp4's +0 and -0) keep the first code, so zero always packs as code 0.
    for (int i = 1; i < 16; i++) {
      if (v[i].first == v[i - 1].first) index[i] = index[i - 1];
    }
    for (int i = 0; i < 15; i++) mid[i] = 0.5f * (v[i].first + v[i + 1].first);
  }
  uint8_t operator()(float x) const {
    int i = x > mid[7] ? 8 : 0;
    i += x > mid[i + 3] ? 4 : 0;
    i += x > mid[i + 1] ? 2 : 0;
    i += x > mid[i] ? 1 : 0;
    return index[i];
  }
};

using lt::T;
using lt::wrap;

void expect(const at::Tensor& t, at::ScalarType st, const char* what) {
  if (t.scalar_type() != st) {
    throw std::invalid_argument(std::string(what) + " has dtype " +
                                std::string(c10::toString(t.scalar_type())) + ", expected " +
                                std::string(c10::toString(st)));
  }
}

// ---------------------------------------------------------------- blockwise 4-bit

std::vector<at::Tensor> quantize_blockwise(const at::Tensor& w, int kind, int64_t block,
                                           int64_t block2) {
  if (block <= 0 || block % 2) throw std::invalid_argument("block size must be a positive even number");
  at::Tensor wf = w.detach().to(at::kFloat).contiguous().cpu();
  const int64_t n = wf.numel();
  const int64_t nb = (n + block - 1) / block;
  at::Tensor packed = at::zeros({(n + 1) / 2}, at::kByte);
  at::Tensor absmax = at::empty({nb}, at::kFloat);
  const float* src = wf.data_ptr<float>();
  uint8_t* dst = packed.data_ptr<uint8_t>();
  float* am = absmax.data_ptr<float>();
  Nearest nearest(code_table(kind));
  at::parallel_for(0, nb, 16, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; b++) {
      const int64_t s = b * block, e = std::min(n, s + block);
      float m = 0;
      for (int64_t i = s; i < e; i++) m = std::max(m, std::fabs(src[i]));
      am[b] = m;
      const float inv = m > 0 ? 1.0f / m : 0.0f;
      for (int64_t i = s; i < e; i++) {
        uint8_t q = nearest(src[i] * inv);
        uint8_t& byte = dst[i / 2];
        byte = (i % 2 == 0) ? static_cast<uint8_t>((byte & 0x0F) | (q << 4))
                            : static_cast<uint8_t>((byte & 0xF0) | q);
      }
    }
  });
  if (block2 <= 0) return {packed, absmax};
  // Double quantization: absmax values, minus their mean, as int8 in blocks of block2.
  const float offset = absmax.mean().item<float>();
  const int64_t nb2 = (nb + block2 - 1) / block2;
  at::Tensor q = at::empty({nb}, at::kChar);
  at::Tensor scale2 = at::empty({nb2}, at::kFloat);
  int8_t* qp = q.data_ptr<int8_t>();
  float* s2 = scale2.data_ptr<float>();
  for (int64_t b = 0; b < nb2; b++) {
    const int64_t s = b * block2, e = std::min(nb, s + block2);
    float m = 0;
    for (int64_t i = s; i < e; i++) m = std::max(m, std::fabs(am[i] - offset));
    s2[b] = m > 0 ? m / 127.0f : 1.0f;
    for (int64_t i = s; i < e; i++) {
      float v = std::nearbyint((am[i] - offset) / s2[b]);
      qp[i] = static_cast<int8_t>(std::max(-127.0f, std::min(127.0f, v)));
    }
  }
  return {packed, q, scale2, at::full({1}, offset, at::kFloat)};
}

// absmax per block, from f32 storage or from its double-quantized form.
at::Tensor block_absmax(const std::vector<at::Tensor>& t, int64_t block2) {
  if (t.size() == 2) {
    expect(t[1], at::kFloat, "absmax");
    return t[1].contiguous();
  }
  if (t.size() != 4) throw std::invalid_argument("blockwise weights need 2 or 4 tensors");
  expect(t[1], at::kChar, "quantized absmax");
  expect(t[2], at::kFloat, "absmax scale");
  const int64_t nb = t[1].numel();
  at::Tensor am = at::empty({nb}, at::kFloat);
  const int8_t* q = t[1].contiguous().data_ptr<int8_t>();
  at::Tensor s2c = t[2].contiguous();
  const float* s2 = s2c.data_ptr<float>();
  const float offset = t[3].item<float>();
  float* out = am.data_ptr<float>();
  for (int64_t i = 0; i < nb; i++) out[i] = q[i] * s2[i / block2] + offset;
  return am;
}

at::Tensor dequantize_blockwise(const std::vector<at::Tensor>& t, int kind, int64_t n,
                                int64_t block, int64_t block2) {
  const at::Tensor& packed = t[0];
  expect(packed, at::kByte, "packed weights");
  if (packed.numel() * 2 < n) throw std::invalid_argument("packed weights are too short");
  at::Tensor am = block_absmax(t, block2);
  if (am.numel() * block < n) throw std::invalid_argument("absmax has too few blocks");
  at::Tensor out = at::empty({n}, at::kFloat);
  const uint8_t* src = packed.contiguous().data_ptr<uint8_t>();
  const float* amp = am.data_ptr<float>();
  float* dst = out.data_ptr<float>();
  const float* table = code_table(kind);
  at::parallel_for(0, (n + 1) / 2, 4096, [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; p++) {
      const uint8_t byte = src[p];
      const int64_t i = 2 * p;
      dst[i] = table[byte >> 4] * amp[i / block];
      if (i + 1 < n) dst[i + 1] = table[byte & 0x0F] * amp[(i + 1) / block];
    }
  });
  return out;
}

// ---------------------------------------------------------------- int4 group-wise

std::vector<at::Tensor> quantize_int4(const at::Tensor& w, int64_t group) {
  if (w.dim() != 2) throw std::invalid_argument("int4 quantization needs a 2-D weight");
  const int64_t rows = w.size(0), cols = w.size(1);
  if (group <= 0 || cols % group || group % 2) {
    throw std::invalid_argument("int4: in_features " + std::to_string(cols) +
                                " is not a multiple of the group size " + std::to_string(group));
  }
  at::Tensor wf = w.detach().to(at::kFloat).contiguous().cpu();
  const int64_t ng = cols / group;
  at::Tensor packed = at::empty({rows * cols / 2}, at::kByte);
  at::Tensor scale = at::empty({rows, ng}, at::kHalf);
  at::Tensor zero = at::empty({rows, ng}, at::kByte);
  const float* src = wf.data_ptr<float>();
  uint8_t* dst = packed.data_ptr<uint8_t>();
  at::Half* sc = scale.data_ptr<at::Half>();
  uint8_t* zp = zero.data_ptr<uint8_t>();
  at::parallel_for(0, rows * ng, 16, [&](int64_t g0, int64_t g1) {
    for (int64_t g = g0; g < g1; g++) {
      const float* x = src + g * group;  // groups are contiguous along a row
      float mn = x[0], mx = x[0];
      for (int64_t i = 1; i < group; i++) {
        mn = std::min(mn, x[i]);
        mx = std::max(mx, x[i]);
      }
      mn = std::min(mn, 0.0f);
      mx = std::max(mx, 0.0f);
      // Quantize with the scale as stored (float16), so dequantization matches.
      const float s = static_cast<float>(at::Half(mx > mn ? (mx - mn) / 15.0f : 1.0f));
      const float z = std::max(0.0f, std::min(15.0f, std::nearbyint(-mn / s)));
      sc[g] = at::Half(s);
      zp[g] = static_cast<uint8_t>(z);
      for (int64_t i = 0; i < group; i += 2) {
        auto q = [&](float v) {
          return static_cast<uint8_t>(std::max(0.0f, std::min(15.0f, std::nearbyint(v / s) + z)));
        };
        dst[(g * group + i) / 2] = static_cast<uint8_t>((q(x[i]) << 4) | q(x[i + 1]));
      }
    }
  });
  return {packed, scale, zero};
}

at::Tensor dequantize_int4(const std::vector<at::Tensor>& t, int64_t rows, int64_t cols,
                           int64_t group) {
  if (t.size() != 3) throw std::invalid_argument("int4 weights need 3 tensors");
  expect(t[0], at::kByte, "packed weights");
  expect(t[1], at::kHalf, "int4 scales");
  expect(t[2], at::kByte, "int4 zero points");
  if (cols % group) throw std::invalid_argument("int4: in_features not a multiple of group");
  if (t[0].numel() * 2 != rows * cols) throw std::invalid_argument("int4: packed size mismatch");
  at::Tensor out = at::empty({rows, cols}, at::kFloat);
  const uint8_t* src = t[0].contiguous().data_ptr<uint8_t>();
  at::Tensor scf = t[1].to(at::kFloat).contiguous();
  const float* sc = scf.data_ptr<float>();
  const uint8_t* zp = t[2].contiguous().data_ptr<uint8_t>();
  float* dst = out.data_ptr<float>();
  const int64_t ng = rows * cols / group;
  at::parallel_for(0, ng, 64, [&](int64_t g0, int64_t g1) {
    for (int64_t g = g0; g < g1; g++) {
      const float s = sc[g], z = zp[g];
      const int64_t base = g * group;
      for (int64_t i = 0; i < group; i += 2) {
        const uint8_t byte = src[(base + i) / 2];
        dst[base + i] = ((byte >> 4) - z) * s;
        dst[base + i + 1] = ((byte & 0x0F) - z) * s;
      }
    }
  });
  return out;
}

// ---------------------------------------------------------------- any device

// The same dequantization composed from tensor ops: runs where the weights are
// (CUDA included) and serves as the reference the native loops are tested against.
at::Tensor unpack_nibbles(const at::Tensor& packed) {
  auto p = packed.to(at::kLong);
  return at::stack({at::bitwise_right_shift(p, 4), at::bitwise_and(p, 15)}, 1).flatten();
}

at::Tensor dequantize_ops(int kind, const std::vector<at::Tensor>& t, const int64_t* p) {
  const int64_t rows = p[0], cols = p[1], n = rows * cols;
  auto dev = t[0].device();
  if (kind == 1 || kind == 2) {
    auto table = at::from_blob(const_cast<float*>(code_table(kind)), {16}, at::kFloat).to(dev);
    auto vals = table.index_select(0, unpack_nibbles(t[0])).narrow(0, 0, n);
    at::Tensor am;
    if (t.size() == 2) {
      am = t[1].to(at::kFloat);
    } else {
      am = t[1].to(at::kFloat) * t[2].to(at::kFloat).repeat_interleave(p[3]).narrow(0, 0, t[1].numel()) +
           t[3].to(at::kFloat);
    }
    return (vals * am.repeat_interleave(p[2]).narrow(0, 0, n)).view({rows, cols});
  }
  if (kind == 3) {
    const int64_t g = p[2];
    auto q = unpack_nibbles(t[0]).to(at::kFloat).view({rows, cols / g, g});
    auto z = t[2].to(at::kFloat).unsqueeze(2);
    auto sc = t[1].to(at::kFloat).unsqueeze(2);
    return ((q - z) * sc).view({rows, cols});
  }
  if (kind == 5) return t.at(0).to(at::kFloat);
  return t.at(0).to(at::kFloat) * t.at(1).to(at::kFloat).unsqueeze(1);
}

// Throws unless a 4-bit weight's tensors fit an [rows, cols] weight.
void check_sizes(int kind, const std::vector<at::Tensor>& t, int64_t rows, int64_t cols,
                 const int64_t* p) {
  const int64_t n = rows * cols;
  if (t.at(0).scalar_type() != at::kByte) throw std::invalid_argument("packed weights must be uint8");
  if (t[0].numel() * 2 < n) throw std::invalid_argument("packed weights are too short");
  if (kind == 3) {
    if (t.size() != 3 || p[2] <= 0 || p[2] % 2 || cols % p[2]) {
      throw std::invalid_argument("int4: in_features not a multiple of the group size");
    }
    expect(t[1], at::kHalf, "int4 scales");
    expect(t[2], at::kByte, "int4 zero points");
    if (t[1].numel() != n / p[2] || t[2].numel() != n / p[2]) {
      throw std::invalid_argument("int4: scale or zero-point count does not fit the weight");
    }
  } else {
    if (p[2] <= 0 || t.at(1).numel() * p[2] < n) {
      throw std::invalid_argument("absmax has too few blocks");
    }
  }
}

// ---------------------------------------------------------------- packed kernels

// A view of a weight's storage for the kernels in qgemv.cpp; `keep` holds any contiguous
// copies it points into. Sizes are checked here, so the kernels can trust them.
lab::PackedWeight packed_view(int kind, const std::vector<at::Tensor>& t, const int64_t* p,
                              std::vector<at::Tensor>& keep) {
  lab::PackedWeight w;
  w.kind = kind;
  w.rows = p[0];
  w.cols = p[1];
  auto hold = [&](const at::Tensor& x) -> const at::Tensor& {
    keep.push_back(x.contiguous());
    return keep.back();
  };
  if (t.empty()) throw std::invalid_argument("no quantized tensors given");
  if (kind == 0) {
    expect(t.at(0), at::kChar, "int8 weights");
    expect(t.at(1), at::kFloat, "int8 scales");
    if (t[0].numel() != w.rows * w.cols || t[1].numel() != w.rows) {
      throw std::invalid_argument("int8 weights or scales do not fit the layer's shape");
    }
    w.q8 = hold(t[0]).data_ptr<int8_t>();
    w.rowscale = hold(t[1]).data_ptr<float>();
  } else if (kind == 5) {
    const auto st = t.at(0).scalar_type();
    if (st != at::kBFloat16 && st != at::kHalf) {
      throw std::invalid_argument("half kind needs a float16 or bfloat16 weight");
    }
    if (t[0].numel() != w.rows * w.cols) throw std::invalid_argument("weight does not fit the layer's shape");
    w.bf16 = st == at::kBFloat16;
    w.half = static_cast<const uint16_t*>(hold(t[0]).data_ptr());
  } else if (kind == 1 || kind == 2 || kind == 3) {
    check_sizes(kind, t, w.rows, w.cols, p);
    w.block = p[2];
    w.packed = hold(t[0]).data_ptr<uint8_t>();
    if (kind == 3) {
      w.gscale = static_cast<const uint16_t*>(hold(t[1]).data_ptr());
      w.zero = hold(t[2]).data_ptr<uint8_t>();
    } else if (t.size() == 2) {
      expect(t[1], at::kFloat, "absmax");
      w.table = code_table(kind);
      w.absmax = hold(t[1]).data_ptr<float>();
    } else {
      if (t.size() != 4 || p[3] <= 0) throw std::invalid_argument("blockwise weights need 2 or 4 tensors");
      expect(t[1], at::kChar, "quantized absmax");
      expect(t[2], at::kFloat, "absmax scale");
      expect(t[3], at::kFloat, "absmax offset");
      if (t[2].numel() * p[3] < t[1].numel()) throw std::invalid_argument("too few absmax scales");
      w.table = code_table(kind);
      w.block2 = p[3];
      w.qabsmax = hold(t[1]).data_ptr<int8_t>();
      w.scale2 = hold(t[2]).data_ptr<float>();
      w.offset = t[3].item<float>();
    }
  } else {
    throw std::invalid_argument("no packed kernel for quantization kind " + std::to_string(kind));
  }
  return w;
}

// Decoding multiplies a handful of rows by each weight: memory-bound, so qgemv.cpp streams
// the packed weight once, with no dense copy.
constexpr int64_t kSmallBatch = 8;

bool packed_cpu(int kind, const at::Tensor& x, const std::vector<at::Tensor>& t) {
  if (kind == 4 || !x.is_cpu() || t.empty()) return false;
  for (const auto& part : t) {
    if (!part.is_cpu()) return false;
  }
  auto st = x.scalar_type();
  return st == at::kFloat || st == at::kBFloat16 || st == at::kHalf;
}

bool small_batch_ok(int kind, const at::Tensor& x, const std::vector<at::Tensor>& t,
                    int64_t cols) {
  const int64_t m = x.numel() / cols;
  return packed_cpu(kind, x, t) && m >= 1 && m <= kSmallBatch;
}

// Throws unless `x` ([..., cols]) and the weight's declared shape can be multiplied.
void check_input(const at::Tensor& x, const int64_t* p) {
  if (p[0] < 0 || p[1] <= 0) {
    throw std::invalid_argument("a quantized weight needs a shape [out, in] with in > 0, got [" +
                                std::to_string(p[0]) + ", " + std::to_string(p[1]) + "]");
  }
  if (x.dim() < 1 || x.size(-1) != p[1]) {
    throw std::invalid_argument("input of shape " + c10::str(x.sizes()) +
                                " does not end in the layer's in_features " + std::to_string(p[1]));
  }
}

at::Tensor small_batch_linear(int kind, const at::Tensor& x, const std::vector<at::Tensor>& t,
                              const int64_t* p) {
  const int64_t rows = p[0], cols = p[1];
  std::vector<at::Tensor> keep;
  const lab::PackedWeight w = packed_view(kind, t, p, keep);
  at::Tensor xf = x.reshape({-1, cols}).to(at::kFloat).contiguous();
  at::Tensor y = at::empty({xf.size(0), rows}, at::kFloat);
  lab::gemv(w, xf.data_ptr<float>(), xf.size(0), y.data_ptr<float>());
  auto out_shape = x.sizes().vec();
  out_shape.back() = rows;
  return y.view(out_shape).to(x.scalar_type());
}

// Prefill: dequantize a tile of output rows at a time into a scratch buffer and hand it to
// the BLAS GEMM, so no dense copy of a whole large weight ever exists. The tile is large
// (16 MB, and at least 256 rows) because every GEMM call packs the activations afresh: with
// 2 MB tiles a 512-token prefill through an [2048, 8192] weight re-packed its 16 MB of
// activations 32 times, and bf16 prefill ran at 0.7x fp32's.
constexpr int64_t kTileBytes = 16 << 20;
constexpr int64_t kMinTileRows = 256;

at::Tensor tiled_linear(int kind, const at::Tensor& x, const std::vector<at::Tensor>& t,
                        const int64_t* p) {
  const int64_t rows = p[0], cols = p[1];
  std::vector<at::Tensor> keep;
  const lab::PackedWeight w = packed_view(kind, t, p, keep);
  at::Tensor xf = x.reshape({-1, cols}).to(at::kFloat).contiguous();
  const int64_t tile = std::min(rows, std::max<int64_t>(kMinTileRows, kTileBytes / (4 * cols)));
  at::Tensor scratch = at::empty({tile, cols}, at::kFloat);
  at::Tensor y = at::empty({xf.size(0), rows}, at::kFloat);
  for (int64_t o0 = 0; o0 < rows; o0 += tile) {
    const int64_t n = std::min(tile, rows - o0);
    lab::dequantize_rows(w, o0, o0 + n, scratch.data_ptr<float>());
    // x · tileᵀ, as at::linear multiplies a dense weight, into the tile's columns of y.
    at::Tensor out = y.narrow(1, o0, n);
    at::mm_out(out, xf, scratch.narrow(0, 0, n).t());
  }
  auto out_shape = x.sizes().vec();
  out_shape.back() = rows;
  return y.view(out_shape).to(x.scalar_type());
}

// ---------------------------------------------------------------- dispatch

// params: [out_features, in_features, block (or group), block2]
at::Tensor dequantize(int kind, const std::vector<at::Tensor>& t, const int64_t* p) {
  const int64_t rows = p[0], cols = p[1];
  if (t.empty()) throw std::invalid_argument("no quantized tensors given");
  if (!t[0].is_cpu()) return dequantize_ops(kind, t, p);
  switch (kind) {
    case 0: {
      expect(t.at(0), at::kChar, "int8 weights");
      return t[0].to(at::kFloat) * t.at(1).to(at::kFloat).unsqueeze(1);
    }
    case 1:
    case 2:
    case 3: {
      // The element-wise loops check every size; the row decoder takes over for even
      // widths once the sizes are known to fit.
      if (cols % 2 || rows == 0) {
        return kind == 3 ? dequantize_int4(t, rows, cols, p[2])
                         : dequantize_blockwise(t, kind, rows * cols, p[2], p[3]).view({rows, cols});
      }
      std::vector<at::Tensor> keep;
      const lab::PackedWeight w = packed_view(kind, t, p, keep);
      at::Tensor out = at::empty({rows, cols}, at::kFloat);
      lab::dequantize_rows(w, 0, rows, out.data_ptr<float>());
      return out;
    }
    case 4:
      return t.at(0).to(at::kFloat) * t.at(1).to(at::kFloat).unsqueeze(1);
    case 5:
      return t.at(0).to(at::kFloat);
  }
  throw std::invalid_argument("unknown quantization kind " + std::to_string(kind));
}

// x @ dequant(W)ᵀ with a frozen quantized W, for training through it (QLoRA): the backward
// dequantizes W again instead of autograd keeping every layer's dense weight alive between
// the forward and the backward pass.
struct FrozenQuantLinear : public torch::autograd::Function<FrozenQuantLinear> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x,
                            int64_t kind, const std::vector<at::Tensor>& parts,
                            const std::vector<int64_t>& params) {
    ctx->saved_data["kind"] = kind;
    ctx->saved_data["parts"] = c10::List<at::Tensor>(parts);
    ctx->saved_data["params"] = c10::List<int64_t>(params);
    at::NoGradGuard guard;
    return lab::packed_linear(static_cast<int>(kind), x, parts, params.data());
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const int kind = static_cast<int>(ctx->saved_data["kind"].toInt());
    std::vector<at::Tensor> parts = ctx->saved_data["parts"].toTensorVector();
    std::vector<int64_t> params = ctx->saved_data["params"].toIntVector();
    const at::Tensor& gy = grads[0];
    at::Tensor w = dequantize(kind, parts, params.data()).to(gy.scalar_type());
    return {at::matmul(gy, w), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

using lt::handles;

}  // namespace

namespace lab {

at::Tensor packed_linear(int kind, const at::Tensor& x, const std::vector<at::Tensor>& t,
                         const int64_t* params) {
  check_input(x, params);
  if (x.numel() == 0) {
    auto shape = x.sizes().vec();
    shape.back() = params[0];
    return at::zeros(shape, x.options());
  }
  if (small_batch_ok(kind, x, t, params[1])) return small_batch_linear(kind, x, t, params);
  if (packed_cpu(kind, x, t)) return tiled_linear(kind, x, t, params);
  at::NoGradGuard guard;  // the frozen weight takes no gradient
  if (kind == 0 || kind == 4) {
    // Per-channel scales commute with the product: scale the output instead.
    return at::linear(x, t.at(0).to(x.scalar_type())) * t.at(1).to(x.scalar_type());
  }
  if (kind == 5) return at::linear(x, t.at(0).to(x.scalar_type()));
  return at::linear(x, dequantize(kind, t, params).to(x.scalar_type()));
}

// Rows `ids` of a weight held off the CPU: selects the stored rows first, so a lookup moves
// only what it reads (4-bit rows whose blocks straddle rows dequantize the whole table).
at::Tensor device_rows(int kind, const std::vector<at::Tensor>& t, const int64_t* p,
                       const at::Tensor& ids) {
  const int64_t rows = p[0], cols = p[1];
  const at::Tensor dev_ids = ids.to(t[0].device());
  if (kind == 0 || kind == 4) {
    at::Tensor q = t[0].view({rows, cols}).index_select(0, dev_ids).to(at::kFloat);
    return q * t.at(1).to(at::kFloat).index_select(0, dev_ids).unsqueeze(1);
  }
  if (kind == 5) return t[0].view({rows, cols}).index_select(0, dev_ids).to(at::kFloat);
  const int64_t n = dev_ids.numel();
  if (kind == 3 || cols % p[2] == 0) {
    // Whole blocks per row: gather packed bytes and per-block values, dequantize n rows.
    const int64_t per_row = cols / p[2];
    std::vector<at::Tensor> per_block(t.begin() + 1, t.end());
    if (t.size() == 4) {  // double-quantized absmax: decode it (small) before selecting rows
      const int64_t nb = t[1].numel();
      per_block = {t[1].to(at::kFloat) * t[2].to(at::kFloat).repeat_interleave(p[3]).narrow(0, 0, nb) +
                   t[3].to(at::kFloat)};
    }
    std::vector<at::Tensor> sub{t[0].view({rows, cols / 2}).index_select(0, dev_ids).reshape({-1})};
    for (const auto& b : per_block) {
      sub.push_back(b.view({rows, per_row}).index_select(0, dev_ids).reshape({-1}));
    }
    const int64_t sp[4] = {n, cols, p[2], p[3]};
    return dequantize_ops(kind, sub, sp);
  }
  return dequantize(kind, t, p).index_select(0, dev_ids);
}

at::Tensor packed_rows(int kind, const std::vector<at::Tensor>& t, const int64_t* params,
                       const at::Tensor& ids) {
  const int64_t rows = params[0], cols = params[1];
  auto shape = ids.sizes().vec();
  shape.push_back(cols);
  at::Tensor flat = ids.reshape({-1}).to(at::kLong);
  if (flat.numel() > 0) {
    const int64_t lo = flat.min().item<int64_t>(), hi = flat.max().item<int64_t>();
    if (lo < 0 || hi >= rows) {
      throw std::invalid_argument("token id " + std::to_string(lo < 0 ? lo : hi) +
                                  " is outside the embedding table of " + std::to_string(rows) + " rows");
    }
  }
  if (t.empty()) throw std::invalid_argument("no quantized tensors given");
  if (rows < 0 || cols <= 0) throw std::invalid_argument("an embedding table needs in_features > 0");
  if (!t[0].is_cpu() || kind == 4) return device_rows(kind, t, params, flat).view(shape);
  flat = flat.to(at::kCPU);
  std::vector<at::Tensor> keep;
  const PackedWeight w = packed_view(kind, t, params, keep);
  at::Tensor ic = flat.contiguous();
  at::Tensor out = at::empty({ic.numel(), cols}, at::kFloat);
  gather_rows(w, ic.data_ptr<int64_t>(), ic.numel(), out.data_ptr<float>());
  return out.view(shape);
}

}  // namespace lab

extern "C" {

// The instruction set of the packed kernels: wanted < 0 asks, 0/1/2 forces scalar / AVX2 /
// AVX-512 (clamped to what the CPU has). Returns the one in use.
int32_t lt_q_kernel_isa(int32_t wanted) {
  if (wanted < 0) return static_cast<int32_t>(lab::active_isa());
  return static_cast<int32_t>(lab::set_isa(wanted));
}

int32_t lt_q_has_float8(void) {
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 1)
  return 1;
#else
  return 0;
#endif
}

// Quantizes weight `w` of the given kind; writes up to 4 handles to `out`,
// returns how many. params: [block or group, block2 (0 = no double quant)].
int32_t lt_q_quantize(int32_t kind, void* w, const int64_t* params, void** out) {
  try {
    at::NoGradGuard guard;
    const at::Tensor& wt = T(w);
    std::vector<at::Tensor> r;
    if (kind == 0 || kind == 4) {
      if (wt.dim() != 2) throw std::invalid_argument("per-channel quantization needs a 2-D weight");
      at::Tensor wf = wt.detach().to(at::kFloat).cpu();
      const double qmax = kind == 0 ? 127.0 : 448.0;
      at::Tensor scale = wf.abs().amax({1}).div(qmax).clamp_min(1e-12);
      at::Tensor scaled = wf / scale.unsqueeze(1);
      if (kind == 0) {
        r = {scaled.round().clamp(-127, 127).to(at::kChar), scale};
      } else {
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 1)
        r = {scaled.to(at::kFloat8_e4m3fn), scale};
#else
        throw std::invalid_argument("fp8-e4m3 needs libtorch >= 2.1 (float8 dtypes)");
#endif
      }
    } else if (kind == 1 || kind == 2) {
      r = quantize_blockwise(wt, kind, params[0], params[1]);
    } else if (kind == 3) {
      r = quantize_int4(wt, params[0]);
    } else {
      throw std::invalid_argument("unknown quantization kind " + std::to_string(kind));
    }
    for (size_t i = 0; i < r.size(); i++) out[i] = wrap(r[i]);
    return static_cast<int32_t>(r.size());
  }
  LT_CATCH(-1)
}

// Dequantizes to a [out, in] tensor of `dtype` (composed = 1: the tensor-op reference path).
void* lt_q_dequantize(int32_t kind, void* const* hs, int32_t n, const int64_t* params,
                      int32_t dtype, int32_t composed) {
  try {
    at::NoGradGuard guard;
    auto t = handles(hs, n);
    auto w = composed ? dequantize_ops(kind, t, params) : dequantize(kind, t, params);
    return wrap(w.to(static_cast<at::ScalarType>(dtype)));
  }
  LT_CATCH(nullptr)
}

// Rows `ids` (int64, any shape) of the dense weight, as float32 [*ids.shape, in]: an embedding
// lookup over a packed table that dequantizes only the rows it reads.
void* lt_q_rows(int32_t kind, void* const* hs, int32_t n, const int64_t* params, void* ids) {
  try {
    at::NoGradGuard guard;
    return wrap(lab::packed_rows(kind, handles(hs, n), params, T(ids)));
  }
  LT_CATCH(nullptr)
}

// y = x @ dequant(W)ᵀ + bias, with the dequantized weight alive only during the call.
void* lt_q_linear(int32_t kind, void* x, void* const* hs, int32_t n, const int64_t* params,
                  void* bias) {
  try {
    const at::Tensor& xt = T(x);
    std::vector<at::Tensor> t = handles(hs, n);
    if (at::GradMode::is_enabled() && xt.requires_grad()) {
      std::vector<int64_t> p(params, params + 4);
      at::Tensor y = FrozenQuantLinear::apply(xt, static_cast<int64_t>(kind), t, p);
      if (bias != nullptr) y = y + T(bias).to(xt.scalar_type());
      return wrap(y);
    }
    at::Tensor y = lab::packed_linear(kind, xt, t, params);
    if (bias != nullptr) y = y + T(bias).to(xt.scalar_type());
    return wrap(y);
  }
  LT_CATCH(nullptr)
}

}  // extern "C"
