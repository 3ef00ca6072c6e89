/* cuda_kernels.h: the CUDA device's kernels, as C functions that enqueue them on a stream (cuda_kernels.cu). They
 * take device pointers (a view's buffer plus its offset) and strides in elements; each returns the launch's error
 * (cudaSuccess, or why the launch failed: a bad configuration, a lost device), and launches nothing for an empty
 * op. The step's metadata (`meta`, n_step tokens) is the flat form of step_flat.h in device memory, its table offsets
 * word indices into meta. Rows beyond what one grid dimension holds are taken in turn. */
#ifndef TND_BACKEND_CUDA_CUDA_KERNELS_H
#define TND_BACKEND_CUDA_CUDA_KERNELS_H

#include "tandem.h"

#include <cuda_runtime_api.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Whether the kernels decode weights of type t (matmul, matmul_experts). */
bool tnd_cuda_weight_type(tnd_type t);
/* Whether the KV cache can be kept as t (F32, F16, Q8_0, Q4_0) with heads of head_dim elements. */
bool tnd_cuda_kv_type(tnd_type t, int32_t head_dim);

enum { TND_CUDA_MAX_HEAD_DIM = 256, TND_CUDA_MAX_USED = 16 };

/* y[t][r] = sum_c w[r][c] x[t][c] for n_tokens tokens; w's rows are row_bytes apart. */
cudaError_t tnd_cuda_matmul(cudaStream_t s, tnd_type type, const uint8_t *w, size_t row_bytes, int32_t n_cols,
                            int32_t n_rows, const float *x, int32_t x_stride, float *y, int32_t y_stride,
                            int32_t n_tokens);

/* Whether weights of type t have 8-bit levels for the int8 matmul (the quantized types). */
bool tnd_cuda_int8_type(tnd_type t);

enum { TND_CUDA_Q8_WORDS = 11 }; /* 32-bit words of an activation block of 32 in 8 bits (cuda_math.cuh) */

/* Rows of x ([n_rows][n_cols], rows x_stride apart) as 8-bit blocks into xq: ceil(n_cols / 32) blocks of
 * TND_CUDA_Q8_WORDS words per row. */
cudaError_t tnd_cuda_quantize_q8(cudaStream_t s, const float *x, int32_t x_stride, int32_t n_cols, int32_t n_rows,
                                 uint32_t *xq);

/* y[t][r] = w[r] . x[t] with int8 dot products, x as tnd_cuda_quantize_q8 left it (n_cols a multiple of 32). */
cudaError_t tnd_cuda_matmul_q8(cudaStream_t s, tnd_type type, const uint8_t *w, size_t row_bytes, int32_t n_cols,
                               int32_t n_rows, const uint32_t *xq, float *y, int32_t y_stride, int32_t n_tokens);

/* The chosen experts' rows (see backend.h's matmul_experts): pair q = t * n_used + j uses expert ids[t][j]. */
cudaError_t tnd_cuda_matmul_experts(cudaStream_t s, tnd_type type, const uint8_t *w, size_t row_bytes,
                                    int32_t n_cols, int32_t rows_per_expert, int32_t n_pairs, int32_t n_used,
                                    bool per_slot, const float *x, int32_t x_stride, const int32_t *ids,
                                    int32_t ids_stride, float *y, int32_t y_stride);

cudaError_t tnd_cuda_rms_norm(cudaStream_t s, const float *x, int32_t x_stride, const float *gamma, float *y,
                              int32_t y_stride, int32_t n_cols, int32_t n_rows, float eps);

enum { TND_CUDA_ADD = 0, TND_CUDA_SWIGLU = 1, TND_CUDA_COPY = 2, TND_CUDA_SIGMOID_SCALE = 3 };

/* o[r][i] = f(a[r][i], b[r][i]) for op TND_CUDA_*; b_stride 0 repeats b's first row (a bias); SIGMOID_SCALE reads
 * one gate per row of b. */
cudaError_t tnd_cuda_elementwise(cudaStream_t s, int op, const float *a, int32_t a_stride, const float *b,
                                 int32_t b_stride, float *o, int32_t o_stride, int32_t n_cols, int32_t n_rows);

/* Rotates x in place ([n_tokens][n_heads * head_dim], rows x_stride apart; the step's first n_tokens tokens) at
 * the step's positions; factors may be NULL. */
cudaError_t tnd_cuda_rope(cudaStream_t s, float *x, int32_t x_stride, int32_t n_tokens, int32_t n_heads,
                          int32_t head_dim, int32_t n_rot, bool neox, const float *factors, float base, float scale,
                          const uint32_t *meta);

/* Stores rows of src ([n_tokens][width], the step's first tokens) into pool rows of row_bytes at the step's slots,
 * as type. */
cudaError_t tnd_cuda_kv_store(cudaStream_t s, tnd_type type, const float *src, int32_t src_stride, int32_t width,
                              int32_t n_tokens, uint8_t *pool, size_t row_bytes, const uint32_t *meta,
                              int32_t n_step);

/* Paged causal attention of the step's first n_tokens tokens (see backend.h's tnd_attention_args);
 * cudaErrorInvalidValue for KV types, heads or a head_dim (> TND_CUDA_MAX_HEAD_DIM) it cannot take. */
cudaError_t tnd_cuda_attention(cudaStream_t s, tnd_type k_type, tnd_type v_type, const float *q, int32_t q_stride,
                               float *out, int32_t o_stride, int32_t n_tokens, int32_t n_head, int32_t n_head_kv,
                               int32_t head_dim, const uint8_t *k_pool, const uint8_t *v_pool, size_t k_row_bytes,
                               size_t v_row_bytes, int32_t block_size, float scale, const uint32_t *meta,
                               int32_t n_step);

/* The router's choice (see backend.h's tnd_moe_route_args); n_used <= TND_CUDA_MAX_USED. */
cudaError_t tnd_cuda_moe_route(cudaStream_t s, const float *logits, int32_t l_stride, int32_t n_tokens,
                               int32_t n_experts, int32_t n_used, bool normalize, int32_t *ids, int32_t ids_stride,
                               float *weights, int32_t w_stride);

/* y[t][i] += sum over j of weights[t][j] * experts[t * n_used + j][i]. */
cudaError_t tnd_cuda_moe_combine(cudaStream_t s, const float *experts, int32_t e_stride, const float *weights,
                                 int32_t w_stride, int32_t n_used, float *y, int32_t y_stride, int32_t width,
                                 int32_t n_tokens);

#ifdef __cplusplus
}
#endif

#endif
