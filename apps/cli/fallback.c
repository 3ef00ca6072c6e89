/* fallback.c: the context a command goes on in when its cloud link dies, and how it follows the conversation (see
 * fallback.h). */
#include "fallback.h"

#include "cli_util.h"
#include "core/thread_pool.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The token texts of both vocabularies are the same, id for id: a record tokenized for one reads the same in the
 * other. Prints the first difference. */
static bool same_vocabulary(const tnd_tokenizer *a, tnd_model *other, const char *path) {
    tnd_tokenizer *b = NULL;
    if (tnd_tokenizer_init(other, &b) != TND_OK) {
        cli_error(path);
        return false;
    }
    int32_t n = tnd_tokenizer_n_vocab(a);
    bool same = n == tnd_tokenizer_n_vocab(b);
    if (!same) fprintf(stderr, "tandem: --fallback-model %s has %d tokens, the model %d\n", path,
                       tnd_tokenizer_n_vocab(b), n);
    for (int32_t id = 0; same && id < n; id++) {
        size_t la = 0, lb = 0;
        const char *ta = tnd_tokenizer_token_text(a, id, &la), *tb = tnd_tokenizer_token_text(b, id, &lb);
        same = la == lb && (!la || !memcmp(ta, tb, la));
        if (!same) fprintf(stderr, "tandem: --fallback-model %s: token %d is \"%.*s\" there, \"%.*s\" in the model\n",
                           path, id, (int)lb, tb, (int)la, ta);
    }
    tnd_tokenizer_free(b);
    return same;
}

/* Whether this machine's available memory holds `quarters` quarters of the model's file. */
static bool memory_holds(tnd_model *model, int32_t n_threads, uint64_t quarters) {
    tnd_device_info cpu;
    return tnd_device_get_info(0, n_threads, &cpu) == TND_OK &&
           cpu.memory_available / quarters >= tnd_model_file_size(model) / 4;
}

bool cli_fallback_open(cli_fallback *f, const char *fallback_path, bool follow, tnd_model *model,
                       const tnd_tokenizer *tok, tnd_context_params *p) {
    memset(f, 0, sizeof *f);
    pthread_mutex_init(&f->mutex, NULL);
    pthread_cond_init(&f->wake, NULL);
    bool beyond_cpu = p->remote != NULL;
    for (int32_t d = 0; p->device_kinds && d < p->n_devices; d++) beyond_cpu |= p->device_kinds[d] != 0;
    if (!beyond_cpu) return true; /* the CPU is not lost while the process runs */
    f->armed = true;
    f->follow = follow;
    /* the device's layers and the stand-in's (the cloud's) are about the file once, packed; a quarter more for the KV
     * caches, the activations and the mapping's pages */
    p->remote_stand_in = p->remote && !fallback_path && follow && memory_holds(model, p->n_threads, 5);
    f->plan = *p;
    f->plan.progress = NULL;
    f->params = *p;
    f->params.n_devices = 1;
    f->params.device_kinds = NULL;
    f->params.group_device = NULL;
    f->params.n_groups = 0;
    f->params.remote = f->params.remote_key_file = NULL;
    f->params.remote_stand_in = 0;
    f->params.progress = NULL;
    f->params.expert_device = -1; /* one CPU device: the experts with their groups */
    f->params.expert_cache_slots = 0;
    f->n_records = p->n_seq_max > 1 ? p->n_seq_max : 1;
    if (!(f->records = calloc((size_t)f->n_records, sizeof *f->records))) {
        fprintf(stderr, "tandem: out of memory\n");
        return false;
    }
    if (!fallback_path) return true;
    if (!(f->model = cli_open_model(fallback_path))) return false;
    if (!same_vocabulary(tok, f->model, fallback_path)) return false;
    if (tnd_context_init(f->model, &f->params, &f->ready) != TND_OK) {
        cli_error(fallback_path);
        return false;
    }
    return true;
}

/* Evaluates the n tokens of `chunk` onto sequence `seq` of ctx at positions from.. (its rows from there on dropped
 * first), no logits. */
static bool evaluate(tnd_context *ctx, int32_t seq, int32_t from, const int32_t *chunk, int32_t n) {
    int32_t pos[CLI_FOLLOW_MAX], seqs[CLI_FOLLOW_MAX];
    int8_t none[CLI_FOLLOW_MAX] = {0};
    for (int32_t i = 0; i < n; i++) {
        pos[i] = from + i;
        seqs[i] = seq;
    }
    tnd_batch b = {.n_tokens = n, .tokens = chunk, .pos = pos, .seq_id = seqs, .logits = none};
    return tnd_context_seq_truncate(ctx, seq, from) == TND_OK && tnd_context_decode(ctx, &b) == TND_OK;
}

/* Until told to stop: the record furthest ahead of its rows in `ready` is evaluated there, a chunk at a time. The
 * mutex is held only to look and copy (the command's thread never waits for this one long: see cli_fallback_follow).
 * A pass that fails (no KV room) ends the following; a loss then evaluates the rest as it would have. */
static void follow(cli_fallback *f) {
    tnd_context *ctx = f->ready;
    pthread_mutex_lock(&f->mutex);
    while (!f->stop) {
        int32_t best = -1, from = 0, to = 0;
        for (int32_t q = 0; q < f->n_records; q++) {
            const cli_record *r = &f->records[q];
            int32_t target = r->n - 1; /* a move evaluates the last token again, for its logits */
            int32_t held = tnd_context_seq_cached_prefix(ctx, q, r->tokens, target);
            if (target - held >= CLI_FOLLOW_MIN && (best < 0 || target - held > to - from)) {
                best = q;
                from = held;
                to = target - held > CLI_FOLLOW_MAX ? held + CLI_FOLLOW_MAX : target;
            }
        }
        if (best < 0) {
            pthread_cond_wait(&f->wake, &f->mutex);
            continue;
        }
        memcpy(f->chunk, f->records[best].tokens + from, sizeof *f->chunk * (size_t)(to - from));
        pthread_mutex_unlock(&f->mutex);
        bool ok = evaluate(ctx, best, from, f->chunk, to - from);
        pthread_mutex_lock(&f->mutex);
        if (!ok) break;
    }
    pthread_mutex_unlock(&f->mutex);
}

/* The worker: makes the command's own model's context where it is not ready yet, then follows the records. */
static void *work(void *arg) {
    cli_fallback *f = arg;
    tnd_context *made = NULL;
    if (!f->ready && tnd_context_init(f->own, &f->params, &made) == TND_OK) f->ready = made;
    if (!f->ready || !f->follow) return NULL; /* (not made: made at the loss instead) */
    tnd_thread_lowest_priority();
    tnd_context_set_background(f->ready, 1);
    follow(f);
    tnd_context_set_background(f->ready, 0);
    return NULL;
}

static void start_worker(cli_fallback *f) {
    f->stop = false;
    f->working = pthread_create(&f->worker, NULL, work, f) == 0;
}

/* Tells the worker to stop and waits for it: for the rest of its making, or for the chunk it evaluates. */
static void stop_worker(cli_fallback *f) {
    if (!f->working) return;
    pthread_mutex_lock(&f->mutex);
    f->stop = true;
    pthread_cond_signal(&f->wake);
    pthread_mutex_unlock(&f->mutex);
    pthread_join(f->worker, NULL);
    f->working = false;
}

void cli_fallback_prepare(cli_fallback *f, tnd_model *model) {
    if (!f->armed || f->working) return;
    if (f->ready) { /* --fallback-model's */
        if (f->follow) start_worker(f);
        return;
    }
    if (f->model || !f->plan.remote || f->plan.remote_stand_in || !memory_holds(model, f->params.n_threads, 8)) return;
    f->own = model;
    start_worker(f);
}

bool cli_fallback_noticed(cli_fallback *f, tnd_context *ctx) {
    char why[512];
    if (!f->plan.remote_stand_in || f->running || !tnd_context_cloud_lost(ctx, why, sizeof why)) return false;
    fprintf(stderr, "\ntandem: note: %s\n", why);
    f->lost = f->running = true;
    f->retry_at = cli_now() + CLI_RETRY_SECONDS;
    return true;
}

void cli_fallback_follow(cli_fallback *f, int32_t seq, const int32_t *tokens, int32_t n) {
    if (!f->follow || !f->working || seq < 0 || seq >= f->n_records || n < 0) return;
    /* the worker runs at the lowest priority and may have lost its core holding the lock: then this record waits for
     * the next step rather than the command for the worker */
    if (pthread_mutex_trylock(&f->mutex) != 0) return;
    cli_record *r = &f->records[seq];
    if (n > r->cap) {
        int32_t cap = n > 2 * r->cap ? n : 2 * r->cap;
        int32_t *grown = realloc(r->tokens, sizeof *grown * (size_t)cap);
        if (grown) r->tokens = grown, r->cap = cap;
    }
    if (n <= r->cap) { /* else (out of memory) the record stays as it was */
        memcpy(r->tokens, tokens, sizeof *tokens * (size_t)n);
        r->n = n;
        pthread_cond_signal(&f->wake);
    }
    pthread_mutex_unlock(&f->mutex);
}

tnd_context *cli_fallback_take(cli_fallback *f, tnd_model *model) {
    double t0 = cli_now();
    char lost[512];
    snprintf(lost, sizeof lost, "%s", tnd_last_error());
    if (!f->armed) return NULL;
    stop_worker(f);
    tnd_context *ctx = f->ready;
    bool made_before = ctx && !f->model; /* in the background (--fallback-model's is always made at start) */
    int64_t held = 0, total = 0; /* of the records, the tokens whose rows are there already */
    for (int32_t q = 0; ctx && q < f->n_records; q++) {
        held += tnd_context_seq_cached_prefix(ctx, q, f->records[q].tokens, f->records[q].n);
        total += f->records[q].n;
    }
    f->ready = NULL;
    f->lost = true;
    if (!ctx && tnd_context_init(f->model ? f->model : model, &f->params, &ctx) != TND_OK) {
        fprintf(stderr, "\ntandem: %s; no context here to go on in: %s\n", lost, tnd_last_error());
        f->retry_at = t0; /* the plan again at the next request */
        f->running = false;
        return NULL;
    }
    f->retry_at = t0 + CLI_RETRY_SECONDS;
    f->running = true;
    char followed[96] = "";
    if (total) snprintf(followed, sizeof followed, ", %lld of the conversation's %lld tokens followed there",
                        (long long)held, (long long)total);
    fprintf(stderr, "\ntandem: note: %s; going on here with %s (ready in %.3f s%s%s)\n", lost,
            f->model ? "the fallback model" : "the whole model", cli_now() - t0,
            made_before ? ", made in the background" : "", followed);
    return ctx;
}

tnd_context *cli_fallback_retry(cli_fallback *f, tnd_model *model) {
    double now = cli_now();
    if (!f->lost || now < f->retry_at) return NULL;
    tnd_context_params p = f->plan;
    p.remote_connect_timeout_ms = CLI_RECONNECT_TIMEOUT_MS;
    tnd_context *ctx = NULL;
    if (tnd_context_init(model, &p, &ctx) != TND_OK) {
        f->retry_at = now + CLI_RETRY_SECONDS;
        return NULL;
    }
    f->lost = false;
    fprintf(stderr, "tandem: note: the plan's devices answer again%s%s%s; going on with them\n",
            p.remote ? " (the cloud at " : "", p.remote ? p.remote : "", p.remote ? ")" : "");
    return ctx;
}

void cli_fallback_keep(cli_fallback *f, tnd_context *current) {
    if (f->running && (f->model || f->own) && !f->ready) { /* ready for the next loss, following from now on */
        f->ready = current;
        if (f->follow) start_worker(f);
    } else {
        tnd_context_free(current);
    }
    f->running = false;
}

void cli_fallback_close(cli_fallback *f) {
    stop_worker(f);
    tnd_context_free(f->ready);
    tnd_model_close(f->model);
    for (int32_t q = 0; q < f->n_records; q++) free(f->records[q].tokens);
    free(f->records);
    pthread_mutex_destroy(&f->mutex);
    pthread_cond_destroy(&f->wake);
    memset(f, 0, sizeof *f);
}
