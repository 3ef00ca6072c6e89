/* quant_legacy.c: reference kernels of the 32-element block types Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 and Q8_1 (layouts in
 * quant_blocks.h). Quantization is the published reference algorithm, step for step in the same float operations, so
 * its bytes equal those of files made without an importance matrix:
 *   _0 types: d = (element of largest magnitude) / -(levels / 2), so that element lands exactly on the lowest level;
 *             level = trunc(x / d + levels / 2 + 0.5), at most levels - 1.
 *   _1 types: d = (max - min) / (levels - 1), m = min; level = trunc((x - min) / d + 0.5).
 *   Q8_0 / Q8_1: d = absmax / 127, q = round half away from zero (x / d).
 * Dot products multiply the integer levels of both operands per block and scale the block sum once (exact in
 * double: every block term is a product of numbers short enough to need no rounding). */
#include "quant/quant_ref.h"

#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF /* a fused multiply-add would round differently from the published quantizer */
#endif

enum { QK = TND_QK_LEGACY };

/* ------------------------------------------------------------------------------------------------------------
 * Level packing: 4-bit parts in nibbles (element j low, element j + 16 high), fifth bits in a u32
 * ---------------------------------------------------------------------------------------------------------- */

/* Unpacks the levels of a block: qh == NULL for the 4-bit types. */
static inline void unpack_levels(const uint8_t qs[QK / 2], const uint8_t *qh, int level[QK]) {
    uint32_t high = 0;
    if (qh) memcpy(&high, qh, 4);
    for (int j = 0; j < QK / 2; j++) {
        level[j] = (qs[j] & 15) | (int)((high >> j) & 1) << 4;
        level[j + QK / 2] = (qs[j] >> 4) | (int)((high >> (j + QK / 2)) & 1) << 4;
    }
}

static inline void pack_levels(const uint8_t level[QK], uint8_t qs[QK / 2], uint8_t *qh) {
    uint32_t high = 0;
    for (int j = 0; j < QK / 2; j++) {
        qs[j] = (uint8_t)((level[j] & 15) | (level[j + QK / 2] & 15) << 4);
        high |= (uint32_t)(level[j] >> 4 & 1) << j | (uint32_t)(level[j + QK / 2] >> 4 & 1) << (j + QK / 2);
    }
    if (qh) memcpy(qh, &high, 4);
}

/* ------------------------------------------------------------------------------------------------------------
 * Quantization of one block
 * ---------------------------------------------------------------------------------------------------------- */

/* Symmetric block with 2 * half levels (Q4_0: half 8, Q5_0: half 16). Writes d, qs and (Q5_0) qh. A block holding
 * NaN or an infinity gets d = NaN and zero levels. */
static void quantize_symmetric(const float *x, int half, uint8_t *d_at, uint8_t *qs, uint8_t *qh) {
    uint8_t level[QK];
    if (!tnd_all_finite(x, QK)) {
        tnd_block_set_nan(d_at);
        memset(level, 0, sizeof level);
        pack_levels(level, qs, qh);
        return;
    }
    float amax = 0, max = 0; /* largest magnitude and the signed element that has it (the first such) */
    for (int j = 0; j < QK; j++) {
        if (amax < fabsf(x[j])) {
            amax = fabsf(x[j]);
            max = x[j];
        }
    }
    const float d = max / (float)-half;
    const float id = d != 0 ? 1.0f / d : 0.0f;
    const float bias = (float)half + 0.5f; /* 8.5 or 16.5, exact */
    tnd_block_set_f16(d_at, d);
    for (int j = 0; j < QK; j++) level[j] = (uint8_t)tnd_trunc_clamp(x[j] * id + bias, 0, 2 * half - 1);
    pack_levels(level, qs, qh);
}

/* Affine block with `levels` levels over [min, max] (Q4_1: 16, Q5_1: 32). Writes d, m, qs and (Q5_1) qh. A block
 * holding NaN or an infinity gets d = m = NaN and zero levels. */
static void quantize_affine(const float *x, int levels, uint8_t *d_at, uint8_t *m_at, uint8_t *qs, uint8_t *qh) {
    uint8_t level[QK];
    if (!tnd_all_finite(x, QK)) {
        tnd_block_set_nan(d_at);
        tnd_block_set_nan(m_at);
        memset(level, 0, sizeof level);
        pack_levels(level, qs, qh);
        return;
    }
    float min = x[0], max = x[0];
    for (int j = 1; j < QK; j++) {
        if (x[j] < min) min = x[j];
        if (x[j] > max) max = x[j];
    }
    const float d = (max - min) / (float)(levels - 1);
    const float id = d != 0 ? 1.0f / d : 0.0f;
    tnd_block_set_f16(d_at, d);
    tnd_block_set_f16(m_at, min);
    for (int j = 0; j < QK; j++) level[j] = (uint8_t)tnd_trunc_clamp((x[j] - min) * id + 0.5f, 0, levels - 1);
    pack_levels(level, qs, qh);
}

/* The int8 part of Q8_0 and Q8_1: writes d and qs, returns d before rounding to fp16 (NaN for non-finite input). */
static float quantize_int8(const float *x, uint8_t *d_at, int8_t *qs) {
    if (!tnd_all_finite(x, QK)) {
        tnd_block_set_nan(d_at);
        memset(qs, 0, QK);
        return NAN;
    }
    float amax = 0;
    for (int j = 0; j < QK; j++) amax = fabsf(x[j]) > amax ? fabsf(x[j]) : amax;
    const float d = amax / 127.0f;
    const float id = d != 0 ? 1.0f / d : 0.0f;
    tnd_block_set_f16(d_at, d);
    for (int j = 0; j < QK; j++) qs[j] = (int8_t)tnd_round_clamp(x[j] * id, -127, 127);
    return d;
}

/* ------------------------------------------------------------------------------------------------------------
 * Row kernels: n is a multiple of 32
 * ---------------------------------------------------------------------------------------------------------- */

void tnd_quantize_q4_0_ref(const float *x, void *dst, int64_t n) {
    tnd_block_q4_0 *b = dst;
    for (int64_t i = 0; i < n / QK; i++) quantize_symmetric(x + i * QK, 8, b[i].d, b[i].qs, NULL);
}

void tnd_quantize_q5_0_ref(const float *x, void *dst, int64_t n) {
    tnd_block_q5_0 *b = dst;
    for (int64_t i = 0; i < n / QK; i++) quantize_symmetric(x + i * QK, 16, b[i].d, b[i].qs, b[i].qh);
}

void tnd_quantize_q4_1_ref(const float *x, void *dst, int64_t n) {
    tnd_block_q4_1 *b = dst;
    for (int64_t i = 0; i < n / QK; i++) quantize_affine(x + i * QK, 16, b[i].d, b[i].m, b[i].qs, NULL);
}

void tnd_quantize_q5_1_ref(const float *x, void *dst, int64_t n) {
    tnd_block_q5_1 *b = dst;
    for (int64_t i = 0; i < n / QK; i++) quantize_affine(x + i * QK, 32, b[i].d, b[i].m, b[i].qs, b[i].qh);
}

void tnd_quantize_q8_0_ref(const float *x, void *dst, int64_t n) {
    tnd_block_q8_0 *b = dst;
    for (int64_t i = 0; i < n / QK; i++) quantize_int8(x + i * QK, b[i].d, b[i].qs);
}

void tnd_quantize_q8_1_ref(const float *x, void *dst, int64_t n) {
    tnd_block_q8_1 *b = dst;
    for (int64_t i = 0; i < n / QK; i++) {
        float d = quantize_int8(x + i * QK, b[i].d, b[i].qs);
        int sum = 0;
        for (int j = 0; j < QK; j++) sum += b[i].qs[j];
        tnd_block_set_f16(b[i].s, (float)sum * d);
    }
}

void tnd_dequantize_q4_0_ref(const void *src, float *y, int64_t n) {
    const tnd_block_q4_0 *b = src;
    int level[QK];
    for (int64_t i = 0; i < n / QK; i++, y += QK) {
        const float d = tnd_block_f16(b[i].d);
        unpack_levels(b[i].qs, NULL, level);
        for (int j = 0; j < QK; j++) y[j] = (float)(level[j] - 8) * d;
    }
}

void tnd_dequantize_q5_0_ref(const void *src, float *y, int64_t n) {
    const tnd_block_q5_0 *b = src;
    int level[QK];
    for (int64_t i = 0; i < n / QK; i++, y += QK) {
        const float d = tnd_block_f16(b[i].d);
        unpack_levels(b[i].qs, b[i].qh, level);
        for (int j = 0; j < QK; j++) y[j] = (float)(level[j] - 16) * d;
    }
}

void tnd_dequantize_q4_1_ref(const void *src, float *y, int64_t n) {
    const tnd_block_q4_1 *b = src;
    int level[QK];
    for (int64_t i = 0; i < n / QK; i++, y += QK) {
        const float d = tnd_block_f16(b[i].d), m = tnd_block_f16(b[i].m);
        unpack_levels(b[i].qs, NULL, level);
        for (int j = 0; j < QK; j++) y[j] = (float)level[j] * d + m;
    }
}

void tnd_dequantize_q5_1_ref(const void *src, float *y, int64_t n) {
    const tnd_block_q5_1 *b = src;
    int level[QK];
    for (int64_t i = 0; i < n / QK; i++, y += QK) {
        const float d = tnd_block_f16(b[i].d), m = tnd_block_f16(b[i].m);
        unpack_levels(b[i].qs, b[i].qh, level);
        for (int j = 0; j < QK; j++) y[j] = (float)level[j] * d + m;
    }
}

void tnd_dequantize_q8_0_ref(const void *src, float *y, int64_t n) {
    const tnd_block_q8_0 *b = src;
    for (int64_t i = 0; i < n / QK; i++, y += QK) {
        const float d = tnd_block_f16(b[i].d);
        for (int j = 0; j < QK; j++) y[j] = (float)b[i].qs[j] * d;
    }
}

void tnd_dequantize_q8_1_ref(const void *src, float *y, int64_t n) {
    const tnd_block_q8_1 *b = src;
    for (int64_t i = 0; i < n / QK; i++, y += QK) {
        const float d = tnd_block_f16(b[i].d);
        for (int j = 0; j < QK; j++) y[j] = (float)b[i].qs[j] * d;
    }
}

/* ------------------------------------------------------------------------------------------------------------
 * Dot products against Q8_0 (Q4_0, Q5_0, Q8_0) and Q8_1 (Q4_1, Q5_1)
 *   sum over blocks of dx * dy * sum_j (level_j - offset) * qy_j           (_0 types)
 *                    + m * dy * sum_j qy_j                                   (_1 types; the sum of qy is counted
 *                                                                             here rather than read from s, which
 *                                                                             is rounded to fp16)
 * ---------------------------------------------------------------------------------------------------------- */

static inline int dot_levels(const int level[QK], int offset, const int8_t qy[QK]) {
    int sum = 0;
    for (int j = 0; j < QK; j++) sum += (level[j] - offset) * qy[j];
    return sum;
}

static inline int sum_int8(const int8_t q[QK]) {
    int sum = 0;
    for (int j = 0; j < QK; j++) sum += q[j];
    return sum;
}

float tnd_vec_dot_q4_0_ref(const void *vx, const void *vy, int64_t n) {
    const tnd_block_q4_0 *x = vx;
    const tnd_block_q8_0 *y = vy;
    double sum = 0;
    int level[QK];
    for (int64_t i = 0; i < n / QK; i++) {
        unpack_levels(x[i].qs, NULL, level);
        sum += (double)tnd_block_f16(x[i].d) * tnd_block_f16(y[i].d) * dot_levels(level, 8, y[i].qs);
    }
    return (float)sum;
}

float tnd_vec_dot_q5_0_ref(const void *vx, const void *vy, int64_t n) {
    const tnd_block_q5_0 *x = vx;
    const tnd_block_q8_0 *y = vy;
    double sum = 0;
    int level[QK];
    for (int64_t i = 0; i < n / QK; i++) {
        unpack_levels(x[i].qs, x[i].qh, level);
        sum += (double)tnd_block_f16(x[i].d) * tnd_block_f16(y[i].d) * dot_levels(level, 16, y[i].qs);
    }
    return (float)sum;
}

float tnd_vec_dot_q8_0_ref(const void *vx, const void *vy, int64_t n) {
    const tnd_block_q8_0 *x = vx;
    const tnd_block_q8_0 *y = vy;
    double sum = 0;
    for (int64_t i = 0; i < n / QK; i++) {
        int isum = 0;
        for (int j = 0; j < QK; j++) isum += x[i].qs[j] * y[i].qs[j];
        sum += (double)tnd_block_f16(x[i].d) * tnd_block_f16(y[i].d) * isum;
    }
    return (float)sum;
}

float tnd_vec_dot_q4_1_ref(const void *vx, const void *vy, int64_t n) {
    const tnd_block_q4_1 *x = vx;
    const tnd_block_q8_1 *y = vy;
    double sum = 0;
    int level[QK];
    for (int64_t i = 0; i < n / QK; i++) {
        unpack_levels(x[i].qs, NULL, level);
        const double dy = tnd_block_f16(y[i].d);
        sum += (double)tnd_block_f16(x[i].d) * dy * dot_levels(level, 0, y[i].qs) +
               (double)tnd_block_f16(x[i].m) * dy * sum_int8(y[i].qs);
    }
    return (float)sum;
}

float tnd_vec_dot_q5_1_ref(const void *vx, const void *vy, int64_t n) {
    const tnd_block_q5_1 *x = vx;
    const tnd_block_q8_1 *y = vy;
    double sum = 0;
    int level[QK];
    for (int64_t i = 0; i < n / QK; i++) {
        unpack_levels(x[i].qs, x[i].qh, level);
        const double dy = tnd_block_f16(y[i].d);
        sum += (double)tnd_block_f16(x[i].d) * dy * dot_levels(level, 0, y[i].qs) +
               (double)tnd_block_f16(x[i].m) * dy * sum_int8(y[i].qs);
    }
    return (float)sum;
}
