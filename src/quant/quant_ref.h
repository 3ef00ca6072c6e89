/* quant_ref.h: the scalar reference kernels of every tensor type (quant_float.c, quant_legacy.c, quant_k.c) and the
 * small numeric helpers they share. type_traits.c puts the kernels in the table; SIMD kernels
 * are tested against them. The numeric contract (rounding, NaN / Inf, error bounds) is in quant.h. */
#ifndef TND_QUANT_QUANT_REF_H
#define TND_QUANT_QUANT_REF_H

#include "core/fp16.h"
#include "quant/quant.h"
#include "quant/quant_blocks.h"

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

/* ------------------------------------------------------------------------------------------------------------
 * Block field access (blocks are byte arrays at any address)
 * ---------------------------------------------------------------------------------------------------------- */

static inline float tnd_block_f16(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return tnd_fp16_to_f32(h);
}

/* Stores f as fp16, saturating: magnitudes that would round past the largest half (65504) store 65504 with f's
 * sign, so huge finite inputs decode to large finite values instead of infinities. NaN stores a NaN. Values that
 * round to 65504 or below convert exactly as the plain IEEE conversion does. */
static inline void tnd_block_set_f16(uint8_t *p, float f) {
    if (f > 65504.0f) f = 65504.0f;
    if (f < -65504.0f) f = -65504.0f;
    uint16_t h = tnd_f32_to_fp16(f);
    memcpy(p, &h, 2);
}

static inline float tnd_block_f32(const uint8_t *p) {
    float f;
    memcpy(&f, p, 4);
    return f;
}

/* ------------------------------------------------------------------------------------------------------------
 * Rounding helpers: the conversions published quantizers use, defined for every float (NaN, huge) so that no input
 * reaches an undefined float-to-int conversion
 * ---------------------------------------------------------------------------------------------------------- */

/* Nearest integer, ties to even, by adding 1.5 * 2^23 and reading the mantissa (the K-quant reference rounding).
 * Defined for |f| <= 4194303; beyond that it saturates at +-4194303, and NaN gives 0. */
static inline int tnd_nearest_int(float f) {
    if (!(fabsf(f) <= 4194303.0f)) return f > 0 ? 4194303 : f < 0 ? -4194303 : 0;
    float v = f + 12582912.0f;
    int32_t i;
    memcpy(&i, &v, 4);
    return (i & 0x007fffff) - 0x00400000;
}

/* v truncated toward zero, then clamped to [lo, hi]; NaN gives lo. (For v > lo - 1 this is the C conversion.) */
static inline int tnd_trunc_clamp(float v, int lo, int hi) {
    if (!(v >= (float)lo)) return lo;
    if (v >= (float)hi) return hi;
    return (int)v;
}

/* v rounded half away from zero (roundf), clamped to [lo, hi]; NaN gives 0. */
static inline int tnd_round_clamp(float v, int lo, int hi) {
    if (v != v) return 0;
    float r = roundf(v);
    return r < (float)lo ? lo : r > (float)hi ? hi : (int)r;
}

static inline int tnd_clamp_int(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

/* True when every one of the n floats is finite (no NaN, no infinity). */
static inline bool tnd_all_finite(const float *x, int n) {
    uint32_t special = 0;
    for (int i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &x[i], 4);
        special |= (u & 0x7f800000u) == 0x7f800000u;
    }
    return !special;
}

/* The fp16 NaN that marks a block made from non-finite input (see quant.h). */
static inline void tnd_block_set_nan(uint8_t *p) {
    uint16_t h = 0x7e00;
    memcpy(p, &h, 2);
}

/* ------------------------------------------------------------------------------------------------------------
 * The reference kernels
 * ---------------------------------------------------------------------------------------------------------- */

#define TND_DECLARE_REF(type)                                                                                         \
    void tnd_dequantize_##type##_ref(const void *src, float *dst, int64_t n);                                         \
    void tnd_quantize_##type##_ref(const float *src, void *dst, int64_t n);

TND_DECLARE_REF(f32)
TND_DECLARE_REF(f16)
TND_DECLARE_REF(bf16)
TND_DECLARE_REF(q4_0)
TND_DECLARE_REF(q4_1)
TND_DECLARE_REF(q5_0)
TND_DECLARE_REF(q5_1)
TND_DECLARE_REF(q8_0)
TND_DECLARE_REF(q8_1)
TND_DECLARE_REF(q2_K)
TND_DECLARE_REF(q3_K)
TND_DECLARE_REF(q4_K)
TND_DECLARE_REF(q5_K)
TND_DECLARE_REF(q6_K)
TND_DECLARE_REF(q8_K)

/* Reference dot products: x of the named type, y of its vec_dot_type (see type_traits.c and quant.h). */
#define TND_DECLARE_DOT(type) float tnd_vec_dot_##type##_ref(const void *x, const void *y, int64_t n);
TND_DECLARE_DOT(f32)
TND_DECLARE_DOT(f16)
TND_DECLARE_DOT(bf16)
TND_DECLARE_DOT(q4_0)
TND_DECLARE_DOT(q4_1)
TND_DECLARE_DOT(q5_0)
TND_DECLARE_DOT(q5_1)
TND_DECLARE_DOT(q8_0)
TND_DECLARE_DOT(q2_K)
TND_DECLARE_DOT(q3_K)
TND_DECLARE_DOT(q4_K)
TND_DECLARE_DOT(q5_K)
TND_DECLARE_DOT(q6_K)

/* The stored level (the unsigned bits: Q2_K 0..3, Q3_K 0..7, Q4_K 0..15, Q5_K 0..31, Q6_K 0..63) of each of the 256
 * elements of one block of a K type, for kernels that lay the bits out their own way. */
void tnd_k_block_levels(tnd_type type, const void *block, uint8_t levels[TND_QK_SUPER]);

#endif
