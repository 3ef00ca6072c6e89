/* cloud.c: the cloud's side of a link (see remote.h): the model held here, a context per link whose KV pools mirror
 * the device's, and each STEP's stage run on the CPU. */
#include "remote/remote.h"

#include "core/error.h"
#include "core/log.h"
#include "model/model.h"
#include "runtime/context.h"

#include <stdlib.h>
#include <string.h>

enum {
    HELLO_TIMEOUT_MS = 10000,
    IDLE_TIMEOUT_MS = -1, /* none: a device may be idle for hours between requests (keepalive finds a dead one) */
    MAX_COPIES = 4096
};

/* The scratch of one link: the decoded step and its hidden states. */
typedef struct link_state {
    tnd_link *link;
    tnd_context *ctx;
    tnd_wire_hello hello;
    uint32_t max_table_words;
    uint32_t *pos, *slot, *n_ctx, *table_at, *tables;
    int32_t *pos32, *n_ctx32, *tables32;
    int64_t *slots64;
    const int32_t **token_tables;
    float *hidden;
    int32_t *copy_src, *copy_dst;
    tnd_wire_writer out;
} link_state;

static tnd_status send_error(link_state *s, tnd_status st, const char *message) {
    tnd_wire_writer w = {0};
    tnd_wire_put_error(&w, st, message);
    if (!w.failed) tnd_link_send(s->link, TND_WIRE_ERROR, w.data, w.len);
    tnd_wire_writer_free(&w);
    return st;
}

/* The context of a link: the whole model on this machine's CPU, KV pools as the device's. */
static tnd_status open_context(link_state *s, tnd_model *m, int32_t n_threads) {
    const tnd_wire_hello *h = &s->hello;
    tnd_context_params p = tnd_context_default_params();
    p.n_ctx = (int32_t)(h->n_blocks * h->block_size);
    p.kv_block_size = (int32_t)h->block_size;
    p.n_batch = (int32_t)h->n_batch;
    p.n_threads = n_threads;
    p.k_type = (tnd_type)h->k_type;
    p.v_type = (tnd_type)h->v_type;
    if (!tnd_type_name(p.k_type) || !tnd_type_name(p.v_type))
        return tnd_fail(TND_ERR_UNSUPPORTED, "HELLO: KV types %u and %u", h->k_type, h->v_type);
    tnd_status st = tnd_context_init(m, &p, &s->ctx);
    if (st) return st;
    size_t n = h->n_batch, e = (size_t)tnd_context_n_embd(s->ctx);
    s->max_table_words = h->n_blocks * 32; /* 32 sequences' full tables in one step */
    s->pos = calloc(n, sizeof *s->pos), s->slot = calloc(n, sizeof *s->slot), s->n_ctx = calloc(n, sizeof *s->n_ctx);
    s->table_at = calloc(n, sizeof *s->table_at), s->tables = calloc(s->max_table_words, sizeof *s->tables);
    s->pos32 = calloc(n, sizeof *s->pos32), s->n_ctx32 = calloc(n, sizeof *s->n_ctx32);
    s->tables32 = calloc(s->max_table_words, sizeof *s->tables32), s->slots64 = calloc(n, sizeof *s->slots64);
    s->token_tables = calloc(n, sizeof *s->token_tables), s->hidden = calloc(n * e, sizeof *s->hidden);
    s->copy_src = calloc(MAX_COPIES, sizeof *s->copy_src), s->copy_dst = calloc(MAX_COPIES, sizeof *s->copy_dst);
    if (!s->pos || !s->slot || !s->n_ctx || !s->table_at || !s->tables || !s->pos32 || !s->n_ctx32 || !s->tables32 ||
        !s->slots64 || !s->token_tables || !s->hidden || !s->copy_src || !s->copy_dst)
        return tnd_fail(TND_ERR_OUT_OF_MEMORY, "out of memory for a link's step of %u tokens", h->n_batch);
    return TND_OK;
}

static void close_state(link_state *s) {
    tnd_context_free(s->ctx);
    void *bufs[] = {s->pos,    s->slot,     s->n_ctx,        s->table_at, s->tables,   s->pos32,    s->n_ctx32,
                    s->tables32, s->slots64, (void *)s->token_tables, s->hidden, s->copy_src, s->copy_dst};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) free(bufs[i]);
    tnd_wire_writer_free(&s->out);
}

/* A STEP: decode, check it against this context, run its stage, answer the hidden states. */
static tnd_status run_step(link_state *s, const uint8_t *payload, uint32_t length) {
    const tnd_context *ctx = s->ctx;
    const tnd_hparams *hp = ctx->fw.hp;
    tnd_wire_step w = {.pos = s->pos, .slot = s->slot, .n_ctx = s->n_ctx, .table_at = s->table_at,
                       .tables = s->tables, .hidden = s->hidden};
    tnd_wire_reader r = {.data = payload, .len = length};
    tnd_status st = tnd_wire_get_step(&r, s->hello.n_batch, (uint32_t)hp->n_embd, s->max_table_words,
                                      s->hello.block_size, &w);
    if (st) return st;
    /* whole layers, between the embedding and the output head, which stay on the device */
    uint32_t out_group = (uint32_t)tnd_group_output(hp->n_layer);
    if (w.group_begin < 1 || w.group_end > out_group || w.group_begin % 2 == 0 || w.group_end % 2 == 0)
        return tnd_fail(TND_ERR_FORMAT, "STEP: groups [%u, %u) are not whole layers of this model's %d",
                        w.group_begin, w.group_end, hp->n_layer);
    for (uint32_t i = 0; i < w.n_table_words; i++) {
        if (s->tables[i] >= (uint32_t)ctx->kv.n_blocks)
            return tnd_fail(TND_ERR_FORMAT, "STEP: block %u of %d", s->tables[i], ctx->kv.n_blocks);
        s->tables32[i] = (int32_t)s->tables[i];
    }
    for (uint32_t t = 0; t < w.n_tokens; t++) {
        s->pos32[t] = (int32_t)s->pos[t];
        s->n_ctx32[t] = (int32_t)s->n_ctx[t];
        s->slots64[t] = s->slot[t];
        s->token_tables[t] = s->tables32 + s->table_at[t];
    }
    tnd_step step = {.n_tokens = w.n_tokens, .pos = s->pos32, .slots = s->slots64, .block_tables = s->token_tables,
                     .n_ctx = s->n_ctx32, .block_size = (int32_t)s->hello.block_size};
    if ((st = tnd_forward_run_stage(&ctx->fw, &step, (int32_t)w.group_begin, (int32_t)w.group_end, s->hidden)))
        return st;
    s->out.len = 0;
    tnd_wire_put_f16(&s->out, s->hidden, (size_t)w.n_tokens * (size_t)hp->n_embd);
    if (s->out.failed) return tnd_fail(TND_ERR_OUT_OF_MEMORY, "out of memory for a reply");
    return tnd_link_send(s->link, TND_WIRE_HIDDEN, s->out.data, s->out.len);
}

/* COPY_BLOCKS: the same copies in every layer's K and V pools. */
static tnd_status copy_blocks(link_state *s, const uint8_t *payload, uint32_t length) {
    tnd_context *ctx = s->ctx;
    tnd_wire_reader r = {.data = payload, .len = length};
    uint32_t n = 0;
    tnd_status st = tnd_wire_get_copies(&r, MAX_COPIES, (uint32_t)ctx->kv.n_blocks, s->copy_src, s->copy_dst, &n);
    if (st) return st;
    tnd_backend *d = ctx->fw.devices[0];
    for (int32_t l = 0; l < ctx->kv.n_layer; l++) {
        d->vt->kv_copy_blocks(d, ctx->kv.k_pool[l], ctx->kv.k_block_bytes, s->copy_src, s->copy_dst, (int32_t)n);
        d->vt->kv_copy_blocks(d, ctx->kv.v_pool[l], ctx->kv.v_block_bytes, s->copy_src, s->copy_dst, (int32_t)n);
    }
    if ((st = d->vt->synchronize(d))) return st;
    return tnd_link_send(s->link, TND_WIRE_DONE, NULL, 0);
}

/* One device's link, from HELLO to BYE (or a failure, told to the device where the link still stands). */
static tnd_status serve_link(tnd_model *m, tnd_link *link, const uint8_t id[TND_WIRE_MODEL_ID_BYTES],
                             int32_t n_threads) {
    link_state s = {.link = link};
    tnd_wire_header h;
    const uint8_t *payload;
    tnd_status st = tnd_link_recv(link, &h, &payload, HELLO_TIMEOUT_MS);
    if (!st && h.type != TND_WIRE_HELLO) st = tnd_fail(TND_ERR_FORMAT, "the device's first message is not HELLO");
    tnd_wire_reader r = {.data = payload, .len = st ? 0 : h.length};
    if (!st) st = tnd_wire_get_hello(&r, &s.hello);
    if (!st && memcmp(s.hello.model_id, id, TND_WIRE_MODEL_ID_BYTES))
        st = tnd_fail(TND_ERR_UNSUPPORTED, "the device's model is not the one this cloud holds (their ids differ)");
    if (!st) st = open_context(&s, m, n_threads);
    if (!st) {
        tnd_wire_welcome welcome = {.n_layer = (uint32_t)s.ctx->fw.hp->n_layer,
                                    .n_embd = (uint32_t)tnd_context_n_embd(s.ctx)};
        tnd_wire_put_welcome(&s.out, &welcome);
        st = tnd_link_send(link, TND_WIRE_WELCOME, s.out.data, s.out.len);
    }
    while (!st) {
        if ((st = tnd_link_recv(link, &h, &payload, IDLE_TIMEOUT_MS))) break;
        if (h.type == TND_WIRE_BYE) break;
        if (h.type == TND_WIRE_STEP) st = run_step(&s, payload, h.length);
        else if (h.type == TND_WIRE_COPY_BLOCKS) st = copy_blocks(&s, payload, h.length);
        else if (h.type == TND_WIRE_PING) st = tnd_link_send(link, TND_WIRE_PONG, NULL, 0);
        else st = tnd_fail(TND_ERR_FORMAT, "unexpected message type %u", h.type);
    }
    if (st) send_error(&s, st, tnd_last_error()); /* (nothing arrives where the link is gone) */
    close_state(&s);
    return st;
}

tnd_status tnd_cloud_serve(tnd_model *m, tnd_listener *listener, const tnd_link_key *key, int32_t n_threads,
                           int32_t max_links) {
    uint8_t id[TND_WIRE_MODEL_ID_BYTES];
    tnd_status st = tnd_model_id(m, id);
    if (st) return st;
    for (int32_t served = 0; !max_links || served < max_links; served++) {
        tnd_link *link = NULL;
        if ((st = tnd_listener_accept(listener, key, -1, &link))) {
            tnd_log(&m->log, TND_LOG_WARN, "a device could not connect: %s", tnd_last_error());
            continue;
        }
        st = serve_link(m, link, id, n_threads);
        if (st) tnd_log(&m->log, TND_LOG_WARN, "a link ended: %s", tnd_last_error());
        else tnd_log(&m->log, TND_LOG_INFO, "a device left");
        tnd_link_close(link);
    }
    return TND_OK;
}
