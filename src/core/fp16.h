/* fp16.h: IEEE half and bfloat16 conversions (scalar, exact, NaN/Inf preserving). */
#ifndef TND_CORE_FP16_H
#define TND_CORE_FP16_H

#include <stdint.h>
#include <string.h>

static inline uint32_t tnd_f32_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static inline float tnd_f32_from_bits(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

/* Half -> float. Exact for every half value, subnormals included. */
static inline float tnd_fp16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t man = h & 0x3ff;
    if (exp == 0x1f) return tnd_f32_from_bits(sign | 0x7f800000u | (man << 13)); /* inf / nan */
    if (exp == 0) {
        if (man == 0) return tnd_f32_from_bits(sign);
        /* subnormal: value = man * 2^-24 */
        float v = (float)man * (1.0f / 16777216.0f);
        return sign ? -v : v;
    }
    return tnd_f32_from_bits(sign | ((exp + 112) << 23) | (man << 13));
}

/* Float -> half, round to nearest even; overflow gives inf, NaN stays NaN. */
static inline uint16_t tnd_f32_to_fp16(float f) {
    uint32_t x = tnd_f32_bits(f);
    uint32_t sign = (x >> 16) & 0x8000;
    uint32_t ax = x & 0x7fffffffu;
    if (ax > 0x7f800000u) return (uint16_t)(sign | 0x7e00 | ((ax >> 13) & 0x3ff)); /* nan, keep it quiet */
    if (ax >= 0x477ff000u) return (uint16_t)(sign | 0x7c00);                      /* rounds past 65504: inf */
    if (ax < 0x38800000u) {
        /* result is subnormal or zero: scale so that rounding of the float addition does the work */
        float a = tnd_f32_from_bits(ax) * 16777216.0f; /* value in units of 2^-24 */
        uint32_t m = (uint32_t)a;
        float frac = a - (float)m;
        if (frac > 0.5f || (frac == 0.5f && (m & 1))) m++;
        return (uint16_t)(sign | m);
    }
    uint32_t mant = ax & 0x7fffff;
    uint32_t exp = (ax >> 23) - 112;
    uint32_t h = (exp << 10) | (mant >> 13);
    uint32_t rest = mant & 0x1fff;
    if (rest > 0x1000 || (rest == 0x1000 && (h & 1))) h++;
    return (uint16_t)(sign | h);
}

/* bf16 is the top half of a float32. */
static inline float tnd_bf16_to_f32(uint16_t b) { return tnd_f32_from_bits((uint32_t)b << 16); }

/* Float -> bf16, round to nearest even; NaN stays NaN. */
static inline uint16_t tnd_f32_to_bf16(float f) {
    uint32_t x = tnd_f32_bits(f);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40);
    return (uint16_t)((x + 0x7fff + ((x >> 16) & 1)) >> 16);
}

#endif
