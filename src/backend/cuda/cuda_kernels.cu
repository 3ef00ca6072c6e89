// cuda_kernels.cu: the CUDA device's kernels and the C functions that launch them (cuda_kernels.h). What they compute
// per element (decoding weight chunks and KV rows, quantizing KV rows) is in cuda_math.cuh. Every sum runs in a fixed
// order that does not depend on the batch, so a row's result is the same however many tokens a step has.
#include "backend/cuda/cuda_kernels.h"
#include "backend/cuda/cuda_math.cuh"

#include <cuda_fp16.h>
#include <stdint.h>
#include <type_traits>

namespace {

using namespace tnd_cuda;

static_assert(Q8_WORDS == TND_CUDA_Q8_WORDS, "one layout of the activation blocks");

__device__ __forceinline__ float warp_sum(float x) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) x += __shfl_xor_sync(0xffffffffu, x, o);
    return x;
}

__device__ __forceinline__ float warp_max(float x) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, o));
    return x;
}

// Sum (or maximum) over a block of blockDim.x threads, a multiple of 32 up to 1024; every thread gets it. Every
// thread of the block must call it (it has barriers).
template <bool MAX> __device__ float block_reduce(float x) {
    __shared__ float scratch[32];
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, n_warps = blockDim.x >> 5;
    x = MAX ? warp_max(x) : warp_sum(x);
    if (lane == 0) scratch[warp] = x;
    __syncthreads();
    float r = scratch[0];
    for (int i = 1; i < n_warps; i++) r = MAX ? fmaxf(r, scratch[i]) : r + scratch[i];
    __syncthreads();
    return r;
}

// The step's metadata (step_flat.h): positions, slots, context lengths, table offsets, tables.
__device__ __forceinline__ uint32_t step_slot_of(const uint32_t *meta, int n_step, int t, uint32_t pos,
                                                 int block_size) {
    uint32_t table = meta[3 * n_step + t];
    return meta[table + pos / (uint32_t)block_size] * (uint32_t)block_size + pos % (uint32_t)block_size;
}

// ---------------------------------------------------------------------------------------------------------------
// Kernels
// ---------------------------------------------------------------------------------------------------------------

constexpr int MM_ROWS = 4, MM_TOKENS = 8; // a block: a warp per row, MM_ROWS rows; a block of tokens per grid row

// Row `row` (at r) times up to MM_TOKENS tokens of x into y: each lane takes the row's chunks lane, lane + 32, ...,
// decodes each once for the tokens; the lanes' sums meet by shuffles in a fixed order.
template <tnd_type T>
__device__ void matmul_tokens(const uint8_t *r, int n_cols, int row, const float *x, int x_stride, float *y,
                              int y_stride, int nt, int lane) {
    float acc[MM_TOKENS];
#pragma unroll
    for (int t = 0; t < MM_TOKENS; t++) acc[t] = 0.0f;
    int n_chunks = (n_cols + 31) / 32;
    for (int c = lane; c < n_chunks; c += 32) {
        float v[32];
        dequant32<T>(r, c, n_cols, v);
        int n = min(32, n_cols - 32 * c);
#pragma unroll
        for (int t = 0; t < MM_TOKENS; t++) {
            if (t >= nt) break;
            const float *xr = x + (size_t)t * x_stride + 32 * c;
            float s = 0.0f;
            if (n == 32) {
#pragma unroll
                for (int i = 0; i < 32; i++) s += v[i] * xr[i];
            } else {
                for (int i = 0; i < n; i++) s += v[i] * xr[i];
            }
            acc[t] += s;
        }
    }
#pragma unroll
    for (int t = 0; t < MM_TOKENS; t++) acc[t] = warp_sum(acc[t]);
    if (lane == 0)
        for (int t = 0; t < nt; t++) y[(size_t)t * y_stride + row] = acc[t];
}

// y[t][r] = w[r] . x[t]: a warp per row, MM_ROWS rows per block, blocks of MM_TOKENS tokens over the grid's y (in
// turn where there are more than it holds).
template <tnd_type T>
__global__ void matmul_kernel(const uint8_t *w, size_t row_bytes, int n_cols, int n_rows, const float *x, int x_stride,
                              float *y, int y_stride, int n_tokens) {
    int row = blockIdx.x * MM_ROWS + threadIdx.y, lane = threadIdx.x;
    if (row >= n_rows) return; // the whole warp leaves; nothing below waits for the block
    const uint8_t *r = w + (size_t)row * row_bytes;
    for (int t0 = blockIdx.y * MM_TOKENS; t0 < n_tokens; t0 += gridDim.y * MM_TOKENS)
        matmul_tokens<T>(r, n_cols, row, x + (size_t)t0 * x_stride, x_stride, y + (size_t)t0 * y_stride, y_stride,
                         min(MM_TOKENS, n_tokens - t0), lane);
}

// The same with int8 dot products: row `row` times up to MM_TOKENS tokens' 8-bit blocks (blocks_per_row per token).
template <tnd_type T>
__device__ void matmul_q8_tokens(const uint8_t *r, int n_cols, int row, const uint32_t *xq, int blocks_per_row,
                                 float *y, int y_stride, int nt, int lane) {
    float acc[MM_TOKENS];
#pragma unroll
    for (int t = 0; t < MM_TOKENS; t++) acc[t] = 0.0f;
    for (int c = lane; c < n_cols / 32; c += 32) {
        uint32_t qw[8];
        float scale[2], minv[2];
        chunk_levels<T>(r, c, qw, scale, minv);
#pragma unroll
        for (int t = 0; t < MM_TOKENS; t++) {
            if (t >= nt) break;
            acc[t] += dot_chunk_q8(qw, scale, minv, xq + ((size_t)t * blocks_per_row + c) * Q8_WORDS);
        }
    }
#pragma unroll
    for (int t = 0; t < MM_TOKENS; t++) acc[t] = warp_sum(acc[t]);
    if (lane == 0)
        for (int t = 0; t < nt; t++) y[(size_t)t * y_stride + row] = acc[t];
}

template <tnd_type T>
__global__ void matmul_q8_kernel(const uint8_t *w, size_t row_bytes, int n_cols, int n_rows, const uint32_t *xq,
                                 float *y, int y_stride, int n_tokens) {
    int row = blockIdx.x * MM_ROWS + threadIdx.y, lane = threadIdx.x, blocks_per_row = n_cols / 32;
    if (row >= n_rows) return; // the whole warp leaves; nothing below waits for the block
    const uint8_t *r = w + (size_t)row * row_bytes;
    for (int t0 = blockIdx.y * MM_TOKENS; t0 < n_tokens; t0 += gridDim.y * MM_TOKENS)
        matmul_q8_tokens<T>(r, n_cols, row, xq + (size_t)t0 * blocks_per_row * Q8_WORDS, blocks_per_row,
                            y + (size_t)t0 * y_stride, y_stride, min(MM_TOKENS, n_tokens - t0), lane);
}

// Rows of x as 8-bit blocks (quantize_q8_block): one thread per block, rows over the grid's y in turn.
__global__ void quantize_q8_kernel(const float *x, int x_stride, int n_cols, int n_rows, uint32_t *xq) {
    int b = blockIdx.x * blockDim.x + threadIdx.x, blocks_per_row = (n_cols + 31) / 32;
    if (b >= blocks_per_row) return;
    for (int r = blockIdx.y; r < n_rows; r += gridDim.y) {
        uint32_t block[Q8_WORDS];
        quantize_q8_block(x + (size_t)r * x_stride, b, n_cols, block);
        uint32_t *out = xq + ((size_t)r * blocks_per_row + b) * Q8_WORDS;
        for (int i = 0; i < Q8_WORDS; i++) out[i] = block[i];
    }
}

// Row r of pair q's expert times the pair's input.
template <tnd_type T>
__device__ void expert_row(const uint8_t *w, size_t row_bytes, int n_cols, int rows_per_expert, int n_used,
                           bool per_slot, const float *x, int x_stride, const int32_t *ids, int ids_stride, float *y,
                           int y_stride, int q, int r, int lane) {
    int t = q / n_used, j = q % n_used, expert = ids[(size_t)t * ids_stride + j];
    if (expert < 0) { // a skipped pair (the whole warp leaves): zeros
        if (lane == 0) y[(size_t)q * y_stride + r] = 0.0f;
        return;
    }
    const uint8_t *row = w + ((size_t)expert * rows_per_expert + r) * row_bytes;
    const float *xr = x + (size_t)(per_slot ? q : t) * x_stride;
    float acc = 0.0f;
    int n_chunks = (n_cols + 31) / 32;
    for (int c = lane; c < n_chunks; c += 32) {
        float v[32];
        dequant32<T>(row, c, n_cols, v);
        int n = min(32, n_cols - 32 * c);
        for (int i = 0; i < n; i++) acc += v[i] * xr[32 * c + i];
    }
    acc = warp_sum(acc);
    if (lane == 0) y[(size_t)q * y_stride + r] = acc;
}

// A warp per (pair, expert row), pairs over the grid's x, MM_ROWS rows per block over its y (in turn where there
// are more than it holds): pair q = (token t, slot j) uses expert ids[t][j] (-1: none, its row of y is zeros).
template <tnd_type T>
__global__ void matmul_experts_kernel(const uint8_t *w, size_t row_bytes, int n_cols, int rows_per_expert, int n_used,
                                      bool per_slot, const float *x, int x_stride, const int32_t *ids, int ids_stride,
                                      float *y, int y_stride) {
    int q = blockIdx.x, lane = threadIdx.x;
    for (int r = blockIdx.y * MM_ROWS + threadIdx.y; r < rows_per_expert; r += gridDim.y * MM_ROWS)
        expert_row<T>(w, row_bytes, n_cols, rows_per_expert, n_used, per_slot, x, x_stride, ids, ids_stride, y,
                      y_stride, q, r, lane);
}

constexpr int NORM_THREADS = 256;

__global__ void rms_norm_kernel(const float *x, int x_stride, const float *g, float *y, int y_stride, int n_cols,
                                float eps) {
    const float *xr = x + (size_t)blockIdx.x * x_stride;
    float *yr = y + (size_t)blockIdx.x * y_stride;
    float ss = 0.0f;
    for (int i = threadIdx.x; i < n_cols; i += blockDim.x) ss += xr[i] * xr[i];
    float scale = rsqrtf(block_reduce<false>(ss) / (float)n_cols + eps);
    for (int i = threadIdx.x; i < n_cols; i += blockDim.x) yr[i] = xr[i] * scale * g[i];
}

// Rows over the grid's y, in turn where there are more than it holds (MAX_GRID_YZ); so for the kernels below.
constexpr int MAX_GRID_YZ = 65535;

__global__ void elementwise_kernel(int op, const float *a, int a_stride, const float *b, int b_stride, float *o,
                                   int o_stride, int n_cols, int n_rows) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n_cols) return;
    for (int r = blockIdx.y; r < n_rows; r += gridDim.y) {
        float av = a[(size_t)r * a_stride + i], bv = b[(size_t)r * b_stride + (op == TND_CUDA_SIGMOID_SCALE ? 0 : i)];
        float z;
        if (op == TND_CUDA_ADD) z = av + bv;
        else if (op == TND_CUDA_SWIGLU) z = av / (1.0f + expf(-av)) * bv;
        else if (op == TND_CUDA_COPY) z = bv;
        else z = av / (1.0f + expf(-bv)); // sigmoid_scale: one gate per row
        o[(size_t)r * o_stride + i] = z;
    }
}

__global__ void rope_kernel(float *x, int x_stride, int n_tokens, int n_heads, int head_dim, int n_rot, bool neox,
                            const float *factors, float base, float scale, const uint32_t *meta) {
    int i = blockIdx.x * blockDim.x + threadIdx.x, h = blockIdx.y, half_rot = n_rot / 2;
    if (i >= half_rot || h >= n_heads) return;
    for (int t = blockIdx.z; t < n_tokens; t += gridDim.z) {
        float theta = (float)meta[t] * scale * exp2f(log2f(base) * (-2.0f * (float)i / (float)n_rot));
        if (factors) theta /= factors[i];
        float c, s;
        sincosf(theta, &s, &c);
        float *head = x + (size_t)t * x_stride + (size_t)h * head_dim;
        int i0 = neox ? i : 2 * i, i1 = neox ? i + half_rot : 2 * i + 1;
        float a = head[i0], b = head[i1];
        head[i0] = a * c - b * s;
        head[i1] = a * s + b * c;
    }
}

// The step's rows of src into the pool at their slots: one thread per element (F32, F16) or block of 32 (Q8_0, Q4_0,
// quantized as the CPU quantizes them, so both caches hold the same values; a block with a NaN or infinity gets a
// NaN scale and zero levels).
template <tnd_type T>
__global__ void kv_store_kernel(const float *src, int src_stride, int width, int n_tokens, uint8_t *pool,
                                size_t row_bytes, const uint32_t *meta, int n_step) {
    int j = blockIdx.x * blockDim.x + threadIdx.x;
    for (int t = blockIdx.y; t < n_tokens; t += gridDim.y)
        store_row<T>(src + (size_t)t * src_stride, j, width, pool + (size_t)meta[n_step + t] * row_bytes);
}

constexpr int ATT_THREADS = 64, ATT_DIMS = TND_CUDA_MAX_HEAD_DIM / ATT_THREADS;

// Query head blockIdx.x of token t over its context: the context is walked in tiles of ATT_THREADS positions; each
// thread scores one position of the tile, the block keeps a running maximum and sum of the softmax (rescaling what it
// has summed when the maximum grows), and each thread accumulates up to ATT_DIMS of the head's dimensions of the
// weighted V rows.
template <tnd_type K, tnd_type V>
__device__ void attend(const float *q, int q_stride, float *out, int o_stride, int t, int n_head, int n_head_kv,
                       int head_dim, const uint8_t *k_pool, const uint8_t *v_pool, size_t k_row_bytes,
                       size_t v_row_bytes, int block_size, float scale, const uint32_t *meta, int n_step) {
    __shared__ float qs[TND_CUDA_MAX_HEAD_DIM];
    __shared__ float weights[ATT_THREADS];
    __shared__ uint32_t slots[ATT_THREADS];
    int h = blockIdx.x, tid = threadIdx.x;
    __syncthreads(); // a previous token's reads of qs are over
    int hk = h / (n_head / n_head_kv), kb = hk * head_dim;
    uint32_t n_ctx = meta[2 * n_step + t];
    const float *qh = q + (size_t)t * q_stride + (size_t)h * head_dim;
    for (int i = tid; i < head_dim; i += ATT_THREADS) qs[i] = qh[i] * scale;
    __syncthreads();
    float m = -INFINITY, sum = 0.0f, acc[ATT_DIMS];
#pragma unroll
    for (int j = 0; j < ATT_DIMS; j++) acc[j] = 0.0f;
    for (uint32_t p0 = 0; p0 < n_ctx; p0 += ATT_THREADS) {
        uint32_t pos = p0 + tid;
        float s = -INFINITY;
        if (pos < n_ctx) {
            uint32_t slot = step_slot_of(meta, n_step, t, pos, block_size);
            slots[tid] = slot;
            const uint8_t *krow = k_pool + (size_t)slot * k_row_bytes;
            s = 0.0f;
            for (int i = 0; i < head_dim; i++) s += qs[i] * kv_at<K>(krow, kb + i);
        }
        float m_new = fmaxf(m, block_reduce<true>(s)); // finite: the tile has at least one position
        float e = pos < n_ctx ? expf(s - m_new) : 0.0f, correction = expf(m - m_new);
        weights[tid] = e;
        sum = sum * correction + block_reduce<false>(e); // its barriers also publish weights[] and slots[]
        int n = (int)min((uint32_t)ATT_THREADS, n_ctx - p0);
#pragma unroll
        for (int j = 0; j < ATT_DIMS; j++) {
            int dim = tid + j * ATT_THREADS;
            if (dim >= head_dim) break;
            float a = acc[j] * correction;
            for (int i = 0; i < n; i++) a += weights[i] * kv_at<V>(v_pool + (size_t)slots[i] * v_row_bytes, kb + dim);
            acc[j] = a;
        }
        m = m_new;
        __syncthreads(); // weights[] and slots[] are rewritten by the next tile
    }
    float *oh = out + (size_t)t * o_stride + (size_t)h * head_dim;
#pragma unroll
    for (int j = 0; j < ATT_DIMS; j++) {
        int dim = tid + j * ATT_THREADS;
        if (dim < head_dim) oh[dim] = acc[j] / sum;
    }
}

// Flash-style paged attention: one block per (query head, token), tokens over the grid's y (in turn where there are
// more than it holds).
template <tnd_type K, tnd_type V>
__global__ void attention_kernel(const float *q, int q_stride, float *out, int o_stride, int n_tokens, int n_head,
                                 int n_head_kv, int head_dim, const uint8_t *k_pool, const uint8_t *v_pool,
                                 size_t k_row_bytes, size_t v_row_bytes, int block_size, float scale,
                                 const uint32_t *meta, int n_step) {
    for (int t = blockIdx.y; t < n_tokens; t += gridDim.y) // the same t for the whole block: its barriers agree
        attend<K, V>(q, q_stride, out, o_stride, t, n_head, n_head_kv, head_dim, k_pool, v_pool, k_row_bytes,
                     v_row_bytes, block_size, scale, meta, n_step);
}

// One thread per token: the n_used largest logits (ties to the lower index, in descending order), weighed by their
// softmax over all experts, or over the chosen ones where `normalize`.
__global__ void moe_route_kernel(const float *logits, int l_stride, int n_tokens, int n_experts, int n_used,
                                 bool normalize, int32_t *ids, int ids_stride, float *weights, int w_stride) {
    int t = blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= n_tokens) return;
    const float *l = logits + (size_t)t * l_stride;
    int chosen[TND_CUDA_MAX_USED];
    for (int j = 0; j < n_used; j++) {
        int best = -1;
        for (int e = 0; e < n_experts; e++) {
            bool taken = false;
            for (int i = 0; i < j; i++) taken = taken || chosen[i] == e;
            if (!taken && (best < 0 || l[e] > l[best])) best = e;
        }
        chosen[j] = best;
    }
    float m = l[chosen[0]], all = 0.0f, picked = 0.0f;
    for (int e = 0; e < n_experts; e++) all += expf(l[e] - m);
    for (int j = 0; j < n_used; j++) picked += expf(l[chosen[j]] - m);
    float denominator = normalize ? picked : all;
    for (int j = 0; j < n_used; j++) {
        ids[(size_t)t * ids_stride + j] = chosen[j];
        weights[(size_t)t * w_stride + j] = expf(l[chosen[j]] - m) / denominator;
    }
}

__global__ void moe_combine_kernel(const float *experts, int e_stride, const float *weights, int w_stride, int n_used,
                                   float *y, int y_stride, int width, int n_tokens) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= width) return;
    for (int t = blockIdx.y; t < n_tokens; t += gridDim.y) {
        float acc = 0.0f;
        for (int j = 0; j < n_used; j++)
            acc += weights[(size_t)t * w_stride + j] * experts[((size_t)t * n_used + j) * e_stride + i];
        y[(size_t)t * y_stride + i] += acc;
    }
}

unsigned div_up(long long a, int b) { return (unsigned)((a + b - 1) / b); }

// A grid's y or z extent for n rows, which the kernels take in turn beyond MAX_GRID_YZ.
unsigned rows_extent(int n) { return (unsigned)min(n, MAX_GRID_YZ); }

} // namespace

// ---------------------------------------------------------------------------------------------------------------
// Launchers
// ---------------------------------------------------------------------------------------------------------------

extern "C" bool tnd_cuda_weight_type(tnd_type t) {
    return with_weight_type(t, [](auto) {});
}

extern "C" bool tnd_cuda_kv_type(tnd_type t, int32_t head_dim) {
    bool blocks = t == TND_TYPE_Q8_0 || t == TND_TYPE_Q4_0;
    return with_kv_type(t, [](auto) {}) && head_dim % 2 == 0 && (!blocks || head_dim % 32 == 0);
}

// Every launcher returns at once, launching nothing, for an empty op (CUDA refuses a grid extent of 0).

extern "C" cudaError_t tnd_cuda_matmul(cudaStream_t s, tnd_type type, const uint8_t *w, size_t row_bytes,
                                       int32_t n_cols, int32_t n_rows, const float *x, int32_t x_stride, float *y,
                                       int32_t y_stride, int32_t n_tokens) {
    if (n_rows <= 0 || n_tokens <= 0) return cudaSuccess;
    dim3 grid(div_up(n_rows, MM_ROWS), rows_extent((int)div_up(n_tokens, MM_TOKENS))), block(32, MM_ROWS);
    if (!with_weight_type(type, [&](auto T) {
            matmul_kernel<decltype(T)::value>
                <<<grid, block, 0, s>>>(w, row_bytes, n_cols, n_rows, x, x_stride, y, y_stride, n_tokens);
        }))
        return cudaErrorInvalidValue;
    return cudaGetLastError();
}

extern "C" bool tnd_cuda_int8_type(tnd_type t) {
    return with_quantized_type(t, [](auto) {});
}

extern "C" cudaError_t tnd_cuda_quantize_q8(cudaStream_t s, const float *x, int32_t x_stride, int32_t n_cols,
                                            int32_t n_rows, uint32_t *xq) {
    if (n_cols <= 0 || n_rows <= 0) return cudaSuccess;
    quantize_q8_kernel<<<dim3(div_up(div_up(n_cols, 32), 64), rows_extent(n_rows)), 64, 0, s>>>(x, x_stride, n_cols,
                                                                                                n_rows, xq);
    return cudaGetLastError();
}

extern "C" cudaError_t tnd_cuda_matmul_q8(cudaStream_t s, tnd_type type, const uint8_t *w, size_t row_bytes,
                                          int32_t n_cols, int32_t n_rows, const uint32_t *xq, float *y,
                                          int32_t y_stride, int32_t n_tokens) {
    if (n_rows <= 0 || n_tokens <= 0) return cudaSuccess;
    dim3 grid(div_up(n_rows, MM_ROWS), rows_extent((int)div_up(n_tokens, MM_TOKENS))), block(32, MM_ROWS);
    if (!with_quantized_type(type, [&](auto T) {
            matmul_q8_kernel<decltype(T)::value>
                <<<grid, block, 0, s>>>(w, row_bytes, n_cols, n_rows, xq, y, y_stride, n_tokens);
        }))
        return cudaErrorInvalidValue;
    return cudaGetLastError();
}

extern "C" cudaError_t tnd_cuda_matmul_experts(cudaStream_t s, tnd_type type, const uint8_t *w, size_t row_bytes,
                                               int32_t n_cols, int32_t rows_per_expert, int32_t n_pairs,
                                               int32_t n_used, bool per_slot, const float *x, int32_t x_stride,
                                               const int32_t *ids, int32_t ids_stride, float *y, int32_t y_stride) {
    if (n_pairs <= 0 || rows_per_expert <= 0) return cudaSuccess;
    dim3 grid((unsigned)n_pairs, rows_extent((int)div_up(rows_per_expert, MM_ROWS))), block(32, MM_ROWS);
    if (!with_weight_type(type, [&](auto T) {
            matmul_experts_kernel<decltype(T)::value><<<grid, block, 0, s>>>(
                w, row_bytes, n_cols, rows_per_expert, n_used, per_slot, x, x_stride, ids, ids_stride, y, y_stride);
        }))
        return cudaErrorInvalidValue;
    return cudaGetLastError();
}

extern "C" cudaError_t tnd_cuda_rms_norm(cudaStream_t s, const float *x, int32_t x_stride, const float *gamma,
                                         float *y, int32_t y_stride, int32_t n_cols, int32_t n_rows, float eps) {
    if (n_rows <= 0) return cudaSuccess;
    rms_norm_kernel<<<n_rows, NORM_THREADS, 0, s>>>(x, x_stride, gamma, y, y_stride, n_cols, eps);
    return cudaGetLastError();
}

extern "C" cudaError_t tnd_cuda_elementwise(cudaStream_t s, int op, const float *a, int32_t a_stride, const float *b,
                                            int32_t b_stride, float *o, int32_t o_stride, int32_t n_cols,
                                            int32_t n_rows) {
    if (n_cols <= 0 || n_rows <= 0) return cudaSuccess;
    elementwise_kernel<<<dim3(div_up(n_cols, 256), rows_extent(n_rows)), 256, 0, s>>>(op, a, a_stride, b, b_stride, o,
                                                                                       o_stride, n_cols, n_rows);
    return cudaGetLastError();
}

extern "C" cudaError_t tnd_cuda_rope(cudaStream_t s, float *x, int32_t x_stride, int32_t n_tokens, int32_t n_heads,
                                     int32_t head_dim, int32_t n_rot, bool neox, const float *factors, float base,
                                     float scale, const uint32_t *meta) {
    if (n_tokens <= 0 || n_heads <= 0 || n_rot < 2) return cudaSuccess;
    rope_kernel<<<dim3(div_up(n_rot / 2, 64), n_heads, rows_extent(n_tokens)), 64, 0, s>>>(
        x, x_stride, n_tokens, n_heads, head_dim, n_rot, neox, factors, base, scale, meta);
    return cudaGetLastError();
}

extern "C" cudaError_t tnd_cuda_kv_store(cudaStream_t s, tnd_type type, const float *src, int32_t src_stride,
                                         int32_t width, int32_t n_tokens, uint8_t *pool, size_t row_bytes,
                                         const uint32_t *meta, int32_t n_step) {
    int units = type == TND_TYPE_Q8_0 || type == TND_TYPE_Q4_0 ? width / 32 : width;
    if (units <= 0 || n_tokens <= 0) return cudaSuccess;
    dim3 grid(div_up(units, 64), rows_extent(n_tokens));
    if (!with_kv_type(type, [&](auto T) {
            kv_store_kernel<decltype(T)::value><<<grid, 64, 0, s>>>(src, src_stride, width, n_tokens, pool, row_bytes,
                                                                    meta, n_step);
        }))
        return cudaErrorInvalidValue;
    return cudaGetLastError();
}

extern "C" cudaError_t tnd_cuda_attention(cudaStream_t s, tnd_type k_type, tnd_type v_type, const float *q,
                                          int32_t q_stride, float *out, int32_t o_stride, int32_t n_tokens,
                                          int32_t n_head, int32_t n_head_kv, int32_t head_dim, const uint8_t *k_pool,
                                          const uint8_t *v_pool, size_t k_row_bytes, size_t v_row_bytes,
                                          int32_t block_size, float scale, const uint32_t *meta, int32_t n_step) {
    if (!tnd_cuda_kv_type(k_type, head_dim) || !tnd_cuda_kv_type(v_type, head_dim) ||
        head_dim > TND_CUDA_MAX_HEAD_DIM || n_head_kv <= 0 || n_head % n_head_kv)
        return cudaErrorInvalidValue;
    if (n_tokens <= 0 || n_head <= 0) return cudaSuccess;
    dim3 grid(n_head, rows_extent(n_tokens));
    with_kv_type(k_type, [&](auto K) {
        with_kv_type(v_type, [&](auto V) {
            attention_kernel<decltype(K)::value, decltype(V)::value><<<grid, ATT_THREADS, 0, s>>>(
                q, q_stride, out, o_stride, n_tokens, n_head, n_head_kv, head_dim, k_pool, v_pool, k_row_bytes,
                v_row_bytes, block_size, scale, meta, n_step);
        });
    });
    return cudaGetLastError();
}

extern "C" cudaError_t tnd_cuda_moe_route(cudaStream_t s, const float *logits, int32_t l_stride, int32_t n_tokens,
                                          int32_t n_experts, int32_t n_used, bool normalize, int32_t *ids,
                                          int32_t ids_stride, float *weights, int32_t w_stride) {
    if (n_used > TND_CUDA_MAX_USED || n_used > n_experts) return cudaErrorInvalidValue;
    if (n_tokens <= 0 || n_used <= 0) return cudaSuccess;
    moe_route_kernel<<<div_up(n_tokens, 64), 64, 0, s>>>(logits, l_stride, n_tokens, n_experts, n_used, normalize,
                                                         ids, ids_stride, weights, w_stride);
    return cudaGetLastError();
}

extern "C" cudaError_t tnd_cuda_moe_combine(cudaStream_t s, const float *experts, int32_t e_stride,
                                            const float *weights, int32_t w_stride, int32_t n_used, float *y,
                                            int32_t y_stride, int32_t width, int32_t n_tokens) {
    if (width <= 0 || n_tokens <= 0) return cudaSuccess;
    moe_combine_kernel<<<dim3(div_up(width, 64), rows_extent(n_tokens)), 64, 0, s>>>(
        experts, e_stride, weights, w_stride, n_used, y, y_stride, width, n_tokens);
    return cudaGetLastError();
}
