// cuda_math.cuh: what the CUDA device computes per element, as functions for the GPU and the host alike: decoding
// weight rows (32 elements, a "chunk", at a time, as the Vulkan shaders do) and KV rows, and quantizing KV rows as
// the CPU does. Blocks sit at any byte offset (18, 22, 34, 110 or 210 bytes follow each other), so quantized fields
// are read as bytes, in the layouts of src/quant/quant_blocks.h. The host build of these functions is what
// tests/cuda_math.cu checks against the CPU's reference kernels, so the arithmetic is tested where no GPU is.
#ifndef TND_BACKEND_CUDA_CUDA_MATH_CUH
#define TND_BACKEND_CUDA_CUDA_MATH_CUH

#include "tandem.h"

#include <cuda_fp16.h>
#include <math.h>
#include <stdint.h>
#include <string.h>
#include <type_traits>

#define TND_HD __host__ __device__ __forceinline__

namespace tnd_cuda {

TND_HD float float_from_bits(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

// a * b + c rounded twice, as the CPU computes it (a GPU would otherwise fuse the two)
TND_HD float mul_add_rounded(float a, float b, float c) {
#ifdef __CUDA_ARCH__
    return __fadd_rn(__fmul_rn(a, b), c);
#else
    volatile float product = a * b; // (kept apart: no contraction into one rounding)
    return product + c;
#endif
}

TND_HD float mul_rounded(float a, float b) {
#ifdef __CUDA_ARCH__
    return __fmul_rn(a, b);
#else
    return a * b;
#endif
}

TND_HD uint32_t half_bits(const uint8_t *p) { return (uint32_t)p[0] | ((uint32_t)p[1] << 8); }
TND_HD float f16_at(const uint8_t *p) {
    return __half2float(__ushort_as_half((unsigned short)half_bits(p)));
}
TND_HD uint32_t word_at(const uint8_t *p) { return half_bits(p) | (half_bits(p + 2) << 16); }

// 6-bit scale (x) and min (y) of sub-block s (< 8) in the 12-byte packing of Q4_K and Q5_K.
TND_HD uint2 k4_scale_min(const uint8_t *p, int s) {
    if (s < 4) return make_uint2(p[s] & 63u, p[s + 4] & 63u);
    return make_uint2((p[s + 4] & 15u) | ((p[s - 4] >> 6) << 4), (p[s + 4] >> 4) | ((p[s] >> 6) << 4));
}

template <tnd_type T> struct block_of; // elements and bytes of a block of the quantized types
template <> struct block_of<TND_TYPE_Q4_0> { static constexpr int elems = 32, bytes = 18; };
template <> struct block_of<TND_TYPE_Q4_1> { static constexpr int elems = 32, bytes = 20; };
template <> struct block_of<TND_TYPE_Q5_0> { static constexpr int elems = 32, bytes = 22; };
template <> struct block_of<TND_TYPE_Q5_1> { static constexpr int elems = 32, bytes = 24; };
template <> struct block_of<TND_TYPE_Q8_0> { static constexpr int elems = 32, bytes = 34; };
template <> struct block_of<TND_TYPE_Q2_K> { static constexpr int elems = 256, bytes = 84; };
template <> struct block_of<TND_TYPE_Q3_K> { static constexpr int elems = 256, bytes = 110; };
template <> struct block_of<TND_TYPE_Q4_K> { static constexpr int elems = 256, bytes = 144; };
template <> struct block_of<TND_TYPE_Q5_K> { static constexpr int elems = 256, bytes = 176; };
template <> struct block_of<TND_TYPE_Q6_K> { static constexpr int elems = 256, bytes = 210; };

// The scale (x) and min (y: Q2_K's, 0 for Q3_K) of sub-block s (< 16, of 16 elements) of a Q2_K or Q3_K
// super-block at b.
template <tnd_type T> TND_HD float2 k23_scale_min(const uint8_t *b, int s) {
    if constexpr (T == TND_TYPE_Q2_K) return make_float2(f16_at(b + 80) * (float)(b[s] & 15u), f16_at(b + 82) * (float)(b[s] >> 4));
    uint32_t low4 = s < 8 ? b[96 + s] & 15u : b[96 + s - 8] >> 4;
    uint32_t high2 = (b[96 + 8 + (s & 3)] >> (2 * (s >> 2))) & 3u;
    return make_float2(f16_at(b + 108) * (float)((int)(low4 | (high2 << 4)) - 32), 0.0f);
}

// Elements 32c .. 32c + 31 of a weight row of type T into v; elements at or past n_cols (only float types have rows
// that end inside a chunk) come out 0.
template <tnd_type T> TND_HD void dequant32(const uint8_t *row, int c, int n_cols, float v[32]) {
    if constexpr (T == TND_TYPE_F32 || T == TND_TYPE_F16 || T == TND_TYPE_BF16) {
#pragma unroll
        for (int i = 0; i < 32; i++) {
            int e = 32 * c + i;
            if (e >= n_cols) v[i] = 0.0f;
            else if constexpr (T == TND_TYPE_F32) v[i] = reinterpret_cast<const float *>(row)[e];
            else if constexpr (T == TND_TYPE_F16) v[i] = f16_at(row + 2 * e);
            else v[i] = float_from_bits(half_bits(row + 2 * e) << 16);
        }
    } else if constexpr (block_of<T>::elems == 32) {
        const uint8_t *b = row + c * block_of<T>::bytes;
        float d = f16_at(b);
        if constexpr (T == TND_TYPE_Q8_0) {
#pragma unroll
            for (int i = 0; i < 32; i++) v[i] = d * (float)(int8_t)b[2 + i];
        } else {
            constexpr bool has_min = T == TND_TYPE_Q4_1 || T == TND_TYPE_Q5_1, five = T == TND_TYPE_Q5_0 || T == TND_TYPE_Q5_1;
            float m = has_min ? f16_at(b + 2) : 0.0f;
            uint32_t qh = five ? word_at(b + (has_min ? 4 : 2)) : 0;
            const uint8_t *qs = b + 2 + (has_min ? 2 : 0) + (five ? 4 : 0);
#pragma unroll
            for (int i = 0; i < 16; i++) {
                uint32_t lo = qs[i] & 15u, hi = qs[i] >> 4;
                if constexpr (five) {
                    lo |= ((qh >> i) & 1u) << 4;
                    hi |= ((qh >> (i + 16)) & 1u) << 4;
                }
                if constexpr (has_min) {
                    v[i] = d * (float)lo + m;
                    v[i + 16] = d * (float)hi + m;
                } else {
                    float offset = five ? 16.0f : 8.0f;
                    v[i] = d * ((float)lo - offset);
                    v[i + 16] = d * ((float)hi - offset);
                }
            }
        }
    } else { // the K types: chunk k of super-block sb
        int sb = c >> 3, k = c & 7;
        const uint8_t *b = row + sb * block_of<T>::bytes;
        if constexpr (T == TND_TYPE_Q4_K || T == TND_TYPE_Q5_K) {
            float d = f16_at(b), dmin = f16_at(b + 2);
            uint2 sm = k4_scale_min(b + 4, k);
            float dl = d * (float)sm.x, ml = dmin * (float)sm.y;
            const uint8_t *qh = b + 16, *qs = b + (T == TND_TYPE_Q5_K ? 48 : 16);
#pragma unroll
            for (int l = 0; l < 32; l++) {
                uint32_t q = (qs[32 * (k >> 1) + l] >> (4 * (k & 1))) & 15u;
                if constexpr (T == TND_TYPE_Q5_K) q |= ((qh[l] >> k) & 1u) << 4;
                v[l] = dl * (float)q - ml;
            }
        } else if constexpr (T == TND_TYPE_Q6_K) {
            float d = f16_at(b + 208);
            int h = k >> 2, part = k & 3;
            float dl0 = d * (float)(int8_t)b[192 + 2 * k], dl1 = d * (float)(int8_t)b[192 + 2 * k + 1];
#pragma unroll
            for (int l = 0; l < 32; l++) {
                uint32_t low = (b[64 * h + 32 * (part & 1) + l] >> (part >= 2 ? 4 : 0)) & 15u;
                uint32_t high = (b[128 + 32 * h + l] >> (2 * part)) & 3u;
                v[l] = (l < 16 ? dl0 : dl1) * (float)((int)(low | (high << 4)) - 32);
            }
        } else { // Q2_K and Q3_K: 2-bit planes, sub-blocks of 16
            int h = k >> 2, p = k & 3;
            constexpr bool two = T == TND_TYPE_Q2_K;
            const uint8_t *qs = b + (two ? 16 : 32);
#pragma unroll
            for (int half_ = 0; half_ < 2; half_++) {
                float2 sm = k23_scale_min<T>(b, 2 * k + half_);
                float dl = sm.x, ml = sm.y;
#pragma unroll
                for (int j = 0; j < 16; j++) {
                    int l = 16 * half_ + j;
                    uint32_t q = (qs[32 * h + l] >> (2 * p)) & 3u;
                    if constexpr (two) v[l] = dl * (float)q - ml;
                    else v[l] = dl * (float)((int)(q | (((b[l] >> k) & 1u) << 2)) - 4);
                }
            }
        }
    }
}

// Element e of a KV pool row (the elements of every head of one position) of type T.
template <tnd_type T> TND_HD float kv_at(const uint8_t *row, int e) {
    if constexpr (T == TND_TYPE_F32) return reinterpret_cast<const float *>(row)[e];
    else if constexpr (T == TND_TYPE_F16) return f16_at(row + 2 * e);
    else if constexpr (T == TND_TYPE_Q8_0) return f16_at(row + 34 * (e >> 5)) * (float)(int8_t)row[34 * (e >> 5) + 2 + (e & 31)];
    else {
        const uint8_t *b = row + 18 * (e >> 5);
        return f16_at(b) * ((float)((b[2 + (e & 15)] >> ((e & 16) >> 2)) & 15u) - 8.0f);
    }
}

// Element or block j of one row x into a pool row.
template <tnd_type T>
TND_HD void store_row(const float *x, int j, int width, uint8_t *row) {
    if constexpr (T == TND_TYPE_F32 || T == TND_TYPE_F16) {
        if (j >= width) return;
        if constexpr (T == TND_TYPE_F32) reinterpret_cast<float *>(row)[j] = x[j];
        else reinterpret_cast<__half *>(row)[j] = __float2half_rn(x[j]);
    } else {
        if (32 * j >= width) return;
        const float *xb = x + 32 * j;
        bool finite = true;
        float amax = 0.0f, mx = 0.0f;
        for (int i = 0; i < 32; i++) {
            finite = finite && isfinite(xb[i]);
            if (amax < fabsf(xb[i])) amax = fabsf(xb[i]), mx = xb[i];
        }
        constexpr bool q8 = T == TND_TYPE_Q8_0;
        uint8_t *b = row + (q8 ? 34 : 18) * j;
        float d = q8 ? amax / 127.0f : mx / -8.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
        __half dh = finite ? __float2half_rn(d) : __ushort_as_half((unsigned short)0x7e00);
        unsigned short bits = __half_as_ushort(dh);
        b[0] = (uint8_t)(bits & 0xff), b[1] = (uint8_t)(bits >> 8);
        if constexpr (q8) {
            for (int i = 0; i < 32; i++) {
                float r = roundf(mul_rounded(xb[i], id)); // half away from zero
                b[2 + i] = (uint8_t)(int8_t)(finite ? (int)fminf(fmaxf(r, -127.0f), 127.0f) : 0);
            }
        } else {
            for (int i = 0; i < 16; i++) {
                uint32_t level[2];
                for (int k = 0; k < 2; k++) {
                    float v = mul_add_rounded(xb[i + 16 * k], id, 8.5f);
                    level[k] = !finite || !(v >= 0.0f) ? 0u : v >= 15.0f ? 15u : (uint32_t)v;
                }
                b[2 + i] = (uint8_t)(level[0] | (level[1] << 4));
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// int8 matmuls: activations as 8-bit blocks, weight chunks as 8-bit levels (as the Vulkan device's levels.glsl)
// ---------------------------------------------------------------------------------------------------------------

constexpr int Q8_WORDS = 11; // an activation block of 32: 8 words of int8 levels, the scale, the two halves' sums

// Elements 32b .. 32b + 31 of a row x (n_cols long; past it 0) as an 8-bit block: levels round(x / d), half away
// from zero, d = max |x| / 127, element 4j + k in byte k of word j; then d's bits and the halves' level sums.
TND_HD void quantize_q8_block(const float *x, int b, int n_cols, uint32_t out[Q8_WORDS]) {
    float v[32], amax = 0.0f;
    bool finite = true;
    for (int i = 0; i < 32; i++) {
        v[i] = 32 * b + i < n_cols ? x[32 * b + i] : 0.0f;
        finite = finite && isfinite(v[i]);
        amax = fmaxf(amax, fabsf(v[i]));
    }
    if (!finite) amax = 0.0f; /* a block with a NaN or infinity: NaN scale, zero levels, so its dots come out NaN */
    float d = finite ? amax / 127.0f : NAN, id = finite && d != 0.0f ? 1.0f / d : 0.0f;
    int sums[2] = {0, 0};
    for (int j = 0; j < 8; j++) {
        uint32_t word = 0;
        for (int k = 0; k < 4; k++) {
            int level = finite ? (int)roundf(mul_rounded(v[4 * j + k], id)) : 0;
            level = level < -127 ? -127 : level > 127 ? 127 : level;
            sums[j / 4] += level;
            word |= (uint32_t)(level & 0xff) << (8 * k);
        }
        out[j] = word;
    }
    uint32_t bits;
    memcpy(&bits, &d, sizeof bits);
    out[8] = bits;
    out[9] = (uint32_t)sums[0];
    out[10] = (uint32_t)sums[1];
}

// sum over k of int8 byte k of a times int8 byte k of b, plus c
TND_HD int dot4x8(uint32_t a, uint32_t b, int c) {
#ifdef __CUDA_ARCH__
    return __dp4a((int)a, (int)b, c);
#else
    for (int k = 0; k < 4; k++) c += (int)(int8_t)(a >> (8 * k)) * (int)(int8_t)(b >> (8 * k));
    return c;
#endif
}

// Bit `first + k` of bits, for k = 0 .. 3, moved to bit 4 of byte k (the fifth bit of four levels).
TND_HD uint32_t fifth_bits(uint32_t bits, int first) {
    uint32_t w = 0;
    for (int k = 0; k < 4; k++) w |= ((bits >> (first + k)) & 1u) << (8 * k + 4);
    return w;
}

// Chunk c of a weight row of quantized type T as 8-bit levels: element i = scale[h] * level_i - minv[h], h its half
// of 16; levels unsigned (Q8_0's signed), packed four to a word like the activations. The decoding of dequant32, with
// the signed types' offsets moved into minv.
template <tnd_type T> TND_HD void chunk_levels(const uint8_t *row, int c, uint32_t qw[8], float scale[2], float minv[2]) {
    if constexpr (block_of<T>::elems == 32) {
        const uint8_t *b = row + c * block_of<T>::bytes;
        float d = f16_at(b);
        scale[0] = scale[1] = d;
        if constexpr (T == TND_TYPE_Q8_0) {
            for (int j = 0; j < 8; j++) qw[j] = word_at(b + 2 + 4 * j);
            minv[0] = minv[1] = 0.0f;
        } else {
            constexpr bool has_min = T == TND_TYPE_Q4_1 || T == TND_TYPE_Q5_1, five = T == TND_TYPE_Q5_0 || T == TND_TYPE_Q5_1;
            uint32_t qh = five ? word_at(b + (has_min ? 4 : 2)) : 0;
            const uint8_t *qs = b + 2 + (has_min ? 2 : 0) + (five ? 4 : 0);
            minv[0] = minv[1] = has_min ? -f16_at(b + 2) : (five ? 16.0f : 8.0f) * d;
            for (int j = 0; j < 4; j++) {
                uint32_t u = word_at(qs + 4 * j);
                qw[j] = (u & 0x0f0f0f0fu) | (five ? fifth_bits(qh, 4 * j) : 0u);
                qw[j + 4] = ((u >> 4) & 0x0f0f0f0fu) | (five ? fifth_bits(qh, 16 + 4 * j) : 0u);
            }
        }
    } else { // the K types: chunk k of super-block sb
        int sb = c >> 3, k = c & 7;
        const uint8_t *b = row + sb * block_of<T>::bytes;
        if constexpr (T == TND_TYPE_Q4_K || T == TND_TYPE_Q5_K) {
            uint2 sm = k4_scale_min(b + 4, k);
            scale[0] = scale[1] = f16_at(b) * (float)sm.x;
            minv[0] = minv[1] = f16_at(b + 2) * (float)sm.y;
            const uint8_t *qh = b + 16, *qs = b + (T == TND_TYPE_Q5_K ? 48 : 16);
            for (int j = 0; j < 8; j++) {
                uint32_t w = (word_at(qs + 32 * (k >> 1) + 4 * j) >> (4 * (k & 1))) & 0x0f0f0f0fu;
                if constexpr (T == TND_TYPE_Q5_K) w |= ((word_at(qh + 4 * j) >> k) & 0x01010101u) << 4;
                qw[j] = w;
            }
        } else if constexpr (T == TND_TYPE_Q6_K) {
            float d = f16_at(b + 208);
            int h = k >> 2, part = k & 3;
            for (int half_ = 0; half_ < 2; half_++) {
                scale[half_] = d * (float)(int8_t)b[192 + 2 * k + half_];
                minv[half_] = 32.0f * scale[half_];
            }
            for (int j = 0; j < 8; j++) {
                uint32_t low = (word_at(b + 64 * h + 32 * (part & 1) + 4 * j) >> (part >= 2 ? 4 : 0)) & 0x0f0f0f0fu;
                uint32_t high = (word_at(b + 128 + 32 * h + 4 * j) >> (2 * part)) & 0x03030303u;
                qw[j] = low | (high << 4);
            }
        } else { // Q2_K and Q3_K: 2-bit planes, sub-blocks of 16 (the halves)
            int h = k >> 2, p = k & 3;
            constexpr bool two = T == TND_TYPE_Q2_K;
            const uint8_t *qs = b + (two ? 16 : 32);
            for (int half_ = 0; half_ < 2; half_++) {
                float2 sm = k23_scale_min<T>(b, 2 * k + half_);
                scale[half_] = sm.x;
                minv[half_] = two ? sm.y : 4.0f * sm.x; // (Q3_K: levels 0..7 for the signed -4..3)
            }
            for (int j = 0; j < 8; j++) {
                uint32_t w = (word_at(qs + 32 * h + 4 * j) >> (2 * p)) & 0x03030303u;
                if constexpr (!two) w |= ((word_at(b + 4 * j) >> k) & 0x01010101u) << 2; // the third bit, from hmask
                qw[j] = w;
            }
        }
    }
}

// A weight chunk's levels times an activation block: sum over its 32 elements of w_i x_i.
TND_HD float dot_chunk_q8(const uint32_t qw[8], const float scale[2], const float minv[2], const uint32_t *xq) {
    int dot0 = 0, dot1 = 0;
    for (int j = 0; j < 4; j++) {
        dot0 = dot4x8(qw[j], xq[j], dot0);
        dot1 = dot4x8(qw[j + 4], xq[j + 4], dot1);
    }
    float dx = float_from_bits(xq[8]);
    return dx * (scale[0] * (float)dot0 + scale[1] * (float)dot1 - minv[0] * (float)(int)xq[9] -
                 minv[1] * (float)(int)xq[10]);
}

// ---------------------------------------------------------------------------------------------------------------
// The types as template arguments
// ---------------------------------------------------------------------------------------------------------------

#define TND_CUDA_TYPE_CASE(T)                                                                                          \
    case T: f(std::integral_constant<tnd_type, T>()); return true;

// Calls f with a quantized weight type (those with 8-bit levels) as a template argument (an integral constant);
// false for another type.
template <typename F> bool with_quantized_type(tnd_type t, F f) {
    switch (t) {
        TND_CUDA_TYPE_CASE(TND_TYPE_Q4_0) TND_CUDA_TYPE_CASE(TND_TYPE_Q4_1) TND_CUDA_TYPE_CASE(TND_TYPE_Q5_0)
        TND_CUDA_TYPE_CASE(TND_TYPE_Q5_1) TND_CUDA_TYPE_CASE(TND_TYPE_Q8_0) TND_CUDA_TYPE_CASE(TND_TYPE_Q2_K)
        TND_CUDA_TYPE_CASE(TND_TYPE_Q3_K) TND_CUDA_TYPE_CASE(TND_TYPE_Q4_K) TND_CUDA_TYPE_CASE(TND_TYPE_Q5_K)
        TND_CUDA_TYPE_CASE(TND_TYPE_Q6_K)
    default: return false;
    }
}

// The same for every weight type the kernels decode: the float types and the quantized ones.
template <typename F> bool with_weight_type(tnd_type t, F f) {
    switch (t) {
        TND_CUDA_TYPE_CASE(TND_TYPE_F32) TND_CUDA_TYPE_CASE(TND_TYPE_F16) TND_CUDA_TYPE_CASE(TND_TYPE_BF16)
    default: return with_quantized_type(t, f);
    }
}

// The same for the KV cache types.
template <typename F> bool with_kv_type(tnd_type t, F f) {
    switch (t) {
        TND_CUDA_TYPE_CASE(TND_TYPE_F32) TND_CUDA_TYPE_CASE(TND_TYPE_F16) TND_CUDA_TYPE_CASE(TND_TYPE_Q8_0)
        TND_CUDA_TYPE_CASE(TND_TYPE_Q4_0)
    default: return false;
    }
}
#undef TND_CUDA_TYPE_CASE

} // namespace tnd_cuda

#endif
