// C ABI over ATen for the Deno binding.
//
// Tensors are opaque handles (heap-allocated at::Tensor). Every entry point
// catches C++ exceptions: a function returning a handle returns NULL on
// failure, a function returning int returns a negative value, and the
// message is available from lt_last_error() on the same thread.
#pragma once
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef void* lt_tensor;
typedef void* lt_optim;

const char* lt_last_error(void);
const char* lt_last_error_global(void);
void lt_set_error(const char* msg);
const char* lt_version(void);
int32_t lt_has_cuda_build(void);
void lt_set_num_threads(int32_t n);
int32_t lt_get_num_threads(void);
void lt_manual_seed(uint64_t seed);
int32_t lt_set_grad_enabled(int32_t on);

void lt_free(lt_tensor t);

// creation
lt_tensor lt_from_data(const void* data, const int64_t* shape, int32_t ndim, int32_t dtype);
lt_tensor lt_full(const int64_t* shape, int32_t ndim, double value, int32_t dtype,
                  int32_t dev_type, int32_t dev_index);
lt_tensor lt_arange(double start, double end, double step, int32_t dtype, int32_t dev_type,
                    int32_t dev_index);
lt_tensor lt_random(int32_t kind, const int64_t* shape, int32_t ndim, int32_t dtype,
                    int32_t dev_type, int32_t dev_index);

// introspection
int32_t lt_ndim(lt_tensor t);
int32_t lt_shape(lt_tensor t, int64_t* out);
int32_t lt_dtype(lt_tensor t);
int32_t lt_device(lt_tensor t, int32_t* out);
int32_t lt_requires_grad(lt_tensor t);
int32_t lt_copy_out(lt_tensor t, void* out, int64_t nbytes);
int32_t lt_item(lt_tensor t, double* out);

// generic op families (op codes in ops.ts)
lt_tensor lt_unary(int32_t op, lt_tensor a);
lt_tensor lt_binary(int32_t op, lt_tensor a, lt_tensor b);
lt_tensor lt_binary_scalar(int32_t op, lt_tensor a, double s);
lt_tensor lt_reduce(int32_t op, lt_tensor a, const int64_t* dims, int32_t ndims, int32_t keepdim);
lt_tensor lt_dim_op(int32_t op, lt_tensor a, int64_t dim, double arg);
lt_tensor lt_shape_op(int32_t op, lt_tensor a, const int64_t* shape, int32_t ndim);

// specific ops
lt_tensor lt_to(lt_tensor a, int32_t dtype, int32_t dev_type, int32_t dev_index);
lt_tensor lt_linear(lt_tensor x, lt_tensor w, lt_tensor b);
lt_tensor lt_rms_norm(lt_tensor x, lt_tensor w, double eps);
lt_tensor lt_layer_norm(lt_tensor x, lt_tensor w, lt_tensor b, double eps);
lt_tensor lt_embedding(lt_tensor w, lt_tensor ids);
lt_tensor lt_transpose(lt_tensor a, int64_t d0, int64_t d1);
lt_tensor lt_narrow(lt_tensor a, int64_t dim, int64_t start, int64_t length);
lt_tensor lt_slice(lt_tensor a, int64_t dim, int64_t start, int64_t end, int64_t step);
lt_tensor lt_cat(const lt_tensor* ts, int32_t n, int64_t dim, int32_t stack);
int32_t lt_split(lt_tensor a, int64_t size_or_chunks, int64_t dim, int32_t chunks, lt_tensor* out,
                 int32_t max_out);
lt_tensor lt_index_op(int32_t op, lt_tensor a, int64_t dim, lt_tensor index, lt_tensor src);
lt_tensor lt_where(lt_tensor cond, lt_tensor a, lt_tensor b);
lt_tensor lt_masked_fill(lt_tensor a, lt_tensor mask, double value);
lt_tensor lt_clamp(lt_tensor a, double lo, double hi, int32_t has_lo, int32_t has_hi);
int32_t lt_topk(lt_tensor a, int64_t k, int64_t dim, int32_t largest, lt_tensor* out);
int32_t lt_sort(lt_tensor a, int64_t dim, int32_t descending, lt_tensor* out);
lt_tensor lt_multinomial(lt_tensor probs, int64_t n, int32_t replacement);
lt_tensor lt_cross_entropy(lt_tensor logits, lt_tensor target, int64_t ignore_index,
                           int32_t reduction);
lt_tensor lt_dropout(lt_tensor a, double p, int32_t train);
lt_tensor lt_sdpa(lt_tensor q, lt_tensor k, lt_tensor v, lt_tensor mask, int32_t causal,
                  double scale);
int32_t lt_has_fused_sdpa(void);

// in-place
int32_t lt_copy_(lt_tensor dst, lt_tensor src);
int32_t lt_fill_(lt_tensor dst, double value);

// autograd
int32_t lt_set_requires_grad(lt_tensor a, int32_t on);
int32_t lt_backward(lt_tensor a, lt_tensor grad);
lt_tensor lt_grad(lt_tensor a);
int32_t lt_zero_grad(lt_tensor a);
int32_t lt_clip_grad_norm(const lt_tensor* ts, int32_t n, double max_norm, double* total);

// AdamW
lt_optim lt_adamw_new(const lt_tensor* ts, int32_t n, double lr, double beta1, double beta2,
                      double eps, double weight_decay);
int32_t lt_adamw_step(lt_optim o, double lr);
int32_t lt_adamw_zero_grad(lt_optim o);
void lt_adamw_free(lt_optim o);

// devices and memory
int32_t lt_cuda_available(void);
int32_t lt_cuda_device_count(void);
int32_t lt_cuda_synchronize(int32_t device);
// out: [allocated, peak allocated, reserved, peak reserved]
int32_t lt_cuda_memory(int32_t device, int64_t* out);
int32_t lt_cuda_reset_peak(int32_t device);

#ifdef __cplusplus
}
#endif
