/* quant_ref.h: the scalar reference kernels of every tensor type (defined in quant_float.c, quant_legacy.c,
 * quant_k.c) and the helpers they share. type_traits.c puts them in the table.
 *
 * Numbers: dequantize is exact (it computes the layout's defining formula in float). Quantize maps each block to the
 * nearest representable values under per-block scales chosen from the block's range; NaN inputs are not supported
 * (their block decodes to NaN or garbage, never out of bounds, and other blocks are unaffected); block scales
 * saturate at the largest fp16, so huge inputs decode to large finite values.
 * vec_dot of the reference is the float dot of both dequantized operands: the oracle for SIMD kernels, which compute
 * the same sum with integer products. */
#ifndef TND_QUANT_QUANT_REF_H
#define TND_QUANT_QUANT_REF_H

#include "core/fp16.h"
#include "quant/quant.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

/* Reads / writes a little-endian fp16 inside a block (blocks are not naturally aligned in files). */
static inline float tnd_block_f16(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return tnd_fp16_to_f32(h);
}
/* Block scales saturate at the largest half (65504) instead of becoming infinite, so a block with huge values
 * decodes to large finite numbers rather than inf * 0 = NaN. */
static inline void tnd_block_set_f16(uint8_t *p, float f) {
    if (f > 65504.0f) f = 65504.0f;
    if (f < -65504.0f) f = -65504.0f;
    uint16_t h = tnd_f32_to_fp16(f);
    memcpy(p, &h, 2);
}
static inline int tnd_nearest_int(float f) { return (int)lrintf(f); }

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

/* Reference dot products: x of the named type, y of its vec_dot_type (see type_traits.c). */
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

#endif
