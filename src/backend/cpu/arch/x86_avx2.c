/* x86_avx2.c: CPU kernels for processors with AVX2, FMA and F16C (compiled with those enabled; chosen at run time
 * by cpu_kernels.c): float weights in tiles of 1 row x 4 tokens, every quantized type over packed groups of 8 rows
 * with one 32-bit lane per row (../groups8.h), attention. Each kernel computes what its scalar counterpart in
 * src/quant computes, and is tested against it on odd sizes; tiles equal the dots bit for bit.
 *
 * The file is compiled twice: as itself (the "avx2" set), and by x86_avxvnni.c with AVX-VNNI enabled (the
 * "avxvnni" set: Intel from Alder Lake, AMD from Zen 5), where the 8-bit dots take vpdpbusd. Both give the same
 * exact integer sums, so the same bits. */
#include "backend/cpu/cpu_kernels.h"
#include "backend/cpu/groups8.h"
#include "quant/quant_blocks.h"
#include "quant/quant_ref.h"

#include <immintrin.h>
#include <math.h>
#include <string.h>

#if defined(__AVXVNNI__)
#define KERNEL_SET "avxvnni"
#define OF_SET(name) name##_avxvnni
#else
#define KERNEL_SET "avx2"
#define OF_SET(name) name##_avx2
#endif

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

static inline float hmax256(__m256 v) {
    __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    return _mm_cvtss_f32(_mm_max_ss(m4, _mm_movehdup_ps(m4)));
}

static inline int32_t hsum256_epi32(__m256i v) {
    __m128i a4 = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    a4 = _mm_hadd_epi32(a4, a4);
    a4 = _mm_hadd_epi32(a4, a4);
    return _mm_cvtsi128_si32(a4);
}

/* ------------------------------------------------------------------------------------------------------------
 * Float weights against float activations (activations used as they are)
 * ---------------------------------------------------------------------------------------------------------- */

typedef enum float_kind { FW_F32, FW_F16, FW_BF16 } float_kind;

/* Weights i .. i + 7 of a float row, widened. */
static inline __m256 load_w8(const void *w, int64_t i, float_kind kind) {
    if (kind == FW_F32) return _mm256_loadu_ps((const float *)w + i);
    __m128i h = _mm_loadu_si128((const __m128i *)(const void *)((const uint16_t *)w + i));
    if (kind == FW_F16) return _mm256_cvtph_ps(h);
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16)); /* bf16: the top half of a float */
}

static inline float load_w1(const void *w, int64_t i, float_kind kind) {
    if (kind == FW_F32) return ((const float *)w)[i];
    uint16_t h = ((const uint16_t *)w)[i];
    if (kind == FW_F16) return _cvtsh_ss(h);
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* Float weights against float activations: R rows x T tokens, two accumulators per pair over steps of 16 (then one
 * step of 8, then single elements); each weight step widened once for the T tokens. The dot is the 1 x 1 instance,
 * so a row's result does not depend on the tile it was computed in. */
enum { FLOAT_TILE_ROWS = 1, FLOAT_TILE_TOKENS = TND_CPU_TOKENS_MAX };

static inline __attribute__((always_inline)) void float_tile_body(const uint8_t *w, size_t w_stride, const uint8_t *act,
                                                                  size_t act_stride, int64_t n, float *y,
                                                                  size_t y_stride, int R, float_kind kind, int T) {
    __m256 acc0[FLOAT_TILE_ROWS][FLOAT_TILE_TOKENS], acc1[FLOAT_TILE_ROWS][FLOAT_TILE_TOKENS];
    for (int r = 0; r < R; r++)
        for (int t = 0; t < T; t++) acc0[r][t] = acc1[r][t] = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        for (int r = 0; r < R; r++) {
            __m256 w0 = load_w8(w + (size_t)r * w_stride, i, kind), w1 = load_w8(w + (size_t)r * w_stride, i + 8, kind);
            for (int t = 0; t < T; t++) {
                const float *x = (const float *)(const void *)(act + (size_t)t * act_stride);
                acc0[r][t] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x + i), acc0[r][t]);
                acc1[r][t] = _mm256_fmadd_ps(w1, _mm256_loadu_ps(x + i + 8), acc1[r][t]);
            }
        }
    bool eight = i + 8 <= n;
    for (int r = 0; r < R; r++) {
        __m256 w0 = eight ? load_w8(w + (size_t)r * w_stride, i, kind) : _mm256_setzero_ps();
        for (int t = 0; t < T; t++) {
            const float *x = (const float *)(const void *)(act + (size_t)t * act_stride);
            if (eight) acc0[r][t] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x + i), acc0[r][t]);
            float s = hsum256(_mm256_add_ps(acc0[r][t], acc1[r][t]));
            for (int64_t j = eight ? i + 8 : i; j < n; j++) s += load_w1(w + (size_t)r * w_stride, j, kind) * x[j];
            y[(size_t)t * y_stride + (size_t)r] = s;
        }
    }
}

TND_CPU_FLOAT_ENTRIES(f32, FW_F32, float_tile_body)
TND_CPU_FLOAT_ENTRIES(f16, FW_F16, float_tile_body)
TND_CPU_FLOAT_ENTRIES(bf16, FW_BF16, float_tile_body)

static inline __m256 load_f16x8(const uint16_t *p) {
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)p));
}

static inline float f16_one(uint16_t h) { return _cvtsh_ss(h); }

static void copy_f32(const float *src, void *dst, int64_t n) { memcpy(dst, src, sizeof(float) * (size_t)n); }

/* ------------------------------------------------------------------------------------------------------------
 * The 32-element types (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0) over packed row groups of 8 rows, one 32-bit lane per weight
 * row (layout: ../groups8.h). maddubs multiplies a step by the token's four activations of its columns, broadcast,
 * and madd adds each row's pairs into its own lane, so after a block's 8 steps a lane holds the row's exact integer
 * sum for the block: one conversion, one scale multiply and one multiply-add per block for 8 rows x 32 columns,
 * where a row at a time needed them for every row (decode of a row at a time was bound by that work, not by
 * memory). Q8_0's signed bytes meet the activations as |w| x sign(a, w): its magnitude (up to 128) times an
 * activation fills a maddubs pair, so it cannot be made unsigned as the levels are.
 * ---------------------------------------------------------------------------------------------------------- */

enum {
    QK = G8_QK,
    GROUP_TOKENS = TND_CPU_TOKENS_MAX /* the most tokens of a tile */
};

static inline float fp16_load(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return _cvtsh_ss(h);
}

static inline __m256i load256(const uint8_t *p) { return _mm256_loadu_si256((const __m256i *)(const void *)p); }

static inline int32_t load_i32(const uint8_t *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return v;
}

/* Quantizes 32 floats to int8 at q: d = max|x| / 127, q = round(x / d). Returns d. */
static inline float quantize_block_i8(const float *x, uint8_t *q) {
    const __m256 sign_bit = _mm256_set1_ps(-0.0f);
    __m256 v0 = _mm256_loadu_ps(x), v1 = _mm256_loadu_ps(x + 8), v2 = _mm256_loadu_ps(x + 16),
           v3 = _mm256_loadu_ps(x + 24);
    __m256 m = _mm256_max_ps(_mm256_max_ps(_mm256_andnot_ps(sign_bit, v0), _mm256_andnot_ps(sign_bit, v1)),
                             _mm256_max_ps(_mm256_andnot_ps(sign_bit, v2), _mm256_andnot_ps(sign_bit, v3)));
    float amax = hmax256(m), d = amax / 127.0f;
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

/* acc plus, in each int32 lane, the sum of its four products of unsigned bytes u and signed bytes s. Without VNNI
 * the products pass through int16 pairs, which callers keep from saturating (|u x s| pairs within 32767). */
static inline __m256i dot4_u8_i8(__m256i acc, __m256i u, __m256i s) {
#if defined(__AVXVNNI__)
    return _mm256_dpbusd_avx_epi32(acc, u, s);
#else
    return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1)));
#endif
}

/* Sum of 32 signed bytes, as 8 int32 lanes. */
static inline __m256i sum_i8x32(__m256i v) { return dot4_u8_i8(_mm256_setzero_si256(), _mm256_set1_epi8(1), v); }

/* The activation layout above; min_slot: the slot holds d * sum (Q4_1/Q5_1), else the start -offset * sum. */
static inline void quantize_act_blocks(const float *x, void *vy, int64_t n, int offset, bool min_slot) {
    uint8_t *y = vy;
    for (int64_t b = 0; b < n / QK; b++, x += QK, y += G8_ACT_BLOCK_BYTES) {
        float d = quantize_block_i8(x, y);
        int32_t sum = hsum256_epi32(sum_i8x32(load256(y))), start = -offset * sum;
        float scaled_sum = d * (float)sum;
        memcpy(y + QK, &d, 4);
        if (min_slot)
            memcpy(y + QK + 4, &scaled_sum, 4);
        else
            memcpy(y + QK + 4, &start, 4);
    }
}

static void quantize_act_q4_0(const float *x, void *y, int64_t n) { quantize_act_blocks(x, y, n, 8, false); }
static void quantize_act_q5_0(const float *x, void *y, int64_t n) { quantize_act_blocks(x, y, n, 16, false); }
static void quantize_act_q8_0(const float *x, void *y, int64_t n) { quantize_act_blocks(x, y, n, 0, false); }
static void quantize_act_min(const float *x, void *y, int64_t n) { quantize_act_blocks(x, y, n, 0, true); }

/* Step i's fifth bits (plane bit i) at bit 4 of each byte. The 16-bit shifts by at most 4 left or 3 right bring no
 * bit from the neighbouring byte to bit 4. */
static inline __m256i fifth_of_step(__m256i plane, int i) {
    __m256i at = i <= 4 ? _mm256_slli_epi16(plane, 4 - i) : _mm256_srli_epi16(plane, i - 4);
    return _mm256_and_si256(at, _mm256_set1_epi8(0x10));
}

/* sum plus the int32 lane sums of two steps (columns 8s..8s+7) with one token's activations. Q8_0's signed bytes
 * meet the activations as |w| x sign(a, w). Without VNNI a pair of maddubs products is at most 2 x 31 x 127 for
 * levels, so two steps share one madd; 2 x 128 x 127 for Q8_0 magnitudes, so each step takes its own. */
static inline __m256i steps_dot(__m256i sum, __m256i lo, __m256i hi, const uint8_t *a, int s, g8_legacy_kind kind) {
    __m256i alo = _mm256_set1_epi32(load_i32(a + 8 * s)), ahi = _mm256_set1_epi32(load_i32(a + 8 * s + 4));
    if (kind == G8_Q8_0) {
        alo = _mm256_sign_epi8(alo, lo);
        ahi = _mm256_sign_epi8(ahi, hi);
        return dot4_u8_i8(dot4_u8_i8(sum, _mm256_abs_epi8(lo), alo), _mm256_abs_epi8(hi), ahi);
    }
#if defined(__AVXVNNI__)
    return dot4_u8_i8(dot4_u8_i8(sum, lo, alo), hi, ahi);
#else
    __m256i pairs = _mm256_add_epi16(_mm256_maddubs_epi16(lo, alo), _mm256_maddubs_epi16(hi, ahi));
    return _mm256_add_epi32(sum, _mm256_madd_epi16(pairs, _mm256_set1_epi16(1)));
#endif
}

/* The K types' tiles request their weights ahead (tnd_cpu_prefetch_ahead). Decode at two threads, alternating runs:
 * Q4_K_M files x1.1-1.4 (their Q6_K tensors streamed at half the speed of Q4_K without it). The 32-element types'
 * blocks of 8 rows (144-272 bytes) are left to the hardware prefetcher: requesting them too made Q4_0 files' decode
 * 2-5% slower. */

/* y[t * y_stride + r] for the first R rows of the group at w and T tokens. A lane's arithmetic per block: the exact
 * integer sum plus the activations' start, converted, times the row's d, then a multiply-add with the activation's
 * d (and for Q4_1/Q5_1 a multiply-add of the row's m with the activations' d * sum). */
static inline __attribute__((always_inline)) void group_tile_body(const uint8_t *w, const uint8_t *act,
                                                                  size_t act_stride, int64_t n, float *y,
                                                                  size_t y_stride, int R, g8_legacy_kind kind, int T) {
    const size_t group_block = G8_ROWS * g8_legacy_bytes[kind];
    const bool has_min = g8_has_min(kind), has_fifth = g8_has_fifth(kind);
    __m256 acc[GROUP_TOKENS];
    for (int t = 0; t < T; t++) acc[t] = _mm256_setzero_ps();
    for (int64_t b = 0; b < n / QK; b++, w += group_block) {
        const g8_legacy_layout at = g8_legacy_at(w, kind);
        const uint8_t *lv = w + at.levels;
        __m256i sum[GROUP_TOKENS];
        for (int t = 0; t < T; t++)
            sum[t] = _mm256_set1_epi32(
                has_min ? 0 : load_i32(act + (size_t)t * act_stride + (size_t)b * G8_ACT_BLOCK_BYTES + QK + 4));
        __m256i plane = has_fifth ? load256(lv + 4 * G8_STEP) : _mm256_setzero_si256();
        for (int s = 0; s < 4; s++) { /* steps 2s and 2s + 1 */
            __m256i lo, hi;
            if (kind == G8_Q8_0) {
                lo = load256(lv + G8_STEP * (2 * s));
                hi = load256(lv + G8_STEP * (2 * s + 1));
            } else {
                __m256i both = load256(lv + G8_STEP * s), low4 = _mm256_set1_epi8(0x0f);
                lo = _mm256_and_si256(both, low4);
                hi = _mm256_and_si256(_mm256_srli_epi16(both, 4), low4);
                if (has_fifth) {
                    lo = _mm256_or_si256(lo, fifth_of_step(plane, 2 * s));
                    hi = _mm256_or_si256(hi, fifth_of_step(plane, 2 * s + 1));
                }
            }
            for (int t = 0; t < T; t++) {
                const uint8_t *a = act + (size_t)t * act_stride + (size_t)b * G8_ACT_BLOCK_BYTES;
                sum[t] = steps_dot(sum[t], lo, hi, a, s, kind);
            }
        }
        __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)(w + at.d)));
        __m256 mw = has_min ? _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)(w + at.m)))
                            : _mm256_setzero_ps();
        for (int t = 0; t < T; t++) {
            const uint8_t *a = act + (size_t)t * act_stride + (size_t)b * G8_ACT_BLOCK_BYTES;
            acc[t] = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(sum[t]), dw), _mm256_set1_ps(tnd_block_f32(a + QK)),
                                     acc[t]);
            if (has_min) acc[t] = _mm256_fmadd_ps(mw, _mm256_set1_ps(tnd_block_f32(a + QK + 4)), acc[t]);
        }
    }
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    __m256i rows = _mm256_cmpgt_epi32(_mm256_set1_epi32(R), lane);
    for (int t = 0; t < T; t++) _mm256_maskstore_ps(y + (size_t)t * y_stride, rows, acc[t]);
}

/* Bit e of `bits` at bit 4 of byte e, other bits cleared. */
static inline __m256i fifth_bits(uint32_t bits) {
    __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32((int)bits),
                                    _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2,
                                                     2, 2, 3, 3, 3, 3, 3, 3, 3, 3));
    v = _mm256_or_si256(v, _mm256_set1_epi64x(0x7fbfdfeff7fbfdfe)); /* every bit but bit e % 8 set */
    return _mm256_and_si256(_mm256_cmpeq_epi8(v, _mm256_set1_epi64x(-1)), _mm256_set1_epi8(0x10));
}

/* One row as the file has it, with a lane's arithmetic of the tile above (the same bits): the block's exact
 * integer sum of levels times activations (signed values for Q8_0) plus the start, and the same float steps. */
static inline __attribute__((always_inline)) float dot_row_body(const uint8_t *w, const uint8_t *act, int64_t n,
                                                                g8_legacy_kind kind) {
    const bool has_min = g8_has_min(kind);
    float acc = 0.0f;
    for (int64_t b = 0; b < n / QK; b++, w += g8_legacy_bytes[kind], act += G8_ACT_BLOCK_BYTES) {
        __m256i a = load256(act), products;
        if (kind == G8_Q8_0) {
            __m256i q = load256(w + 2);
            products = dot4_u8_i8(_mm256_setzero_si256(), _mm256_abs_epi8(q), _mm256_sign_epi8(a, q));
        } else {
            __m128i packed = _mm_loadu_si128((const __m128i *)(const void *)(w + g8_file_nibbles_at(kind)));
            __m256i levels =
                _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(packed, 4), packed), _mm256_set1_epi8(0x0f));
            if (g8_has_fifth(kind))
                levels = _mm256_or_si256(levels, fifth_bits((uint32_t)load_i32(w + g8_file_nibbles_at(kind) - 4)));
            products = dot4_u8_i8(_mm256_setzero_si256(), levels, a);
        }
        int32_t sum = (has_min ? 0 : load_i32(act + QK + 4)) + hsum256_epi32(products);
        acc = fmaf((float)sum * fp16_load(w), tnd_block_f32(act + QK), acc);
        if (has_min) acc = fmaf(fp16_load(w + 2), tnd_block_f32(act + QK + 4), acc);
    }
    return acc;
}

G8_TYPE_ENTRIES(q4_0, G8_Q4_0, dot_row_body, group_tile_body)
G8_TYPE_ENTRIES(q4_1, G8_Q4_1, dot_row_body, group_tile_body)
G8_TYPE_ENTRIES(q5_0, G8_Q5_0, dot_row_body, group_tile_body)
G8_TYPE_ENTRIES(q5_1, G8_Q5_1, dot_row_body, group_tile_body)
G8_TYPE_ENTRIES(q8_0, G8_Q8_0, dot_row_body, group_tile_body)

/* ------------------------------------------------------------------------------------------------------------
 * K types against Q8_K activations (block of 256: f32 d, 256 int8, 16 int16 sums of 16), over the packed groups of
 * 8 rows of ../groups8.h: a lane sums each pair of steps in int16 (at most 2 x 2 x 63 x 127) and madd weighs it by
 * its row's sub-block scale into int32; offsets and mins meet the activations' sums of 16, two sub-blocks per madd.
 * The row dot (rows as the file has them, src/quant/quant_blocks.h) gets the same integers another way and repeats
 * a lane's float steps.
 * ---------------------------------------------------------------------------------------------------------- */

enum { QK_K = 256, Q8_K_BYTES = 292 };

/* Sum of (unsigned levels u) x (signed activations y) over 32 bytes, weighted by one int16 scale per 16 bytes. */
static inline __m256i scaled_dot_u8(__m256i u, __m256i y, __m256i scales16) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(u, y), scales16);
}

/* A row's super-block as the file has it: a scale and a min for each 16 elements (a Q4_K/Q5_K sub-block of 32
 * gives its two halves the same), d, dmin and the level offset (Q3_K 4, Q6_K 32, else 0); per chunk of 32 elements
 * the unsigned levels. x = d * scale * (level - offset) - dmin * min. */
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
static inline void k_scales_of(const uint8_t *x, g8_k_kind kind, k_scales *s) {
    const __m128i low4 = _mm_set1_epi8(0x0f);
    s->min = _mm256_setzero_si256();
    s->dmin = 0.0f;
    switch (kind) {
    case G8_Q2_K: {
        __m256i bytes = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(const void *)x));
        s->scale = _mm256_and_si256(bytes, _mm256_set1_epi16(15));
        s->min = _mm256_srli_epi16(bytes, 4);
        s->d = fp16_load(x + 80);
        s->dmin = fp16_load(x + 82);
        break;
    }
    case G8_Q3_K: { /* 6 bits: low four in the nibbles of bytes 96-103, high two in bytes 104-107, minus 32 */
        __m128i lo = _mm_loadl_epi64((const __m128i *)(const void *)(x + 96));
        __m128i low = _mm_unpacklo_epi64(_mm_and_si128(lo, low4), _mm_and_si128(_mm_srli_epi16(lo, 4), low4));
        uint32_t h = load_u32(x + 104), m = 0x03030303u;
        __m128i high = _mm_set_epi32((int)(h >> 6 & m), (int)(h >> 4 & m), (int)(h >> 2 & m), (int)(h & m));
        __m128i sc = _mm_sub_epi8(_mm_or_si128(low, _mm_slli_epi16(high, 4)), _mm_set1_epi8(32));
        s->scale = _mm256_cvtepi8_epi16(sc);
        s->d = fp16_load(x + 108);
        break;
    }
    case G8_Q4_K:
    case G8_Q5_K: { /* 6-bit scales and mins of 8 sub-blocks of 32, each given to both its halves of 16 */
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
    case G8_Q6_K:
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
static inline __m256i k_levels(const uint8_t *x, g8_k_kind kind, int c) {
    const __m256i low2 = _mm256_set1_epi8(0x03), low4 = _mm256_set1_epi8(0x0f);
    int h = c / 4, p = c % 4;
    switch (kind) {
    case G8_Q2_K:
        return _mm256_and_si256(_mm256_srli_epi16(load256(x + 16 + 32 * h), 2 * p), low2);
    case G8_Q3_K: {
        __m256i low = _mm256_and_si256(_mm256_srli_epi16(load256(x + 32 + 32 * h), 2 * p), low2);
        return _mm256_or_si256(low, bit_at(load256(x), c, 2));
    }
    case G8_Q4_K:
    case G8_Q5_K: {
        __m256i q = load256(x + (kind == G8_Q5_K ? 48 : 16) + 32 * (c / 2));
        __m256i nib = _mm256_and_si256(c % 2 ? _mm256_srli_epi16(q, 4) : q, low4);
        return kind == G8_Q5_K ? _mm256_or_si256(nib, bit_at(load256(x + 16), c, 4)) : nib;
    }
    case G8_Q6_K: {
        __m256i l = load256(x + 64 * h + 32 * (p & 1));
        __m256i lows = _mm256_and_si256(p < 2 ? l : _mm256_srli_epi16(l, 4), low4);
        __m256i highs = _mm256_and_si256(_mm256_srli_epi16(load256(x + 128 + 32 * h), 2 * p), low2);
        return _mm256_or_si256(lows, _mm256_slli_epi16(highs, 4));
    }
    }
    return _mm256_setzero_si256();
}

/* The exact integers of one super-block of one row: the sum over sub-blocks of scale x (levels . activations) minus
 * the level offset's share, and the sum of min x activation sums. */
static inline __attribute__((always_inline)) void k_row_ints(const uint8_t *x, const uint8_t *y, g8_k_kind kind,
                                                             int32_t *total, int32_t *mins) {
    k_scales s;
    k_scales_of(x, kind, &s);
    __m256i acc = _mm256_setzero_si256();
    for (int c = 0; c < 8; c++) {
        /* scales 2c and 2c + 1, each over its 8 lanes (the int16 sums of bytes 0-15, then 16-31) */
        __m256i pair = _mm256_permutevar8x32_epi32(s.scale, _mm256_set1_epi32(c));
        __m256i scales = _mm256_shuffle_epi8(pair, _mm256_setr_epi8(0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 2,
                                                                    3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3));
        acc = _mm256_add_epi32(acc, scaled_dot_u8(k_levels(x, kind, c), load256(y + 4 + 32 * c), scales));
    }
    __m256i bsums = load256(y + 4 + QK_K);
    /* the level offset comes back through the activations' sums of 16, as do the mins */
    if (g8_k_offset[kind])
        acc = _mm256_sub_epi32(
            acc, _mm256_mullo_epi32(_mm256_madd_epi16(s.scale, bsums), _mm256_set1_epi32(g8_k_offset[kind])));
    *total = hsum256_epi32(acc);
    *mins = g8_k_has_min(kind) ? hsum256_epi32(_mm256_madd_epi16(s.min, bsums)) : 0;
}

/* v >> k for a count known only where the caller is inlined */
static inline __m256i shr16(__m256i v, int k) { return _mm256_srl_epi16(v, _mm_cvtsi32_si128(k)); }

/* The unsigned levels of step i of a packed super-block. */
static inline __m256i k_step_levels(const uint8_t *lv, g8_k_kind kind, int i) {
    const g8_k_layout *l = &g8_k_layouts[kind];
    __m256i level = _mm256_setzero_si256();
    int bits = 0;
    if (l->nibbles >= 0) {
        level =
            _mm256_and_si256(shr16(load256(lv + l->nibbles + G8_STEP * (i / 2)), 4 * (i % 2)), _mm256_set1_epi8(0x0f));
        bits = 4;
    }
    if (l->plane2 >= 0) {
        __m256i two =
            _mm256_and_si256(shr16(load256(lv + l->plane2 + G8_STEP * (i / 4)), 2 * (i % 4)), _mm256_set1_epi8(0x03));
        level = _mm256_or_si256(level, bits ? _mm256_slli_epi16(two, 4) : two); /* bits 4-5 stay in their byte */
        bits += 2;
    }
    if (l->plane1 >= 0) {
        __m256i one = _mm256_and_si256(shr16(load256(lv + l->plane1 + G8_STEP * (i / 8)), i % 8), _mm256_set1_epi8(1));
        level = _mm256_or_si256(level, _mm256_sll_epi16(one, _mm_cvtsi32_si128(bits)));
    }
    return level;
}

/* A super-block's scales and mins as bytes, decoded once from its scale words w[] (each sub-block's own decoding took
 * a handful of instructions, a third of a one-token tile's): byte b of a lane of register k holds that row's value
 * of sub-block 4k + b, of 16 elements (Q2_K, Q3_K, Q6_K) or of 32 (Q4_K, Q5_K: both halves take it). Signed for the
 * scales of Q3_K and Q6_K. */
typedef struct k_lane_bytes {
    __m256i scale[4], min[4];
} k_lane_bytes;

/* The bytes of v shifted right by k within each byte, masked: srli of 16-bit lanes with a mask that keeps only the
 * bits that came from the same byte. */
static inline __m256i byte_bits(__m256i v, int k, int mask) {
    return _mm256_and_si256(_mm256_srli_epi16(v, k), _mm256_set1_epi8((char)mask));
}

static inline void k_lane_bytes_of(const __m256i w[4], g8_k_kind kind, k_lane_bytes *b) {
    switch (kind) {
    case G8_Q2_K: /* a byte per sub-block: scale low, min high */
        for (int k = 0; k < 4; k++) {
            b->scale[k] = byte_bits(w[k], 0, 15);
            b->min[k] = byte_bits(w[k], 4, 15);
        }
        break;
    case G8_Q3_K: /* sub-block 4k + b: low four bits in nibble k / 2 of w[k % 2], high two at 2k of w[2], less 32 */
        for (int k = 0; k < 4; k++)
            b->scale[k] = _mm256_sub_epi8(
                _mm256_or_si256(byte_bits(w[k % 2], 4 * (k / 2), 15), _mm256_slli_epi16(byte_bits(w[2], 2 * k, 3), 4)),
                _mm256_set1_epi8(32));
        break;
    case G8_Q6_K:
        for (int k = 0; k < 4; k++) b->scale[k] = w[k];
        break;
    default: /* Q4_K, Q5_K: 6 bits; sub-blocks 0-3 in w[0] (scales) and w[1] (mins), 4-7 from the nibbles of w[2]
              * with the top two bits of the first four */
        b->scale[0] = byte_bits(w[0], 0, 63);
        b->min[0] = byte_bits(w[1], 0, 63);
        b->scale[1] = _mm256_or_si256(byte_bits(w[2], 0, 15), _mm256_slli_epi16(byte_bits(w[0], 6, 3), 4));
        b->min[1] = _mm256_or_si256(byte_bits(w[2], 4, 15), _mm256_slli_epi16(byte_bits(w[1], 6, 3), 4));
        break;
    }
}

/* pshufb controls that move bytes within each 32-bit lane (0x80: a zero byte): one_u32[b] byte b as the lane's
 * unsigned int32, top_s32[b] byte b to the top (an arithmetic shift by 24 then signs it), dup_u16[b] / dup_s16[b]
 * byte b to both int16 halves (low bytes, or high bytes for a shift by 8), two_u16[h] / two_s16[h] bytes 2h and
 * 2h + 1 to the low and high int16. */
#define LANE_CTRL(a, b, c, d)                                                                                          \
    {LANE_BYTE(a, 0),  LANE_BYTE(b, 0),  LANE_BYTE(c, 0),  LANE_BYTE(d, 0),  LANE_BYTE(a, 4),  LANE_BYTE(b, 4),       \
     LANE_BYTE(c, 4),  LANE_BYTE(d, 4),  LANE_BYTE(a, 8),  LANE_BYTE(b, 8),  LANE_BYTE(c, 8),  LANE_BYTE(d, 8),       \
     LANE_BYTE(a, 12), LANE_BYTE(b, 12), LANE_BYTE(c, 12), LANE_BYTE(d, 12), LANE_BYTE(a, 0),  LANE_BYTE(b, 0),       \
     LANE_BYTE(c, 0),  LANE_BYTE(d, 0),  LANE_BYTE(a, 4),  LANE_BYTE(b, 4),  LANE_BYTE(c, 4),  LANE_BYTE(d, 4),       \
     LANE_BYTE(a, 8),  LANE_BYTE(b, 8),  LANE_BYTE(c, 8),  LANE_BYTE(d, 8),  LANE_BYTE(a, 12), LANE_BYTE(b, 12),      \
     LANE_BYTE(c, 12), LANE_BYTE(d, 12)}
#define LANE_BYTE(x, base) ((x) == Z ? Z : (x) + (base)) /* pshufb indexes the 16 bytes of its 128-bit half */
#define Z 0x80
static const uint8_t one_u32[4][32] __attribute__((aligned(32))) = {LANE_CTRL(0, Z, Z, Z), LANE_CTRL(1, Z, Z, Z),
                                                                     LANE_CTRL(2, Z, Z, Z), LANE_CTRL(3, Z, Z, Z)};
static const uint8_t top_s32[4][32] __attribute__((aligned(32))) = {LANE_CTRL(Z, Z, Z, 0), LANE_CTRL(Z, Z, Z, 1),
                                                                     LANE_CTRL(Z, Z, Z, 2), LANE_CTRL(Z, Z, Z, 3)};
static const uint8_t dup_s16[4][32] __attribute__((aligned(32))) = {LANE_CTRL(Z, 0, Z, 0), LANE_CTRL(Z, 1, Z, 1),
                                                                     LANE_CTRL(Z, 2, Z, 2), LANE_CTRL(Z, 3, Z, 3)};
static const uint8_t dup_u16[4][32] __attribute__((aligned(32))) = {LANE_CTRL(0, Z, 0, Z), LANE_CTRL(1, Z, 1, Z),
                                                                     LANE_CTRL(2, Z, 2, Z), LANE_CTRL(3, Z, 3, Z)};
static const uint8_t two_u16[2][32] __attribute__((aligned(32))) = {LANE_CTRL(0, Z, 1, Z), LANE_CTRL(2, Z, 3, Z)};
static const uint8_t two_s16[2][32] __attribute__((aligned(32))) = {LANE_CTRL(Z, 0, Z, 1), LANE_CTRL(Z, 2, Z, 3)};
#undef Z
#undef LANE_BYTE
#undef LANE_CTRL

static inline __m256i lane_shuffle(__m256i v, const uint8_t ctrl[32]) {
    return _mm256_shuffle_epi8(v, _mm256_load_si256((const __m256i *)(const void *)ctrl));
}

/* Q4_K and Q5_K have a scale and a min per 32 elements, which both sub-blocks of 16 take. */
static inline bool k_per_32(g8_k_kind kind) { return kind == G8_Q4_K || kind == G8_Q5_K; }
/* Sub-block j of 16's byte in k_lane_bytes: byte i % 4 of register i / 4. */
static inline int k_byte_index(g8_k_kind kind, int j) { return k_per_32(kind) ? j / 2 : j; }
static inline bool k_scale_signed(g8_k_kind kind) { return kind == G8_Q3_K || kind == G8_Q6_K; }

/* The int16 pair a madd weighs the activations' sums of 16 of sub-blocks j and j + 1 (j even) with: their scales
 * (min false) or mins. */
static inline __m256i k_pair(const k_lane_bytes *b, g8_k_kind kind, int j, bool min) {
    int i = k_byte_index(kind, j);
    __m256i v = (min ? b->min : b->scale)[i / 4];
    if (k_per_32(kind)) return lane_shuffle(v, dup_u16[i % 4]); /* j and j + 1 take one byte */
    if (!min && k_scale_signed(kind)) return _mm256_srai_epi16(lane_shuffle(v, two_s16[(i % 4) / 2]), 8);
    return lane_shuffle(v, two_u16[(i % 4) / 2]);
}

/* Whether sub_block_dot sums a sub-block's four steps with VNNI: where the set has it and the tile has more than one
 * token. With one token each vpdpbusd waits for the one before and the multiply by the scale for the last (10 cycles
 * of latency), which nothing else hides: maddubs pairs that madd weighs were faster there (Q4_K in cache, one thread,
 * 31 -> 35 GB/s). */
static inline bool k_vnni(bool one_token) {
#if defined(__AVXVNNI__)
    return !one_token;
#else
    (void)one_token;
    return false;
#endif
}

/* Sub-block j's scale in the form sub_block_dot takes: int32 for VNNI, else the int16 pair that madd weighs a pair of
 * steps with. */
static inline __m256i sub_block_scale(const k_lane_bytes *b, g8_k_kind kind, int j, bool one_token) {
    int i = k_byte_index(kind, j), at = i % 4;
    __m256i v = b->scale[i / 4];
    bool sign = k_scale_signed(kind);
    if (k_vnni(one_token))
        return sign ? _mm256_srai_epi32(lane_shuffle(v, top_s32[at]), 24) : lane_shuffle(v, one_u32[at]);
    return sign ? _mm256_srai_epi16(lane_shuffle(v, dup_s16[at]), 8) : lane_shuffle(v, dup_u16[at]);
}

/* Sub-blocks of 16 that one call sums under one scale: with one token the two halves of a Q4_K or Q5_K sub-block of
 * 32, else one (with 4 tokens two were slower, Q4_K 14 -> 13 GB/s: the 8 steps' levels no longer fit the registers
 * beside the tokens' sums). */
static inline int k_span(g8_k_kind kind, bool one_token) { return k_per_32(kind) && one_token ? 2 : 1; }

/* How many steps' products sum in int16 before madd weighs them: each maddubs lane is at most 2 x top x 128, top the
 * largest level, so 8 steps for Q4_K (8 x 2 x 15 x 128 = 30720), the four of a sub-block where levels stay below 32,
 * two for Q6_K's 6-bit levels (a madd and an add fewer per pair of steps merged). In cache, one thread, against
 * pairs of steps throughout, one token / four: Q4_K 33 -> 38 / 14 -> 15 GB/s, Q5_K 32 -> 33 / 12.5 -> 13.4, Q2_K
 * 24.5 -> 28 / 7.5 -> 8.7, Q3_K 19.1 -> 19.8 / 7.9 -> 8.4. */
static inline int k_int16_steps(g8_k_kind kind) { return kind == G8_Q4_K ? 8 : kind == G8_Q6_K ? 2 : 4; }

/* total plus the steps of k_span sub-blocks of 16 (four steps each) with one token's activations at a, weighed by
 * the rows' scale. With VNNI (k_vnni) the steps sum in int32 and one multiply weighs them; otherwise runs of
 * k_int16_steps sum in int16 and madd weighs each. */
static inline __m256i sub_block_dot(__m256i total, const __m256i levels[], const uint8_t *a, __m256i scale,
                                    g8_k_kind kind, bool one_token) {
    const int steps = 4 * k_span(kind, one_token);
    if (k_vnni(one_token)) {
        __m256i sum = _mm256_setzero_si256();
        for (int q = 0; q < steps; q++) sum = dot4_u8_i8(sum, levels[q], _mm256_set1_epi32(load_i32(a + 4 * q)));
        return _mm256_add_epi32(total, _mm256_mullo_epi32(sum, scale));
    }
    const int run = k_int16_steps(kind) < steps ? k_int16_steps(kind) : steps;
    for (int q0 = 0; q0 < steps; q0 += run) {
        __m256i p = _mm256_maddubs_epi16(levels[q0], _mm256_set1_epi32(load_i32(a + 4 * q0)));
        for (int q = q0 + 1; q < q0 + run; q++)
            p = _mm256_add_epi16(p, _mm256_maddubs_epi16(levels[q], _mm256_set1_epi32(load_i32(a + 4 * q))));
        total = _mm256_add_epi32(total, _mm256_madd_epi16(p, scale));
    }
    return total;
}

/* Sub-blocks j .. j + k_span - 1 of 16 (steps 4j ..) of a super-block into total[t] for T tokens whose quantized
 * values start at a + t * a_stride. The tile unrolls its calls where it has one token, so that every address, shift
 * and pshufb control is a constant: in cache, one thread, Q6_K x1.2, Q5_K x1.37, Q3_K x1.3, Q2_K x1.2, Q4_K steady
 * at 34-35 GB/s where the loop gave 31 or 36 by where the linker put it; not for more tokens (Q4_K x0.84-0.89). */
static inline __attribute__((always_inline)) void k_sub_block(const k_lane_bytes *kb, const uint8_t *lv,
                                                              const uint8_t *a, size_t a_stride, g8_k_kind kind, int T,
                                                              int j, __m256i total[]) {
    __m256i scale = sub_block_scale(kb, kind, j, T == 1), levels[8];
    for (int q = 0; q < 4 * k_span(kind, T == 1); q++) levels[q] = k_step_levels(lv, kind, 4 * j + q);
    for (int t = 0; t < T; t++)
        total[t] = sub_block_dot(total[t], levels, a + (size_t)t * a_stride + 16 * j, scale, kind, T == 1);
}

/* y[t * y_stride + r] for the first R rows of the group at w and T tokens of Q8_K activations. A lane's
 * arithmetic per super-block: the exact integers of k_row_ints, then acc + total x (d dy) - mins x (dmin dy), each
 * product rounded once (two fused multiply-adds). */
static inline __attribute__((always_inline)) void k_group_tile_body(const uint8_t *w, const uint8_t *act,
                                                                    size_t act_stride, int64_t n, float *y,
                                                                    size_t y_stride, int R, g8_k_kind kind, int T) {
    const g8_k_layout *l = &g8_k_layouts[kind];
    const size_t group_block = G8_ROWS * g8_k_bytes[kind];
    __m256 acc[GROUP_TOKENS];
    for (int t = 0; t < T; t++) acc[t] = _mm256_setzero_ps();
    for (int64_t b = 0; b < n / QK_K; b++, w += group_block) {
        tnd_cpu_prefetch_ahead(w, group_block);
        const uint8_t *lv = w + g8_k_levels_at(kind), *words = lv - 4 * G8_ROWS * l->n_words;
        __m256i sw[4];
        for (int k = 0; k < l->n_words; k++) sw[k] = load256(words + 4 * G8_ROWS * k);
        k_lane_bytes kb;
        k_lane_bytes_of(sw, kind, &kb);
        __m256i total[GROUP_TOKENS];
        for (int t = 0; t < T; t++) total[t] = _mm256_setzero_si256();
        const uint8_t *a = act + (size_t)b * Q8_K_BYTES + 4;
        if (T == 1) { /* see k_sub_block */
#pragma GCC unroll 16
            for (int j = 0; j < 16; j += k_span(kind, true)) k_sub_block(&kb, lv, a, act_stride, kind, T, j, total);
        } else {
            for (int j = 0; j < 16; j++) k_sub_block(&kb, lv, a, act_stride, kind, T, j, total);
        }
        /* offsets and mins meet the activations' sums of 16, two sub-blocks per madd */
        __m256i off_pairs[8], min_pairs[8];
        for (int j = 0; j < 16; j += 2) {
            if (g8_k_offset[kind]) off_pairs[j / 2] = k_pair(&kb, kind, j, false);
            if (g8_k_has_min(kind)) min_pairs[j / 2] = k_pair(&kb, kind, j, true);
        }
        __m256 d = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)w));
        __m256 dmin = g8_k_has_min(kind)
                          ? _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)(w + 2 * G8_ROWS)))
                          : _mm256_setzero_ps();
        for (int t = 0; t < T; t++) {
            const uint8_t *ya = act + (size_t)t * act_stride + (size_t)b * Q8_K_BYTES;
            __m256i off = _mm256_setzero_si256(), mins = _mm256_setzero_si256();
            for (int j = 0; j < 16; j += 2) {
                __m256i bs = _mm256_set1_epi32(load_i32(ya + 4 + QK_K + 2 * j));
                if (g8_k_offset[kind]) off = _mm256_add_epi32(off, _mm256_madd_epi16(off_pairs[j / 2], bs));
                if (g8_k_has_min(kind)) mins = _mm256_add_epi32(mins, _mm256_madd_epi16(min_pairs[j / 2], bs));
            }
            if (g8_k_offset[kind])
                total[t] = _mm256_sub_epi32(total[t], _mm256_mullo_epi32(off, _mm256_set1_epi32(g8_k_offset[kind])));
            __m256 dy = _mm256_set1_ps(tnd_block_f32(ya));
            acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(total[t]), _mm256_mul_ps(d, dy), acc[t]);
            if (g8_k_has_min(kind))
                acc[t] = _mm256_fnmadd_ps(_mm256_cvtepi32_ps(mins), _mm256_mul_ps(dmin, dy), acc[t]);
        }
    }
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    __m256i rows = _mm256_cmpgt_epi32(_mm256_set1_epi32(R), lane);
    for (int t = 0; t < T; t++) _mm256_maskstore_ps(y + (size_t)t * y_stride, rows, acc[t]);
}

/* One row as the file has it, with a lane's arithmetic of the tile above (the same bits). */
G8_K_ROW_DOT

G8_TYPE_ENTRIES(q2_K, G8_Q2_K, k_row_dot, k_group_tile_body)
G8_TYPE_ENTRIES(q3_K, G8_Q3_K, k_row_dot, k_group_tile_body)
G8_TYPE_ENTRIES(q4_K, G8_Q4_K, k_row_dot, k_group_tile_body)
G8_TYPE_ENTRIES(q5_K, G8_Q5_K, k_row_dot, k_group_tile_body)
G8_TYPE_ENTRIES(q6_K, G8_Q6_K, k_row_dot, k_group_tile_body)

/* ------------------------------------------------------------------------------------------------------------
 * Float vector steps (attention)
 * ---------------------------------------------------------------------------------------------------------- */

static void f16_to_f32(const void *vx, float *y, int64_t n) {
    const uint16_t *x = vx;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, load_f16x8(x + i));
    for (; i < n; i++) y[i] = f16_one(x[i]);
}

/* Floats to F16 for the KV store: F16C rounds to nearest, ties to even, as the type's own encoder. */
static void f32_to_f16(const float *x, void *vy, int64_t n) {
    uint16_t *y = vy;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m128i h = _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT);
        _mm_storeu_si128((__m128i *)(void *)(y + i), h);
    }
    for (; i < n; i++) y[i] = tnd_f32_to_fp16(x[i]);
}

/* Q8_0 and Q4_0 rows of a KV cache: level times scale, each product rounded once as in the reference decoder. */
static void q8_0_to_f32(const void *vx, float *y, int64_t n) {
    const tnd_block_q8_0 *b = vx;
    for (int64_t i = 0; i < n / TND_QK_LEGACY; i++, y += TND_QK_LEGACY) {
        __m256 d = _mm256_set1_ps(tnd_block_f16(b[i].d));
        for (int j = 0; j < TND_QK_LEGACY; j += 8) {
            __m256i q = _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(const void *)(b[i].qs + j)));
            _mm256_storeu_ps(y + j, _mm256_mul_ps(_mm256_cvtepi32_ps(q), d));
        }
    }
}

static void q4_0_to_f32(const void *vx, float *y, int64_t n) {
    const tnd_block_q4_0 *b = vx;
    for (int64_t i = 0; i < n / TND_QK_LEGACY; i++, y += TND_QK_LEGACY) {
        __m256 d = _mm256_set1_ps(tnd_block_f16(b[i].d));
        __m128i bytes = _mm_loadu_si128((const __m128i *)(const void *)b[i].qs), m = _mm_set1_epi8(15);
        __m128i eight = _mm_set1_epi8(8);
        /* elements 0..15 are the low nibbles, 16..31 the high ones */
        __m128i lo = _mm_sub_epi8(_mm_and_si128(bytes, m), eight);
        __m128i hi = _mm_sub_epi8(_mm_and_si128(_mm_srli_epi16(bytes, 4), m), eight);
        const __m128i halves[4] = {lo, _mm_srli_si128(lo, 8), hi, _mm_srli_si128(hi, 8)};
        for (int j = 0; j < 4; j++)
            _mm256_storeu_ps(y + 8 * j, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(halves[j])), d));
    }
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

/* Attention tile. Scores come from K transposed (dimension d of position j at k[d * stride + j]): each lane holds
 * one position and sums its dimensions in order with fused multiply-adds, so every K value is loaded once for a
 * group of heads and no horizontal sums are needed. The float entry transposes its rows 8 x 8 in registers; the
 * stored entry reads an F16 or Q8_0 cache as it is stored (kv_store keeps K transposed where this entry takes the
 * type and head size) and decodes in registers. Both share every other step, so they give the same bits on the same
 * values. */

enum {
    ATTN_POS = 16,       /* positions of one pass of the scores: two vectors */
    ATTN_MAX_HD = 512,   /* head sizes the tile takes (a multiple of 8) */
    ATTN_REP_STEP = 16,  /* query heads whose weights are kept at once */
    ATTN_HD_STEP = 64    /* output elements kept in registers while the tile's V rows pass */
};

/* 8 float or F16 values of K or V rows from element `at`. */
static inline __m256 load_kv8(const void *p, size_t at, tnd_kv_kind kind) {
    return kind == TND_KV_F16 ? load_f16x8((const uint16_t *)p + at) : _mm256_loadu_ps((const float *)p + at);
}

/* Positions [8 g, 8 g + 8) of dimension d from K transposed at element `at`, as float or F16, lanes from n_valid on
 * as zeros; nothing is read past the valid positions (the run may end at the last row of the cache). */
static inline __m256 load_k8(const void *k, size_t at, int32_t g, int32_t n_valid, tnd_kv_kind kind) {
    if (n_valid >= 8 * g + 8) return load_kv8(k, at + (size_t)(8 * g), kind);
    float part[8] = {0};
    for (int32_t j = 8 * g; j < n_valid; j++)
        part[j - 8 * g] =
            kind == TND_KV_F16 ? f16_one(((const uint16_t *)k)[at + (size_t)j]) : ((const float *)k)[at + (size_t)j];
    return _mm256_loadu_ps(part);
}

/* Requests the next tile's rows a few lines at a time: piece `step` is 8 lines of K and 8 of V. */
static inline void prefetch_piece(const tnd_kv_prefetch *next, int32_t step) {
    size_t at = (size_t)step * 512;
    if (!next || !next->k || at >= next->bytes) return;
    for (int off = 0; off < 512; off += 64) {
        _mm_prefetch((const char *)next->k + at + off, _MM_HINT_T0);
        _mm_prefetch((const char *)next->v + at + off, _MM_HINT_T0);
    }
}

/* Reads K transposed, dimension by dimension, 16 positions at a time (two vectors of 8): float or F16 values at
 * element d * stride. */
typedef struct k_reader {
    const void *k;
    int32_t stride, n_valid;
    tnd_kv_kind kind;
} k_reader;

/* Positions 0..7 and 8..15 of dimension d. */
static inline void k_read(const k_reader *r, int32_t d, __m256 *k0, __m256 *k1) {
    size_t at = (size_t)d * (size_t)r->stride;
    *k0 = load_k8(r->k, at, 0, r->n_valid, r->kind);
    *k1 = load_k8(r->k, at, 1, r->n_valid, r->kind);
}

/* Scores of GH heads (rows of hd floats at q) against ATTN_POS positions of K transposed, into s[h * s_stride ..]. */
static inline void attn_scores(const float *q, int32_t hd, k_reader kr, float *s, int32_t s_stride, int GH,
                               const tnd_kv_prefetch *next, int32_t *step) {
    __m256 a[4][2];
    for (int h = 0; h < GH; h++) a[h][0] = a[h][1] = _mm256_setzero_ps();
    for (int32_t d = 0; d < hd; d++) {
        if (d % 8 == 0 && next) prefetch_piece(next, (*step)++);
        __m256 k0, k1;
        k_read(&kr, d, &k0, &k1);
        for (int h = 0; h < GH; h++) {
            __m256 qd = _mm256_broadcast_ss(q + h * hd + d);
            a[h][0] = _mm256_fmadd_ps(qd, k0, a[h][0]);
            a[h][1] = _mm256_fmadd_ps(qd, k1, a[h][1]);
        }
    }
    for (int h = 0; h < GH; h++) {
        _mm256_storeu_ps(s + h * s_stride, a[h][0]);
        _mm256_storeu_ps(s + h * s_stride + 8, a[h][1]);
    }
}

/* Scores of GH query heads, quantized (qq), against ATTN_POS positions of a Q8_0 K in steps of four dimensions
 * (tnd_kv_stored), the softmax scale included, into s[h * s_stride ..]: per 8 positions and block of 32 dimensions
 * each step's 32 bytes are loaded once for all the heads; a head's int32 lanes sum |level| x (its levels' signs
 * moved onto the query's), the exact dot on both sets (pairs of maddubs products stay within 2 x 127 x 127), then
 * the lanes are converted and weighed by the position's scale times the head's. Positions from n_valid on are not
 * read (their lanes are written, and the softmax masks them). */
static inline void attn_scores_q8(tnd_attn_q8 qq, int32_t hd, const uint8_t *k, const uint16_t *scales,
                                  int32_t stride, int32_t n_valid, float *s, int32_t s_stride, int GH,
                                  const tnd_kv_prefetch *next, int32_t *step) {
    const int32_t blocks = hd / 32;
    for (int32_t j = 0; j < ATTN_POS && j < n_valid; j += 8) {
        int32_t left = n_valid - j;
        __m256i lanes = _mm256_cmpgt_epi32(_mm256_set1_epi32(left), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
        __m256 a[4];
        for (int h = 0; h < GH; h++) a[h] = _mm256_setzero_ps();
        for (int32_t b = 0; b < blocks; b++) {
            if (next) prefetch_piece(next, (*step)++);
            __m256i sum[4];
            for (int h = 0; h < GH; h++) sum[h] = _mm256_setzero_si256();
            for (int i = 0; i < 8; i++) {
                const int32_t *at = (const int32_t *)(const void *)(k + 4 * ((size_t)(8 * b + i) * (size_t)stride + j));
                __m256i levels = left >= 8 ? _mm256_loadu_si256((const __m256i *)(const void *)at)
                                           : _mm256_maskload_epi32(at, lanes);
                __m256i magnitude = _mm256_abs_epi8(levels);
                for (int h = 0; h < GH; h++) {
                    __m256i q4 = _mm256_set1_epi32(load_i32((const uint8_t *)qq.levels + h * hd + 32 * b + 4 * i));
                    sum[h] = dot4_u8_i8(sum[h], magnitude, _mm256_sign_epi8(q4, levels));
                }
            }
            uint16_t part[8] = {0};
            const uint16_t *sc = scales + (size_t)b * (size_t)stride + j;
            if (left < 8) sc = memcpy(part, sc, sizeof(uint16_t) * (size_t)left);
            __m256 dk = load_f16x8(sc);
            for (int h = 0; h < GH; h++)
                a[h] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sum[h]),
                                       _mm256_mul_ps(dk, _mm256_set1_ps(qq.scale[h * blocks + b])), a[h]);
        }
        for (int h = 0; h < GH; h++) _mm256_storeu_ps(s + h * s_stride + j, a[h]);
    }
}

/* Rows r[0..7] become the columns: r[i] holds element i of each of the 8 rows. */
static inline void transpose8x8(__m256 r[8]) {
    __m256 t[8], u[8];
    for (int i = 0; i < 8; i += 2) {
        t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 8; i += 4) {
        u[i] = _mm256_shuffle_ps(t[i], t[i + 2], 0x44);
        u[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], 0xEE);
        u[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0x44);
        u[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
    }
    for (int i = 0; i < 4; i++) {
        r[i] = _mm256_permute2f128_ps(u[i], u[i + 4], 0x20);
        r[i + 4] = _mm256_permute2f128_ps(u[i], u[i + 4], 0x31);
    }
}

/* 8 V values of position j from output i0 + u: float rows, or an F16 cache's rows as stored. */
static inline __m256 v_values8(const void *v, tnd_kv_kind kind, int32_t j, int32_t i0, int32_t u, int32_t hd) {
    return load_kv8(v, (size_t)j * (size_t)hd + (size_t)(i0 + u), kind);
}

enum { ATTN_W = TND_CPU_ATTN_TILE_MAX + ATTN_POS }; /* the stride of one head's weights (a tile, a pass beyond) */

/* The weights of `rep` heads (rows w[r][..] of ATTN_W, zero from np on) times the scales of block b of a Q8_0 V's np
 * positions (tnd_kv_stored), as 7-bit levels[r][j] (TND_ATTN_V_LEVELS_AVX2 at the head's largest) and the weight of
 * one level, unit[r] (NaN where a scale is not finite: the block's sums are then NaN, as float ones would be). */
static inline void v_weight_levels(const float (*w)[ATTN_W], const uint16_t *scales, int32_t np, int32_t rep,
                                   uint8_t (*levels)[TND_CPU_ATTN_TILE_MAX], float *unit) {
    int32_t np8 = (np + 7) & ~7;
    uint16_t part[8] = {0};
    __m256 d[TND_CPU_ATTN_TILE_MAX / 8];
    /* a scale that is not finite (the weights are in [0, 1], or NaN, and then so are the head's sum and outputs) */
    int bad = 0;
    for (int32_t i = 0; 8 * i < np8; i++) { /* the scales from np on as zeros: none is read past the positions */
        const uint16_t *sc = scales + 8 * i;
        if (np - 8 * i < 8) sc = memcpy(part, sc, sizeof(uint16_t) * (size_t)(np - 8 * i));
        d[i] = load_f16x8(sc);
        __m256 magnitude = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), d[i]);
        bad |= _mm256_movemask_ps(_mm256_cmp_ps(magnitude, _mm256_set1_ps(3.0e38f), _CMP_NLE_UQ));
    }
    for (int32_t r = 0; r < rep; r++) {
        __m256 p[TND_CPU_ATTN_TILE_MAX / 8], top = _mm256_setzero_ps();
        for (int32_t i = 0; i < TND_CPU_ATTN_TILE_MAX / 8; i++) {
            p[i] = 8 * i < np8 ? _mm256_mul_ps(_mm256_loadu_ps(w[r] + 8 * i), d[i]) : _mm256_setzero_ps();
            top = _mm256_max_ps(top, p[i]);
        }
        float most = hmax256(top);
        /* a tile whose largest product is below 1e-30 adds nothing a float sum would keep: its levels are all 0 */
        __m256 per = _mm256_set1_ps(most > 1e-30f ? TND_ATTN_V_LEVELS_AVX2 / most : 0.0f);
        unit[r] = bad ? NAN : most / TND_ATTN_V_LEVELS_AVX2;
        for (int32_t i = 0; 8 * i < np8; i += 4) { /* 32 positions: int32 -> int16 -> uint8, then lanes in order */
            __m256i l[4];
            for (int u = 0; u < 4; u++) l[u] = _mm256_cvtps_epi32(_mm256_mul_ps(p[i + u], per));
            __m256i bytes = _mm256_packus_epi16(_mm256_packs_epi32(l[0], l[1]), _mm256_packs_epi32(l[2], l[3]));
            bytes = _mm256_permutevar8x32_epi32(bytes, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
            _mm256_storeu_si256((__m256i *)(void *)(levels[r] + 8 * i), bytes);
        }
    }
}

/* acc[h][32 b + i0 ..] = acc[h][..] * c[h] + unit[h] * sum_j levels[h][j] v[j][32 b + i0 ..] for GH heads over 16
 * dimensions of block b of a Q8_0 V in groups of four positions: per group, two vectors of 8 lanes of four levels,
 * each head's four weight levels one broadcast lane, so one dot adds four positions' products (maddubs pairs stay
 * within 2 x 127 x 128). */
static inline __attribute__((always_inline)) void
v_accumulate_q8(float *acc, int32_t hd, const float *c, const uint8_t *v, int32_t np, int32_t b, int32_t i0,
                const uint8_t (*levels)[TND_CPU_ATTN_TILE_MAX], const float *unit, int GH) {
    __m256i s[4][2];
    for (int h = 0; h < GH; h++) s[h][0] = s[h][1] = _mm256_setzero_si256();
    for (int32_t g = 0; 4 * g < np; g++) {
        const uint8_t *at = v + 4 * ((size_t)g * (size_t)hd + 32 * (size_t)b + (size_t)i0);
        __m256i v0 = _mm256_loadu_si256((const __m256i *)(const void *)at);
        __m256i v1 = _mm256_loadu_si256((const __m256i *)(const void *)(at + 32));
        for (int h = 0; h < GH; h++) {
            __m256i w4 = _mm256_set1_epi32(load_i32(levels[h] + 4 * g));
            s[h][0] = dot4_u8_i8(s[h][0], w4, v0);
            s[h][1] = dot4_u8_i8(s[h][1], w4, v1);
        }
    }
    for (int h = 0; h < GH; h++)
        for (int u = 0; u < 2; u++) {
            float *out = acc + h * hd + 32 * b + i0 + 8 * u;
            _mm256_storeu_ps(out, _mm256_fmadd_ps(_mm256_cvtepi32_ps(s[h][u]), _mm256_set1_ps(unit[h]),
                                                  _mm256_mul_ps(_mm256_loadu_ps(out), _mm256_set1_ps(c[h]))));
        }
}

/* V of a Q8_0 cache in integers for `rep` heads, block by block of 32 dimensions and 16 at a time, 4 heads at once
 * (each V vector is loaded once for them). (The scores asked for the next tile.) */
static inline void v_sum_q8(float *acc, int32_t hd, const float (*w)[ATTN_W], const float *c, const tnd_kv_stored *kv,
                            int32_t np, int32_t rep) {
    uint8_t levels[ATTN_REP_STEP][TND_CPU_ATTN_TILE_MAX];
    float unit[ATTN_REP_STEP];
    const uint8_t *v = kv->v;
    for (int32_t b = 0; b < hd / 32; b++) {
        v_weight_levels(w, kv->v_scales + (size_t)b * (size_t)kv->stride, np, rep, levels, unit);
        const uint8_t(*lv)[TND_CPU_ATTN_TILE_MAX] = (const uint8_t(*)[TND_CPU_ATTN_TILE_MAX])levels;
        for (int32_t i0 = 0; i0 < 32; i0 += 16) {
            int32_t r = 0;
            for (; r + 4 <= rep; r += 4) v_accumulate_q8(acc + r * hd, hd, c + r, v, np, b, i0, lv + r, unit + r, 4);
            for (; r + 2 <= rep; r += 2) v_accumulate_q8(acc + r * hd, hd, c + r, v, np, b, i0, lv + r, unit + r, 2);
            for (; r < rep; r++) v_accumulate_q8(acc + r * hd, hd, c + r, v, np, b, i0, lv + r, unit + r, 1);
        }
    }
}

/* Scores of GH heads from head r against the ATTN_POS positions from j0 into s (rows of the weights' stride): a Q8_0
 * cache's in integers, others from the K reader. */
static inline __attribute__((always_inline)) void scores_of(const float *q, const tnd_kv_stored *kv, k_reader kr,
                                                            int32_t r, int32_t hd, int32_t j0, int32_t np, float *s,
                                                            int GH, const tnd_kv_prefetch *next, int32_t *step,
                                                            tnd_kv_kind kind) {
    if (kind == TND_KV_Q8_0)
        attn_scores_q8(tnd_attn_q8_from(kv->q8, r, hd), hd, (const uint8_t *)kv->k + 4 * j0, kv->k_scales + j0,
                       kv->stride, np - j0, s, ATTN_W, GH, next, step);
    else
        attn_scores(q + r * hd, hd, kr, s, ATTN_W, GH, next, step);
}

/* The tile's softmax for rep heads: each row of weight (np scores) becomes e^(score * scale - m) with m the head's
 * running maximum, zero from np on; sum and mx advance and rescale[r] = e^(old m - m) (0 before the first tile).
 * The padding's masks are made once for all the heads, and the rescales take one vector exp for 8 heads rather than
 * a scalar exp per head. */
static inline __attribute__((always_inline)) void tile_softmax(float (*weight)[ATTN_W], int32_t rep, int32_t np,
                                                               float scale, float *mx, float *sum, float *rescale) {
    __m256 valid[ATTN_W / 8];
    int32_t n8 = (np + 7) / 8;
    for (int32_t i = 0; i < n8; i++)
        valid[i] = _mm256_castsi256_ps(
            _mm256_cmpgt_epi32(_mm256_set1_epi32(np - 8 * i), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)));
    float m_new[ATTN_REP_STEP];
    for (int32_t r = 0; r < rep; r++) {
        __m256 vmax = _mm256_set1_ps(-INFINITY);
        for (int32_t i = 0; i < n8; i++) {
            float *w = weight[r] + 8 * i;
            __m256 s8 = _mm256_blendv_ps(_mm256_set1_ps(-INFINITY),
                                         _mm256_mul_ps(_mm256_loadu_ps(w), _mm256_set1_ps(scale)), valid[i]);
            _mm256_storeu_ps(w, s8);
            vmax = _mm256_max_ps(vmax, s8);
        }
        float tile_max = hmax256(vmax);
        m_new[r] = tile_max > mx[r] ? tile_max : mx[r];
    }
    for (int32_t r = 0; r < rep; r += 8) {
        __m256i heads = _mm256_cmpgt_epi32(_mm256_set1_epi32(rep - r), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
        __m256 old = _mm256_maskload_ps(mx + r, heads), now = _mm256_maskload_ps(m_new + r, heads);
        __m256 started = _mm256_cmp_ps(_mm256_maskload_ps(sum + r, heads), _mm256_setzero_ps(), _CMP_GT_OQ);
        _mm256_maskstore_ps(rescale + r, heads, _mm256_and_ps(started, exp256(_mm256_sub_ps(old, now))));
        _mm256_maskstore_ps(mx + r, heads, now);
    }
    for (int32_t r = 0; r < rep; r++) {
        __m256 wsum = _mm256_setzero_ps(), vm = _mm256_set1_ps(m_new[r]);
        for (int32_t i = 0; i < n8; i++) {
            float *w = weight[r] + 8 * i;
            __m256 w8 = _mm256_and_ps(exp256(_mm256_sub_ps(_mm256_loadu_ps(w), vm)), valid[i]);
            _mm256_storeu_ps(w, w8);
            wsum = _mm256_add_ps(wsum, w8);
        }
        sum[r] = sum[r] * rescale[r] + hsum256(wsum);
    }
}

/* The tile for up to ATTN_REP_STEP heads: float rows of K and V (TND_KV_FLOAT), or a cache as stored (kv: K transposed
 * and V rows, F16 or Q8_0); inlined per kind. */
static inline __attribute__((always_inline)) void
attn_tile_body(const float *q, int32_t rep, int32_t hd, const float *k_rows, const float *v_rows,
               const tnd_kv_stored *kv, int32_t np, float scale, float *mx, float *sum, float *acc, tnd_kv_kind kind,
               const tnd_kv_prefetch *next) {
    float weight[ATTN_REP_STEP][ATTN_W], kt[ATTN_MAX_HD * ATTN_POS], rescale[ATTN_REP_STEP];
    const void *v = kind == TND_KV_FLOAT ? (const void *)v_rows : kv->v;
    int32_t step = 0;
    for (int32_t j0 = 0; j0 < np; j0 += ATTN_POS) {
        /* K transposed: float rows transposed here into kt [hd][16] (rows past np as zeros), or an F16 cache's read
         * as stored (its values convert in one instruction, which costs less than the float copy's loads); a Q8_0
         * cache's levels are scored as integers against the quantized queries */
        k_reader kr = {kt, ATTN_POS, np - j0, TND_KV_FLOAT};
        if (kind == TND_KV_F16) kr = (k_reader){(const uint16_t *)kv->k + j0, kv->stride, np - j0, kind};
        if (kind == TND_KV_FLOAT)
            for (int g = 0; g < 2; g++)
                for (int32_t d0 = 0; d0 < hd; d0 += 8) {
                    __m256 m[8];
                    for (int i = 0; i < 8; i++) {
                        int32_t j = j0 + 8 * g + i;
                        m[i] = j < np ? _mm256_loadu_ps(k_rows + (size_t)j * hd + d0) : _mm256_setzero_ps();
                    }
                    transpose8x8(m);
                    for (int i = 0; i < 8; i++) _mm256_storeu_ps(kt + (d0 + i) * ATTN_POS + 8 * g, m[i]);
                }
        int32_t r = 0; /* the first group of heads asks for the next tile */
        for (; r + 4 <= rep; r += 4)
            scores_of(q, kv, kr, r, hd, j0, np, weight[r] + j0, 4, r ? NULL : next, &step, kind);
        for (; r + 2 <= rep; r += 2)
            scores_of(q, kv, kr, r, hd, j0, np, weight[r] + j0, 2, r ? NULL : next, &step, kind);
        for (; r < rep; r++) scores_of(q, kv, kr, r, hd, j0, np, weight[r] + j0, 1, r ? NULL : next, &step, kind);
    }
    tile_softmax(weight, rep, np, kind == TND_KV_Q8_0 ? 1.0f : scale, mx, sum, rescale); /* Q8_0: queries hold it */
    /* acc = acc * c + sum_j w_j v_j: a Q8_0 cache's in integers; float rows or F16 values (converted per head, as
     * they load: one instruction) ATTN_HD_STEP outputs at a time in registers (then 8 at a time) */
    if (kind == TND_KV_Q8_0) {
        v_sum_q8(acc, hd, (const float(*)[ATTN_W])weight, rescale, kv, np, rep);
        return;
    }
    for (int32_t i0 = 0; i0 < hd; i0 += ATTN_HD_STEP) {
        int32_t width = hd - i0 < ATTN_HD_STEP ? hd - i0 : ATTN_HD_STEP;
        for (int32_t r = 0; r < rep; r++) {
            const float *w = weight[r];
            float *ar = acc + r * hd + i0;
            __m256 vc = _mm256_set1_ps(rescale[r]);
            if (width == ATTN_HD_STEP) {
                __m256 a[ATTN_HD_STEP / 8];
                for (int u = 0; u < ATTN_HD_STEP / 8; u++) a[u] = _mm256_mul_ps(_mm256_loadu_ps(ar + 8 * u), vc);
                for (int32_t j = 0; j < np; j++) {
                    __m256 wj = _mm256_broadcast_ss(w + j);
                    for (int u = 0; u < ATTN_HD_STEP / 8; u++)
                        a[u] = _mm256_fmadd_ps(wj, v_values8(v, kind, j, i0, 8 * u, hd), a[u]);
                }
                for (int u = 0; u < ATTN_HD_STEP / 8; u++) _mm256_storeu_ps(ar + 8 * u, a[u]);
                continue;
            }
            for (int32_t u = 0; u < width; u += 8) {
                __m256 a = _mm256_mul_ps(_mm256_loadu_ps(ar + u), vc);
                for (int32_t j = 0; j < np; j++)
                    a = _mm256_fmadd_ps(_mm256_broadcast_ss(w + j), v_values8(v, kind, j, i0, u, hd), a);
                _mm256_storeu_ps(ar + u, a);
            }
        }
    }
}

static bool attn_takes(int32_t head_dim) { return head_dim % 8 == 0 && head_dim <= ATTN_MAX_HD; }

TND_CPU_ATTN_TILE_FLOAT(void OF_SET(tnd_cpu_attn_tile), attn_tile_body, ATTN_REP_STEP, attn_takes,
                        tnd_cpu_attn_tile_ref)

static bool attn_stored_takes(tnd_type type, int32_t head_dim) {
    return (type == TND_TYPE_F16 || (type == TND_TYPE_Q8_0 && head_dim % 32 == 0)) && attn_takes(head_dim);
}

TND_CPU_ATTN_TILE_STORED(attn_tile_body, ATTN_REP_STEP)

/* ------------------------------------------------------------------------------------------------------------
 * Registration
 * ---------------------------------------------------------------------------------------------------------- */

/* An entry whose activations are used as floats, with tiles of one row x 4 tokens. */
static tnd_cpu_dot float_entry(tnd_vec_dot_fn dot, tnd_tile_fn tile) {
    return (tnd_cpu_dot){.act_type = TND_TYPE_F32,
                         .quantize_act = copy_f32,
                         .dot = dot,
                         .isa = KERNEL_SET,
                         .tile = tile,
                         .tile_rows = FLOAT_TILE_ROWS,
                         .tile_tokens = FLOAT_TILE_TOKENS};
}

/* The 32-element types: activations in the layout above (values decode as Q8_0's), rows packed in groups; rows
 * left unpacked (a matrix of fewer rows than a group) take the dot, one at a time. */
static tnd_cpu_dot group_entry(tnd_from_float_fn quantize, tnd_vec_dot_fn dot, tnd_tile_fn tile_packed,
                               size_t block_bytes, void (*transform)(uint8_t *, int, size_t)) {
    return (tnd_cpu_dot){.act_type = TND_TYPE_Q8_0,
                         .quantize_act = quantize,
                         .dot = dot,
                         .isa = KERNEL_SET,
                         .tile_rows = G8_ROWS,
                         .tile_tokens = GROUP_TOKENS,
                         .act_bytes = tnd_g8_act_bytes,
                         .act_to_float = tnd_g8_act_to_float,
                         .tile_packed = tile_packed,
                         .pack_chunk = block_bytes,
                         .pack_transform = transform};
}

/* Q8_K activations with tnd_quantize_q8_K_ref's bits, 8 values at a time (the reference loop was 3.7% of a K-type
 * prefill): the largest magnitude, whose first occurrence gives the scale's sign; levels rounded to nearest even by
 * the conversion (the product's magnitude is at most 127, so the reference's clamp never acts); sums of 16. A block
 * with a value that is not finite gets a NaN scale and zero levels, as there. */
static void quantize_act_q8_K(const float *x, void *dst, int64_t n) {
    const __m256 magnitude = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    const __m256i exponent = _mm256_set1_epi32(0x7f800000);
    tnd_block_q8_K *y = dst;
    for (int64_t b = 0; b < n / QK_K; b++, x += QK_K) {
        memset(&y[b], 0, sizeof y[b]);
        __m256 top = _mm256_setzero_ps();
        __m256i special = _mm256_setzero_si256();
        for (int i = 0; i < QK_K; i += 8) {
            __m256 v = _mm256_loadu_ps(x + i);
            __m256i e = _mm256_and_si256(_mm256_castps_si256(v), exponent);
            special = _mm256_or_si256(special, _mm256_cmpeq_epi32(e, exponent));
            top = _mm256_max_ps(top, _mm256_and_ps(v, magnitude));
        }
        if (!_mm256_testz_si256(special, special)) {
            const float nan = NAN;
            memcpy(y[b].d, &nan, 4);
            continue;
        }
        float amax = hmax256(top);
        if (amax == 0) continue;
        int first = 0;
        for (int i = 0; i < QK_K; i += 8) {
            __m256 hit = _mm256_cmp_ps(_mm256_and_ps(_mm256_loadu_ps(x + i), magnitude), _mm256_set1_ps(amax),
                                       _CMP_EQ_OQ);
            int mask = _mm256_movemask_ps(hit);
            if (mask) {
                first = i + __builtin_ctz((unsigned)mask);
                break;
            }
        }
        const float iscale = -127.0f / x[first];
        const __m256 to_level = _mm256_set1_ps(iscale);
        for (int i = 0; i < QK_K; i += 32) {
            __m256i l[4];
            for (int u = 0; u < 4; u++)
                l[u] = _mm256_cvtps_epi32(_mm256_mul_ps(to_level, _mm256_loadu_ps(x + i + 8 * u)));
            __m256i bytes = _mm256_packs_epi16(_mm256_packs_epi32(l[0], l[1]), _mm256_packs_epi32(l[2], l[3]));
            bytes = _mm256_permutevar8x32_epi32(bytes, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
            _mm256_storeu_si256((__m256i *)(void *)(y[b].qs + i), bytes);
            /* the two groups of 16: quads summed, then each lane's four */
            __m256i quads = _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_set1_epi8(1), bytes), _mm256_set1_epi16(1));
            quads = _mm256_hadd_epi32(quads, quads);
            quads = _mm256_hadd_epi32(quads, quads);
            int16_t lo = (int16_t)_mm256_extract_epi32(quads, 0), hi = (int16_t)_mm256_extract_epi32(quads, 4);
            memcpy(y[b].bsums + 2 * (i / 16), &lo, 2);
            memcpy(y[b].bsums + 2 * (i / 16 + 1), &hi, 2);
        }
        const float d = 1 / iscale;
        memcpy(y[b].d, &d, 4);
    }
}

/* The K types: Q8_K activations, rows packed in groups. */
static tnd_cpu_dot k_group_entry(tnd_vec_dot_fn dot, tnd_tile_fn tile_packed, size_t block_bytes,
                                 void (*transform)(uint8_t *, int, size_t)) {
    return (tnd_cpu_dot){.act_type = TND_TYPE_Q8_K,
                         .quantize_act = quantize_act_q8_K,
                         .dot = dot,
                         .isa = KERNEL_SET,
                         .tile_rows = G8_ROWS,
                         .tile_tokens = GROUP_TOKENS,
                         .tile_packed = tile_packed,
                         .pack_chunk = block_bytes,
                         .pack_transform = transform};
}

void OF_SET(tnd_cpu_kernels)(tnd_cpu_kernels *k) {
    k->vec.attn_tile = OF_SET(tnd_cpu_attn_tile);
    k->vec.attn_tile_stored = attn_tile_stored;
    k->vec.swiglu = swiglu;
    k->vec.attn_tile_stored_takes = attn_stored_takes;
    k->vec.to_float[TND_TYPE_F16] = f16_to_f32;
    k->vec.from_float[TND_TYPE_F16] = f32_to_f16;
    k->vec.to_float[TND_TYPE_Q8_0] = q8_0_to_f32;
    k->vec.to_float[TND_TYPE_Q4_0] = q4_0_to_f32;
    k->dot[TND_TYPE_F32] = float_entry(dot_f32_f32, tile_f32_f32);
    k->dot[TND_TYPE_F16] = float_entry(dot_f16_f32, tile_f16_f32);
    k->dot[TND_TYPE_BF16] = float_entry(dot_bf16_f32, tile_bf16_f32);
    k->dot[TND_TYPE_Q4_0] = group_entry(quantize_act_q4_0, dot_group_row_q4_0, tile_group_q4_0, 18, tnd_g8_pack_q4_0);
    k->dot[TND_TYPE_Q4_1] = group_entry(quantize_act_min, dot_group_row_q4_1, tile_group_q4_1, 20, tnd_g8_pack_q4_1);
    k->dot[TND_TYPE_Q5_0] = group_entry(quantize_act_q5_0, dot_group_row_q5_0, tile_group_q5_0, 22, tnd_g8_pack_q5_0);
    k->dot[TND_TYPE_Q5_1] = group_entry(quantize_act_min, dot_group_row_q5_1, tile_group_q5_1, 24, tnd_g8_pack_q5_1);
    k->dot[TND_TYPE_Q8_0] = group_entry(quantize_act_q8_0, dot_group_row_q8_0, tile_group_q8_0, 34, tnd_g8_pack_q8_0);
    k->dot[TND_TYPE_Q2_K] = k_group_entry(dot_group_row_q2_K, tile_group_q2_K, 84, tnd_g8_pack_q2_K);
    k->dot[TND_TYPE_Q3_K] = k_group_entry(dot_group_row_q3_K, tile_group_q3_K, 110, tnd_g8_pack_q3_K);
    k->dot[TND_TYPE_Q4_K] = k_group_entry(dot_group_row_q4_K, tile_group_q4_K, 144, tnd_g8_pack_q4_K);
    k->dot[TND_TYPE_Q5_K] = k_group_entry(dot_group_row_q5_K, tile_group_q5_K, 176, tnd_g8_pack_q5_K);
    k->dot[TND_TYPE_Q6_K] = k_group_entry(dot_group_row_q6_K, tile_group_q6_K, 210, tnd_g8_pack_q6_K);
}
