/* quant.h: the tensor element types: one traits table (sizes, names, reference kernels) indexed by tnd_type, and the
 * numeric contract of the kernels.
 *
 * Layouts: quant_blocks.h draws every block byte by byte; they are the blocks of GGUF files in the wild.
 *
 * Quantization (from_float) of the block types is the published reference algorithm operation for operation, so its
 * output is byte-identical to files made without an importance matrix (checked on every tensor of the fixture
 * models for Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K .. Q6_K, F16 and BF16). F16 and BF16 round to nearest even.
 * Dequantization (to_float) computes each layout's defining formula in float with the published operation order, so
 * decoded values are identical too.
 *
 * Dot products (vec_dot): x in the type, y in its vec_dot_type:
 *   F32, F16, BF16 -> F32 activations (no rounding of activations; products and sum in double)
 *   Q4_0, Q5_0, Q8_0 -> Q8_0;  Q4_1, Q5_1 -> Q8_1;  Q2_K .. Q6_K -> Q8_K
 * The reference multiplies integer levels per block and scales each block sum once, summing blocks in double: it
 * equals the double dot of the two decoded rows to within about 1e-8 of sum |x_i y_i| (tested bound 1e-6). The sums
 * of y's quants are counted from the quants (Q8_1's s and Q8_K's bsums are shortcuts for SIMD kernels; s is rounded to
 * fp16, so kernels that use it differ from the reference by up to 2^-10 of the Q4_1 / Q5_1 min term).
 *
 * Special values:
 *   - F32 / F16 / BF16 keep NaN (quieted) and infinities; F16 turns magnitudes that round past 65504 into infinities.
 *   - Block types: a block (32 elements, or a 256-element super-block for the K types and Q8_K) holding any NaN or
 *     infinity is stored with NaN scales and zero levels: every element of that block decodes to NaN, a dot product
 *     that touches it is NaN, and no other block changes.
 *   - Huge finite values never produce infinities or NaN: fp16 scales saturate at +-65504 instead of overflowing, so
 *     blocks whose scale would exceed that (for example |x| above ~5e5 for Q4_0, ~8e6 for Q8_0) decode clipped in
 *     magnitude but finite. All float-to-integer conversions are clamped, so no input reaches undefined behaviour.
 *   - All-zero blocks decode to exact zeros. Tiny blocks lose precision as their fp16 scales become subnormal and
 *     decode to zeros once the scales round to 0 (see the validity range of the bounds below).
 *
 * Error bounds: relative RMS error of a quantize -> dequantize round trip, sqrt(sum (y - x)^2 / sum x^2), checked by
 * tests/test_quant.c on rows of 1, 3, 7 and 33 blocks. "bound" covers gaussian, uniform and all-positive data (and
 * every tensor of the fixture models); "outliers" gaussian data where one element in 61 is 8 times larger and
 * dominates its block. A single block is the noisiest case and sets the bounds; "rows" is the worst measured over
 * rows of 33 blocks of gaussian / uniform / positive data, the figure to expect for real tensors.
 *
 *   type   rows     bound   outliers        type   rows     bound   outliers
 *   f16    2.3e-4   4.9e-4  4.9e-4          q5_K   0.037    0.049   0.064
 *   bf16   1.9e-3   3.9e-3  3.9e-3          q5_0   0.047    0.075   0.13
 *   q8_0   0.0060   0.011   0.017           q5_1   0.041    0.062   0.081
 *   q8_1   0.0060   0.011   0.017           q4_K   0.074    0.094   0.125
 *   q8_K   0.0075   0.011   0.035           q4_0   0.095    0.16    0.26
 *   q6_K   0.018    0.026   0.042           q4_1   0.083    0.13    0.15
 *   q3_K   0.156    0.2     0.29            q2_K   0.305    0.4     0.53
 *   f32    0 (exact)
 *
 * F16 and BF16 bounds are the per-element rounding limits (2^-11, 2^-8) for values in their normal range. The block
 * types' bounds are about 1.15 times the worst value measured over 400 random draws and hold for data whose standard deviation lies between
 * 1e-3 and 1e4 (tested at both ends). Below that range the fp16 super-block scales turn subnormal: Q6_K and Q5_K
 * degrade first (errors 0.10 and 0.06 at 1e-4; at 1e-5 Q6_K decodes to zeros). Above it the scales saturate: the
 * Q4_1 / Q5_1 minimum passes 65504 for deviations near 1e5. Both are properties of the formats, shared by every
 * implementation that writes these files. */
#ifndef TND_QUANT_QUANT_H
#define TND_QUANT_QUANT_H

#include "tandem.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TND_QK_K 256 /* super-block size of the K-quants */

/* Reference (scalar) kernels of one type. n is a count of elements and must be a multiple of block_size. Blocks may
 * sit at any address; float arrays must be float-aligned. */
typedef void (*tnd_to_float_fn)(const void *src, float *dst, int64_t n);
typedef void (*tnd_from_float_fn)(const float *src, void *dst, int64_t n);
/* Dot product of n elements: x in this type, y in the type's vec_dot_type. */
typedef float (*tnd_vec_dot_fn)(const void *x, const void *y, int64_t n);

typedef struct tnd_type_traits {
    const char *name;          /* as GGUF tools write it: "q4_K", "f16"; NULL = no such type */
    uint32_t block_size;       /* elements per block */
    uint32_t type_size;        /* bytes per block */
    bool quantized;            /* block-quantized (as opposed to plain scalars) */
    tnd_to_float_fn to_float;       /* NULL where not implemented */
    tnd_from_float_fn from_float;   /* NULL where not implemented */
    tnd_vec_dot_fn vec_dot;         /* NULL where not implemented */
    tnd_type vec_dot_type;          /* type the other operand of vec_dot is quantized to */
} tnd_type_traits;

/* Traits of `type`, or NULL if `type` is not a known type (out of range or a retired number). */
const tnd_type_traits *tnd_type_traits_of(tnd_type type);

/* Bytes of a row of n elements of `type`, or 0 if the type is unknown or n is not a multiple of its block size. */
size_t tnd_row_size(tnd_type type, int64_t n);

#endif
