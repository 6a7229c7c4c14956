// Shared by the shim's .cpp files, never by callers: tensor-handle helpers, the one macro that
// turns any C++ exception into lt_last_error(), and the op and quant-kind codes the TypeScript
// side names (ffi/ops.ts, ffi/quant.ts). tests/ffi_codes.test.ts checks that every entry point
// accepts exactly the codes TypeScript declares.
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "shim.h"

namespace lt {

// The at::Tensor behind a handle; a null handle is a bad argument, not a crash.
inline at::Tensor& T(void* h) {
  if (h == nullptr) throw std::invalid_argument("null tensor handle");
  return *static_cast<at::Tensor*>(h);
}

// A new handle owning `t` (the caller frees it with lt_free).
inline void* wrap(at::Tensor t) { return new at::Tensor(std::move(t)); }

// The tensors behind `n` handles.
inline std::vector<at::Tensor> handles(void* const* hs, int32_t n) {
  std::vector<at::Tensor> v;
  for (int32_t i = 0; i < n; i++) v.push_back(T(hs[i]));
  return v;
}

// libtorch's message without the C++ backtrace it appends.
inline std::string clean_message(const char* what) {
  std::string s(what);
  auto pos = s.find("\nException raised from");
  return pos == std::string::npos ? s : s.substr(0, pos);
}

// Quantized-weight formats (QUANT_KIND in ffi/quant.ts).
namespace quant_kind {
enum : int32_t { int8 = 0, nf4 = 1, fp4 = 2, int4 = 3, fp8 = 4, half = 5 };
}

// Op codes of the generic entry points (ffi/ops.ts): lt_unary, lt_binary and lt_binary_scalar
// (binary, plus rscalar with the scalar on the left), lt_reduce, lt_dim_op, lt_shape_op,
// lt_index_op. Each family is a namespace so that a switch reads `case lt::unary::neg:`.
namespace unary {
enum : int32_t {
    neg = 0, abs = 1, exp = 2, log = 3, sqrt = 4, rsqrt = 5, tanh = 6, sigmoid = 7, silu = 8,
    gelu = 9, relu = 10, sin = 11, cos = 12, round = 13, floor = 14, ceil = 15, sign = 16,
    bitwiseNot = 17, logicalNot = 18, contiguous = 19, clone = 20, detach = 21, isnan = 22,
    isinf = 23, reciprocal = 24, square = 25, erf = 26, geluTanh = 27, isfinite = 28, log1p = 29,
    trunc = 30
};
}
namespace binary {
enum : int32_t {
    add = 0, sub = 1, mul = 2, div = 3, pow = 4, maximum = 5, minimum = 6, eq = 7, ne = 8, lt = 9,
    le = 10, gt = 11, ge = 12, bitwiseAnd = 13, bitwiseOr = 14, bitwiseXor = 15, shiftLeft = 16,
    shiftRight = 17, matmul = 18, bmm = 19, remainder = 20, floorDivide = 21, logicalAnd = 22,
    logicalOr = 23, atan2 = 24
};
}
namespace rscalar {
enum : int32_t {
    rsub = 30, rdiv = 31, rpow = 32
};
}
namespace reduce {
enum : int32_t {
    sum = 0, mean = 1, amax = 2, amin = 3, prod = 4, argmax = 5, argmin = 6, std = 7, var = 8,
    norm = 9, logsumexp = 10, any = 11, all = 12
};
}
namespace dim_op {
enum : int32_t {
    softmax = 0, logSoftmax = 1, cumsum = 2, squeeze = 3, unsqueeze = 4, triu = 5, tril = 6,
    flip = 7, squeezeAll = 8, repeatInterleave = 9
};
}
namespace shape_op {
enum : int32_t {
    reshape = 0, view = 1, permute = 2, expand = 3, repeat = 4
};
}
namespace index_op {
enum : int32_t {
    indexSelect = 0, gather = 1, scatter = 2, scatterAdd = 3, indexCopy = 4, indexAdd = 5
};
}


}  // namespace lt

// The catch clauses every entry point ends with: the message goes to lt_last_error() and the
// entry point returns `fail` (NULL or a negative status). The catch-all keeps a foreign
// exception from unwinding into Deno, which would abort the process.
#define LT_CATCH(fail)                                        \
  catch (const c10::Error& e) {                               \
    lt_set_error(lt::clean_message(e.what()).c_str());        \
  }                                                           \
  catch (const std::exception& e) {                           \
    lt_set_error(lt::clean_message(e.what()).c_str());        \
  }                                                           \
  catch (...) {                                               \
    lt_set_error("unknown C++ exception");                    \
  }                                                           \
  return fail;

#define LT_BEGIN try {
#define LT_END(fail) \
  }                  \
  LT_CATCH(fail)
