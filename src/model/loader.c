/* loader.c: binds a GGUF file to an architecture: reads `<arch>.*` hyper-parameters, finds every tensor by its
 * standard name, checks types and shapes, and converts the small vectors (norms, biases) to float. */
#include "model/arch.h"

#include "core/alloc.h"
#include "core/error.h"
#include "quant/quant.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static const tnd_arch *const architectures[] = {&tnd_arch_llama, &tnd_arch_qwen2, &tnd_arch_qwen3,
                                                &tnd_arch_qwen2moe, &tnd_arch_qwen3moe, &tnd_arch_olmoe};
enum { N_ARCH = sizeof architectures / sizeof architectures[0] };

/* ------------------------------------------------------------------------------------------------------------
 * Hyper-parameters
 * ---------------------------------------------------------------------------------------------------------- */

/* Reads `<arch>.<suffix>` as an int in [lo, hi]; absent keys take `def` (def < 0: required). */
static tnd_status arch_int(const tnd_gguf *g, const char *arch, const char *suffix, int64_t def, int64_t lo,
                           int64_t hi, int32_t *out) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    int64_t v = def;
    tnd_status st = tnd_gguf_get_int(g, key, &v);
    if (st == TND_ERR_NOT_FOUND && def >= 0) st = TND_OK;
    if (st) return st;
    if (v < lo || v > hi)
        return tnd_fail(TND_ERR_FORMAT, "%s = %lld is outside the supported range [%lld, %lld]", key, (long long)v,
                        (long long)lo, (long long)hi);
    *out = (int32_t)v;
    return TND_OK;
}

static tnd_status arch_float(const tnd_gguf *g, const char *arch, const char *suffix, double def, float *out) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    double v = def;
    tnd_status st = tnd_gguf_get_float(g, key, &v);
    if (st == TND_ERR_NOT_FOUND) st = TND_OK;
    if (st) return st;
    if (!isfinite(v) || v <= 0) return tnd_fail(TND_ERR_FORMAT, "%s = %g must be a positive number", key, v);
    *out = (float)v;
    return TND_OK;
}

enum { MAX_EXPERTS = 1024 };

/* expert_count and the widths of a mixture-of-experts block: required where the architecture always has experts,
 * optional for llama (Mixtral). */
static tnd_status read_experts(const tnd_gguf *g, const tnd_arch *arch, tnd_hparams *hp) {
    const char *a = arch->name;
    tnd_status st = arch_int(g, a, "expert_count", arch->experts ? -1 : 0, arch->experts ? 1 : 0, MAX_EXPERTS,
                             &hp->n_expert);
    if (st || !hp->n_expert) return st;
    if (hp->n_expert < 2)
        return tnd_fail(TND_ERR_FORMAT, "%s.expert_count = %d: a mixture of experts needs at least 2", a, hp->n_expert);
    if ((st = arch_int(g, a, "expert_used_count", -1, 1, hp->n_expert, &hp->n_expert_used)) ||
        (st = arch_int(g, a, "expert_feed_forward_length", hp->n_ff, 1, 1 << 20, &hp->n_ff_exp)))
        return st;
    if (arch->shared_expert &&
        (st = arch_int(g, a, "expert_shared_feed_forward_length", hp->n_ff, 1, 1 << 20, &hp->n_ff_shexp)))
        return st;
    int32_t norm = 0; /* a bool in files that have it */
    st = arch_int(g, a, "expert_weights_norm", arch->normalize_experts, 0, 1, &norm);
    hp->expert_weights_norm = norm != 0;
    return st;
}

static tnd_status read_hparams(const tnd_gguf *g, const char *a, tnd_hparams *hp) {
    const int64_t big = 1 << 20;
    tnd_status st;
    if ((st = arch_int(g, a, "embedding_length", -1, 1, big, &hp->n_embd)) ||
        (st = arch_int(g, a, "block_count", -1, 1, 4096, &hp->n_layer)) ||
        (st = arch_int(g, a, "feed_forward_length", -1, 1, big, &hp->n_ff)) ||
        (st = arch_int(g, a, "attention.head_count", -1, 1, 4096, &hp->n_head)) ||
        (st = arch_int(g, a, "attention.head_count_kv", hp->n_head, 1, hp->n_head, &hp->n_head_kv)) ||
        (st = arch_int(g, a, "context_length", 2048, 1, 1 << 24, &hp->n_ctx_train)) ||
        (st = arch_int(g, a, "attention.key_length", hp->n_embd / hp->n_head, 1, 4096, &hp->head_dim)) ||
        (st = arch_int(g, a, "rope.dimension_count", hp->head_dim, 2, hp->head_dim, &hp->n_rot)) ||
        (st = arch_float(g, a, "attention.layer_norm_rms_epsilon", 1e-5, &hp->rms_eps)) ||
        (st = arch_float(g, a, "rope.freq_base", 10000.0, &hp->rope_base)))
        return st;
    if (hp->n_head % hp->n_head_kv)
        return tnd_fail(TND_ERR_FORMAT, "%s: head_count %d is not a multiple of head_count_kv %d", a, hp->n_head,
                        hp->n_head_kv);
    if (hp->n_rot % 2) return tnd_fail(TND_ERR_FORMAT, "%s.rope.dimension_count %d is odd", a, hp->n_rot);
    int32_t value_length = hp->head_dim;
    if ((st = arch_int(g, a, "attention.value_length", hp->head_dim, 1, 4096, &value_length))) return st;
    if (value_length != hp->head_dim)
        return tnd_fail(TND_ERR_UNSUPPORTED, "%s: value_length %d differs from key_length %d", a, value_length,
                        hp->head_dim);
    hp->rope_scale = 1.0f;
    char key[128];
    snprintf(key, sizeof key, "%s.rope.scaling.type", a);
    tnd_gguf_str type;
    if (tnd_gguf_get_str(g, key, &type) == TND_OK && !(type.len == 4 && !memcmp(type.ptr, "none", 4))) {
        if (!(type.len == 6 && !memcmp(type.ptr, "linear", 6)))
            return tnd_fail(TND_ERR_UNSUPPORTED, "%s '%.*s' is not supported (only linear)", key, (int)type.len,
                            type.ptr);
        float factor = 1.0f;
        if ((st = arch_float(g, a, "rope.scaling.factor", 1.0, &factor))) return st;
        hp->rope_scale = 1.0f / factor;
    }
    return TND_OK;
}

/* ------------------------------------------------------------------------------------------------------------
 * Tensors
 * ---------------------------------------------------------------------------------------------------------- */

typedef struct binder {
    const tnd_gguf *g;
    float *next; /* bump pointer into the float vectors allocation */
} binder;

static const tnd_gguf_tensor *find(const tnd_gguf *g, const char *name, bool required, tnd_status *st) {
    int64_t i = tnd_gguf_find_tensor(g, name);
    if (i < 0) {
        *st = required ? tnd_fail(TND_ERR_FORMAT, "tensor '%s' is missing", name) : TND_OK;
        return NULL;
    }
    return &g->tensors[i];
}

static tnd_status check_shape(const tnd_gguf_tensor *t, int64_t ne0, int64_t ne1, int64_t ne2) {
    bool ok = t->ne[0] == ne0 && t->ne[1] == ne1 && t->ne[2] == ne2 && t->ne[3] == 1;
    if (!ok && ne2 > 1)
        return tnd_fail(TND_ERR_FORMAT, "tensor '%s' has shape [%lld, %lld, %lld, %lld], expected [%lld, %lld, %lld] "
                        "(%lld experts)", t->name, (long long)t->ne[0], (long long)t->ne[1], (long long)t->ne[2],
                        (long long)t->ne[3], (long long)ne0, (long long)ne1, (long long)ne2, (long long)ne2);
    if (!ok)
        return tnd_fail(TND_ERR_FORMAT, "tensor '%s' has shape [%lld, %lld, %lld, %lld], expected [%lld, %lld]",
                        t->name, (long long)t->ne[0], (long long)t->ne[1], (long long)t->ne[2], (long long)t->ne[3],
                        (long long)ne0, (long long)ne1);
    const tnd_type_traits *tr = tnd_type_traits_of(t->type);
    if (!tr->to_float)
        return tnd_fail(TND_ERR_UNSUPPORTED, "tensor '%s' has type %s, which tandem cannot compute with yet",
                        t->name, tr->name);
    return TND_OK;
}

/* Binds a matrix [ne0, ne1], or ne2 > 1 experts [ne0, ne1, ne2] stacked along the rows; optional (required = false)
 * matrices that are absent leave *out zeroed. */
static tnd_status bind_matrix(binder *b, const char *name, int64_t ne0, int64_t ne1, int64_t ne2, bool required,
                              tnd_weight *out) {
    tnd_status st = TND_OK;
    const tnd_gguf_tensor *t = find(b->g, name, required, &st);
    if (!t) return st;
    if ((st = check_shape(t, ne0, ne1, ne2))) return st;
    *out = (tnd_weight){.type = t->type, .n_cols = ne0, .n_rows = ne1 * ne2, .row_bytes = tnd_row_size(t->type, ne0),
                        .data = t->data, .n_experts = ne2 > 1 ? (int32_t)ne2 : 0};
    return TND_OK;
}

/* Binds a vector of n elements converted to float into the bump allocation; absent optional vectors give NULL. */
static tnd_status bind_vector(binder *b, const char *name, int64_t n, bool required, float **out) {
    tnd_status st = TND_OK;
    *out = NULL;
    const tnd_gguf_tensor *t = find(b->g, name, required, &st);
    if (!t) return st;
    if ((st = check_shape(t, n, 1, 1))) return st;
    tnd_type_traits_of(t->type)->to_float(t->data, b->next, n);
    *out = b->next;
    b->next += n;
    return TND_OK;
}

/* Binds layer il's tensors (the model's rows of tnd_layer_tensors). */
static tnd_status bind_layer(binder *b, const tnd_arch *arch, const tnd_hparams *hp, int il, tnd_layer *l) {
    char name[96];
    tnd_status st = TND_OK;
    for (size_t i = 0; i < tnd_layer_tensor_count && !st; i++) {
        const tnd_layer_tensor *t = &tnd_layer_tensors[i];
        if (!tnd_model_has(arch, hp, t->needs)) continue;
        snprintf(name, sizeof name, "blk.%d.%s", il, t->name);
        void *field = (char *)l + t->host;
        st = t->matrix ? bind_matrix(b, name, tnd_dim_size(hp, t->ne0), tnd_dim_size(hp, t->ne1),
                                     tnd_dim_size(hp, t->ne2), true, field)
                       : bind_vector(b, name, tnd_dim_size(hp, t->ne0), true, field);
    }
    return st;
}

/* Floats needed for every vector the architecture binds. */
static size_t count_floats(const tnd_arch *arch, const tnd_hparams *hp) {
    size_t per_layer = 0;
    for (size_t i = 0; i < tnd_layer_tensor_count; i++) {
        const tnd_layer_tensor *t = &tnd_layer_tensors[i];
        if (!t->matrix && tnd_model_has(arch, hp, t->needs)) per_layer += (size_t)tnd_dim_size(hp, t->ne0);
    }
    return per_layer * (size_t)hp->n_layer + (size_t)hp->n_embd + (size_t)hp->n_rot / 2;
}

const tnd_arch *tnd_arch_find(const char *name, size_t len) {
    for (int i = 0; i < N_ARCH; i++)
        if (strlen(architectures[i]->name) == len && !memcmp(architectures[i]->name, name, len))
            return architectures[i];
    return NULL;
}

static tnd_status find_arch(const tnd_gguf *g, const tnd_arch **out) {
    tnd_gguf_str name;
    tnd_status st = tnd_gguf_get_str(g, "general.architecture", &name);
    if (st) return st;
    if ((*out = tnd_arch_find(name.ptr, name.len))) return TND_OK;
    char known[256] = "";
    for (int i = 0; i < N_ARCH; i++)
        snprintf(known + strlen(known), sizeof known - strlen(known), "%s%s", i ? ", " : "", architectures[i]->name);
    return tnd_fail(TND_ERR_UNSUPPORTED, "architecture '%.*s' is not supported (supported: %s)",
                    (int)(name.len > 64 ? 64 : name.len), name.ptr, known);
}

tnd_status tnd_model_bind(const tnd_gguf *g, const tnd_allocator *allocator, tnd_bound_model *out) {
    memset(out, 0, sizeof *out);
    tnd_status st = find_arch(g, &out->arch);
    if (st) return st;
    tnd_hparams *hp = &out->hp;
    if ((st = read_hparams(g, out->arch->name, hp)) || (st = read_experts(g, out->arch, hp))) return st;

    binder b = {.g = g};
    out->floats = tnd_alloc_array(allocator, count_floats(out->arch, hp), sizeof(float));
    out->w.layers = tnd_alloc_array(allocator, (size_t)hp->n_layer, sizeof(tnd_layer));
    if (!out->floats || !out->w.layers) {
        st = tnd_fail(TND_ERR_OUT_OF_MEMORY, "out of memory binding %d layers", hp->n_layer);
        goto fail;
    }
    b.next = out->floats;
    const tnd_gguf_tensor *embd = find(g, "token_embd.weight", true, &st);
    if (!embd) goto fail;
    hp->n_vocab = (int32_t)(embd->ne[1] > INT32_MAX ? 0 : embd->ne[1]);
    if ((st = bind_matrix(&b, "token_embd.weight", hp->n_embd, hp->n_vocab, 1, true, &out->w.tok_embd)) ||
        (st = bind_vector(&b, "output_norm.weight", hp->n_embd, true, &out->w.output_norm)) ||
        (st = bind_matrix(&b, "output.weight", hp->n_embd, hp->n_vocab, 1, false, &out->w.output)) ||
        (st = bind_vector(&b, "rope_freqs.weight", hp->n_rot / 2, false, &out->w.rope_freqs)))
        goto fail;
    if (!out->w.output.data) out->w.output = out->w.tok_embd; /* tied embeddings */
    for (int il = 0; il < hp->n_layer; il++)
        if ((st = bind_layer(&b, out->arch, hp, il, &out->w.layers[il]))) goto fail;
    return TND_OK;
fail:
    tnd_error_prefix("%s model: ", out->arch->name);
    tnd_model_unbind(out, allocator);
    return st;
}

void tnd_model_unbind(tnd_bound_model *bm, const tnd_allocator *allocator) {
    tnd_free(allocator, bm->floats);
    tnd_free(allocator, bm->w.layers);
    memset(bm, 0, sizeof *bm);
}
