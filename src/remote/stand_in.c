/* stand_in.c: the cloud's part of a device's model kept on the device too (see remote.h). The device's messages wait
 * in a log, oldest first; the thread replays those the cloud has answered, so that what is left at a loss is the
 * messages in flight and whatever the thread had no spare CPU time for. */
#include "remote/remote.h"

#include "core/error.h"
#include "core/thread_pool.h"
#include "runtime/context.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { MAX_COPIES = 4096 };

typedef struct entry {
    struct entry *next;
    uint64_t serial;
    tnd_wire_type type;
    uint32_t length;
    uint8_t payload[];
} entry;

struct tnd_stand_in {
    tnd_model *model;
    tnd_context_params params; /* a context like the cloud's, for this one device, holding the cloud's groups */
    int32_t *plan;             /* its group_device: 0 (this CPU) for the cloud's groups, 1 (none) for the rest */
    tnd_context *ctx;          /* made by the thread (or by the take-over where the thread never ran) */
    tnd_stage_step step;       /* the replay's scratch: the thread's, then the take-over's */
    int32_t copy_src[MAX_COPIES], copy_dst[MAX_COPIES];

    pthread_mutex_t mu;        /* the log, `confirmed`, `stop` and `gave_up` */
    pthread_cond_t wake;
    entry *head, *tail;
    size_t bytes;              /* of the log's payloads */
    size_t log_limit;          /* the most it holds (TND_STAND_IN_LOG_LIMIT, or TANDEM_STAND_IN_LOG_LIMIT's) */
    uint64_t serial;           /* the last one given */
    uint64_t confirmed;        /* the cloud answered every message up to this one */
    pthread_t thread;
    bool started, stop, gave_up;
    char why[256];             /* why it gave up */
};

/* Stops following for good: the log is dropped, and a take-over will fail saying why. Under the lock. */
static void give_up(tnd_stand_in *s, const char *fmt, ...) TND_PRINTF(2, 3);
static void give_up(tnd_stand_in *s, const char *fmt, ...) {
    if (s->gave_up) return;
    s->gave_up = true;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->why, sizeof s->why, fmt, ap);
    va_end(ap);
    for (entry *e = s->head, *next; e; e = next) next = e->next, free(e);
    s->head = s->tail = NULL;
    s->bytes = 0;
    pthread_cond_broadcast(&s->wake);
}

/* The oldest message, out of the log (NULL: none). Under the lock. */
static entry *pop(tnd_stand_in *s) {
    entry *e = s->head;
    if (!e) return NULL;
    s->head = e->next;
    if (!s->head) s->tail = NULL;
    s->bytes -= e->length;
    return e;
}

/* One message on the stand-in's context, as the cloud ran it. */
static tnd_status replay(tnd_stand_in *s, const entry *e) {
    tnd_context *ctx = s->ctx;
    if (e->type == TND_WIRE_COPY_BLOCKS) {
        tnd_wire_reader r = {.data = e->payload, .len = e->length};
        uint32_t n = 0;
        tnd_status st = tnd_wire_get_copies(&r, MAX_COPIES, s->step.n_blocks, s->copy_src, s->copy_dst, &n);
        return st ? st : tnd_stage_copy_blocks(ctx, s->copy_src, s->copy_dst, n);
    }
    tnd_status st = tnd_stage_step_read(&s->step, e->payload, e->length, ctx->fw.hp->n_layer, 0);
    for (int32_t g = s->step.group_begin; !st && g < s->step.group_end; g++)
        if (s->plan[g] != 0) st = tnd_fail(TND_ERR_INVALID_ARGUMENT, "group %d is not the cloud's in the plan", g);
    return st ? st : tnd_stage_step_run(ctx, &s->step);
}

/* Replays the oldest message (there is one), giving up where that fails; its type into *type where type is not
 * NULL. Under the lock, which it drops while it replays. */
static tnd_status replay_oldest(tnd_stand_in *s, tnd_wire_type *type) {
    entry *e = pop(s);
    if (type) *type = e->type;
    pthread_mutex_unlock(&s->mu);
    tnd_status st = replay(s, e);
    free(e);
    pthread_mutex_lock(&s->mu);
    if (st) give_up(s, "a replayed step failed: %s", tnd_last_error());
    return st;
}

/* Makes the context (unless the stand-in gave up), giving up where that fails; true where there is one. */
static bool make_context(tnd_stand_in *s) {
    pthread_mutex_lock(&s->mu);
    bool wanted = !s->gave_up;
    pthread_mutex_unlock(&s->mu);
    tnd_context *made = NULL;
    tnd_status st = wanted ? tnd_context_init(s->model, &s->params, &made) : TND_OK;
    pthread_mutex_lock(&s->mu);
    if (st) give_up(s, "its context could not be made: %s", tnd_last_error());
    s->ctx = made;
    pthread_mutex_unlock(&s->mu);
    return made != NULL;
}

/* The thread: makes the context (its pool's workers take this thread's priority, so before lowering it), then
 * replays each answered message at the lowest priority, on this thread alone. */
static void *follow(void *arg) {
    tnd_stand_in *s = arg;
    if (!make_context(s)) return NULL;
    tnd_thread_lowest_priority();
    tnd_context_set_background(s->ctx, 1);
    pthread_mutex_lock(&s->mu);
    while (!s->stop && !s->gave_up) {
        if (s->head && s->head->serial <= s->confirmed) replay_oldest(s, NULL);
        else pthread_cond_wait(&s->wake, &s->mu);
    }
    pthread_mutex_unlock(&s->mu);
    tnd_context_set_background(s->ctx, 0);
    return NULL;
}

tnd_status tnd_stand_in_open(const tnd_remote_params *p, int32_t n_embd, tnd_stand_in **out) {
    *out = NULL;
    tnd_stand_in *s = calloc(1, sizeof *s);
    if (!s) return tnd_fail(TND_ERR_OUT_OF_MEMORY, "out of memory for the cloud's stand-in");
    s->model = p->stand_in;
    const char *limit = getenv("TANDEM_STAND_IN_LOG_LIMIT"); /* a testing aid: a stand-in that gives up */
    s->log_limit = limit ? (size_t)strtoull(limit, NULL, 10) : TND_STAND_IN_LOG_LIMIT;
    s->params = tnd_context_default_params();
    s->params.n_ctx = p->n_blocks * p->block_size;
    s->params.kv_block_size = p->block_size;
    s->params.n_batch = p->n_batch;
    s->params.n_threads = p->n_threads;
    s->params.k_type = p->k_type;
    s->params.v_type = p->v_type;
    static const int32_t kinds[2] = {0, TND_DEVICE_NONE};
    s->params.n_devices = 2;
    s->params.device_kinds = kinds;
    s->params.group_device = s->plan = calloc((size_t)p->n_groups, sizeof *s->plan);
    s->params.n_groups = p->n_groups;
    for (int32_t g = 0; s->plan && g < p->n_groups; g++) s->plan[g] = p->group_device[g] == p->index ? 0 : 1;
    tnd_status st = s->plan ? tnd_stage_step_alloc(&s->step, (uint32_t)p->n_batch, (uint32_t)p->n_blocks,
                                                   (uint32_t)p->block_size, n_embd)
                            : tnd_fail(TND_ERR_OUT_OF_MEMORY, "out of memory for the cloud's stand-in");
    if (st || pthread_mutex_init(&s->mu, NULL)) {
        tnd_stage_step_free(&s->step);
        free(s->plan);
        free(s);
        return st ? st : tnd_fail(TND_ERR_OUT_OF_MEMORY, "no mutex for the cloud's stand-in");
    }
    pthread_cond_init(&s->wake, NULL);
    *out = s;
    return TND_OK;
}

/* Ends the thread (its message in flight first). */
static void stop_thread(tnd_stand_in *s) {
    if (!s->started) return;
    pthread_mutex_lock(&s->mu);
    s->stop = true;
    pthread_cond_broadcast(&s->wake);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->thread, NULL);
    s->started = false;
}

void tnd_stand_in_close(tnd_stand_in *s) {
    if (!s) return;
    stop_thread(s);
    pthread_mutex_lock(&s->mu);
    give_up(s, "closed");
    pthread_mutex_unlock(&s->mu);
    tnd_context_free(s->ctx);
    tnd_stage_step_free(&s->step);
    free(s->plan);
    pthread_cond_destroy(&s->wake);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

uint64_t tnd_stand_in_log(tnd_stand_in *s, tnd_wire_type type, const uint8_t *payload, uint32_t length) {
    pthread_mutex_lock(&s->mu);
    uint64_t serial = 0;
    entry *e = NULL;
    if (s->gave_up) {
    } else if (s->bytes + length > s->log_limit) {
        give_up(s, "it fell more than %zu KiB of steps behind the cloud", s->log_limit >> 10);
    } else if (!(e = malloc(sizeof *e + length))) {
        give_up(s, "out of memory for its log");
    } else {
        *e = (entry){.serial = serial = ++s->serial, .type = type, .length = length};
        memcpy(e->payload, payload, length);
        if (s->tail) s->tail->next = e;
        else s->head = e;
        s->tail = e;
        s->bytes += length;
        if (!s->started && !s->stop) s->started = pthread_create(&s->thread, NULL, follow, s) == 0;
    }
    pthread_mutex_unlock(&s->mu);
    return serial;
}

void tnd_stand_in_confirm(tnd_stand_in *s, uint64_t serial) {
    pthread_mutex_lock(&s->mu);
    if (serial > s->confirmed) s->confirmed = serial;
    pthread_cond_broadcast(&s->wake);
    pthread_mutex_unlock(&s->mu);
}

tnd_status tnd_stand_in_take_over(tnd_stand_in *s) {
    stop_thread(s);
    pthread_mutex_lock(&s->mu);
    s->stop = true; /* no thread from here on: this caller replays */
    pthread_mutex_unlock(&s->mu);
    if (!s->ctx) make_context(s); /* nothing was logged, or the thread never started */
    pthread_mutex_lock(&s->mu);
    while (!s->gave_up && s->head && s->head->serial <= s->confirmed) replay_oldest(s, NULL);
    tnd_status st = s->gave_up ? tnd_fail(TND_ERR_DEVICE_LOST, "the cloud's stand-in gave up: %s", s->why) : TND_OK;
    pthread_mutex_unlock(&s->mu);
    return st;
}

tnd_status tnd_stand_in_answer(tnd_stand_in *s, float *x) {
    pthread_mutex_lock(&s->mu);
    tnd_status st = TND_OK;
    tnd_wire_type type = TND_WIRE_COPY_BLOCKS;
    while (!st && type != TND_WIRE_STEP)
        st = s->gave_up ? tnd_fail(TND_ERR_DEVICE_LOST, "the cloud's stand-in gave up: %s", s->why)
             : !s->head ? tnd_fail(TND_ERR_INTERNAL, "no step awaits the cloud's stand-in")
                        : replay_oldest(s, &type);
    pthread_mutex_unlock(&s->mu);
    if (!st) memcpy(x, s->step.hidden, sizeof *x * s->step.n_tokens * (size_t)s->step.n_embd);
    return st;
}
