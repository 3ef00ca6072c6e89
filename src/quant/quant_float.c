/* quant_float.c: reference kernels of the plain floating-point element types.
 *
 *   f32:  4 bytes, IEEE binary32, little-endian
 *   f16:  2 bytes, IEEE binary16: sign | 5-bit exponent | 10-bit mantissa
 *   bf16: 2 bytes, the upper half of a binary32: sign | 8-bit exponent | 7-bit mantissa
 *
 * Conversions round to nearest, ties to even; NaN stays NaN (quieted), infinities stay infinite, and f16 values
 * beyond its range become infinities (plain IEEE conversion, as converters write files). Elements may sit at any
 * address: they are read and written through memcpy. The dot products take f32 activations (vec_dot_type F32) and
 * sum in double. */
#include "quant/quant_ref.h"

void tnd_dequantize_f32_ref(const void *src, float *dst, int64_t n) { memcpy(dst, src, sizeof(float) * (size_t)n); }
void tnd_quantize_f32_ref(const float *src, void *dst, int64_t n) { memcpy(dst, src, sizeof(float) * (size_t)n); }

void tnd_dequantize_f16_ref(const void *src, float *dst, int64_t n) {
    const uint8_t *p = src;
    for (int64_t i = 0; i < n; i++) dst[i] = tnd_block_f16(p + 2 * i);
}

void tnd_quantize_f16_ref(const float *src, void *dst, int64_t n) {
    uint8_t *p = dst;
    for (int64_t i = 0; i < n; i++) {
        uint16_t h = tnd_f32_to_fp16(src[i]);
        memcpy(p + 2 * i, &h, 2);
    }
}

static inline float bf16_at(const uint8_t *p) {
    uint16_t b;
    memcpy(&b, p, 2);
    return tnd_bf16_to_f32(b);
}

void tnd_dequantize_bf16_ref(const void *src, float *dst, int64_t n) {
    const uint8_t *p = src;
    for (int64_t i = 0; i < n; i++) dst[i] = bf16_at(p + 2 * i);
}

void tnd_quantize_bf16_ref(const float *src, void *dst, int64_t n) {
    uint8_t *p = dst;
    for (int64_t i = 0; i < n; i++) {
        uint16_t b = tnd_f32_to_bf16(src[i]);
        memcpy(p + 2 * i, &b, 2);
    }
}

/* Dot products with f32 activations, any n (no block constraint), products and sum in double. */
float tnd_vec_dot_f32_ref(const void *vx, const void *vy, int64_t n) {
    const uint8_t *x = vx;
    const float *y = vy;
    double sum = 0;
    for (int64_t i = 0; i < n; i++) sum += (double)tnd_block_f32(x + 4 * i) * y[i];
    return (float)sum;
}

float tnd_vec_dot_f16_ref(const void *vx, const void *vy, int64_t n) {
    const uint8_t *x = vx;
    const float *y = vy;
    double sum = 0;
    for (int64_t i = 0; i < n; i++) sum += (double)tnd_block_f16(x + 2 * i) * y[i];
    return (float)sum;
}

float tnd_vec_dot_bf16_ref(const void *vx, const void *vy, int64_t n) {
    const uint8_t *x = vx;
    const float *y = vy;
    double sum = 0;
    for (int64_t i = 0; i < n; i++) sum += (double)bf16_at(x + 2 * i) * y[i];
    return (float)sum;
}
