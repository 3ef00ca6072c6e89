/* arm_neon.c: CPU kernels for AArch64 with NEON and the dot-product extension (compiled with
 * -march=armv8.2-a+dotprod; chosen at run time by cpu_kernels.c when the processor reports asimddp). sdot
 * multiplies 16 signed bytes by 16 signed bytes and adds each group of four products into one of 4 int32 lanes.
 * Each kernel computes what its scalar counterpart in src/quant computes; test_cpu_kernels checks them against
 * double math on odd sizes, also under qemu-user in CI (scripts/test_arm.sh). */
#include "backend/cpu/cpu_kernels.h"

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
 * Registration
 * ---------------------------------------------------------------------------------------------------------- */

void tnd_cpu_kernels_neon(tnd_cpu_kernels *k) {
    k->dot[TND_TYPE_F32] = (tnd_cpu_dot){TND_TYPE_F32, copy_f32, dot_f32_f32, "neon", NULL, 0, 0, NULL, NULL, NULL, 0};
    k->dot[TND_TYPE_F16] = (tnd_cpu_dot){TND_TYPE_F32, copy_f32, dot_f16_f32, "neon", NULL, 0, 0, NULL, NULL, NULL, 0};
    k->dot[TND_TYPE_Q8_0] = (tnd_cpu_dot){TND_TYPE_Q8_0, quantize_q8_0, dot_q8_0_q8_0, "neon", NULL, 0, 0, NULL, NULL,
                                          NULL, 0};
    k->dot[TND_TYPE_Q4_0] = (tnd_cpu_dot){TND_TYPE_Q8_0, quantize_q8_0, dot_q4_0_q8_0, "neon", NULL, 0, 0, NULL, NULL,
                                          NULL, 0};
}
