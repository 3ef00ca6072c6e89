/* quant_legacy.c: the 32-element block types Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1. Every block stores a scale (and
 * for the _1 types a minimum) as fp16, then its quants. Quantization follows the published reference: the _0 types
 * take the scale from the element of largest magnitude (so it lands exactly on the extreme level), the _1 types span
 * [min, max]. */
#include "quant/quant_ref.h"

enum { QK = 32 };

/* Q4_0, 18 bytes:  [d: fp16][qs: 16 bytes]
 *   byte j of qs: low nibble = element j, high nibble = element j + 16;  x = d * (nibble - 8) */
_Static_assert(2 + QK / 2 == 18, "q4_0 block");
/* Q4_1, 20 bytes:  [d: fp16][m: fp16][qs: 16 bytes]          x = d * nibble + m */
_Static_assert(4 + QK / 2 == 20, "q4_1 block");
/* Q5_0, 22 bytes:  [d: fp16][qh: 4 bytes, bit j = 5th bit of element j][qs: 16 bytes as Q4_0]
 *   x = d * ((nibble | bit << 4) - 16) */
_Static_assert(2 + 4 + QK / 2 == 22, "q5_0 block");
/* Q5_1, 24 bytes:  [d: fp16][m: fp16][qh: 4 bytes][qs: 16 bytes]     x = d * (nibble | bit << 4) + m */
_Static_assert(4 + 4 + QK / 2 == 24, "q5_1 block");
/* Q8_0, 34 bytes:  [d: fp16][qs: 32 x int8]                  x = d * q */
_Static_assert(2 + QK == 34, "q8_0 block");
/* Q8_1, 36 bytes:  [d: fp16][s: fp16 = d * sum(q)][qs: 32 x int8]   (the activation format of the _1 types) */
_Static_assert(4 + QK == 36, "q8_1 block");

/* ------------------------------------------------------------------------------------------------------------
 * Shared pieces: nibble packing and block ranges
 * ---------------------------------------------------------------------------------------------------------- */

/* Unpacks the 4-bit (and optional 5th-bit) levels of a block: q[j] for j < 32. */
static void unpack_levels(const uint8_t *qs, const uint8_t *qh, int q[QK]) {
    uint32_t high = 0;
    if (qh) memcpy(&high, qh, 4);
    for (int j = 0; j < QK / 2; j++) {
        q[j] = (qs[j] & 0x0f) | (qh ? (int)((high >> j) & 1) << 4 : 0);
        q[j + 16] = (qs[j] >> 4) | (qh ? (int)((high >> (j + 16)) & 1) << 4 : 0);
    }
}

static void pack_levels(const int q[QK], uint8_t *qs, uint8_t *qh) {
    uint32_t high = 0;
    for (int j = 0; j < QK / 2; j++) {
        qs[j] = (uint8_t)((q[j] & 0x0f) | (q[j + 16] & 0x0f) << 4);
        high |= (uint32_t)((q[j] >> 4) & 1) << j | (uint32_t)((q[j + 16] >> 4) & 1) << (j + 16);
    }
    if (qh) memcpy(qh, &high, 4);
}

/* The element of largest magnitude, with its sign. */
static float signed_absmax(const float *x) {
    float amax = 0, max = 0;
    for (int j = 0; j < QK; j++) {
        if (fabsf(x[j]) > amax) {
            amax = fabsf(x[j]);
            max = x[j];
        }
    }
    return max;
}

static int clamp_level(int q, int top) { return q < 0 ? 0 : q > top ? top : q; }

/* Symmetric 2^bits-level block (Q4_0: 16 levels, Q5_0: 32): d = max / -(levels/2), q = round(x / d) + levels/2. */
static void quantize_symmetric(const float *x, uint8_t *d_at, uint8_t *qs, uint8_t *qh, int levels) {
    float d = signed_absmax(x) / (float)-(levels / 2), id = d != 0 ? 1.0f / d : 0;
    tnd_block_set_f16(d_at, d);
    int q[QK];
    for (int j = 0; j < QK; j++) q[j] = clamp_level((int)(x[j] * id + (float)(levels / 2) + 0.5f), levels - 1);
    pack_levels(q, qs, qh);
}

/* Asymmetric block (Q4_1: 16 levels, Q5_1: 32): d = (max - min) / (levels - 1), m = min. */
static void quantize_affine(const float *x, uint8_t *dm_at, uint8_t *qs, uint8_t *qh, int levels) {
    float mn = x[0], mx = x[0];
    for (int j = 1; j < QK; j++) {
        mn = x[j] < mn ? x[j] : mn;
        mx = x[j] > mx ? x[j] : mx;
    }
    float d = (mx - mn) / (float)(levels - 1), id = d != 0 ? 1.0f / d : 0;
    tnd_block_set_f16(dm_at, d);
    tnd_block_set_f16(dm_at + 2, mn);
    int q[QK];
    for (int j = 0; j < QK; j++) q[j] = clamp_level((int)((x[j] - mn) * id + 0.5f), levels - 1);
    pack_levels(q, qs, qh);
}

/* ------------------------------------------------------------------------------------------------------------
 * The types
 * ---------------------------------------------------------------------------------------------------------- */

void tnd_dequantize_q4_0_ref(const void *src, float *y, int64_t n) {
    const uint8_t *b = src;
    int q[QK];
    for (int64_t i = 0; i < n / QK; i++, b += 18, y += QK) {
        float d = tnd_block_f16(b);
        unpack_levels(b + 2, NULL, q);
        for (int j = 0; j < QK; j++) y[j] = d * (float)(q[j] - 8);
    }
}

void tnd_quantize_q4_0_ref(const float *x, void *dst, int64_t n) {
    uint8_t *b = dst;
    for (int64_t i = 0; i < n / QK; i++, b += 18, x += QK) quantize_symmetric(x, b, b + 2, NULL, 16);
}

void tnd_dequantize_q4_1_ref(const void *src, float *y, int64_t n) {
    const uint8_t *b = src;
    int q[QK];
    for (int64_t i = 0; i < n / QK; i++, b += 20, y += QK) {
        float d = tnd_block_f16(b), m = tnd_block_f16(b + 2);
        unpack_levels(b + 4, NULL, q);
        for (int j = 0; j < QK; j++) y[j] = d * (float)q[j] + m;
    }
}

void tnd_quantize_q4_1_ref(const float *x, void *dst, int64_t n) {
    uint8_t *b = dst;
    for (int64_t i = 0; i < n / QK; i++, b += 20, x += QK) quantize_affine(x, b, b + 4, NULL, 16);
}

void tnd_dequantize_q5_0_ref(const void *src, float *y, int64_t n) {
    const uint8_t *b = src;
    int q[QK];
    for (int64_t i = 0; i < n / QK; i++, b += 22, y += QK) {
        float d = tnd_block_f16(b);
        unpack_levels(b + 6, b + 2, q);
        for (int j = 0; j < QK; j++) y[j] = d * (float)(q[j] - 16);
    }
}

void tnd_quantize_q5_0_ref(const float *x, void *dst, int64_t n) {
    uint8_t *b = dst;
    for (int64_t i = 0; i < n / QK; i++, b += 22, x += QK) quantize_symmetric(x, b, b + 6, b + 2, 32);
}

void tnd_dequantize_q5_1_ref(const void *src, float *y, int64_t n) {
    const uint8_t *b = src;
    int q[QK];
    for (int64_t i = 0; i < n / QK; i++, b += 24, y += QK) {
        float d = tnd_block_f16(b), m = tnd_block_f16(b + 2);
        unpack_levels(b + 8, b + 4, q);
        for (int j = 0; j < QK; j++) y[j] = d * (float)q[j] + m;
    }
}

void tnd_quantize_q5_1_ref(const float *x, void *dst, int64_t n) {
    uint8_t *b = dst;
    for (int64_t i = 0; i < n / QK; i++, b += 24, x += QK) quantize_affine(x, b, b + 8, b + 4, 32);
}

/* Q8_0 and Q8_1 share the int8 part: d = absmax / 127, q = round(x / d). */
static void quantize_int8(const float *x, uint8_t *d_at, int8_t *qs, int *sum) {
    float amax = 0;
    for (int j = 0; j < QK; j++) amax = fabsf(x[j]) > amax ? fabsf(x[j]) : amax;
    float d = amax / 127.0f, id = d != 0 ? 1.0f / d : 0;
    tnd_block_set_f16(d_at, d);
    *sum = 0;
    for (int j = 0; j < QK; j++) {
        qs[j] = (int8_t)roundf(x[j] * id);
        *sum += qs[j];
    }
}

void tnd_dequantize_q8_0_ref(const void *src, float *y, int64_t n) {
    const uint8_t *b = src;
    for (int64_t i = 0; i < n / QK; i++, b += 34, y += QK) {
        float d = tnd_block_f16(b);
        for (int j = 0; j < QK; j++) y[j] = d * (float)(int8_t)b[2 + j];
    }
}

void tnd_quantize_q8_0_ref(const float *x, void *dst, int64_t n) {
    uint8_t *b = dst;
    int sum;
    for (int64_t i = 0; i < n / QK; i++, b += 34, x += QK) quantize_int8(x, b, (int8_t *)(b + 2), &sum);
}

void tnd_dequantize_q8_1_ref(const void *src, float *y, int64_t n) {
    const uint8_t *b = src;
    for (int64_t i = 0; i < n / QK; i++, b += 36, y += QK) {
        float d = tnd_block_f16(b);
        for (int j = 0; j < QK; j++) y[j] = d * (float)(int8_t)b[4 + j];
    }
}

void tnd_quantize_q8_1_ref(const float *x, void *dst, int64_t n) {
    uint8_t *b = dst;
    int sum;
    for (int64_t i = 0; i < n / QK; i++, b += 36, x += QK) {
        quantize_int8(x, b, (int8_t *)(b + 4), &sum);
        tnd_block_set_f16(b + 2, tnd_block_f16(b) * (float)sum);
    }
}
