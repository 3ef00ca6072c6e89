/* recipe.h: file types (the "Q4_K_M" a user asks for) and the per-tensor type each one gives: the usual mixed
 * recipes, where sensitive tensors (output head, some attn_v / ffn_down layers) get more bits. */
#ifndef TND_MODEL_RECIPE_H
#define TND_MODEL_RECIPE_H

#include "tandem.h"

#include <stdint.h>

/* Values are the GGUF `general.file_type` numbers. */
typedef enum tnd_ftype {
    TND_FTYPE_F32 = 0,
    TND_FTYPE_F16 = 1,
    TND_FTYPE_Q4_0 = 2,
    TND_FTYPE_Q4_1 = 3,
    TND_FTYPE_Q8_0 = 7,
    TND_FTYPE_Q5_0 = 8,
    TND_FTYPE_Q5_1 = 9,
    TND_FTYPE_Q2_K = 10,
    TND_FTYPE_Q3_K_S = 11,
    TND_FTYPE_Q3_K_M = 12,
    TND_FTYPE_Q3_K_L = 13,
    TND_FTYPE_Q4_K_S = 14,
    TND_FTYPE_Q4_K_M = 15,
    TND_FTYPE_Q5_K_S = 16,
    TND_FTYPE_Q5_K_M = 17,
    TND_FTYPE_Q6_K = 18,
    TND_FTYPE_BF16 = 32
} tnd_ftype;

/* Parses a file type name, case-insensitive ("q4_k_m", "Q8_0", "f16"). TND_ERR_INVALID_ARGUMENT lists the names. */
tnd_status tnd_ftype_parse(const char *name, tnd_ftype *out);

/* Canonical upper-case name ("Q4_K_M"). */
const char *tnd_ftype_name(tnd_ftype ftype);

/* What a model's tensors are, for the recipe. */
typedef struct tnd_recipe_model {
    int32_t n_layer;
    int32_t n_gqa;      /* n_head / n_head_kv */
    int tied_output;    /* the embedding doubles as the output head */
} tnd_recipe_model;

/* Type for tensor `name` with rows of ne0 elements and n_dims dimensions. One-dimensional tensors (norms, biases)
 * stay F32. When the recipe's type does not fit the row length, a compatible type is chosen (K types fall back to
 * legacy blocks of 32, then to F16). */
tnd_type tnd_recipe_tensor_type(tnd_ftype ftype, const tnd_recipe_model *model, const char *name, int64_t ne0,
                                uint32_t n_dims);

#endif
