// Fused forward pass of the Llama-family decoder (models/llama.ts holds the
// reference composition the tests compare it with). One FFI call per forward
// instead of ~60 per layer: at batch-1 decode the per-op crossing, wrapping and
// freeing cost a sizeable share of the time the weight reads take.
#include "shim.h"

#include <ATen/ATen.h>

#include <cmath>
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
at::Tensor project(const at::Tensor& x, const at::Tensor& w, const at::Tensor* b) {
  const int64_t in = w.size(1);
  if (x.numel() == in) {
    at::Tensor y = at::mv(w, x.reshape({in}));
    if (b) y = y + *b;
    auto shape = x.sizes().vec();
    shape.back() = w.size(0);
    return y.view(shape);
  }
  return b ? at::linear(x, w, *b) : at::linear(x, w);
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

// weights: embed, final norm, lm_head, then 16 per layer: input norm,
// post-attention norm, q w/b, k w/b, v w/b, o w/b, gate w/b, up w/b, down w/b
// (null biases allowed). cos/sin: [B, 1, T, hd] in the compute dtype. mask:
// null or float32 [B, 1, 1, T, past + T]. With has_cache, keys/values are
// written into cache_k/cache_v[l] at [past, past + T) and read from [0, past + T).
// Returns float32 logits [B, T or 1, vocab].
lt_tensor lt_llama_forward(const lt_tensor* weights, int32_t n_layers, int32_t nh, int32_t nkv,
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
    at::Tensor x = at::embedding(req(weights[0], "embed_tokens"), ids);
    const auto dtype = x.scalar_type();
    for (int32_t l = 0; l < n_layers; l++) {
      const lt_tensor* w = weights + 3 + 16 * l;
      at::Tensor h = rms_norm(x, req(w[0], "input_layernorm"), eps);
      at::Tensor q = project(h, req(w[2], "q_proj"), opt(w[3])).view({batch, seq, nh, hd}).transpose(1, 2);
      at::Tensor k = project(h, req(w[4], "k_proj"), opt(w[5])).view({batch, seq, nkv, hd}).transpose(1, 2);
      at::Tensor v = project(h, req(w[6], "v_proj"), opt(w[7])).view({batch, seq, nkv, hd}).transpose(1, 2);
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
      x = x + project(attn, req(w[8], "o_proj"), opt(w[9]));
      h = rms_norm(x, req(w[1], "post_attention_layernorm"), eps);
      at::Tensor act = at::silu(project(h, req(w[10], "gate_proj"), opt(w[11]))) *
                       project(h, req(w[12], "up_proj"), opt(w[13]));
      x = x + project(act, req(w[14], "down_proj"), opt(w[15]));
    }
    if (last_only && seq > 1) x = x.narrow(1, seq - 1, 1);
    at::Tensor logits = project(rms_norm(x, req(weights[1], "norm"), eps), req(weights[2], "lm_head"), nullptr);
    if (logits.scalar_type() != at::kFloat) logits = logits.to(at::kFloat);
    return new at::Tensor(std::move(logits));
  } catch (const c10::Error& e) {
    std::string s(e.what());
    auto pos = s.find("\nException raised from");
    lt_set_error((pos == std::string::npos ? s : s.substr(0, pos)).c_str());
  } catch (const std::exception& e) {
    lt_set_error(e.what());
  } catch (...) {
    lt_set_error("unknown C++ exception in lt_llama_forward");
  }
  return nullptr;
}

}  // extern "C"
