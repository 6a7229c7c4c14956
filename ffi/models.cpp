// Fused forward pass of the Llama-family decoder (models/llama.ts holds the
// reference composition the tests compare it with). One FFI call per forward
// instead of ~60 per layer: at batch-1 decode the per-op crossing, wrapping and
// freeing cost a sizeable share of the time the weight reads take.
#include "shim.h"
#include "qkernels.h"
#include "quant_ops.h"
#include "shim_internal.h"

#include <ATen/ATen.h>

#include <cmath>
#include <vector>
#include <limits>
#include <string>

namespace {

const at::Tensor* opt(lt_tensor h) { return h ? static_cast<at::Tensor*>(h) : nullptr; }

const at::Tensor& req(lt_tensor h, const char* what) {
  if (!h) throw std::invalid_argument(std::string("lt_llama_forward: missing tensor ") + what);
  return *static_cast<at::Tensor*>(h);
}

// One row goes through matrix-vector: OpenBLAS runs it several times faster
// than the one-row GEMM at::linear would issue.
// A dense float32 projection of 2–8 rows (batched decode) through the decode kernels: BLAS's
// GEMM packs the whole weight on every call, so a memory-bound step read each weight ~3 times
// (an 8-row step cost 3.3x a 1-row one). One row stays with BLAS's matrix-vector product, which
// already streams at the memory limit. Each row's sum runs in the same order whatever the batch.
bool few_rows(const at::Tensor& x, const at::Tensor& w, int64_t rows) {
  return rows >= 2 && rows <= 8 && w.device().is_cpu() && x.device().is_cpu() &&
         w.scalar_type() == at::kFloat && x.scalar_type() == at::kFloat && w.is_contiguous() &&
         w.size(1) % 32 == 0 && !(at::GradMode::is_enabled() && (x.requires_grad() || w.requires_grad()));
}

at::Tensor project_few_rows(const at::Tensor& x, const at::Tensor& w, const at::Tensor* b) {
  lab::PackedWeight pw;
  pw.kind = lab::kDenseF32;
  pw.rows = w.size(0);
  pw.cols = w.size(1);
  pw.f32 = w.data_ptr<float>();
  at::Tensor xf = x.reshape({-1, pw.cols}).contiguous();
  at::Tensor y = at::empty({xf.size(0), pw.rows}, at::kFloat);
  lab::gemv(pw, xf.data_ptr<float>(), xf.size(0), y.data_ptr<float>());
  if (b) y = y + *b;
  auto shape = x.sizes().vec();
  shape.back() = pw.rows;
  return y.view(shape);
}

at::Tensor project(const at::Tensor& x, const at::Tensor& w, const at::Tensor* b) {
  const int64_t in = w.size(1);
  if (few_rows(x, w, x.numel() / in)) return project_few_rows(x, w, b);
  if (x.numel() == in) {
    at::Tensor y = at::mv(w, x.reshape({in}));
    if (b) y = y + *b;
    auto shape = x.sizes().vec();
    shape.back() = w.size(0);
    return y.view(shape);
  }
  return b ? at::linear(x, w, *b) : at::linear(x, w);
}

// A projection as models/fused.ts describes it in kProjSlots u64 slots: kind (-1 for a dense
// weight, else quant.cpp's code), four tensor handles (the dense weight, or the packed parts),
// [out, in, block, block2], bias handle (0 for none).
constexpr int kProjSlots = 10;

struct Proj {
  int64_t kind;
  std::vector<at::Tensor> parts;
  int64_t params[4];
  const at::Tensor* bias;
};

Proj read_proj(const uint64_t* d, const char* what) {
  Proj p;
  p.kind = static_cast<int64_t>(d[0]);
  for (int i = 1; i <= 4; i++) {
    if (d[i]) p.parts.push_back(*reinterpret_cast<const at::Tensor*>(d[i]));
  }
  if (p.parts.empty()) throw std::invalid_argument(std::string("lt_llama_forward: missing tensor ") + what);
  for (int i = 0; i < 4; i++) p.params[i] = static_cast<int64_t>(d[5 + i]);
  p.bias = d[9] ? reinterpret_cast<const at::Tensor*>(d[9]) : nullptr;
  return p;
}

at::Tensor apply(const at::Tensor& x, const Proj& p) {
  if (p.kind < 0) return project(x, p.parts[0], p.bias);
  at::Tensor y = lab::packed_linear(static_cast<int>(p.kind), x, p.parts, p.params);
  return p.bias ? y + p.bias->to(y.scalar_type()) : y;
}

at::Tensor embed(const Proj& p, const at::Tensor& ids, at::ScalarType dtype) {
  if (p.kind < 0) return at::embedding(p.parts[0], ids);
  return lab::packed_rows(static_cast<int>(p.kind), p.parts, p.params, ids).to(dtype);
}

at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& w, double eps) {
  at::Tensor xf = x.to(at::kFloat);
  at::Tensor y = (xf * at::rsqrt(xf.pow(2).mean({-1}, true) + eps)).to(x.scalar_type());
  return w * y;
}

at::Tensor rope(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin) {
  const int64_t half = x.size(-1) / 2;
  at::Tensor x1 = x.narrow(-1, 0, half);
  at::Tensor x2 = x.narrow(-1, half, half);
  return x * cos + at::cat({-x2, x1}, -1) * sin;
}

}  // namespace

extern "C" {

// weights (u64 slots): the embedding table as a projection (see Proj), the final norm, lm_head
// as a projection, then per layer: input norm, post-attention norm, and q, k, v, o, gate, up,
// down as projections. Dense and packed projections mix freely. cos/sin: [B, 1, T, hd] in the compute dtype. mask:
// null or float32 [B, 1, 1, T, past + T]. With has_cache, keys/values are
// written into cache_k/cache_v[l] at [past, past + T) and read from [0, past + T).
// Returns float32 logits [B, T or 1, vocab].
lt_tensor lt_llama_forward(const uint64_t* weights, int32_t n_layers, int32_t nh, int32_t nkv,
                           int32_t hd, double eps, lt_tensor ids_h, lt_tensor cos_h,
                           lt_tensor sin_h, lt_tensor mask_h, const lt_tensor* cache_k,
                           const lt_tensor* cache_v, int32_t has_cache, int64_t past,
                           int32_t last_only) {
  try {
    const at::Tensor& ids = req(ids_h, "ids");
    const at::Tensor& cos = req(cos_h, "cos");
    const at::Tensor& sin = req(sin_h, "sin");
    const at::Tensor* mask = opt(mask_h);
    const int64_t batch = ids.size(0), seq = ids.size(1), total = past + seq;
    const int64_t g = nh / nkv;
    const double scale = std::sqrt(static_cast<double>(hd));
    const auto handle = [](uint64_t v) { return reinterpret_cast<lt_tensor>(v); };
    const auto dtype = req(handle(weights[kProjSlots]), "norm").scalar_type();
    at::Tensor x = embed(read_proj(weights, "embed_tokens"), ids, dtype);
    const int64_t layer_slots = 2 + 7 * kProjSlots;
    for (int32_t l = 0; l < n_layers; l++) {
      const uint64_t* w = weights + 2 * kProjSlots + 1 + layer_slots * l;
      const auto proj = [&](int i, const char* what) { return read_proj(w + 2 + kProjSlots * i, what); };
      at::Tensor h = rms_norm(x, req(handle(w[0]), "input_layernorm"), eps);
      at::Tensor q = apply(h, proj(0, "q_proj")).view({batch, seq, nh, hd}).transpose(1, 2);
      at::Tensor k = apply(h, proj(1, "k_proj")).view({batch, seq, nkv, hd}).transpose(1, 2);
      at::Tensor v = apply(h, proj(2, "v_proj")).view({batch, seq, nkv, hd}).transpose(1, 2);
      q = rope(q, cos, sin);
      k = rope(k, cos, sin);
      at::Tensor keys = k, values = v;
      if (has_cache) {
        at::Tensor& ck = *static_cast<at::Tensor*>(cache_k[l]);
        at::Tensor& cv = *static_cast<at::Tensor*>(cache_v[l]);
        ck.narrow(2, past, seq).copy_(k);
        cv.narrow(2, past, seq).copy_(v);
        keys = ck.narrow(2, 0, total);
        values = cv.narrow(2, 0, total);
      }
      // Query heads kv·g + r share key/value head kv: no repeated keys.
      at::Tensor scores = at::matmul(q.reshape({batch, nkv, g * seq, hd}), keys.transpose(-1, -2)) / scale;
      if (scores.scalar_type() != at::kFloat) scores = scores.to(at::kFloat);
      if (mask) scores = scores.view({batch, nkv, g, seq, total}) + *mask;
      at::Tensor probs = at::softmax(scores, -1);
      if (probs.scalar_type() != dtype) probs = probs.to(dtype);
      at::Tensor attn = at::matmul(probs.view({batch, nkv, g * seq, total}), values)
                            .view({batch, nh, seq, hd})
                            .transpose(1, 2)
                            .reshape({batch, seq, nh * hd});
      x = x + apply(attn, proj(3, "o_proj"));
      h = rms_norm(x, req(handle(w[1]), "post_attention_layernorm"), eps);
      at::Tensor act = at::silu(apply(h, proj(4, "gate_proj"))) * apply(h, proj(5, "up_proj"));
      x = x + apply(act, proj(6, "down_proj"));
    }
    if (last_only && seq > 1) x = x.narrow(1, seq - 1, 1);
    at::Tensor normed = rms_norm(x, req(handle(weights[kProjSlots]), "norm"), eps);
    at::Tensor logits = apply(normed, read_proj(weights + kProjSlots + 1, "lm_head"));
    if (logits.scalar_type() != at::kFloat) logits = logits.to(at::kFloat);
    return new at::Tensor(std::move(logits));
  }
  LT_CATCH(nullptr)
}

}  // extern "C"
