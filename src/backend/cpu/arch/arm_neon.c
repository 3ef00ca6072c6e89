/* arm_neon.c: CPU kernels (F32, F16, BF16, every quantized type) for AArch64 with NEON and the dot-product extension
 * (compiled with -march=armv8.2-a+dotprod; chosen at run time by cpu_kernels.c when the processor reports
 * asimddp). sdot multiplies 16 signed bytes by 16 signed bytes and adds each group of four products into one of 4
 * int32 lanes. The quantized types have tiles of 2 weight rows x 4 tokens whose dot is the 1 x 1 instance, as in
 * x86_avx2.c (same structure, so what is measured there carries over).
 * Each kernel computes what its scalar counterpart in src/quant computes; test_cpu_kernels checks them against
 * double math on odd sizes, also under qemu-user in CI (scripts/test_arm.sh). */
#include "backend/cpu/cpu_kernels.h"
#include "quant/quant_blocks.h"
#include "quant/quant_ref.h"

#include <arm_neon.h>
#include <string.h>

enum { QK = 32, Q8_0_BYTES = 34, Q8_1_BYTES = 36 };

/* The prompt tiles' shape. */
enum { TILE_ROWS = 2, TILE_TOKENS = 4 };

#define TILE_OR_DOTS(name, full_tile, dot) TND_CPU_TILE_OR_DOTS(name, full_tile, dot, TILE_ROWS, TILE_TOKENS)

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
enum { FLOAT_TILE_ROWS = 1, FLOAT_TILE_TOKENS = 4 };

static inline __attribute__((always_inline)) void float_tile_body(const uint8_t *w, size_t w_stride,
                                                                  const uint8_t *act, size_t act_stride, int64_t n,
                                                                  float *y, size_t y_stride, int R, int T,
                                                                  float_kind kind) {
    float32x4_t acc0[FLOAT_TILE_ROWS][FLOAT_TILE_TOKENS], acc1[FLOAT_TILE_ROWS][FLOAT_TILE_TOKENS];
    for (int r = 0; r < R; r++)
        for (int t = 0; t < T; t++) acc0[r][t] = acc1[r][t] = vdupq_n_f32(0);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int r = 0; r < R; r++) {
            float32x4_t w0 = load_w4(w + (size_t)r * w_stride, i, kind), w1 = load_w4(w + (size_t)r * w_stride, i + 4, kind);
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

#define FLOAT_TYPE(name, kind)                                                                                         \
    static float dot_##name##_f32(const void *x, const void *a, int64_t n) {                                           \
        float y;                                                                                                       \
        float_tile_body(x, 0, a, 0, n, &y, 0, 1, 1, kind);                                                             \
        return y;                                                                                                      \
    }                                                                                                                  \
    static void tile_##name##_f32(const uint8_t *w, size_t ws, const uint8_t *a, size_t as, int64_t n, float *y,       \
                                  size_t ys, int rows, int tokens) {                                                   \
        switch (tokens) {                                                                                              \
        case 1: float_tile_body(w, ws, a, as, n, y, ys, rows, 1, kind); break;                                         \
        case 2: float_tile_body(w, ws, a, as, n, y, ys, rows, 2, kind); break;                                         \
        case 3: float_tile_body(w, ws, a, as, n, y, ys, rows, 3, kind); break;                                         \
        default: float_tile_body(w, ws, a, as, n, y, ys, rows, 4, kind); break;                                        \
        }                                                                                                              \
    }
FLOAT_TYPE(f32, FW_F32)
FLOAT_TYPE(f16, FW_F16)
FLOAT_TYPE(bf16, FW_BF16)
_Static_assert(FLOAT_TILE_TOKENS == 4 && FLOAT_TILE_ROWS == 1, "tile_*_f32 switch over 1..4 tokens of one row");

static void copy_f32(const float *src, void *dst, int64_t n) { memcpy(dst, src, sizeof(float) * (size_t)n); }

/* ------------------------------------------------------------------------------------------------------------
 * The 32-element types (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0) against 8-bit activations in blocks of 32: Q8_0 (fp16 d,
 * 32 int8) for the types without a minimum, Q8_1 (fp16 d, fp16 s, 32 int8) for Q4_1 / Q5_1
 * ---------------------------------------------------------------------------------------------------------- */

/* Quantizes 32 floats to int8 at q: d = max|x| / 127, q = round(x / d). Returns d (before fp16 rounding). */
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

static void quantize_q8_0(const float *x, void *vy, int64_t n) {
    uint8_t *y = vy;
    for (int64_t b = 0; b < n / QK; b++, x += QK, y += Q8_0_BYTES) {
        __fp16 dh = (__fp16)quantize_block_i8(x, y + 2);
        memcpy(y, &dh, 2);
    }
}

/* Q8_1: Q8_0's values plus s = d * sum(q) (as the reference; the kernels here sum q exactly instead). */
static void quantize_q8_1(const float *x, void *vy, int64_t n) {
    uint8_t *y = vy;
    for (int64_t b = 0; b < n / QK; b++, x += QK, y += Q8_1_BYTES) {
        float d = quantize_block_i8(x, y + 4);
        __fp16 dh = (__fp16)d;
        memcpy(y, &dh, 2);
        int32_t sum = vaddlvq_s16(vaddq_s16(vmovl_s8(vld1_s8((const int8_t *)(y + 4))),
                                            vmovl_s8(vld1_s8((const int8_t *)(y + 12))))) +
                      vaddlvq_s16(vaddq_s16(vmovl_s8(vld1_s8((const int8_t *)(y + 20))),
                                            vmovl_s8(vld1_s8((const int8_t *)(y + 28)))));
        tnd_block_set_f16(y + 2, (float)sum * d);
    }
}

typedef enum legacy_kind { L_Q4_0, L_Q4_1, L_Q5_0, L_Q5_1, L_Q8_0 } legacy_kind;

static const size_t legacy_bytes[] = {[L_Q4_0] = 18, [L_Q4_1] = 20, [L_Q5_0] = 22, [L_Q5_1] = 24, [L_Q8_0] = 34};

static inline bool legacy_has_min(legacy_kind kind) { return kind == L_Q4_1 || kind == L_Q5_1; }

/* The 32 values of a block in element order, as two halves of 16: signed q for Q4_0, Q5_0 and Q8_0 (level minus
 * its offset), the level for Q4_1 and Q5_1 (whose minimum comes back through the activations' sum). */
static inline void legacy_values(const uint8_t *x, legacy_kind kind, int8x16_t v[2]) {
    if (kind == L_Q8_0) {
        v[0] = vld1q_s8((const int8_t *)(x + 2));
        v[1] = vld1q_s8((const int8_t *)(x + 18));
        return;
    }
    static const int nibbles_at[] = {[L_Q4_0] = 2, [L_Q4_1] = 4, [L_Q5_0] = 6, [L_Q5_1] = 8};
    uint8x16_t packed = vld1q_u8(x + nibbles_at[kind]);
    uint8x16_t half[2] = {vandq_u8(packed, vdupq_n_u8(0x0f)), vshrq_n_u8(packed, 4)};
    if (kind == L_Q5_0 || kind == L_Q5_1) { /* bit e of qh is the fifth bit of element e */
        uint32_t qh;
        memcpy(&qh, x + (kind == L_Q5_0 ? 2 : 4), 4);
        uint8x16_t bytes = vcombine_u8(vcreate_u8(qh), vcreate_u8(qh));
        static const uint8_t lo_idx[16] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1};
        static const uint8_t hi_idx[16] = {2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3};
        static const uint8_t bit[16] = {1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128};
        uint8x16_t fifth = vdupq_n_u8(0x10), bits = vld1q_u8(bit);
        half[0] = vorrq_u8(half[0], vandq_u8(vtstq_u8(vqtbl1q_u8(bytes, vld1q_u8(lo_idx)), bits), fifth));
        half[1] = vorrq_u8(half[1], vandq_u8(vtstq_u8(vqtbl1q_u8(bytes, vld1q_u8(hi_idx)), bits), fifth));
    }
    int8_t offset = kind == L_Q4_0 ? 8 : kind == L_Q5_0 ? 16 : 0;
    for (int h = 0; h < 2; h++) v[h] = vsubq_s8(vreinterpretq_s8_u8(half[h]), vdupq_n_s8(offset));
}

/* R rows x T tokens, one float accumulator per pair, blocks in order; the dot is the 1 x 1 instance. */
static inline __attribute__((always_inline)) void legacy_tile_body(const uint8_t *w, size_t w_stride,
                                                                   const uint8_t *act, size_t act_stride, int64_t n,
                                                                   float *y, size_t y_stride, int R, int T,
                                                                   legacy_kind kind) {
    const bool has_min = legacy_has_min(kind);
    const size_t act_bytes = has_min ? Q8_1_BYTES : Q8_0_BYTES, act_q = has_min ? 4 : 2;
    float32x4_t acc[TILE_ROWS][TILE_TOKENS];
    for (int r = 0; r < R; r++)
        for (int t = 0; t < T; t++) acc[r][t] = vdupq_n_f32(0);
    for (int64_t b = 0; b < n / QK; b++) {
        int8x16_t wq[TILE_ROWS][2];
        float wd[TILE_ROWS], wm[TILE_ROWS];
        for (int r = 0; r < R; r++) {
            const uint8_t *blk = w + (size_t)r * w_stride + (size_t)b * legacy_bytes[kind];
            legacy_values(blk, kind, wq[r]);
            wd[r] = fp16_load(blk);
            wm[r] = has_min ? fp16_load(blk + 2) : 0.0f;
        }
        for (int t = 0; t < T; t++) {
            const uint8_t *ablk = act + (size_t)t * act_stride + (size_t)b * act_bytes;
            int8x16_t a0 = vld1q_s8((const int8_t *)(ablk + act_q)), a1 = vld1q_s8((const int8_t *)(ablk + act_q + 16));
            float ad = fp16_load(ablk);
            float32x4_t asum = vdupq_n_f32(0);
            if (has_min) asum = vcvtq_f32_s32(vdotq_s32(vdotq_s32(vdupq_n_s32(0), a0, vdupq_n_s8(1)), a1, vdupq_n_s8(1)));
            for (int r = 0; r < R; r++) {
                int32x4_t s = vdotq_s32(vdotq_s32(vdupq_n_s32(0), wq[r][0], a0), wq[r][1], a1);
                acc[r][t] = vfmaq_n_f32(acc[r][t], vcvtq_f32_s32(s), wd[r] * ad);
                if (has_min) acc[r][t] = vfmaq_n_f32(acc[r][t], asum, wm[r] * ad);
            }
        }
    }
    for (int t = 0; t < T; t++)
        for (int r = 0; r < R; r++) y[(size_t)t * y_stride + (size_t)r] = vaddvq_f32(acc[r][t]);
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
 * K types against Q8_K activations (f32 d, 256 int8, 16 int16 sums of 16). Layouts: src/quant/quant_blocks.h
 * ---------------------------------------------------------------------------------------------------------- */

enum { QK_K = 256, Q8_K_BYTES = 292 };

static inline float load_f32(const uint8_t *p) {
    float v;
    memcpy(&v, p, 4);
    return v;
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
typedef enum k_kind { K_Q2, K_Q3, K_Q4, K_Q5, K_Q6 } k_kind;

static const size_t k_bytes[] = {[K_Q2] = 84, [K_Q3] = 110, [K_Q4] = 144, [K_Q5] = 176, [K_Q6] = 210};
static const int k_offset[] = {[K_Q2] = 0, [K_Q3] = 4, [K_Q4] = 0, [K_Q5] = 0, [K_Q6] = 32};

typedef struct k_scales {
    int scale[16], min[16];
    float d, dmin;
} k_scales;

static inline void k_scales_of(const uint8_t *x, k_kind kind, k_scales *s) {
    s->dmin = 0.0f;
    for (int i = 0; i < 16; i++) s->min[i] = 0;
    switch (kind) {
    case K_Q2:
        for (int i = 0; i < 16; i++) {
            s->scale[i] = x[i] & 15;
            s->min[i] = x[i] >> 4;
        }
        s->d = fp16_load(x + 80);
        s->dmin = fp16_load(x + 82);
        break;
    case K_Q3: /* 6 bits: low four in the nibbles of bytes 96-103, high two in bytes 104-107 */
        for (int i = 0; i < 16; i++)
            s->scale[i] = ((x[96 + i % 8] >> (4 * (i / 8)) & 15) | (x[104 + i % 4] >> (2 * (i / 4)) & 3) << 4) - 32;
        s->d = fp16_load(x + 108);
        break;
    case K_Q4:
    case K_Q5:
        for (int i = 0; i < 8; i++) {
            tnd_k4_scale_min(x + 4, i, &s->scale[2 * i], &s->min[2 * i]);
            s->scale[2 * i + 1] = s->scale[2 * i];
            s->min[2 * i + 1] = s->min[2 * i];
        }
        s->d = fp16_load(x);
        s->dmin = fp16_load(x + 2);
        break;
    case K_Q6:
        for (int i = 0; i < 16; i++) s->scale[i] = (int8_t)x[192 + i];
        s->d = fp16_load(x + 208);
        break;
    }
}

/* Bits k.. of each byte of v (a right shift by a count known only at run time). */
static inline uint8x16_t shr_u8(uint8x16_t v, int k) { return vshlq_u8(v, vdupq_n_s8((int8_t)-k)); }

/* Levels of elements 32c + 16 half .. + 15 (c = 4h + p where halves of 128 hold four 2-bit planes). */
static inline int8x16_t k_levels(const uint8_t *x, k_kind kind, int c, int half) {
    const uint8x16_t one = vdupq_n_u8(1), low2 = vdupq_n_u8(0x03), low4 = vdupq_n_u8(0x0f);
    int h = c / 4, p = c % 4, l = 16 * half;
    uint8x16_t q = vdupq_n_u8(0);
    switch (kind) {
    case K_Q2:
        q = vandq_u8(shr_u8(vld1q_u8(x + 16 + 32 * h + l), 2 * p), low2);
        break;
    case K_Q3:
        q = vorrq_u8(vandq_u8(shr_u8(vld1q_u8(x + 32 + 32 * h + l), 2 * p), low2),
                     vshlq_n_u8(vandq_u8(shr_u8(vld1q_u8(x + l), c), one), 2));
        break;
    case K_Q4:
    case K_Q5: {
        uint8x16_t b = vld1q_u8(x + (kind == K_Q5 ? 48 : 16) + 32 * (c / 2) + l);
        q = c % 2 ? vshrq_n_u8(b, 4) : vandq_u8(b, low4);
        if (kind == K_Q5) q = vorrq_u8(q, vshlq_n_u8(vandq_u8(shr_u8(vld1q_u8(x + 16 + l), c), one), 4));
        break;
    }
    case K_Q6: {
        uint8x16_t b = vld1q_u8(x + 64 * h + 32 * (p & 1) + l);
        uint8x16_t lows = p < 2 ? vandq_u8(b, low4) : vshrq_n_u8(b, 4);
        uint8x16_t highs = vandq_u8(shr_u8(vld1q_u8(x + 128 + 32 * h + l), 2 * p), low2);
        q = vorrq_u8(lows, vshlq_n_u8(highs, 4));
        break;
    }
    }
    return vreinterpretq_s8_u8(q);
}

/* R rows x T tokens; each row's levels built once per 16 elements for the T tokens. The dot is the 1 x 1 instance,
 * so a tile and the dots sum in the same order. */
static inline __attribute__((always_inline)) void k_tile_body(const uint8_t *w, size_t w_stride, const uint8_t *act,
                                                              size_t act_stride, int64_t n, float *y, size_t y_stride,
                                                              int R, int T, k_kind kind) {
    float sum[TILE_ROWS][TILE_TOKENS] = {{0}};
    for (int64_t b = 0; b < n / QK_K; b++) {
        const uint8_t *x[TILE_ROWS];
        k_scales s[TILE_ROWS];
        int32x4_t acc[TILE_ROWS][TILE_TOKENS];
        for (int r = 0; r < R; r++) {
            x[r] = w + (size_t)r * w_stride + (size_t)b * k_bytes[kind];
            k_scales_of(x[r], kind, &s[r]);
            for (int t = 0; t < T; t++) acc[r][t] = vdupq_n_s32(0);
        }
        for (int c = 0; c < 8; c++)
            for (int half = 0; half < 2; half++) {
                int8x16_t q[TILE_ROWS];
                for (int r = 0; r < R; r++) q[r] = k_levels(x[r], kind, c, half);
                for (int t = 0; t < T; t++) {
                    int8x16_t yv = load_s8(act + (size_t)t * act_stride + (size_t)b * Q8_K_BYTES + 4 + 32 * c + 16 * half);
                    for (int r = 0; r < R; r++)
                        acc[r][t] = vmlaq_n_s32(acc[r][t], vdotq_s32(vdupq_n_s32(0), q[r], yv), s[r].scale[2 * c + half]);
                }
            }
        for (int t = 0; t < T; t++) {
            const uint8_t *yb = act + (size_t)t * act_stride + (size_t)b * Q8_K_BYTES;
            float dy = load_f32(yb);
            for (int r = 0; r < R; r++) {
                int32_t offset = 0, mins = 0;
                for (int i = 0; i < 16; i++) {
                    offset += s[r].scale[i] * q8k_bsum(yb, i);
                    mins += s[r].min[i] * q8k_bsum(yb, i);
                }
                sum[r][t] += dy * s[r].d * (float)(vaddvq_s32(acc[r][t]) - k_offset[kind] * offset) -
                             dy * s[r].dmin * (float)mins;
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

/* An entry with quantized activations and 2 x 4 tiles. */
static tnd_cpu_dot tiled_entry(tnd_type act_type, tnd_from_float_fn quantize, tnd_vec_dot_fn dot, tnd_tile_fn tile) {
    return (tnd_cpu_dot){.act_type = act_type,
                         .quantize_act = quantize,
                         .dot = dot,
                         .isa = "neon",
                         .tile = tile,
                         .tile_rows = TILE_ROWS,
                         .tile_tokens = TILE_TOKENS};
}

void tnd_cpu_kernels_neon(tnd_cpu_kernels *k) {
    k->dot[TND_TYPE_F32] = float_entry(dot_f32_f32, tile_f32_f32);
    k->dot[TND_TYPE_F16] = float_entry(dot_f16_f32, tile_f16_f32);
    k->dot[TND_TYPE_BF16] = float_entry(dot_bf16_f32, tile_bf16_f32);
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
