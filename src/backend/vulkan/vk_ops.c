/* vk_ops.c: the ops of the Vulkan device as compute dispatches (shaders in shaders/), its weights and KV blocks, and
 * its vtable. Views carry byte offsets and row strides; shaders take them in 4-byte words. */
#include "backend/vulkan/vk_internal.h"

#include "quant/quant.h"

#include <string.h>

/* ------------------------------------------------------------------------------------------------------------
 * What the device computes
 * ---------------------------------------------------------------------------------------------------------- */

/* Each weight type's matmul, experts' matmul and int8 matmul (the float types have none: VK_SHADER_COUNT). */
#define FLOAT_SHADERS(T, t) {TND_TYPE_##T, VK_SHADER_matmul_##t, VK_SHADER_matmul_experts_##t, VK_SHADER_COUNT}
#define WEIGHT_SHADERS(T, t) {TND_TYPE_##T, VK_SHADER_matmul_##t, VK_SHADER_matmul_experts_##t, VK_SHADER_matmul_q8_##t}
static const struct {
    tnd_type type;
    vk_shader matmul, experts, int8;
} weight_shaders[] = {
    FLOAT_SHADERS(F32, f32),    FLOAT_SHADERS(F16, f16),    FLOAT_SHADERS(BF16, bf16),  WEIGHT_SHADERS(Q4_0, q4_0),
    WEIGHT_SHADERS(Q4_1, q4_1), WEIGHT_SHADERS(Q5_0, q5_0), WEIGHT_SHADERS(Q5_1, q5_1), WEIGHT_SHADERS(Q8_0, q8_0),
    WEIGHT_SHADERS(Q2_K, q2_k), WEIGHT_SHADERS(Q3_K, q3_k), WEIGHT_SHADERS(Q4_K, q4_k), WEIGHT_SHADERS(Q5_K, q5_k),
    WEIGHT_SHADERS(Q6_K, q6_k),
};
#undef FLOAT_SHADERS
#undef WEIGHT_SHADERS

/* The int8 matmul of a weight type, or VK_SHADER_COUNT (a float type). */
static vk_shader int8_shader_of(tnd_type type) {
    for (size_t i = 0; i < sizeof weight_shaders / sizeof weight_shaders[0]; i++)
        if (weight_shaders[i].type == type) return weight_shaders[i].int8;
    return VK_SHADER_COUNT;
}

/* The matmul and experts' matmul shaders of a weight type; false for a type without them. */
static bool weight_shaders_of(tnd_type type, vk_shader *matmul, vk_shader *experts) {
    for (size_t i = 0; i < sizeof weight_shaders / sizeof weight_shaders[0]; i++)
        if (weight_shaders[i].type == type) {
            *matmul = weight_shaders[i].matmul;
            *experts = weight_shaders[i].experts;
            return true;
        }
    return false;
}

/* The KV cache types and their shaders: a store for each, attention for each pair of K and V types. */
static const tnd_type kv_types[] = {TND_TYPE_F32, TND_TYPE_F16, TND_TYPE_Q8_0, TND_TYPE_Q4_0};
enum { N_KV_TYPES = sizeof kv_types / sizeof kv_types[0] };
static const vk_shader kv_store_shaders[N_KV_TYPES] = {VK_SHADER_kv_store_f32, VK_SHADER_kv_store_f16,
                                                        VK_SHADER_kv_store_q8_0, VK_SHADER_kv_store_q4_0};
#define ATTENTION_ROW(k) {VK_SHADER_attention_##k##_f32, VK_SHADER_attention_##k##_f16, \
                          VK_SHADER_attention_##k##_q8_0, VK_SHADER_attention_##k##_q4_0}
static const vk_shader attention_shaders[N_KV_TYPES][N_KV_TYPES] = {ATTENTION_ROW(f32), ATTENTION_ROW(f16),
                                                                    ATTENTION_ROW(q8_0), ATTENTION_ROW(q4_0)};
#undef ATTENTION_ROW

/* The index of a KV type in kv_types, or -1. */
static int kv_index(tnd_type t) {
    for (int i = 0; i < N_KV_TYPES; i++)
        if (kv_types[i] == t) return i;
    return -1;
}

/* Whether rows of head_dim elements (whole heads) can be stored as t: the block types need whole blocks per head. */
static bool kv_type_ok(tnd_type t, int32_t head_dim) {
    return kv_index(t) >= 0 && head_dim % 2 == 0 && (t == TND_TYPE_F32 || t == TND_TYPE_F16 || head_dim % 32 == 0);
}

enum { MAX_HEAD_DIM = 256 }; /* attention.comp keeps up to 4 dimensions per invocation of 64 */

static bool vk_supports(tnd_backend *b, const tnd_op_query *q) {
    vk_shader m, x;
    switch (q->op) {
    case TND_OP_EMBED:
    case TND_OP_MATMUL:
    case TND_OP_MATMUL_EXPERTS: return weight_shaders_of(q->type, &m, &x);
    case TND_OP_MOE_ROUTE:
    case TND_OP_MOE_COMBINE:
    case TND_OP_RMS_NORM:
    case TND_OP_ADD:
    case TND_OP_ADD_BIAS:
    case TND_OP_SWIGLU:
    case TND_OP_ROPE:
    case TND_OP_COPY:
    case TND_OP_SIGMOID_SCALE: return true;
    case TND_OP_KV_STORE:
    case TND_OP_ATTENTION:
        return kv_type_ok(q->type, q->head_dim) && kv_type_ok(q->v_type, q->head_dim) && q->head_dim <= MAX_HEAD_DIM &&
               (q->op == TND_OP_KV_STORE || (q->n_head_kv > 0 && q->n_head % q->n_head_kv == 0));
    default: return false;
    }
}

/* A view's offset and row stride in 4-byte words. */
static uint32_t words_off(const tnd_tensor *t) { return (uint32_t)(t->offset / 4); }
static uint32_t words_stride(const tnd_tensor *t) { return (uint32_t)(t->row_bytes / 4); }

static uint32_t div_up(uint64_t a, uint32_t b) { return (uint32_t)((a + b - 1) / b); }

/* ------------------------------------------------------------------------------------------------------------
 * Weights
 * ---------------------------------------------------------------------------------------------------------- */

static tnd_status vk_prepare_weight(tnd_backend *b, const tnd_weight *host, tnd_weight *out) {
    vk_device *d = vk_dev(b);
    vk_shader m, x;
    *out = (tnd_weight){0};
    if (!weight_shaders_of(host->type, &m, &x))
        return tnd_fail(TND_ERR_UNSUPPORTED, "the Vulkan device cannot compute with tensor type %s",
                        tnd_type_name(host->type));
    if (host->lookup_only) { /* an embedding table stays in host memory: a step needs only its few rows */
        *out = *host;
        return TND_OK;
    }
    size_t bytes = host->row_bytes * (size_t)host->n_rows;
    tnd_buffer *buf = tnd_vk_alloc(b, bytes);
    if (!buf) return TND_ERR_OUT_OF_MEMORY; /* the message is alloc's */
    tnd_vk_write(b, buf, 0, host->data, bytes);
    if (d->failure) {
        tnd_status st = tnd_vk_synchronize(b);
        tnd_vk_free(b, buf);
        return st;
    }
    *out = *host;
    out->data = NULL;
    out->buf = buf;
    out->row_group = 0;
    return TND_OK;
}

/* A weight's rows are the file's, in a buffer of the device's own: new rows go in as a write, ordered with the ops. */
static tnd_status vk_update_weight(tnd_backend *b, tnd_weight *w, int64_t row0, const tnd_weight *host) {
    tnd_status st = w->buf ? tnd_weight_update_check(b->name, w, row0, host)
                           : tnd_fail(TND_ERR_INVALID_ARGUMENT, "%s: update_weight of a weight it keeps in host memory",
                                      b->name);
    if (!st) tnd_vk_write(b, w->buf, (size_t)row0 * w->row_bytes, host->data, (size_t)host->n_rows * w->row_bytes);
    return st;
}

static void vk_release_weight(tnd_backend *b, tnd_weight *w) {
    tnd_vk_free(b, w->buf);
    memset(w, 0, sizeof *w);
}

/* With int8 matmuls: room for the activations as 8-bit blocks, max_tokens rows of max_cols (where it cannot be had,
 * the matmuls keep the float path). */
static tnd_status vk_reserve(tnd_backend *b, int64_t max_cols, int64_t max_tokens) {
    vk_device *d = vk_dev(b);
    size_t blocks = (size_t)(max_cols + 31) / 32, rows = (size_t)max_tokens;
    if (!d->int8 || (blocks <= d->xq_blocks && rows <= d->xq_rows)) return TND_OK;
    blocks = blocks > d->xq_blocks ? blocks : d->xq_blocks; /* never less room than before */
    rows = rows > d->xq_rows ? rows : d->xq_rows;
    tnd_buffer *grown = tnd_vk_alloc(b, blocks * rows * VK_Q8_WORDS * sizeof(uint32_t));
    if (!grown) return TND_OK; /* no room: the matmuls that do not fit take the float path */
    if (d->xq) tnd_vk_free(b, d->xq);
    d->xq = grown, d->xq_blocks = blocks, d->xq_rows = rows;
    return TND_OK;
}

/* ------------------------------------------------------------------------------------------------------------
 * Ops
 * ---------------------------------------------------------------------------------------------------------- */

/* Embedding tables stay in host memory (prepare_weight): a step needs only its few rows, decoded on the host into the
 * arena, then copied to out, and the GPU's memory is left to what it multiplies with. */
static void embed_from_host(vk_device *d, const tnd_weight *table, const int32_t *ids, const tnd_tensor *out) {
    size_t row = sizeof(float) * (size_t)table->n_cols;
    uint32_t off;
    float *rows = tnd_vk_arena_reserve(d, row * (size_t)out->ne1, &off);
    if (!rows) return;
    tnd_to_float_fn to_float = tnd_type_traits_of(table->type)->to_float;
    for (int64_t i = 0; i < out->ne1; i++)
        to_float((const uint8_t *)table->data + (size_t)ids[i] * table->row_bytes, rows + i * table->n_cols,
                 table->n_cols);
    VkBufferCopy regions[64];
    for (int64_t i0 = 0; i0 < out->ne1; i0 += 64) { /* a region per row: out's rows may be apart */
        uint32_t n = 0;
        for (int64_t i = i0; i < out->ne1 && i < i0 + 64; i++)
            regions[n++] = (VkBufferCopy){.srcOffset = (VkDeviceSize)off * 4 + (VkDeviceSize)(i * (int64_t)row),
                                          .dstOffset = out->offset + (VkDeviceSize)i * out->row_bytes, .size = row};
        tnd_vk_copy(d, d->arena, out->buf, regions, n);
    }
}

static void vk_embed(tnd_backend *b, const tnd_weight *table, const int32_t *ids, const tnd_tensor *out) {
    embed_from_host(vk_dev(b), table, ids, out);
}

enum { MATMUL_ROWS = 4, MATMUL_TOKENS = 8, MAX_GROUPS = 65535 }; /* as matmul.comp's ROWS and TOKENS */

/* Whether weights of this type multiply 8-bit blocks of x here (int8 matmuls, the room reserved for x). */
static bool takes_q8(const vk_device *d, tnd_type type, const tnd_tensor *x) {
    return d->int8 && int8_shader_of(type) != VK_SHADER_COUNT && (size_t)(x->ne0 + 31) / 32 <= d->xq_blocks &&
           (size_t)x->ne1 <= d->xq_rows;
}

/* x as 8-bit blocks into d->xq (see quantize_q8.comp). */
static void quantize_x(vk_device *d, const tnd_tensor *x) {
    uint32_t blocks = div_up((uint64_t)x->ne0, 32);
    struct { uint32_t n_cols, n_tokens, x_off, x_stride, blocks_per_row; } push = {
        (uint32_t)x->ne0, (uint32_t)x->ne1, words_off(x), words_stride(x), blocks};
    tnd_buffer *bufs[] = {x->buf, d->xq};
    tnd_vk_dispatch(d, VK_SHADER_quantize_q8, bufs, 2, &push, sizeof push, div_up(blocks, 64), (uint32_t)x->ne1, 1);
}

/* w times x, or times x's 8-bit blocks in d->xq where `quantized` (quantize_x ran). */
static void matmul_from(vk_device *d, const tnd_weight *w, const tnd_tensor *x, bool quantized, const tnd_tensor *y) {
    vk_shader m, experts;
    if (!weight_shaders_of(w->type, &m, &experts)) {
        tnd_vk_failed(d, TND_ERR_UNSUPPORTED, "matmul: no shader for %s", tnd_type_name(w->type));
        return;
    }
    struct { uint32_t w_off, row_bytes, n_cols, n_rows, n_tokens, x_off, x_stride, y_off, y_stride; } push = {
        0, (uint32_t)w->row_bytes, (uint32_t)w->n_cols, (uint32_t)w->n_rows, (uint32_t)x->ne1,
        quantized ? 0 : words_off(x), quantized ? div_up((uint64_t)x->ne0, 32) : words_stride(x), words_off(y),
        words_stride(y)};
    /* blocks of rows over x and y (an output head has more than one dimension of groups takes), tokens over z */
    uint32_t blocks = div_up((uint64_t)w->n_rows, MATMUL_ROWS), gx = blocks < MAX_GROUPS ? blocks : MAX_GROUPS;
    tnd_buffer *bufs[] = {w->buf, quantized ? d->xq : x->buf, y->buf};
    tnd_vk_dispatch(d, quantized ? int8_shader_of(w->type) : m, bufs, 3, &push, sizeof push, gx, div_up(blocks, gx),
                    div_up((uint64_t)x->ne1, MATMUL_TOKENS));
}

static void vk_matmul_many(tnd_backend *b, int n, const tnd_weight *const *w, const tnd_tensor *x,
                           const tnd_tensor *const *y) {
    vk_device *d = vk_dev(b);
    bool quantized = false; /* x converted once for the weights that take it */
    for (int i = 0; i < n; i++) {
        bool q8 = takes_q8(d, w[i]->type, x);
        if (q8 && !quantized) quantize_x(d, x);
        quantized |= q8;
        matmul_from(d, w[i], x, q8, y[i]);
    }
}

static void vk_matmul(tnd_backend *b, const tnd_weight *w, const tnd_tensor *x, const tnd_tensor *y) {
    vk_matmul_many(b, 1, &w, x, &y);
}

static void vk_rms_norm(tnd_backend *b, const tnd_tensor *x, const tnd_tensor *gamma, const tnd_tensor *y, float eps) {
    struct { uint32_t n_cols, x_off, x_stride, g_off, y_off, y_stride; float eps; } push = {
        (uint32_t)x->ne0, words_off(x), words_stride(x), words_off(gamma), words_off(y), words_stride(y), eps};
    tnd_buffer *bufs[] = {x->buf, gamma->buf, y->buf};
    tnd_vk_dispatch(vk_dev(b), VK_SHADER_rms_norm, bufs, 3, &push, sizeof push, (uint32_t)x->ne1, 1, 1);
}

enum { EW_ADD = 0, EW_SWIGLU = 1, EW_COPY = 2, EW_SIGMOID_SCALE = 3 };

/* out = f(a, b) element by element over out's shape; b_stride 0 repeats b's first row. */
static void elementwise(tnd_backend *b, uint32_t op, const tnd_tensor *a, const tnd_tensor *bv, uint32_t b_stride,
                        const tnd_tensor *out) {
    struct { uint32_t n_cols, n_rows, a_off, a_stride, b_off, b_stride, o_off, o_stride, op; } push = {
        (uint32_t)out->ne0, (uint32_t)out->ne1, words_off(a), words_stride(a), words_off(bv), b_stride,
        words_off(out), words_stride(out), op};
    tnd_buffer *bufs[] = {a->buf, bv->buf, out->buf};
    tnd_vk_dispatch(vk_dev(b), VK_SHADER_elementwise, bufs, 3, &push, sizeof push, div_up((uint64_t)out->ne0, 64),
                    (uint32_t)out->ne1, 1);
}

static void vk_add(tnd_backend *b, const tnd_tensor *y, const tnd_tensor *x) {
    elementwise(b, EW_ADD, y, x, words_stride(x), y);
}

static void vk_add_bias(tnd_backend *b, const tnd_tensor *y, const tnd_tensor *bias) {
    elementwise(b, EW_ADD, y, bias, 0, y);
}

static void vk_swiglu(tnd_backend *b, const tnd_tensor *gate, const tnd_tensor *up, const tnd_tensor *out) {
    elementwise(b, EW_SWIGLU, gate, up, words_stride(up), out);
}

static void vk_copy(tnd_backend *b, const tnd_tensor *dst, const tnd_tensor *src) {
    elementwise(b, EW_COPY, src, src, words_stride(src), dst);
}

static void vk_sigmoid_scale(tnd_backend *b, const tnd_tensor *y, const tnd_tensor *g) {
    elementwise(b, EW_SIGMOID_SCALE, y, g, words_stride(g), y);
}

static void vk_rope(tnd_backend *b, const tnd_tensor *x, int32_t n_heads, const tnd_rope *rope) {
    vk_device *d = vk_dev(b);
    bool factors = rope->freq_factors.buf != NULL;
    struct {
        uint32_t x_off, x_stride, n_heads, head_dim, n_rot, neox, has_factors, ff_off, n_step;
        float base, scale;
    } push = {words_off(x), words_stride(x), (uint32_t)n_heads, (uint32_t)rope->head_dim, (uint32_t)rope->n_rot,
              rope->mode == TND_ROPE_NEOX, factors, factors ? words_off(&rope->freq_factors) : 0,
              d->n_step, rope->base, rope->scale};
    tnd_buffer *bufs[] = {x->buf, factors ? rope->freq_factors.buf : x->buf, d->arena};
    tnd_vk_dispatch(d, VK_SHADER_rope, bufs, 3, &push, sizeof push, div_up((uint64_t)rope->n_rot / 2, 64),
                    (uint32_t)n_heads, (uint32_t)x->ne1);
}

/* KV pools: a block is block_size rows of one position each, a row being the width elements of every head in the
 * K or V type's own encoding (its rows of blocks for Q8_0 and Q4_0). */
static void store_rows(vk_device *d, tnd_buffer *pool, tnd_type type, const tnd_tensor *src) {
    struct { uint32_t width, row_bytes, src_off, src_stride, n_step; } push = {
        (uint32_t)src->ne0, (uint32_t)tnd_row_size(type, src->ne0), words_off(src), words_stride(src),
        d->n_step};
    uint32_t per_invocation = type == TND_TYPE_F32 ? 1 : type == TND_TYPE_F16 ? 2 : 32;
    tnd_buffer *bufs[] = {src->buf, pool, d->arena};
    tnd_vk_dispatch(d, kv_store_shaders[kv_index(type)], bufs, 3, &push, sizeof push,
                    div_up((uint64_t)src->ne0 / per_invocation, 64), (uint32_t)src->ne1, 1);
}

static void vk_kv_store(tnd_backend *b, tnd_buffer *k_pool, tnd_buffer *v_pool, tnd_type k_type, tnd_type v_type,
                        const tnd_tensor *k, const tnd_tensor *v, int32_t head_dim) {
    vk_device *d = vk_dev(b);
    if (!kv_type_ok(k_type, head_dim) || !kv_type_ok(v_type, head_dim)) {
        tnd_vk_failed(d, TND_ERR_UNSUPPORTED, "kv_store: K %s / V %s with heads of %d", tnd_type_name(k_type),
                      tnd_type_name(v_type), head_dim);
        return;
    }
    store_rows(d, k_pool, k_type, k);
    store_rows(d, v_pool, v_type, v);
}

static void vk_kv_copy_blocks(tnd_backend *b, tnd_buffer *pool, size_t block_bytes, const int32_t *src,
                              const int32_t *dst, int32_t n) {
    vk_device *d = vk_dev(b);
    for (int32_t i0 = 0; i0 < n; i0 += 64) {
        VkBufferCopy regions[64];
        uint32_t m = 0;
        for (int32_t i = i0; i < n && i < i0 + 64; i++)
            regions[m++] = (VkBufferCopy){.srcOffset = (VkDeviceSize)src[i] * block_bytes,
                                          .dstOffset = (VkDeviceSize)dst[i] * block_bytes, .size = block_bytes};
        tnd_vk_copy(d, pool, pool, regions, m);
    }
}

static void vk_attention(tnd_backend *b, const tnd_attention_args *a) {
    vk_device *d = vk_dev(b);
    if (!kv_type_ok(a->k_type, a->head_dim) || !kv_type_ok(a->v_type, a->head_dim) || a->head_dim > MAX_HEAD_DIM) {
        tnd_vk_failed(d, TND_ERR_UNSUPPORTED, "attention: K %s / V %s, head_dim %d", tnd_type_name(a->k_type),
                      tnd_type_name(a->v_type), a->head_dim);
        return;
    }
    int64_t width = (int64_t)a->n_head_kv * a->head_dim;
    struct {
        uint32_t q_off, q_stride, o_off, o_stride, n_head, n_head_kv, head_dim, block_size, n_step;
        uint32_t k_row_bytes, v_row_bytes;
        float scale;
    } push = {words_off(&a->q), words_stride(&a->q), words_off(&a->out), words_stride(&a->out), (uint32_t)a->n_head,
              (uint32_t)a->n_head_kv, (uint32_t)a->head_dim, d->block_size, d->n_step,
              (uint32_t)tnd_row_size(a->k_type, width), (uint32_t)tnd_row_size(a->v_type, width), a->scale};
    tnd_buffer *bufs[] = {a->q.buf, a->out.buf, a->k_pool, a->v_pool, d->arena};
    tnd_vk_dispatch(d, attention_shaders[kv_index(a->k_type)][kv_index(a->v_type)], bufs, 5, &push, sizeof push,
                    (uint32_t)a->n_head, (uint32_t)a->q.ne1, 1);
}

enum { MAX_USED = 16 }; /* moe_route.comp keeps a token's chosen experts in registers */

static void vk_moe_route(tnd_backend *b, const tnd_moe_route_args *a) {
    vk_device *d = vk_dev(b);
    if (a->n_used > MAX_USED) {
        tnd_vk_failed(d, TND_ERR_UNSUPPORTED, "moe_route: %d experts per token (the device takes up to %d)", a->n_used,
                      MAX_USED);
        return;
    }
    struct { uint32_t n_tokens, n_experts, n_used, normalize, l_off, l_stride, ids_off, ids_stride, w_off, w_stride; }
    push = {(uint32_t)a->logits.ne1, (uint32_t)a->logits.ne0, (uint32_t)a->n_used, a->normalize,
            words_off(&a->logits), words_stride(&a->logits), words_off(&a->ids), words_stride(&a->ids),
            words_off(&a->weights), words_stride(&a->weights)};
    tnd_buffer *bufs[] = {a->logits.buf, a->ids.buf, a->weights.buf};
    tnd_vk_dispatch(d, VK_SHADER_moe_route, bufs, 3, &push, sizeof push, div_up((uint64_t)a->logits.ne1, 64), 1, 1);
}

static void vk_matmul_experts(tnd_backend *b, int n, const tnd_weight *const *w, const tnd_tensor *x,
                              const tnd_tensor *ids, const tnd_tensor *const *y) {
    vk_device *d = vk_dev(b);
    for (int i = 0; i < n; i++) {
        vk_shader m, experts;
        if (!weight_shaders_of(w[i]->type, &m, &experts)) {
            tnd_vk_failed(d, TND_ERR_UNSUPPORTED, "matmul_experts: no shader for %s", tnd_type_name(w[i]->type));
            return;
        }
        uint32_t rows = (uint32_t)(w[i]->n_rows / w[i]->n_experts), pairs = (uint32_t)y[i]->ne1;
        struct {
            uint32_t row_bytes, n_cols, rows_per_expert, n_pairs, n_used, per_slot;
            uint32_t x_off, x_stride, y_off, y_stride, ids_off, ids_stride;
        } push = {(uint32_t)w[i]->row_bytes, (uint32_t)w[i]->n_cols, rows, pairs, (uint32_t)ids->ne0,
                  x->ne1 == (int64_t)pairs && ids->ne0 > 1, words_off(x), words_stride(x), words_off(y[i]),
                  words_stride(y[i]), words_off(ids), words_stride(ids)};
        uint32_t gx = rows < MAX_GROUPS ? rows : MAX_GROUPS;
        tnd_buffer *bufs[] = {w[i]->buf, x->buf, y[i]->buf, ids->buf};
        tnd_vk_dispatch(d, experts, bufs, 4, &push, sizeof push, gx, div_up(rows, gx), pairs);
    }
}

static void vk_moe_combine(tnd_backend *b, const tnd_tensor *experts, const tnd_tensor *weights,
                           const tnd_tensor *y) {
    struct { uint32_t width, n_used, e_off, e_stride, w_off, w_stride, y_off, y_stride; } push = {
        (uint32_t)y->ne0, (uint32_t)weights->ne0, words_off(experts), words_stride(experts), words_off(weights),
        words_stride(weights), words_off(y), words_stride(y)};
    tnd_buffer *bufs[] = {experts->buf, weights->buf, y->buf};
    tnd_vk_dispatch(vk_dev(b), VK_SHADER_moe_combine, bufs, 3, &push, sizeof push, div_up((uint64_t)y->ne0, 64),
                    (uint32_t)y->ne1, 1);
}

const tnd_backend_vtable tnd_vk_vtable = {
    .destroy = tnd_vk_destroy,
    .supports = vk_supports,
    .memory = tnd_vk_memory,
    .max_buffer = tnd_vk_max_buffer,
    .measure_bandwidth = tnd_vk_measure_bandwidth,
    .describe = tnd_vk_describe,
    .profile = NULL,
    .alloc = tnd_vk_alloc,
    .free = tnd_vk_free,
    .write = tnd_vk_write,
    .read = tnd_vk_read,
    .copy_to = NULL,
    .prepare_weight = vk_prepare_weight,
    .release_weight = vk_release_weight,
    .update_weight = vk_update_weight,
    .reserve = vk_reserve,
    .begin_step = tnd_vk_begin_step,
    .synchronize = tnd_vk_synchronize,
    .embed = vk_embed,
    .matmul = vk_matmul,
    .matmul_many = vk_matmul_many,
    .rms_norm = vk_rms_norm,
    .add = vk_add,
    .add_bias = vk_add_bias,
    .swiglu = vk_swiglu,
    .rope = vk_rope,
    .copy = vk_copy,
    .kv_store = vk_kv_store,
    .kv_copy_blocks = vk_kv_copy_blocks,
    .attention = vk_attention,
    .moe_route = vk_moe_route,
    .matmul_experts = vk_matmul_experts,
    .moe_combine = vk_moe_combine,
    .sigmoid_scale = vk_sigmoid_scale,
};
