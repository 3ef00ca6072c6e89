/* quant_float.c: the plain floating-point element types.
 *
 *   f32:  4 bytes, IEEE binary32, little-endian
 *   f16:  2 bytes, IEEE binary16: sign | 5-bit exponent | 10-bit mantissa
 *   bf16: 2 bytes, the upper half of a binary32: sign | 8-bit exponent | 7-bit mantissa
 *
 * Conversions round to nearest even; NaN stays NaN, values beyond the range become infinities. */
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
        uint16_t h = tnd_f32_to_fp16(src[i]); /* elements overflow to infinity, as IEEE conversion does */
        memcpy(p + 2 * i, &h, 2);
    }
}

void tnd_dequantize_bf16_ref(const void *src, float *dst, int64_t n) {
    const uint8_t *p = src;
    for (int64_t i = 0; i < n; i++) {
        uint16_t b;
        memcpy(&b, p + 2 * i, 2);
        dst[i] = tnd_bf16_to_f32(b);
    }
}

void tnd_quantize_bf16_ref(const float *src, void *dst, int64_t n) {
    uint8_t *p = dst;
    for (int64_t i = 0; i < n; i++) {
        uint16_t b = tnd_f32_to_bf16(src[i]);
        memcpy(p + 2 * i, &b, 2);
    }
}
