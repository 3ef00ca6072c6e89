/* arm_neon.c: CPU kernels (F32, F16, BF16, every quantized type) for AArch64 with NEON and the dot-product extension
 * (compiled with -march=armv8.2-a+dotprod; chosen at run time by cpu_kernels.c when the processor reports
 * asimddp). sdot multiplies 16 signed bytes by 16 signed bytes and adds each group of four products into one of 4
 * int32 lanes, and its lane form (vdotq_laneq_s32) takes the other operand's four bytes from one lane of a vector.
 * The quantized types run over the packed groups of 8 rows of groups8.h, one int32 lane per row, as x86_avx2.c does
 * (same layout and lane arithmetic, so what is measured there carries over); a step is two vectors (rows 0-3, 4-7),
 * and one sdot by lane multiplies a step's four columns of each row by the token's four activations. The row dots
 * repeat a lane's arithmetic on rows as the file has them.
 * Each kernel computes what its scalar counterpart in src/quant computes; test_cpu_kernels checks them against
 * double math on odd sizes, also under qemu-user in CI (scripts/test_arm.sh). */
#include "backend/cpu/cpu_kernels.h"
#include "backend/cpu/groups8.h"
#include "quant/quant_blocks.h"
#include "quant/quant_ref.h"

#include <arm_neon.h>
#include <math.h>
#include <string.h>

enum {
    QK = G8_QK,
    GROUP_TOKENS = TND_CPU_TOKENS_MAX /* the most tokens of a group tile */
};

static inline float fp16_load(const uint8_t *p) {
    __fp16 h;
    memcpy(&h, p, 2);
    return (float)h;
}

/* ------------------------------------------------------------------------------------------------------------
 * Float weights against float activations
 * ---------------------------------------------------------------------------------------------------------- */

typedef enum float_kind { FW_F32, FW_F16, FW_BF16 } float_kind;

/* Weights i .. i + 3 of a float row, widened. */
static inline float32x4_t load_w4(const void *w, int64_t i, float_kind kind) {
    if (kind == FW_F32) return vld1q_f32((const float *)w + i);
    if (kind == FW_F16) return vcvt_f32_f16(vld1_f16((const __fp16 *)w + i));
    return vreinterpretq_f32_u32(vshll_n_u16(vld1_u16((const uint16_t *)w + i), 16)); /* bf16: a float's top half */
}

static inline float load_w1(const void *w, int64_t i, float_kind kind) {
    if (kind == FW_F32) return ((const float *)w)[i];
    if (kind == FW_F16) return (float)((const __fp16 *)w)[i];
    uint32_t u = (uint32_t)((const uint16_t *)w)[i] << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* Float weights against float activations: R rows x T tokens, two accumulators per pair over steps of 8 (then one
 * step of 4, then single elements), as x86_avx2.c does with 16 and 8. The dot is the 1 x 1 instance. */
enum { FLOAT_TILE_ROWS = 1, FLOAT_TILE_TOKENS = TND_CPU_TOKENS_MAX };

static inline __attribute__((always_inline)) void float_tile_body(const uint8_t *w, size_t w_stride, const uint8_t *act,
                                                                  size_t act_stride, int64_t n, float *y,
                                                                  size_t y_stride, int R, float_kind kind, int T) {
    float32x4_t acc0[FLOAT_TILE_ROWS][FLOAT_TILE_TOKENS], acc1[FLOAT_TILE_ROWS][FLOAT_TILE_TOKENS];
    for (int r = 0; r < R; r++)
        for (int t = 0; t < T; t++) acc0[r][t] = acc1[r][t] = vdupq_n_f32(0);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int r = 0; r < R; r++) {
            float32x4_t w0 = load_w4(w + (size_t)r * w_stride, i, kind),
                        w1 = load_w4(w + (size_t)r * w_stride, i + 4, kind);
            for (int t = 0; t < T; t++) {
                const float *x = (const float *)(const void *)(act + (size_t)t * act_stride);
                acc0[r][t] = vfmaq_f32(acc0[r][t], w0, vld1q_f32(x + i));
                acc1[r][t] = vfmaq_f32(acc1[r][t], w1, vld1q_f32(x + i + 4));
            }
        }
    bool four = i + 4 <= n;
    for (int r = 0; r < R; r++) {
        float32x4_t w0 = four ? load_w4(w + (size_t)r * w_stride, i, kind) : vdupq_n_f32(0);
        for (int t = 0; t < T; t++) {
            const float *x = (const float *)(const void *)(act + (size_t)t * act_stride);
            if (four) acc0[r][t] = vfmaq_f32(acc0[r][t], w0, vld1q_f32(x + i));
            float s = vaddvq_f32(vaddq_f32(acc0[r][t], acc1[r][t]));
            for (int64_t j = four ? i + 4 : i; j < n; j++) s += load_w1(w + (size_t)r * w_stride, j, kind) * x[j];
            y[(size_t)t * y_stride + (size_t)r] = s;
        }
    }
}

TND_CPU_FLOAT_ENTRIES(f32, FW_F32, float_tile_body)
TND_CPU_FLOAT_ENTRIES(f16, FW_F16, float_tile_body)
TND_CPU_FLOAT_ENTRIES(bf16, FW_BF16, float_tile_body)

static void copy_f32(const float *src, void *dst, int64_t n) { memcpy(dst, src, sizeof(float) * (size_t)n); }

/* ------------------------------------------------------------------------------------------------------------
 * The 32-element types (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0) over packed groups of 8 rows (layout and activations:
 * ../groups8.h). Levels and Q8_0 bytes are signed bytes to sdot as they are.
 * ---------------------------------------------------------------------------------------------------------- */

static inline int32_t load_i32(const uint8_t *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return v;
}

/* Quantizes 32 floats to int8 at q: d = max|x| / 127, q = round(x / d). Returns d. */
static inline float quantize_block_i8(const float *x, uint8_t *q) {
    float32x4_t v[8], m = vdupq_n_f32(0);
    for (int i = 0; i < 8; i++) {
        v[i] = vld1q_f32(x + 4 * i);
        m = vmaxq_f32(m, vabsq_f32(v[i]));
    }
    float amax = vmaxvq_f32(m), d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
    for (int i = 0; i < 8; i++) {
        int32x4_t r = vcvtnq_s32_f32(vmulq_n_f32(v[i], id)); /* to nearest, ties to even */
        int16x4_t h = vqmovn_s32(r);
        int8x8_t b8 = vqmovn_s16(vcombine_s16(h, h));
        int32_t four = vget_lane_s32(vreinterpret_s32_s8(b8), 0);
        memcpy(q + 4 * i, &four, 4);
    }
    return d;
}

/* The activation layout of groups8.h; min_slot: the slot holds d * sum (Q4_1/Q5_1), else -offset * sum. */
static inline void quantize_act_blocks(const float *x, void *vy, int64_t n, int offset, bool min_slot) {
    uint8_t *y = vy;
    for (int64_t b = 0; b < n / QK; b++, x += QK, y += G8_ACT_BLOCK_BYTES) {
        float d = quantize_block_i8(x, y);
        int32_t sum = vaddvq_s32(vdotq_s32(vdotq_s32(vdupq_n_s32(0), vld1q_s8((const int8_t *)y), vdupq_n_s8(1)),
                                           vld1q_s8((const int8_t *)(y + 16)), vdupq_n_s8(1)));
        int32_t start = -offset * sum;
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

/* The 32 values of a block as the file has it, in element order, as two halves of 16: signed q for Q4_0, Q5_0 and
 * Q8_0 (level minus its offset), the level for Q4_1 and Q5_1. */
static inline void legacy_values(const uint8_t *x, g8_legacy_kind kind, int8x16_t v[2]) {
    if (kind == G8_Q8_0) {
        v[0] = vld1q_s8((const int8_t *)(x + 2));
        v[1] = vld1q_s8((const int8_t *)(x + 18));
        return;
    }
    uint8x16_t packed = vld1q_u8(x + g8_file_nibbles_at(kind));
    uint8x16_t half[2] = {vandq_u8(packed, vdupq_n_u8(0x0f)), vshrq_n_u8(packed, 4)};
    if (g8_has_fifth(kind)) { /* bit e of qh is the fifth bit of element e */
        uint32_t qh;
        memcpy(&qh, x + g8_file_nibbles_at(kind) - 4, 4);
        uint8x16_t bytes = vcombine_u8(vcreate_u8(qh), vcreate_u8(qh));
        static const uint8_t lo_idx[16] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1};
        static const uint8_t hi_idx[16] = {2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3};
        static const uint8_t bit[16] = {1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128};
        uint8x16_t fifth = vdupq_n_u8(0x10), bits = vld1q_u8(bit);
        half[0] = vorrq_u8(half[0], vandq_u8(vtstq_u8(vqtbl1q_u8(bytes, vld1q_u8(lo_idx)), bits), fifth));
        half[1] = vorrq_u8(half[1], vandq_u8(vtstq_u8(vqtbl1q_u8(bytes, vld1q_u8(hi_idx)), bits), fifth));
    }
    int8_t offset = kind == G8_Q4_0 ? 8 : kind == G8_Q5_0 ? 16 : 0;
    for (int h = 0; h < 2; h++) v[h] = vsubq_s8(vreinterpretq_s8_u8(half[h]), vdupq_n_s8(offset));
}

/* Four steps of 8 rows (w[s][h]: step s, rows 4h..4h+3) against the four 4-byte lanes of one activation vector. */
static inline void dot_four_steps(int32x4_t acc[2], const int8x16_t w[4][2], int8x16_t a) {
    for (int h = 0; h < 2; h++) {
        acc[h] = vdotq_laneq_s32(acc[h], w[0][h], a, 0);
        acc[h] = vdotq_laneq_s32(acc[h], w[1][h], a, 1);
        acc[h] = vdotq_laneq_s32(acc[h], w[2][h], a, 2);
        acc[h] = vdotq_laneq_s32(acc[h], w[3][h], a, 3);
    }
}

/* Step i's fifth bits (plane bit i) at bit 4 of each byte. */
static inline uint8x16_t fifth_of_step(uint8x16_t plane, int i) {
    return vandq_u8(vshlq_u8(plane, vdupq_n_s8((int8_t)(4 - i))), vdupq_n_u8(0x10));
}

/* y[t * y_stride + r] for the first R rows of the group at w and T tokens; a lane's arithmetic as on AVX2. */
static inline __attribute__((always_inline)) void group_tile_body(const uint8_t *w, const uint8_t *act,
                                                                  size_t act_stride, int64_t n, float *y,
                                                                  size_t y_stride, int R, g8_legacy_kind kind, int T) {
    const size_t group_block = G8_ROWS * g8_legacy_bytes[kind];
    const bool has_min = g8_has_min(kind), has_fifth = g8_has_fifth(kind);
    float32x4_t acc[GROUP_TOKENS][2];
    for (int t = 0; t < T; t++) acc[t][0] = acc[t][1] = vdupq_n_f32(0);
    for (int64_t b = 0; b < n / QK; b++, w += group_block) {
        const g8_legacy_layout at = g8_legacy_at(w, kind);
        const uint8_t *lv = w + at.levels;
        int8x16_t steps[8][2];
        uint8x16_t plane[2] = {vdupq_n_u8(0), vdupq_n_u8(0)};
        if (has_fifth) plane[0] = vld1q_u8(lv + 4 * G8_STEP), plane[1] = vld1q_u8(lv + 4 * G8_STEP + 16);
        for (int i = 0; i < 8; i++)
            for (int h = 0; h < 2; h++) {
                if (kind == G8_Q8_0) {
                    steps[i][h] = vld1q_s8((const int8_t *)(lv + G8_STEP * i + 16 * h));
                    continue;
                }
                uint8x16_t both = vld1q_u8(lv + G8_STEP * (i / 2) + 16 * h);
                uint8x16_t level = i % 2 ? vshrq_n_u8(both, 4) : vandq_u8(both, vdupq_n_u8(0x0f));
                if (has_fifth) level = vorrq_u8(level, fifth_of_step(plane[h], i));
                steps[i][h] = vreinterpretq_s8_u8(level);
            }
        float32x4_t dw[2] = {vcvt_f32_f16(vld1_f16((const __fp16 *)(const void *)(w + at.d))),
                             vcvt_f32_f16(vld1_f16((const __fp16 *)(const void *)(w + at.d + 8)))};
        float32x4_t mw[2] = {vdupq_n_f32(0), vdupq_n_f32(0)};
        if (has_min) {
            mw[0] = vcvt_f32_f16(vld1_f16((const __fp16 *)(const void *)(w + at.m)));
            mw[1] = vcvt_f32_f16(vld1_f16((const __fp16 *)(const void *)(w + at.m + 8)));
        }
        for (int t = 0; t < T; t++) {
            const uint8_t *a = act + (size_t)t * act_stride + (size_t)b * G8_ACT_BLOCK_BYTES;
            int32x4_t sum[2];
            sum[0] = sum[1] = vdupq_n_s32(has_min ? 0 : load_i32(a + QK + 4));
            dot_four_steps(sum, (const int8x16_t(*)[2])steps, vld1q_s8((const int8_t *)a));
            dot_four_steps(sum, (const int8x16_t(*)[2])(steps + 4), vld1q_s8((const int8_t *)(a + 16)));
            for (int h = 0; h < 2; h++) {
                acc[t][h] =
                    vfmaq_f32(acc[t][h], vmulq_f32(vcvtq_f32_s32(sum[h]), dw[h]), vdupq_n_f32(tnd_block_f32(a + QK)));
                if (has_min) acc[t][h] = vfmaq_f32(acc[t][h], mw[h], vdupq_n_f32(tnd_block_f32(a + QK + 4)));
            }
        }
    }
    for (int t = 0; t < T; t++) {
        float out[G8_ROWS];
        vst1q_f32(out, acc[t][0]);
        vst1q_f32(out + 4, acc[t][1]);
        memcpy(y + (size_t)t * y_stride, out, sizeof(float) * (size_t)R);
    }
}

/* One row as the file has it, with a lane's arithmetic (the same bits). */
static inline __attribute__((always_inline)) float dot_row_body(const uint8_t *w, const uint8_t *act, int64_t n,
                                                                g8_legacy_kind kind) {
    const bool has_min = g8_has_min(kind);
    float acc = 0.0f;
    for (int64_t b = 0; b < n / QK; b++, w += g8_legacy_bytes[kind], act += G8_ACT_BLOCK_BYTES) {
        int8x16_t v[2];
        legacy_values(w, kind, v);
        int32x4_t p = vdotq_s32(vdotq_s32(vdupq_n_s32(0), v[0], vld1q_s8((const int8_t *)act)), v[1],
                                vld1q_s8((const int8_t *)(act + 16)));
        /* the lane's levels . activations plus its start (minus the offset x their sum) is this sum of q . a */
        int32_t sum = vaddvq_s32(p);
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
 * K types against Q8_K activations (f32 d, 256 int8, 16 int16 sums of 16). Layouts: src/quant/quant_blocks.h
 * ---------------------------------------------------------------------------------------------------------- */

enum { QK_K = 256, Q8_K_BYTES = 292 };

/* Q8_K activations with tnd_quantize_q8_K_ref's bits, 4 values at a time (as x86_avx2.c's): the largest magnitude,
 * whose first occurrence gives the scale's sign; levels rounded to nearest even by the conversion (the product's
 * magnitude is at most 127, so the reference's clamp never acts); sums of 16. A block with a value that is not finite
 * gets a NaN scale and zero levels, as there. */
static void quantize_act_q8_K(const float *x, void *dst, int64_t n) {
    const uint32x4_t exponent = vdupq_n_u32(0x7f800000);
    tnd_block_q8_K *y = dst;
    for (int64_t b = 0; b < n / QK_K; b++, x += QK_K) {
        memset(&y[b], 0, sizeof y[b]);
        float32x4_t top = vdupq_n_f32(0);
        uint32x4_t special = vdupq_n_u32(0);
        for (int i = 0; i < QK_K; i += 4) {
            float32x4_t v = vld1q_f32(x + i);
            special = vorrq_u32(special, vceqq_u32(vandq_u32(vreinterpretq_u32_f32(v), exponent), exponent));
            top = vmaxq_f32(top, vabsq_f32(v));
        }
        if (vmaxvq_u32(special)) {
            const float nan = NAN;
            memcpy(y[b].d, &nan, 4);
            continue;
        }
        float amax = vmaxvq_f32(top);
        if (amax == 0) continue;
        int first = 0;
        while (fabsf(x[first]) != amax) first++;
        const float iscale = -127.0f / x[first];
        const float32x4_t to_level = vdupq_n_f32(iscale);
        for (int i = 0; i < QK_K; i += 16) {
            int16x8_t lo = vcombine_s16(vqmovn_s32(vcvtnq_s32_f32(vmulq_f32(to_level, vld1q_f32(x + i)))),
                                        vqmovn_s32(vcvtnq_s32_f32(vmulq_f32(to_level, vld1q_f32(x + i + 4)))));
            int16x8_t hi = vcombine_s16(vqmovn_s32(vcvtnq_s32_f32(vmulq_f32(to_level, vld1q_f32(x + i + 8)))),
                                        vqmovn_s32(vcvtnq_s32_f32(vmulq_f32(to_level, vld1q_f32(x + i + 12)))));
            int8x16_t levels = vcombine_s8(vqmovn_s16(lo), vqmovn_s16(hi));
            vst1q_s8(y[b].qs + i, levels);
            int16_t sum = vaddlvq_s8(levels);
            memcpy(y[b].bsums + 2 * (i / 16), &sum, 2);
        }
        const float d = 1 / iscale;
        memcpy(y[b].d, &d, 4);
    }
}

static inline int16_t q8k_bsum(const uint8_t *y, int i) {
    int16_t s;
    memcpy(&s, y + 4 + QK_K + 2 * i, 2);
    return s;
}

static inline int8x16_t load_s8(const uint8_t *p) { return vld1q_s8((const int8_t *)(const void *)p); }

/* All five K types in one body: per super-block, a scale and a min for each 16 elements (a Q4_K/Q5_K sub-block of
 * 32 gives its two halves the same), d, dmin and the level offset (Q3_K 4, Q6_K 32, else 0); per 16 elements the
 * unsigned levels. x = d * scale * (level - offset) - dmin * min; the offset comes back through the activation sums. */

typedef struct k_scales {
    int scale[16], min[16];
    float d, dmin;
} k_scales;

static inline void k_scales_of(const uint8_t *x, g8_k_kind kind, k_scales *s) {
    s->dmin = 0.0f;
    for (int i = 0; i < 16; i++) s->min[i] = 0;
    switch (kind) {
    case G8_Q2_K:
        for (int i = 0; i < 16; i++) {
            s->scale[i] = x[i] & 15;
            s->min[i] = x[i] >> 4;
        }
        s->d = fp16_load(x + 80);
        s->dmin = fp16_load(x + 82);
        break;
    case G8_Q3_K: /* 6 bits: low four in the nibbles of bytes 96-103, high two in bytes 104-107 */
        for (int i = 0; i < 16; i++)
            s->scale[i] = ((x[96 + i % 8] >> (4 * (i / 8)) & 15) | (x[104 + i % 4] >> (2 * (i / 4)) & 3) << 4) - 32;
        s->d = fp16_load(x + 108);
        break;
    case G8_Q4_K:
    case G8_Q5_K:
        for (int i = 0; i < 8; i++) {
            tnd_k4_scale_min(x + 4, i, &s->scale[2 * i], &s->min[2 * i]);
            s->scale[2 * i + 1] = s->scale[2 * i];
            s->min[2 * i + 1] = s->min[2 * i];
        }
        s->d = fp16_load(x);
        s->dmin = fp16_load(x + 2);
        break;
    case G8_Q6_K:
        for (int i = 0; i < 16; i++) s->scale[i] = (int8_t)x[192 + i];
        s->d = fp16_load(x + 208);
        break;
    }
}

/* Bits k.. of each byte of v (a right shift by a count known only at run time). */
static inline uint8x16_t shr_u8(uint8x16_t v, int k) { return vshlq_u8(v, vdupq_n_s8((int8_t)-k)); }

/* Levels of elements 32c + 16 half .. + 15 (c = 4h + p where halves of 128 hold four 2-bit planes). */
static inline int8x16_t k_levels(const uint8_t *x, g8_k_kind kind, int c, int half) {
    const uint8x16_t one = vdupq_n_u8(1), low2 = vdupq_n_u8(0x03), low4 = vdupq_n_u8(0x0f);
    int h = c / 4, p = c % 4, l = 16 * half;
    uint8x16_t q = vdupq_n_u8(0);
    switch (kind) {
    case G8_Q2_K:
        q = vandq_u8(shr_u8(vld1q_u8(x + 16 + 32 * h + l), 2 * p), low2);
        break;
    case G8_Q3_K:
        q = vorrq_u8(vandq_u8(shr_u8(vld1q_u8(x + 32 + 32 * h + l), 2 * p), low2),
                     vshlq_n_u8(vandq_u8(shr_u8(vld1q_u8(x + l), c), one), 2));
        break;
    case G8_Q4_K:
    case G8_Q5_K: {
        uint8x16_t b = vld1q_u8(x + (kind == G8_Q5_K ? 48 : 16) + 32 * (c / 2) + l);
        q = c % 2 ? vshrq_n_u8(b, 4) : vandq_u8(b, low4);
        if (kind == G8_Q5_K) q = vorrq_u8(q, vshlq_n_u8(vandq_u8(shr_u8(vld1q_u8(x + 16 + l), c), one), 4));
        break;
    }
    case G8_Q6_K: {
        uint8x16_t b = vld1q_u8(x + 64 * h + 32 * (p & 1) + l);
        uint8x16_t lows = p < 2 ? vandq_u8(b, low4) : vshrq_n_u8(b, 4);
        uint8x16_t highs = vandq_u8(shr_u8(vld1q_u8(x + 128 + 32 * h + l), 2 * p), low2);
        q = vorrq_u8(lows, vshlq_n_u8(highs, 4));
        break;
    }
    }
    return vreinterpretq_s8_u8(q);
}

/* The exact integers of one super-block of one row: the sum over sub-blocks of scale x (levels . activations) minus
 * the level offset's share, and the sum of min x activation sums. */
static inline __attribute__((always_inline)) void k_row_ints(const uint8_t *x, const uint8_t *y, g8_k_kind kind,
                                                             int32_t *total, int32_t *mins) {
    k_scales s;
    k_scales_of(x, kind, &s);
    int32x4_t acc = vdupq_n_s32(0);
    for (int c = 0; c < 8; c++)
        for (int half = 0; half < 2; half++) {
            int32x4_t d = vdotq_s32(vdupq_n_s32(0), k_levels(x, kind, c, half), load_s8(y + 4 + 32 * c + 16 * half));
            acc = vmlaq_n_s32(acc, d, s.scale[2 * c + half]);
        }
    int32_t offset = 0, m = 0;
    for (int i = 0; i < 16; i++) {
        offset += s.scale[i] * q8k_bsum(y, i);
        m += s.min[i] * q8k_bsum(y, i);
    }
    *total = vaddvq_s32(acc) - g8_k_offset[kind] * offset;
    *mins = m;
}

/* Scale (or min) of sub-block j of 16 in every lane of one half of a group, from its scale words w[]. */
static inline int32x4_t k_lane_scale(const uint32x4_t w[4], g8_k_kind kind, int j, bool min) {
    const uint32x4_t m2 = vdupq_n_u32(3), m4 = vdupq_n_u32(15), m6 = vdupq_n_u32(63);
#define SHR(v, k) vshlq_u32((v), vdupq_n_s32(-(k)))
    switch (kind) {
    case G8_Q2_K: {
        uint32x4_t byte = SHR(w[j / 4], 8 * (j % 4));
        return vreinterpretq_s32_u32(vandq_u32(min ? vshrq_n_u32(byte, 4) : byte, m4));
    }
    case G8_Q6_K:
        return vshrq_n_s32(vreinterpretq_s32_u32(vshlq_u32(w[j / 4], vdupq_n_s32(24 - 8 * (j % 4)))), 24);
    case G8_Q3_K: {
        uint32x4_t low = vandq_u32(SHR(w[(j % 8) / 4], 8 * (j % 4) + 4 * (j / 8)), m4);
        uint32x4_t high = vandq_u32(SHR(w[2], 8 * (j % 4) + 2 * (j / 4)), m2);
        return vsubq_s32(vreinterpretq_s32_u32(vorrq_u32(low, vshlq_n_u32(high, 4))), vdupq_n_s32(32));
    }
    default: { /* Q4_K, Q5_K: the k4 packing, sub-block s = j / 2 of 32 */
        int sb = j / 2, m = min ? 1 : 0;
        if (sb < 4) return vreinterpretq_s32_u32(vandq_u32(SHR(w[m], 8 * sb), m6));
        uint32x4_t low = vandq_u32(SHR(w[2], 8 * (sb - 4) + 4 * m), m4);
        return vreinterpretq_s32_u32(vorrq_u32(low, vshlq_n_u32(vandq_u32(SHR(w[m], 8 * (sb - 4) + 6), m2), 4)));
    }
    }
#undef SHR
}

/* The unsigned levels of step i of a packed super-block, rows 4h..4h+3. */
static inline int8x16_t k_step_levels(const uint8_t *lv, g8_k_kind kind, int i, int h) {
    const g8_k_layout *l = &g8_k_layouts[kind];
    uint8x16_t level = vdupq_n_u8(0);
    int bits = 0;
    if (l->nibbles >= 0) {
        level = vandq_u8(shr_u8(vld1q_u8(lv + l->nibbles + G8_STEP * (i / 2) + 16 * h), 4 * (i % 2)), vdupq_n_u8(15));
        bits = 4;
    }
    if (l->plane2 >= 0) {
        uint8x16_t two =
            vandq_u8(shr_u8(vld1q_u8(lv + l->plane2 + G8_STEP * (i / 4) + 16 * h), 2 * (i % 4)), vdupq_n_u8(3));
        level = vorrq_u8(level, vshlq_u8(two, vdupq_n_s8((int8_t)bits)));
        bits += 2;
    }
    if (l->plane1 >= 0) {
        uint8x16_t one = vandq_u8(shr_u8(vld1q_u8(lv + l->plane1 + G8_STEP * (i / 8) + 16 * h), i % 8), vdupq_n_u8(1));
        level = vorrq_u8(level, vshlq_u8(one, vdupq_n_s8((int8_t)bits)));
    }
    return vreinterpretq_s8_u8(level);
}

/* y[t * y_stride + r] for the first R rows of the group at w and T tokens of Q8_K activations: per sub-block of 16
 * the four steps' sums (sdot by lane), weighed by the row's scale in int32; offsets and mins meet the activations'
 * sums of 16. The same integers and float steps as x86_avx2.c. */
static inline __attribute__((always_inline)) void k_group_tile_body(const uint8_t *w, const uint8_t *act,
                                                                    size_t act_stride, int64_t n, float *y,
                                                                    size_t y_stride, int R, g8_k_kind kind, int T) {
    const g8_k_layout *l = &g8_k_layouts[kind];
    const size_t group_block = G8_ROWS * g8_k_bytes[kind];
    float32x4_t acc[GROUP_TOKENS][2];
    for (int t = 0; t < T; t++) acc[t][0] = acc[t][1] = vdupq_n_f32(0);
    for (int64_t b = 0; b < n / QK_K; b++, w += group_block) {
        tnd_cpu_prefetch_ahead(w, group_block); /* as x86_avx2.c's K tiles (not measured on ARM) */
        const uint8_t *lv = w + g8_k_levels_at(kind), *words = lv - 4 * G8_ROWS * l->n_words;
        int32x4_t total[GROUP_TOKENS][2], off[GROUP_TOKENS][2], mins[GROUP_TOKENS][2];
        for (int t = 0; t < T; t++)
            for (int h = 0; h < 2; h++) total[t][h] = off[t][h] = mins[t][h] = vdupq_n_s32(0);
        for (int h = 0; h < 2; h++) {
            uint32x4_t sw[4];
            for (int k = 0; k < l->n_words; k++)
                sw[k] = vld1q_u32((const uint32_t *)(const void *)(words + 4 * G8_ROWS * k + 16 * h));
            for (int j = 0; j < 16; j++) { /* sub-block of 16: steps 4j .. 4j + 3, activations 16j .. 16j + 15 */
                int8x16_t st[4];
                for (int q = 0; q < 4; q++) st[q] = k_step_levels(lv, kind, 4 * j + q, h);
                int32x4_t sc = k_lane_scale(sw, kind, j, false), mn = vdupq_n_s32(0);
                if (g8_k_has_min(kind)) mn = k_lane_scale(sw, kind, j, true);
                for (int t = 0; t < T; t++) {
                    const uint8_t *ya = act + (size_t)t * act_stride + (size_t)b * Q8_K_BYTES;
                    int8x16_t a = load_s8(ya + 4 + 16 * j);
                    int32x4_t d = vdotq_laneq_s32(vdupq_n_s32(0), st[0], a, 0);
                    d = vdotq_laneq_s32(d, st[1], a, 1);
                    d = vdotq_laneq_s32(d, st[2], a, 2);
                    d = vdotq_laneq_s32(d, st[3], a, 3);
                    total[t][h] = vmlaq_s32(total[t][h], d, sc);
                    int32x4_t bsum = vdupq_n_s32(q8k_bsum(ya, j));
                    if (g8_k_offset[kind]) off[t][h] = vmlaq_s32(off[t][h], sc, bsum);
                    if (g8_k_has_min(kind)) mins[t][h] = vmlaq_s32(mins[t][h], mn, bsum);
                }
            }
        }
        float32x4_t d[2] = {vcvt_f32_f16(vld1_f16((const __fp16 *)(const void *)w)),
                            vcvt_f32_f16(vld1_f16((const __fp16 *)(const void *)(w + 8)))};
        float32x4_t dmin[2] = {vdupq_n_f32(0), vdupq_n_f32(0)};
        if (g8_k_has_min(kind)) {
            dmin[0] = vcvt_f32_f16(vld1_f16((const __fp16 *)(const void *)(w + 2 * G8_ROWS)));
            dmin[1] = vcvt_f32_f16(vld1_f16((const __fp16 *)(const void *)(w + 2 * G8_ROWS + 8)));
        }
        for (int t = 0; t < T; t++) {
            float32x4_t dy = vdupq_n_f32(tnd_block_f32(act + (size_t)t * act_stride + (size_t)b * Q8_K_BYTES));
            for (int h = 0; h < 2; h++) {
                int32x4_t tot = vmlsq_s32(total[t][h], off[t][h], vdupq_n_s32(g8_k_offset[kind]));
                acc[t][h] = vfmaq_f32(acc[t][h], vcvtq_f32_s32(tot), vmulq_f32(d[h], dy));
                if (g8_k_has_min(kind))
                    acc[t][h] = vfmsq_f32(acc[t][h], vcvtq_f32_s32(mins[t][h]), vmulq_f32(dmin[h], dy));
            }
        }
    }
    for (int t = 0; t < T; t++) {
        float out[G8_ROWS];
        vst1q_f32(out, acc[t][0]);
        vst1q_f32(out + 4, acc[t][1]);
        memcpy(y + (size_t)t * y_stride, out, sizeof(float) * (size_t)R);
    }
}

/* One row as the file has it, with a lane's arithmetic (the same bits). */
G8_K_ROW_DOT

G8_TYPE_ENTRIES(q2_K, G8_Q2_K, k_row_dot, k_group_tile_body)
G8_TYPE_ENTRIES(q3_K, G8_Q3_K, k_row_dot, k_group_tile_body)
G8_TYPE_ENTRIES(q4_K, G8_Q4_K, k_row_dot, k_group_tile_body)
G8_TYPE_ENTRIES(q5_K, G8_Q5_K, k_row_dot, k_group_tile_body)
G8_TYPE_ENTRIES(q6_K, G8_Q6_K, k_row_dot, k_group_tile_body)

/* ------------------------------------------------------------------------------------------------------------
 * KV cache rows to float (attention): the same bits as the reference decoders
 * ---------------------------------------------------------------------------------------------------------- */

static void f16_to_f32(const void *vx, float *y, int64_t n) {
    const __fp16 *x = vx;
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) vst1q_f32(y + i, vcvt_f32_f16(vld1_f16(x + i)));
    for (; i < n; i++) y[i] = (float)x[i];
}

/* Floats to F16 for the KV store, rounded to nearest, ties to even, as the type's own encoder. */
static void f32_to_f16(const float *x, void *vy, int64_t n) {
    __fp16 *y = vy;
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) vst1_f16(y + i, vcvt_f16_f32(vld1q_f32(x + i)));
    for (; i < n; i++) y[i] = (__fp16)x[i];
}

/* Eight levels times the block's scale. */
static inline void store_scaled8(float *y, int8x8_t q, float d) {
    int16x8_t w = vmovl_s8(q);
    vst1q_f32(y, vmulq_n_f32(vcvtq_f32_s32(vmovl_s16(vget_low_s16(w))), d));
    vst1q_f32(y + 4, vmulq_n_f32(vcvtq_f32_s32(vmovl_s16(vget_high_s16(w))), d));
}

static void q8_0_to_f32(const void *vx, float *y, int64_t n) {
    const tnd_block_q8_0 *b = vx;
    for (int64_t i = 0; i < n / QK; i++, y += QK) {
        float d = fp16_load(b[i].d);
        for (int j = 0; j < QK; j += 8) store_scaled8(y + j, vld1_s8(b[i].qs + j), d);
    }
}

static void q4_0_to_f32(const void *vx, float *y, int64_t n) {
    const tnd_block_q4_0 *b = vx;
    for (int64_t i = 0; i < n / QK; i++, y += QK) {
        float d = fp16_load(b[i].d);
        uint8x16_t bytes = vld1q_u8(b[i].qs);
        int8x16_t eight = vdupq_n_s8(8);
        /* elements 0..15 are the low nibbles, 16..31 the high ones */
        int8x16_t lo = vsubq_s8(vreinterpretq_s8_u8(vandq_u8(bytes, vdupq_n_u8(15))), eight);
        int8x16_t hi = vsubq_s8(vreinterpretq_s8_u8(vshrq_n_u8(bytes, 4)), eight);
        store_scaled8(y, vget_low_s8(lo), d);
        store_scaled8(y + 8, vget_high_s8(lo), d);
        store_scaled8(y + 16, vget_low_s8(hi), d);
        store_scaled8(y + 24, vget_high_s8(hi), d);
    }
}

/* ------------------------------------------------------------------------------------------------------------
 * Attention tile and SwiGLU
 * ---------------------------------------------------------------------------------------------------------- */

/* e^x, relative error about 2e-7: x = n ln2 + r with |r| <= ln2 / 2 (ln2 in two parts so r is exact), e^r by its
 * Taylor series to r^6, 2^n through the exponent bits; x clamped to [-87, 88] where 2^n stays a normal float. */
static inline float32x4_t exp4(float32x4_t x) {
    x = vminq_f32(vmaxq_f32(x, vdupq_n_f32(-87.0f)), vdupq_n_f32(88.0f));
    float32x4_t n = vrndnq_f32(vmulq_n_f32(x, 1.44269504f));
    float32x4_t r = vfmsq_f32(x, n, vdupq_n_f32(0.693359375f));
    r = vfmsq_f32(r, n, vdupq_n_f32(-2.12194440e-4f));
    float32x4_t p = vdupq_n_f32(1.0f / 720);
    static const float c[] = {1.0f / 120, 1.0f / 24, 1.0f / 6, 0.5f, 1.0f, 1.0f};
    for (int i = 0; i < 6; i++) p = vfmaq_f32(vdupq_n_f32(c[i]), p, r);
    int32x4_t e = vshlq_n_s32(vaddq_s32(vcvtq_s32_f32(n), vdupq_n_s32(127)), 23);
    return vmulq_f32(p, vreinterpretq_f32_s32(e));
}

static inline float32x4_t swiglu4(float32x4_t g, float32x4_t u) {
    return vmulq_f32(vdivq_f32(g, vaddq_f32(vdupq_n_f32(1.0f), exp4(vnegq_f32(g)))), u);
}

static void swiglu(const float *gate, const float *up, float *out, int64_t n) {
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) vst1q_f32(out + i, swiglu4(vld1q_f32(gate + i), vld1q_f32(up + i)));
    if (i < n) { /* the tail through the same vector arithmetic: a value does not depend on where it sits */
        float g[4] = {0}, u[4] = {0}, o[4];
        memcpy(g, gate + i, sizeof(float) * (size_t)(n - i));
        memcpy(u, up + i, sizeof(float) * (size_t)(n - i));
        vst1q_f32(o, swiglu4(vld1q_f32(g), vld1q_f32(u)));
        memcpy(out + i, o, sizeof(float) * (size_t)(n - i));
    }
}

/* Attention tile, shaped as x86_avx2.c's: the scores come from K transposed (dimension d of position j at
 * k[d * stride + j]), one position per lane, so every K value is loaded once for a group of heads and summed with
 * full-vector multiply-adds, no horizontal sums. The float entry transposes its rows 4 x 4 into kt; the stored entry
 * reads an F16 cache as kv_store keeps it (K transposed, V rows) and converts in registers, so both give the same
 * bits on the same values; a Q8_0 cache it reads in integers (scores and V with sdot, below). */
enum {
    ATTN_POS = 16,      /* positions of one pass of the scores: four vectors */
    ATTN_MAX_HD = 512,  /* head sizes the tile takes (a multiple of 4) */
    ATTN_REP_STEP = 16, /* query heads whose weights are kept at once */
    ATTN_W = TND_CPU_ATTN_TILE_MAX
};

/* 4 float or F16 values of K or V from element `at`. */
static inline float32x4_t load_kv4(const void *p, size_t at, tnd_kv_kind kind) {
    return kind == TND_KV_F16 ? vcvt_f32_f16(vld1_f16((const __fp16 *)p + at)) : vld1q_f32((const float *)p + at);
}

/* Positions [4 g, 4 g + 4) of K transposed from element `at`, lanes from n_valid on as zeros; nothing is read past
 * the valid positions (the run may end at the last row of the cache). */
static inline float32x4_t load_k4(const void *k, size_t at, int32_t g, int32_t n_valid, tnd_kv_kind kind) {
    if (n_valid >= 4 * g + 4) return load_kv4(k, at + (size_t)(4 * g), kind);
    float part[4] = {0};
    for (int32_t j = 4 * g; j < n_valid; j++)
        part[j - 4 * g] =
            kind == TND_KV_F16 ? (float)((const __fp16 *)k)[at + (size_t)j] : ((const float *)k)[at + (size_t)j];
    return vld1q_f32(part);
}

/* Scores of GH heads (rows of hd floats at q) against ATTN_POS positions of K transposed (element d * stride, n_valid
 * of them), into s[h * ATTN_W ..]. */
static inline __attribute__((always_inline)) void attn_scores(const float *q, int32_t hd, const void *k, int32_t stride,
                                                              int32_t n_valid, tnd_kv_kind kind, float *s, int GH) {
    float32x4_t a[4][4];
    for (int h = 0; h < GH; h++)
        for (int g = 0; g < 4; g++) a[h][g] = vdupq_n_f32(0);
    for (int32_t d = 0; d < hd; d++) {
        size_t at = (size_t)d * (size_t)stride;
        float32x4_t kv[4];
        for (int g = 0; g < 4; g++) kv[g] = load_k4(k, at, g, n_valid, kind);
        for (int h = 0; h < GH; h++) {
            float qd = q[h * hd + d];
            for (int g = 0; g < 4; g++) a[h][g] = vfmaq_n_f32(a[h][g], kv[g], qd);
        }
    }
    for (int h = 0; h < GH; h++)
        for (int g = 0; g < 4; g++) vst1q_f32(s + h * ATTN_W + 4 * g, a[h][g]);
}

/* The tile's softmax for rep heads: each row of weight (np scores) becomes e^(score * scale - m) with m the head's
 * running maximum, zero from np on; sum and mx advance and rescale[r] = e^(old m - m) (0 before the first tile). The
 * padding's masks are made once for all the heads, and the rescales take one vector exp for 4 heads. */
static void tile_softmax(float (*weight)[ATTN_W], int32_t rep, int32_t np, float scale, float *mx, float *sum,
                         float *rescale) {
    static const int32_t lanes[4] = {0, 1, 2, 3};
    uint32x4_t valid[ATTN_W / 4];
    int32_t n4 = (np + 3) / 4;
    for (int32_t i = 0; i < n4; i++) valid[i] = vcltq_s32(vld1q_s32(lanes), vdupq_n_s32(np - 4 * i));
    float old[ATTN_REP_STEP] = {0}, now[ATTN_REP_STEP] = {0}, total[ATTN_REP_STEP] = {0};
    for (int32_t r = 0; r < rep; r++) {
        float32x4_t vmax = vdupq_n_f32(-INFINITY);
        for (int32_t i = 0; i < n4; i++) {
            float *w = weight[r] + 4 * i;
            float32x4_t s4 = vbslq_f32(valid[i], vmulq_n_f32(vld1q_f32(w), scale), vdupq_n_f32(-INFINITY));
            vst1q_f32(w, s4);
            vmax = vmaxq_f32(vmax, s4);
        }
        float tile_max = vmaxvq_f32(vmax);
        old[r] = mx[r];
        now[r] = tile_max > mx[r] ? tile_max : mx[r];
        total[r] = sum[r];
    }
    for (int32_t r = 0; r < rep; r += 4) {
        uint32x4_t started = vcgtq_f32(vld1q_f32(total + r), vdupq_n_f32(0));
        float32x4_t c = vreinterpretq_f32_u32(
            vandq_u32(started, vreinterpretq_u32_f32(exp4(vsubq_f32(vld1q_f32(old + r), vld1q_f32(now + r))))));
        float part[4];
        vst1q_f32(part, c);
        for (int32_t i = 0; i < 4 && r + i < rep; i++) {
            rescale[r + i] = part[i];
            mx[r + i] = now[r + i];
        }
    }
    for (int32_t r = 0; r < rep; r++) {
        float32x4_t wsum = vdupq_n_f32(0);
        for (int32_t i = 0; i < n4; i++) {
            float *w = weight[r] + 4 * i;
            float32x4_t e = exp4(vsubq_f32(vld1q_f32(w), vdupq_n_f32(now[r])));
            float32x4_t w4 = vreinterpretq_f32_u32(vandq_u32(vreinterpretq_u32_f32(e), valid[i]));
            vst1q_f32(w, w4);
            wsum = vaddq_f32(wsum, w4);
        }
        sum[r] = sum[r] * rescale[r] + vaddvq_f32(wsum);
    }
}

/* acc[h][i0 ..] = acc[h][i0 ..] * c[h] + sum_j w[h][j] v[j][i0 ..] for GH heads over nv vectors of 4 outputs from
 * i0: each V vector is loaded (and converted) once for the group of heads. */
static inline __attribute__((always_inline)) void attn_accumulate(float *acc, int32_t hd, const float (*w)[ATTN_W],
                                                                  const float *c, const void *v, int32_t np, int32_t i0,
                                                                  int nv, tnd_kv_kind kind, int GH) {
    float32x4_t o[4][4];
    for (int h = 0; h < GH; h++)
        for (int u = 0; u < nv; u++) o[h][u] = vmulq_n_f32(vld1q_f32(acc + h * hd + i0 + 4 * u), c[h]);
    for (int32_t j = 0; j < np; j++) {
        float32x4_t vj[4];
        for (int u = 0; u < nv; u++) vj[u] = load_kv4(v, (size_t)j * (size_t)hd + (size_t)(i0 + 4 * u), kind);
        for (int h = 0; h < GH; h++)
            for (int u = 0; u < nv; u++) o[h][u] = vfmaq_n_f32(o[h][u], vj[u], w[h][j]);
    }
    for (int h = 0; h < GH; h++)
        for (int u = 0; u < nv; u++) vst1q_f32(acc + h * hd + i0 + 4 * u, o[h][u]);
}

/* n bytes from p, then zeros, as one vector (nothing read past the n). */
static inline int8x16_t load_s8_part(const int8_t *p, int32_t n) {
    int8_t part[16] = {0};
    memcpy(part, p, (size_t)n);
    return vld1q_s8(part);
}

/* Four F16 scales from p as floats, those from n on as zeros (nothing read past them). */
static inline float32x4_t load_scales4(const uint16_t *p, int32_t n) {
    uint16_t part[4] = {0};
    if (n < 4) p = memcpy(part, p, sizeof(uint16_t) * (size_t)n);
    return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(p)));
}

/* Four int8 at p (4-aligned) in every 32-bit lane. */
static inline int8x16_t dup4(const int8_t *p) {
    return vreinterpretq_s8_s32(vld1q_dup_s32((const int32_t *)(const void *)p));
}

/* Scores of GH query heads, quantized (qq), against ATTN_POS positions of a Q8_0 K in steps of four dimensions
 * (tnd_kv_stored), the softmax scale included, into s[h * ATTN_W ..]: per 4 positions and block of 32 dimensions,
 * each step's 16 bytes (four positions' four levels) are loaded once for all the heads, and sdot adds each
 * position's four products with the head's four query levels: the exact integer dot, then converted and weighed by
 * the position's scale times the head's. Positions from n_valid on are not read (their lanes are written, and the
 * softmax masks them). */
static inline __attribute__((always_inline)) void attn_scores_q8(tnd_attn_q8 qq, int32_t hd, const int8_t *k,
                                                                 const uint16_t *scales, int32_t stride,
                                                                 int32_t n_valid, float *s, int GH) {
    const int32_t blocks = hd / 32;
    for (int32_t j = 0; j < ATTN_POS && j < n_valid; j += 4) {
        int32_t left = n_valid - j;
        float32x4_t a[4];
        for (int h = 0; h < GH; h++) a[h] = vdupq_n_f32(0);
        for (int32_t b = 0; b < blocks; b++) {
            int32x4_t sum[4];
            for (int h = 0; h < GH; h++) sum[h] = vdupq_n_s32(0);
            for (int i = 0; i < 8; i++) {
                const int8_t *at = k + 4 * ((size_t)(8 * b + i) * (size_t)stride + (size_t)j);
                int8x16_t levels = left >= 4 ? vld1q_s8(at) : load_s8_part(at, 4 * left);
                for (int h = 0; h < GH; h++)
                    sum[h] = vdotq_s32(sum[h], levels, dup4(qq.levels + h * hd + 32 * b + 4 * i));
            }
            float32x4_t dk = load_scales4(scales + (size_t)b * (size_t)stride + j, left);
            for (int h = 0; h < GH; h++)
                a[h] = vfmaq_f32(a[h], vcvtq_f32_s32(sum[h]), vmulq_n_f32(dk, qq.scale[h * blocks + b]));
        }
        for (int h = 0; h < GH; h++) vst1q_f32(s + h * ATTN_W + j, a[h]);
    }
}

/* The weights of `rep` heads (rows w[r][..], zero from np on) times the scales of block b of a Q8_0 V's np positions
 * (tnd_kv_stored), as 7-bit levels[r][j] (TND_ATTN_V_LEVELS_AVX2 at the head's largest, as the AVX2 sets: sdot's
 * operands are both signed) and the weight of one level, unit[r] (NaN where a scale is not finite). */
static void v_weight_levels(const float (*w)[ATTN_W], const uint16_t *scales, int32_t np, int32_t rep,
                            int8_t (*levels)[ATTN_W], float *unit) {
    int32_t n4 = (np + 3) / 4;
    float32x4_t d[ATTN_W / 4];
    /* a scale that is not finite (the weights are in [0, 1], or NaN, and then so are the head's sum and outputs) */
    uint32x4_t bad = vdupq_n_u32(0);
    for (int32_t i = 0; i < n4; i++) {
        d[i] = load_scales4(scales + 4 * i, np - 4 * i);
        bad = vorrq_u32(bad, vmvnq_u32(vcleq_f32(vabsq_f32(d[i]), vdupq_n_f32(3.0e38f))));
    }
    for (int32_t r = 0; r < rep; r++) {
        float32x4_t p[ATTN_W / 4], top = vdupq_n_f32(0);
        for (int32_t i = 0; i < n4; i++) {
            p[i] = vmulq_f32(vld1q_f32(w[r] + 4 * i), d[i]);
            top = vmaxq_f32(top, p[i]);
        }
        float most = vmaxvq_f32(top);
        /* a tile whose largest product is below 1e-30 adds nothing a float sum would keep: its levels are all 0 */
        float per = most > 1e-30f ? TND_ATTN_V_LEVELS_AVX2 / most : 0.0f;
        unit[r] = vmaxvq_u32(bad) ? NAN : most / TND_ATTN_V_LEVELS_AVX2;
        for (int32_t i = 0; i < n4; i++) { /* rounded to nearest even, four levels a lane */
            int16x4_t half = vmovn_s32(vcvtnq_s32_f32(vmulq_n_f32(p[i], per)));
            int8x8_t bytes = vmovn_s16(vcombine_s16(half, half));
            vst1_lane_s32((int32_t *)(void *)(levels[r] + 4 * i), vreinterpret_s32_s8(bytes), 0);
        }
    }
}

/* acc[h][32 b + i0 ..] = acc[h][..] * c[h] + unit[h] * sum_j levels[h][j] v[j][32 b + i0 ..] for GH heads over 16
 * dimensions of block b of a Q8_0 V in groups of four positions: per group, four vectors of four lanes of four
 * levels, each head's four weight levels in every lane, so one sdot adds four positions' products. */
static inline __attribute__((always_inline)) void v_accumulate_q8(float *acc, int32_t hd, const float *c,
                                                                  const int8_t *v, int32_t np, int32_t b, int32_t i0,
                                                                  const int8_t (*levels)[ATTN_W], const float *unit,
                                                                  int GH) {
    int32x4_t s[4][4];
    for (int h = 0; h < GH; h++)
        for (int u = 0; u < 4; u++) s[h][u] = vdupq_n_s32(0);
    for (int32_t g = 0; 4 * g < np; g++) {
        const int8_t *at = v + 4 * ((size_t)g * (size_t)hd + 32 * (size_t)b + (size_t)i0);
        int8x16_t vg[4];
        for (int u = 0; u < 4; u++) vg[u] = vld1q_s8(at + 16 * u);
        for (int h = 0; h < GH; h++) {
            int8x16_t w4 = dup4(levels[h] + 4 * g);
            for (int u = 0; u < 4; u++) s[h][u] = vdotq_s32(s[h][u], vg[u], w4);
        }
    }
    for (int h = 0; h < GH; h++)
        for (int u = 0; u < 4; u++) {
            float *out = acc + h * hd + 32 * b + i0 + 4 * u;
            vst1q_f32(out, vfmaq_n_f32(vmulq_n_f32(vld1q_f32(out), c[h]), vcvtq_f32_s32(s[h][u]), unit[h]));
        }
}

/* V of a Q8_0 cache in integers for `rep` heads, block by block of 32 dimensions and 16 at a time, 4 heads at once. */
static void v_sum_q8(float *acc, int32_t hd, const float (*w)[ATTN_W], const float *c, const tnd_kv_stored *kv,
                     int32_t np, int32_t rep) {
    int8_t levels[ATTN_REP_STEP][ATTN_W] __attribute__((aligned(4)));
    float unit[ATTN_REP_STEP];
    for (int32_t b = 0; b < hd / 32; b++) {
        v_weight_levels(w, kv->v_scales + (size_t)b * (size_t)kv->stride, np, rep, levels, unit);
        const int8_t(*lv)[ATTN_W] = (const int8_t(*)[ATTN_W])levels;
        for (int32_t i0 = 0; i0 < 32; i0 += 16) {
            int32_t r = 0;
            for (; r + 4 <= rep; r += 4)
                v_accumulate_q8(acc + r * hd, hd, c + r, kv->v, np, b, i0, lv + r, unit + r, 4);
            for (; r + 2 <= rep; r += 2)
                v_accumulate_q8(acc + r * hd, hd, c + r, kv->v, np, b, i0, lv + r, unit + r, 2);
            for (; r < rep; r++) v_accumulate_q8(acc + r * hd, hd, c + r, kv->v, np, b, i0, lv + r, unit + r, 1);
        }
    }
}

/* Scores of GH heads from head r against the ATTN_POS positions from j0 into s: a Q8_0 cache's in integers, others
 * from K transposed at k (stride). */
static inline __attribute__((always_inline)) void scores_of(const float *q, const tnd_kv_stored *kv, const void *k,
                                                            int32_t stride, int32_t r, int32_t hd, int32_t j0,
                                                            int32_t n_valid, float *s, int GH, tnd_kv_kind kind) {
    if (kind == TND_KV_Q8_0)
        attn_scores_q8(tnd_attn_q8_from(kv->q8, r, hd), hd, k, kv->k_scales + j0, stride, n_valid, s, GH);
    else
        attn_scores(q + r * hd, hd, k, stride, n_valid, kind, s, GH);
}

/* The tile for up to ATTN_REP_STEP heads: float rows of K and V (TND_KV_FLOAT, K transposed here), or a cache as
 * stored (kv: F16, or Q8_0 in integers); heads in groups of 4, then 2, then 1, each head's arithmetic its own. The
 * next tile is left to the hardware prefetcher (next is not read). */
static inline __attribute__((always_inline)) void attn_tile_body(const float *q, int32_t rep, int32_t hd,
                                                                 const float *k_rows, const float *v_rows,
                                                                 const tnd_kv_stored *kv, int32_t np, float scale,
                                                                 float *mx, float *sum, float *acc, tnd_kv_kind kind,
                                                                 const tnd_kv_prefetch *next) {
    float weight[ATTN_REP_STEP][ATTN_W], kt[ATTN_MAX_HD * ATTN_POS], rescale[ATTN_REP_STEP];
    const void *v = kind == TND_KV_FLOAT ? (const void *)v_rows : kv->v;
    for (int32_t j0 = 0; j0 < np; j0 += ATTN_POS) {
        const void *k = kt;
        int32_t stride = ATTN_POS;
        if (kind != TND_KV_FLOAT) { /* F16 values, or Q8_0 levels in steps of 4 */
            k = kind == TND_KV_F16 ? (const void *)((const __fp16 *)kv->k + j0)
                                   : (const void *)((const int8_t *)kv->k + 4 * j0);
            stride = kv->stride;
        } else
            for (int32_t g = 0; g < ATTN_POS; g += 4)
                for (int32_t d0 = 0; d0 < hd; d0 += 4) {
                    float32x4_t m[4];
                    for (int i = 0; i < 4; i++)
                        m[i] = j0 + g + i < np ? vld1q_f32(k_rows + (size_t)(j0 + g + i) * hd + d0) : vdupq_n_f32(0);
                    float32x4x2_t lo = vtrnq_f32(m[0], m[1]), hi = vtrnq_f32(m[2], m[3]);
                    float32x4_t col[4] = {vcombine_f32(vget_low_f32(lo.val[0]), vget_low_f32(hi.val[0])),
                                          vcombine_f32(vget_low_f32(lo.val[1]), vget_low_f32(hi.val[1])),
                                          vcombine_f32(vget_high_f32(lo.val[0]), vget_high_f32(hi.val[0])),
                                          vcombine_f32(vget_high_f32(lo.val[1]), vget_high_f32(hi.val[1]))};
                    for (int i = 0; i < 4; i++) vst1q_f32(kt + (d0 + i) * ATTN_POS + g, col[i]);
                }
        int32_t r = 0, n_valid = np - j0;
        for (; r + 4 <= rep; r += 4) scores_of(q, kv, k, stride, r, hd, j0, n_valid, weight[r] + j0, 4, kind);
        for (; r + 2 <= rep; r += 2) scores_of(q, kv, k, stride, r, hd, j0, n_valid, weight[r] + j0, 2, kind);
        for (; r < rep; r++) scores_of(q, kv, k, stride, r, hd, j0, n_valid, weight[r] + j0, 1, kind);
    }
    tile_softmax(weight, rep, np, kind == TND_KV_Q8_0 ? 1.0f : scale, mx, sum, rescale); /* Q8_0: queries hold it */
    if (kind == TND_KV_Q8_0) {
        v_sum_q8(acc, hd, (const float(*)[ATTN_W])weight, rescale, kv, np, rep);
        return;
    }
    for (int32_t i0 = 0; i0 < hd; i0 += 16) {
        int nv = hd - i0 >= 16 ? 4 : (hd - i0) / 4, r = 0;
        const float(*w)[ATTN_W] = (const float(*)[ATTN_W])weight;
        for (; r + 4 <= rep; r += 4) attn_accumulate(acc + r * hd, hd, w + r, rescale + r, v, np, i0, nv, kind, 4);
        for (; r + 2 <= rep; r += 2) attn_accumulate(acc + r * hd, hd, w + r, rescale + r, v, np, i0, nv, kind, 2);
        for (; r < rep; r++) attn_accumulate(acc + r * hd, hd, w + r, rescale + r, v, np, i0, nv, kind, 1);
    }
}

static bool attn_takes(int32_t head_dim) { return head_dim % 4 == 0 && head_dim <= ATTN_MAX_HD; }

TND_CPU_ATTN_TILE_FLOAT(static void attn_tile, attn_tile_body, ATTN_REP_STEP, attn_takes, tnd_cpu_attn_tile_ref)

static bool attn_stored_takes(tnd_type type, int32_t head_dim) {
    return (type == TND_TYPE_F16 || (type == TND_TYPE_Q8_0 && head_dim % 32 == 0)) && attn_takes(head_dim);
}

TND_CPU_ATTN_TILE_STORED(attn_tile_body, ATTN_REP_STEP)

/* ------------------------------------------------------------------------------------------------------------
 * Registration
 * ---------------------------------------------------------------------------------------------------------- */

/* An entry with float activations and tiles of one row x 4 tokens. */
static tnd_cpu_dot float_entry(tnd_vec_dot_fn dot, tnd_tile_fn tile) {
    return (tnd_cpu_dot){.act_type = TND_TYPE_F32,
                         .quantize_act = copy_f32,
                         .dot = dot,
                         .isa = "neon",
                         .tile = tile,
                         .tile_rows = FLOAT_TILE_ROWS,
                         .tile_tokens = FLOAT_TILE_TOKENS};
}

/* A quantized type over packed groups; rows left unpacked take the dot, one at a time. */
static tnd_cpu_dot group_entry(tnd_type act_type, tnd_from_float_fn quantize, tnd_vec_dot_fn dot,
                               tnd_tile_fn tile_packed, size_t block_bytes, void (*transform)(uint8_t *, int, size_t)) {
    tnd_cpu_dot e = {.act_type = act_type,
                     .quantize_act = quantize,
                     .dot = dot,
                     .isa = "neon",
                     .tile_rows = G8_ROWS,
                     .tile_tokens = GROUP_TOKENS,
                     .tile_packed = tile_packed,
                     .pack_chunk = block_bytes,
                     .pack_transform = transform};
    if (act_type == TND_TYPE_Q8_0) { /* the 32-element types' own layout */
        e.act_bytes = tnd_g8_act_bytes;
        e.act_to_float = tnd_g8_act_to_float;
    }
    return e;
}

void tnd_cpu_kernels_neon(tnd_cpu_kernels *k) {
    k->vec.attn_tile = attn_tile;
    k->vec.attn_tile_stored = attn_tile_stored;
    k->vec.attn_tile_stored_takes = attn_stored_takes;
    k->vec.swiglu = swiglu;
    k->vec.to_float[TND_TYPE_F16] = f16_to_f32;
    k->vec.from_float[TND_TYPE_F16] = f32_to_f16;
    k->vec.to_float[TND_TYPE_Q8_0] = q8_0_to_f32;
    k->vec.to_float[TND_TYPE_Q4_0] = q4_0_to_f32;
    k->dot[TND_TYPE_F32] = float_entry(dot_f32_f32, tile_f32_f32);
    k->dot[TND_TYPE_F16] = float_entry(dot_f16_f32, tile_f16_f32);
    k->dot[TND_TYPE_BF16] = float_entry(dot_bf16_f32, tile_bf16_f32);
    k->dot[TND_TYPE_Q4_0] =
        group_entry(TND_TYPE_Q8_0, quantize_act_q4_0, dot_group_row_q4_0, tile_group_q4_0, 18, tnd_g8_pack_q4_0);
    k->dot[TND_TYPE_Q4_1] =
        group_entry(TND_TYPE_Q8_0, quantize_act_min, dot_group_row_q4_1, tile_group_q4_1, 20, tnd_g8_pack_q4_1);
    k->dot[TND_TYPE_Q5_0] =
        group_entry(TND_TYPE_Q8_0, quantize_act_q5_0, dot_group_row_q5_0, tile_group_q5_0, 22, tnd_g8_pack_q5_0);
    k->dot[TND_TYPE_Q5_1] =
        group_entry(TND_TYPE_Q8_0, quantize_act_min, dot_group_row_q5_1, tile_group_q5_1, 24, tnd_g8_pack_q5_1);
    k->dot[TND_TYPE_Q8_0] =
        group_entry(TND_TYPE_Q8_0, quantize_act_q8_0, dot_group_row_q8_0, tile_group_q8_0, 34, tnd_g8_pack_q8_0);
    k->dot[TND_TYPE_Q2_K] =
        group_entry(TND_TYPE_Q8_K, quantize_act_q8_K, dot_group_row_q2_K, tile_group_q2_K, 84, tnd_g8_pack_q2_K);
    k->dot[TND_TYPE_Q3_K] =
        group_entry(TND_TYPE_Q8_K, quantize_act_q8_K, dot_group_row_q3_K, tile_group_q3_K, 110, tnd_g8_pack_q3_K);
    k->dot[TND_TYPE_Q4_K] =
        group_entry(TND_TYPE_Q8_K, quantize_act_q8_K, dot_group_row_q4_K, tile_group_q4_K, 144, tnd_g8_pack_q4_K);
    k->dot[TND_TYPE_Q5_K] =
        group_entry(TND_TYPE_Q8_K, quantize_act_q8_K, dot_group_row_q5_K, tile_group_q5_K, 176, tnd_g8_pack_q5_K);
    k->dot[TND_TYPE_Q6_K] =
        group_entry(TND_TYPE_Q8_K, quantize_act_q8_K, dot_group_row_q6_K, tile_group_q6_K, 210, tnd_g8_pack_q6_K);
}
