// C ABI over ATen. See shim.h for the conventions; op codes match ffi/ops.ts.
#include "shim.h"
#include "shim_internal.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/cuda.h>
#include <torch/optim/adamw.h>
#include <torch/version.h>

#include <cstring>
#include <mutex>
#include <string>
#include <vector>

#ifdef LT_WITH_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#endif

#define LT_TORCH_AT_LEAST(maj, min) \
  (TORCH_VERSION_MAJOR > (maj) || (TORCH_VERSION_MAJOR == (maj) && TORCH_VERSION_MINOR >= (min)))

namespace {

thread_local std::string t_error;
// Calls made with Deno's `nonblocking` run on another thread; they also leave
// their message here so the caller's thread can read it.
std::mutex g_error_mutex;
std::string g_error;

void set_error(const std::string& msg) {
  t_error = msg;
  std::lock_guard<std::mutex> lock(g_error_mutex);
  g_error = msg;
}

using lt::T;
using lt::wrap;

std::vector<int64_t> vec(const int64_t* p, int32_t n) {
  return std::vector<int64_t>(p, p + (n > 0 ? n : 0));
}

at::Device device_of(int32_t type, int32_t index) {
  if (type == 1) return at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(index < 0 ? 0 : index));
  if (type != 0) throw std::invalid_argument("unknown device type code " + std::to_string(type));
  return at::Device(at::kCPU);
}

at::TensorOptions options(int32_t dtype, int32_t dev_type, int32_t dev_index) {
  return at::TensorOptions()
      .dtype(static_cast<at::ScalarType>(dtype))
      .device(device_of(dev_type, dev_index));
}

// Integer-valued scalars stay integers against integer tensors (bit shifts,
// masks); everything else is a double, which keeps the tensor's float dtype.
at::Scalar scalar_for(const at::Tensor& t, double s) {
  if (at::isIntegralType(t.scalar_type(), /*includeBool=*/true) && s == static_cast<int64_t>(s)) {
    return at::Scalar(static_cast<int64_t>(s));
  }
  return at::Scalar(s);
}

}  // namespace

extern "C" {

const char* lt_last_error(void) { return t_error.c_str(); }

// For the other ffi/*.cpp files: records a failure message.
void lt_set_error(const char* msg) { set_error(msg ? msg : "unknown error"); }

const char* lt_last_error_global(void) {
  std::lock_guard<std::mutex> lock(g_error_mutex);
  t_error = g_error;
  return t_error.c_str();
}

const char* lt_version(void) {
  static const std::string v = std::to_string(TORCH_VERSION_MAJOR) + "." +
                               std::to_string(TORCH_VERSION_MINOR) + "." +
                               std::to_string(TORCH_VERSION_PATCH);
  return v.c_str();
}

int32_t lt_has_cuda_build(void) {
#ifdef LT_WITH_CUDA
  return 1;
#else
  return 0;
#endif
}

void lt_set_num_threads(int32_t n) {
  if (n > 0) at::set_num_threads(n);
}
int32_t lt_get_num_threads(void) { return at::get_num_threads(); }
void lt_manual_seed(uint64_t seed) { at::manual_seed(seed); }
int32_t lt_set_grad_enabled(int32_t on) {
  bool prev = at::GradMode::is_enabled();
  at::GradMode::set_enabled(on != 0);
  return prev ? 1 : 0;
}

void lt_free(lt_tensor t) { delete static_cast<at::Tensor*>(t); }

// ---------------------------------------------------------------- creation

lt_tensor lt_from_data(const void* data, const int64_t* shape, int32_t ndim, int32_t dtype) {
  LT_BEGIN
  auto opts = at::TensorOptions().dtype(static_cast<at::ScalarType>(dtype));
  auto sizes = vec(shape, ndim);
  int64_t numel = 1;
  for (auto s : sizes) numel *= s;
  if (numel == 0) return wrap(at::empty(sizes, opts));
  return wrap(at::from_blob(const_cast<void*>(data), sizes, opts).clone());
  LT_END(nullptr)
}

lt_tensor lt_full(const int64_t* shape, int32_t ndim, double value, int32_t dtype,
                  int32_t dev_type, int32_t dev_index) {
  LT_BEGIN
  auto opts = options(dtype, dev_type, dev_index);
  auto sizes = vec(shape, ndim);
  at::Tensor t = at::empty(sizes, opts);
  t.fill_(scalar_for(t, value));
  return wrap(t);
  LT_END(nullptr)
}

lt_tensor lt_arange(double start, double end, double step, int32_t dtype, int32_t dev_type,
                    int32_t dev_index) {
  LT_BEGIN
  return wrap(at::arange(at::Scalar(start), at::Scalar(end), at::Scalar(step),
                         options(dtype, dev_type, dev_index)));
  LT_END(nullptr)
}

lt_tensor lt_random(int32_t kind, const int64_t* shape, int32_t ndim, int32_t dtype,
                    int32_t dev_type, int32_t dev_index) {
  LT_BEGIN
  auto opts = options(dtype, dev_type, dev_index);
  auto sizes = vec(shape, ndim);
  if (kind == 0) return wrap(at::randn(sizes, opts));
  if (kind == 1) return wrap(at::rand(sizes, opts));
  throw std::invalid_argument("unknown random kind");
  LT_END(nullptr)
}

// ----------------------------------------------------------- introspection

int32_t lt_ndim(lt_tensor t) {
  LT_BEGIN
  return static_cast<int32_t>(T(t).dim());
  LT_END(-1)
}

int32_t lt_shape(lt_tensor t, int64_t* out) {
  LT_BEGIN
  auto s = T(t).sizes();
  for (size_t i = 0; i < s.size(); i++) out[i] = s[i];
  return static_cast<int32_t>(s.size());
  LT_END(-1)
}

int32_t lt_dtype(lt_tensor t) {
  LT_BEGIN
  return static_cast<int32_t>(T(t).scalar_type());
  LT_END(-1)
}

int32_t lt_device(lt_tensor t, int32_t* out) {
  LT_BEGIN
  auto d = T(t).device();
  out[0] = d.is_cuda() ? 1 : 0;
  out[1] = d.has_index() ? d.index() : 0;
  return 0;
  LT_END(-1)
}

int32_t lt_requires_grad(lt_tensor t) {
  LT_BEGIN
  return T(t).requires_grad() ? 1 : 0;
  LT_END(-1)
}

int32_t lt_copy_out(lt_tensor t, void* out, int64_t nbytes) {
  LT_BEGIN
  at::Tensor c = T(t).detach().to(at::kCPU).contiguous();
  if (static_cast<int64_t>(c.nbytes()) != nbytes) {
    throw std::invalid_argument("copy_out: buffer has " + std::to_string(nbytes) +
                                " bytes, tensor has " + std::to_string(c.nbytes()));
  }
  if (nbytes > 0) std::memcpy(out, c.data_ptr(), nbytes);
  return 0;
  LT_END(-1)
}

int32_t lt_item(lt_tensor t, double* out) {
  LT_BEGIN
  *out = T(t).item().toDouble();
  return 0;
  LT_END(-1)
}

// ------------------------------------------------------------ op families

lt_tensor lt_unary(int32_t op, lt_tensor h) {
  LT_BEGIN
  const at::Tensor& a = T(h);
  switch (op) {
    case lt::unary::neg: return wrap(at::neg(a));
    case lt::unary::abs: return wrap(at::abs(a));
    case lt::unary::exp: return wrap(at::exp(a));
    case lt::unary::log: return wrap(at::log(a));
    case lt::unary::sqrt: return wrap(at::sqrt(a));
    case lt::unary::rsqrt: return wrap(at::rsqrt(a));
    case lt::unary::tanh: return wrap(at::tanh(a));
    case lt::unary::sigmoid: return wrap(at::sigmoid(a));
    case lt::unary::silu: return wrap(at::silu(a));
    case lt::unary::gelu: return wrap(at::gelu(a));
    case lt::unary::relu: return wrap(at::relu(a));
    case lt::unary::sin: return wrap(at::sin(a));
    case lt::unary::cos: return wrap(at::cos(a));
    case lt::unary::round: return wrap(at::round(a));
    case lt::unary::floor: return wrap(at::floor(a));
    case lt::unary::ceil: return wrap(at::ceil(a));
    case lt::unary::sign: return wrap(at::sign(a));
    case lt::unary::bitwiseNot: return wrap(at::bitwise_not(a));
    case lt::unary::logicalNot: return wrap(at::logical_not(a));
    case lt::unary::contiguous: return wrap(a.contiguous());
    case lt::unary::clone: return wrap(a.clone());
    case lt::unary::detach: return wrap(a.detach());
    case lt::unary::isnan: return wrap(at::isnan(a));
    case lt::unary::isinf: return wrap(at::isinf(a));
    case lt::unary::reciprocal: return wrap(at::reciprocal(a));
    case lt::unary::square: return wrap(at::square(a));
    case lt::unary::erf: return wrap(at::erf(a));
    case lt::unary::geluTanh: return wrap(at::gelu(a, "tanh"));
    case lt::unary::isfinite: return wrap(at::isfinite(a));
    case lt::unary::log1p: return wrap(at::log1p(a));
    case lt::unary::trunc: return wrap(at::trunc(a));
  }
  throw std::invalid_argument("unknown unary op " + std::to_string(op));
  LT_END(nullptr)
}

lt_tensor lt_binary(int32_t op, lt_tensor ha, lt_tensor hb) {
  LT_BEGIN
  const at::Tensor& a = T(ha);
  const at::Tensor& b = T(hb);
  switch (op) {
    case lt::binary::add: return wrap(at::add(a, b));
    case lt::binary::sub: return wrap(at::sub(a, b));
    case lt::binary::mul: return wrap(at::mul(a, b));
    case lt::binary::div: return wrap(at::div(a, b));
    case lt::binary::pow: return wrap(at::pow(a, b));
    case lt::binary::maximum: return wrap(at::maximum(a, b));
    case lt::binary::minimum: return wrap(at::minimum(a, b));
    case lt::binary::eq: return wrap(at::eq(a, b));
    case lt::binary::ne: return wrap(at::ne(a, b));
    case lt::binary::lt: return wrap(at::lt(a, b));
    case lt::binary::le: return wrap(at::le(a, b));
    case lt::binary::gt: return wrap(at::gt(a, b));
    case lt::binary::ge: return wrap(at::ge(a, b));
    case lt::binary::bitwiseAnd: return wrap(at::bitwise_and(a, b));
    case lt::binary::bitwiseOr: return wrap(at::bitwise_or(a, b));
    case lt::binary::bitwiseXor: return wrap(at::bitwise_xor(a, b));
    case lt::binary::shiftLeft: return wrap(at::bitwise_left_shift(a, b));
    case lt::binary::shiftRight: return wrap(at::bitwise_right_shift(a, b));
    case lt::binary::matmul: return wrap(at::matmul(a, b));
    case lt::binary::bmm: return wrap(at::bmm(a, b));
    case lt::binary::remainder: return wrap(at::remainder(a, b));
    case lt::binary::floorDivide: return wrap(at::floor_divide(a, b));
    case lt::binary::logicalAnd: return wrap(at::logical_and(a, b));
    case lt::binary::logicalOr: return wrap(at::logical_or(a, b));
    case lt::binary::atan2: return wrap(at::atan2(a, b));
  }
  throw std::invalid_argument("unknown binary op " + std::to_string(op));
  LT_END(nullptr)
}

lt_tensor lt_binary_scalar(int32_t op, lt_tensor ha, double sv) {
  LT_BEGIN
  const at::Tensor& a = T(ha);
  at::Scalar s = scalar_for(a, sv);
  switch (op) {
    case lt::binary::add: return wrap(at::add(a, s));
    case lt::binary::sub: return wrap(at::sub(a, s));
    case lt::binary::mul: return wrap(at::mul(a, s));
    case lt::binary::div: return wrap(at::div(a, s));
    case lt::binary::pow: return wrap(at::pow(a, s));
    case lt::binary::maximum: return wrap(at::clamp_min(a, s));
    case lt::binary::minimum: return wrap(at::clamp_max(a, s));
    case lt::binary::eq: return wrap(at::eq(a, s));
    case lt::binary::ne: return wrap(at::ne(a, s));
    case lt::binary::lt: return wrap(at::lt(a, s));
    case lt::binary::le: return wrap(at::le(a, s));
    case lt::binary::gt: return wrap(at::gt(a, s));
    case lt::binary::ge: return wrap(at::ge(a, s));
    case lt::binary::bitwiseAnd: return wrap(at::bitwise_and(a, s));
    case lt::binary::bitwiseOr: return wrap(at::bitwise_or(a, s));
    case lt::binary::bitwiseXor: return wrap(at::bitwise_xor(a, s));
    case lt::binary::shiftLeft: return wrap(at::bitwise_left_shift(a, s));
    case lt::binary::shiftRight: return wrap(at::bitwise_right_shift(a, s));
    case lt::binary::remainder: return wrap(at::remainder(a, s));
    case lt::binary::floorDivide: return wrap(at::floor_divide(a, at::scalar_tensor(s, a.options())));
    case lt::rscalar::rsub: return wrap(at::rsub(a, s));
    case lt::rscalar::rdiv: return wrap(at::reciprocal(a) * s);
    case lt::rscalar::rpow: return wrap(at::pow(s, a));
  }
  throw std::invalid_argument("unknown scalar op " + std::to_string(op));
  LT_END(nullptr)
}

lt_tensor lt_reduce(int32_t op, lt_tensor ha, const int64_t* dims, int32_t ndims,
                    int32_t keepdim) {
  LT_BEGIN
  const at::Tensor& a = T(ha);
  auto d = vec(dims, ndims);
  bool kd = keepdim != 0;
  bool all = ndims == 0;
  auto one_dim = [&]() -> int64_t {
    if (ndims != 1) throw std::invalid_argument("this reduction takes exactly one dim");
    return d[0];
  };
  switch (op) {
    case lt::reduce::sum: return wrap(all ? at::sum(a) : at::sum(a, d, kd));
    case lt::reduce::mean: return wrap(all ? at::mean(a) : at::mean(a, d, kd));
    case lt::reduce::amax: return wrap(at::amax(a, d, kd));
    case lt::reduce::amin: return wrap(at::amin(a, d, kd));
    case lt::reduce::prod: return wrap(all ? at::prod(a) : at::prod(a, one_dim(), kd));
    case lt::reduce::argmax: return wrap(all ? at::argmax(a) : at::argmax(a, one_dim(), kd));
    case lt::reduce::argmin: return wrap(all ? at::argmin(a) : at::argmin(a, one_dim(), kd));
    case lt::reduce::std: return wrap(all ? at::std(a) : at::std(a, at::OptionalIntArrayRef(d), true, kd));
    case lt::reduce::var: return wrap(all ? at::var(a) : at::var(a, at::OptionalIntArrayRef(d), true, kd));
    case lt::reduce::norm: return wrap(all ? at::norm(a) : at::norm(a, 2, d, kd));
    case lt::reduce::logsumexp: return wrap(at::logsumexp(a, all ? std::vector<int64_t>{} : d, kd));
    case lt::reduce::any: return wrap(all ? at::any(a) : at::any(a, one_dim(), kd));
    case lt::reduce::all: return wrap(all ? at::all(a) : at::all(a, one_dim(), kd));
  }
  throw std::invalid_argument("unknown reduction " + std::to_string(op));
  LT_END(nullptr)
}

lt_tensor lt_dim_op(int32_t op, lt_tensor ha, int64_t dim, double arg) {
  LT_BEGIN
  const at::Tensor& a = T(ha);
  switch (op) {
    case lt::dim_op::softmax: return wrap(at::softmax(a, dim));
    case lt::dim_op::logSoftmax: return wrap(at::log_softmax(a, dim));
    case lt::dim_op::cumsum: return wrap(at::cumsum(a, dim));
    case lt::dim_op::squeeze: return wrap(at::squeeze(a, dim));
    case lt::dim_op::unsqueeze: return wrap(at::unsqueeze(a, dim));
    case lt::dim_op::triu: return wrap(at::triu(a, static_cast<int64_t>(arg)));
    case lt::dim_op::tril: return wrap(at::tril(a, static_cast<int64_t>(arg)));
    case lt::dim_op::flip: return wrap(at::flip(a, {dim}));
    case lt::dim_op::squeezeAll: return wrap(at::squeeze(a));
    case lt::dim_op::repeatInterleave: return wrap(at::repeat_interleave(a, static_cast<int64_t>(arg), dim));
  }
  throw std::invalid_argument("unknown dim op " + std::to_string(op));
  LT_END(nullptr)
}

lt_tensor lt_shape_op(int32_t op, lt_tensor ha, const int64_t* shape, int32_t ndim) {
  LT_BEGIN
  const at::Tensor& a = T(ha);
  auto s = vec(shape, ndim);
  switch (op) {
    case lt::shape_op::reshape: return wrap(a.reshape(s));
    case lt::shape_op::view: return wrap(a.view(s));
    case lt::shape_op::permute: return wrap(a.permute(s));
    case lt::shape_op::expand: return wrap(a.expand(s));
    case lt::shape_op::repeat: return wrap(a.repeat(s));
  }
  throw std::invalid_argument("unknown shape op " + std::to_string(op));
  LT_END(nullptr)
}

// ------------------------------------------------------------ specific ops

lt_tensor lt_to(lt_tensor ha, int32_t dtype, int32_t dev_type, int32_t dev_index) {
  LT_BEGIN
  const at::Tensor& a = T(ha);
  auto st = dtype < 0 ? a.scalar_type() : static_cast<at::ScalarType>(dtype);
  auto dev = dev_type < 0 ? a.device() : device_of(dev_type, dev_index);
  return wrap(a.to(dev, st));
  LT_END(nullptr)
}

lt_tensor lt_linear(lt_tensor x, lt_tensor w, lt_tensor b) {
  LT_BEGIN
  c10::optional<at::Tensor> bias;
  if (b != nullptr) bias = T(b);
  return wrap(at::linear(T(x), T(w), bias));
  LT_END(nullptr)
}

lt_tensor lt_rms_norm(lt_tensor hx, lt_tensor hw, double eps) {
  LT_BEGIN
  // As Hugging Face's LlamaRMSNorm: statistics in (at least) float32, scale in
  // the input dtype.
  const at::Tensor& x = T(hx);
  bool half = x.scalar_type() == at::kHalf || x.scalar_type() == at::kBFloat16;
  at::Tensor xf = half ? x.to(at::kFloat) : x;
  at::Tensor y = (xf * at::rsqrt(xf.pow(2).mean({-1}, true) + eps)).to(x.scalar_type());
  if (hw != nullptr) y = T(hw) * y;
  return wrap(y);
  LT_END(nullptr)
}

lt_tensor lt_layer_norm(lt_tensor hx, lt_tensor hw, lt_tensor hb, double eps) {
  LT_BEGIN
  const at::Tensor& x = T(hx);
  c10::optional<at::Tensor> w, b;
  if (hw != nullptr) w = T(hw);
  if (hb != nullptr) b = T(hb);
  return wrap(at::layer_norm(x, {x.size(-1)}, w, b, eps));
  LT_END(nullptr)
}

lt_tensor lt_embedding(lt_tensor w, lt_tensor ids) {
  LT_BEGIN
  return wrap(at::embedding(T(w), T(ids)));
  LT_END(nullptr)
}

lt_tensor lt_transpose(lt_tensor a, int64_t d0, int64_t d1) {
  LT_BEGIN
  return wrap(T(a).transpose(d0, d1));
  LT_END(nullptr)
}

lt_tensor lt_narrow(lt_tensor a, int64_t dim, int64_t start, int64_t length) {
  LT_BEGIN
  return wrap(T(a).narrow(dim, start, length));
  LT_END(nullptr)
}

lt_tensor lt_slice(lt_tensor a, int64_t dim, int64_t start, int64_t end, int64_t step) {
  LT_BEGIN
  return wrap(T(a).slice(dim, start, end, step));
  LT_END(nullptr)
}

lt_tensor lt_cat(const lt_tensor* ts, int32_t n, int64_t dim, int32_t stack) {
  LT_BEGIN
  std::vector<at::Tensor> v;
  v.reserve(n);
  for (int32_t i = 0; i < n; i++) v.push_back(T(ts[i]));
  return wrap(stack ? at::stack(v, dim) : at::cat(v, dim));
  LT_END(nullptr)
}

int32_t lt_split(lt_tensor a, int64_t size_or_chunks, int64_t dim, int32_t chunks, lt_tensor* out,
                 int32_t max_out) {
  LT_BEGIN
  auto parts = chunks ? T(a).chunk(size_or_chunks, dim) : T(a).split(size_or_chunks, dim);
  if (static_cast<int32_t>(parts.size()) > max_out) {
    throw std::invalid_argument("split: " + std::to_string(parts.size()) +
                                " parts exceed the output capacity");
  }
  for (size_t i = 0; i < parts.size(); i++) out[i] = wrap(parts[i]);
  return static_cast<int32_t>(parts.size());
  LT_END(-1)
}

lt_tensor lt_index_op(int32_t op, lt_tensor ha, int64_t dim, lt_tensor hidx, lt_tensor hsrc) {
  LT_BEGIN
  const at::Tensor& a = T(ha);
  const at::Tensor& idx = T(hidx);
  switch (op) {
    case lt::index_op::indexSelect: return wrap(at::index_select(a, dim, idx));
    case lt::index_op::gather: return wrap(at::gather(a, dim, idx));
    case lt::index_op::scatter: return wrap(at::scatter(a, dim, idx, T(hsrc)));
    case lt::index_op::scatterAdd: return wrap(at::scatter_add(a, dim, idx, T(hsrc)));
    case lt::index_op::indexCopy: return wrap(at::index_copy(a, dim, idx, T(hsrc)));
    case lt::index_op::indexAdd: return wrap(at::index_add(a, dim, idx, T(hsrc)));
  }
  throw std::invalid_argument("unknown index op " + std::to_string(op));
  LT_END(nullptr)
}

lt_tensor lt_where(lt_tensor c, lt_tensor a, lt_tensor b) {
  LT_BEGIN
  return wrap(at::where(T(c), T(a), T(b)));
  LT_END(nullptr)
}

lt_tensor lt_masked_fill(lt_tensor a, lt_tensor mask, double value) {
  LT_BEGIN
  const at::Tensor& t = T(a);
  return wrap(t.masked_fill(T(mask), scalar_for(t, value)));
  LT_END(nullptr)
}

lt_tensor lt_clamp(lt_tensor a, double lo, double hi, int32_t has_lo, int32_t has_hi) {
  LT_BEGIN
  c10::optional<at::Scalar> l, h;
  if (has_lo) l = scalar_for(T(a), lo);
  if (has_hi) h = scalar_for(T(a), hi);
  return wrap(at::clamp(T(a), l, h));
  LT_END(nullptr)
}

int32_t lt_topk(lt_tensor a, int64_t k, int64_t dim, int32_t largest, lt_tensor* out) {
  LT_BEGIN
  auto r = at::topk(T(a), k, dim, largest != 0, true);
  out[0] = wrap(std::get<0>(r));
  out[1] = wrap(std::get<1>(r));
  return 0;
  LT_END(-1)
}

int32_t lt_sort(lt_tensor a, int64_t dim, int32_t descending, lt_tensor* out) {
  LT_BEGIN
  auto r = at::sort(T(a), dim, descending != 0);
  out[0] = wrap(std::get<0>(r));
  out[1] = wrap(std::get<1>(r));
  return 0;
  LT_END(-1)
}

lt_tensor lt_multinomial(lt_tensor probs, int64_t n, int32_t replacement) {
  LT_BEGIN
  return wrap(at::multinomial(T(probs), n, replacement != 0));
  LT_END(nullptr)
}

lt_tensor lt_cross_entropy(lt_tensor logits, lt_tensor target, int64_t ignore_index,
                           int32_t reduction) {
  LT_BEGIN
  return wrap(at::cross_entropy_loss(T(logits), T(target), {}, reduction, ignore_index, 0.0));
  LT_END(nullptr)
}

lt_tensor lt_dropout(lt_tensor a, double p, int32_t train) {
  LT_BEGIN
  return wrap(at::dropout(T(a), p, train != 0));
  LT_END(nullptr)
}

int32_t lt_has_fused_sdpa(void) {
#if LT_TORCH_AT_LEAST(2, 1)
  return 1;
#else
  return 0;
#endif
}

// Attention over [..., L, D] queries and [..., S, D] keys/values. `mask` is
// either boolean (true = may attend) or additive, broadcastable to [..., L, S].
lt_tensor lt_sdpa(lt_tensor hq, lt_tensor hk, lt_tensor hv, lt_tensor hmask, int32_t causal,
                  double scale) {
  LT_BEGIN
  const at::Tensor& q = T(hq);
  const at::Tensor& k = T(hk);
  const at::Tensor& v = T(hv);
  c10::optional<at::Tensor> mask;
  if (hmask != nullptr) mask = T(hmask);
  double sc = scale > 0 ? scale : 1.0 / std::sqrt(static_cast<double>(q.size(-1)));
#if LT_TORCH_AT_LEAST(2, 1)
  return wrap(at::scaled_dot_product_attention(q, k, v, mask, 0.0, causal != 0, sc));
#else
  at::Tensor scores = at::matmul(q, k.transpose(-2, -1)) * sc;
  if (causal) {
    auto L = q.size(-2), S = k.size(-2);
    auto keep = at::ones({L, S}, q.options().dtype(at::kBool)).tril(S - L);
    scores = scores.masked_fill(keep.logical_not(), -std::numeric_limits<double>::infinity());
  }
  if (mask) {
    if (mask->scalar_type() == at::kBool) {
      scores = scores.masked_fill(mask->logical_not(), -std::numeric_limits<double>::infinity());
    } else {
      scores = scores + *mask;
    }
  }
  return wrap(at::matmul(at::softmax(scores, -1), v));
#endif
  LT_END(nullptr)
}

// ---------------------------------------------------------------- in-place

int32_t lt_copy_(lt_tensor dst, lt_tensor src) {
  LT_BEGIN
  at::NoGradGuard guard;
  T(dst).copy_(T(src));
  return 0;
  LT_END(-1)
}

int32_t lt_fill_(lt_tensor dst, double value) {
  LT_BEGIN
  at::NoGradGuard guard;
  T(dst).fill_(scalar_for(T(dst), value));
  return 0;
  LT_END(-1)
}

// ---------------------------------------------------------------- autograd

int32_t lt_set_requires_grad(lt_tensor a, int32_t on) {
  LT_BEGIN
  T(a).set_requires_grad(on != 0);
  return 0;
  LT_END(-1)
}

int32_t lt_backward(lt_tensor a, lt_tensor grad) {
  LT_BEGIN
  if (grad != nullptr) {
    T(a).backward(T(grad));
  } else {
    T(a).backward();
  }
  return 0;
  LT_END(-1)
}

lt_tensor lt_grad(lt_tensor a) {
  LT_BEGIN
  const at::Tensor& g = T(a).grad();
  if (!g.defined()) {
    set_error("");
    return nullptr;
  }
  return wrap(g);
  LT_END(nullptr)
}

int32_t lt_zero_grad(lt_tensor a) {
  LT_BEGIN
  auto& g = T(a).mutable_grad();
  if (g.defined()) g = at::Tensor();
  return 0;
  LT_END(-1)
}

int32_t lt_clip_grad_norm(const lt_tensor* ts, int32_t n, double max_norm, double* total) {
  LT_BEGIN
  at::NoGradGuard guard;
  std::vector<at::Tensor> grads;
  for (int32_t i = 0; i < n; i++) {
    const at::Tensor& g = T(ts[i]).grad();
    if (g.defined()) grads.push_back(g);
  }
  if (grads.empty()) {
    *total = 0;
    return 0;
  }
  std::vector<at::Tensor> norms;
  for (auto& g : grads) norms.push_back(g.norm(2).to(at::kDouble).cpu());
  double t = at::stack(norms).norm(2).item<double>();
  *total = t;
  double coef = max_norm / (t + 1e-6);
  if (max_norm > 0 && coef < 1.0) {
    for (auto& g : grads) g.mul_(coef);
  }
  return 0;
  LT_END(-1)
}

// ------------------------------------------------------------------ AdamW

lt_optim lt_adamw_new(const lt_tensor* ts, int32_t n, double lr, double beta1, double beta2,
                      double eps, double weight_decay) {
  LT_BEGIN
  std::vector<at::Tensor> params;
  for (int32_t i = 0; i < n; i++) {
    if (!T(ts[i]).requires_grad()) {
      throw std::invalid_argument("AdamW: parameter " + std::to_string(i) +
                                  " does not require grad; call requiresGrad_(true) first");
    }
    params.push_back(T(ts[i]));
  }
  auto opts = torch::optim::AdamWOptions(lr).betas({beta1, beta2}).eps(eps).weight_decay(
      weight_decay);
  return new torch::optim::AdamW(params, opts);
  LT_END(nullptr)
}

int32_t lt_adamw_step(lt_optim o, double lr) {
  LT_BEGIN
  auto* opt = static_cast<torch::optim::AdamW*>(o);
  if (opt == nullptr) throw std::invalid_argument("null optimizer handle");
  for (auto& g : opt->param_groups()) {
    static_cast<torch::optim::AdamWOptions&>(g.options()).lr(lr);
  }
  opt->step();
  return 0;
  LT_END(-1)
}

int32_t lt_adamw_zero_grad(lt_optim o) {
  LT_BEGIN
  auto* opt = static_cast<torch::optim::AdamW*>(o);
  if (opt == nullptr) throw std::invalid_argument("null optimizer handle");
  opt->zero_grad();
  return 0;
  LT_END(-1)
}

void lt_adamw_free(lt_optim o) { delete static_cast<torch::optim::AdamW*>(o); }

// ------------------------------------------------------- devices & memory

int32_t lt_cuda_available(void) {
  LT_BEGIN
  return torch::cuda::is_available() ? 1 : 0;
  LT_END(0)
}

int32_t lt_cuda_device_count(void) {
  LT_BEGIN
  return static_cast<int32_t>(torch::cuda::device_count());
  LT_END(0)
}

int32_t lt_cuda_synchronize(int32_t device) {
  LT_BEGIN
#ifdef LT_WITH_CUDA
  torch::cuda::synchronize(device);
#else
  (void)device;
#endif
  return 0;
  LT_END(-1)
}

int32_t lt_cuda_memory(int32_t device, int64_t* out) {
  LT_BEGIN
#ifdef LT_WITH_CUDA
  auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(device);
  const auto agg = static_cast<size_t>(c10::CachingAllocator::StatType::AGGREGATE);
  out[0] = stats.allocated_bytes[agg].current;
  out[1] = stats.allocated_bytes[agg].peak;
  out[2] = stats.reserved_bytes[agg].current;
  out[3] = stats.reserved_bytes[agg].peak;
  return 0;
#else
  (void)device;
  (void)out;
  throw std::runtime_error("this shim was built without CUDA");
#endif
  LT_END(-1)
}

int32_t lt_cuda_reset_peak(int32_t device) {
  LT_BEGIN
#ifdef LT_WITH_CUDA
  c10::cuda::CUDACachingAllocator::resetPeakStats(device);
  return 0;
#else
  (void)device;
  throw std::runtime_error("this shim was built without CUDA");
#endif
  LT_END(-1)
}

}  // extern "C"
