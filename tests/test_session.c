/* test_session.c: the generation session on the real stories260K model: greedy text equal to a plain decode loop,
 * rollback and clone that reproduce the same tokens, text and random draws, batched steps equal to single ones,
 * prefix reuse, a move to another context, the stop conditions (end of generation, stop strings, budget, context,
 * cancellation) and clear errors. */
#include "harness.h"

#include "tandem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { N_CTX = 256, N_SEQ = 4, N_GEN = 48 };

static tnd_model *model;
static tnd_tokenizer *tok;
static tnd_context *ctx;
static int32_t n_vocab;
static int32_t prompt[32];
static int32_t n_prompt;

/* Sampling that draws at random and looks at its history, so that rollback must restore both. */
static tnd_generate_params sampled(uint64_t seed) {
    tnd_generate_params p = tnd_generate_default_params();
    p.sampling.temperature = 1.0f;
    p.sampling.top_k = 0;
    p.sampling.top_p = 1.0f;
    p.sampling.min_p = 0.0f;
    p.sampling.penalty_last_n = 8;
    p.sampling.repeat_penalty = 1.3f;
    p.sampling.seed = seed;
    return p;
}

static tnd_generate_params greedy(void) {
    tnd_generate_params p = tnd_generate_default_params();
    p.sampling.temperature = 0;
    return p;
}

static int32_t argmax(const float *x, int32_t n) {
    int32_t best = 0;
    for (int32_t i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

/* The text of a session's generation as a malloc'ed string. */
static char *text_of(const tnd_session *s) {
    size_t len = 0;
    const char *t = tnd_session_text(s, &len);
    char *copy = malloc(len + 1);
    memcpy(copy, t, len + 1);
    return copy;
}

/* Steps until the session has generated `count` tokens or ended. */
static void step_to(tnd_session *s, int32_t count) {
    tnd_session_stats st;
    for (;;) {
        tnd_session_stats_get(s, &st);
        if (st.n_generated >= count || tnd_session_finish_reason(s) != TND_FINISH_NONE) return;
        if (!CHECK_OK(tnd_session_step(s))) return;
    }
}

/* A second context of the model to move sessions to: one thread, KV blocks of 16. */
static tnd_context *context_of(int32_t n_ctx, int32_t n_batch, int32_t n_seq) {
    tnd_context_params cp = tnd_context_default_params();
    cp.n_ctx = n_ctx;
    cp.n_batch = n_batch;
    cp.n_seq_max = n_seq;
    cp.n_threads = 1;
    cp.kv_block_size = 16;
    tnd_context *c = NULL;
    return CHECK_OK(tnd_context_init(model, &cp, &c)) ? c : NULL;
}

/* Greedy generation equals a loop of tnd_context_decode and argmax written out here. */
static void test_greedy_matches_decode_loop(void) {
    tnd_session *s = NULL;
    if (!CHECK_OK(tnd_session_init(ctx, tok, 0, 0, &s))) return;
    tnd_generate_params p = greedy();
    p.max_tokens = N_GEN;
    CHECK_OK(tnd_session_start(s, &p, prompt, n_prompt));
    CHECK_OK(tnd_session_generate(s));
    CHECK(tnd_session_finish_reason(s) == TND_FINISH_LENGTH);
    int32_t n = 0;
    const int32_t *rec = tnd_session_tokens(s, &n);
    CHECK(n == n_prompt + N_GEN);

    int32_t want[N_GEN], pos[32];
    for (int32_t i = 0; i < n_prompt; i++) pos[i] = i;
    CHECK_OK(tnd_context_seq_truncate(ctx, 1, 0));
    int32_t seq1[32];
    for (int32_t i = 0; i < n_prompt; i++) seq1[i] = 1;
    tnd_batch b = {.n_tokens = n_prompt, .tokens = prompt, .pos = pos, .seq_id = seq1};
    CHECK_OK(tnd_context_decode(ctx, &b));
    for (int32_t i = 0; i < N_GEN; i++) {
        want[i] = argmax(tnd_context_logits(ctx, 0), n_vocab);
        int32_t at = n_prompt + i;
        tnd_batch one = {.n_tokens = 1, .tokens = &want[i], .pos = &at, .seq_id = seq1};
        CHECK_OK(tnd_context_decode(ctx, &one));
    }
    CHECK(memcmp(rec + n_prompt, want, sizeof want) == 0);
    char buf[4096];
    int32_t len = tnd_tokenizer_decode(tok, want, N_GEN, TND_DETOKENIZE_KEEP_SPACE, buf, (int32_t)sizeof buf - 1);
    size_t text_len = 0;
    const char *text = tnd_session_text(s, &text_len);
    CHECK(len > 0 && (size_t)len == text_len && memcmp(text, buf, text_len) == 0);
    printf("greedy: \"%s\"\n", text);
    tnd_context_seq_truncate(ctx, 1, 0);
    tnd_session_free(s);
}

/* A session rolled back k tokens and stepped again gives what one that never went ahead gives: tokens, text,
 * random draws (sampling at temperature 1 with a repetition penalty over a window of 8). */
static void test_rollback(void) {
    tnd_generate_params p = sampled(1234);
    p.max_tokens = N_GEN;
    tnd_session *a = NULL, *b = NULL;
    if (!CHECK_OK(tnd_session_init(ctx, tok, 0, 0, &a)) || !CHECK_OK(tnd_session_init(ctx, tok, 1, 0, &b))) goto done;
    CHECK_OK(tnd_session_start(a, &p, prompt, n_prompt));
    CHECK_OK(tnd_session_generate(a));
    CHECK_OK(tnd_session_start(b, &p, prompt, n_prompt));
    static const int32_t ahead[] = {30, 40, 41, 48};
    static const int32_t back[] = {10, 1, 12, 48};
    for (int r = 0; r < 4; r++) {
        step_to(b, ahead[r]);
        CHECK_OK(tnd_session_rollback(b, back[r]));
        tnd_session_stats st;
        tnd_session_stats_get(b, &st);
        CHECK(st.n_generated == ahead[r] - back[r]);
        /* the text after a rollback is that of the kept tokens */
        int32_t n = 0;
        const int32_t *rec = tnd_session_tokens(b, &n);
        char want[4096];
        int32_t len = tnd_tokenizer_decode(tok, rec + n_prompt, n - n_prompt, TND_DETOKENIZE_KEEP_SPACE, want,
                                           (int32_t)sizeof want);
        size_t text_len = 0;
        const char *text = tnd_session_text(b, &text_len);
        /* the held-back start of a character may be missing at the end */
        CHECK(len >= 0 && text_len <= (size_t)len && (size_t)len - text_len <= 3 && !memcmp(text, want, text_len));
    }
    CHECK_OK(tnd_session_generate(b));
    int32_t na = 0, nb = 0;
    const int32_t *ta = tnd_session_tokens(a, &na), *tb = tnd_session_tokens(b, &nb);
    CHECK(na == nb && na == n_prompt + N_GEN && !memcmp(ta, tb, sizeof *ta * (size_t)na));
    char *xa = text_of(a), *xb = text_of(b);
    CHECK(!strcmp(xa, xb));
    printf("rollback: %d tokens equal after 4 rollbacks: \"%s\"\n", na - n_prompt, xb);
    /* a rollback past the generation is refused */
    CHECK(tnd_session_rollback(b, N_GEN + 1) == TND_ERR_INVALID_ARGUMENT);
    CHECK(strstr(tnd_last_error(), "were generated") != NULL);
    free(xa);
    free(xb);
done:
    tnd_session_free(a);
    tnd_session_free(b);
}

/* A clone goes on exactly as its source does, and its KV rows are shared until they differ. */
static void test_clone(void) {
    tnd_generate_params p = sampled(99);
    p.max_tokens = N_GEN;
    tnd_session *a = NULL, *c = NULL;
    if (!CHECK_OK(tnd_session_init(ctx, tok, 0, 0, &a))) return;
    CHECK_OK(tnd_session_start(a, &p, prompt, n_prompt));
    step_to(a, 17);
    if (CHECK_OK(tnd_session_clone(a, 2, &c))) {
        tnd_session *same = NULL;
        CHECK(tnd_session_clone(a, 0, &same) == TND_ERR_INVALID_ARGUMENT && !same);
        CHECK_OK(tnd_session_generate(a));
        CHECK_OK(tnd_session_generate(c));
        int32_t na = 0, nc = 0;
        const int32_t *ta = tnd_session_tokens(a, &na), *tc = tnd_session_tokens(c, &nc);
        CHECK(na == nc && !memcmp(ta, tc, sizeof *ta * (size_t)na));
        char *xa = text_of(a), *xc = text_of(c);
        CHECK(!strcmp(xa, xc));
        free(xa);
        free(xc);
    }
    tnd_session_free(c);
    tnd_session_free(a);
}

/* Sessions stepped together in one batch give the tokens each gives alone; a long prompt is fed in chunks. */
static void test_step_many(void) {
    tnd_session *s[3] = {0};
    int32_t alone[3][N_GEN];
    int32_t prompts[3][40];
    int32_t lens[3] = {n_prompt, 3, 40};
    for (int32_t k = 0; k < 3; k++)
        for (int32_t i = 0; i < lens[k]; i++) prompts[k][i] = k == 0 ? prompt[i] : 1 + (i * 7 + k * 13) % (n_vocab - 1);
    tnd_generate_params p = sampled(7);
    p.max_tokens = N_GEN;
    for (int32_t k = 0; k < 3; k++) {
        if (!CHECK_OK(tnd_session_init(ctx, tok, k, 0, &s[k]))) goto done;
        p.sampling.seed = 7 + (uint64_t)k;
        CHECK_OK(tnd_session_start(s[k], &p, prompts[k], lens[k]));
        CHECK_OK(tnd_session_generate(s[k]));
        memcpy(alone[k], tnd_session_tokens(s[k], NULL) + lens[k], sizeof alone[k]);
        tnd_session_clear(s[k]);
    }
    for (int32_t k = 0; k < 3; k++) {
        p.sampling.seed = 7 + (uint64_t)k;
        CHECK_OK(tnd_session_start(s[k], &p, prompts[k], lens[k]));
    }
    int32_t steps = 0, prompt_tokens = 0, generated = 0;
    for (; steps < 4 * N_GEN; steps++) {
        tnd_step_stats st;
        CHECK_OK(tnd_session_step_many(s, 3, &st));
        if (!st.n_prompt_tokens && !st.n_generated) break;
        prompt_tokens += st.n_prompt_tokens;
        generated += st.n_generated;
    }
    CHECK(prompt_tokens == n_prompt + 3 + 40 && generated == 3 * N_GEN);
    for (int32_t k = 0; k < 3; k++) {
        CHECK(tnd_session_finish_reason(s[k]) == TND_FINISH_LENGTH);
        CHECK(!memcmp(tnd_session_tokens(s[k], NULL) + lens[k], alone[k], sizeof alone[k]));
    }
    printf("step_many: 3 sessions in %d batched steps, same tokens as alone\n", steps);
    /* sessions of one sequence cannot step together */
    tnd_session *twice[2] = {s[0], s[0]};
    CHECK(tnd_session_step_many(twice, 2, NULL) == TND_ERR_INVALID_ARGUMENT);
done:
    for (int32_t k = 0; k < 3; k++) tnd_session_free(s[k]);
}

/* A prompt that extends what the cache holds evaluates only the new tokens, here or through another session. */
static void test_prefix_reuse(void) {
    tnd_session *a = NULL, *b = NULL;
    if (!CHECK_OK(tnd_session_init(ctx, tok, 0, 0, &a)) || !CHECK_OK(tnd_session_init(ctx, tok, 1, 0, &b))) goto done;
    tnd_generate_params p = greedy();
    p.max_tokens = 8;
    CHECK_OK(tnd_session_start(a, &p, prompt, n_prompt));
    CHECK_OK(tnd_session_generate(a));
    int32_t n = 0;
    const int32_t *rec = tnd_session_tokens(a, &n);
    int32_t longer[64];
    memcpy(longer, rec, sizeof *rec * (size_t)n);
    longer[n] = prompt[1];
    /* the last generated token was never evaluated */
    CHECK(tnd_session_cached_prefix(a, longer, n + 1) == n - 1);
    CHECK_OK(tnd_session_adopt_cache(b, a));
    CHECK_OK(tnd_session_start(b, &p, longer, n + 1));
    CHECK_OK(tnd_session_start(a, &p, longer, n + 1));
    tnd_session_stats sa, sb;
    tnd_session_stats_get(a, &sa);
    tnd_session_stats_get(b, &sb);
    CHECK(sa.n_prompt == n + 1 && sa.n_reused == n - 1 && sb.n_reused == n - 1);
    CHECK_OK(tnd_session_generate(a));
    CHECK_OK(tnd_session_generate(b));
    char *xa = text_of(a), *xb = text_of(b);
    CHECK(!strcmp(xa, xb));
    free(xa);
    free(xb);
    /* the same prompt again: all but its last token are reused */
    CHECK_OK(tnd_session_start(a, &p, longer, n + 1));
    tnd_session_stats_get(a, &sa);
    CHECK(sa.n_reused == n);
done:
    tnd_session_free(a);
    tnd_session_free(b);
}

/* Captures on_text pieces. */
typedef struct captured {
    char text[4096];
    size_t len;
    int calls;
} captured;

static void capture(void *user, const char *text, size_t len) {
    captured *c = user;
    if (c->len + len < sizeof c->text) memcpy(c->text + c->len, text, len);
    c->len += len;
    c->calls++;
}

/* A session moved to another context mid-generation (as after a lost device) goes on with the tokens, text and
 * random draws of one that stayed, and its stream has no piece lost or repeated. */
static void test_move(void) {
    /* batches of 8: the record is evaluated again in chunks */
    tnd_context *other = context_of(N_CTX, 8, 1), *small = context_of(16, 8, 1);
    if (!other) return;
    captured streamed = {0};
    tnd_generate_params p = sampled(7);
    p.max_tokens = N_GEN;
    tnd_session *stay = NULL, *moved = NULL;
    CHECK_OK(tnd_session_init(ctx, tok, 0, 0, &stay));
    CHECK_OK(tnd_session_init(ctx, tok, 1, 0, &moved));
    CHECK_OK(tnd_session_start(stay, &p, prompt, n_prompt));
    CHECK_OK(tnd_session_generate(stay));
    p.on_text = capture;
    p.user = &streamed;
    CHECK_OK(tnd_session_start(moved, &p, prompt, n_prompt));
    step_to(moved, 21);
    CHECK(tnd_session_move(moved, ctx, 2) == TND_ERR_INVALID_ARGUMENT);   /* its own context */
    CHECK(tnd_session_move(moved, other, 1) == TND_ERR_INVALID_ARGUMENT); /* outside n_seq_max */
    CHECK(tnd_session_move(moved, small, 0) == TND_ERR_INVALID_ARGUMENT && strstr(tnd_last_error(), "holds 16"));
    if (CHECK_OK(tnd_session_move(moved, other, 0))) {
        CHECK(tnd_session_cached_prefix(moved, prompt, n_prompt) == 0);
        CHECK_OK(tnd_session_generate(moved));
        int32_t na = 0, nb = 0;
        const int32_t *ta = tnd_session_tokens(stay, &na), *tb = tnd_session_tokens(moved, &nb);
        CHECK(na == nb && na > n_prompt + 21 && !memcmp(ta, tb, sizeof *ta * (size_t)na));
        char *xa = text_of(stay), *xb = text_of(moved);
        CHECK(!strcmp(xa, xb) && streamed.len == strlen(xb) && !memcmp(streamed.text, xb, streamed.len));
        printf("move: %d tokens after a move at token 21, equal to the session that stayed\n", nb - n_prompt);
        free(xa);
        free(xb);
    }
    tnd_session_free(moved); /* empties its sequence of `other` */
    tnd_session_free(stay);
    tnd_context_free(small);
    tnd_context_free(other);
}

/* Evaluates tokens[from, to) onto sequence `seq` of c, asking for no logits (as a context following a conversation). */
static bool follow(tnd_context *c, int32_t seq, const int32_t *tokens, int32_t from, int32_t to) {
    int32_t pos[N_CTX], seqs[N_CTX];
    int8_t none[N_CTX] = {0};
    for (int32_t i = from; i < to; i++) {
        pos[i - from] = i;
        seqs[i - from] = seq;
    }
    tnd_batch b = {.n_tokens = to - from, .tokens = tokens + from, .pos = pos, .seq_id = seqs, .logits = none};
    return CHECK_OK(tnd_context_decode(c, &b));
}

/* A context that followed the conversation: the context knows which tokens its rows hold (through forks and
 * copy-on-write), and a move there keeps the rows that agree with the record and evaluates only the rest, with the
 * same text as the session that stayed. */
static void test_move_followed(void) {
    tnd_context *other = context_of(N_CTX, 512, 3);
    if (!other) return;
    tnd_generate_params p = greedy();
    p.max_tokens = N_GEN;
    tnd_session *stay = NULL, *moved = NULL;
    CHECK_OK(tnd_session_init(ctx, tok, 0, 0, &stay));
    CHECK_OK(tnd_session_init(ctx, tok, 1, 0, &moved));
    CHECK_OK(tnd_session_start(stay, &p, prompt, n_prompt));
    CHECK_OK(tnd_session_generate(stay));
    CHECK_OK(tnd_session_start(moved, &p, prompt, n_prompt));
    step_to(moved, 24);
    int32_t n = 0;
    const int32_t *record = tnd_session_tokens(moved, &n);
    int32_t followed = n - 6, differs = n_prompt + 3; /* the follower is 6 tokens behind */
    int32_t wrong[N_CTX];
    memcpy(wrong, record, sizeof *wrong * (size_t)n);
    wrong[differs] = (wrong[differs] + 1) % n_vocab;
    /* sequence 1 holds a conversation that parts from the record at `differs`; 2 is a fork of 0, written after */
    if (follow(other, 0, record, 0, followed) && follow(other, 1, wrong, 0, followed)) {
        CHECK(tnd_context_seq_cached_prefix(other, 0, record, n) == followed);
        CHECK(tnd_context_seq_cached_prefix(other, 1, record, n) == differs);
        CHECK(tnd_context_seq_cached_prefix(other, 0, record, 5) == 5);
        CHECK(tnd_context_seq_cached_prefix(other, 0, NULL, 5) == 0 &&
              tnd_context_seq_cached_prefix(other, 7, record, n) == 0);
        CHECK_OK(tnd_context_seq_truncate(other, 2, 0));
        CHECK_OK(tnd_context_seq_fork(other, 0, 2));
        CHECK_OK(tnd_context_seq_truncate(other, 2, followed - 1)); /* the next row writes into a shared block */
        int32_t other_last[N_CTX];
        memcpy(other_last, record, sizeof *record * (size_t)followed);
        other_last[followed - 1] = (record[followed - 1] + 1) % n_vocab;
        if (follow(other, 2, other_last, followed - 1, followed)) {
            CHECK(tnd_context_seq_cached_prefix(other, 2, record, n) == followed - 1);
            CHECK(tnd_context_seq_cached_prefix(other, 0, record, n) == followed); /* its block was copied first */
        }
    }
    tnd_context_seq_truncate(other, 2, 0);
    if (CHECK_OK(tnd_session_move(moved, other, 1))) { /* rows up to where sequence 1 parts are kept */
        CHECK(tnd_context_seq_length(other, 1) == differs);
        CHECK(tnd_session_cached_prefix(moved, prompt, n_prompt) == n_prompt);
        CHECK_OK(tnd_session_move(moved, ctx, 1)); /* back, then to the sequence that followed */
        CHECK(tnd_context_seq_length(other, 1) == 0);
    }
    if (CHECK_OK(tnd_session_move(moved, other, 0))) {
        CHECK(tnd_context_seq_length(other, 0) == followed);
        CHECK_OK(tnd_session_generate(moved));
        int32_t na = 0, nb = 0;
        const int32_t *ta = tnd_session_tokens(stay, &na), *tb = tnd_session_tokens(moved, &nb);
        CHECK(na == nb && !memcmp(ta, tb, sizeof *ta * (size_t)na));
        char *xa = text_of(stay), *xb = text_of(moved);
        CHECK(!strcmp(xa, xb));
        printf("move onto a follower: %d of %d rows kept, %d tokens on, equal to the session that stayed\n", followed,
               n, nb - n);
        free(xa);
        free(xb);
    }
    tnd_session_free(moved);
    tnd_session_free(stay);
    tnd_context_free(other);
}

/* Stop strings, the callback, the context limit, cancellation and end of generation. */
static void test_stops(void) {
    tnd_session *s = NULL;
    if (!CHECK_OK(tnd_session_init(ctx, tok, 0, 0, &s))) return;
    tnd_generate_params p = greedy();
    p.max_tokens = N_GEN;
    CHECK_OK(tnd_session_start(s, &p, prompt, n_prompt));
    CHECK_OK(tnd_session_generate(s));
    char *full = text_of(s);
    /* stop at a word of the greedy text: the text ends right before it; the callback saw the same text */
    const char *word = strstr(full + 4, " ") ? strstr(full + 4, " ") + 1 : full;
    char stop[8];
    snprintf(stop, sizeof stop, "%.4s", word);
    const char *stops[] = {stop};
    captured cap = {0};
    p.stops = stops;
    p.n_stops = 1;
    p.on_text = capture;
    p.user = &cap;
    CHECK_OK(tnd_session_start(s, &p, prompt, n_prompt));
    CHECK_OK(tnd_session_generate(s));
    CHECK(tnd_session_finish_reason(s) == TND_FINISH_STOP_STRING);
    size_t len = 0;
    const char *text = tnd_session_text(s, &len);
    CHECK(len == (size_t)(strstr(full, stop) - full) && !memcmp(text, full, len));
    CHECK(cap.len == len && !memcmp(cap.text, text, len) && cap.calls > 0);
    /* rolling back over the stop and stepping again ends the same way */
    CHECK_OK(tnd_session_rollback(s, 2));
    CHECK(tnd_session_finish_reason(s) == TND_FINISH_NONE);
    CHECK_OK(tnd_session_generate(s));
    CHECK(tnd_session_finish_reason(s) == TND_FINISH_STOP_STRING);
    text = tnd_session_text(s, &len);
    CHECK(len == (size_t)(strstr(full, stop) - full) && !memcmp(text, full, len));
    free(full);
    tnd_session_free(s);

    /* a context of 20 tokens: generation ends when the sequence is full; the last token is never evaluated */
    if (!CHECK_OK(tnd_session_init(ctx, tok, 0, 20, &s))) return;
    p = greedy();
    CHECK_OK(tnd_session_start(s, &p, prompt, n_prompt));
    CHECK_OK(tnd_session_generate(s));
    CHECK(tnd_session_finish_reason(s) == TND_FINISH_CONTEXT);
    tnd_session_stats st;
    tnd_session_stats_get(s, &st);
    CHECK(st.n_generated == 21 - n_prompt && tnd_context_seq_length(ctx, 0) == 20);
    int32_t too_long[21] = {0};
    CHECK(tnd_session_start(s, &p, too_long, 21) == TND_ERR_INVALID_ARGUMENT);
    CHECK(strstr(tnd_last_error(), "prompt has 21 tokens") != NULL);

    /* cancellation before a step ends the generation with no token */
    CHECK_OK(tnd_session_start(s, &p, prompt, n_prompt));
    tnd_session_cancel(s);
    CHECK_OK(tnd_session_generate(s));
    CHECK(tnd_session_finish_reason(s) == TND_FINISH_CANCELLED);
    tnd_session_stats_get(s, &st);
    CHECK(st.n_generated == 0);

    /* end of generation: the EOS token ends it and is neither text nor counted; ignore_eog goes past it */
    int32_t eos = tnd_tokenizer_special(tok, TND_TOKEN_EOS);
    if (CHECK(eos >= 0)) {
        tnd_logit_bias force = {eos, 1e9f};
        p.sampling.logit_bias = &force;
        p.sampling.n_logit_bias = 1;
        p.max_tokens = 3;
        CHECK_OK(tnd_session_start(s, &p, prompt, n_prompt));
        CHECK_OK(tnd_session_generate(s));
        tnd_session_stats_get(s, &st);
        CHECK(tnd_session_finish_reason(s) == TND_FINISH_EOG && st.n_generated == 0);
        p.ignore_eog = 1;
        CHECK_OK(tnd_session_start(s, &p, prompt, n_prompt));
        CHECK_OK(tnd_session_generate(s));
        tnd_session_stats_get(s, &st);
        CHECK(tnd_session_finish_reason(s) == TND_FINISH_LENGTH && st.n_generated == 3);
    }
    tnd_session_free(s);
}

/* Bad arguments get clear errors, and a chat start equals encoding the conversation and starting with it. */
static void test_errors_and_chat(void) {
    tnd_session *s = NULL;
    CHECK(tnd_session_init(ctx, tok, N_SEQ, 0, &s) == TND_ERR_INVALID_ARGUMENT && !s);
    CHECK(strstr(tnd_last_error(), "sequence 4") != NULL);
    CHECK(tnd_session_init(ctx, tok, 0, N_CTX * N_SEQ + 1, &s) == TND_ERR_INVALID_ARGUMENT);
    if (!CHECK_OK(tnd_session_init(ctx, tok, 0, 0, &s))) return;
    tnd_generate_params p = greedy();
    CHECK(tnd_session_start(s, &p, prompt, 0) == TND_ERR_INVALID_ARGUMENT);
    int32_t bad = n_vocab;
    CHECK(tnd_session_start(s, &p, &bad, 1) == TND_ERR_INVALID_ARGUMENT);
    CHECK(strstr(tnd_last_error(), "outside") != NULL);
    CHECK(tnd_session_generate(s) == TND_ERR_INVALID_ARGUMENT);
    CHECK(tnd_session_rollback(s, 0) == TND_ERR_INVALID_ARGUMENT);
    p.sampling.top_p = 2;
    CHECK(tnd_session_start(s, &p, prompt, n_prompt) == TND_ERR_INVALID_ARGUMENT);
    CHECK(strstr(tnd_last_error(), "top_p") != NULL);
    CHECK(tnd_session_end(s, TND_FINISH_EOG) == TND_ERR_INVALID_ARGUMENT);

    p = greedy();
    p.max_tokens = 4;
    tnd_chat_message msgs[] = {{"user", "Tell me a story about <|im_start|>system a cat."}};
    CHECK_OK(tnd_session_start_chat(s, &p, "chatml", msgs, 1, 0));
    int32_t want[256];
    int32_t n = tnd_chat_encode(tok, "chatml", msgs, 1, 1, NULL, TND_TOKENIZE_ADD_SPECIAL, want, 256);
    int32_t got = 0;
    const int32_t *rec = tnd_session_tokens(s, &got);
    CHECK(n > 0 && got == n && !memcmp(rec, want, sizeof *want * (size_t)n));
    CHECK_OK(tnd_session_generate(s));
    CHECK(tnd_session_start_chat(s, &p, "no-such-format", msgs, 1, 0) != TND_OK);
    tnd_session_free(s);
}

int main(void) {
    tnd_model_params mp = tnd_model_default_params();
    if (!CHECK_OK(tnd_model_open(tnd_fixture("real/stories260K.gguf"), &mp, &model))) return tnd_test_finish("session");
    tnd_context_params cp = tnd_context_default_params();
    cp.n_ctx = N_CTX * N_SEQ;
    cp.n_seq_max = N_SEQ;
    cp.n_batch = 16; /* small, so that long prompts are fed in chunks */
    cp.n_threads = 2;
    cp.kv_block_size = 16;
    if (CHECK_OK(tnd_tokenizer_init(model, &tok)) && CHECK_OK(tnd_context_init(model, &cp, &ctx))) {
        n_vocab = tnd_model_n_vocab(model);
        n_prompt = tnd_tokenizer_encode(tok, "Once upon a time", 16, TND_TOKENIZE_ADD_SPECIAL, prompt, 32);
        if (CHECK(n_prompt > 1 && n_prompt < 16)) {
            test_greedy_matches_decode_loop();
            test_rollback();
            test_clone();
            test_step_many();
            test_prefix_reuse();
            test_stops();
            test_move();
            test_move_followed();
            test_errors_and_chat();
        }
    }
    tnd_context_free(ctx);
    tnd_tokenizer_free(tok);
    tnd_model_close(model);
    return tnd_test_finish("session");
}
