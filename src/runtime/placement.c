/* placement.c: the plan of a context (the device of every tensor group), the stages that follow from it, and the
 * devices' views and copies of each group's tensors and activation buffers. */
#include "runtime/placement.h"

#include "model/expert_cache.h"

#include "core/alloc.h"
#include "core/error.h"
#include "quant/quant.h"

#include <stdio.h>
#include <string.h>

/* ------------------------------------------------------------------------------------------------------------
 * The plan
 * ---------------------------------------------------------------------------------------------------------- */

tnd_status tnd_plan_groups(const tnd_hparams *hp, const tnd_context_params *p, int32_t *group_device) {
    int32_t n_layer = hp->n_layer, n_dev = p->n_devices, n_groups = tnd_group_count(n_layer);
    if (n_dev < 1 || n_dev > TND_MAX_DEVICES)
        return tnd_fail(TND_ERR_INVALID_ARGUMENT, "n_devices %d must be in 1..%d", n_dev, TND_MAX_DEVICES);
    if (p->group_device) {
        if (p->n_groups != n_groups)
            return tnd_fail(TND_ERR_INVALID_ARGUMENT, "the plan names the devices of %d tensor groups; the model has "
                            "%d (2 per layer, the embedding and the output)", p->n_groups, n_groups);
        for (int32_t g = 0; g < n_groups; g++) {
            if (p->group_device[g] < 0 || p->group_device[g] >= n_dev)
                return tnd_fail(TND_ERR_INVALID_ARGUMENT, "the plan puts tensor group %d on device %d of %d", g,
                                p->group_device[g], n_dev);
            group_device[g] = p->group_device[g];
        }
    } else {
        if (n_dev > n_layer)
            return tnd_fail(TND_ERR_INVALID_ARGUMENT, "%d devices for %d layers: each device needs a layer", n_dev,
                            n_layer);
        int32_t begin = 0;
        for (int32_t i = 0; i < n_dev; i++) {
            int32_t count = p->layers_per_device ? p->layers_per_device[i] : n_layer / n_dev + (i < n_layer % n_dev);
            if (count < 1 || begin + count > n_layer)
                return tnd_fail(TND_ERR_INVALID_ARGUMENT, "placement: device %d gets %d layers (layers %d.. of %d)",
                                i, count, begin, n_layer);
            for (int32_t l = begin; l < begin + count; l++)
                group_device[tnd_group_attention(l)] = group_device[tnd_group_ffn(l)] = i;
            begin += count;
        }
        if (begin != n_layer)
            return tnd_fail(TND_ERR_INVALID_ARGUMENT, "placement covers %d of the model's %d layers", begin, n_layer);
        group_device[0] = 0;
        group_device[tnd_group_output(n_layer)] = n_dev - 1;
    }
    for (int32_t d = 0; d < n_dev; d++) {
        int32_t g = 0;
        while (g < n_groups && group_device[g] != d) g++;
        if (g == n_groups)
            return tnd_fail(TND_ERR_INVALID_ARGUMENT, "the plan gives device %d no tensor group", d);
    }
    return TND_OK;
}

/* What a group's tensors add up to: bytes in all, by type (where by_type is not NULL), and the largest tensor. */
typedef struct group_sizes {
    uint64_t total, largest, *by_type;
} group_sizes;

static void count_tensor(group_sizes *z, tnd_type type, uint64_t n) {
    z->total += n;
    if (n > z->largest) z->largest = n;
    if (z->by_type) z->by_type[type] += n;
}

/* How a group's tensors are counted: as stored in the file (the embedding table once, with the embedding), as a
 * token reads them (the experts' share, no embedding row, a tied output head's table), or as a device that multiplies
 * by them holds them (whole experts, a tied head's table, no embedding, which GPUs keep in host memory). */
typedef enum counting { AS_STORED, AS_READ, AS_HELD } counting;

/* The sizes of group g's weights, counted as `how`, into z. */
static void group_sizes_of(const tnd_bound_model *bm, int32_t g, counting how, group_sizes *z) {
    const tnd_hparams *hp = &bm->hp;
    const tnd_weight *embd = &bm->w.tok_embd, *out = &bm->w.output;
    if (g == 0) {
        if (how == AS_STORED) count_tensor(z, embd->type, (uint64_t)embd->row_bytes * (uint64_t)embd->n_rows);
        return;
    }
    if (g == tnd_group_output(hp->n_layer)) {
        count_tensor(z, TND_TYPE_F32, sizeof(float) * (uint64_t)hp->n_embd); /* the final norm */
        if (out->data != embd->data || how != AS_STORED)
            count_tensor(z, out->type, (uint64_t)out->row_bytes * (uint64_t)out->n_rows);
        return;
    }
    double experts_share = how == AS_READ && hp->n_expert ? (double)hp->n_expert_used / hp->n_expert : 1.0;
    int32_t il = (g - 1) / 2;
    bool ffn = g == tnd_group_ffn(il);
    const char *layer = (const char *)&bm->w.layers[il];
    for (size_t i = 0; i < tnd_layer_tensor_count; i++) {
        const tnd_layer_tensor *t = &tnd_layer_tensors[i];
        if (t->ffn != ffn || !tnd_model_has(bm->arch, hp, t->needs)) continue;
        if (t->matrix) {
            const tnd_weight *w = (const tnd_weight *)(const void *)(layer + t->host);
            uint64_t all = (uint64_t)w->row_bytes * (uint64_t)w->n_rows;
            count_tensor(z, w->type, w->n_experts ? (uint64_t)((double)all * experts_share) : all);
        } else if (*(float *const *)(const void *)(layer + t->host)) {
            count_tensor(z, TND_TYPE_F32, sizeof(float) * (uint64_t)tnd_dim_size(hp, t->ne0));
        }
    }
}

uint64_t tnd_group_weight_bytes(const tnd_bound_model *bm, int32_t g) {
    group_sizes z = {0};
    group_sizes_of(bm, g, AS_STORED, &z);
    return z.total;
}

uint64_t tnd_group_active_bytes(const tnd_bound_model *bm, int32_t g, uint64_t by_type[TND_TYPE_COUNT]) {
    group_sizes z = {.by_type = by_type};
    group_sizes_of(bm, g, AS_READ, &z);
    return z.total;
}

uint64_t tnd_group_largest_tensor(const tnd_bound_model *bm, int32_t g) {
    group_sizes z = {0};
    group_sizes_of(bm, g, AS_HELD, &z);
    return z.largest;
}

/* ------------------------------------------------------------------------------------------------------------
 * Activations
 * ---------------------------------------------------------------------------------------------------------- */

/* The width of the dense feed-forward buffers: a dense block's, or a shared expert's (0 for a mixture of experts
 * without one). */
static int64_t ffn_width(const tnd_hparams *hp) { return hp->n_expert ? hp->n_ff_shexp : hp->n_ff; }

enum { N_ACTIVATIONS = 15 };

/* A device's activation buffers (but the logits) and their widths in 4-byte values per token (0: the model has no
 * such buffer). */
static void activation_layout(const tnd_hparams *hp, tnd_activations *a, tnd_buffer **bufs[N_ACTIVATIONS],
                              int64_t widths[N_ACTIVATIONS]) {
    int64_t qw = (int64_t)hp->n_head * hp->head_dim, kvw = (int64_t)hp->n_head_kv * hp->head_dim;
    int64_t k = hp->n_expert_used, ff = ffn_width(hp);
    tnd_buffer **b[N_ACTIVATIONS] = {&a->x, &a->xn, &a->q, &a->k, &a->v, &a->attn, &a->gate, &a->up, &a->router,
                                     &a->expert_ids, &a->expert_weights, &a->expert_gate, &a->expert_up,
                                     &a->expert_out, &a->shared_gate};
    int64_t w[N_ACTIVATIONS] = {hp->n_embd, hp->n_embd, qw, kvw, kvw, qw, ff, ff, hp->n_expert, k, k,
                                k * hp->n_ff_exp, k * hp->n_ff_exp, k * hp->n_embd, hp->n_ff_shexp ? 1 : 0};
    _Static_assert(sizeof(int32_t) == sizeof(float), "expert ids take a float's room");
    memcpy(bufs, b, sizeof b);
    memcpy(widths, w, sizeof w);
}

/* Bytes of one device's activations for batches of n_batch tokens. */
static uint64_t activation_bytes(const tnd_hparams *hp, int32_t n_batch) {
    tnd_activations a;
    tnd_buffer **bufs[N_ACTIVATIONS];
    int64_t widths[N_ACTIVATIONS];
    activation_layout(hp, &a, bufs, widths);
    uint64_t per_token = 0;
    for (size_t i = 0; i < N_ACTIVATIONS; i++) per_token += (uint64_t)widths[i];
    return sizeof(float) * per_token * (uint64_t)n_batch;
}

/* ------------------------------------------------------------------------------------------------------------
 * Experts apart from their feed-forward group
 * ---------------------------------------------------------------------------------------------------------- */

/* The bytes of a layer's three stacked expert weights. */
static uint64_t experts_bytes(const tnd_layer *l) {
    const tnd_weight *w[3] = {&l->gate_exps, &l->up_exps, &l->down_exps};
    uint64_t bytes = 0;
    for (int i = 0; i < 3; i++) bytes += (uint64_t)w[i]->row_bytes * (uint64_t)w[i]->n_rows;
    return bytes;
}

/* ------------------------------------------------------------------------------------------------------------
 * Does it fit?
 * ---------------------------------------------------------------------------------------------------------- */

static double gb(uint64_t bytes) { return (double)bytes / 1e9; }

tnd_status tnd_plan_check_memory(const tnd_forward *fw, const tnd_bound_model *bm, int32_t n_ctx, int32_t n_batch) {
    const tnd_hparams *hp = fw->hp;
    uint64_t weights[TND_MAX_DEVICES] = {0}, kv[TND_MAX_DEVICES] = {0}, act[TND_MAX_DEVICES] = {0};
    int64_t kvw_elems = (int64_t)hp->n_head_kv * hp->head_dim;
    uint64_t kv_layer = (uint64_t)(tnd_row_size(fw->k_type, kvw_elems) + tnd_row_size(fw->v_type, kvw_elems)) *
                        (uint64_t)n_ctx;
    uint64_t act_bytes = activation_bytes(hp, n_batch);
    for (int32_t g = 0; g < tnd_group_count(hp->n_layer); g++) {
        int32_t d = fw->group_device[g];
        weights[d] += g == 0 ? 0 : tnd_group_weight_bytes(bm, g); /* the embedding stays in the file's mapping */
        if (g > 0 && g < tnd_group_output(hp->n_layer) && g == tnd_group_attention((g - 1) / 2)) kv[d] += kv_layer;
    }
    for (int32_t l = 0; l < hp->n_layer; l++) /* experts apart: on their device, and the cache's copies */
        if (tnd_experts_apart(fw, l)) {
            uint64_t experts = experts_bytes(&bm->w.layers[l]);
            int32_t d = fw->group_device[tnd_group_ffn(l)];
            weights[d] -= experts;
            weights[fw->expert_device] += experts;
            if (fw->expert_cache) weights[d] += experts / (uint64_t)hp->n_expert * (uint64_t)fw->expert_cache->n_slots;
        }
    for (int32_t d = 0; d < fw->n_devices; d++) act[d] = act_bytes;
    /* devices that report the same memory share it (CPU instances): their needs add up */
    bool counted[TND_MAX_DEVICES] = {false};
    for (int32_t d = 0; d < fw->n_devices; d++) {
        if (counted[d]) continue;
        uint64_t total = 0, available = 0, w = 0, k = 0, a = 0;
        fw->devices[d]->vt->memory(fw->devices[d], &total, &available);
        char names[128] = "";
        for (int32_t e = d; e < fw->n_devices; e++) {
            uint64_t t2 = 0, a2 = 0;
            fw->devices[e]->vt->memory(fw->devices[e], &t2, &a2);
            if (t2 != total) continue;
            counted[e] = true;
            w += weights[e];
            k += kv[e];
            a += act[e];
            size_t n = strlen(names);
            snprintf(names + n, sizeof names - n, "%s%s", n ? " + " : "", fw->devices[e]->name);
        }
        if (!available || w + k + a <= available) continue;
        return tnd_fail(TND_ERR_OUT_OF_MEMORY, "the plan does not fit: %s %s %.2f GB, and it needs %.2f GB (weights "
                        "%.2f GB, KV cache %.2f GB for %d tokens of %s K and %s V, activations %.2f GB for batches of "
                        "%d): use a smaller context (-c) or KV type (--kv-type q8_0), fewer sequences, or place groups "
                        "on another device (--device, --override-tensor)", names,
                        strchr(names, '+') ? "share" : "has", gb(available), gb(w + k + a), gb(w), gb(k), n_ctx,
                        tnd_type_name(fw->k_type), tnd_type_name(fw->v_type), gb(a), n_batch);
    }
    return TND_OK;
}

/* ------------------------------------------------------------------------------------------------------------
 * Device copies
 * ---------------------------------------------------------------------------------------------------------- */

/* Device copy of a host float vector (NULL stays NULL). */
static tnd_status device_floats(tnd_backend *d, const float *host, int64_t n, tnd_buffer **out) {
    *out = NULL;
    if (!host) return TND_OK;
    *out = d->vt->alloc(d, sizeof(float) * (size_t)n);
    if (!*out) return tnd_fail(TND_ERR_OUT_OF_MEMORY, "out of memory on %s", d->name);
    d->vt->write(d, *out, 0, host, sizeof(float) * (size_t)n);
    return TND_OK;
}

static void free_buffer(tnd_backend *d, tnd_buffer *buf) {
    if (buf) d->vt->free(d, buf);
}

/* The device's view of a weight; when the device made its own copy, the file's pages of it can leave memory. */
static tnd_status prepare(tnd_model *model, tnd_backend *d, const tnd_weight *host, tnd_weight *out) {
    tnd_status s = d->vt->prepare_weight(d, host, out);
    if (!s && out->data != host->data)
        tnd_mapped_file_release(&model->file, host->data, (uint64_t)host->row_bytes * (uint64_t)host->n_rows);
    return s;
}

static void release(tnd_backend *d, tnd_weight *w) {
    if (w->data || w->buf) d->vt->release_weight(d, w); /* a view in host memory, or in the device's own */
}

/* Layer il's attention or feed-forward tensors on device d (the rows of tnd_layer_tensors of that group), its stacked
 * experts on device `experts` (d, unless the plan keeps them apart). */
static tnd_status prepare_part(tnd_model *model, const tnd_bound_model *bm, tnd_backend *d, tnd_backend *experts,
                               int32_t il, bool ffn, tnd_device_layer *l) {
    const char *host = (const char *)&bm->w.layers[il];
    tnd_status s = TND_OK;
    for (size_t i = 0; i < tnd_layer_tensor_count && !s; i++) {
        const tnd_layer_tensor *t = &tnd_layer_tensors[i];
        if (t->ffn != ffn || !tnd_model_has(bm->arch, &bm->hp, t->needs)) continue;
        const void *from = host + t->host;
        void *to = (char *)l + t->device;
        s = t->matrix ? prepare(model, t->ne2 == TND_DIM_EXPERTS ? experts : d, from, to)
                      : device_floats(d, *(float *const *)from, tnd_dim_size(&bm->hp, t->ne0), to);
    }
    if (s) tnd_error_prefix("layer %d %s on %s: ", il, ffn ? "feed-forward" : "attention", d->name);
    return s;
}

static void release_part(const tnd_forward *fw, tnd_backend *d, tnd_backend *experts, bool ffn, tnd_device_layer *l) {
    for (size_t i = 0; i < tnd_layer_tensor_count; i++) {
        const tnd_layer_tensor *t = &tnd_layer_tensors[i];
        if (t->ffn != ffn || !tnd_model_has(fw->arch, fw->hp, t->needs)) continue;
        void *field = (char *)l + t->device;
        if (t->matrix) release(t->ne2 == TND_DIM_EXPERTS ? experts : d, field);
        else free_buffer(d, *(tnd_buffer **)field);
    }
}

/* Layer il's cache of hot experts on device d: copies of the first slots' experts of each stacked weight, which the
 * device keeps as its own so that update_weight can swap others in. */
static tnd_status prepare_cache(const tnd_forward *fw, const tnd_bound_model *bm, tnd_backend *d, int32_t il) {
    const tnd_layer *host = &bm->w.layers[il];
    tnd_device_layer *l = &fw->layers[il];
    const tnd_weight *from[3] = {&host->gate_exps, &host->up_exps, &host->down_exps};
    tnd_weight *to[3] = {&l->gate_cache, &l->up_cache, &l->down_cache};
    if (!d->vt->update_weight)
        return tnd_fail(TND_ERR_UNSUPPORTED, "%s keeps no cache of experts: leave out the cache (expert_cache_slots 0, "
                        "--expert-cache 0) or run layer %d's feed-forward group elsewhere", d->name, il);
    for (int i = 0; i < 3; i++) {
        tnd_weight slots = *from[i];
        slots.n_experts = fw->expert_cache->n_slots;
        slots.n_rows = from[i]->n_rows / from[i]->n_experts * slots.n_experts;
        slots.writable = true;
        tnd_status s = d->vt->prepare_weight(d, &slots, to[i]);
        if (s) {
            tnd_error_prefix("layer %d's cache of experts on %s: ", il, d->name);
            return s;
        }
    }
    return TND_OK;
}

static void release_cache(tnd_backend *d, tnd_device_layer *l) {
    release(d, &l->gate_cache);
    release(d, &l->up_cache);
    release(d, &l->down_cache);
}

/* The buffers of the hand-over to the experts' devices: host scratch, and the far side's outputs on each device
 * that keeps a cache. */
static tnd_status prepare_hand_over(tnd_forward *fw, int32_t n_batch, const tnd_allocator *allocator) {
    const tnd_hparams *hp = fw->hp;
    bool any = false, caches[TND_MAX_DEVICES] = {false};
    for (int32_t l = 0; l < hp->n_layer; l++)
        if (tnd_experts_apart(fw, l)) {
            any = true;
            caches[fw->group_device[tnd_group_ffn(l)]] = fw->expert_cache != NULL;
        }
    if (!any) return TND_OK;
    size_t pairs = (size_t)n_batch * (size_t)hp->n_expert_used;
    fw->expert_near = tnd_alloc_array(allocator, pairs, sizeof(int32_t));
    fw->expert_far = tnd_alloc_array(allocator, pairs, sizeof(int32_t));
    fw->expert_host = tnd_alloc_array(allocator, pairs * (size_t)hp->n_embd, sizeof(float));
    if (!fw->expert_near || !fw->expert_far || !fw->expert_host)
        return tnd_fail(TND_ERR_OUT_OF_MEMORY, "out of memory for the hand-over to the experts' device");
    for (int32_t i = 0; i < fw->n_devices; i++) {
        tnd_backend *d = fw->devices[i];
        if (caches[i] && !(fw->act[i].expert_far = d->vt->alloc(d, sizeof(float) * pairs * (size_t)hp->n_embd)))
            return tnd_fail(TND_ERR_OUT_OF_MEMORY, "out of memory for the experts' outputs on %s", d->name);
    }
    return TND_OK;
}

/* Whether device d can run the attention and KV store of this model's layers with fw's K and V types (a weight type it
 * cannot multiply by is refused by prepare_weight, which names the tensor's layer). */
static tnd_status check_support(const tnd_forward *fw, tnd_backend *d) {
    const tnd_hparams *hp = fw->hp;
    tnd_op_query q = {.op = TND_OP_ATTENTION, .type = fw->k_type, .v_type = fw->v_type, .n_head = hp->n_head,
                      .n_head_kv = hp->n_head_kv, .head_dim = hp->head_dim};
    if (!d->vt->supports(d, &q) || (q.op = TND_OP_KV_STORE, !d->vt->supports(d, &q)))
        return tnd_fail(TND_ERR_UNSUPPORTED, "%s cannot run attention with %d heads, %d KV heads of %d dims and a KV "
                        "cache of %s K and %s V", d->name, hp->n_head, hp->n_head_kv, hp->head_dim,
                        tnd_type_name(fw->k_type) ? tnd_type_name(fw->k_type) : "unknown",
                        tnd_type_name(fw->v_type) ? tnd_type_name(fw->v_type) : "unknown");
    return TND_OK;
}

/* Whether device d can run layer il's mixture-of-experts block (a device without the MoE ops says so through
 * supports; a plan must then put the layer's feed-forward group elsewhere). */
static tnd_status check_experts_support(const tnd_forward *fw, const tnd_bound_model *bm, tnd_backend *d, int32_t il) {
    const tnd_layer *l = &bm->w.layers[il];
    const tnd_op_query need[] = {{.op = TND_OP_MOE_ROUTE}, {.op = TND_OP_MOE_COMBINE},
                                 {.op = TND_OP_MATMUL_EXPERTS, .type = l->gate_exps.type},
                                 {.op = TND_OP_MATMUL_EXPERTS, .type = l->up_exps.type},
                                 {.op = TND_OP_MATMUL_EXPERTS, .type = l->down_exps.type},
                                 {.op = TND_OP_SIGMOID_SCALE}}; /* the last for a shared expert only */
    size_t n_need = sizeof need / sizeof need[0] - (fw->hp->n_ff_shexp ? 0 : 1);
    for (size_t i = 0; i < n_need; i++)
        if (!d->vt->supports(d, &need[i]))
            return tnd_fail(TND_ERR_UNSUPPORTED, "%s cannot run the mixture-of-experts block of layer %d", d->name, il);
    return TND_OK;
}

/* Activation buffers of device i for n_batch tokens, its rope, and its matmul scratch. */
static tnd_status prepare_device(tnd_forward *fw, const tnd_bound_model *bm, int32_t i, int32_t n_batch) {
    const tnd_hparams *hp = fw->hp;
    tnd_backend *d = fw->devices[i];
    int64_t qw = (int64_t)hp->n_head * hp->head_dim;
    size_t nb = (size_t)n_batch;
    tnd_activations *a = &fw->act[i];
    tnd_buffer **bufs[N_ACTIVATIONS];
    int64_t widths[N_ACTIVATIONS];
    activation_layout(hp, a, bufs, widths);
    for (size_t b = 0; b < N_ACTIVATIONS; b++)
        if (widths[b] && !(*bufs[b] = d->vt->alloc(d, sizeof(float) * nb * (size_t)widths[b])))
            return tnd_fail(TND_ERR_OUT_OF_MEMORY, "out of memory for activations on %s", d->name);
    tnd_rope *rope = &fw->rope[i];
    *rope = (tnd_rope){.mode = bm->arch->rope_mode, .head_dim = hp->head_dim, .n_rot = hp->n_rot,
                       .base = hp->rope_base, .scale = hp->rope_scale};
    tnd_status s = device_floats(d, bm->w.rope_freqs, hp->n_rot / 2, &rope->freq_factors.buf);
    if (s) return s;
    if (rope->freq_factors.buf) rope->freq_factors = tnd_rows_f32(rope->freq_factors.buf, hp->n_rot / 2, 0, 1);
    int64_t widest = ffn_width(hp) > hp->n_embd ? ffn_width(hp) : hp->n_embd;
    if (qw > widest) widest = qw;
    return d->vt->reserve(d, widest, n_batch);
}

/* Tells `progress` that group g is ready on its device. */
static void group_ready(const tnd_forward *fw, int32_t g, tnd_progress_fn progress, void *user, uint64_t *done) {
    if (!progress) return;
    const tnd_hparams *hp = fw->hp;
    char what[64];
    if (g == 0) snprintf(what, sizeof what, "token_embd");
    else if (g == tnd_group_output(hp->n_layer)) snprintf(what, sizeof what, "output");
    else snprintf(what, sizeof what, "blk.%d.%s", (g - 1) / 2, g == tnd_group_ffn((g - 1) / 2) ? "ffn" : "attn");
    size_t n = strlen(what);
    snprintf(what + n, sizeof what - n, " on %s", fw->devices[fw->group_device[g]]->name);
    progress(user, what, ++*done, (uint64_t)tnd_group_count(hp->n_layer));
}

tnd_status tnd_forward_setup(tnd_forward *fw, tnd_model *model, const tnd_bound_model *bm, int32_t n_batch,
                             const tnd_allocator *allocator, tnd_progress_fn progress, void *progress_user) {
    const tnd_hparams *hp = fw->hp;
    int32_t n_groups = tnd_group_count(hp->n_layer), out_group = tnd_group_output(hp->n_layer);
    /* stages: maximal runs of groups on one device */
    fw->stages = tnd_alloc_array(allocator, (size_t)n_groups, sizeof *fw->stages);
    fw->layers = tnd_alloc_array(allocator, (size_t)hp->n_layer, sizeof *fw->layers);
    if (!fw->stages || !fw->layers) return tnd_fail(TND_ERR_OUT_OF_MEMORY, "out of memory for the plan");
    for (int32_t g = 0; g < n_groups; g++) {
        if (g > 0 && fw->group_device[g] == fw->group_device[g - 1]) {
            fw->stages[fw->n_stages - 1].group_end = g + 1;
            continue;
        }
        fw->stages[fw->n_stages++] = (tnd_stage){fw->group_device[g], g, g + 1};
    }
    for (int32_t s = 0; s < fw->n_stages; s++) { /* a device that runs whole stages takes whole layers */
        const tnd_stage *st = &fw->stages[s];
        const tnd_backend *d = fw->devices[st->device];
        if (d->vt->run_stage && (st->group_begin == 0 || st->group_end > out_group || st->group_begin % 2 == 0 ||
                                 st->group_end % 2 == 0))
            return tnd_fail(TND_ERR_INVALID_ARGUMENT, "%s runs whole layers: the plan gives it groups %d to %d (the "
                            "embedding and the output head stay on this machine)", d->name, st->group_begin,
                            st->group_end - 1);
    }
    tnd_status s = TND_OK;
    uint64_t done = 0;
    for (int32_t i = 0; i < fw->n_devices && !s; i++) s = prepare_device(fw, bm, i, n_batch);
    tnd_backend *first = fw->devices[fw->group_device[0]], *last = fw->devices[fw->group_device[out_group]];
    tnd_weight embedding = bm->w.tok_embd;
    embedding.lookup_only = true;
    if (s || (s = prepare(model, first, &embedding, &fw->tok_embd))) return s;
    group_ready(fw, 0, progress, progress_user, &done);
    for (int32_t l = 0; l < hp->n_layer && !s; l++) {
        tnd_backend *da = fw->devices[fw->group_device[tnd_group_attention(l)]];
        tnd_backend *df = fw->devices[fw->group_device[tnd_group_ffn(l)]];
        tnd_backend *dx = tnd_experts_apart(fw, l) ? fw->devices[fw->expert_device] : df;
        if ((s = check_support(fw, da)) || (s = prepare_part(model, bm, da, da, l, false, &fw->layers[l]))) break;
        group_ready(fw, tnd_group_attention(l), progress, progress_user, &done);
        if ((hp->n_expert && (s = check_experts_support(fw, bm, df, l))) ||
            (dx != df && (s = check_experts_support(fw, bm, dx, l))) ||
            (s = prepare_part(model, bm, df, dx, l, true, &fw->layers[l])) ||
            (dx != df && fw->expert_cache && (s = prepare_cache(fw, bm, df, l))))
            break;
        group_ready(fw, tnd_group_ffn(l), progress, progress_user, &done);
    }
    if (s || (s = prepare(model, last, &bm->w.output, &fw->output)) ||
        (s = device_floats(last, bm->w.output_norm, hp->n_embd, &fw->output_norm)))
        return s;
    group_ready(fw, out_group, progress, progress_user, &done);
    size_t chunk = n_batch < TND_LOGITS_CHUNK ? (size_t)n_batch : TND_LOGITS_CHUNK;
    tnd_activations *a = &fw->act[fw->group_device[out_group]];
    if (!(a->logits = last->vt->alloc(last, sizeof(float) * chunk * (size_t)hp->n_vocab)))
        return tnd_fail(TND_ERR_OUT_OF_MEMORY, "out of memory for %zu rows of logits on %s", chunk, last->name);
    if (fw->n_stages > 1 && /* the hand-over between stages */
        !(fw->host_x = tnd_alloc_array(allocator, (size_t)n_batch * (size_t)hp->n_embd, sizeof(float))))
        return tnd_fail(TND_ERR_OUT_OF_MEMORY, "out of memory for the hand-over between devices");
    return prepare_hand_over(fw, n_batch, allocator);
}

void tnd_forward_release(tnd_forward *fw, const tnd_allocator *allocator) {
    const tnd_hparams *hp = fw->hp;
    if (!hp) return;
    int32_t out_group = tnd_group_output(hp->n_layer);
    if (fw->group_device && fw->devices[fw->group_device[0]]) {
        release(fw->devices[fw->group_device[0]], &fw->tok_embd);
        tnd_backend *last = fw->devices[fw->group_device[out_group]];
        release(last, &fw->output);
        free_buffer(last, fw->output_norm);
    }
    for (int32_t l = 0; fw->layers && l < hp->n_layer; l++) {
        tnd_backend *da = fw->devices[fw->group_device[tnd_group_attention(l)]];
        tnd_backend *df = fw->devices[fw->group_device[tnd_group_ffn(l)]];
        release_part(fw, da, da, false, &fw->layers[l]);
        release_part(fw, df, tnd_experts_apart(fw, l) ? fw->devices[fw->expert_device] : df, true, &fw->layers[l]);
        release_cache(df, &fw->layers[l]);
    }
    for (int32_t i = 0; i < fw->n_devices; i++) {
        tnd_backend *d = fw->devices[i];
        if (!d) continue;
        tnd_activations *a = &fw->act[i];
        tnd_buffer **bufs[N_ACTIVATIONS];
        int64_t widths[N_ACTIVATIONS];
        activation_layout(hp, a, bufs, widths);
        for (size_t k = 0; k < N_ACTIVATIONS; k++) free_buffer(d, *bufs[k]);
        free_buffer(d, a->logits);
        free_buffer(d, a->expert_far);
        free_buffer(d, fw->rope[i].freq_factors.buf);
    }
    tnd_free(allocator, fw->stages);
    tnd_free(allocator, fw->layers);
    tnd_free(allocator, fw->host_x);
    tnd_free(allocator, fw->expert_near);
    tnd_free(allocator, fw->expert_far);
    tnd_free(allocator, fw->expert_host);
}
