// Packed-weight operations quant.cpp offers to the fused model forward (models.cpp).
#pragma once
#include <ATen/ATen.h>

#include <vector>

namespace lab {

// x @ dequant(W)ᵀ for a packed weight (no bias, no autograd): the decode kernels for up to
// 8 rows, tiled prefill beyond. params: [out_features, in_features, block, block2].
at::Tensor packed_linear(int kind, const at::Tensor& x, const std::vector<at::Tensor>& parts,
                         const int64_t* params);

// Rows `ids` of the dense weight as float32 [*ids.shape, in_features].
at::Tensor packed_rows(int kind, const std::vector<at::Tensor>& parts, const int64_t* params,
                       const at::Tensor& ids);

}  // namespace lab
