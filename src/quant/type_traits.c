/* type_traits.c: the traits table of every tensor type GGUF files use. Sizes are those of the on-disk blocks (the
 * structs of quant_blocks.h where tandem has kernels; their sizes are pinned there). */
#include "quant/quant.h"

#include "quant/quant_ref.h"

#include <stddef.h>

/* Types without kernels can still be parsed, listed and skipped. */
#define KERNELS(t, dot_type) .to_float = tnd_dequantize_##t##_ref, .from_float = tnd_quantize_##t##_ref,               \
                             .vec_dot = tnd_vec_dot_##t##_ref, .vec_dot_type = dot_type
#define CONVERSIONS(t) .to_float = tnd_dequantize_##t##_ref, .from_float = tnd_quantize_##t##_ref
static const tnd_type_traits traits[TND_TYPE_COUNT] = {
    [TND_TYPE_F32] = {.name = "f32", .block_size = 1, .type_size = 4,
                     KERNELS(f32, TND_TYPE_F32)},
    [TND_TYPE_F16] = {.name = "f16", .block_size = 1, .type_size = 2,
                     KERNELS(f16, TND_TYPE_F32)},
    [TND_TYPE_Q4_0] = {.name = "q4_0", .block_size = 32, .type_size = sizeof(tnd_block_q4_0), .quantized = true,
                     KERNELS(q4_0, TND_TYPE_Q8_0)},
    [TND_TYPE_Q4_1] = {.name = "q4_1", .block_size = 32, .type_size = sizeof(tnd_block_q4_1), .quantized = true,
                     KERNELS(q4_1, TND_TYPE_Q8_1)},
    [TND_TYPE_Q5_0] = {.name = "q5_0", .block_size = 32, .type_size = sizeof(tnd_block_q5_0), .quantized = true,
                     KERNELS(q5_0, TND_TYPE_Q8_0)},
    [TND_TYPE_Q5_1] = {.name = "q5_1", .block_size = 32, .type_size = sizeof(tnd_block_q5_1), .quantized = true,
                     KERNELS(q5_1, TND_TYPE_Q8_1)},
    [TND_TYPE_Q8_0] = {.name = "q8_0", .block_size = 32, .type_size = sizeof(tnd_block_q8_0), .quantized = true,
                     KERNELS(q8_0, TND_TYPE_Q8_0)},
    [TND_TYPE_Q8_1] = {.name = "q8_1", .block_size = 32, .type_size = sizeof(tnd_block_q8_1), .quantized = true,
                     CONVERSIONS(q8_1)},
    [TND_TYPE_Q2_K] = {.name = "q2_K", .block_size = 256, .type_size = sizeof(tnd_block_q2_K), .quantized = true,
                     KERNELS(q2_K, TND_TYPE_Q8_K)},
    [TND_TYPE_Q3_K] = {.name = "q3_K", .block_size = 256, .type_size = sizeof(tnd_block_q3_K), .quantized = true,
                     KERNELS(q3_K, TND_TYPE_Q8_K)},
    [TND_TYPE_Q4_K] = {.name = "q4_K", .block_size = 256, .type_size = sizeof(tnd_block_q4_K), .quantized = true,
                     KERNELS(q4_K, TND_TYPE_Q8_K)},
    [TND_TYPE_Q5_K] = {.name = "q5_K", .block_size = 256, .type_size = sizeof(tnd_block_q5_K), .quantized = true,
                     KERNELS(q5_K, TND_TYPE_Q8_K)},
    [TND_TYPE_Q6_K] = {.name = "q6_K", .block_size = 256, .type_size = sizeof(tnd_block_q6_K), .quantized = true,
                     KERNELS(q6_K, TND_TYPE_Q8_K)},
    [TND_TYPE_Q8_K] = {.name = "q8_K", .block_size = 256, .type_size = sizeof(tnd_block_q8_K), .quantized = true,
                     CONVERSIONS(q8_K)},
    [TND_TYPE_IQ2_XXS] = {.name = "iq2_xxs", .block_size = 256, .type_size = 66, .quantized = true},
    [TND_TYPE_IQ2_XS] = {.name = "iq2_xs", .block_size = 256, .type_size = 74, .quantized = true},
    [TND_TYPE_IQ3_XXS] = {.name = "iq3_xxs", .block_size = 256, .type_size = 98, .quantized = true},
    [TND_TYPE_IQ1_S] = {.name = "iq1_s", .block_size = 256, .type_size = 50, .quantized = true},
    [TND_TYPE_IQ4_NL] = {.name = "iq4_nl", .block_size = 32, .type_size = 18, .quantized = true},
    [TND_TYPE_IQ3_S] = {.name = "iq3_s", .block_size = 256, .type_size = 110, .quantized = true},
    [TND_TYPE_IQ2_S] = {.name = "iq2_s", .block_size = 256, .type_size = 82, .quantized = true},
    [TND_TYPE_IQ4_XS] = {.name = "iq4_xs", .block_size = 256, .type_size = 136, .quantized = true},
    [TND_TYPE_I8] = {.name = "i8", .block_size = 1, .type_size = 1},
    [TND_TYPE_I16] = {.name = "i16", .block_size = 1, .type_size = 2},
    [TND_TYPE_I32] = {.name = "i32", .block_size = 1, .type_size = 4},
    [TND_TYPE_I64] = {.name = "i64", .block_size = 1, .type_size = 8},
    [TND_TYPE_F64] = {.name = "f64", .block_size = 1, .type_size = 8},
    [TND_TYPE_IQ1_M] = {.name = "iq1_m", .block_size = 256, .type_size = 56, .quantized = true},
    [TND_TYPE_BF16] = {.name = "bf16", .block_size = 1, .type_size = 2,
                     KERNELS(bf16, TND_TYPE_F32)},
    [TND_TYPE_TQ1_0] = {.name = "tq1_0", .block_size = 256, .type_size = 54, .quantized = true},
    [TND_TYPE_TQ2_0] = {.name = "tq2_0", .block_size = 256, .type_size = 66, .quantized = true},
    [TND_TYPE_MXFP4] = {.name = "mxfp4", .block_size = 32, .type_size = 17, .quantized = true},
    [TND_TYPE_NVFP4] = {.name = "nvfp4", .block_size = 64, .type_size = 36, .quantized = true},
    [TND_TYPE_Q1_0] = {.name = "q1_0", .block_size = 128, .type_size = 18, .quantized = true},
    [TND_TYPE_Q2_0] = {.name = "q2_0", .block_size = 64, .type_size = 18, .quantized = true},
};

const tnd_type_traits *tnd_type_traits_of(tnd_type type) {
    if ((unsigned)type >= TND_TYPE_COUNT || !traits[type].name) return NULL;
    return &traits[type];
}

const char *tnd_type_name(tnd_type type) {
    const tnd_type_traits *t = tnd_type_traits_of(type);
    return t ? t->name : NULL;
}

size_t tnd_row_size(tnd_type type, int64_t n) {
    const tnd_type_traits *t = tnd_type_traits_of(type);
    if (!t || n < 0 || n % t->block_size) return 0;
    return (size_t)(n / t->block_size) * t->type_size;
}
