/* engine.c: the continuous-batching engine of `tandem serve`. One thread owns the inference context. Each step it
 * admits queued requests into free sequence slots (reusing cached prompt prefixes), builds one batch holding the
 * next token of every generating sequence plus chunks of the prompts being prefilled, decodes it, and samples each
 * sequence with its own sampler. Text goes to each request's output, which the HTTP threads read. */
#include "server.h"

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

/* A sequence of the context and what it holds. An idle slot keeps its cache for prefix reuse. */
typedef struct slot {
    int32_t seq;
    srv_request *req;      /* NULL = idle */
    int32_t *cached;       /* [n_ctx] tokens whose KV rows the sequence holds, in position order */
    int32_t n_cached;
    int32_t n_prefilled;   /* prompt tokens in the cache */
    int32_t next_token;    /* sampled and fed at the next step; -1 while prefilling */
    int32_t n_generated;
    uint64_t admitted;     /* admission number of its request: prefill order, and which idle cache is oldest */
    int32_t n_fed;         /* tokens it put into the current batch, starting at batch entry `fed_at` */
    int32_t fed_at;
    int32_t logits_row;    /* row of its logits in the current batch, -1 none */
    tnd_sampler *sampler;
    tnd_detokenizer *det;
    tnd_stop_matcher *stops;
} slot;

struct srv_engine {
    const srv_config *cfg;
    const tnd_tokenizer *tok;
    srv_metrics *metrics;
    tnd_context *ctx;
    int32_t n_vocab, n_ctx, n_batch, n_slots;
    slot *slots;
    int32_t *b_tokens, *b_pos, *b_seq; /* [n_batch] the step's batch */
    int8_t *b_logits;
    srv_request **popped;              /* [n_slots] requests taken from the queue in one round */
    srv_buf piece;                     /* decoded bytes of one token */
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

static int32_t common_prefix(const int32_t *a, int32_t na, const int32_t *b, int32_t nb) {
    int32_t n = na < nb ? na : nb, i = 0;
    while (i < n && a[i] == b[i]) i++;
    return i;
}

/* Where a new request goes among the idle slots, best first: one whose whole cache the prompt extends (nothing is
 * lost), then an empty one, then the one idle longest. */
static int32_t placement_rank(const slot *s, int32_t common) {
    return s->n_cached > 0 && common == s->n_cached ? 0 : s->n_cached == 0 ? 1 : 2;
}

/* Chooses an idle slot for `r` and sets its cache to the longest prefix of the prompt that any slot holds: its own,
 * or another slot's (idle or busy) shared through a copy-on-write fork, which leaves that slot's cache whole for
 * later requests. The cache keeps at most n_prompt - 1 tokens, so the last prompt token is evaluated again and
 * yields fresh logits. Only exactly equal token prefixes are reused: the KV rows of positions < n depend on tokens
 * 0..n-1 alone, and rows beyond the kept length are never read (they are overwritten as the sequence grows). */
static slot *place(srv_engine *e, const srv_request *r) {
    slot *dst = NULL, *src = NULL;
    int32_t dst_common = 0, dst_rank = 3, src_common = 0;
    for (int32_t i = 0; i < e->n_slots; i++) {
        slot *s = &e->slots[i];
        int32_t c = common_prefix(s->cached, s->n_cached, r->prompt, r->n_prompt);
        if (c > src_common) {
            src = s;
            src_common = c;
        }
        if (s->req) continue;
        int32_t rank = placement_rank(s, c);
        if (rank < dst_rank || (rank == dst_rank && (rank == 0 ? c > dst_common : s->admitted < dst->admitted))) {
            dst = s;
            dst_rank = rank;
            dst_common = c;
        }
    }
    if (!dst) return NULL;
    int32_t keep = dst_common;
    if (src && src != dst && src_common > dst_common) {
        if (tnd_context_seq_fork(e->ctx, src->seq, dst->seq) == TND_OK) {
            memcpy(dst->cached, src->cached, sizeof(int32_t) * (size_t)src->n_cached);
            dst->n_cached = src->n_cached;
            keep = src_common;
        } else { /* the fork emptied dst */
            dst->n_cached = 0;
            keep = 0;
        }
    }
    if (keep > r->n_prompt - 1) keep = r->n_prompt - 1;
    if (tnd_context_seq_truncate(e->ctx, dst->seq, keep) != TND_OK) {
        tnd_context_seq_truncate(e->ctx, dst->seq, 0);
        keep = 0;
    }
    dst->n_cached = keep;
    return dst;
}

/* Frees the per-request objects of a slot and marks it idle; a slot whose cache is not trusted is emptied. */
static void clear_slot(srv_engine *e, slot *s, bool drop_cache) {
    tnd_sampler_free(s->sampler);
    tnd_detokenizer_free(s->det);
    tnd_stop_matcher_free(s->stops);
    s->sampler = NULL;
    s->det = NULL;
    s->stops = NULL;
    s->req = NULL;
    s->next_token = -1;
    s->n_fed = 0;
    s->logits_row = -1;
    if (drop_cache) {
        tnd_context_seq_truncate(e->ctx, s->seq, 0);
        s->n_cached = 0;
    }
}

/* Ends the slot's request. A normal end (stop, length) shows the text still held back by the detokenizer and the
 * stop matcher and keeps the cache for reuse; a cancelled or failed one frees the sequence's KV blocks. */
static void end_slot(srv_engine *e, slot *s, srv_finish finish, int status, const char *message) {
    srv_request *r = s->req;
    if (finish == SRV_FINISH_STOP || finish == SRV_FINISH_LENGTH) {
        char tail[8];
        int32_t n = tnd_detokenizer_finish(s->det, tail, (int32_t)sizeof tail);
        const char *show = NULL;
        size_t show_len = 0;
        if (n > 0 && tnd_stop_matcher_feed(s->stops, tail, (size_t)n, &show, &show_len, NULL) == TND_OK && show_len)
            push_output(r, show, show_len, NULL, s->n_generated);
        if (tnd_stop_matcher_flush(s->stops, &show, &show_len) == TND_OK && show_len)
            push_output(r, show, show_len, NULL, s->n_generated);
    }
    if (finish == SRV_FINISH_CANCELLED) srv_metrics_cancelled(e->metrics);
    finish_request(r, finish, status, message, s->n_generated);
    clear_slot(e, s, finish == SRV_FINISH_CANCELLED || finish == SRV_FINISH_ERROR);
    srv_request_release(r);
}

/* Ends a request that never got a slot. */
static void reject(srv_request *r, srv_finish finish, int status, const char *message) {
    finish_request(r, finish, status, message, 0);
    srv_request_release(r);
}

/* Puts a request taken from the queue into a slot. */
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
    slot *s = place(e, r);
    if (!s) {
        reject(r, SRV_FINISH_ERROR, 500, "no free sequence slot (engine bookkeeping error)");
        return;
    }
    size_t stop_lens[SRV_MAX_STOPS];
    for (int32_t i = 0; i < r->n_stops; i++) stop_lens[i] = strlen(r->stops[i]);
    if (tnd_sampler_init(&r->sampling, e->n_vocab, &s->sampler) != TND_OK ||
        tnd_detokenizer_init(e->tok, TND_DETOKENIZE_KEEP_SPACE, &s->det) != TND_OK ||
        tnd_stop_matcher_init((const char *const *)r->stops, stop_lens, r->n_stops, 1, &s->stops) != TND_OK) {
        char message[256];
        snprintf(message, sizeof message, "cannot set up generation: %s", tnd_last_error());
        clear_slot(e, s, false);
        reject(r, SRV_FINISH_ERROR, 500, message);
        return;
    }
    s->req = r;
    s->n_prefilled = s->n_cached;
    s->next_token = -1;
    s->n_generated = 0;
    s->admitted = ++e->n_admitted;
    pthread_mutex_lock(&r->mu);
    r->n_cached = s->n_cached;
    pthread_mutex_unlock(&r->mu);
    srv_metrics_admitted(e->metrics, r->n_prompt, s->n_cached);
}

/* ------------------------------------------------------------------------------------------------------------
 * One step
 * ---------------------------------------------------------------------------------------------------------- */

/* Handles the logits of a slot: sample, report, decide whether to go on. Returns 1 if a token was generated (not
 * an end-of-generation token), else 0. */
static int32_t on_logits(srv_engine *e, slot *s, const float *logits) {
    srv_request *r = s->req;
    int32_t token = -1;
    if (!logits || tnd_sampler_sample(s->sampler, logits, &token) != TND_OK) {
        char message[300];
        snprintf(message, sizeof message, "sampling failed: %s", tnd_last_error());
        end_slot(e, s, SRV_FINISH_ERROR, 500, message);
        return 0;
    }
    tnd_sampler_accept(s->sampler, token);
    if (s->n_generated == 0) {
        double now = srv_now();
        pthread_mutex_lock(&r->mu);
        r->t_first_token = now;
        pthread_mutex_unlock(&r->mu);
        srv_metrics_first_token(e->metrics, now - r->t_arrival);
    }
    if (tnd_tokenizer_is_eog(e->tok, token)) {
        end_slot(e, s, SRV_FINISH_STOP, 0, NULL);
        return 0;
    }
    s->n_generated++;
    srv_token_info info = {.token = token};
    if (r->logprobs)
        tnd_logprobs(logits, e->n_vocab, token, &info.logprob, info.top, r->top_logprobs, &info.n_top);
    int32_t n = tnd_detokenizer_push(s->det, token, e->piece.data, (int32_t)e->piece.cap);
    if (n < 0 && n != TND_TOKENIZE_ERROR && srv_buf_reserve(&e->piece, (size_t)-n)) /* a long piece */
        n = tnd_detokenizer_push(s->det, token, e->piece.data, (int32_t)e->piece.cap);
    const char *show = NULL;
    size_t show_len = 0;
    int32_t hit = -1;
    if (n < 0 || tnd_stop_matcher_feed(s->stops, e->piece.data, (size_t)n, &show, &show_len, &hit) != TND_OK) {
        char message[300];
        snprintf(message, sizeof message, "decoding token %d failed: %s", token, tnd_last_error());
        end_slot(e, s, SRV_FINISH_ERROR, 500, message);
        return 1;
    }
    push_output(r, show, show_len, r->logprobs ? &info : NULL, s->n_generated);
    if (hit >= 0) end_slot(e, s, SRV_FINISH_STOP, 0, NULL);
    else if ((r->max_tokens >= 0 && s->n_generated >= r->max_tokens) || s->n_cached >= e->n_ctx)
        end_slot(e, s, SRV_FINISH_LENGTH, 0, NULL);
    else s->next_token = token;
    return 1;
}

/* Adds batch entry n for slot s. */
static void add_entry(srv_engine *e, int32_t *n, const slot *s, int32_t token, int32_t pos, bool logits) {
    e->b_tokens[*n] = token;
    e->b_pos[*n] = pos;
    e->b_seq[*n] = s->seq;
    e->b_logits[*n] = logits;
    (*n)++;
}

/* The prefilling slot admitted first that has not been given tokens in this step, or NULL. */
static slot *next_prefill(srv_engine *e) {
    slot *best = NULL;
    for (int32_t i = 0; i < e->n_slots; i++) {
        slot *s = &e->slots[i];
        if (s->req && s->next_token < 0 && !s->n_fed && s->n_prefilled < s->req->n_prompt &&
            (!best || s->admitted < best->admitted))
            best = s;
    }
    return best;
}

/* One forward step over every live sequence: the next token of each generating one, then prompt chunks (oldest
 * request first) up to n_batch tokens in all. */
static void step(srv_engine *e) {
    int32_t n = 0, rows = 0, n_prompt_tokens = 0;
    for (int32_t i = 0; i < e->n_slots; i++) {
        slot *s = &e->slots[i];
        s->n_fed = 0;
        s->logits_row = -1;
        if (!s->req || s->next_token < 0) continue;
        s->fed_at = n;
        add_entry(e, &n, s, s->next_token, s->n_cached, true);
        s->n_fed = 1;
        s->logits_row = rows++;
    }
    slot *p;
    while (n < e->n_batch && (p = next_prefill(e))) {
        const srv_request *r = p->req;
        int32_t take = r->n_prompt - p->n_prefilled;
        if (take > e->n_batch - n) take = e->n_batch - n;
        bool completes = p->n_prefilled + take == r->n_prompt;
        p->fed_at = n;
        for (int32_t i = 0; i < take; i++)
            add_entry(e, &n, p, r->prompt[p->n_prefilled + i], p->n_cached + i, completes && i == take - 1);
        p->n_fed = take;
        if (completes) p->logits_row = rows++;
        n_prompt_tokens += take;
    }
    if (!n) return;
    tnd_batch batch = {.n_tokens = n, .tokens = e->b_tokens, .pos = e->b_pos, .seq_id = e->b_seq,
                       .logits = e->b_logits};
    double t0 = srv_now();
    tnd_status st = tnd_context_decode(e->ctx, &batch);
    double seconds = srv_now() - t0;
    if (st != TND_OK) {
        char message[300];
        snprintf(message, sizeof message, "forward step failed: %s", tnd_last_error());
        for (int32_t i = 0; i < e->n_slots; i++)
            if (e->slots[i].n_fed) end_slot(e, &e->slots[i], SRV_FINISH_ERROR, 500, message);
        return;
    }
    for (int32_t i = 0; i < e->n_slots; i++) { /* the cache now holds the fed tokens */
        slot *s = &e->slots[i];
        if (!s->n_fed) continue;
        memcpy(s->cached + s->n_cached, e->b_tokens + s->fed_at, sizeof(int32_t) * (size_t)s->n_fed);
        s->n_cached += s->n_fed;
        if (s->next_token < 0) s->n_prefilled += s->n_fed;
    }
    int32_t generated = 0;
    for (int32_t i = 0; i < e->n_slots; i++)
        if (e->slots[i].req && e->slots[i].logits_row >= 0)
            generated += on_logits(e, &e->slots[i], tnd_context_logits(e->ctx, e->slots[i].logits_row));
    srv_metrics_step(e->metrics, n_prompt_tokens, generated, seconds);
}

/* Ends running requests whose client went away or whose time is up. */
static void check_running(srv_engine *e) {
    double now = srv_now();
    for (int32_t i = 0; i < e->n_slots; i++) {
        slot *s = &e->slots[i];
        if (!s->req) continue;
        if (atomic_load(&s->req->cancelled)) end_slot(e, s, SRV_FINISH_CANCELLED, 0, NULL);
        else if (now > s->req->deadline) end_slot(e, s, SRV_FINISH_LENGTH, 0, NULL);
    }
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
        for (int32_t i = 0; i < n_popped; i++) admit(e, e->popped[i]);
        check_running(e);
        step(e);
        publish(e);
    }
    /* shutting down: nothing more runs */
    for (int32_t i = 0; i < e->n_slots; i++)
        if (e->slots[i].req) end_slot(e, &e->slots[i], SRV_FINISH_ERROR, 503, "the server is shutting down");
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
    for (int32_t i = 0; e->slots && i < e->n_slots; i++) {
        clear_slot(e, &e->slots[i], false);
        free(e->slots[i].cached);
    }
    free(e->slots);
    tnd_context_free(e->ctx);
    free(e->b_tokens);
    free(e->b_pos);
    free(e->b_seq);
    free(e->b_logits);
    free(e->popped);
    srv_buf_free(&e->piece);
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
    e->n_ctx = cfg->n_ctx;
    e->n_batch = cfg->n_batch;
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
    p.kv_type = cfg->kv_type;
    if ((st = tnd_context_init(model, &p, &e->ctx))) goto fail;
    e->n_vocab = tnd_model_n_vocab(model);
    size_t nb = (size_t)e->n_batch;
    e->slots = calloc((size_t)e->n_slots, sizeof *e->slots);
    e->b_tokens = malloc(sizeof(int32_t) * nb);
    e->b_pos = malloc(sizeof(int32_t) * nb);
    e->b_seq = malloc(sizeof(int32_t) * nb);
    e->b_logits = malloc(nb);
    e->popped = calloc((size_t)e->n_slots, sizeof *e->popped);
    st = TND_ERR_OUT_OF_MEMORY;
    if (!e->slots || !e->b_tokens || !e->b_pos || !e->b_seq || !e->b_logits || !e->popped ||
        !srv_buf_reserve(&e->piece, 255))
        goto fail;
    for (int32_t i = 0; i < e->n_slots; i++) {
        e->slots[i].seq = i;
        e->slots[i].next_token = -1;
        e->slots[i].logits_row = -1;
        if (!(e->slots[i].cached = malloc(sizeof(int32_t) * (size_t)e->n_ctx))) goto fail;
    }
    if (pthread_create(&e->thread, NULL, engine_main, e)) goto fail;
    e->thread_started = true;
    publish(e);
    *out = e;
    return TND_OK;
fail:
    engine_free(e);
    return st;
}

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
