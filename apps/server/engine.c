/* engine.c: the continuous-batching engine of `tandem serve`. One thread owns the inference context and one
 * library generation session (tnd_session) per sequence slot. Each step it admits queued requests into free slots
 * (reusing cached prompt prefixes, also another slot's), steps all busy sessions in one forward pass
 * (tnd_session_step_many: the next token of every generating sequence plus chunks of the prompts being prefilled),
 * and moves each session's new text to its request's output, which the HTTP threads read. */
#include "server.h"

#include "../cli/fallback.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ------------------------------------------------------------------------------------------------------------
 * Requests
 * ---------------------------------------------------------------------------------------------------------- */

srv_request *srv_request_new(void) {
    srv_request *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    pthread_condattr_t ca;
    bool ok = !pthread_condattr_init(&ca);
    ok = ok && !pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    bool mu = ok && !pthread_mutex_init(&r->mu, NULL);
    bool cv = mu && !pthread_cond_init(&r->cv, &ca);
    pthread_condattr_destroy(&ca);
    if (!cv) {
        if (mu) pthread_mutex_destroy(&r->mu);
        free(r);
        return NULL;
    }
    r->refs = 1;
    r->max_tokens = -1;
    atomic_init(&r->cancelled, 0);
    return r;
}

void srv_request_release(srv_request *r) {
    if (!r) return;
    pthread_mutex_lock(&r->mu);
    int left = --r->refs;
    pthread_mutex_unlock(&r->mu);
    if (left) return;
    free(r->prompt);
    free(r->bias);
    for (int32_t i = 0; i < r->n_stops; i++) free(r->stops[i]);
    tnd_grammar_free(r->grammar);
    srv_tools_free(&r->tools);
    free(r->input_len);
    free(r->embeddings);
    srv_buf_free(&r->text);
    free(r->infos);
    pthread_cond_destroy(&r->cv);
    pthread_mutex_destroy(&r->mu);
    free(r);
}

/* Appends n infos to a growable array. */
static bool infos_append(srv_token_info **arr, int32_t *n, int32_t *cap, const srv_token_info *src, int32_t count) {
    if (!count) return true;
    if (*n + count > *cap) {
        int32_t c = *cap ? *cap : 16;
        while (c < *n + count) c *= 2;
        srv_token_info *a = realloc(*arr, sizeof **arr * (size_t)c);
        if (!a) return false;
        *arr = a;
        *cap = c;
    }
    memcpy(*arr + *n, src, sizeof *src * (size_t)count);
    *n += count;
    return true;
}

int srv_request_take(srv_request *r, srv_output *out, bool *has_new) {
    pthread_mutex_lock(&r->mu);
    *has_new = r->text.len || r->n_infos;
    bool ok = srv_buf_append(&out->text, r->text.data, r->text.len) &&
              infos_append(&out->infos, &out->n_infos, &out->cap_infos, r->infos, r->n_infos);
    if (ok) {
        r->text.len = 0;
        r->n_infos = 0;
    }
    bool done = r->done;
    pthread_mutex_unlock(&r->mu);
    return ok ? done : -1;
}

bool srv_request_wait(srv_request *r, double seconds) {
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    long long ns = until.tv_nsec + (long long)(seconds * 1e9);
    until.tv_sec += (time_t)(ns / 1000000000);
    until.tv_nsec = (long)(ns % 1000000000);
    pthread_mutex_lock(&r->mu);
    while (!r->done && !r->text.len && !r->n_infos)
        if (pthread_cond_timedwait(&r->cv, &r->mu, &until)) break;
    bool ready = r->done || r->text.len || r->n_infos;
    pthread_mutex_unlock(&r->mu);
    return ready;
}

void srv_output_free(srv_output *out) {
    srv_buf_free(&out->text);
    free(out->infos);
    memset(out, 0, sizeof *out);
}

/* Engine side: adds text and an optional token info to the request's output, with the count of tokens so far. An
 * allocation failure ends the request with an error instead. */
static void push_output(srv_request *r, const char *text, size_t n, const srv_token_info *info, int32_t n_generated) {
    pthread_mutex_lock(&r->mu);
    r->n_generated = n_generated;
    bool ok = srv_buf_append(&r->text, text, n) && (!info || infos_append(&r->infos, &r->n_infos, &r->cap_infos,
                                                                           info, 1));
    if (!ok && !r->done) {
        r->done = true;
        r->finish = SRV_FINISH_ERROR;
        r->error_status = 500;
        snprintf(r->error, sizeof r->error, "out of memory for the generated text");
    }
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

/* Engine side: marks the request done (the first call wins). */
static void finish_request(srv_request *r, srv_finish finish, int status, const char *message, int32_t n_generated) {
    pthread_mutex_lock(&r->mu);
    if (!r->done) {
        r->done = true;
        r->finish = finish;
        r->error_status = status;
        snprintf(r->error, sizeof r->error, "%s", message ? message : "");
    }
    r->n_generated = n_generated;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

/* ------------------------------------------------------------------------------------------------------------
 * Engine state
 * ---------------------------------------------------------------------------------------------------------- */

/* A sequence of the context and the library session that runs it. An idle slot keeps its cache for prefix
 * reuse. */
typedef struct slot {
    tnd_session *session;  /* on sequence `seq` of the engine's context */
    int32_t seq;
    srv_request *req;      /* NULL = idle */
    uint64_t admitted;     /* admission number of its request: prefill order, and which idle cache is oldest */
    size_t text_sent;      /* bytes of the session's text already given to the request */
    bool first_reported;   /* the time to its first token is recorded */
    tnd_speculation_stats spec_seen; /* its speculation figures at its last request's end (for the metrics) */
} slot;

struct srv_engine {
    const srv_config *cfg;
    const tnd_tokenizer *tok;
    srv_metrics *metrics;
    tnd_model *model;
    tnd_context *ctx;
    cli_fallback fallback;             /* where the sessions go when a device of the plan is lost, and back */
    int32_t n_vocab, n_ctx, n_slots;
    tnd_pooling pooling;               /* of embeddings */
    slot *slots;
    slot **busy;                       /* [n_slots] the busy slots of a step, oldest request first */
    tnd_session **order;               /* [n_slots] their sessions */
    srv_request **popped;              /* [n_slots] requests taken from the queue in one round */
    uint64_t n_admitted;

    pthread_t thread;
    bool thread_started;
    pthread_mutex_t mu; /* the queue and `stopping` */
    pthread_cond_t cv;
    srv_request *head, *tail;
    int32_t n_queued;
    int32_t n_idle;       /* slots free for queued requests at the last look: a burst that fits them is not refused */
    bool stopping;
};

static int32_t count_active(const srv_engine *e) {
    int32_t n = 0;
    for (int32_t i = 0; i < e->n_slots; i++) n += e->slots[i].req != NULL;
    return n;
}

/* Unlinks a queued request (engine lock held). */
static void unlink_queued(srv_engine *e, srv_request *r) {
    if (r->prev) r->prev->next = r->next;
    else e->head = r->next;
    if (r->next) r->next->prev = r->prev;
    else e->tail = r->prev;
    r->prev = r->next = NULL;
    r->queued = false;
    e->n_queued--;
}

srv_submit srv_engine_submit(srv_engine *e, srv_request *r) {
    pthread_mutex_lock(&e->mu);
    srv_submit result = e->stopping                                    ? SRV_SUBMIT_CLOSED
                        : e->n_queued >= e->cfg->max_queue + e->n_idle ? SRV_SUBMIT_QUEUE_FULL
                                                                       : SRV_SUBMIT_OK;
    if (result == SRV_SUBMIT_OK) {
        pthread_mutex_lock(&r->mu);
        r->refs++; /* the engine's */
        pthread_mutex_unlock(&r->mu);
        r->prev = e->tail;
        r->next = NULL;
        if (e->tail) e->tail->next = r;
        else e->head = r;
        e->tail = r;
        r->queued = true;
        e->n_queued++;
        pthread_cond_signal(&e->cv);
    }
    pthread_mutex_unlock(&e->mu);
    return result;
}

void srv_engine_cancel(srv_engine *e, srv_request *r) {
    atomic_store(&r->cancelled, 1);
    pthread_mutex_lock(&e->mu);
    bool was_queued = r->queued;
    if (was_queued) unlink_queued(e, r);
    pthread_mutex_unlock(&e->mu);
    if (was_queued) { /* never admitted: end it here and drop the engine's reference */
        finish_request(r, SRV_FINISH_CANCELLED, 0, NULL, 0);
        srv_metrics_cancelled(e->metrics);
        srv_request_release(r);
    }
}

/* ------------------------------------------------------------------------------------------------------------
 * Slots: admission with prefix reuse, and ending a request
 * ---------------------------------------------------------------------------------------------------------- */

/* Where a new request goes among the idle slots, best first: one whose whole cache the prompt extends (nothing is
 * lost), then an empty one, then the one idle longest. */
static int32_t placement_rank(int32_t n_cached, int32_t common) {
    return n_cached > 0 && common == n_cached ? 0 : n_cached == 0 ? 1 : 2;
}

/* Chooses an idle slot for `r` and gives it the longest prefix of the prompt that any slot holds: its own, or
 * another slot's (idle or busy) shared through a copy-on-write fork, which leaves that slot's cache whole for later
 * requests. The session then keeps what its prompt shares with that cache. Only exactly equal token prefixes are
 * reused: the KV rows of positions < n depend on tokens 0..n-1 alone. */
static slot *place(srv_engine *e, const srv_request *r) {
    slot *dst = NULL, *src = NULL;
    int32_t dst_common = 0, dst_rank = 3, src_common = 0;
    for (int32_t i = 0; i < e->n_slots; i++) {
        slot *s = &e->slots[i];
        int32_t c = tnd_session_cached_prefix(s->session, r->prompt, r->n_prompt);
        if (c > src_common) {
            src = s;
            src_common = c;
        }
        if (s->req) continue;
        int32_t rank = placement_rank(tnd_context_seq_length(e->ctx, s->seq), c);
        if (rank < dst_rank || (rank == dst_rank && (rank == 0 ? c > dst_common : s->admitted < dst->admitted))) {
            dst = s;
            dst_rank = rank;
            dst_common = c;
        }
    }
    if (dst && src && src != dst && src_common > dst_common && tnd_session_adopt_cache(dst->session, src->session))
        tnd_session_clear(dst->session); /* the fork failed: start from nothing */
    return dst;
}

/* Ends a request that never got a slot. */
static void reject(srv_request *r, srv_finish finish, int status, const char *message) {
    finish_request(r, finish, status, message, 0);
    srv_request_release(r);
}

/* Runs an embeddings request at once on the sequence of an idle slot (an empty one, else the one idle longest,
 * whose cache it drops): every input in turn, between two steps of the others. */
static void embed_now(srv_engine *e, srv_request *r) {
    slot *s = NULL;
    for (int32_t i = 0; i < e->n_slots; i++) {
        slot *c = &e->slots[i];
        if (c->req) continue;
        bool c_empty = !tnd_context_seq_length(e->ctx, c->seq), s_empty = s && !tnd_context_seq_length(e->ctx, s->seq);
        if (!s || (c_empty != s_empty ? c_empty : c->admitted < s->admitted)) s = c;
    }
    if (!s) {
        reject(r, SRV_FINISH_ERROR, 500, "no free sequence slot (engine bookkeeping error)");
        return;
    }
    tnd_session_clear(s->session);
    const int32_t *tokens = r->prompt;
    for (int32_t i = 0; i < r->n_inputs; i++) {
        if (tnd_context_embed(e->ctx, s->seq, tokens, r->input_len[i], e->pooling,
                              r->embeddings + (size_t)i * (size_t)r->n_embd) != TND_OK) {
            char message[256];
            snprintf(message, sizeof message, "embedding input %d failed: %s", i, tnd_last_error());
            reject(r, SRV_FINISH_ERROR, 500, message);
            return;
        }
        tokens += r->input_len[i];
    }
    srv_metrics_admitted(e->metrics, r->n_prompt, 0);
    finish_request(r, SRV_FINISH_STOP, 0, NULL, 0);
    srv_request_release(r);
}

/* Puts a request taken from the queue into a slot and starts its session. */
static void admit(srv_engine *e, srv_request *r) {
    if (atomic_load(&r->cancelled)) {
        srv_metrics_cancelled(e->metrics);
        reject(r, SRV_FINISH_CANCELLED, 0, NULL);
        return;
    }
    if (srv_now() > r->deadline) {
        reject(r, SRV_FINISH_ERROR, 503, "the request timed out waiting for a free sequence slot");
        return;
    }
    if (r->kind == SRV_KIND_EMBEDDING) {
        embed_now(e, r);
        return;
    }
    slot *s = place(e, r);
    if (!s) {
        reject(r, SRV_FINISH_ERROR, 500, "no free sequence slot (engine bookkeeping error)");
        return;
    }
    tnd_generate_params gp = tnd_generate_default_params();
    gp.sampling = r->sampling;
    gp.max_tokens = r->max_tokens;
    gp.stops = (const char *const *)r->stops;
    gp.n_stops = r->n_stops;
    gp.no_speculation = r->logprobs; /* logprobs look at each token's logits: one token per step */
    gp.grammar = r->grammar;
    if (tnd_session_start(s->session, &gp, r->prompt, r->n_prompt) != TND_OK) {
        char message[256];
        snprintf(message, sizeof message, "cannot set up generation: %s", tnd_last_error());
        reject(r, SRV_FINISH_ERROR, 500, message);
        return;
    }
    tnd_session_stats st;
    tnd_session_stats_get(s->session, &st);
    s->req = r;
    s->admitted = ++e->n_admitted;
    s->text_sent = 0;
    s->first_reported = false;
    pthread_mutex_lock(&r->mu);
    r->n_cached = st.n_reused;
    pthread_mutex_unlock(&r->mu);
    srv_metrics_admitted(e->metrics, r->n_prompt, st.n_reused);
}

/* ------------------------------------------------------------------------------------------------------------
 * After a step: hand each request what its session produced
 * ---------------------------------------------------------------------------------------------------------- */

/* The request's finish for the session's. */
static srv_finish finish_of(tnd_finish_reason reason) {
    switch (reason) {
    case TND_FINISH_NONE: return SRV_FINISH_NONE;
    case TND_FINISH_EOG:
    case TND_FINISH_STOP_STRING: return SRV_FINISH_STOP;
    case TND_FINISH_LENGTH:
    case TND_FINISH_CONTEXT: return SRV_FINISH_LENGTH;
    case TND_FINISH_CANCELLED: return SRV_FINISH_CANCELLED;
    case TND_FINISH_ERROR: break;
    }
    return SRV_FINISH_ERROR;
}

/* Gives the request the session's new text (with the token's logprobs when asked) and, once the session ended, the
 * finish: a normal end keeps the cache for reuse, a cancelled or failed one frees the sequence's KV blocks. */
static void report(srv_engine *e, slot *s) {
    srv_request *r = s->req;
    tnd_session *ss = s->session;
    tnd_session_stats st;
    tnd_session_stats_get(ss, &st);
    if (!s->first_reported && st.t_first_token > 0) {
        s->first_reported = true;
        double now = srv_now();
        pthread_mutex_lock(&r->mu);
        r->t_first_token = now;
        pthread_mutex_unlock(&r->mu);
        srv_metrics_first_token(e->metrics, now - r->t_arrival);
    }
    size_t len = 0;
    const char *text = tnd_session_text(ss, &len);
    int32_t token = tnd_session_last_token(ss);
    srv_token_info info = {.token = token};
    bool with_info = r->logprobs && token >= 0;
    if (with_info)
        tnd_logprobs(tnd_session_logits(ss), e->n_vocab, token, &info.logprob, info.top, r->top_logprobs, &info.n_top);
    if (len > s->text_sent || with_info) push_output(r, text + s->text_sent, len - s->text_sent,
                                                     with_info ? &info : NULL, st.n_generated);
    s->text_sent = len;
    tnd_finish_reason reason = tnd_session_finish_reason(ss);
    srv_finish finish = finish_of(reason);
    if (finish == SRV_FINISH_NONE) return;
    if (finish == SRV_FINISH_CANCELLED) srv_metrics_cancelled(e->metrics);
    char message[256] = "";
    if (finish == SRV_FINISH_ERROR) snprintf(message, sizeof message, "%s", tnd_session_error(ss));
    finish_request(r, finish, finish == SRV_FINISH_ERROR ? 500 : 0, message, st.n_generated);
    tnd_speculation_stats spec;
    tnd_session_speculation_stats(ss, &spec);
    srv_metrics_speculation(e->metrics, spec.n_drafted - s->spec_seen.n_drafted,
                            spec.n_accepted - s->spec_seen.n_accepted, spec.n_verified - s->spec_seen.n_verified);
    s->spec_seen = spec;
    if (finish == SRV_FINISH_CANCELLED || finish == SRV_FINISH_ERROR) tnd_session_clear(ss);
    s->req = NULL;
    srv_request_release(r);
}

/* Ends a running request before its session does (shutting down): an error, and its cache is dropped. */
static void abort_slot(slot *s, int status, const char *message) {
    tnd_session_stats st;
    tnd_session_stats_get(s->session, &st);
    finish_request(s->req, SRV_FINISH_ERROR, status, message, st.n_generated);
    tnd_session_clear(s->session);
    srv_request_release(s->req);
    s->req = NULL;
}

/* ------------------------------------------------------------------------------------------------------------
 * A lost device, and its return
 * ---------------------------------------------------------------------------------------------------------- */

/* Moves every slot's session, running or idle, to ctx, which becomes the engine's context, and returns the one
 * before it (the caller frees or keeps it); a running request goes on where it stopped (its session evaluates its
 * record again and samples on). A move fails only on arguments that hold here (the same sequences, vocabulary and
 * size); should one fail, every session stays, ctx is freed and NULL returned. */
static tnd_context *move_all(srv_engine *e, tnd_context *ctx) {
    int32_t moved = 0;
    while (moved < e->n_slots && tnd_session_move(e->slots[moved].session, ctx, e->slots[moved].seq) == TND_OK) moved++;
    if (moved < e->n_slots) {
        fprintf(stderr, "tandem serve: the sessions cannot move to another context: %s\n", tnd_last_error());
        while (moved-- > 0) tnd_session_move(e->slots[moved].session, e->ctx, e->slots[moved].seq);
        tnd_context_free(ctx);
        return NULL;
    }
    tnd_context *before = e->ctx;
    e->ctx = ctx;
    return before;
}

/* A step found a device of the plan lost: every session goes on in the fallback context. Without one, the running
 * requests end with 503 and the next request tries the plan again. */
static void fall_back(srv_engine *e) {
    char why[240];
    snprintf(why, sizeof why, "a device of the plan was lost mid-answer (%s)", tnd_last_error());
    tnd_context *here = cli_fallback_take(&e->fallback, e->model), *lost = here ? move_all(e, here) : NULL;
    if (!lost)
        for (int32_t i = 0; i < e->n_slots; i++)
            if (e->slots[i].req) abort_slot(&e->slots[i], 503, why);
    tnd_context_free(lost);
    srv_metrics_device(e->metrics, true, lost != NULL);
}

/* While on the fallback and idle, with a request to admit: the plan's devices again where they answer. */
static void try_plan_again(srv_engine *e) {
    tnd_context *ctx = cli_fallback_retry(&e->fallback, e->model), *fallback = ctx ? move_all(e, ctx) : NULL;
    if (!fallback) {
        if (ctx) e->fallback.lost = true; /* (cannot happen: see move_all) */
        return;
    }
    cli_fallback_keep(&e->fallback, fallback);
    srv_metrics_device(e->metrics, false, false);
}

/* ------------------------------------------------------------------------------------------------------------
 * One step
 * ---------------------------------------------------------------------------------------------------------- */

/* One forward step over every busy slot, in the library: the next token of each generating session, then prompt
 * chunks, oldest request first, up to n_batch tokens in all. A client that went away or a request whose time is up
 * ends first. */
static void step(srv_engine *e) {
    double now = srv_now();
    int32_t n = 0;
    for (int32_t i = 0; i < e->n_slots; i++) {
        slot *s = &e->slots[i];
        if (!s->req) continue;
        if (atomic_load(&s->req->cancelled)) tnd_session_end(s->session, TND_FINISH_CANCELLED);
        else if (now > s->req->deadline) tnd_session_end(s->session, TND_FINISH_LENGTH);
        if (tnd_session_finish_reason(s->session) != TND_FINISH_NONE) {
            report(e, s);
            continue;
        }
        int32_t at = n++; /* insertion by admission: there are few slots */
        for (; at > 0 && e->busy[at - 1]->admitted > s->admitted; at--) e->busy[at] = e->busy[at - 1];
        e->busy[at] = s;
    }
    if (!n) return;
    for (int32_t i = 0; i < n; i++) e->order[i] = e->busy[i]->session;
    tnd_step_stats st;
    if (tnd_session_step_many(e->order, n, &st) == TND_ERR_DEVICE_LOST) { /* the sessions go on elsewhere */
        fall_back(e);
        return;
    }
    if (cli_fallback_noticed(&e->fallback, e->ctx)) srv_metrics_device(e->metrics, true, true); /* (its stand-in) */
    /* the fallback's context follows what the step added (a new prompt's chunks, the tokens drawn) */
    for (int32_t i = 0; i < n; i++) {
        int32_t len = 0;
        const int32_t *record = tnd_session_tokens(e->order[i], &len);
        cli_fallback_follow(&e->fallback, e->busy[i]->seq, record, len);
    }
    /* any other failed pass ends the sessions it fed, reported below */
    for (int32_t i = 0; i < e->n_slots; i++)
        if (e->slots[i].req) report(e, &e->slots[i]);
    if (st.n_prompt_tokens || st.n_generated) srv_metrics_step(e->metrics, st.n_prompt_tokens, st.n_generated,
                                                               st.seconds);
    tnd_expert_cache_stats experts;
    tnd_context_expert_cache_stats(e->ctx, &experts, 1);
    if (experts.pairs) srv_metrics_expert_cache(e->metrics, &experts);
}

static void publish(srv_engine *e) {
    int32_t used = 0, total = 0;
    tnd_context_kv_usage(e->ctx, &used, &total);
    int32_t active = count_active(e);
    pthread_mutex_lock(&e->mu);
    int32_t queued = e->n_queued;
    e->n_idle = e->n_slots - active;
    pthread_mutex_unlock(&e->mu);
    srv_metrics_engine(e->metrics, queued, active, used, total);
}

static void *engine_main(void *arg) {
    srv_engine *e = arg;
    for (;;) {
        pthread_mutex_lock(&e->mu);
        while (!e->stopping && !e->head && !count_active(e)) pthread_cond_wait(&e->cv, &e->mu);
        if (e->stopping) {
            pthread_mutex_unlock(&e->mu);
            break;
        }
        int32_t n_popped = 0, n_free = e->n_slots - count_active(e);
        while (e->head && n_popped < n_free) {
            srv_request *r = e->head;
            unlink_queued(e, r);
            e->popped[n_popped++] = r;
        }
        e->n_idle = n_free - n_popped;
        pthread_mutex_unlock(&e->mu);
        if (n_popped && !count_active(e)) try_plan_again(e);
        for (int32_t i = 0; i < n_popped; i++) admit(e, e->popped[i]);
        step(e);
        publish(e);
    }
    /* shutting down: nothing more runs */
    for (int32_t i = 0; i < e->n_slots; i++)
        if (e->slots[i].req) abort_slot(&e->slots[i], 503, "the server is shutting down");
    pthread_mutex_lock(&e->mu);
    while (e->head) {
        srv_request *r = e->head;
        unlink_queued(e, r);
        pthread_mutex_unlock(&e->mu);
        reject(r, SRV_FINISH_ERROR, 503, "the server is shutting down");
        pthread_mutex_lock(&e->mu);
    }
    pthread_mutex_unlock(&e->mu);
    publish(e);
    return NULL;
}

/* ------------------------------------------------------------------------------------------------------------
 * Start and stop
 * ---------------------------------------------------------------------------------------------------------- */

static void engine_free(srv_engine *e) {
    for (int32_t i = 0; e->slots && i < e->n_slots; i++) tnd_session_free(e->slots[i].session);
    free(e->slots);
    tnd_context_free(e->ctx);
    cli_fallback_close(&e->fallback);
    free(e->busy);
    free(e->order);
    free(e->popped);
    pthread_cond_destroy(&e->cv);
    pthread_mutex_destroy(&e->mu);
    free(e);
}

tnd_status srv_engine_start(const srv_config *cfg, tnd_model *model, const tnd_tokenizer *tok, srv_metrics *metrics,
                            srv_engine **out) {
    *out = NULL;
    srv_engine *e = calloc(1, sizeof *e);
    if (!e) return TND_ERR_OUT_OF_MEMORY;
    if (pthread_mutex_init(&e->mu, NULL)) {
        free(e);
        return TND_ERR_OUT_OF_MEMORY;
    }
    if (pthread_cond_init(&e->cv, NULL)) {
        pthread_mutex_destroy(&e->mu);
        free(e);
        return TND_ERR_OUT_OF_MEMORY;
    }
    e->cfg = cfg;
    e->tok = tok;
    e->metrics = metrics;
    e->model = model;
    e->n_ctx = cfg->n_ctx;
    e->n_slots = cfg->parallel;
    tnd_context_params p = tnd_context_default_params();
    /* every sequence can hold n_ctx tokens at once, so the shared cache never runs out: forks share blocks, and a
     * sequence never holds more than n_ctx / block_size of its own */
    int64_t per_seq = ((int64_t)cfg->n_ctx + p.kv_block_size - 1) / p.kv_block_size * p.kv_block_size;
    tnd_status st = TND_OK;
    if (per_seq * cfg->parallel > INT32_MAX) {
        st = TND_ERR_INVALID_ARGUMENT;
        goto fail;
    }
    p.n_ctx = (int32_t)(per_seq * cfg->parallel);
    p.n_seq_max = cfg->parallel;
    p.n_batch = cfg->n_batch;
    p.n_threads = cfg->n_threads;
    if (cfg->n_devices > 0) {
        p.n_devices = cfg->n_devices;
        p.device_kinds = cfg->device_kinds;
        p.remote = cfg->remote;
        p.remote_key_file = cfg->remote_key_file;
        p.group_device = cfg->group_device;
        p.n_groups = cfg->n_groups;
        p.expert_device = cfg->expert_device;
        p.expert_cache_slots = cfg->expert_cache_slots;
        p.expert_cache_policy = cfg->expert_cache_policy;
    }
    p.kv_type = p.k_type = cfg->k_type;
    p.v_type = cfg->v_type;
    if (!cli_fallback_open(&e->fallback, cfg->fallback_model, !cfg->no_follow, model, tok, &p)) {
        st = TND_ERR_INVALID_ARGUMENT;
        goto fail;
    }
    if ((st = tnd_context_init(model, &p, &e->ctx))) { /* a cloud out of reach: serve here until it answers */
        if (!p.remote || !(e->ctx = cli_fallback_take(&e->fallback, model))) goto fail;
        srv_metrics_device(metrics, false, true);
        st = TND_OK;
    } else {
        cli_fallback_prepare(&e->fallback, model);
    }
    e->n_vocab = tnd_model_n_vocab(model);
    e->pooling = tnd_model_pooling(model);
    size_t ns = (size_t)e->n_slots;
    e->slots = calloc(ns, sizeof *e->slots);
    e->busy = calloc(ns, sizeof *e->busy);
    e->order = calloc(ns, sizeof *e->order);
    e->popped = calloc(ns, sizeof *e->popped);
    st = TND_ERR_OUT_OF_MEMORY;
    if (!e->slots || !e->busy || !e->order || !e->popped) goto fail;
    for (int32_t i = 0; i < e->n_slots; i++) {
        e->slots[i].seq = i;
        if ((st = tnd_session_init(e->ctx, tok, i, e->n_ctx, &e->slots[i].session))) goto fail;
        if (cfg->spec) {
            tnd_speculation_params sp = *cfg->spec;
            sp.draft_seq = i;
            if ((st = tnd_session_set_speculation(e->slots[i].session, &sp))) goto fail;
        }
    }
    st = TND_ERR_OUT_OF_MEMORY;
    if (pthread_create(&e->thread, NULL, engine_main, e)) goto fail;
    e->thread_started = true;
    publish(e);
    *out = e;
    return TND_OK;
fail:
    engine_free(e);
    return st;
}

int32_t srv_engine_n_embd(const srv_engine *e) { return tnd_context_n_embd(e->ctx); }

void srv_engine_stop(srv_engine *e) {
    if (!e || !e->thread_started) return;
    pthread_mutex_lock(&e->mu);
    e->stopping = true;
    pthread_cond_broadcast(&e->cv);
    pthread_mutex_unlock(&e->mu);
    pthread_join(e->thread, NULL);
    e->thread_started = false;
}

void srv_engine_free(srv_engine *e) {
    if (!e) return;
    srv_engine_stop(e);
    engine_free(e);
}
