/* test_alloc_failure.c: every allocation of opening a model, building its tokenizer, creating a context, a decode
 * step, a generation session (set-up, start, steps) and one that speculates and follows a grammar is made to fail in
 * turn, for a dense model and a mixture of experts (in the spirit of Lua's allocator tests): each time the call returns an error with a message, nothing leaks (the ASan run checks), and the next
 * call works (a failed decode leaves the sequence as it was, so the same batch then decodes; a failed session call
 * leaves a session that generates). */
#include "harness.h"

#include "tandem.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct failing {
    long count;   /* allocations so far */
    long fail_at; /* the index of the one that fails; -1: none */
    bool failed;
} failing;

static void *failing_alloc(void *user, size_t size) {
    failing *f = user;
    if (f->count++ == f->fail_at) {
        f->failed = true;
        return NULL;
    }
    return malloc(size);
}

static void failing_free(void *user, void *p) {
    (void)user;
    free(p);
}

enum { STAGE_OPEN, STAGE_TOKENIZER, STAGE_CONTEXT, STAGE_DECODE, STAGE_SESSION, STAGE_GRAMMAR, STAGE_COUNT };
static const char *const stage_names[STAGE_COUNT] = {
    "tnd_model_open", "tnd_tokenizer_init", "tnd_context_init", "tnd_context_decode",
    "tnd_session (init, start, 4 tokens)", "tnd_session with prompt lookup and a grammar (set-up, 4 tokens)"};

static tnd_grammar *grammar; /* made once, outside the failing allocator */
static int32_t generated[4];  /* what the speculating session with the grammar generated in the last run */

/* Makes the session if there is none, then starts a greedy generation of 4 tokens and runs it; with `fancy`, the
 * session speculates (prompt lookup, a fixed length) and follows the grammar. */
static tnd_status generate_some(tnd_context *ctx, const tnd_tokenizer *tok, tnd_session **session, bool fancy) {
    tnd_status st = *session ? TND_OK : tnd_session_init(ctx, tok, fancy, 0, session);
    tnd_speculation_params spec = tnd_speculation_default_params();
    spec.source = TND_DRAFT_NGRAM;
    spec.ngram_min = 1;
    spec.adaptive = 0;
    if (!st && fancy) st = tnd_session_set_speculation(*session, &spec);
    tnd_generate_params gp = tnd_generate_default_params();
    gp.sampling.temperature = 0;
    gp.max_tokens = 4;
    gp.grammar = fancy ? grammar : NULL;
    const int32_t prompt[3] = {1, 2, 3};
    if (!st) st = tnd_session_start(*session, &gp, prompt, 3);
    if (!st) st = tnd_session_generate(*session);
    return st;
}

/* Runs the stages, making allocation `fail_at` of stage `stage` fail (-1: none). Returns whether the injected
 * failure was hit; *ok whether every stage succeeded. */
static bool run(const char *path, int stage, long fail_at, bool *ok) {
    failing f = {0, -1, false};
    tnd_model_params mp = tnd_model_default_params();
    mp.allocator = (tnd_allocator){failing_alloc, failing_free, &f};
    tnd_model *m = NULL;
    tnd_tokenizer *tok = NULL;
    tnd_context *ctx = NULL;
    tnd_session *session = NULL, *fancy = NULL;
    tnd_status st = TND_OK;
    int32_t token = 1, pos = 0;
    tnd_batch b = {.n_tokens = 1, .tokens = &token, .pos = &pos};
    for (int s = 0; s < STAGE_COUNT && !st; s++) {
        f.fail_at = s == stage ? f.count + fail_at : -1;
        tnd_context_params cp = tnd_context_default_params();
        cp.n_ctx = 128; /* a block of 64 for each session */
        cp.n_threads = 2;
        cp.n_seq_max = 2;
        st = s == STAGE_OPEN        ? tnd_model_open(path, &mp, &m)
             : s == STAGE_TOKENIZER ? tnd_tokenizer_init(m, &tok)
             : s == STAGE_CONTEXT   ? tnd_context_init(m, &cp, &ctx)
             : s == STAGE_DECODE    ? tnd_context_decode(ctx, &b)
             : s == STAGE_SESSION   ? generate_some(ctx, tok, &session, false)
                                    : generate_some(ctx, tok, &fancy, true);
        if (st && !f.failed)
            fprintf(stderr, "  %s failed with no injected failure: %s\n", stage_names[s], tnd_last_error());
        if (st && f.failed && !CHECK(tnd_last_error()[0] != 0))
            fprintf(stderr, "  %s: allocation %ld failed without a message\n", stage_names[s], fail_at);
        if (st)
            CHECK(f.failed && (s == STAGE_OPEN        ? m == NULL
                               : s == STAGE_TOKENIZER ? tok == NULL
                               : s == STAGE_CONTEXT   ? ctx == NULL
                                                      : true));
        if (st && s == STAGE_DECODE) { /* the sequence is as before: the same batch decodes now */
            f.fail_at = -1;
            CHECK(tnd_context_seq_length(ctx, 0) == 0);
            CHECK_OK(tnd_context_decode(ctx, &b));
        }
        if (st && (s == STAGE_SESSION || s == STAGE_GRAMMAR)) { /* made or not, the next try generates 4 tokens */
            f.fail_at = -1;
            tnd_session **which = s == STAGE_SESSION ? &session : &fancy;
            tnd_session_stats stats;
            if (CHECK_OK(generate_some(ctx, tok, which, s == STAGE_GRAMMAR))) {
                tnd_session_stats_get(*which, &stats);
                CHECK(stats.n_generated == 4);
            }
        }
    }
    int32_t n = 0;
    const int32_t *rec = fancy ? tnd_session_tokens(fancy, &n) : NULL;
    memset(generated, 0, sizeof generated);
    if (rec && n == 3 + 4) memcpy(generated, rec + 3, sizeof generated);
    tnd_session_free(session);
    tnd_session_free(fancy);
    tnd_context_free(ctx);
    tnd_tokenizer_free(tok);
    tnd_model_close(m);
    *ok = st == TND_OK;
    return f.failed;
}

/* Every stage of one model file. */
static void check_model(const char *path) {
    printf("%s\n", path);
    bool ok_reference = false;
    run(path, -1, 0, &ok_reference); /* no failure: the tokens every run that does without must give */
    int32_t reference[4];
    memcpy(reference, generated, sizeof reference);
    CHECK(ok_reference && reference[0] != 0);
    for (int stage = 0; stage < STAGE_COUNT; stage++) {
        long failures = 0, recovered = 0;
        for (long k = 0; k < 100000; k++) {
            bool ok = false;
            if (!run(path, stage, k, &ok)) { /* past the stage's last allocation: everything works */
                CHECK(ok);
                break;
            }
            /* speculation and the grammar's table of states do without what they could not get (a shorter draft,
             * a walk with states of its own): the generation then succeeds, with the same 4 tokens */
            if (ok) CHECK(stage == STAGE_GRAMMAR && !memcmp(generated, reference, sizeof reference));
            recovered += ok;
            failures++;
        }
        CHECK(failures > 0);
        printf("  %s: each of its %ld allocations failed in turn: %ld clean errors, %ld done without\n",
               stage_names[stage], failures, failures - recovered, recovered);
    }
}

int main(void) {
    static const char words[] = "root ::= ( \" \" [a-z]{1,6} )+\n";
    if (!CHECK_OK(tnd_grammar_parse(words, strlen(words), NULL, &grammar))) return tnd_test_finish("test_alloc_failure");
    check_model(tnd_fixture("real/stories260K.gguf"));
    check_model(tnd_fixture("models/qwen2moe-tiny-q4_k_m.gguf")); /* a mixture of experts: its step scratch too */
    tnd_grammar_free(grammar);
    return tnd_test_finish("test_alloc_failure");
}
