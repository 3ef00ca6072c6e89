/* context.c: public API of inference contexts: binding the model, its facts (groups, vocabulary, trained context),
 * making the devices and the plan (placement.c does the placing), batch validation and splitting, and the KV
 * bookkeeping around each forward step. */
#include "runtime/context.h"

#include "runtime/placement.h"

#include "backend/none/none_device.h"
#include "remote/remote.h"
#include "runtime/devices.h"
#include "backend/fault/fault_device.h"
#include "core/alloc.h"
#include "core/error.h"
#include "quant/quant.h"

#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

tnd_context_params tnd_context_default_params(void) {
    return (tnd_context_params){.n_batch = 512, .n_seq_max = 1, .kv_type = TND_TYPE_F16, .k_type = TND_TYPE_COUNT,
                                .v_type = TND_TYPE_COUNT, .kv_block_size = 64,
                                .n_devices = 1, .expert_device = -1};
}

/* ------------------------------------------------------------------------------------------------------------
 * Binding (once per model)
 * ---------------------------------------------------------------------------------------------------------- */

/* The model's binding, made by the first caller; two contexts created at once from two threads bind it once. */
static tnd_status bound_model(tnd_model *m, const tnd_bound_model **out) {
    tnd_status st = TND_OK;
    tnd_bound_model *bm = atomic_load_explicit(&m->bound, memory_order_acquire);
    if (!bm) {
        pthread_mutex_lock(&m->bind_lock);
        bm = atomic_load_explicit(&m->bound, memory_order_relaxed);
        if (!bm) {
            bm = tnd_alloc(&m->allocator, sizeof *bm);
            if (!bm)
                st = tnd_fail(TND_ERR_OUT_OF_MEMORY, "out of memory");
            else if ((st = tnd_model_bind(m->gguf, &m->allocator, bm)))
                tnd_free(&m->allocator, bm), bm = NULL;
            else
                atomic_store_explicit(&m->bound, bm, memory_order_release);
        }
        pthread_mutex_unlock(&m->bind_lock);
    }
    *out = bm;
    return st;
}

static const tnd_bound_model *bound_of(const tnd_model *m) {
    return m ? atomic_load_explicit(&((tnd_model *)m)->bound, memory_order_acquire) : NULL;
}

int32_t tnd_model_n_groups(tnd_model *m) {
    const tnd_bound_model *bm = NULL;
    if (!m) return tnd_fail(TND_ERR_INVALID_ARGUMENT, "tnd_model_n_groups: NULL model"), 0;
    return bound_model(m, &bm) ? 0 : tnd_group_count(bm->hp.n_layer);
}

tnd_status tnd_model_group(tnd_model *m, int32_t g, tnd_group_info *out) {
    if (!m || !out) return tnd_fail(TND_ERR_INVALID_ARGUMENT, "tnd_model_group: NULL model or out");
    const tnd_bound_model *bm = NULL;
    tnd_status st = bound_model(m, &bm);
    if (st) return st;
    const tnd_hparams *hp = &bm->hp;
    if (g < 0 || g >= tnd_group_count(hp->n_layer))
        return tnd_fail(TND_ERR_INVALID_ARGUMENT, "tensor group %d is outside [0, %d)", g, tnd_group_count(hp->n_layer));
    int32_t layer = g == 0 || g == tnd_group_output(hp->n_layer) ? -1 : (g - 1) / 2;
    bool attn = layer >= 0 && g == tnd_group_attention(layer);
    *out = (tnd_group_info){.layer = layer, .weight_bytes = tnd_group_weight_bytes(bm, g),
                            .kv_values_per_token = attn ? 2 * (uint64_t)hp->n_head_kv * hp->head_dim : 0,
                            .active_bytes = 0};
    out->active_bytes = tnd_group_active_bytes(bm, g, out->active_bytes_by_type);
    out->largest_tensor_bytes = tnd_group_largest_tensor(bm, g);
    if (layer < 0) snprintf(out->name, sizeof out->name, "%s", g == 0 ? "token_embd" : "output");
    else snprintf(out->name, sizeof out->name, "blk.%d.%s", layer, attn ? "attn" : "ffn");
    return TND_OK;
}

tnd_status tnd_model_plan(tnd_model *m, const tnd_context_params *p, int32_t *group_device, int32_t n_groups) {
    if (!m || !p || !group_device) return tnd_fail(TND_ERR_INVALID_ARGUMENT, "tnd_model_plan: NULL argument");
    const tnd_bound_model *bm = NULL;
    tnd_status st = bound_model(m, &bm);
    if (st) return st;
    if (n_groups != tnd_group_count(bm->hp.n_layer))
        return tnd_fail(TND_ERR_INVALID_ARGUMENT, "tnd_model_plan: %d entries for a model of %d tensor groups",
                        n_groups, tnd_group_count(bm->hp.n_layer));
    return tnd_plan_groups(&bm->hp, p, group_device);
}

int32_t tnd_model_n_vocab(const tnd_model *m) {
    if (bound_of(m)) return bound_of(m)->hp.n_vocab;
    /* not bound yet: the rows of the token embedding */
    tnd_tensor_info t;
    int64_t i = tnd_model_tensor_find(m, "token_embd.weight");
    return i >= 0 && tnd_model_tensor_at(m, i, &t) == TND_OK && t.ne[1] < INT32_MAX ? (int32_t)t.ne[1] : 0;
}
int32_t tnd_model_n_ctx_train(const tnd_model *m) {
    if (bound_of(m)) return bound_of(m)->hp.n_ctx_train;
    /* not bound yet: the file's <arch>.context_length, read without binding */
    const char *arch = NULL;
    size_t len = 0;
    int64_t v = 0;
    char key[96];
    if (tnd_model_meta_string(m, "general.architecture", &arch, &len) != TND_OK || len > 64) return 0;
    snprintf(key, sizeof key, "%.*s.context_length", (int)len, arch);
    return tnd_model_meta_int(m, key, &v) == TND_OK && v > 0 && v < (1 << 24) ? (int32_t)v : 0;
}

/* ------------------------------------------------------------------------------------------------------------
 * Creation
 * ---------------------------------------------------------------------------------------------------------- */

static tnd_status check_params(const tnd_context_params *p) {
    if (p->n_ctx < 0 || p->n_batch < 1 || p->n_seq_max < 1 || p->n_threads < 0 || p->kv_block_size < 1 ||
        p->n_batch > (1 << 20) || p->n_seq_max > (1 << 16) || p->kv_block_size > 4096 ||
        p->remote_connect_timeout_ms < 0)
        return tnd_fail(TND_ERR_INVALID_ARGUMENT, "context params out of range: n_ctx %d, n_batch %d, n_seq_max %d,"
                        " n_threads %d, kv_block_size %d, remote_connect_timeout_ms %d", p->n_ctx, p->n_batch,
                        p->n_seq_max, p->n_threads, p->kv_block_size, p->remote_connect_timeout_ms);
    return TND_OK;
}

/* Where each layer's experts live and the cache of hot experts, from the params (see expert_device). */
static tnd_status plan_experts(tnd_context *ctx, const tnd_context_params *p) {
    const tnd_hparams *hp = ctx->fw.hp;
    if (p->expert_device < 0) {
        if (p->expert_cache_slots > 0)
            return tnd_fail(TND_ERR_INVALID_ARGUMENT, "a cache of hot experts needs the experts apart from their "
                            "feed-forward group (expert_device, --experts-on)");
        return TND_OK;
    }
    if (!hp->n_expert)
        return tnd_fail(TND_ERR_INVALID_ARGUMENT, "expert_device %d: the model has no mixture-of-experts layers",
                        p->expert_device);
    if (p->expert_device >= p->n_devices)
        return tnd_fail(TND_ERR_INVALID_ARGUMENT, "expert_device %d: the plan has %d devices", p->expert_device,
                        p->n_devices);
    if (p->device_kinds && p->device_kinds[p->expert_device] != 0) /* it runs ops outside its own stages */
        return tnd_fail(TND_ERR_INVALID_ARGUMENT, "expert_device %d: the experts apart live on a CPU device (cpu0, "
                        "...), not a GPU or a cloud", p->expert_device);
    if (p->expert_cache_slots < 0 || p->expert_cache_slots >= hp->n_expert)
        return tnd_fail(TND_ERR_INVALID_ARGUMENT, "a cache of %d experts per layer: the model's layers have %d, and "
                        "a cache holds 0 to %d", p->expert_cache_slots, hp->n_expert, hp->n_expert - 1);
    ctx->fw.expert_device = p->expert_device;
    bool apart = false;
    for (int32_t l = 0; l < hp->n_layer; l++) apart |= tnd_experts_apart(&ctx->fw, l);
    ctx->fw.host_layers = ctx->bm->w.layers;
    ctx->fw.expert_failure = &ctx->expert_failure;
    if (!p->expert_cache_slots) return TND_OK;
    if (!apart)
        return tnd_fail(TND_ERR_INVALID_ARGUMENT, "a cache of hot experts: every feed-forward group is on the experts' "
                        "device %d already, so there is nothing to cache", p->expert_device);
    tnd_status st = tnd_expert_cache_init(&ctx->expert_cache, hp->n_layer, hp->n_expert, p->expert_cache_slots,
                                          p->expert_cache_policy, &ctx->allocator);
    if (!st) ctx->fw.expert_cache = &ctx->expert_cache;
    return st;
}

void tnd_context_expert_cache_stats(tnd_context *ctx, tnd_expert_cache_stats *out, int reset) {
    if (!out) return;
    memset(out, 0, sizeof *out);
    if (!ctx || !ctx->fw.expert_cache) return;
    *out = ctx->expert_cache.stats;
    if (reset) memset(&ctx->expert_cache.stats, 0, sizeof ctx->expert_cache.stats);
}

int32_t tnd_context_expert_cache_held(tnd_context *ctx, int32_t layer, int32_t slot) {
    const tnd_expert_cache *c = ctx ? ctx->fw.expert_cache : NULL;
    if (!c || layer < 0 || layer >= c->n_layers || slot < 0 || slot >= c->n_slots ||
        !tnd_experts_apart(&ctx->fw, layer))
        return -1;
    return tnd_expert_cache_held(c, layer, slot);
}

/* The context's cloud device: its link carries the KV cache's geometry, which the cloud's pools mirror. */
static tnd_status make_remote(const tnd_context *ctx, const tnd_context_params *p, int32_t index, const char *name,
                              tnd_backend **out) {
    *out = NULL;
    if (!p->remote) return tnd_fail(TND_ERR_INVALID_ARGUMENT, "the plan has a cloud device but no address (remote)");
    tnd_link_key key;
    tnd_status st = p->remote_key_file ? tnd_link_key_load(p->remote_key_file, &key) : TND_OK;
    if (st) return st;
    int32_t bs = p->kv_block_size;
    tnd_remote_params rp = {.host_port = p->remote, .key = p->remote_key_file ? &key : NULL,
                            .k_type = ctx->fw.k_type, .v_type = ctx->fw.v_type, .block_size = bs,
                            .n_blocks = (ctx->n_ctx + bs - 1) / bs, .n_batch = ctx->n_batch,
                            .connect_timeout_ms = p->remote_connect_timeout_ms,
                            .stand_in = p->remote_stand_in ? ctx->model : NULL, .n_threads = p->n_threads,
                            .group_device = ctx->group_device, .n_groups = tnd_group_count(ctx->fw.hp->n_layer),
                            .index = index};
    st = tnd_remote_device_init(ctx->model, &rp, name, out);
    memset(&key, 0, sizeof key);
    return st;
}

/* With TANDEM_FAULT set (a testing aid, see backend/fault/fault_device.h), wraps the device in one that fails once
 * as it says. */
static tnd_status inject_faults(tnd_context *ctx, tnd_backend **device) {
    const char *spec = getenv("TANDEM_FAULT");
    if (!spec || !*spec) return TND_OK;
    tnd_backend *wrapped = NULL;
    tnd_status st = tnd_backend_fault_wrap(*device, spec, &ctx->allocator, &wrapped);
    if (!st) *device = wrapped;
    return st;
}

tnd_status tnd_context_init(tnd_model *model, const tnd_context_params *params, tnd_context **out) {
    if (out) *out = NULL;
    if (!model || !out) return tnd_fail(TND_ERR_INVALID_ARGUMENT, "tnd_context_init: NULL model or out");
    tnd_context_params p = params ? *params : tnd_context_default_params();
    const tnd_bound_model *bm = NULL;
    tnd_status st = bound_model(model, &bm);
    if (st) return st;
    if ((st = check_params(&p))) return st;
    tnd_context *ctx = tnd_alloc(&model->allocator, sizeof *ctx);
    if (!ctx) return tnd_fail(TND_ERR_OUT_OF_MEMORY, "out of memory");
    ctx->model = model;
    ctx->bm = bm;
    ctx->allocator = model->allocator;
    const tnd_hparams *hp = &bm->hp;
    ctx->n_ctx = p.n_ctx ? p.n_ctx : hp->n_ctx_train;
    ctx->n_batch = p.n_batch;
    ctx->n_seq = p.n_seq_max;
    tnd_forward *fw = &ctx->fw;
    fw->arch = bm->arch;
    fw->hp = hp;
    fw->expert_device = -1; /* experts with their groups until plan_experts says otherwise */
    fw->k_type = p.k_type == TND_TYPE_COUNT ? p.kv_type : p.k_type;
    fw->v_type = p.v_type == TND_TYPE_COUNT ? p.kv_type : p.v_type;
    tnd_type kv_types[2] = {fw->k_type, fw->v_type};
    for (int i = 0; i < 2; i++)
        if (tnd_type_name(kv_types[i]) && !tnd_row_size(kv_types[i], hp->head_dim)) {
            st = tnd_fail(TND_ERR_UNSUPPORTED, "%s cache type %s needs a head size that is a multiple of its block "
                          "(head size %d)", i ? "V" : "K", tnd_type_name(kv_types[i]), hp->head_dim);
            goto fail;
        }
    ctx->group_device = tnd_alloc_array(&ctx->allocator, (size_t)tnd_group_count(hp->n_layer), sizeof(int32_t));
    if (!ctx->group_device) {
        st = tnd_fail(TND_ERR_OUT_OF_MEMORY, "out of memory");
        goto fail;
    }
    if ((st = tnd_plan_groups(hp, &p, ctx->group_device))) goto fail;
    fw->group_device = ctx->group_device;
    for (int32_t d = 0, n_cpu = 0; d < p.n_devices; d++) {
        int32_t kind = p.device_kinds ? p.device_kinds[d] : 0;
        char name[16];
        if (kind == 0) snprintf(name, sizeof name, "cpu%d", n_cpu++);
        else tnd_device_kind_name(kind, name, sizeof name);
        for (int32_t e = 0; e < d && kind; e++)
            if (p.device_kinds[e] == kind) {
                st = tnd_fail(TND_ERR_INVALID_ARGUMENT, "the plan names device %s twice", name);
                goto fail;
            }
        if ((st = kind == TND_DEVICE_REMOTE ? make_remote(ctx, &p, d, name, &fw->devices[d])
                  : kind == TND_DEVICE_NONE ? tnd_none_device_init(name, &fw->devices[d])
                                            : tnd_device_make(kind, p.n_threads, p.kernels == TND_KERNELS_REFERENCE,
                                                              &ctx->allocator, name, &fw->devices[d])))
            goto fail;
        fw->n_devices = d + 1; /* owned by the context from here, wrapped or not */
        if (kind == TND_DEVICE_REMOTE) ctx->remote = fw->devices[d];
        if (kind != TND_DEVICE_NONE && (st = inject_faults(ctx, &fw->devices[d]))) goto fail; /* (it runs nothing) */
    }
    if ((st = plan_experts(ctx, &p)) || (st = tnd_plan_check_memory(fw, bm, ctx->n_ctx, ctx->n_batch)) ||
        (st = tnd_forward_setup(fw, model, bm, ctx->n_batch, &ctx->allocator, p.progress, p.progress_user)))
        goto fail;
    size_t nb = (size_t)ctx->n_batch, nv = (size_t)hp->n_vocab;
    ctx->slots = tnd_alloc_array(&ctx->allocator, nb, sizeof(int64_t));
    ctx->n_ctx_of = tnd_alloc_array(&ctx->allocator, nb, sizeof(int32_t));
    ctx->tables = tnd_alloc_array(&ctx->allocator, nb, sizeof(int32_t *));
    ctx->want = tnd_alloc_array(&ctx->allocator, nb, sizeof(int8_t));
    ctx->step_tokens = tnd_alloc_array(&ctx->allocator, nb, sizeof(int32_t));
    ctx->step_pos = tnd_alloc_array(&ctx->allocator, nb, sizeof(int32_t));
    ctx->step_seq = tnd_alloc_array(&ctx->allocator, nb, sizeof(int32_t));
    ctx->step_logits = tnd_alloc_array(&ctx->allocator, nb, sizeof(int8_t));
    ctx->logits = tnd_alloc_array(&ctx->allocator, nv, sizeof(float)); /* one row; decode grows it */
    ctx->logits_cap = 1;
    if (!ctx->slots || !ctx->n_ctx_of || !ctx->tables || !ctx->want || !ctx->logits || !ctx->step_tokens ||
        !ctx->step_pos || !ctx->step_seq || !ctx->step_logits) {
        st = tnd_fail(TND_ERR_OUT_OF_MEMORY, "out of memory for batch buffers (n_batch %d, n_vocab %d)", ctx->n_batch,
                      hp->n_vocab);
        goto fail;
    }
    tnd_backend *layer_device[4096]; /* the KV cache of a layer lives with its attention */
    for (int32_t l = 0; l < hp->n_layer; l++) layer_device[l] = fw->devices[ctx->group_device[tnd_group_attention(l)]];
    if ((st = tnd_kv_cache_init(&ctx->kv, fw->k_type, fw->v_type, ctx->n_ctx, p.kv_block_size, ctx->n_seq, hp->n_layer,
                                (int64_t)hp->n_head_kv * hp->head_dim, layer_device, &ctx->allocator)))
        goto fail;
    fw->k_pool = ctx->kv.k_pool;
    fw->v_pool = ctx->kv.v_pool;
    *out = ctx;
    return TND_OK;
fail:
    tnd_context_free(ctx);
    return st;
}

void tnd_context_free(tnd_context *ctx) {
    if (!ctx) return;
    tnd_forward *fw = &ctx->fw;
    if (ctx->kv.refcount) tnd_kv_cache_free(&ctx->kv);
    tnd_forward_release(fw, &ctx->allocator);
    for (int32_t d = 0; d < fw->n_devices; d++) fw->devices[d]->vt->destroy(fw->devices[d]);
    tnd_allocator a = ctx->allocator;
    tnd_free(&a, ctx->group_device);
    tnd_expert_cache_free(&ctx->expert_cache);
    tnd_free(&a, ctx->slots);
    tnd_free(&a, ctx->n_ctx_of);
    tnd_free(&a, ctx->tables);
    tnd_free(&a, ctx->want);
    tnd_free(&a, ctx->step_tokens);
    tnd_free(&a, ctx->step_pos);
    tnd_free(&a, ctx->step_seq);
    tnd_free(&a, ctx->step_logits);
    tnd_free(&a, ctx->logits);
    tnd_free(&a, ctx);
}

/* ------------------------------------------------------------------------------------------------------------
 * Decoding
 * ---------------------------------------------------------------------------------------------------------- */

static tnd_status check_batch(const tnd_context *ctx, const tnd_batch *b) {
    if (!b || b->n_tokens < 1 || !b->tokens || !b->pos)
        return tnd_fail(TND_ERR_INVALID_ARGUMENT, "batch: needs n_tokens >= 1, tokens and positions");
    for (int32_t i = 0; i < b->n_tokens; i++) {
        if (b->tokens[i] < 0 || b->tokens[i] >= ctx->bm->hp.n_vocab)
            return tnd_fail(TND_ERR_INVALID_ARGUMENT, "batch entry %d: token id %d is outside the vocabulary (0..%d)",
                            i, b->tokens[i], ctx->bm->hp.n_vocab - 1);
        int32_t seq = b->seq_id ? b->seq_id[i] : 0;
        if (seq < 0 || seq >= ctx->n_seq)
            return tnd_fail(TND_ERR_INVALID_ARGUMENT, "batch entry %d: sequence id %d is out of range (0..%d)", i,
                            seq, ctx->n_seq - 1);
    }
    return TND_OK;
}

/* Cuts the sequences of entries [from, to) of b back to the lengths they had before those entries, last first. */
static void undo_entries(tnd_context *ctx, const tnd_batch *b, int32_t from, int32_t to) {
    for (int32_t j = to - 1; j >= from; j--) tnd_kv_cache_truncate(&ctx->kv, b->seq_id ? b->seq_id[j] : 0, b->pos[j]);
}

/* Runs one micro-batch [i0, i0 + n) of b. KV rows are reserved first; on failure (no KV room, a device that failed)
 * the sequences touched are cut back to their lengths before this micro-batch. Logits go to ctx->logits after the
 * *n_logits rows already there. */
static tnd_status decode_chunk(tnd_context *ctx, const tnd_batch *b, int32_t i0, int32_t n, int32_t *n_logits) {
    tnd_status st = TND_OK;
    int32_t i = 0;
    for (; i < n && !st; i++)
        st = tnd_kv_cache_append(&ctx->kv, b->seq_id ? b->seq_id[i0 + i] : 0, b->pos[i0 + i], &ctx->slots[i]);
    if (st) {
        undo_entries(ctx, b, i0, i0 + i - 1); /* entry i - 1 failed and appended nothing */
        return st;
    }
    for (i = 0; i < n; i++) { /* block tables are final only after all appends */
        int32_t seq = b->seq_id ? b->seq_id[i0 + i] : 0;
        tnd_kv_cache_set_token(&ctx->kv, ctx->slots[i], b->tokens[i0 + i]);
        ctx->tables[i] = ctx->kv.seqs[seq].blocks;
        ctx->n_ctx_of[i] = b->pos[i0 + i] + 1;
        ctx->want[i] = b->logits ? (b->logits[i0 + i] != 0) : (i0 + i == b->n_tokens - 1);
    }
    tnd_step step = {.n_tokens = n, .pos = b->pos + i0, .slots = ctx->slots, .block_tables = ctx->tables,
                     .n_ctx = ctx->n_ctx_of, .block_size = ctx->kv.block_size};
    int32_t rows = 0;
    st = tnd_forward_run(&ctx->fw, &step, b->tokens + i0, ctx->want,
                         ctx->logits + (size_t)*n_logits * (size_t)ctx->bm->hp.n_vocab, &rows);
    if (st) {
        undo_entries(ctx, b, i0, i0 + n);
        return st;
    }
    *n_logits += rows;
    return TND_OK;
}

/* Validates, then runs the batch in micro-batches of n_batch; a failure undoes the whole batch. */
tnd_status tnd_context_decode(tnd_context *ctx, const tnd_batch *b) {
    if (!ctx) return tnd_fail(TND_ERR_INVALID_ARGUMENT, "tnd_context_decode: NULL context");
    ctx->n_logits = 0;
    tnd_status st = check_batch(ctx, b);
    if (st) return st;
    int32_t asked = b->logits ? 0 : 1;
    for (int32_t i = 0; b->logits && i < b->n_tokens; i++) asked += b->logits[i] != 0;
    if (asked > ctx->logits_cap) { /* room for the rows asked for, before anything changes */
        size_t nv = (size_t)ctx->bm->hp.n_vocab;
        float *grown = tnd_alloc_array(&ctx->allocator, (size_t)asked * nv, sizeof(float));
        if (!grown)
            return tnd_fail(TND_ERR_OUT_OF_MEMORY, "out of memory for the logits of %d batch entries (%zu bytes)",
                            asked, (size_t)asked * nv * sizeof(float));
        tnd_free(&ctx->allocator, ctx->logits);
        ctx->logits = grown;
        ctx->logits_cap = asked;
    }
    int32_t n_logits = 0;
    for (int32_t i0 = 0; i0 < b->n_tokens; i0 += ctx->n_batch) {
        int32_t n = b->n_tokens - i0 < ctx->n_batch ? b->n_tokens - i0 : ctx->n_batch;
        if ((st = decode_chunk(ctx, b, i0, n, &n_logits))) {
            undo_entries(ctx, b, 0, i0); /* the micro-batches that ran */
            return st;
        }
    }
    ctx->n_logits = n_logits;
    return TND_OK;
}

int32_t tnd_context_n_embd(const tnd_context *ctx) { return ctx ? (int32_t)ctx->bm->hp.n_embd : 0; }

tnd_pooling tnd_model_pooling(const tnd_model *m) {
    const char *arch = NULL;
    size_t len = 0;
    int64_t type = 0;
    char key[96];
    if (tnd_model_meta_string(m, "general.architecture", &arch, &len) != TND_OK || len > 64) return TND_POOLING_LAST;
    snprintf(key, sizeof key, "%.*s.pooling_type", (int)len, arch);
    if (tnd_model_meta_int(m, key, &type) != TND_OK) return TND_POOLING_LAST;
    return type == 1 ? TND_POOLING_MEAN : type == 2 ? TND_POOLING_FIRST : TND_POOLING_LAST;
}

/* The hidden rows of one micro-batch are at ctx->logits, n_embd floats each: the pooling takes them from there. */
tnd_status tnd_context_embed(tnd_context *ctx, int32_t seq, const int32_t *tokens, int32_t n, tnd_pooling pooling,
                             float *out) {
    if (!ctx || !tokens || !out) return tnd_fail(TND_ERR_INVALID_ARGUMENT, "tnd_context_embed: NULL argument");
    if (n < 1 || n > ctx->n_ctx)
        return tnd_fail(TND_ERR_INVALID_ARGUMENT, "embedding: the text has %d tokens; the context takes 1 to %d", n,
                        ctx->n_ctx);
    if (seq < 0 || seq >= ctx->n_seq)
        return tnd_fail(TND_ERR_INVALID_ARGUMENT, "embedding: sequence %d is outside [0, %d)", seq, ctx->n_seq);
    if (pooling != TND_POOLING_LAST && pooling != TND_POOLING_MEAN && pooling != TND_POOLING_FIRST)
        return tnd_fail(TND_ERR_INVALID_ARGUMENT, "embedding: unknown pooling %d", (int)pooling);
    int32_t e = (int32_t)ctx->bm->hp.n_embd;
    if (e > ctx->bm->hp.n_vocab) /* the hidden rows go where logits go, n_vocab floats a row */
        return tnd_fail(TND_ERR_UNSUPPORTED, "embedding: hidden states wider than the vocabulary (%d > %d)", e,
                        (int)ctx->bm->hp.n_vocab);
    double *sum = tnd_alloc_array(&ctx->allocator, (size_t)e, sizeof *sum);
    if (!sum) return tnd_fail(TND_ERR_OUT_OF_MEMORY, "embedding: out of memory");
    tnd_kv_cache_truncate(&ctx->kv, seq, 0);
    ctx->fw.output_hidden = true;
    tnd_status st = TND_OK;
    for (int32_t i0 = 0; i0 < n && !st; i0 += ctx->n_batch) {
        int32_t m = n - i0 < ctx->n_batch ? n - i0 : ctx->n_batch;
        for (int32_t i = 0; i < m; i++) {
            int32_t at = i0 + i;
            ctx->step_pos[i] = at;
            ctx->step_seq[i] = seq;
            ctx->step_logits[i] = pooling == TND_POOLING_MEAN || (pooling == TND_POOLING_LAST && at == n - 1) ||
                                  (pooling == TND_POOLING_FIRST && at == 0);
        }
        tnd_batch b = {.n_tokens = m, .tokens = tokens + i0, .pos = ctx->step_pos, .seq_id = ctx->step_seq,
                       .logits = ctx->step_logits};
        if ((st = tnd_context_decode(ctx, &b))) break;
        for (int32_t r = 0; r < ctx->n_logits; r++)
            for (int32_t j = 0; j < e; j++) sum[j] += ctx->logits[(size_t)r * (size_t)e + (size_t)j];
    }
    ctx->fw.output_hidden = false;
    ctx->n_logits = 0; /* the rows held hidden states, not logits */
    tnd_kv_cache_truncate(&ctx->kv, seq, 0);
    if (!st) {
        double norm = 0;
        for (int32_t j = 0; j < e; j++) norm += sum[j] * sum[j];
        norm = norm > 0 ? 1.0 / sqrt(norm) : 0; /* the mean's 1/n cancels in the scaling */
        for (int32_t j = 0; j < e; j++) out[j] = (float)(sum[j] * norm);
    }
    tnd_free(&ctx->allocator, sum);
    return st;
}

const float *tnd_context_logits(const tnd_context *ctx, int32_t i) {
    if (!ctx || i < 0 || i >= ctx->n_logits) return NULL;
    return ctx->logits + (size_t)i * (size_t)ctx->bm->hp.n_vocab;
}

int32_t tnd_context_seq_length(const tnd_context *ctx, int32_t seq) {
    return ctx && seq >= 0 && seq < ctx->n_seq ? ctx->kv.seqs[seq].len : 0;
}

int32_t tnd_context_seq_cached_prefix(const tnd_context *ctx, int32_t seq, const int32_t *tokens, int32_t n) {
    return ctx ? tnd_kv_cache_prefix(&ctx->kv, seq, tokens, n) : 0;
}

tnd_status tnd_context_seq_truncate(tnd_context *ctx, int32_t seq, int32_t len) {
    if (!ctx) return tnd_fail(TND_ERR_INVALID_ARGUMENT, "NULL context");
    return tnd_kv_cache_truncate(&ctx->kv, seq, len);
}

tnd_status tnd_context_seq_fork(tnd_context *ctx, int32_t src, int32_t dst) {
    if (!ctx) return tnd_fail(TND_ERR_INVALID_ARGUMENT, "NULL context");
    return tnd_kv_cache_fork(&ctx->kv, src, dst);
}

void tnd_context_profile_get(tnd_context *ctx, tnd_context_profile *out, int reset) {
    if (!out) return;
    tnd_device_profile sum = {0};
    for (int32_t d = 0; ctx && d < ctx->fw.n_devices; d++)
        if (ctx->fw.devices[d]->vt->profile) ctx->fw.devices[d]->vt->profile(ctx->fw.devices[d], &sum, reset);
    *out = (tnd_context_profile){sum.matmul_seconds,  sum.attention_seconds, sum.matmul_bytes, sum.attention_bytes,
                                 sum.link_seconds,    sum.link_compute_seconds, sum.link_stages};
}

int tnd_context_cloud_lost(const tnd_context *ctx, char *why, size_t cap) {
    return ctx && ctx->remote && tnd_remote_device_taken_over(ctx->remote, why, cap);
}

void tnd_context_set_background(tnd_context *ctx, int on) {
    for (int32_t d = 0; ctx && d < ctx->fw.n_devices; d++)
        if (ctx->fw.devices[d]->vt->set_background) ctx->fw.devices[d]->vt->set_background(ctx->fw.devices[d], on);
}

void tnd_context_kv_usage(const tnd_context *ctx, int32_t *used_blocks, int32_t *total_blocks) {
    if (used_blocks) *used_blocks = ctx ? tnd_kv_cache_used_blocks(&ctx->kv) : 0;
    if (total_blocks) *total_blocks = ctx ? ctx->kv.n_blocks : 0;
}
