/* x86_avx2.c: CPU kernels for processors with AVX2, FMA and F16C (compiled with those enabled; chosen at run time
 * by cpu_kernels.c). Each kernel computes what its scalar counterpart in src/quant computes, and is tested against
 * it on odd sizes. */
#include "backend/cpu/cpu_kernels.h"

#include <immintrin.h>
#include <string.h>

/* ------------------------------------------------------------------------------------------------------------
 * Helpers
 * ---------------------------------------------------------------------------------------------------------- */

static inline float hsum256(__m256 v) {
    __m128 lo = _mm256_castps256_ps128(v), hi = _mm256_extractf128_ps(v, 1);
    lo = _mm_add_ps(lo, hi);
    lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
    lo = _mm_add_ss(lo, _mm_movehdup_ps(lo));
    return _mm_cvtss_f32(lo);
}

/* ------------------------------------------------------------------------------------------------------------
 * Float weights against float activations (activations used as they are)
 * ---------------------------------------------------------------------------------------------------------- */

static float dot_f32_f32(const void *vx, const void *vy, int64_t n) {
    const float *x = vx, *y = vy;
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i), a0);
        a1 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 8), _mm256_loadu_ps(y + i + 8), a1);
        a2 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 16), _mm256_loadu_ps(y + i + 16), a2);
        a3 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 24), _mm256_loadu_ps(y + i + 24), a3);
    }
    for (; i + 8 <= n; i += 8) a0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i), a0);
    float s = hsum256(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
    for (; i < n; i++) s += x[i] * y[i];
    return s;
}

static inline __m256 load_f16x8(const uint16_t *p) {
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)p));
}

static inline __m256 load_bf16x8(const uint16_t *p) {
    __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(const void *)p));
    return _mm256_castsi256_ps(_mm256_slli_epi32(w, 16));
}

/* F16 / BF16 weights: 8 halves widened to floats per step, four accumulators. */
#define DOT_HALF_F32(name, load, widen_one)                                                                            \
    static float name(const void *vx, const void *vy, int64_t n) {                                                     \
        const uint16_t *x = vx;                                                                                        \
        const float *y = vy;                                                                                           \
        __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(),                         \
               a3 = _mm256_setzero_ps();                                                                               \
        int64_t i = 0;                                                                                                 \
        for (; i + 32 <= n; i += 32) {                                                                                 \
            a0 = _mm256_fmadd_ps(load(x + i), _mm256_loadu_ps(y + i), a0);                                             \
            a1 = _mm256_fmadd_ps(load(x + i + 8), _mm256_loadu_ps(y + i + 8), a1);                                     \
            a2 = _mm256_fmadd_ps(load(x + i + 16), _mm256_loadu_ps(y + i + 16), a2);                                   \
            a3 = _mm256_fmadd_ps(load(x + i + 24), _mm256_loadu_ps(y + i + 24), a3);                                   \
        }                                                                                                              \
        for (; i + 8 <= n; i += 8) a0 = _mm256_fmadd_ps(load(x + i), _mm256_loadu_ps(y + i), a0);                     \
        float s = hsum256(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));                               \
        for (; i < n; i++) s += widen_one(x[i]) * y[i];                                                                \
        return s;                                                                                                      \
    }

static inline float f16_one(uint16_t h) { return _cvtsh_ss(h); }
static inline float bf16_one(uint16_t b) {
    uint32_t u = (uint32_t)b << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

DOT_HALF_F32(dot_f16_f32, load_f16x8, f16_one)
DOT_HALF_F32(dot_bf16_f32, load_bf16x8, bf16_one)

static void copy_f32(const float *src, void *dst, int64_t n) { memcpy(dst, src, sizeof(float) * (size_t)n); }

/* ------------------------------------------------------------------------------------------------------------
 * Registration
 * ---------------------------------------------------------------------------------------------------------- */

void tnd_cpu_kernels_avx2(tnd_cpu_kernels *k) {
    k->dot[TND_TYPE_F32] = (tnd_cpu_dot){TND_TYPE_F32, copy_f32, dot_f32_f32, "avx2"};
    k->dot[TND_TYPE_F16] = (tnd_cpu_dot){TND_TYPE_F32, copy_f32, dot_f16_f32, "avx2"};
    k->dot[TND_TYPE_BF16] = (tnd_cpu_dot){TND_TYPE_F32, copy_f32, dot_bf16_f32, "avx2"};
}
