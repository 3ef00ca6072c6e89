/* quant.h: the tensor element types: one traits table (sizes, names, reference kernels) indexed by tnd_type. */
#ifndef TND_QUANT_QUANT_H
#define TND_QUANT_QUANT_H

#include "tandem.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TND_QK_K 256 /* super-block size of the K-quants */

/* Reference (scalar) kernels of one type. n is a count of elements and must be a multiple of block_size. */
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
