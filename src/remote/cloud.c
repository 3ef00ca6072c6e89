/* cloud.c: the cloud's side of the links (see remote.h). The model is held here once, in one context whose KV pools
 * hold a partition for each device served at once (a device's block b is block base + b here). A thread per link
 * receives its messages, checks them and answers them; the serving thread runs the stages: the steps waiting from
 * every link that run the same layers go through them in one forward pass, so the weights are read once for all the
 * devices (continuous batching across devices). */
#include "remote/remote.h"

#include "core/clock.h"
#include "core/error.h"
#include "core/log.h"
#include "model/model.h"
#include "runtime/context.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

enum {
    HELLO_TIMEOUT_MS = 10000,
    IDLE_TIMEOUT_MS = 30000, /* an idle device sends a heartbeat every 5 s: six missed, and its link is over */
    ACCEPT_POLL_MS = 200,  /* how often the acceptor looks for links that ended */
    MAX_COPIES = 4096
};

typedef enum job_kind { JOB_NONE, JOB_STEP, JOB_COPY } job_kind;

/* One link: its thread, its KV partition and its scratch. While its job is posted the thread waits and the serving
 * thread reads the job's arrays. */
typedef struct link_state {
    struct cloud *cloud;
    int32_t index;            /* its slot; its blocks start at index * blocks_per_device */
    tnd_link *link;
    pthread_t thread;
    bool used, finished;
    tnd_wire_hello hello;
    tnd_stage_step step;      /* the last STEP, decoded */
    int32_t *copy_src, *copy_dst;
    tnd_wire_writer out;

    job_kind job;             /* posted to the serving thread; JOB_NONE once it is done */
    bool job_taken;
    uint32_t n_copies;
    tnd_status job_status;
    char job_error[200];
    double job_seconds;    /* what computing the batch that held the link's last step took */
} link_state;

typedef struct cloud {
    tnd_model *model;
    tnd_cloud_params p;
    const uint8_t *id;
    tnd_context *ctx;
    int32_t n_embd, blocks_per_device;
    link_state *links;        /* [p.n_devices] */
    pthread_mutex_t mu;
    pthread_cond_t work, done;
    int32_t accepted;         /* links in all */
    bool accepting;

    /* the batched step */
    int32_t *pos, *n_ctx;
    int64_t *slots;
    const int32_t **tables;
    float *x;
    int32_t *batch;           /* [p.n_devices]: the links in it */
    int32_t next_first;       /* round robin: the link looked at first */
    tnd_cloud_stats stats;
} cloud;

static tnd_status send_error(link_state *s, tnd_status st, const char *message) {
    tnd_wire_writer w = {0};
    tnd_wire_put_error(&w, st, message);
    if (!w.failed) tnd_link_send(s->link, TND_WIRE_ERROR, w.data, w.len);
    tnd_wire_writer_free(&w);
    return st;
}

/* ------------------------------------------------------------------------------------------------------------
 * A link's thread
 * ---------------------------------------------------------------------------------------------------------- */

/* The device's KV cache must fit its partition here, in the same geometry. */
static tnd_status check_hello(const cloud *c, const tnd_wire_hello *h) {
    const tnd_cloud_params *p = &c->p;
    if (memcmp(h->model_id, c->id, TND_WIRE_MODEL_ID_BYTES))
        return tnd_fail(TND_ERR_UNSUPPORTED, "the device's model is not the one this cloud holds (their ids differ)");
    if ((int32_t)h->block_size != p->block_size)
        return tnd_fail(TND_ERR_UNSUPPORTED, "the device's KV cache is in blocks of %u tokens; this cloud's in blocks "
                        "of %d (give both the same)", h->block_size, p->block_size);
    if ((tnd_type)h->k_type != p->k_type || (tnd_type)h->v_type != p->v_type)
        return tnd_fail(TND_ERR_UNSUPPORTED, "the device's KV cache is %s / %s; this cloud's is %s / %s (give both "
                        "the same --cache-type-k and --cache-type-v)",
                        tnd_type_name((tnd_type)h->k_type) ? tnd_type_name((tnd_type)h->k_type) : "unknown",
                        tnd_type_name((tnd_type)h->v_type) ? tnd_type_name((tnd_type)h->v_type) : "unknown",
                        tnd_type_name(p->k_type), tnd_type_name(p->v_type));
    if ((int64_t)h->n_blocks > c->blocks_per_device)
        return tnd_fail(TND_ERR_UNSUPPORTED, "the device's KV cache holds %u tokens; this cloud keeps %d for each "
                        "device (tandem cloud -c, or a smaller -c on the device)", h->n_blocks * h->block_size,
                        c->blocks_per_device * p->block_size);
    if ((int32_t)h->n_batch > p->n_batch)
        return tnd_fail(TND_ERR_UNSUPPORTED, "the device's steps have up to %u tokens; this cloud's have %d (tandem "
                        "cloud -b, or a smaller -b on the device)", h->n_batch, p->n_batch);
    return TND_OK;
}

static tnd_status alloc_scratch(link_state *s) {
    tnd_status st = tnd_stage_step_alloc(&s->step, s->hello.n_batch, s->hello.n_blocks, s->hello.block_size,
                                         s->cloud->n_embd);
    if (st) return st;
    s->copy_src = calloc(MAX_COPIES, sizeof *s->copy_src), s->copy_dst = calloc(MAX_COPIES, sizeof *s->copy_dst);
    if (!s->copy_src || !s->copy_dst) return tnd_fail(TND_ERR_OUT_OF_MEMORY, "out of memory for a link's copies");
    return TND_OK;
}

static void free_scratch(link_state *s) {
    tnd_stage_step_free(&s->step);
    free(s->copy_src);
    free(s->copy_dst);
    tnd_wire_writer_free(&s->out); /* (the slot is made anew, under the lock, for its next link) */
}

/* Posts the link's job to the serving thread and waits until it is done; its status. */
static tnd_status post(link_state *s, job_kind kind) {
    cloud *c = s->cloud;
    pthread_mutex_lock(&c->mu);
    s->job = kind;
    s->job_taken = false;
    pthread_cond_signal(&c->work);
    while (s->job != JOB_NONE) pthread_cond_wait(&c->done, &c->mu);
    pthread_mutex_unlock(&c->mu);
    return s->job_status ? tnd_fail(s->job_status, "%s", s->job_error) : TND_OK;
}

/* A STEP: decoded and checked against the link's partition, run in a batch, the hidden states answered. */
static tnd_status link_step(link_state *s, const uint8_t *payload, uint32_t length) {
    const cloud *c = s->cloud;
    tnd_status st = tnd_stage_step_read(&s->step, payload, length, c->ctx->fw.hp->n_layer,
                                        (int64_t)s->index * c->blocks_per_device);
    if (st || (st = post(s, JOB_STEP))) return st;
    s->out.len = 0;
    tnd_wire_put_f16(&s->out, s->step.hidden, (size_t)s->step.n_tokens * (size_t)c->n_embd);
    double us = s->job_seconds * 1e6;
    tnd_wire_put_u32(&s->out, us < 4e9 ? (uint32_t)us : UINT32_MAX);
    if (s->out.failed) return tnd_fail(TND_ERR_OUT_OF_MEMORY, "out of memory for a reply");
    return tnd_link_send(s->link, TND_WIRE_HIDDEN, s->out.data, s->out.len);
}

/* COPY_BLOCKS: the same copies in every layer's K and V pools, within the link's partition. */
static tnd_status link_copy(link_state *s, const uint8_t *payload, uint32_t length) {
    tnd_wire_reader r = {.data = payload, .len = length};
    tnd_status st = tnd_wire_get_copies(&r, MAX_COPIES, s->hello.n_blocks, s->copy_src, s->copy_dst, &s->n_copies);
    if (st) return st;
    int32_t base = s->index * s->cloud->blocks_per_device;
    for (uint32_t i = 0; i < s->n_copies; i++) s->copy_src[i] += base, s->copy_dst[i] += base;
    if ((st = post(s, JOB_COPY))) return st;
    return tnd_link_send(s->link, TND_WIRE_DONE, NULL, 0);
}

/* One device's link, from HELLO to BYE (or a failure, told to the device where the link still stands). */
static tnd_status serve_link(link_state *s) {
    cloud *c = s->cloud;
    tnd_wire_header h;
    const uint8_t *payload;
    tnd_status st = tnd_link_recv(s->link, &h, &payload, HELLO_TIMEOUT_MS);
    if (!st && h.type != TND_WIRE_HELLO) st = tnd_fail(TND_ERR_FORMAT, "the device's first message is not HELLO");
    tnd_wire_reader r = {.data = payload, .len = st ? 0 : h.length};
    if (!st) st = tnd_wire_get_hello(&r, &s->hello);
    if (!st) st = check_hello(c, &s->hello);
    if (!st) st = alloc_scratch(s);
    if (!st) {
        tnd_wire_welcome welcome = {.n_layer = (uint32_t)c->ctx->fw.hp->n_layer, .n_embd = (uint32_t)c->n_embd};
        tnd_wire_put_welcome(&s->out, &welcome);
        st = tnd_link_send(s->link, TND_WIRE_WELCOME, s->out.data, s->out.len);
    }
    while (!st) {
        if ((st = tnd_link_recv(s->link, &h, &payload, IDLE_TIMEOUT_MS))) break;
        if (h.type == TND_WIRE_BYE) break;
        if (h.type == TND_WIRE_STEP) st = link_step(s, payload, h.length);
        else if (h.type == TND_WIRE_COPY_BLOCKS) st = link_copy(s, payload, h.length);
        else if (h.type == TND_WIRE_PING) st = tnd_link_send(s->link, TND_WIRE_PONG, NULL, 0);
        else st = tnd_fail(TND_ERR_FORMAT, "unexpected message type %u", h.type);
    }
    if (st) send_error(s, st, tnd_last_error()); /* (nothing arrives where the link is gone) */
    return st;
}

static void *link_main(void *arg) {
    link_state *s = arg;
    cloud *c = s->cloud;
    tnd_status st = serve_link(s);
    if (st) tnd_log(&c->model->log, TND_LOG_WARN, "device %d: the link ended: %s", s->index, tnd_last_error());
    else tnd_log(&c->model->log, TND_LOG_INFO, "device %d left", s->index);
    tnd_link_close(s->link);
    free_scratch(s);
    pthread_mutex_lock(&c->mu);
    s->finished = true;
    pthread_cond_signal(&c->work);
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

/* ------------------------------------------------------------------------------------------------------------
 * Accepting links
 * ---------------------------------------------------------------------------------------------------------- */

typedef struct acceptor {
    cloud *c;
    tnd_listener *listener;
    const tnd_link_key *key;
} acceptor;

/* Joins the threads of links that ended; their slots are free again. Under the lock, which a finished thread no
 * longer takes. */
static void reap(cloud *c) {
    for (int32_t i = 0; i < c->p.n_devices; i++) {
        link_state *s = &c->links[i];
        if (!s->used || !s->finished) continue;
        pthread_join(s->thread, NULL);
        s->used = s->finished = false;
    }
}

static void *accept_main(void *arg) {
    acceptor *a = arg;
    cloud *c = a->c;
    pthread_mutex_lock(&c->mu);
    while (c->accepting) {
        reap(c);
        if (c->p.max_links && c->accepted == c->p.max_links) break;
        pthread_mutex_unlock(&c->mu);
        tnd_link *link = NULL;
        tnd_status st = tnd_listener_accept(a->listener, a->key, ACCEPT_POLL_MS, &link);
        pthread_mutex_lock(&c->mu);
        if (st) { /* a failed handshake is a link that came and went */
            if (strstr(tnd_last_error(), "no device connected")) continue;
            tnd_log(&c->model->log, TND_LOG_WARN, "a device could not connect: %s", tnd_last_error());
            c->accepted++;
            continue;
        }
        int32_t free_slot = -1;
        for (int32_t i = 0; i < c->p.n_devices && free_slot < 0; i++)
            if (!c->links[i].used) free_slot = i;
        link_state *s = free_slot >= 0 ? &c->links[free_slot] : NULL;
        if (s) *s = (link_state){.cloud = c, .index = free_slot, .link = link, .used = true};
        if (!s || pthread_create(&s->thread, NULL, link_main, s)) {
            link_state refused = {.link = link};
            pthread_mutex_unlock(&c->mu);
            send_error(&refused, TND_ERR_UNSUPPORTED, s ? "this cloud cannot start a thread for the link"
                                                        : "this cloud serves as many devices as it can at once "
                                                          "(tandem cloud --parallel); try again later");
            tnd_link_close(link);
            pthread_mutex_lock(&c->mu);
            if (s) s->used = false;
            tnd_log(&c->model->log, TND_LOG_WARN, "a device was refused: %s",
                    s ? "no thread" : "every device slot is taken");
            continue;
        }
        c->accepted++;
    }
    c->accepting = false;
    pthread_cond_signal(&c->work);
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

/* ------------------------------------------------------------------------------------------------------------
 * The serving thread: batched steps
 * ---------------------------------------------------------------------------------------------------------- */

/* Takes into the batch the posted steps that run the same layers as the oldest-looked-at one, as many as fit
 * n_batch; copies of KV blocks run first, each alone. Under the lock; returns the links in the batch. */
static int32_t gather(cloud *c, int32_t *copy_link) {
    int32_t n = 0, tokens = 0, g0 = -1, g1 = -1, nd = c->p.n_devices;
    *copy_link = -1;
    for (int32_t k = 0; k < nd; k++) {
        int32_t i = (c->next_first + k) % nd;
        link_state *s = &c->links[i];
        if (!s->used || s->job == JOB_NONE || s->job_taken) continue;
        if (s->job == JOB_COPY) { /* alone, and only before any step was taken */
            if (n) continue;
            s->job_taken = true;
            *copy_link = i;
            return 0;
        }
        const tnd_stage_step *st = &s->step;
        if (n && (st->group_begin != g0 || st->group_end != g1 || tokens + (int32_t)st->n_tokens > c->p.n_batch))
            continue;
        g0 = st->group_begin, g1 = st->group_end;
        tokens += (int32_t)st->n_tokens;
        s->job_taken = true;
        c->batch[n++] = i;
    }
    c->next_first = (c->next_first + 1) % nd;
    return n;
}

/* The batch's steps as one: each link's tokens one after another, their hidden states through the stage. */
static tnd_status run_batch(cloud *c, int32_t n_links) {
    const int64_t e = c->n_embd;
    int32_t n = 0;
    for (int32_t k = 0; k < n_links; k++) {
        const tnd_stage_step *s = &c->links[c->batch[k]].step;
        for (uint32_t t = 0; t < s->n_tokens; t++, n++) {
            c->pos[n] = s->pos32[t];
            c->n_ctx[n] = s->n_ctx32[t];
            c->slots[n] = s->slots64[t];
            c->tables[n] = s->table_of[t];
        }
        size_t first_row = (size_t)(n - (int32_t)s->n_tokens);
        memcpy(c->x + first_row * (size_t)e, s->hidden, sizeof(float) * s->n_tokens * (size_t)e);
    }
    const tnd_stage_step *first = &c->links[c->batch[0]].step;
    tnd_step step = {.n_tokens = n, .pos = c->pos, .slots = c->slots, .block_tables = c->tables, .n_ctx = c->n_ctx,
                     .block_size = c->p.block_size};
    tnd_status st = tnd_forward_run_stage(&c->ctx->fw, &step, first->group_begin, first->group_end, c->x);
    for (int32_t k = 0, at = 0; k < n_links && !st; k++) {
        tnd_stage_step *s = &c->links[c->batch[k]].step;
        memcpy(s->hidden, c->x + (size_t)at * (size_t)e, sizeof(float) * s->n_tokens * (size_t)e);
        at += (int32_t)s->n_tokens;
    }
    return st;
}

static tnd_status run_copies(cloud *c, const link_state *s) {
    return tnd_stage_copy_blocks(c->ctx, s->copy_src, s->copy_dst, s->n_copies);
}

/* Ends the jobs of the links given with status st, after `seconds` of computing. Under the lock. */
static void finish_jobs(cloud *c, const int32_t *links, int32_t n, tnd_status st, double seconds) {
    for (int32_t k = 0; k < n; k++) {
        link_state *s = &c->links[links[k]];
        s->job_status = st;
        s->job_seconds = seconds;
        if (st) snprintf(s->job_error, sizeof s->job_error, "%s", tnd_last_error());
        s->job = JOB_NONE;
    }
    pthread_cond_broadcast(&c->done);
}

static void serve_jobs(cloud *c) {
    pthread_mutex_lock(&c->mu);
    for (;;) {
        int32_t copy_link = -1, n = gather(c, &copy_link);
        if (n || copy_link >= 0) {
            pthread_mutex_unlock(&c->mu);
            double t0 = tnd_now_seconds();
            tnd_status st = copy_link >= 0 ? run_copies(c, &c->links[copy_link]) : run_batch(c, n);
            double seconds = tnd_now_seconds() - t0;
            pthread_mutex_lock(&c->mu);
            if (n) {
                c->stats.device_steps += n;
                c->stats.batched_steps++;
                if (n > c->stats.most_devices) c->stats.most_devices = n;
            }
            if (copy_link >= 0) finish_jobs(c, &copy_link, 1, st, seconds);
            else finish_jobs(c, c->batch, n, st, seconds);
            continue;
        }
        if (!c->accepting) reap(c); /* (the acceptor reaps while it runs) */
        bool active = false;
        for (int32_t i = 0; i < c->p.n_devices; i++) active |= c->links[i].used;
        if (!c->accepting && !active) break;
        pthread_cond_wait(&c->work, &c->mu);
    }
    pthread_mutex_unlock(&c->mu);
}

/* ------------------------------------------------------------------------------------------------------------
 * Start and end
 * ---------------------------------------------------------------------------------------------------------- */

tnd_cloud_params tnd_cloud_default_params(void) {
    return (tnd_cloud_params){.n_devices = 4, .n_ctx = 4096, .n_batch = 512, .block_size = 64,
                              .k_type = TND_TYPE_F16, .v_type = TND_TYPE_F16};
}

static tnd_status open_cloud(cloud *c) {
    const tnd_cloud_params *p = &c->p;
    if (p->n_devices < 1 || p->n_devices > 1024 || p->n_ctx < 1 || p->n_batch < 1 || p->block_size < 1 ||
        p->n_threads < 0 || p->max_links < 0)
        return tnd_fail(TND_ERR_INVALID_ARGUMENT, "cloud params out of range: %d devices, context %d, batch %d, "
                        "blocks of %d", p->n_devices, p->n_ctx, p->n_batch, p->block_size);
    c->blocks_per_device = (p->n_ctx + p->block_size - 1) / p->block_size;
    if ((int64_t)c->blocks_per_device * p->block_size * p->n_devices > INT32_MAX)
        return tnd_fail(TND_ERR_INVALID_ARGUMENT, "%d devices of %d tokens each do not fit one context",
                        p->n_devices, p->n_ctx);
    tnd_context_params cp = tnd_context_default_params();
    cp.n_ctx = c->blocks_per_device * p->block_size * p->n_devices;
    cp.kv_block_size = p->block_size;
    cp.n_batch = p->n_batch;
    cp.n_threads = p->n_threads;
    cp.k_type = p->k_type;
    cp.v_type = p->v_type;
    tnd_status st = tnd_context_init(c->model, &cp, &c->ctx);
    if (st) return st;
    c->n_embd = tnd_context_n_embd(c->ctx);
    size_t n = (size_t)p->n_batch;
    c->links = calloc((size_t)p->n_devices, sizeof *c->links);
    c->batch = calloc((size_t)p->n_devices, sizeof *c->batch);
    c->pos = calloc(n, sizeof *c->pos), c->n_ctx = calloc(n, sizeof *c->n_ctx), c->slots = calloc(n, sizeof *c->slots);
    c->tables = calloc(n, sizeof *c->tables), c->x = calloc(n * (size_t)c->n_embd, sizeof *c->x);
    if (!c->links || !c->batch || !c->pos || !c->n_ctx || !c->slots || !c->tables || !c->x)
        return tnd_fail(TND_ERR_OUT_OF_MEMORY, "out of memory for a cloud of %d devices", p->n_devices);
    return TND_OK;
}

static void close_cloud(cloud *c) {
    tnd_context_free(c->ctx);
    free(c->links);
    free(c->batch);
    free(c->pos);
    free(c->n_ctx);
    free(c->slots);
    free((void *)c->tables);
    free(c->x);
}

tnd_status tnd_cloud_serve(tnd_model *m, tnd_listener *listener, const tnd_link_key *key, const tnd_cloud_params *p) {
    uint8_t id[TND_WIRE_MODEL_ID_BYTES];
    tnd_status st = tnd_model_id(m, id);
    if (st) return st;
    cloud c = {.model = m, .p = *p, .id = id, .accepting = true};
    if (pthread_mutex_init(&c.mu, NULL)) return tnd_fail(TND_ERR_OUT_OF_MEMORY, "no mutex");
    pthread_cond_init(&c.work, NULL);
    pthread_cond_init(&c.done, NULL);
    st = open_cloud(&c);
    acceptor a = {.c = &c, .listener = listener, .key = key};
    pthread_t accept_thread;
    if (!st && pthread_create(&accept_thread, NULL, accept_main, &a))
        st = tnd_fail(TND_ERR_OUT_OF_MEMORY, "no thread to accept devices");
    if (!st) {
        serve_jobs(&c); /* until max_links links came and went */
        pthread_join(accept_thread, NULL);
    }
    if (p->stats) *p->stats = c.stats;
    close_cloud(&c);
    pthread_cond_destroy(&c.done);
    pthread_cond_destroy(&c.work);
    pthread_mutex_destroy(&c.mu);
    return st;
}
