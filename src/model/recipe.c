/* recipe.c: file type names and the mixed-precision recipes: a base type per file type, and bumps for the output
 * head, attn_v, ffn_down and attn_output following the rules GGUF files in the wild were made with. */
#include "model/recipe.h"

#include "core/error.h"
#include "quant/quant.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef struct ftype_row {
    tnd_ftype ftype;
    const char *name;
    tnd_type base;
} ftype_row;

static const ftype_row ftypes[] = {
    {TND_FTYPE_F32, "F32", TND_TYPE_F32},         {TND_FTYPE_F16, "F16", TND_TYPE_F16},
    {TND_FTYPE_BF16, "BF16", TND_TYPE_BF16},      {TND_FTYPE_Q8_0, "Q8_0", TND_TYPE_Q8_0},
    {TND_FTYPE_Q4_0, "Q4_0", TND_TYPE_Q4_0},      {TND_FTYPE_Q4_1, "Q4_1", TND_TYPE_Q4_1},
    {TND_FTYPE_Q5_0, "Q5_0", TND_TYPE_Q5_0},      {TND_FTYPE_Q5_1, "Q5_1", TND_TYPE_Q5_1},
    {TND_FTYPE_Q2_K, "Q2_K", TND_TYPE_Q2_K},      {TND_FTYPE_Q3_K_S, "Q3_K_S", TND_TYPE_Q3_K},
    {TND_FTYPE_Q3_K_M, "Q3_K_M", TND_TYPE_Q3_K},  {TND_FTYPE_Q3_K_L, "Q3_K_L", TND_TYPE_Q3_K},
    {TND_FTYPE_Q4_K_S, "Q4_K_S", TND_TYPE_Q4_K},  {TND_FTYPE_Q4_K_M, "Q4_K_M", TND_TYPE_Q4_K},
    {TND_FTYPE_Q5_K_S, "Q5_K_S", TND_TYPE_Q5_K},  {TND_FTYPE_Q5_K_M, "Q5_K_M", TND_TYPE_Q5_K},
    {TND_FTYPE_Q6_K, "Q6_K", TND_TYPE_Q6_K},
};
enum { N_FTYPES = sizeof ftypes / sizeof ftypes[0] };

static const ftype_row *row_of(tnd_ftype f) {
    for (int i = 0; i < N_FTYPES; i++)
        if (ftypes[i].ftype == f) return &ftypes[i];
    return NULL;
}

tnd_status tnd_ftype_parse(const char *name, tnd_ftype *out) {
    for (int i = 0; name && i < N_FTYPES; i++) {
        if (!strcasecmp(name, ftypes[i].name)) {
            *out = ftypes[i].ftype;
            return TND_OK;
        }
    }
    char known[256] = "";
    for (int i = 0; i < N_FTYPES; i++)
        snprintf(known + strlen(known), sizeof known - strlen(known), "%s%s", i ? " " : "", ftypes[i].name);
    return tnd_fail(TND_ERR_INVALID_ARGUMENT, "unknown file type '%s' (known: %s)", name ? name : "", known);
}

const char *tnd_ftype_name(tnd_ftype f) {
    const ftype_row *r = row_of(f);
    return r ? r->name : "unknown";
}

/* ------------------------------------------------------------------------------------------------------------
 * Per-tensor rules
 * ---------------------------------------------------------------------------------------------------------- */

/* The layers that get more bits in the _M recipes: the first and last eighth, and every third in between. */
static bool more_bits(int layer, int n_layer) {
    return layer < n_layer / 8 || layer >= 7 * n_layer / 8 || (layer - n_layer / 8) % 3 == 2;
}

static bool ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && !strcmp(s + n - m, suffix);
}

/* Layer index of "blk.N.…", or -1. */
static int layer_of(const char *name) {
    if (strncmp(name, "blk.", 4)) return -1;
    return atoi(name + 4);
}

static tnd_type attn_v_type(tnd_ftype f, tnd_type t, int layer, const tnd_recipe_model *m) {
    switch (f) {
    case TND_FTYPE_Q2_K: return m->n_gqa >= 4 ? TND_TYPE_Q4_K : TND_TYPE_Q3_K;
    case TND_FTYPE_Q3_K_M: return layer < 2 ? TND_TYPE_Q5_K : TND_TYPE_Q4_K;
    case TND_FTYPE_Q3_K_L: return TND_TYPE_Q5_K;
    case TND_FTYPE_Q4_K_M:
    case TND_FTYPE_Q5_K_M: return more_bits(layer, m->n_layer) ? TND_TYPE_Q6_K : t;
    case TND_FTYPE_Q4_K_S: return layer < 4 ? TND_TYPE_Q5_K : t;
    default: return t;
    }
}

static tnd_type ffn_down_type(tnd_ftype f, tnd_type t, int layer, int n_layer) {
    switch (f) {
    case TND_FTYPE_Q2_K: return TND_TYPE_Q3_K;
    case TND_FTYPE_Q3_K_M: return layer < n_layer / 16 ? TND_TYPE_Q5_K : TND_TYPE_Q4_K;
    case TND_FTYPE_Q3_K_L: return TND_TYPE_Q5_K;
    case TND_FTYPE_Q4_K_M:
    case TND_FTYPE_Q5_K_M: return more_bits(layer, n_layer) ? TND_TYPE_Q6_K : t;
    case TND_FTYPE_Q4_K_S: return layer < n_layer / 8 ? TND_TYPE_Q5_K : t;
    default: return t;
    }
}

static tnd_type attn_output_type(tnd_ftype f, tnd_type t) {
    switch (f) {
    case TND_FTYPE_Q2_K: return TND_TYPE_Q3_K;
    case TND_FTYPE_Q3_K_M: return TND_TYPE_Q4_K;
    case TND_FTYPE_Q3_K_L: return TND_TYPE_Q5_K;
    default: return t;
    }
}

/* A type whose block divides the row length: K types step down to 32-element blocks of similar precision. */
static tnd_type fit_row(tnd_type t, int64_t ne0) {
    if (ne0 % tnd_type_traits_of(t)->block_size == 0) return t;
    switch (t) {
    case TND_TYPE_Q2_K: case TND_TYPE_Q3_K: t = TND_TYPE_Q4_0; break;
    case TND_TYPE_Q4_K: t = TND_TYPE_Q5_0; break;
    case TND_TYPE_Q5_K: t = TND_TYPE_Q5_1; break;
    case TND_TYPE_Q6_K: t = TND_TYPE_Q8_0; break;
    default: break;
    }
    return ne0 % tnd_type_traits_of(t)->block_size == 0 ? t : TND_TYPE_F16;
}

tnd_type tnd_recipe_tensor_type(tnd_ftype ftype, const tnd_recipe_model *m, const char *name, int64_t ne0,
                                uint32_t n_dims) {
    const ftype_row *r = row_of(ftype);
    if (!r || n_dims < 2 || strstr(name, "ffn_gate_inp")) return TND_TYPE_F32; /* vectors and routers stay exact */
    tnd_type t = r->base;
    if (!tnd_type_traits_of(t)->quantized) return t;
    bool output = !strcmp(name, "output.weight") || (m->tied_output && !strcmp(name, "token_embd.weight"));
    int layer = layer_of(name);
    if (output) {
        if (ne0 % TND_QK_K) t = TND_TYPE_Q8_0;
        else if (t != TND_TYPE_Q8_0) t = TND_TYPE_Q6_K;
    } else if (ends_with(name, "attn_v.weight")) {
        t = attn_v_type(ftype, t, layer, m);
    } else if (strstr(name, "ffn_down")) { /* a dense block's, the experts' and a shared expert's */
        t = ffn_down_type(ftype, t, layer, m->n_layer);
    } else if (ends_with(name, "attn_output.weight")) {
        t = attn_output_type(ftype, t);
    }
    return fit_row(t, ne0);
}
