/* arm_neon.c: CPU kernels (F32, F16, Q4_0, Q8_0, Q4_K, Q6_K) for AArch64 with NEON and the dot-product extension
 * (compiled with -march=armv8.2-a+dotprod; chosen at run time by cpu_kernels.c when the processor reports
 * asimddp). sdot multiplies 16 signed bytes by 16 signed bytes and adds each group of four products into one of 4
 * int32 lanes.
 * Each kernel computes what its scalar counterpart in src/quant computes; test_cpu_kernels checks them against
 * double math on odd sizes, also under qemu-user in CI (scripts/test_arm.sh). */
#include "backend/cpu/cpu_kernels.h"
#include "quant/quant_blocks.h"
#include "quant/quant_ref.h"

#include <arm_neon.h>
#include <string.h>

enum { QK = 32, Q8_0_BYTES = 34, Q4_0_BYTES = 18 };

static inline float fp16_load(const uint8_t *p) {
    __fp16 h;
    memcpy(&h, p, 2);
    return (float)h;
}

/* ------------------------------------------------------------------------------------------------------------
 * Float weights against float activations
 * ---------------------------------------------------------------------------------------------------------- */

static float dot_f32_f32(const void *vx, const void *vy, int64_t n) {
    const float *x = vx, *y = vy;
    float32x4_t a0 = vdupq_n_f32(0), a1 = vdupq_n_f32(0), a2 = vdupq_n_f32(0), a3 = vdupq_n_f32(0);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        a0 = vfmaq_f32(a0, vld1q_f32(x + i), vld1q_f32(y + i));
        a1 = vfmaq_f32(a1, vld1q_f32(x + i + 4), vld1q_f32(y + i + 4));
        a2 = vfmaq_f32(a2, vld1q_f32(x + i + 8), vld1q_f32(y + i + 8));
        a3 = vfmaq_f32(a3, vld1q_f32(x + i + 12), vld1q_f32(y + i + 12));
    }
    for (; i + 4 <= n; i += 4) a0 = vfmaq_f32(a0, vld1q_f32(x + i), vld1q_f32(y + i));
    float s = vaddvq_f32(vaddq_f32(vaddq_f32(a0, a1), vaddq_f32(a2, a3)));
    for (; i < n; i++) s += x[i] * y[i];
    return s;
}

static float dot_f16_f32(const void *vx, const void *vy, int64_t n) {
    const __fp16 *x = vx;
    const float *y = vy;
    float32x4_t a0 = vdupq_n_f32(0), a1 = vdupq_n_f32(0);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        float16x8_t h = vld1q_f16(x + i);
        a0 = vfmaq_f32(a0, vcvt_f32_f16(vget_low_f16(h)), vld1q_f32(y + i));
        a1 = vfmaq_f32(a1, vcvt_high_f32_f16(h), vld1q_f32(y + i + 4));
    }
    float s = vaddvq_f32(vaddq_f32(a0, a1));
    for (; i < n; i++) s += (float)x[i] * y[i];
    return s;
}

static void copy_f32(const float *src, void *dst, int64_t n) { memcpy(dst, src, sizeof(float) * (size_t)n); }

/* ------------------------------------------------------------------------------------------------------------
 * Blocks of 32 with one fp16 scale (Q4_0, Q8_0) against Q8_0 activations
 * ---------------------------------------------------------------------------------------------------------- */

/* Q8_0 activations: d = max|x| / 127, q = round(x / d). */
static void quantize_q8_0(const float *x, void *vy, int64_t n) {
    uint8_t *y = vy;
    for (int64_t b = 0; b < n / QK; b++, x += QK, y += Q8_0_BYTES) {
        float32x4_t v[8], m = vdupq_n_f32(0);
        for (int i = 0; i < 8; i++) {
            v[i] = vld1q_f32(x + 4 * i);
            m = vmaxq_f32(m, vabsq_f32(v[i]));
        }
        float amax = vmaxvq_f32(m), d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
        __fp16 dh = (__fp16)d;
        memcpy(y, &dh, 2);
        int8_t q[QK];
        for (int i = 0; i < 8; i++) {
            int32x4_t r = vcvtnq_s32_f32(vmulq_n_f32(v[i], id)); /* to nearest, ties to even */
            int16x4_t h = vqmovn_s32(r);
            int8x8_t b8 = vqmovn_s16(vcombine_s16(h, h));
            vst1_lane_s32((int32_t *)(void *)(q + 4 * i), vreinterpret_s32_s8(b8), 0);
        }
        memcpy(y + 2, q, QK);
    }
}

/* Q4_0 block: fp16 d, 16 bytes; byte i holds element i (low nibble) and i + 16 (high); x = d * (nibble - 8). */
static float dot_q4_0_q8_0(const void *vx, const void *vy, int64_t n) {
    const uint8_t *x = vx, *y = vy;
    float32x4_t acc = vdupq_n_f32(0);
    const uint8x16_t low4 = vdupq_n_u8(0x0f);
    const int8x16_t eight = vdupq_n_s8(8);
    for (int64_t b = 0; b < n / QK; b++, x += Q4_0_BYTES, y += Q8_0_BYTES) {
        uint8x16_t packed = vld1q_u8(x + 2);
        int8x16_t lo = vsubq_s8(vreinterpretq_s8_u8(vandq_u8(packed, low4)), eight);
        int8x16_t hi = vsubq_s8(vreinterpretq_s8_u8(vshrq_n_u8(packed, 4)), eight);
        int32x4_t s = vdotq_s32(vdotq_s32(vdupq_n_s32(0), lo, vld1q_s8((const int8_t *)(y + 2))), hi,
                                vld1q_s8((const int8_t *)(y + 18)));
        acc = vfmaq_n_f32(acc, vcvtq_f32_s32(s), fp16_load(x) * fp16_load(y));
    }
    return vaddvq_f32(acc);
}

static float dot_q8_0_q8_0(const void *vx, const void *vy, int64_t n) {
    const uint8_t *x = vx, *y = vy;
    float32x4_t acc = vdupq_n_f32(0);
    for (int64_t b = 0; b < n / QK; b++, x += Q8_0_BYTES, y += Q8_0_BYTES) {
        int32x4_t s = vdotq_s32(vdupq_n_s32(0), vld1q_s8((const int8_t *)(x + 2)), vld1q_s8((const int8_t *)(y + 2)));
        s = vdotq_s32(s, vld1q_s8((const int8_t *)(x + 18)), vld1q_s8((const int8_t *)(y + 18)));
        acc = vfmaq_n_f32(acc, vcvtq_f32_s32(s), fp16_load(x) * fp16_load(y));
    }
    return vaddvq_f32(acc);
}

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

static inline float dot_k(const uint8_t *x, const uint8_t *y, int64_t n, k_kind kind) {
    float sum = 0;
    for (int64_t b = 0; b < n / QK_K; b++, x += k_bytes[kind], y += Q8_K_BYTES) {
        k_scales s;
        k_scales_of(x, kind, &s);
        int32x4_t acc = vdupq_n_s32(0);
        for (int c = 0; c < 8; c++)
            for (int half = 0; half < 2; half++) {
                int32x4_t d =
                    vdotq_s32(vdupq_n_s32(0), k_levels(x, kind, c, half), load_s8(y + 4 + 32 * c + 16 * half));
                acc = vmlaq_n_s32(acc, d, s.scale[2 * c + half]);
            }
        int32_t offset = 0, mins = 0;
        for (int i = 0; i < 16; i++) {
            offset += s.scale[i] * q8k_bsum(y, i);
            mins += s.min[i] * q8k_bsum(y, i);
        }
        float dy = load_f32(y);
        sum += dy * s.d * (float)(vaddvq_s32(acc) - k_offset[kind] * offset) - dy * s.dmin * (float)mins;
    }
    return sum;
}

static float dot_q2_K_q8_K(const void *x, const void *y, int64_t n) { return dot_k(x, y, n, K_Q2); }
static float dot_q3_K_q8_K(const void *x, const void *y, int64_t n) { return dot_k(x, y, n, K_Q3); }
static float dot_q4_K_q8_K(const void *x, const void *y, int64_t n) { return dot_k(x, y, n, K_Q4); }
static float dot_q5_K_q8_K(const void *x, const void *y, int64_t n) { return dot_k(x, y, n, K_Q5); }
static float dot_q6_K_q8_K(const void *x, const void *y, int64_t n) { return dot_k(x, y, n, K_Q6); }

/* ------------------------------------------------------------------------------------------------------------
 * Registration
 * ---------------------------------------------------------------------------------------------------------- */

static tnd_cpu_dot entry(tnd_type act_type, tnd_from_float_fn quantize, tnd_vec_dot_fn dot) {
    return (tnd_cpu_dot){.act_type = act_type, .quantize_act = quantize, .dot = dot, .isa = "neon"};
}

void tnd_cpu_kernels_neon(tnd_cpu_kernels *k) {
    k->dot[TND_TYPE_F32] = entry(TND_TYPE_F32, copy_f32, dot_f32_f32);
    k->dot[TND_TYPE_F16] = entry(TND_TYPE_F32, copy_f32, dot_f16_f32);
    k->dot[TND_TYPE_Q8_0] = entry(TND_TYPE_Q8_0, quantize_q8_0, dot_q8_0_q8_0);
    k->dot[TND_TYPE_Q4_0] = entry(TND_TYPE_Q8_0, quantize_q8_0, dot_q4_0_q8_0);
    k->dot[TND_TYPE_Q4_K] = entry(TND_TYPE_Q8_K, tnd_quantize_q8_K_ref, dot_q4_K_q8_K);
    k->dot[TND_TYPE_Q6_K] = entry(TND_TYPE_Q8_K, tnd_quantize_q8_K_ref, dot_q6_K_q8_K);
    k->dot[TND_TYPE_Q2_K] = entry(TND_TYPE_Q8_K, tnd_quantize_q8_K_ref, dot_q2_K_q8_K);
    k->dot[TND_TYPE_Q3_K] = entry(TND_TYPE_Q8_K, tnd_quantize_q8_K_ref, dot_q3_K_q8_K);
    k->dot[TND_TYPE_Q5_K] = entry(TND_TYPE_Q8_K, tnd_quantize_q8_K_ref, dot_q5_K_q8_K);
}
