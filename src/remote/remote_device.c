/* remote_device.c: the device's side of a cloud link (see remote.h): a device whose stages run in the cloud, one
 * STEP and one HIDDEN per step. It holds no weights and no KV: its buffers are empty handles, its weight views carry
 * shapes only (the file's pages of those weights can leave memory), and the KV blocks it is given are mirrored by the
 * cloud's pools through the step's slots and block tables. */
#include "remote/remote.h"

#include "backend/none/none_device.h"
#include "backend/step_flat.h"
#include "core/clock.h"
#include "core/error.h"
#include "model/model.h"

#include <stdio.h>
#include <stdlib.h>
#include <pthread.h>
#include <string.h>
#include <time.h>

enum {
    DEFAULT_TIMEOUT_MS = 30000, /* the deadline of the handshake (unless given) and of steps of a kind not timed yet */
    STALL_SLACK_MS = 500,       /* a timed step's deadline: this plus STALL_FACTOR times the time it should take */
    STALL_FACTOR = 4,
    SMALL_STEP = 4,             /* steps of up to this many tokens (decode) are timed as one kind, longer ones per
                                   token */
    MAX_PENDING_COPIES = 4096,
    OUTBOX = 8,                 /* messages in flight at most: the slices of a pipelined step and a COPY_BLOCKS */
    HEARTBEAT_MS = 5000,        /* an idle link carries a PING this often: NATs keep it, a dead peer shows */
    PONG_DEADLINE_MS = 3000,    /* a PING unanswered this long ends an idle link: the device finds a dead cloud
                                   before its next request, not at that request's deadline */
    LISTEN_SLICE_MS = 20        /* the sender waits for a PONG in slices this long: a step queued meanwhile waits at
                                   most this to be sent */
};

/* A message for the sender thread, kept until its answer came: a STEP (answered by HIDDEN) or a COPY_BLOCKS
 * (answered by DONE). */
typedef struct outgoing {
    tnd_wire_writer msg;
    tnd_wire_type type;
    uint32_t n_tokens;   /* a STEP's */
    double t_queued;
    uint64_t serial;     /* in the stand-in's log (0: none) */
} outgoing;

/* The messages in flight: a ring from `answer_next` (the oldest not answered), `n_used` long; the sender thread
 * sends them in order from `send_next`, `n_unsent` of them still to go. Sending on a thread of its own lets slices
 * of a long step stream both ways at once: a blocking send on this thread while the cloud blocks sending a result
 * it does not read would wait for ever. */
typedef struct remote_device {
    tnd_backend base;
    tnd_link *link;
    tnd_remote_params p;
    char host_port[128];
    bool secure; /* a TLS link */
    int32_t n_embd;
    const tnd_step *step;
    uint32_t *flat; /* the step's metadata in flat words */
    size_t flat_cap;
    int32_t copy_src[MAX_PENDING_COPIES], copy_dst[MAX_PENDING_COPIES], n_copies; /* sent before the next step */
    tnd_status failure;
    char message[256];
    bool lost;                /* the link failed: every later step fails at once with TND_ERR_DEVICE_LOST */
    tnd_stand_in *stand_in;   /* NULL, or the cloud's part kept here too (remote.h) */
    bool taken_over;          /* the link failed and the stand-in answers the stages since */
    char taken_over_why[320];
    double small_step_s;      /* moving averages of a small step's round trip and of a long step's per token, and */
    double per_token_s;       /* the last long step's round trip (0: not timed yet), for the deadline that finds a */
    double long_step_s;       /* stalled link */
    double last_answer_at;
    tnd_device_profile profile; /* the link's part: stages, their waits and the cloud's compute */

    outgoing box[OUTBOX];
    int answer_next, n_used, send_next, n_unsent;
    pthread_t sender;
    bool sender_started, stopping;
    pthread_mutex_t mu;       /* the ring's counts, `stopping` and the sender's failure */
    pthread_cond_t cv;
    char send_error[200];     /* why the sender stopped ("" while it runs) */
    double last_sent;         /* when the sender last sent (the heartbeat's clock) */
    double ping_at;           /* when the PING not answered yet was sent (0: none) */
    bool listening;           /* the sender reads the idle link for that PONG: a receive here waits */
} remote_device;

static remote_device *rd(tnd_backend *b) { return (remote_device *)b->impl; }

static void failed(remote_device *d, tnd_status st, const char *message) {
    if (d->failure) return;
    d->failure = st;
    snprintf(d->message, sizeof d->message, "%s: %s", d->base.name, message);
}

/* How long a step of n tokens may take before the link counts as stalled: a few times what it should take (a decode
 * step's round trip is tens of milliseconds, so a stall is found well within a second). A small step not timed yet
 * should take at most what the last long one took; a long step not timed yet (a long prompt's first chunk may take
 * seconds on a busy cloud) gets 30 s. */
static int step_deadline_ms(const remote_device *d, uint32_t n) {
    double expect = n <= SMALL_STEP ? (d->small_step_s > 0 ? d->small_step_s : d->long_step_s)
                    : d->per_token_s > 0 ? (d->per_token_s * n > d->small_step_s ? d->per_token_s * n : d->small_step_s)
                                         : 0;
    double ms = STALL_SLACK_MS + STALL_FACTOR * 1000.0 * expect;
    return expect > 0 && ms < DEFAULT_TIMEOUT_MS ? (int)ms : DEFAULT_TIMEOUT_MS;
}

static void time_step(remote_device *d, uint32_t n, double seconds) {
    double *avg = n <= SMALL_STEP ? &d->small_step_s : &d->per_token_s, x = n <= SMALL_STEP ? seconds : seconds / n;
    *avg = *avg > 0 ? 0.8 * *avg + 0.2 * x : x;
    if (n > SMALL_STEP) d->long_step_s = seconds;
}

/* The cloud's answer to the last message within timeout_ms: the type wanted, or its ERROR as a status with its
 * message. */
static tnd_status answer(remote_device *d, tnd_wire_type want, int timeout_ms, const uint8_t **payload,
                         uint32_t *length) {
    tnd_wire_header h;
    tnd_status st;
    do st = tnd_link_recv(d->link, &h, payload, timeout_ms);
    while (!st && h.type == TND_WIRE_PONG && want != TND_WIRE_PONG); /* heartbeats' answers come whenever they come */
    if (st) return st;
    *length = h.length;
    if (h.type == TND_WIRE_ERROR) {
        tnd_wire_reader r = {.data = *payload, .len = h.length};
        char message[200];
        tnd_status cloud;
        if ((st = tnd_wire_get_error(&r, &cloud, message, sizeof message))) return st;
        return tnd_fail(cloud, "the cloud says: %s", message);
    }
    if (h.type != want) return tnd_fail(TND_ERR_FORMAT, "the cloud answered with message type %u", h.type);
    return TND_OK;
}

/* ------------------------------------------------------------------------------------------------------------
 * The sender thread and the ring of messages in flight
 * ---------------------------------------------------------------------------------------------------------- */

typedef enum sender_task { SEND_MESSAGE, SEND_PING, LISTEN_FOR_PONG, STOP_SENDING } sender_task;

/* What the sender does next, waiting until something is due: a message to send, a heartbeat (the link idle for
 * HEARTBEAT_MS), or, while nothing else is in flight, the last heartbeat's answer to read. Under the lock. */
static sender_task next_task(remote_device *d) {
    for (;;) {
        if (d->stopping) return STOP_SENDING;
        if (d->n_unsent) return SEND_MESSAGE;
        double wait = HEARTBEAT_MS / 1000.0;
        if (!d->n_used) {
            if (d->ping_at > 0) return LISTEN_FOR_PONG;
            double due = d->last_sent + wait, now = tnd_now_seconds();
            if (now >= due) return SEND_PING;
            wait = due - now;
        }
        struct timespec t;
        clock_gettime(CLOCK_MONOTONIC, &t);
        t.tv_sec += (time_t)wait;
        t.tv_nsec += (long)((wait - (double)(time_t)wait) * 1e9);
        if (t.tv_nsec >= 1000000000L) t.tv_sec++, t.tv_nsec -= 1000000000L;
        pthread_cond_timedwait(&d->cv, &d->mu, &t);
    }
}

/* Reads the idle link for a slice of time: true when the PONG came or may still come in time; false (send_error
 * set) when the link failed or the PING went unanswered for PONG_DEADLINE_MS. Under the lock, dropped while it
 * reads; a receive on the caller's thread waits meanwhile. */
static bool listen_for_pong(remote_device *d) {
    d->listening = true;
    pthread_mutex_unlock(&d->mu);
    tnd_status st = TND_OK;
    bool pong = false;
    if (tnd_link_readable(d->link, LISTEN_SLICE_MS)) {
        const uint8_t *payload;
        uint32_t length;
        st = answer(d, TND_WIRE_PONG, PONG_DEADLINE_MS, &payload, &length);
        pong = !st;
    }
    pthread_mutex_lock(&d->mu);
    d->listening = false;
    pthread_cond_broadcast(&d->cv);
    if (pong) d->ping_at = 0;
    else if (!st && tnd_now_seconds() - d->ping_at > PONG_DEADLINE_MS / 1000.0)
        st = tnd_fail(TND_ERR_IO, "no answer to a heartbeat in %d s (the link is stalled or dead)",
                      PONG_DEADLINE_MS / 1000);
    if (st) snprintf(d->send_error, sizeof d->send_error, "%s", tnd_last_error());
    return !st;
}

static void *send_loop(void *arg) {
    remote_device *d = arg;
    pthread_mutex_lock(&d->mu);
    for (;;) {
        sender_task task = next_task(d);
        if (task == STOP_SENDING) break;
        if (task == LISTEN_FOR_PONG) {
            if (!listen_for_pong(d)) break;
            continue;
        }
        outgoing *o = task == SEND_MESSAGE ? &d->box[d->send_next] : NULL;
        d->last_sent = tnd_now_seconds();
        pthread_mutex_unlock(&d->mu);
        tnd_status st = o ? tnd_link_send(d->link, o->type, o->msg.data, o->msg.len)
                          : tnd_link_send(d->link, TND_WIRE_PING, NULL, 0);
        pthread_mutex_lock(&d->mu);
        if (st) {
            snprintf(d->send_error, sizeof d->send_error, "%s", tnd_last_error());
            break;
        }
        if (!o) {
            d->ping_at = d->last_sent;
            continue;
        }
        d->send_next = (d->send_next + 1) % OUTBOX;
        d->n_unsent--;
    }
    pthread_mutex_unlock(&d->mu);
    return NULL;
}

static void stop_sender(remote_device *d) {
    if (!d->sender_started) return;
    pthread_mutex_lock(&d->mu);
    d->stopping = true;
    pthread_cond_broadcast(&d->cv);
    pthread_mutex_unlock(&d->mu);
    pthread_join(d->sender, NULL);
    d->sender_started = false;
}

/* The next free entry of the ring, its message emptied; NULL (with the status set) when the ring is full. */
static outgoing *next_entry(remote_device *d) {
    if (d->n_used == OUTBOX)
        return tnd_fail(TND_ERR_INTERNAL, "more than %d messages to the cloud in flight", OUTBOX), NULL;
    outgoing *o = &d->box[(d->answer_next + d->n_used) % OUTBOX];
    o->msg.len = 0;
    o->msg.failed = false;
    return o;
}

/* Hands the entry just written to the sender thread, or to the stand-in where it took over (its log gets every
 * message either way). */
static tnd_status queue(remote_device *d, outgoing *o, tnd_wire_type type, uint32_t n_tokens) {
    if (o->msg.failed) return tnd_fail(TND_ERR_OUT_OF_MEMORY, "out of memory for a message to the cloud");
    o->type = type;
    o->n_tokens = n_tokens;
    o->t_queued = tnd_now_seconds();
    o->serial = d->stand_in ? tnd_stand_in_log(d->stand_in, type, o->msg.data, (uint32_t)o->msg.len) : 0;
    if (d->taken_over) return o->serial ? TND_OK : tnd_fail(TND_ERR_DEVICE_LOST, "%s", d->message);
    pthread_mutex_lock(&d->mu);
    d->n_used++;
    d->n_unsent++;
    pthread_cond_broadcast(&d->cv);
    pthread_mutex_unlock(&d->mu);
    return TND_OK;
}

/* Waits for the answer to the oldest message in flight: DONE for a COPY_BLOCKS, HIDDEN for a STEP (into x). */
static tnd_status receive(remote_device *d, float *x) {
    if (!d->n_used) return tnd_fail(TND_ERR_INTERNAL, "no message to the cloud awaits an answer");
    outgoing *o = &d->box[d->answer_next];
    bool step = o->type == TND_WIRE_STEP;
    uint32_t n = step ? o->n_tokens : 1;
    const uint8_t *payload;
    uint32_t length;
    pthread_mutex_lock(&d->mu);
    while (d->listening) pthread_cond_wait(&d->cv, &d->mu);
    pthread_mutex_unlock(&d->mu);
    tnd_status st = answer(d, step ? TND_WIRE_HIDDEN : TND_WIRE_DONE, step_deadline_ms(d, n), &payload, &length);
    if (st) {
        pthread_mutex_lock(&d->mu); /* a send that failed says more than the silence that followed */
        if (d->send_error[0]) st = tnd_fail(TND_ERR_IO, "%s", d->send_error);
        pthread_mutex_unlock(&d->mu);
        return st;
    }
    if (step) {
        tnd_wire_reader r = {.data = payload, .len = length};
        uint32_t due = 2u * n * (uint32_t)d->n_embd + 4; /* the states in F16, then the cloud's compute time */
        if (length != due || !tnd_wire_get_f16(&r, x, (size_t)n * (size_t)d->n_embd))
            return tnd_fail(TND_ERR_FORMAT, "the cloud's hidden states are %u bytes; %u were due", length, due);
        uint32_t compute_us = tnd_wire_get_u32(&r);
        double now = tnd_now_seconds(), from = o->t_queued > d->last_answer_at ? o->t_queued : d->last_answer_at;
        time_step(d, n, now - from); /* from when the cloud could start on it */
        d->last_answer_at = now;
        d->profile.link_seconds += now - from;
        d->profile.link_compute_seconds += compute_us * 1e-6;
        d->profile.link_stages++;
    }
    if (o->serial) tnd_stand_in_confirm(d->stand_in, o->serial);
    pthread_mutex_lock(&d->mu);
    d->answer_next = (d->answer_next + 1) % OUTBOX;
    d->n_used--;
    d->ping_at = 0; /* the link answered */
    pthread_mutex_unlock(&d->mu);
    return TND_OK;
}

/* ------------------------------------------------------------------------------------------------------------
 * The stage
 * ---------------------------------------------------------------------------------------------------------- */

/* Queues the pending KV block copies, then the step given to begin_step with its hidden states x. */
static tnd_status send_step(remote_device *d, int32_t group_begin, int32_t group_end, const float *x) {
    const tnd_step *step = d->step;
    outgoing *o;
    tnd_status st;
    if (d->n_copies) {
        if (!(o = next_entry(d))) return TND_ERR_INTERNAL;
        tnd_wire_put_copies(&o->msg, d->copy_src, d->copy_dst, (uint32_t)d->n_copies);
        d->n_copies = 0;
        if ((st = queue(d, o, TND_WIRE_COPY_BLOCKS, 0))) return st;
    }
    size_t words = tnd_step_flat_words(step);
    if (words > d->flat_cap) {
        free(d->flat);
        d->flat = malloc(words * sizeof *d->flat);
        d->flat_cap = d->flat ? words : 0;
        if (!d->flat) return tnd_fail(TND_ERR_OUT_OF_MEMORY, "out of memory for a step's metadata");
    }
    tnd_step_flatten(step, d->flat, 0);
    uint32_t n = (uint32_t)step->n_tokens;
    tnd_wire_step ws = {.n_tokens = n, .group_begin = (uint32_t)group_begin, .group_end = (uint32_t)group_end,
                        .n_embd = (uint32_t)d->n_embd, .pos = d->flat, .slot = d->flat + n, .n_ctx = d->flat + 2 * n,
                        .table_at = d->flat + 3 * n, .n_table_words = (uint32_t)(words - 4 * (size_t)n),
                        .tables = d->flat + 4 * n, .hidden = (float *)x}; /* read, not written, by put */
    if (!(o = next_entry(d))) return TND_ERR_INTERNAL;
    tnd_wire_put_step(&o->msg, &ws);
    return queue(d, o, TND_WIRE_STEP, n);
}

/* The answers up to the oldest STEP's, its hidden states into x. */
static tnd_status receive_step(remote_device *d, float *x) {
    if (d->taken_over) return tnd_stand_in_answer(d->stand_in, x);
    tnd_status st = TND_OK;
    while (!st && d->n_used && d->box[d->answer_next].type != TND_WIRE_STEP) st = receive(d, NULL);
    return st ? st : receive(d, x);
}

/* A failed message leaves the link in no known state (a message may be half sent, an answer may still come), so the
 * link is over for good. The stand-in, where there is one, takes over: every message not answered is in its log,
 * and it answers them (TND_OK: the caller asks again). Else the device is lost: the caller goes on elsewhere
 * (tnd_session_move) or makes a new context. */
static tnd_status lose(remote_device *d, tnd_status st) {
    if (!st || st == TND_ERR_OUT_OF_MEMORY || st == TND_ERR_INTERNAL || d->taken_over) return st;
    snprintf(d->message, sizeof d->message, "%s: the cloud link is lost: %s", d->base.name, tnd_last_error());
    tnd_link_abort(d->link); /* the sender may wait in a send that never ends */
    stop_sender(d);
    tnd_link_close(d->link);
    d->link = NULL;
    double t0 = tnd_now_seconds();
    if (d->stand_in && tnd_stand_in_take_over(d->stand_in) == TND_OK) {
        d->taken_over = true;
        d->n_used = d->n_unsent = 0; /* (their messages wait in the stand-in's log) */
        snprintf(d->taken_over_why, sizeof d->taken_over_why, "%s; the cloud's layers go on here (its stand-in "
                 "caught up in %.3f s)", d->message, tnd_now_seconds() - t0);
        return TND_OK;
    }
    if (d->stand_in) /* it gave up: say why beside the loss */
        snprintf(d->message + strlen(d->message), sizeof d->message - strlen(d->message), " (%s)", tnd_last_error());
    d->lost = true;
    return tnd_fail(TND_ERR_DEVICE_LOST, "%s", d->message);
}

bool tnd_remote_device_taken_over(tnd_backend *b, char *why, size_t cap) {
    remote_device *d = rd(b);
    if (d->taken_over && why && cap) snprintf(why, cap, "%s", d->taken_over_why);
    return d->taken_over;
}

/* Fails at once where the device is lost, or where the sender found the link dead while it was idle. */
static tnd_status usable(remote_device *d) {
    if (d->failure) return tnd_fail(d->failure, "%s", d->message);
    if (d->lost) return tnd_fail(TND_ERR_DEVICE_LOST, "%s", d->message);
    if (d->taken_over) return TND_OK;
    pthread_mutex_lock(&d->mu);
    bool dead = d->send_error[0] != 0;
    tnd_status st = dead ? tnd_fail(TND_ERR_IO, "%s", d->send_error) : TND_OK;
    pthread_mutex_unlock(&d->mu);
    return dead ? lose(d, st) : TND_OK;
}

static tnd_status remote_stage_send(tnd_backend *b, int32_t group_begin, int32_t group_end, const float *x) {
    remote_device *d = rd(b);
    tnd_status st = usable(d);
    return st ? st : lose(d, send_step(d, group_begin, group_end, x));
}

static tnd_status remote_stage_recv(tnd_backend *b, float *x) {
    remote_device *d = rd(b);
    tnd_status st = usable(d);
    bool linked = !d->taken_over;
    if (!st) st = lose(d, receive_step(d, x));
    if (!st && linked && d->taken_over) st = receive_step(d, x); /* the stand-in took over meanwhile: it answers */
    return st;
}

static tnd_status remote_run_stage(tnd_backend *b, int32_t group_begin, int32_t group_end, float *x) {
    tnd_status st = remote_stage_send(b, group_begin, group_end, x);
    return st ? st : remote_stage_recv(b, x);
}

/* Copy-on-write of a forked sequence's block: the cloud copies it in all its pools, so the calls of one copy for
 * every pool here (two per layer) make one pair, sent with the next step. */
static void remote_kv_copy_blocks(tnd_backend *b, tnd_buffer *pool, size_t block_bytes, const int32_t *src,
                                  const int32_t *dst, int32_t n) {
    remote_device *d = rd(b);
    for (int32_t i = 0; i < n; i++) {
        bool known = false;
        for (int32_t j = 0; j < d->n_copies && !known; j++) known = d->copy_src[j] == src[i] && d->copy_dst[j] == dst[i];
        if (known) continue;
        if (d->n_copies == MAX_PENDING_COPIES) {
            failed(d, TND_ERR_OUT_OF_MEMORY, "too many KV block copies before a step");
            return;
        }
        d->copy_src[d->n_copies] = src[i];
        d->copy_dst[d->n_copies++] = dst[i];
    }
}

/* ------------------------------------------------------------------------------------------------------------
 * What the device is: handles and shapes
 * ---------------------------------------------------------------------------------------------------------- */

static bool remote_supports(tnd_backend *b, const tnd_op_query *q) { return true; /* the cloud's CPU runs all */ }

static void remote_memory(tnd_backend *b, uint64_t *total, uint64_t *available) {
    *total = *available = 0; /* the cloud's own business: nothing of the plan is stored here */
}

static double remote_measure_bandwidth(tnd_backend *b) { return 0; }

static void remote_describe(tnd_backend *b, char *buf, size_t cap) {
    remote_device *d = rd(b);
    snprintf(buf, cap, "cloud at %s (%s)", d->host_port, d->secure ? "TLS 1.3, pre-shared key" : "plaintext");
}

static tnd_status remote_reserve(tnd_backend *b, int64_t max_cols, int64_t max_tokens) { return TND_OK; }
static void remote_begin_step(tnd_backend *b, const tnd_step *step) { rd(b)->step = step; }

static tnd_status remote_synchronize(tnd_backend *b) {
    remote_device *d = rd(b);
    tnd_status st = d->failure;
    d->failure = TND_OK;
    return st ? tnd_fail(st, "%s", d->message) : TND_OK;
}

/* The per-op entries: a stage on this device always goes through run_stage. */
static void per_op(tnd_backend *b) { failed(rd(b), TND_ERR_INTERNAL, "the cloud runs whole stages, not single ops"); }
static void remote_embed(tnd_backend *b, const tnd_weight *t, const int32_t *ids, const tnd_tensor *o) { per_op(b); }
static void remote_matmul(tnd_backend *b, const tnd_weight *w, const tnd_tensor *x, const tnd_tensor *y) { per_op(b); }
static void remote_matmul_many(tnd_backend *b, int n, const tnd_weight *const *w, const tnd_tensor *x,
                               const tnd_tensor *const *y) {
    per_op(b);
}
static void remote_rms_norm(tnd_backend *b, const tnd_tensor *x, const tnd_tensor *g, const tnd_tensor *y, float e) {
    per_op(b);
}
static void remote_binary(tnd_backend *b, const tnd_tensor *y, const tnd_tensor *x) { per_op(b); }
static void remote_swiglu(tnd_backend *b, const tnd_tensor *g, const tnd_tensor *u, const tnd_tensor *o) { per_op(b); }
static void remote_rope(tnd_backend *b, const tnd_tensor *x, int32_t n_heads, const tnd_rope *rope) { per_op(b); }
static void remote_kv_store(tnd_backend *b, tnd_buffer *kp, tnd_buffer *vp, tnd_type kt, tnd_type vt,
                            const tnd_tensor *k, const tnd_tensor *v, int32_t head_dim) {
    per_op(b);
}
static void remote_attention(tnd_backend *b, const tnd_attention_args *a) { per_op(b); }
static void remote_moe_route(tnd_backend *b, const tnd_moe_route_args *a) { per_op(b); }
static void remote_matmul_experts(tnd_backend *b, int n, const tnd_weight *const *w, const tnd_tensor *x,
                                  const tnd_tensor *ids, const tnd_tensor *const *y) {
    per_op(b);
}
static void remote_moe_combine(tnd_backend *b, const tnd_tensor *e, const tnd_tensor *w, const tnd_tensor *y) {
    per_op(b);
}

static void remote_profile(tnd_backend *b, tnd_device_profile *out, int reset) {
    remote_device *d = rd(b);
    out->link_seconds += d->profile.link_seconds;
    out->link_compute_seconds += d->profile.link_compute_seconds;
    out->link_stages += d->profile.link_stages;
    if (reset) memset(&d->profile, 0, sizeof d->profile);
}

static void remote_destroy(tnd_backend *b) {
    if (!b) return;
    remote_device *d = rd(b);
    if (d->link && d->n_used) tnd_link_abort(d->link); /* a step left half done: nothing more can follow */
    stop_sender(d);
    if (d->link) {
        if (!d->n_used) tnd_link_send(d->link, TND_WIRE_BYE, NULL, 0);
        tnd_link_close(d->link);
    }
    tnd_stand_in_close(d->stand_in);
    free(d->flat);
    for (int i = 0; i < OUTBOX; i++) tnd_wire_writer_free(&d->box[i].msg);
    pthread_cond_destroy(&d->cv);
    pthread_mutex_destroy(&d->mu);
    free(d);
}

static const tnd_backend_vtable remote_vtable = {
    .destroy = remote_destroy,
    .supports = remote_supports,
    .memory = remote_memory,
    .measure_bandwidth = remote_measure_bandwidth,
    .describe = remote_describe,
    .alloc = tnd_none_alloc, /* handles: the cloud holds the weights and the KV (none_device.h) */
    .free = tnd_none_free,
    .write = tnd_none_write,
    .read = tnd_none_read,
    .prepare_weight = tnd_none_prepare_weight,
    .release_weight = tnd_none_release_weight,
    .reserve = remote_reserve,
    .begin_step = remote_begin_step,
    .synchronize = remote_synchronize,
    .embed = remote_embed,
    .matmul = remote_matmul,
    .matmul_many = remote_matmul_many,
    .rms_norm = remote_rms_norm,
    .add = remote_binary,
    .add_bias = remote_binary,
    .swiglu = remote_swiglu,
    .rope = remote_rope,
    .copy = remote_binary,
    .kv_store = remote_kv_store,
    .kv_copy_blocks = remote_kv_copy_blocks,
    .attention = remote_attention,
    .moe_route = remote_moe_route,
    .matmul_experts = remote_matmul_experts,
    .moe_combine = remote_moe_combine,
    .sigmoid_scale = remote_binary,
    .run_stage = remote_run_stage,
    .stage_send = remote_stage_send,
    .stage_recv = remote_stage_recv,
    .profile = remote_profile,
};

tnd_status tnd_remote_device_init(const tnd_model *m, const tnd_remote_params *p, const char *name, tnd_backend **out) {
    *out = NULL;
    remote_device *d = calloc(1, sizeof *d);
    if (!d) return tnd_fail(TND_ERR_OUT_OF_MEMORY, "out of memory for a remote device");
    if (pthread_mutex_init(&d->mu, NULL)) {
        free(d);
        return tnd_fail(TND_ERR_OUT_OF_MEMORY, "no mutex for a remote device");
    }
    pthread_condattr_t ca; /* the heartbeat waits on the monotonic clock */
    bool cv = false;
    if (!pthread_condattr_init(&ca)) {
        cv = !pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) && !pthread_cond_init(&d->cv, &ca);
        pthread_condattr_destroy(&ca);
    }
    if (!cv) {
        pthread_mutex_destroy(&d->mu);
        free(d);
        return tnd_fail(TND_ERR_OUT_OF_MEMORY, "no condition variable for a remote device");
    }
    d->base.vt = &remote_vtable;
    d->base.impl = d;
    snprintf(d->base.name, sizeof d->base.name, "%s", name);
    snprintf(d->host_port, sizeof d->host_port, "%s", p->host_port);
    d->p = *p;
    d->p.host_port = d->host_port;
    d->p.key = NULL; /* the link holds the key itself */
    d->secure = p->key != NULL;
    tnd_wire_hello hello = {.version = TND_WIRE_VERSION, .k_type = (uint32_t)p->k_type, .v_type = (uint32_t)p->v_type,
                            .block_size = (uint32_t)p->block_size, .n_blocks = (uint32_t)p->n_blocks,
                            .n_batch = (uint32_t)p->n_batch};
    int timeout = p->connect_timeout_ms > 0 ? p->connect_timeout_ms : DEFAULT_TIMEOUT_MS;
    const uint8_t *payload;
    uint32_t length;
    tnd_status st = tnd_model_id(m, hello.model_id);
    if (!st) st = tnd_link_connect(p->host_port, p->key, timeout, &d->link);
    tnd_wire_writer *w = &d->box[0].msg;
    if (!st) {
        tnd_wire_put_hello(w, &hello);
        st = w->failed ? tnd_fail(TND_ERR_OUT_OF_MEMORY, "out of memory") : tnd_link_send(d->link, TND_WIRE_HELLO,
                                                                                             w->data, w->len);
    }
    if (!st) st = answer(d, TND_WIRE_WELCOME, timeout, &payload, &length);
    tnd_wire_welcome welcome = {0};
    if (!st) {
        tnd_wire_reader r = {.data = payload, .len = length};
        st = tnd_wire_get_welcome(&r, &welcome);
    }
    d->n_embd = (int32_t)welcome.n_embd;
    d->last_sent = tnd_now_seconds();
    if (!st && p->stand_in) st = tnd_stand_in_open(p, d->n_embd, &d->stand_in);
    if (!st && pthread_create(&d->sender, NULL, send_loop, d))
        st = tnd_fail(TND_ERR_OUT_OF_MEMORY, "no thread to send to the cloud");
    d->sender_started = !st;
    if (st) {
        tnd_error_prefix("cloud %s: ", p->host_port);
        tnd_link_close(d->link);
        d->link = NULL;
        remote_destroy(&d->base);
        return st;
    }
    *out = &d->base;
    return TND_OK;
}
