/* test_speculate.c: speculative decoding gives the target model's own output, token for token: greedy and seeded
 * sampling (temperature, top-k/p, min-p, penalties), with every draft source (prompt lookup, a Q4_0 copy of the
 * target, the target itself, a draft of random weights), fixed and adaptive lengths, on the real stories260K model
 * and on the llama-tiny fixtures; at the end of the context and of the token budget, with stop strings, after a
 * rollback, batched with a session that does not speculate, and when the KV cache has no room for the drafts; drafts
 * made together in shared steps of the draft model are the drafts made one at a time. The
 * sampled tokens' distribution passes a chi-square test against runs without speculation; the controller turns a
 * useless draft off; bad settings and a draft model of another vocabulary are clear errors. */
#include "harness.h"

#include "model/model_writer.h"
#include "runtime/speculate.h"
#include "tandem.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { N_CTX = 512, MAX_GEN = 256 };

/* A model with a context (n_seq sequences) and its tokenizer. */
typedef struct loaded {
    tnd_model *model;
    tnd_context *ctx;
    tnd_tokenizer *tok;
} loaded;

static bool load(const char *path, int32_t n_ctx, int32_t n_seq, loaded *l) {
    memset(l, 0, sizeof *l);
    tnd_context_params p = tnd_context_default_params();
    p.n_ctx = n_ctx;
    p.n_seq_max = n_seq;
    p.n_threads = 2;
    return CHECK_OK(tnd_model_open(path, NULL, &l->model)) && CHECK_OK(tnd_context_init(l->model, &p, &l->ctx)) &&
           CHECK_OK(tnd_tokenizer_init(l->model, &l->tok));
}

static void unload(loaded *l) {
    tnd_tokenizer_free(l->tok);
    tnd_context_free(l->ctx);
    tnd_model_close(l->model);
}

/* What a generation gave. */
typedef struct outcome {
    int32_t tokens[MAX_GEN];
    int32_t n;
    tnd_finish_reason finish;
    char text[4096];
    tnd_speculation_stats spec;
} outcome;

static tnd_generate_params greedy(int32_t max_tokens) {
    tnd_generate_params p = tnd_generate_default_params();
    p.sampling.temperature = 0;
    p.max_tokens = max_tokens;
    return p;
}

/* Every stage of the sampler at work: temperature, top-k, top-p, min-p and the three penalties. */
static tnd_generate_params sampled(uint64_t seed, int32_t max_tokens) {
    tnd_generate_params p = tnd_generate_default_params();
    p.sampling.temperature = 0.9f;
    p.sampling.top_k = 30;
    p.sampling.top_p = 0.95f;
    p.sampling.min_p = 0.02f;
    p.sampling.penalty_last_n = 16;
    p.sampling.repeat_penalty = 1.1f;
    p.sampling.presence_penalty = 0.2f;
    p.sampling.frequency_penalty = 0.1f;
    p.sampling.seed = seed;
    p.max_tokens = max_tokens;
    return p;
}

/* Generates with `spec` (NULL: no speculation) on sequence 0 of the target. */
static bool generate(loaded *t, const tnd_speculation_params *spec, const tnd_generate_params *gp,
                     const int32_t *prompt, int32_t n_prompt, int32_t max_context, outcome *out) {
    memset(out, 0, sizeof *out);
    tnd_session *s = NULL;
    bool ok = CHECK_OK(tnd_session_init(t->ctx, t->tok, 0, max_context, &s)) &&
              CHECK_OK(tnd_session_set_speculation(s, spec)) && CHECK_OK(tnd_session_start(s, gp, prompt, n_prompt)) &&
              CHECK_OK(tnd_session_generate(s));
    if (ok) {
        int32_t n = 0;
        const int32_t *rec = tnd_session_tokens(s, &n);
        out->n = n - n_prompt;
        ok = CHECK(out->n >= 0 && out->n <= MAX_GEN);
        if (ok) memcpy(out->tokens, rec + n_prompt, sizeof *rec * (size_t)out->n);
        snprintf(out->text, sizeof out->text, "%s", tnd_session_text(s, NULL));
        out->finish = tnd_session_finish_reason(s);
        tnd_session_speculation_stats(s, &out->spec);
    }
    tnd_session_free(s);
    return ok;
}

static bool same(const outcome *a, const outcome *b) {
    return a->n == b->n && !memcmp(a->tokens, b->tokens, sizeof *a->tokens * (size_t)a->n) && a->finish == b->finish &&
           !strcmp(a->text, b->text);
}

static int32_t encode(const tnd_tokenizer *tok, const char *text, int32_t *out, int32_t cap) {
    int32_t n = tnd_tokenizer_encode(tok, text, strlen(text), TND_TOKENIZE_ADD_SPECIAL, out, cap);
    CHECK(n > 0);
    return n;
}

static tnd_speculation_params ngram(int adaptive, int32_t draft_max) {
    tnd_speculation_params p = tnd_speculation_default_params();
    p.source = TND_DRAFT_NGRAM;
    p.adaptive = adaptive;
    p.draft_max = draft_max;
    p.ngram_min = 1;
    return p;
}

static tnd_speculation_params drafting(loaded *d, int adaptive, int32_t draft_max, float p_min) {
    tnd_speculation_params p = tnd_speculation_default_params();
    p.source = TND_DRAFT_MODEL;
    p.draft_context = d->ctx;
    p.adaptive = adaptive;
    p.draft_max = draft_max;
    p.p_min = p_min;
    return p;
}

/* Every source, greedy and sampled with several seeds, on two prompts: the output equals the model's alone. */
static void test_identical_output(loaded *t, const char *name, const tnd_speculation_params *sources, int n_sources) {
    static const char *const prompts[] = {"Once upon a time", "Tom said: \"I like the cat. I like the dog. I like"};
    int checked = 0, equal = 0;
    int64_t drafted = 0, accepted = 0;
    for (int pi = 0; pi < 2; pi++) {
        int32_t prompt[64];
        int32_t n_prompt = encode(t->tok, prompts[pi], prompt, 64);
        for (int mode = 0; mode < 4; mode++) {
            tnd_generate_params gp = mode == 0 ? greedy(200) : sampled(1000 + (uint64_t)mode, 200);
            outcome plain, spec;
            if (!generate(t, NULL, &gp, prompt, n_prompt, 0, &plain)) continue;
            for (int si = 0; si < n_sources; si++) {
                if (!generate(t, &sources[si], &gp, prompt, n_prompt, 0, &spec)) continue;
                checked++;
                if (CHECK(same(&plain, &spec))) equal++;
                else fprintf(stderr, "  %s: source %d, prompt %d, mode %d differs\n", name, si, pi, mode);
                drafted += spec.spec.n_drafted;
                accepted += spec.spec.n_accepted;
            }
        }
    }
    CHECK(drafted > 0 && accepted > 0);
    printf("%s: %d of %d speculative generations equal to the model alone (%lld of %lld drafted tokens accepted)\n",
           name, equal, checked, (long long)accepted, (long long)drafted);
}

/* The ends of a generation fall inside a verified draft: the context's end, the budget, a stop string. */
static void test_ends(loaded *t, loaded *draft) {
    int32_t prompt[64];
    int32_t n_prompt = encode(t->tok, "Once upon a time", prompt, 64);
    tnd_speculation_params sources[] = {ngram(0, 7), drafting(draft, 0, 9, 0)};
    static const char *const stops[] = {"Lily", "park", "."};
    for (int si = 0; si < 2; si++) {
        for (int32_t max_context = n_prompt + 1; max_context < n_prompt + 40; max_context += 7) {
            tnd_generate_params gp = greedy(-1);
            outcome a, b;
            if (generate(t, NULL, &gp, prompt, n_prompt, max_context, &a) &&
                generate(t, &sources[si], &gp, prompt, n_prompt, max_context, &b))
                CHECK(same(&a, &b) && a.finish == TND_FINISH_CONTEXT);
        }
        for (int32_t budget = 1; budget < 40; budget += 5) {
            tnd_generate_params gp = greedy(budget);
            outcome a, b;
            if (generate(t, NULL, &gp, prompt, n_prompt, 0, &a) && generate(t, &sources[si], &gp, prompt, n_prompt, 0, &b))
                CHECK(same(&a, &b) && a.finish == TND_FINISH_LENGTH && a.n == budget);
        }
        for (int k = 0; k < 3; k++) {
            tnd_generate_params gp = greedy(200);
            gp.stops = &stops[k];
            gp.n_stops = 1;
            outcome a, b;
            if (generate(t, NULL, &gp, prompt, n_prompt, 0, &a) && generate(t, &sources[si], &gp, prompt, n_prompt, 0, &b))
                CHECK(same(&a, &b) && a.finish == TND_FINISH_STOP_STRING);
        }
    }
}

/* Speculating sessions rolled back and stepped on give what the model alone gives, batched with each other (their
 * drafts made together, in shared steps of the draft model) and with a session that does not speculate. */
static void test_rollback_and_batching(loaded *t, loaded *draft) {
    enum { N = 3 }; /* two speculate (draft sequences 0 and 1, drafts of up to 6 and 3), one does not */
    int32_t prompt[64];
    int32_t n_prompt = encode(t->tok, "Once upon a time", prompt, 64);
    tnd_generate_params gp = sampled(77, 120);
    outcome plain;
    if (!generate(t, NULL, &gp, prompt, n_prompt, 0, &plain)) return;
    tnd_session *s[N] = {NULL, NULL, NULL};
    bool ok = true;
    for (int i = 0; i < N && ok; i++) {
        tnd_speculation_params spec = drafting(draft, 0, i ? 3 : 6, 0);
        spec.draft_seq = i;
        ok = CHECK_OK(tnd_session_init(t->ctx, t->tok, i, 0, &s[i])) &&
             (i == N - 1 || CHECK_OK(tnd_session_set_speculation(s[i], &spec))) &&
             CHECK_OK(tnd_session_start(s[i], &gp, prompt, n_prompt));
    }
    if (ok) {
        tnd_session_stats st;
        for (int round = 0; round < 3; round++) {
            for (int i = 0; i < 8; i++) CHECK_OK(tnd_session_step_many(s, N, NULL));
            for (int i = 0; i < N - 1; i++) {
                tnd_session_stats_get(s[i], &st);
                CHECK_OK(tnd_session_rollback(s[i], st.n_generated < 5 - i ? st.n_generated : 5 - i));
            }
        }
        bool running = true;
        while (running) {
            running = false;
            for (int i = 0; i < N; i++) running |= tnd_session_finish_reason(s[i]) == TND_FINISH_NONE;
            if (running && !CHECK_OK(tnd_session_step_many(s, N, NULL))) break;
        }
        for (int i = 0; i < N; i++) {
            int32_t n = 0;
            const int32_t *rec = tnd_session_tokens(s[i], &n);
            CHECK(n - n_prompt == plain.n && !memcmp(rec + n_prompt, plain.tokens, sizeof *rec * (size_t)plain.n));
            CHECK(!strcmp(tnd_session_text(s[i], NULL), plain.text));
        }
        for (int i = 0; i < N - 1; i++) {
            tnd_speculation_stats ss;
            tnd_session_speculation_stats(s[i], &ss);
            CHECK(ss.n_verified > 0);
        }
    }
    for (int i = 0; i < N; i++) tnd_session_free(s[i]);
}

/* Drafts made together (tnd_spec_draft_many: one step of the draft model for every session's next token) are the
 * drafts made one session at a time, token for token: each session's logits row goes to its own draft. */
static void test_draft_many(loaded *t, loaded *draft) {
    static const char *const texts[] = {"Once upon a time", "Tom said: \"I like the cat."};
    int32_t rec[2][64], n[2], k[2] = {7, 4}, alone[2][8], n_alone[2], together[2];
    tnd_allocator a = {0};
    for (int i = 0; i < 2; i++) {
        n[i] = encode(t->tok, texts[i], rec[i], 64);
        tnd_speculation_params p = drafting(draft, 0, 8, 0);
        p.draft_seq = i;
        tnd_spec *sp = NULL;
        if (!CHECK_OK(tnd_spec_init(&p, t->ctx, t->tok, &a, &sp))) return;
        n_alone[i] = tnd_spec_draft(sp, rec[i], n[i], k[i]);
        memcpy(alone[i], tnd_spec_draft_tokens(sp), sizeof(int32_t) * (size_t)n_alone[i]);
        tnd_spec_free(sp);
    }
    tnd_spec *sps[2] = {NULL, NULL};
    for (int i = 0; i < 2; i++) {
        tnd_speculation_params p = drafting(draft, 0, 8, 0);
        p.draft_seq = i;
        CHECK_OK(tnd_spec_init(&p, t->ctx, t->tok, &a, &sps[i]));
    }
    if (sps[0] && sps[1]) {
        const int32_t *records[2] = {rec[0], rec[1]};
        tnd_spec_draft_many(sps, records, n, k, 2, together);
        for (int i = 0; i < 2; i++)
            CHECK(together[i] == n_alone[i] && n_alone[i] == k[i] &&
                  !memcmp(tnd_spec_draft_tokens(sps[i]), alone[i], sizeof(int32_t) * (size_t)k[i]));
        printf("drafts made together: %d and %d tokens, as made one at a time\n", together[0], together[1]);
    }
    for (int i = 0; i < 2; i++) tnd_spec_free(sps[i]);
}

/* A KV cache that fills up: drafts that do not fit are dropped and the step goes on without them, so the generation
 * stops where the model alone stops (the cache full at the same token), not earlier. */
static void test_full_cache(const char *target_path, loaded *draft) {
    loaded small;
    /* 3 blocks of 64 positions; sequence 1 takes one, so sequence 0 has 128 positions */
    if (!load(target_path, 192, 2, &small)) {
        unload(&small);
        return;
    }
    int32_t filler[64], pos[64], seq[64];
    for (int i = 0; i < 64; i++) filler[i] = 1 + i, pos[i] = i, seq[i] = 1;
    tnd_batch fill = {.n_tokens = 64, .tokens = filler, .pos = pos, .seq_id = seq};
    CHECK_OK(tnd_context_decode(small.ctx, &fill));
    int32_t prompt[64];
    int32_t n_prompt = encode(small.tok, "Once upon a time", prompt, 64);
    tnd_generate_params gp = greedy(-1);
    gp.ignore_eog = 1;
    tnd_speculation_params spec = drafting(draft, 0, 16, 0);
    int32_t n[2] = {0, 0}, *rec[2] = {NULL, NULL};
    tnd_status status[2];
    tnd_speculation_stats st = {0};
    for (int v = 0; v < 2; v++) {
        tnd_session *s = NULL;
        if (!CHECK_OK(tnd_session_init(small.ctx, small.tok, 0, 0, &s))) break;
        if (v) CHECK_OK(tnd_session_set_speculation(s, &spec));
        CHECK_OK(tnd_session_start(s, &gp, prompt, n_prompt));
        status[v] = tnd_session_generate(s);
        CHECK(tnd_session_finish_reason(s) == TND_FINISH_ERROR);
        const int32_t *r = tnd_session_tokens(s, &n[v]);
        rec[v] = malloc(sizeof *r * (size_t)n[v]);
        memcpy(rec[v], r, sizeof *r * (size_t)n[v]);
        if (v) tnd_session_speculation_stats(s, &st);
        tnd_session_free(s);
    }
    CHECK(status[0] == TND_ERR_BUFFER_TOO_SMALL && status[1] == TND_ERR_BUFFER_TOO_SMALL);
    CHECK(n[0] == 129 && n[1] == n[0] && rec[0] && rec[1] && !memcmp(rec[0], rec[1], sizeof *rec[0] * (size_t)n[0]));
    CHECK(st.n_accepted > 0);
    free(rec[0]);
    free(rec[1]);
    unload(&small);
}

/* Two-sample chi-square test: the tokens sampled at generated positions 1..4 with speculation (seeds 1..N) and
 * without (seeds N+1..2N) come from one distribution. Tokens seen fewer than 5 times in all are pooled. */
static void test_distribution(loaded *t, loaded *draft) {
    enum { N_RUNS = 300, N_POS = 4 };
    int32_t prompt[64];
    int32_t n_prompt = encode(t->tok, "Once upon a time", prompt, 64);
    int32_t nv = tnd_tokenizer_n_vocab(t->tok);
    int32_t *counts = calloc((size_t)nv * 2, sizeof *counts);
    tnd_speculation_params spec = drafting(draft, 0, 4, 0);
    int64_t accepted = 0;
    for (int run = 0; run < 2 * N_RUNS; run++) {
        bool speculate = run < N_RUNS;
        tnd_generate_params gp = sampled(1 + (uint64_t)run, 1 + N_POS);
        gp.sampling.temperature = 1.0f; /* a wide distribution: many tokens to compare */
        gp.sampling.top_k = 0;
        gp.sampling.min_p = 0;
        outcome o;
        if (!generate(t, speculate ? &spec : NULL, &gp, prompt, n_prompt, 0, &o)) break;
        accepted += o.spec.n_accepted;
        for (int32_t i = 1; i < o.n; i++) counts[(speculate ? 0 : nv) + o.tokens[i]]++;
    }
    double chi2 = 0, pooled[2] = {0, 0};
    int cells = 0;
    for (int32_t v = 0; v < nv; v++) {
        double x = counts[v], y = counts[nv + v];
        if (x + y < 5) {
            pooled[0] += x;
            pooled[1] += y;
            continue;
        }
        chi2 += (x - y) * (x - y) / (x + y); /* equal sample sizes */
        cells++;
    }
    if (pooled[0] + pooled[1] > 0) {
        chi2 += (pooled[0] - pooled[1]) * (pooled[0] - pooled[1]) / (pooled[0] + pooled[1]);
        cells++;
    }
    /* the 0.1% critical value of chi-square with d degrees of freedom, Wilson-Hilferty */
    double d = cells - 1, z = 3.09, critical = d * pow(1 - 2 / (9 * d) + z * sqrt(2 / (9 * d)), 3);
    CHECK(cells > 10 && chi2 < critical && accepted > 0);
    printf("distribution: chi-square %.1f over %d cells (0.1%% critical value %.1f), %lld drafted tokens accepted\n",
           chi2, cells, critical, (long long)accepted);
    free(counts);
}

/* A draft of random weights is rarely right: the controller turns speculation off (its probes would cost more
 * than their share of the time here: the draft model is five times the target's size). On stories260K a verified
 * extra token costs half a step, so prompt lookup does not pay either: off too, but its probes cost nothing, so it
 * probes. */
static void test_controller(loaded *t, loaded *useless) {
    int32_t prompt[64];
    int32_t n_prompt = encode(t->tok, "Once upon a time", prompt, 64);
    tnd_generate_params gp = greedy(250);
    tnd_speculation_params spec = drafting(useless, 1, 8, 0), lookup = ngram(1, 8);
    outcome plain, o, l;
    if (!generate(t, NULL, &gp, prompt, n_prompt, 0, &plain) || !generate(t, &spec, &gp, prompt, n_prompt, 0, &o) ||
        !generate(t, &lookup, &gp, prompt, n_prompt, 0, &l))
        return;
    CHECK(same(&plain, &o) && same(&plain, &l));
    CHECK(o.spec.n_plain > o.spec.n_verified * 10 && o.spec.draft_length == 0);
    CHECK(l.spec.n_probes > 0);
    printf("controller: a useless draft verified %lld times in %d tokens (%lld probes); prompt lookup %lld times "
           "(%lld probes)\n", (long long)o.spec.n_verified, o.n, (long long)o.spec.n_probes,
           (long long)l.spec.n_verified, (long long)l.spec.n_probes);
}

/* Settings out of range and a draft model of another vocabulary are refused with messages that say why. */
static void test_errors(loaded *t, loaded *draft, const char *draft_path) {
    tnd_session *s = NULL;
    if (!CHECK_OK(tnd_session_init(t->ctx, t->tok, 0, 0, &s))) return;
    tnd_speculation_params p = drafting(draft, 1, 0, 0.5f);
    CHECK(tnd_session_set_speculation(s, &p) == TND_ERR_INVALID_ARGUMENT && strstr(tnd_last_error(), "draft_max"));
    p = drafting(draft, 1, 8, 1.5f);
    CHECK(tnd_session_set_speculation(s, &p) == TND_ERR_INVALID_ARGUMENT && strstr(tnd_last_error(), "p_min"));
    p = drafting(t, 1, 8, 0.5f);
    CHECK(tnd_session_set_speculation(s, &p) == TND_ERR_INVALID_ARGUMENT && strstr(tnd_last_error(), "own"));
    p = drafting(draft, 1, 8, 0.5f);
    p.draft_seq = 5;
    CHECK(tnd_session_set_speculation(s, &p) == TND_ERR_INVALID_ARGUMENT && strstr(tnd_last_error(), "sequence 5"));
    p = ngram(1, 8);
    p.ngram_max = 40;
    CHECK(tnd_session_set_speculation(s, &p) == TND_ERR_INVALID_ARGUMENT && strstr(tnd_last_error(), "n-gram"));
    p.source = (tnd_draft_source)9;
    CHECK(tnd_session_set_speculation(s, &p) == TND_ERR_INVALID_ARGUMENT && strstr(tnd_last_error(), "source"));

    /* a copy of the draft with one token's string changed (same length, so the file stays valid) */
    size_t size = 0;
    uint8_t *bytes = tnd_test_read_file(draft_path, &size);
    uint8_t *at = NULL;
    for (size_t i = 0; bytes && !at && i + 5 <= size; i++)
        if (!memcmp(bytes + i, "<unk>", 5)) at = bytes + i;
    char path[] = "/tmp/tnd_vocab_XXXXXX";
    int fd = mkstemp(path);
    if (CHECK(at && fd >= 0)) {
        memcpy(at, "<unq>", 5);
        CHECK(write(fd, bytes, size) == (ssize_t)size);
        close(fd);
        loaded other;
        if (load(path, 64, 1, &other)) {
            p = drafting(&other, 1, 8, 0.5f);
            CHECK(tnd_session_set_speculation(s, &p) == TND_ERR_INVALID_ARGUMENT &&
                  strstr(tnd_last_error(), "vocabulary") && strstr(tnd_last_error(), "<unq>"));
            printf("errors: %s\n", tnd_last_error());
        }
        unload(&other);
        remove(path);
    }
    free(bytes);
    /* a setting that failed leaves none; NULL turns speculation off */
    tnd_speculation_stats st;
    tnd_session_speculation_stats(s, &st);
    CHECK(st.source == TND_DRAFT_NONE);
    CHECK_OK(tnd_session_set_speculation(s, NULL));
    tnd_session_free(s);
}

int main(void) {
    char stories[1024], q4[] = "/tmp/tnd_stories_q4_XXXXXX", tiny[1024], tiny_q4[1024];
    snprintf(stories, sizeof stories, "%s", tnd_fixture("real/stories260K.gguf"));
    snprintf(tiny, sizeof tiny, "%s", tnd_fixture("models/llama-tiny-f32.gguf"));
    snprintf(tiny_q4, sizeof tiny_q4, "%s", tnd_fixture("models/llama-tiny-q4_0.gguf"));
    int fd = mkstemp(q4);
    if (fd >= 0) close(fd);
    if (!CHECK(fd >= 0) || !CHECK_OK(tnd_quantize_file(stories, q4, TND_FTYPE_Q4_0, 2, NULL, NULL)))
        return tnd_test_finish("test_speculate");

    loaded target, quantized, self, useless;
    if (load(stories, N_CTX, 3, &target) && load(q4, N_CTX, 2, &quantized) && load(stories, N_CTX, 1, &self) &&
        load(tiny, N_CTX, 1, &useless)) {
        tnd_speculation_params sources[] = {ngram(1, 16), ngram(0, 5), drafting(&quantized, 1, 16, 0.5f),
                                            drafting(&quantized, 0, 16, 0), drafting(&self, 0, 3, 0),
                                            drafting(&useless, 0, 4, 0)};
        test_identical_output(&target, "stories260K", sources, 6);
        test_ends(&target, &quantized);
        test_rollback_and_batching(&target, &quantized);
        test_draft_many(&target, &quantized);
        test_full_cache(stories, &quantized);
        test_distribution(&target, &quantized);
        test_controller(&target, &useless);
        test_errors(&target, &quantized, q4);
    }
    unload(&target);
    unload(&quantized);
    unload(&self);
    unload(&useless);
    remove(q4);

    /* the llama-tiny fixture (random weights) drafted by its Q4_0 file */
    loaded t32, t4;
    if (load(tiny, N_CTX, 1, &t32) && load(tiny_q4, N_CTX, 1, &t4)) {
        tnd_speculation_params sources[] = {ngram(0, 8), drafting(&t4, 0, 8, 0), drafting(&t4, 1, 16, 0.5f)};
        test_identical_output(&t32, "llama-tiny", sources, 3);
    }
    unload(&t32);
    unload(&t4);
    return tnd_test_finish("test_speculate");
}
