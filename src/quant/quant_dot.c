/* quant_dot.c: reference dot products: both operands dequantized to float, a chunk at a time, and multiplied in
 * double. Slow and simple on purpose: it is the oracle the SIMD kernels are tested against. */
#include "quant/quant_ref.h"

enum { CHUNK = 256 }; /* a multiple of every block size */

static float dot_dequantized(tnd_type tx, tnd_type ty, const void *x, const void *y, int64_t n) {
    const tnd_type_traits *a = tnd_type_traits_of(tx), *b = tnd_type_traits_of(ty);
    float fx[CHUNK], fy[CHUNK];
    double sum = 0;
    for (int64_t i = 0; i < n; i += CHUNK) {
        int64_t m = n - i < CHUNK ? n - i : CHUNK;
        a->to_float((const uint8_t *)x + tnd_row_size(tx, i), fx, m);
        b->to_float((const uint8_t *)y + tnd_row_size(ty, i), fy, m);
        for (int64_t k = 0; k < m; k++) sum += (double)fx[k] * fy[k];
    }
    return (float)sum;
}

#define DEFINE_DOT(type, x_type, y_type)                                                                              \
    float tnd_vec_dot_##type##_ref(const void *x, const void *y, int64_t n) {                                         \
        return dot_dequantized(x_type, y_type, x, y, n);                                                              \
    }

DEFINE_DOT(f32, TND_TYPE_F32, TND_TYPE_F32)
DEFINE_DOT(f16, TND_TYPE_F16, TND_TYPE_F32)
DEFINE_DOT(bf16, TND_TYPE_BF16, TND_TYPE_F32)
DEFINE_DOT(q4_0, TND_TYPE_Q4_0, TND_TYPE_Q8_0)
DEFINE_DOT(q4_1, TND_TYPE_Q4_1, TND_TYPE_Q8_1)
DEFINE_DOT(q5_0, TND_TYPE_Q5_0, TND_TYPE_Q8_0)
DEFINE_DOT(q5_1, TND_TYPE_Q5_1, TND_TYPE_Q8_1)
DEFINE_DOT(q8_0, TND_TYPE_Q8_0, TND_TYPE_Q8_0)
DEFINE_DOT(q2_K, TND_TYPE_Q2_K, TND_TYPE_Q8_K)
DEFINE_DOT(q3_K, TND_TYPE_Q3_K, TND_TYPE_Q8_K)
DEFINE_DOT(q4_K, TND_TYPE_Q4_K, TND_TYPE_Q8_K)
DEFINE_DOT(q5_K, TND_TYPE_Q5_K, TND_TYPE_Q8_K)
DEFINE_DOT(q6_K, TND_TYPE_Q6_K, TND_TYPE_Q8_K)
