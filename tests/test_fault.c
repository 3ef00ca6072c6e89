/* test_fault.c: a device that fails (TANDEM_FAULT: one op, one step, one allocation) reaches tnd_context_decode as
 * an error with a message, leaves every sequence as it was, and the next decode gives the logits a device that
 * never failed gives, bit for bit; on one device and with the layers split over two. A session whose step fails
 * ends with TND_FINISH_ERROR and the next one generates. */
#include "harness.h"

#include "tandem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { N_PROMPT = 6 };

static const int32_t prompt[N_PROMPT] = {1, 403, 407, 261, 378, 7};

static tnd_context *make_context(tnd_model *m, const char *fault, int32_t n_devices) {
    if (fault) setenv("TANDEM_FAULT", fault, 1);
    tnd_context_params p = tnd_context_default_params();
    p.n_ctx = 64;
    p.n_batch = 4; /* two micro-batches for the prompt */
    p.n_seq_max = 2;
    p.n_threads = 1;
    p.kv_block_size = 16;
    p.n_devices = n_devices;
    tnd_context *ctx = NULL;
    tnd_status st = tnd_context_init(m, &p, &ctx);
    unsetenv("TANDEM_FAULT");
    return st ? NULL : ctx;
}

/* Decodes the prompt on sequence 1 after one token of sequence 0 (so a failure must leave a sequence it did not
 * touch alone, and cut the other back); the logits of the prompt's last token go to out. */
static tnd_status decode_prompt(tnd_context *ctx, float *out, int32_t n_vocab) {
    int32_t pos[N_PROMPT], seq[N_PROMPT];
    for (int32_t i = 0; i < N_PROMPT; i++) pos[i] = i, seq[i] = 1;
    tnd_batch b = {.n_tokens = N_PROMPT, .tokens = prompt, .pos = pos, .seq_id = seq};
    tnd_status st = tnd_context_decode(ctx, &b);
    if (!st) memcpy(out, tnd_context_logits(ctx, 0), sizeof(float) * (size_t)n_vocab);
    return st;
}

/* Makes op k (k = 1, 2, ...) of each device of a fresh context fail until k is past the ops of the two decodes. */
static void test_op_faults(tnd_model *m, int32_t n_devices, const float *want, int32_t n_vocab, float *got) {
    int32_t failures = 0;
    for (long k = 1; k < 100000; k++) {
        char spec[32];
        snprintf(spec, sizeof spec, "op:%ld", k);
        tnd_context *ctx = make_context(m, spec, n_devices);
        if (!CHECK(ctx)) return;
        int32_t zero = 0, at = 0;
        tnd_batch first = {.n_tokens = 1, .tokens = &zero, .pos = &at};
        tnd_status st = tnd_context_decode(ctx, &first); /* sequence 0: the ops of this decode count too */
        if (!st) st = decode_prompt(ctx, got, n_vocab);
        if (!st) { /* past the ops of both decodes */
            CHECK(!memcmp(got, want, sizeof(float) * (size_t)n_vocab));
            tnd_context_free(ctx);
            break;
        }
        failures++;
        if (!CHECK(strstr(tnd_last_error(), "fault injected") != NULL)) {
            tnd_context_free(ctx);
            break;
        }
        /* the failed decode left nothing: sequence 0 holds 1 or 0 tokens, sequence 1 none */
        int32_t len0 = tnd_context_seq_length(ctx, 0);
        CHECK(tnd_context_seq_length(ctx, 1) == 0 && len0 <= 1);
        /* the retry works once every device spent its one fault (each counts its own ops) */
        for (int32_t tries = 0; tries <= n_devices; tries++) {
            st = len0 == 0 ? tnd_context_decode(ctx, &first) : TND_OK;
            len0 = tnd_context_seq_length(ctx, 0);
            if (!st) st = decode_prompt(ctx, got, n_vocab);
            if (!st || !CHECK(strstr(tnd_last_error(), "fault injected") != NULL)) break;
        }
        if (CHECK_OK(st)) CHECK(!memcmp(got, want, sizeof(float) * (size_t)n_vocab));
        tnd_context_free(ctx);
    }
    CHECK(failures > 20);
    printf("  %d device(s): each of the %d ops of two decodes failed in turn; the decode reported it, the sequences "
           "were unchanged, the retry gave the same logits\n", n_devices, failures);
}

int main(void) {
    tnd_model *m = NULL;
    if (!CHECK_OK(tnd_model_open(tnd_fixture("real/stories260K.gguf"), NULL, &m))) return tnd_test_finish("fault");
    tnd_context *ref = make_context(m, NULL, 1);
    if (!CHECK(ref)) return tnd_test_finish("fault");
    int32_t n_vocab = tnd_model_n_vocab(m);
    float *want = malloc(sizeof(float) * (size_t)n_vocab), *got = malloc(sizeof(float) * (size_t)n_vocab);
    int32_t zero = 0, at = 0;
    tnd_batch first = {.n_tokens = 1, .tokens = &zero, .pos = &at};
    CHECK_OK(tnd_context_decode(ref, &first));
    CHECK_OK(decode_prompt(ref, want, n_vocab));

    test_op_faults(m, 1, want, n_vocab, got);
    test_op_faults(m, 2, want, n_vocab, got);

    /* a lost device at the second step (the prompt's first micro-batch): the decode fails, the retry works */
    tnd_context *ctx = make_context(m, "step:2", 1);
    if (CHECK(ctx)) {
        CHECK_OK(tnd_context_decode(ctx, &first));
        CHECK(decode_prompt(ctx, got, n_vocab) == TND_ERR_DEVICE_LOST && strstr(tnd_last_error(), "lost"));
        CHECK(tnd_context_seq_length(ctx, 1) == 0 && tnd_context_seq_length(ctx, 0) == 1);
        CHECK(decode_prompt(ctx, got, n_vocab) == TND_OK && !memcmp(got, want, sizeof(float) * (size_t)n_vocab));
    }
    tnd_context_free(ctx);

    /* a device allocation that fails while the context is made: a clean error every time */
    int32_t alloc_failures = 0;
    for (long k = 1; k < 1000; k++) {
        char spec[32];
        snprintf(spec, sizeof spec, "alloc:%ld", k);
        tnd_context *c = make_context(m, spec, 2);
        if (c) {
            tnd_context_free(c);
            break;
        }
        alloc_failures++;
        CHECK(tnd_last_error()[0] != 0);
    }
    CHECK(alloc_failures > 5);
    CHECK(make_context(m, "op:0", 1) == NULL && strstr(tnd_last_error(), "TANDEM_FAULT"));

    /* a session whose step fails ends with an error; the next generation on it works */
    tnd_tokenizer *tok = NULL;
    ctx = make_context(m, "op:40", 1);
    tnd_session *s = NULL;
    if (CHECK(ctx) && CHECK_OK(tnd_tokenizer_init(m, &tok)) && CHECK_OK(tnd_session_init(ctx, tok, 0, 0, &s))) {
        tnd_generate_params gp = tnd_generate_default_params();
        gp.sampling.temperature = 0;
        gp.max_tokens = 8;
        CHECK_OK(tnd_session_start(s, &gp, prompt, N_PROMPT));
        CHECK(tnd_session_generate(s) == TND_ERR_INTERNAL);
        CHECK(tnd_session_finish_reason(s) == TND_FINISH_ERROR && strstr(tnd_session_error(s), "fault injected"));
        CHECK_OK(tnd_session_start(s, &gp, prompt, N_PROMPT));
        CHECK_OK(tnd_session_generate(s));
        tnd_session_stats st;
        tnd_session_stats_get(s, &st);
        CHECK(tnd_session_finish_reason(s) == TND_FINISH_LENGTH && st.n_generated == 8);
    }
    tnd_session_free(s);
    tnd_tokenizer_free(tok);
    tnd_context_free(ctx);
    tnd_context_free(ref);
    tnd_model_close(m);
    free(want);
    free(got);
    return tnd_test_finish("fault");
}
