/* context.c: public API of inference contexts: placement of layers on devices, buffers, batch validation and
 * splitting, KV bookkeeping around each forward step. */
#include "runtime/context.h"

#include "backend/cpu/cpu_backend.h"
#include "backend/fault/fault_device.h"
#include "core/alloc.h"
#include "core/error.h"
#include "quant/quant.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

tnd_context_params tnd_context_default_params(void) {
    return (tnd_context_params){.n_batch = 512, .n_seq_max = 1, .kv_type = TND_TYPE_F16, .kv_block_size = 64,
                                .n_devices = 1};
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

int32_t tnd_model_n_vocab(const tnd_model *m) { return bound_of(m) ? bound_of(m)->hp.n_vocab : 0; }
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
 * Devices and buffers
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
static tnd_status prepare(tnd_context *ctx, tnd_backend *d, const tnd_weight *host, tnd_weight *out) {
    tnd_status s = d->vt->prepare_weight(d, host, out);
    if (!s && out->data != host->data)
        tnd_mapped_file_release(&ctx->model->file, host->data, (uint64_t)host->row_bytes * (uint64_t)host->n_rows);
    return s;
}

/* Prepares the device views of layers [begin, end) on st->device. */
static tnd_status prepare_stage(tnd_context *ctx, tnd_stage *st) {
    const tnd_hparams *hp = &ctx->bm->hp;
    tnd_backend *d = st->device;
    int32_t n = st->layer_end - st->layer_begin;
    int64_t qw = (int64_t)hp->n_head * hp->head_dim, kvw = (int64_t)hp->n_head_kv * hp->head_dim;
    st->layers = tnd_alloc_array(&ctx->allocator, (size_t)n, sizeof(tnd_device_layer));
    if (!st->layers) return tnd_fail(TND_ERR_OUT_OF_MEMORY, "out of memory");
    tnd_status s = TND_OK;
    for (int32_t i = 0; i < n && !s; i++) {
        const tnd_layer *h = &ctx->bm->w.layers[st->layer_begin + i];
        tnd_device_layer *l = &st->layers[i];
        if ((s = prepare(ctx, d, &h->wq, &l->wq)) || (s = prepare(ctx, d, &h->wk, &l->wk)) ||
            (s = prepare(ctx, d, &h->wv, &l->wv)) || (s = prepare(ctx, d, &h->wo, &l->wo)) ||
            (s = prepare(ctx, d, &h->w_gate, &l->w_gate)) || (s = prepare(ctx, d, &h->w_up, &l->w_up)) ||
            (s = prepare(ctx, d, &h->w_down, &l->w_down)) ||
            (s = device_floats(d, h->attn_norm, hp->n_embd, &l->attn_norm)) ||
            (s = device_floats(d, h->ffn_norm, hp->n_embd, &l->ffn_norm)) ||
            (s = device_floats(d, h->bq, qw, &l->bq)) || (s = device_floats(d, h->bk, kvw, &l->bk)) ||
            (s = device_floats(d, h->bv, kvw, &l->bv)) || (s = device_floats(d, h->q_norm, hp->head_dim, &l->q_norm)) ||
            (s = device_floats(d, h->k_norm, hp->head_dim, &l->k_norm)))
            tnd_error_prefix("layer %d on %s: ", st->layer_begin + i, d->name);
    }
    if (s) return s;
    const tnd_bound_model *bm = ctx->bm;
    st->rope = (tnd_rope){.mode = bm->arch->rope_mode, .head_dim = hp->head_dim, .n_rot = hp->n_rot,
                          .base = hp->rope_base, .scale = hp->rope_scale};
    if ((s = device_floats(d, bm->w.rope_freqs, hp->n_rot / 2, &st->rope.freq_factors.buf))) return s;
    st->rope.freq_factors = tnd_rows_f32(st->rope.freq_factors.buf, hp->n_rot / 2, 0, 1);
    /* activations for n_batch tokens */
    size_t nb = (size_t)ctx->n_batch;
    tnd_activations *a = &st->act;
    tnd_buffer **bufs[] = {&a->x, &a->xn, &a->q, &a->k, &a->v, &a->attn, &a->gate, &a->up};
    int64_t widths[] = {hp->n_embd, hp->n_embd, qw, kvw, kvw, qw, hp->n_ff, hp->n_ff};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) {
        *bufs[i] = d->vt->alloc(d, sizeof(float) * nb * (size_t)widths[i]);
        if (!*bufs[i]) return tnd_fail(TND_ERR_OUT_OF_MEMORY, "out of memory for activations on %s", d->name);
    }
    return TND_OK;
}

static void release_stage(tnd_context *ctx, tnd_stage *st) {
    tnd_backend *d = st->device;
    if (!d) return;
    for (int32_t i = 0; st->layers && i < st->layer_end - st->layer_begin; i++) {
        tnd_device_layer *l = &st->layers[i];
        tnd_weight *ws[] = {&l->wq, &l->wk, &l->wv, &l->wo, &l->w_gate, &l->w_up, &l->w_down};
        for (size_t k = 0; k < sizeof ws / sizeof ws[0]; k++)
            if (ws[k]->data) d->vt->release_weight(d, ws[k]);
        tnd_buffer *vs[] = {l->attn_norm, l->ffn_norm, l->bq, l->bk, l->bv, l->q_norm, l->k_norm};
        for (size_t k = 0; k < sizeof vs / sizeof vs[0]; k++) free_buffer(d, vs[k]);
    }
    tnd_free(&ctx->allocator, st->layers);
    free_buffer(d, st->rope.freq_factors.buf);
    tnd_activations *a = &st->act;
    tnd_buffer *bufs[] = {a->x, a->xn, a->q, a->k, a->v, a->attn, a->gate, a->up, a->logits};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) free_buffer(d, bufs[i]);
}

/* Splits the layers over the devices: the caller's counts, or as even as possible. */
static tnd_status plan_stages(tnd_context *ctx, const tnd_context_params *p) {
    int32_t n_layer = ctx->bm->hp.n_layer, n_dev = p->n_devices;
    if (n_dev < 1 || n_dev > TND_MAX_STAGES || n_dev > n_layer)
        return tnd_fail(TND_ERR_INVALID_ARGUMENT, "n_devices %d must be in 1..%d (and at most the %d layers)", n_dev,
                        TND_MAX_STAGES, n_layer);
    int32_t begin = 0;
    for (int32_t i = 0; i < n_dev; i++) {
        int32_t count = p->layers_per_device ? p->layers_per_device[i] : n_layer / n_dev + (i < n_layer % n_dev);
        if (count < 1 || begin + count > n_layer)
            return tnd_fail(TND_ERR_INVALID_ARGUMENT, "placement: device %d gets %d layers (layers %d.. of %d)", i,
                            count, begin, n_layer);
        ctx->fw.stages[i].layer_begin = begin;
        ctx->fw.stages[i].layer_end = begin + count;
        begin += count;
    }
    if (begin != n_layer)
        return tnd_fail(TND_ERR_INVALID_ARGUMENT, "placement covers %d of the model's %d layers", begin, n_layer);
    ctx->fw.n_stages = n_dev;
    return TND_OK;
}

static tnd_status check_params(const tnd_context_params *p) {
    if (p->n_ctx < 0 || p->n_batch < 1 || p->n_seq_max < 1 || p->n_threads < 0 || p->kv_block_size < 1 ||
        p->n_batch > (1 << 20) || p->n_seq_max > (1 << 16) || p->kv_block_size > 4096)
        return tnd_fail(TND_ERR_INVALID_ARGUMENT, "context params out of range: n_ctx %d, n_batch %d, n_seq_max %d,"
                        " n_threads %d, kv_block_size %d", p->n_ctx, p->n_batch, p->n_seq_max, p->n_threads,
                        p->kv_block_size);
    return TND_OK;
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

/* Whether device d can run the attention and KV store of this model's layers with this KV type (a weight type it
 * cannot multiply by is refused by prepare_weight, which names the tensor's layer). */
static tnd_status check_support(const tnd_context *ctx, tnd_backend *d, tnd_type kv_type) {
    const tnd_hparams *hp = &ctx->bm->hp;
    tnd_op_query q = {.op = TND_OP_ATTENTION, .type = kv_type, .n_head = hp->n_head, .n_head_kv = hp->n_head_kv,
                      .head_dim = hp->head_dim};
    if (!d->vt->supports(d, &q) || (q.op = TND_OP_KV_STORE, !d->vt->supports(d, &q)))
        return tnd_fail(TND_ERR_UNSUPPORTED, "%s cannot run attention with %d heads, %d KV heads of %d dims and a %s"
                        " KV cache", d->name, hp->n_head, hp->n_head_kv, hp->head_dim,
                        tnd_type_name(kv_type) ? tnd_type_name(kv_type) : "unknown");
    return TND_OK;
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
    ctx->fw.hp = hp;
    ctx->fw.kv_type = p.kv_type;
    if ((st = plan_stages(ctx, &p))) goto fail;
    tnd_forward *fw = &ctx->fw;
    tnd_backend *layer_device[4096];
    for (int32_t s = 0; s < fw->n_stages; s++) {
        char name[16];
        snprintf(name, sizeof name, "cpu%d", s);
        if ((st = tnd_backend_cpu_init(p.n_threads, p.kernels == TND_KERNELS_REFERENCE, &ctx->allocator, name,
                                       &ctx->devices[s])) ||
            (st = inject_faults(ctx, &ctx->devices[s])))
            goto fail;
        fw->stages[s].device = ctx->devices[s];
        if ((st = check_support(ctx, ctx->devices[s], p.kv_type)) || (st = prepare_stage(ctx, &fw->stages[s])))
            goto fail;
        int64_t widest = hp->n_ff > hp->n_embd ? hp->n_ff : hp->n_embd;
        if ((int64_t)hp->n_head * hp->head_dim > widest) widest = (int64_t)hp->n_head * hp->head_dim;
        if ((st = ctx->devices[s]->vt->reserve(ctx->devices[s], widest, ctx->n_batch))) goto fail;
        for (int32_t l = fw->stages[s].layer_begin; l < fw->stages[s].layer_end; l++) layer_device[l] = ctx->devices[s];
    }
    tnd_backend *first = ctx->devices[0], *last = ctx->devices[fw->n_stages - 1];
    tnd_weight embedding = bm->w.tok_embd;
    embedding.lookup_only = true;
    if ((st = prepare(ctx, first, &embedding, &fw->tok_embd)) || (st = prepare(ctx, last, &bm->w.output, &fw->output)) ||
        (st = device_floats(last, bm->w.output_norm, hp->n_embd, &fw->output_norm)))
        goto fail;
    size_t nb = (size_t)ctx->n_batch, nv = (size_t)hp->n_vocab;
    size_t chunk = nb < TND_LOGITS_CHUNK ? nb : TND_LOGITS_CHUNK;
    fw->stages[fw->n_stages - 1].act.logits = last->vt->alloc(last, sizeof(float) * chunk * nv);
    ctx->slots = tnd_alloc_array(&ctx->allocator, nb, sizeof(int64_t));
    ctx->n_ctx_of = tnd_alloc_array(&ctx->allocator, nb, sizeof(int32_t));
    ctx->tables = tnd_alloc_array(&ctx->allocator, nb, sizeof(int32_t *));
    ctx->want = tnd_alloc_array(&ctx->allocator, nb, sizeof(int8_t));
    if (fw->n_stages > 1) /* the hand-over between devices */
        fw->host_x = tnd_alloc_array(&ctx->allocator, nb * (size_t)hp->n_embd, sizeof(float));
    ctx->logits = tnd_alloc_array(&ctx->allocator, nv, sizeof(float)); /* one row; decode grows it */
    ctx->logits_cap = 1;
    if (!fw->stages[fw->n_stages - 1].act.logits || !ctx->slots || !ctx->n_ctx_of || !ctx->tables || !ctx->want ||
        (fw->n_stages > 1 && !fw->host_x) || !ctx->logits) {
        st = tnd_fail(TND_ERR_OUT_OF_MEMORY, "out of memory for batch buffers (n_batch %d, n_vocab %d)", ctx->n_batch,
                      hp->n_vocab);
        goto fail;
    }
    if (tnd_type_name(p.kv_type) && !tnd_row_size(p.kv_type, hp->head_dim)) {
        st = tnd_fail(TND_ERR_UNSUPPORTED, "KV cache type %s needs a head size that is a multiple of its block (head"
                      " size %d)", tnd_type_name(p.kv_type), hp->head_dim);
        goto fail;
    }
    if ((st = tnd_kv_cache_init(&ctx->kv, p.kv_type, ctx->n_ctx, p.kv_block_size, ctx->n_seq, hp->n_layer,
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
    if (fw->n_stages > 0 && ctx->devices[fw->n_stages - 1]) {
        tnd_backend *first = ctx->devices[0], *last = ctx->devices[fw->n_stages - 1];
        if (fw->tok_embd.data) first->vt->release_weight(first, &fw->tok_embd);
        if (fw->output.data) last->vt->release_weight(last, &fw->output);
        free_buffer(last, fw->output_norm);
    }
    for (int32_t s = 0; s < TND_MAX_STAGES; s++) {
        release_stage(ctx, &fw->stages[s]);
        if (ctx->devices[s]) ctx->devices[s]->vt->destroy(ctx->devices[s]);
    }
    tnd_allocator a = ctx->allocator;
    tnd_free(&a, ctx->slots);
    tnd_free(&a, ctx->n_ctx_of);
    tnd_free(&a, ctx->tables);
    tnd_free(&a, ctx->want);
    tnd_free(&a, fw->host_x);
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

const float *tnd_context_logits(const tnd_context *ctx, int32_t i) {
    if (!ctx || i < 0 || i >= ctx->n_logits) return NULL;
    return ctx->logits + (size_t)i * (size_t)ctx->bm->hp.n_vocab;
}

int32_t tnd_context_seq_length(const tnd_context *ctx, int32_t seq) {
    return ctx && seq >= 0 && seq < ctx->n_seq ? ctx->kv.seqs[seq].len : 0;
}

tnd_status tnd_context_seq_truncate(tnd_context *ctx, int32_t seq, int32_t len) {
    if (!ctx) return tnd_fail(TND_ERR_INVALID_ARGUMENT, "NULL context");
    return tnd_kv_cache_truncate(&ctx->kv, seq, len);
}

tnd_status tnd_context_seq_fork(tnd_context *ctx, int32_t src, int32_t dst) {
    if (!ctx) return tnd_fail(TND_ERR_INVALID_ARGUMENT, "NULL context");
    return tnd_kv_cache_fork(&ctx->kv, src, dst);
}

void tnd_context_kv_usage(const tnd_context *ctx, int32_t *used_blocks, int32_t *total_blocks) {
    if (used_blocks) *used_blocks = ctx ? tnd_kv_cache_used_blocks(&ctx->kv) : 0;
    if (total_blocks) *total_blocks = ctx ? ctx->kv.n_blocks : 0;
}
