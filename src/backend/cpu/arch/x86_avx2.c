/* x86_avx2.c: CPU kernels for processors with AVX2, FMA and F16C (compiled with those enabled; chosen at run time
 * by cpu_kernels.c). Each kernel computes what its scalar counterpart in src/quant computes, and is tested against
 * it on odd sizes. */
#include "backend/cpu/cpu_kernels.h"
#include "quant/quant_blocks.h"
#include "quant/quant_ref.h"

#include <immintrin.h>
#include <math.h>
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

static inline int32_t hsum256_epi32(__m256i v) {
    __m128i a4 = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    a4 = _mm_hadd_epi32(a4, a4);
    a4 = _mm_hadd_epi32(a4, a4);
    return _mm_cvtsi128_si32(a4);
}

/* The prompt tiles here have one shape; a smaller tile (the edge of a matmul) takes single dots, which sum in the
 * same order. */
enum { TILE_ROWS = 2, TILE_TOKENS = 4 };

#define TILE_OR_DOTS(name, full_tile, dot) TND_CPU_TILE_OR_DOTS(name, full_tile, dot, TILE_ROWS, TILE_TOKENS)

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
        __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps(); \
        int64_t i = 0;                                                                                                 \
        for (; i + 32 <= n; i += 32) {                                                                                 \
            a0 = _mm256_fmadd_ps(load(x + i), _mm256_loadu_ps(y + i), a0);                                             \
            a1 = _mm256_fmadd_ps(load(x + i + 8), _mm256_loadu_ps(y + i + 8), a1);                                     \
            a2 = _mm256_fmadd_ps(load(x + i + 16), _mm256_loadu_ps(y + i + 16), a2);                                   \
            a3 = _mm256_fmadd_ps(load(x + i + 24), _mm256_loadu_ps(y + i + 24), a3);                                   \
        }                                                                                                              \
        for (; i + 8 <= n; i += 8) a0 = _mm256_fmadd_ps(load(x + i), _mm256_loadu_ps(y + i), a0);                      \
        float s = hsum256(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));                                \
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
 * The 32-element types (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0) against 8-bit activations in blocks of 32: Q8_0 (fp16 d,
 * 32 int8) for the types without a minimum, Q8_1 (fp16 d, fp16 s, 32 int8) for Q4_1 / Q5_1. Layouts:
 * src/quant/quant_blocks.h
 * ---------------------------------------------------------------------------------------------------------- */

enum { QK = 32, Q8_0_BYTES = 34, Q8_1_BYTES = 36 };

static inline float fp16_load(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return _cvtsh_ss(h);
}

static inline uint16_t fp16_from(float f) { return _cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT); }

static inline __m256i load256(const uint8_t *p) { return _mm256_loadu_si256((const __m256i *)(const void *)p); }

/* Quantizes 32 floats to int8 at q: d = max|x| / 127, q = round(x / d). Returns d (before fp16 rounding). */
static inline float quantize_block_i8(const float *x, uint8_t *q) {
    const __m256 sign_bit = _mm256_set1_ps(-0.0f);
    __m256 v0 = _mm256_loadu_ps(x), v1 = _mm256_loadu_ps(x + 8), v2 = _mm256_loadu_ps(x + 16),
           v3 = _mm256_loadu_ps(x + 24);
    __m256 m = _mm256_max_ps(_mm256_max_ps(_mm256_andnot_ps(sign_bit, v0), _mm256_andnot_ps(sign_bit, v1)),
                             _mm256_max_ps(_mm256_andnot_ps(sign_bit, v2), _mm256_andnot_ps(sign_bit, v3)));
    __m128 m4 = _mm_max_ps(_mm256_extractf128_ps(m, 1), _mm256_castps256_ps128(m));
    m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
    float amax = _mm_cvtss_f32(m4), d = amax / 127.0f;
    __m256 id = _mm256_set1_ps(d != 0.0f ? 1.0f / d : 0.0f);
    __m256i i0 = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v0, id), _MM_FROUND_TO_NEAREST_INT));
    __m256i i1 = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v1, id), _MM_FROUND_TO_NEAREST_INT));
    __m256i i2 = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v2, id), _MM_FROUND_TO_NEAREST_INT));
    __m256i i3 = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v3, id), _MM_FROUND_TO_NEAREST_INT));
    /* pack 32-bit -> 16-bit -> 8-bit; packs interleave 128-bit lanes, the permute restores the order */
    __m256i p01 = _mm256_packs_epi32(i0, i1), p23 = _mm256_packs_epi32(i2, i3);
    __m256i p = _mm256_packs_epi16(p01, p23);
    p = _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256((__m256i *)(void *)q, p);
    return d;
}

/* Sum of 32 signed bytes, as 8 int32 lanes. */
static inline __m256i sum_i8x32(__m256i v) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_set1_epi8(1), v), _mm256_set1_epi16(1));
}

/* Q8_0 rows of n floats (a multiple of 32). */
static void quantize_q8_0(const float *x, void *vy, int64_t n) {
    uint8_t *y = vy;
    for (int64_t b = 0; b < n / QK; b++, x += QK, y += Q8_0_BYTES) {
        uint16_t dh = fp16_from(quantize_block_i8(x, y + 2));
        memcpy(y, &dh, 2);
    }
}

/* Q8_1 rows: Q8_0's values plus s = d * sum(q) (as the reference; the kernels here sum q exactly instead). */
static void quantize_q8_1(const float *x, void *vy, int64_t n) {
    uint8_t *y = vy;
    for (int64_t b = 0; b < n / QK; b++, x += QK, y += Q8_1_BYTES) {
        float d = quantize_block_i8(x, y + 4);
        uint16_t dh = fp16_from(d);
        memcpy(y, &dh, 2);
        tnd_block_set_f16(y + 2, (float)hsum256_epi32(sum_i8x32(load256(y + 4))) * d);
    }
}

typedef enum legacy_kind { L_Q4_0, L_Q4_1, L_Q5_0, L_Q5_1, L_Q8_0 } legacy_kind;

static const size_t legacy_bytes[] = {[L_Q4_0] = 18, [L_Q4_1] = 20, [L_Q5_0] = 22, [L_Q5_1] = 24, [L_Q8_0] = 34};

static inline bool legacy_has_min(legacy_kind kind) { return kind == L_Q4_1 || kind == L_Q5_1; }

/* Byte e = 0xff where bit e of `bits` is set, else 0. */
static inline __m256i bits_to_bytes(uint32_t bits) {
    __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32((int)bits),
                                    _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2,
                                                     2, 3, 3, 3, 3, 3, 3, 3, 3));
    v = _mm256_or_si256(v, _mm256_set1_epi64x(0x7fbfdfeff7fbfdfe)); /* every bit but bit e % 8 set */
    return _mm256_cmpeq_epi8(v, _mm256_set1_epi64x(-1));
}

/* The 32 values of a block in element order: signed q for Q4_0, Q5_0 and Q8_0 (level minus its offset), the
 * unsigned level for Q4_1 and Q5_1 (whose minimum comes back through the activations' sum). */
static inline __m256i legacy_values(const uint8_t *x, legacy_kind kind) {
    if (kind == L_Q8_0) return load256(x + 2);
    static const int nibbles_at[] = {[L_Q4_0] = 2, [L_Q4_1] = 4, [L_Q5_0] = 6, [L_Q5_1] = 8};
    __m128i packed = _mm_loadu_si128((const __m128i *)(const void *)(x + nibbles_at[kind]));
    __m256i v = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(packed, 4), packed), _mm256_set1_epi8(0x0f));
    if (kind == L_Q5_0 || kind == L_Q5_1) {
        uint32_t qh;
        memcpy(&qh, x + (kind == L_Q5_0 ? 2 : 4), 4);
        v = _mm256_or_si256(v, _mm256_and_si256(bits_to_bytes(qh), _mm256_set1_epi8(0x10)));
    }
    if (kind == L_Q4_0) v = _mm256_sub_epi8(v, _mm256_set1_epi8(8));
    if (kind == L_Q5_0) v = _mm256_sub_epi8(v, _mm256_set1_epi8(16));
    return v;
}

/* R rows x T tokens, one float accumulator per pair, blocks in order; each weight block is unpacked once for the T
 * tokens and each activation block loaded once for the R rows. The dot is the 1 x 1 instance, so a row's result
 * does not depend on whether it was computed alone or in a tile (batching invariance). Signed values meet the
 * activations through maddubs with the sign moved onto the activations; unsigned levels go in as they are. */
static inline __attribute__((always_inline)) void legacy_tile_body(const uint8_t *w, size_t w_stride,
                                                                   const uint8_t *act, size_t act_stride, int64_t n,
                                                                   float *y, size_t y_stride, int R, int T,
                                                                   legacy_kind kind) {
    const bool has_min = legacy_has_min(kind);
    const size_t act_bytes = has_min ? Q8_1_BYTES : Q8_0_BYTES, act_q = has_min ? 4 : 2;
    __m256 acc[TILE_ROWS][TILE_TOKENS];
    for (int r = 0; r < R; r++)
        for (int t = 0; t < T; t++) acc[r][t] = _mm256_setzero_ps();
    for (int64_t b = 0; b < n / QK; b++) {
        __m256i wq[TILE_ROWS], wmag[TILE_ROWS];
        float wd[TILE_ROWS], wm[TILE_ROWS];
        for (int r = 0; r < R; r++) {
            const uint8_t *blk = w + (size_t)r * w_stride + (size_t)b * legacy_bytes[kind];
            wq[r] = legacy_values(blk, kind);
            wmag[r] = has_min ? wq[r] : _mm256_sign_epi8(wq[r], wq[r]);
            wd[r] = fp16_load(blk);
            wm[r] = has_min ? fp16_load(blk + 2) : 0.0f;
        }
        for (int t = 0; t < T; t++) {
            const uint8_t *ablk = act + (size_t)t * act_stride + (size_t)b * act_bytes;
            __m256i aq = load256(ablk + act_q);
            float ad = fp16_load(ablk);
            __m256 asum = has_min ? _mm256_cvtepi32_ps(sum_i8x32(aq)) : _mm256_setzero_ps();
            for (int r = 0; r < R; r++) {
                __m256i pairs = _mm256_maddubs_epi16(wmag[r], has_min ? aq : _mm256_sign_epi8(aq, wq[r]));
                __m256i sums = _mm256_madd_epi16(pairs, _mm256_set1_epi16(1));
                acc[r][t] = _mm256_fmadd_ps(_mm256_set1_ps(wd[r] * ad), _mm256_cvtepi32_ps(sums), acc[r][t]);
                if (has_min) acc[r][t] = _mm256_fmadd_ps(_mm256_set1_ps(wm[r] * ad), asum, acc[r][t]);
            }
        }
    }
    for (int t = 0; t < T; t++)
        for (int r = 0; r < R; r++) y[(size_t)t * y_stride + (size_t)r] = hsum256(acc[r][t]);
}

#define LEGACY_TYPE(name, act, kind)                                                                                   \
    static float dot_##name##_##act(const void *x, const void *a, int64_t n) {                                         \
        float y;                                                                                                       \
        legacy_tile_body(x, 0, a, 0, n, &y, 0, 1, 1, kind);                                                            \
        return y;                                                                                                      \
    }                                                                                                                  \
    static void tile_##name##_full(const uint8_t *w, size_t ws, const uint8_t *a, size_t as, int64_t n, float *y,      \
                                   size_t ys) {                                                                        \
        legacy_tile_body(w, ws, a, as, n, y, ys, TILE_ROWS, TILE_TOKENS, kind);                                        \
    }                                                                                                                  \
    TILE_OR_DOTS(tile_##name, tile_##name##_full, dot_##name##_##act)
LEGACY_TYPE(q4_0, q8_0, L_Q4_0)
LEGACY_TYPE(q4_1, q8_1, L_Q4_1)
LEGACY_TYPE(q5_0, q8_0, L_Q5_0)
LEGACY_TYPE(q5_1, q8_1, L_Q5_1)
LEGACY_TYPE(q8_0, q8_0, L_Q8_0)

/* ------------------------------------------------------------------------------------------------------------
 * K types against Q8_K activations (block of 256: f32 d, 256 int8, 16 int16 sums of 16). Layouts: src/quant/quant_k.c
 * ---------------------------------------------------------------------------------------------------------- */

enum { QK_K = 256, Q8_K_BYTES = 292 };

static inline float q8k_d(const uint8_t *y) {
    float d;
    memcpy(&d, y, 4);
    return d;
}

/* Sum of (unsigned levels u) x (signed activations y) over 32 bytes, weighted by one int16 scale per 16 bytes. */
static inline __m256i scaled_dot_u8(__m256i u, __m256i y, __m256i scales16) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(u, y), scales16);
}

/* All five K types in one body: per super-block and row, a scale and a min for each 16 elements (a Q4_K/Q5_K
 * sub-block of 32 gives its two halves the same), d, dmin and the level offset (Q3_K 4, Q6_K 32, else 0); per chunk
 * of 32 elements the unsigned levels. x = d * scale * (level - offset) - dmin * min. */
typedef enum k_kind { K_Q2, K_Q3, K_Q4, K_Q5, K_Q6 } k_kind;

/* bytes per super-block (src/quant/quant_blocks.h) */
static const size_t k_bytes[] = {[K_Q2] = 84, [K_Q3] = 110, [K_Q4] = 144, [K_Q5] = 176, [K_Q6] = 210};

typedef struct k_scales {
    __m256i scale, min; /* 16 int16 each */
    float d, dmin;
} k_scales;

static inline uint32_t load_u32(const uint8_t *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

/* Built in vector registers: scalar stores read back as a vector would stall every block on store forwarding. */
static inline void k_scales_of(const uint8_t *x, k_kind kind, k_scales *s) {
    const __m128i low4 = _mm_set1_epi8(0x0f);
    s->min = _mm256_setzero_si256();
    s->dmin = 0.0f;
    switch (kind) {
    case K_Q2: {
        __m256i bytes = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(const void *)x));
        s->scale = _mm256_and_si256(bytes, _mm256_set1_epi16(15));
        s->min = _mm256_srli_epi16(bytes, 4);
        s->d = fp16_load(x + 80);
        s->dmin = fp16_load(x + 82);
        break;
    }
    case K_Q3: { /* 6 bits: low four in the nibbles of bytes 96-103, high two in bytes 104-107, minus 32 */
        __m128i lo = _mm_loadl_epi64((const __m128i *)(const void *)(x + 96));
        __m128i low = _mm_unpacklo_epi64(_mm_and_si128(lo, low4), _mm_and_si128(_mm_srli_epi16(lo, 4), low4));
        uint32_t h = load_u32(x + 104), m = 0x03030303u;
        __m128i high = _mm_set_epi32((int)(h >> 6 & m), (int)(h >> 4 & m), (int)(h >> 2 & m), (int)(h & m));
        __m128i sc = _mm_sub_epi8(_mm_or_si128(low, _mm_slli_epi16(high, 4)), _mm_set1_epi8(32));
        s->scale = _mm256_cvtepi8_epi16(sc);
        s->d = fp16_load(x + 108);
        break;
    }
    case K_Q4:
    case K_Q5: { /* 6-bit scales and mins of 8 sub-blocks of 32, each given to both its halves of 16 */
        uint32_t u0 = load_u32(x + 4), u1 = load_u32(x + 8), u2 = load_u32(x + 12);
        uint32_t sc_lo = u0 & 0x3f3f3f3fu, mn_lo = u1 & 0x3f3f3f3fu;
        uint32_t sc_hi = (u2 & 0x0f0f0f0fu) | ((u0 >> 6) & 0x03030303u) << 4;
        uint32_t mn_hi = ((u2 >> 4) & 0x0f0f0f0fu) | ((u1 >> 6) & 0x03030303u) << 4;
        __m128i sc = _mm_set_epi32(0, 0, (int)sc_hi, (int)sc_lo), mn = _mm_set_epi32(0, 0, (int)mn_hi, (int)mn_lo);
        s->scale = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(sc, sc));
        s->min = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(mn, mn));
        s->d = fp16_load(x);
        s->dmin = fp16_load(x + 2);
        break;
    }
    case K_Q6:
        s->scale = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(const void *)(x + 192)));
        s->d = fp16_load(x + 208);
        break;
    }
}

/* Bit `from` of each byte of v at bit `to`, the other bits cleared. */
static inline __m256i bit_at(__m256i v, int from, int to) {
    __m256i at = to >= from ? _mm256_slli_epi16(v, to - from) : _mm256_srli_epi16(v, from - to);
    return _mm256_and_si256(at, _mm256_set1_epi8((char)(1 << to)));
}

/* Levels of elements 32c..32c+31 (c = 4h + p for the types whose halves of 128 hold four 2-bit planes). */
static inline __m256i k_levels(const uint8_t *x, k_kind kind, int c) {
    const __m256i low2 = _mm256_set1_epi8(0x03), low4 = _mm256_set1_epi8(0x0f);
    int h = c / 4, p = c % 4;
    switch (kind) {
    case K_Q2:
        return _mm256_and_si256(_mm256_srli_epi16(load256(x + 16 + 32 * h), 2 * p), low2);
    case K_Q3: {
        __m256i low = _mm256_and_si256(_mm256_srli_epi16(load256(x + 32 + 32 * h), 2 * p), low2);
        return _mm256_or_si256(low, bit_at(load256(x), c, 2));
    }
    case K_Q4:
    case K_Q5: {
        __m256i q = load256(x + (kind == K_Q5 ? 48 : 16) + 32 * (c / 2));
        __m256i nib = _mm256_and_si256(c % 2 ? _mm256_srli_epi16(q, 4) : q, low4);
        return kind == K_Q5 ? _mm256_or_si256(nib, bit_at(load256(x + 16), c, 4)) : nib;
    }
    case K_Q6: {
        __m256i l = load256(x + 64 * h + 32 * (p & 1));
        __m256i lows = _mm256_and_si256(p < 2 ? l : _mm256_srli_epi16(l, 4), low4);
        __m256i highs = _mm256_and_si256(_mm256_srli_epi16(load256(x + 128 + 32 * h), 2 * p), low2);
        return _mm256_or_si256(lows, _mm256_slli_epi16(highs, 4));
    }
    }
    return _mm256_setzero_si256();
}

static const int k_offset[] = {[K_Q2] = 0, [K_Q3] = 4, [K_Q4] = 0, [K_Q5] = 0, [K_Q6] = 32};

/* R rows x T tokens; each row's levels built once per chunk for the T tokens. The dot is the 1 x 1 instance, so a
 * tile and the dots sum in the same order. */
static inline __attribute__((always_inline)) void k_tile_body(const uint8_t *w, size_t w_stride, const uint8_t *act,
                                                              size_t act_stride, int64_t n, float *y, size_t y_stride,
                                                              int R, int T, k_kind kind) {
    float sum[TILE_ROWS][TILE_TOKENS] = {{0}};
    for (int64_t b = 0; b < n / QK_K; b++) {
        const uint8_t *x[TILE_ROWS];
        k_scales s[TILE_ROWS];
        __m256i acc[TILE_ROWS][TILE_TOKENS];
        for (int r = 0; r < R; r++) {
            x[r] = w + (size_t)r * w_stride + (size_t)b * k_bytes[kind];
            k_scales_of(x[r], kind, &s[r]);
            for (int t = 0; t < T; t++) acc[r][t] = _mm256_setzero_si256();
        }
        for (int c = 0; c < 8; c++) {
            __m256i q[TILE_ROWS], scales[TILE_ROWS];
            for (int r = 0; r < R; r++) {
                q[r] = k_levels(x[r], kind, c);
                /* scales 2c and 2c + 1, each over its 8 lanes (the int16 sums of bytes 0-15, then 16-31) */
                __m256i pair = _mm256_permutevar8x32_epi32(s[r].scale, _mm256_set1_epi32(c));
                scales[r] = _mm256_shuffle_epi8(pair, _mm256_setr_epi8(0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1,
                                                                       2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3));
            }
            for (int t = 0; t < T; t++) {
                __m256i yv = load256(act + (size_t)t * act_stride + (size_t)b * Q8_K_BYTES + 4 + 32 * c);
                for (int r = 0; r < R; r++) acc[r][t] = _mm256_add_epi32(acc[r][t], scaled_dot_u8(q[r], yv, scales[r]));
            }
        }
        for (int t = 0; t < T; t++) {
            const uint8_t *yblk = act + (size_t)t * act_stride + (size_t)b * Q8_K_BYTES;
            float dy = q8k_d(yblk);
            __m256i bsums = load256(yblk + 4 + QK_K);
            for (int r = 0; r < R; r++) {
                /* the level offset comes back through the activations' sums of 16, as do the mins */
                if (k_offset[kind])
                    acc[r][t] = _mm256_sub_epi32(acc[r][t], _mm256_mullo_epi32(_mm256_madd_epi16(s[r].scale, bsums),
                                                                               _mm256_set1_epi32(k_offset[kind])));
                int32_t total = hsum256_epi32(acc[r][t]);
                int32_t mins = kind == K_Q3 || kind == K_Q6 ? 0 : hsum256_epi32(_mm256_madd_epi16(s[r].min, bsums));
                sum[r][t] += dy * s[r].d * (float)total - dy * s[r].dmin * (float)mins;
            }
        }
    }
    for (int t = 0; t < T; t++)
        for (int r = 0; r < R; r++) y[(size_t)t * y_stride + (size_t)r] = sum[r][t];
}

#define K_TYPE(name, kind)                                                                                             \
    static float dot_##name##_q8_K(const void *x, const void *a, int64_t n) {                                          \
        float y;                                                                                                       \
        k_tile_body(x, 0, a, 0, n, &y, 0, 1, 1, kind);                                                                 \
        return y;                                                                                                      \
    }                                                                                                                  \
    static void tile_##name##_q8_K_full(const uint8_t *w, size_t ws, const uint8_t *a, size_t as, int64_t n, float *y, \
                                        size_t ys) {                                                                   \
        k_tile_body(w, ws, a, as, n, y, ys, TILE_ROWS, TILE_TOKENS, kind);                                             \
    }                                                                                                                  \
    TILE_OR_DOTS(tile_##name##_q8_K, tile_##name##_q8_K_full, dot_##name##_q8_K)
K_TYPE(q2_K, K_Q2)
K_TYPE(q3_K, K_Q3)
K_TYPE(q4_K, K_Q4)
K_TYPE(q5_K, K_Q5)
K_TYPE(q6_K, K_Q6)


/* ------------------------------------------------------------------------------------------------------------
 * Float vector steps (attention)
 * ---------------------------------------------------------------------------------------------------------- */

static void f16_to_f32(const void *vx, float *y, int64_t n) {
    const uint16_t *x = vx;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, load_f16x8(x + i));
    for (; i < n; i++) y[i] = f16_one(x[i]);
}

/* e^x, relative error about 2e-7: x = n ln2 + r with |r| <= ln2 / 2 (ln2 in two parts so r is exact), e^r by its
 * Taylor series to r^6, 2^n through the exponent bits. x is clamped to [-87, 88], where 2^n stays a normal float:
 * e^-87 (1.6e-38) is nothing next to a softmax tile's largest weight (1), and silu is 0 or g beyond. */
static inline __m256 exp256(__m256 x) {
    x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.0f)), _mm256_set1_ps(88.0f));
    __m256 n =
        _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.0f / 720);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

/* silu(g) * up for 8 lanes: g / (1 + e^-g). */
static inline __m256 swiglu8(__m256 g, __m256 up) {
    __m256 ex = exp256(_mm256_sub_ps(_mm256_setzero_ps(), g));
    return _mm256_mul_ps(_mm256_div_ps(g, _mm256_add_ps(_mm256_set1_ps(1.0f), ex)), up);
}

/* The batch comes flattened, so an element's place in a vector depends on the batch: the last partial vector goes
 * through the same lanes (masked), never a scalar formula, and every element gets the same result in any batch. */
static void swiglu(const float *gate, const float *up, float *out, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(out + i, swiglu8(_mm256_loadu_ps(gate + i), _mm256_loadu_ps(up + i)));
    if (i < n) {
        __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        __m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)(n - i)), lane);
        __m256 g = _mm256_maskload_ps(gate + i, mask), u = _mm256_maskload_ps(up + i, mask);
        _mm256_maskstore_ps(out + i, mask, swiglu8(g, u));
    }
}

/* The 8 horizontal sums of v[0..7], in order. */
static inline __m256 hsum8x8(const __m256 v[8]) {
    __m256 b0123 = _mm256_hadd_ps(_mm256_hadd_ps(v[0], v[1]), _mm256_hadd_ps(v[2], v[3]));
    __m256 b4567 = _mm256_hadd_ps(_mm256_hadd_ps(v[4], v[5]), _mm256_hadd_ps(v[6], v[7]));
    return _mm256_add_ps(_mm256_permute2f128_ps(b0123, b4567, 0x20), _mm256_permute2f128_ps(b0123, b4567, 0x31));
}

enum { ATTN_HD_STEP = 64 }; /* output elements kept in registers while the tile's V rows pass */

static void attn_tile(const float *q, int32_t rep, int32_t hd, const float *k, const float *v, int32_t np, float scale,
                      float *mx, float *sum, float *acc) {
    if (hd % 8 || np > TND_CPU_ATTN_TILE_MAX) {
        tnd_cpu_attn_tile_ref(q, rep, hd, k, v, np, scale, mx, sum, acc);
        return;
    }
    float score[TND_CPU_ATTN_TILE_MAX + 8];
    int32_t np8 = (np + 7) & ~7;
    for (int32_t r = 0; r < rep; r++) {
        const float *qr = q + r * hd;
        /* scores, 8 positions at a time; padding positions get -inf */
        __m256 vmax = _mm256_set1_ps(-INFINITY);
        for (int32_t j0 = 0; j0 < np8; j0 += 8) {
            const float *kp[8]; /* padding positions repeat the last row; their scores are masked below */
            for (int jj = 0; jj < 8; jj++) kp[jj] = k + (j0 + jj < np ? j0 + jj : np - 1) * hd;
            __m256 part[8];
            for (int jj = 0; jj < 8; jj++) part[jj] = _mm256_setzero_ps();
            for (int32_t i = 0; i < hd; i += 8) {
                __m256 qv = _mm256_loadu_ps(qr + i);
                for (int jj = 0; jj < 8; jj++) part[jj] = _mm256_fmadd_ps(qv, _mm256_loadu_ps(kp[jj] + i), part[jj]);
            }
            __m256 s8 = _mm256_mul_ps(hsum8x8(part), _mm256_set1_ps(scale));
            __m256 valid =
                _mm256_cmp_ps(_mm256_add_ps(_mm256_set1_ps((float)(j0 - np)), _mm256_setr_ps(0, 1, 2, 3, 4, 5, 6, 7)),
                              _mm256_setzero_ps(), _CMP_LT_OQ);
            s8 = _mm256_blendv_ps(_mm256_set1_ps(-INFINITY), s8, valid);
            _mm256_storeu_ps(score + j0, s8);
            vmax = _mm256_max_ps(vmax, s8);
        }
        __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(vmax), _mm256_extractf128_ps(vmax, 1));
        m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
        m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
        float tile_max = _mm_cvtss_f32(m4);
        float m_new = tile_max > mx[r] ? tile_max : mx[r], c = sum[r] > 0 ? expf(mx[r] - m_new) : 0.0f;
        /* weights (zero on padding) and their sum */
        __m256 wsum = _mm256_setzero_ps(), vm = _mm256_set1_ps(m_new);
        for (int32_t j0 = 0; j0 < np8; j0 += 8) {
            __m256 s8 = _mm256_loadu_ps(score + j0);
            __m256 w8 =
                _mm256_and_ps(exp256(_mm256_sub_ps(s8, vm)), _mm256_cmp_ps(s8, _mm256_set1_ps(-INFINITY), _CMP_NEQ_OQ));
            _mm256_storeu_ps(score + j0, w8);
            wsum = _mm256_add_ps(wsum, w8);
        }
        sum[r] = sum[r] * c + hsum256(wsum);
        mx[r] = m_new;
        /* acc = acc * c + sum_j w_j v_j, ATTN_HD_STEP outputs at a time in registers, then 8 at a time */
        float *ar = acc + r * hd;
        __m256 vc = _mm256_set1_ps(c);
        int32_t i0 = 0;
        for (; i0 + ATTN_HD_STEP <= hd; i0 += ATTN_HD_STEP) {
            __m256 a[ATTN_HD_STEP / 8];
            for (int u = 0; u < ATTN_HD_STEP / 8; u++) a[u] = _mm256_mul_ps(_mm256_loadu_ps(ar + i0 + 8 * u), vc);
            for (int32_t j = 0; j < np; j++) {
                __m256 wj = _mm256_broadcast_ss(score + j);
                const float *vj = v + j * hd + i0;
                for (int u = 0; u < ATTN_HD_STEP / 8; u++)
                    a[u] = _mm256_fmadd_ps(wj, _mm256_loadu_ps(vj + 8 * u), a[u]);
            }
            for (int u = 0; u < ATTN_HD_STEP / 8; u++) _mm256_storeu_ps(ar + i0 + 8 * u, a[u]);
        }
        for (; i0 < hd; i0 += 8) {
            __m256 a = _mm256_mul_ps(_mm256_loadu_ps(ar + i0), vc);
            for (int32_t j = 0; j < np; j++)
                a = _mm256_fmadd_ps(_mm256_broadcast_ss(score + j), _mm256_loadu_ps(v + j * hd + i0), a);
            _mm256_storeu_ps(ar + i0, a);
        }
    }
}

/* ------------------------------------------------------------------------------------------------------------
 * Registration
 * ---------------------------------------------------------------------------------------------------------- */

/* An entry whose activations are used as floats, without tiles. */
static tnd_cpu_dot float_entry(tnd_vec_dot_fn dot) {
    return (tnd_cpu_dot){.act_type = TND_TYPE_F32, .quantize_act = copy_f32, .dot = dot, .isa = "avx2"};
}

/* An entry with quantized activations and 2 x 4 tiles. */
static tnd_cpu_dot tiled_entry(tnd_type act_type, tnd_from_float_fn quantize, tnd_vec_dot_fn dot, tnd_tile_fn tile) {
    return (tnd_cpu_dot){.act_type = act_type,
                         .quantize_act = quantize,
                         .dot = dot,
                         .isa = "avx2",
                         .tile = tile,
                         .tile_rows = TILE_ROWS,
                         .tile_tokens = TILE_TOKENS};
}

void tnd_cpu_kernels_avx2(tnd_cpu_kernels *k) {
    k->vec = (tnd_cpu_vec){f16_to_f32, attn_tile, NULL, swiglu, NULL};
    k->dot[TND_TYPE_F32] = float_entry(dot_f32_f32);
    k->dot[TND_TYPE_F16] = float_entry(dot_f16_f32);
    k->dot[TND_TYPE_BF16] = float_entry(dot_bf16_f32);
    k->dot[TND_TYPE_Q8_0] = tiled_entry(TND_TYPE_Q8_0, quantize_q8_0, dot_q8_0_q8_0, tile_q8_0);
    k->dot[TND_TYPE_Q4_0] = tiled_entry(TND_TYPE_Q8_0, quantize_q8_0, dot_q4_0_q8_0, tile_q4_0);
    k->dot[TND_TYPE_Q4_1] = tiled_entry(TND_TYPE_Q8_1, quantize_q8_1, dot_q4_1_q8_1, tile_q4_1);
    k->dot[TND_TYPE_Q5_0] = tiled_entry(TND_TYPE_Q8_0, quantize_q8_0, dot_q5_0_q8_0, tile_q5_0);
    k->dot[TND_TYPE_Q5_1] = tiled_entry(TND_TYPE_Q8_1, quantize_q8_1, dot_q5_1_q8_1, tile_q5_1);
    k->dot[TND_TYPE_Q4_K] = tiled_entry(TND_TYPE_Q8_K, tnd_quantize_q8_K_ref, dot_q4_K_q8_K, tile_q4_K_q8_K);
    k->dot[TND_TYPE_Q6_K] = tiled_entry(TND_TYPE_Q8_K, tnd_quantize_q8_K_ref, dot_q6_K_q8_K, tile_q6_K_q8_K);
    k->dot[TND_TYPE_Q2_K] = tiled_entry(TND_TYPE_Q8_K, tnd_quantize_q8_K_ref, dot_q2_K_q8_K, tile_q2_K_q8_K);
    k->dot[TND_TYPE_Q3_K] = tiled_entry(TND_TYPE_Q8_K, tnd_quantize_q8_K_ref, dot_q3_K_q8_K, tile_q3_K_q8_K);
    k->dot[TND_TYPE_Q5_K] = tiled_entry(TND_TYPE_Q8_K, tnd_quantize_q8_K_ref, dot_q5_K_q8_K, tile_q5_K_q8_K);
}
