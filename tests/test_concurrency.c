/* test_concurrency.c: two contexts on one model, created and run at the same time from two threads, give the same
 * logits, bit for bit, as one context alone: the library keeps no shared mutable state between contexts (the
 * ThreadSanitizer run of the test command checks the same for data races). */
#include "harness.h"

#include "tandem.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

enum { N_TOKENS = 24, N_STEPS = 8 };

typedef struct run {
    tnd_model *model;
    float *logits;   /* [N_STEPS][n_vocab]: the last token's logits after the prompt, then after each greedy step */
    int32_t n_vocab; /* known once the context bound the model */
    tnd_status status;
} run;

static int32_t argmax(const float *x, int32_t n) {
    int32_t best = 0;
    for (int32_t i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

/* Opens a context of two threads, decodes a prompt, then greedy steps; records the logits of each. */
static void *decode(void *arg) {
    run *r = arg;
    tnd_context_params p = tnd_context_default_params();
    p.n_ctx = 64;
    p.n_batch = 32;
    p.n_threads = 2;
    tnd_context *ctx = NULL;
    if ((r->status = tnd_context_init(r->model, &p, &ctx))) return NULL;
    r->n_vocab = tnd_model_n_vocab(r->model);
    r->logits = calloc((size_t)N_STEPS * (size_t)r->n_vocab, sizeof(float));
    if (!r->logits || r->n_vocab < 2) {
        r->status = TND_ERR_OUT_OF_MEMORY;
        tnd_context_free(ctx);
        return NULL;
    }
    int32_t tokens[N_TOKENS], pos[N_TOKENS];
    for (int32_t i = 0; i < N_TOKENS; i++) {
        tokens[i] = 1 + (i * 37) % (r->n_vocab - 1);
        pos[i] = i;
    }
    tnd_batch b = {.n_tokens = N_TOKENS, .tokens = tokens, .pos = pos};
    r->status = tnd_context_decode(ctx, &b);
    for (int step = 0; !r->status && step < N_STEPS; step++) {
        const float *last = tnd_context_logits(ctx, 0); /* the only entry that asked for logits */
        if (!last) {
            r->status = TND_ERR_INTERNAL;
            break;
        }
        memcpy(r->logits + (size_t)step * (size_t)r->n_vocab, last, sizeof(float) * (size_t)r->n_vocab);
        int32_t next = argmax(last, r->n_vocab), at = N_TOKENS + step;
        tnd_batch one = {.n_tokens = 1, .tokens = &next, .pos = &at};
        r->status = tnd_context_decode(ctx, &one);
    }
    tnd_context_free(ctx);
    return NULL;
}

int main(void) {
    /* one context alone on one handle, then two at once on a fresh handle (both binding it) */
    tnd_model *m = NULL, *fresh = NULL;
    if (!CHECK_OK(tnd_model_open(tnd_fixture("real/stories260K.gguf"), NULL, &m)) ||
        !CHECK_OK(tnd_model_open(tnd_fixture("real/stories260K.gguf"), NULL, &fresh))) {
        tnd_model_close(m);
        return tnd_test_finish("test_concurrency");
    }
    run alone = {.model = m}, pair[2] = {{.model = fresh}, {.model = fresh}};
    decode(&alone);
    CHECK_OK(alone.status);
    pthread_t threads[2];
    int started = 0;
    for (int i = 0; i < 2; i++) started += pthread_create(&threads[i], NULL, decode, &pair[i]) == 0;
    CHECK(started == 2);
    for (int i = 0; i < started; i++) pthread_join(threads[i], NULL);
    for (int i = 0; i < started && !alone.status; i++) {
        CHECK_OK(pair[i].status);
        CHECK(pair[i].n_vocab == alone.n_vocab && pair[i].logits &&
              memcmp(pair[i].logits, alone.logits, sizeof(float) * (size_t)N_STEPS * (size_t)alone.n_vocab) == 0);
    }
    free(alone.logits);
    free(pair[0].logits);
    free(pair[1].logits);
    tnd_model_close(m);
    tnd_model_close(fresh);
    return tnd_test_finish("test_concurrency");
}
