/* test_sampler.c: the sampler against independent references: greedy is the argmax, seeds reproduce, draws follow
 * softmax(logits / T) by a chi-square test, top-k / top-p / min-p keep exactly the tokens they should (also at a
 * 152k vocabulary), penalties and bias change exactly the tokens they name by the documented formulas, NaN logits
 * are never drawn, bad parameters are named, and sampling allocates nothing per call. */
#include "harness.h"

#include "tandem.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---------------------------------------------------------------------------------------------------------------
 * Test helpers: an independent random source for logits, reference softmax and chi-square
 * ------------------------------------------------------------------------------------------------------------- */

static uint64_t test_rng = 0x2545f4914f6cdd1dull;

static uint32_t test_rand(void) {
    test_rng ^= test_rng << 13;
    test_rng ^= test_rng >> 7;
    test_rng ^= test_rng << 17;
    return (uint32_t)(test_rng >> 32);
}

/* Roughly normal logits (sum of uniforms) scaled by `scale`. */
static void random_logits(float *out, int32_t n, float scale) {
    for (int32_t i = 0; i < n; i++) {
        double s = 0.0;
        for (int j = 0; j < 4; j++) s += (double)test_rand() / 4294967296.0;
        out[i] = (float)((s - 2.0) * scale);
    }
}

/* softmax(logits / temperature) in double over the tokens with keep[i] (NULL = all). */
static void ref_softmax(const float *logits, int32_t n, double temperature, const int8_t *keep, double *out) {
    double max = -INFINITY, sum = 0.0;
    for (int32_t i = 0; i < n; i++)
        if ((!keep || keep[i]) && logits[i] > max) max = logits[i];
    for (int32_t i = 0; i < n; i++) {
        out[i] = (!keep || keep[i]) ? exp(((double)logits[i] - max) / temperature) : 0.0;
        sum += out[i];
    }
    for (int32_t i = 0; i < n; i++) out[i] /= sum;
}

/* Pearson chi-square of observed counts against expected probabilities (bins with p = 0 must stay empty). */
static double chi_square(const int64_t *counts, const double *p, int32_t n, int64_t draws) {
    double chi = 0.0;
    for (int32_t i = 0; i < n; i++) {
        if (p[i] == 0.0) {
            if (counts[i]) return INFINITY;
            continue;
        }
        double e = p[i] * (double)draws, d = (double)counts[i] - e;
        chi += d * d / e;
    }
    return chi;
}

/* Upper 0.1% points of the chi-square distribution (table values) by degrees of freedom. */
static double chi_square_limit(int df) {
    static const double limit[] = {0, 10.83, 13.82, 16.27, 18.47, 20.52, 22.46, 24.32, 26.12, 27.88, 29.59};
    return df >= 1 && df <= 10 ? limit[df] : INFINITY;
}

static tnd_sampler_params plain_params(float temperature, uint64_t seed) {
    tnd_sampler_params p = tnd_sampler_default_params();
    p.temperature = temperature;
    p.top_k = 0;
    p.top_p = 1.0f;
    p.min_p = 0.0f;
    p.seed = seed;
    return p;
}

static tnd_sampler *make(const tnd_sampler_params *p, int32_t n_vocab) {
    tnd_sampler *s = NULL;
    CHECK_OK(tnd_sampler_init(p, n_vocab, &s));
    return s;
}

/* Which tokens the sampler's last final distribution kept (finite log-probability), via tnd_sampler_logprobs. */
static int32_t kept_set(const tnd_sampler *s, int32_t n_vocab, int8_t *kept) {
    tnd_token_logprob *top = malloc(sizeof *top * (size_t)n_vocab);
    int32_t n = 0;
    memset(kept, 0, (size_t)n_vocab);
    if (CHECK_OK(tnd_sampler_logprobs(s, 0, NULL, top, n_vocab, &n)))
        for (int32_t i = 0; i < n; i++) kept[top[i].token] = 1;
    free(top);
    return n;
}

/* ---------------------------------------------------------------------------------------------------------------
 * Tests
 * ------------------------------------------------------------------------------------------------------------- */

static void expect_invalid(const tnd_sampler_params *p, int32_t n_vocab, const char *name) {
    static char not_null;
    tnd_sampler *s = (tnd_sampler *)(void *)&not_null; /* init must set it to NULL */
    tnd_status st = tnd_sampler_init(p, n_vocab, &s);
    bool ok = st == TND_ERR_INVALID_ARGUMENT && s == NULL && strstr(tnd_last_error(), name) != NULL;
    if (!CHECK(ok)) fprintf(stderr, "  expected an error naming '%s', got %s: %s\n", name, tnd_status_name(st),
                            tnd_last_error());
    if (st == TND_OK) tnd_sampler_free(s);
}

static void test_invalid_params(void) {
    const tnd_sampler_params base = plain_params(1.0f, 1);
    tnd_sampler_params p;
#define BAD(field, value, name)                                                                                     \
    do {                                                                                                            \
        p = base;                                                                                                   \
        p.field = value;                                                                                            \
        expect_invalid(&p, 100, name);                                                                              \
    } while (0)
    BAD(temperature, -0.5f, "temperature");
    BAD(temperature, NAN, "temperature");
    BAD(temperature, INFINITY, "temperature");
    BAD(top_p, 0.0f, "top_p");
    BAD(top_p, 1.01f, "top_p");
    BAD(top_p, NAN, "top_p");
    BAD(top_p, -0.3f, "top_p");
    BAD(min_p, -0.1f, "min_p");
    BAD(min_p, 1.5f, "min_p");
    BAD(min_p, NAN, "min_p");
    BAD(top_k, -1, "top_k");
    BAD(penalty_last_n, -2, "penalty_last_n");
    BAD(repeat_penalty, 0.0f, "repeat_penalty");
    BAD(repeat_penalty, NAN, "repeat_penalty");
    BAD(presence_penalty, NAN, "presence_penalty");
    BAD(frequency_penalty, INFINITY, "frequency_penalty");
#undef BAD
    tnd_logit_bias bad_token = {100, 1.0f}, nan_bias = {3, NAN};
    p = base;
    p.logit_bias = &bad_token;
    p.n_logit_bias = 1;
    expect_invalid(&p, 100, "logit_bias[0].token");
    p.logit_bias = &nan_bias;
    expect_invalid(&p, 100, "logit_bias[0].bias");
    p = base;
    expect_invalid(&p, 0, "n_vocab");
    tnd_sampler *s = NULL;
    CHECK(tnd_sampler_init(NULL, 10, &s) == TND_ERR_INVALID_ARGUMENT && s == NULL);
    /* boundary values that are valid */
    p = base;
    p.top_p = 1.0f;
    p.min_p = 1.0f;
    p.temperature = 0.0f;
    p.penalty_last_n = -1;
    s = make(&p, 10);
    int32_t tok = 0;
    float logits[10] = {0};
    CHECK(s && tnd_sampler_sample(s, NULL, &tok) == TND_ERR_INVALID_ARGUMENT && tok == -1);
    CHECK(s && tnd_sampler_accept(s, 10) == TND_ERR_INVALID_ARGUMENT);
    CHECK(s && tnd_sampler_accept(s, -1) == TND_ERR_INVALID_ARGUMENT);
    CHECK(s && tnd_sampler_logprobs(s, 0, NULL, NULL, 0, NULL) == TND_ERR_INVALID_ARGUMENT); /* nothing sampled */
    CHECK(s && tnd_sampler_sample(s, logits, &tok) == TND_OK && tok == 0);
    tnd_sampler_free(s);
    tnd_sampler_free(NULL);
}

static void test_greedy(void) {
    enum { N = 1000 };
    float logits[N];
    tnd_sampler_params p = plain_params(0.0f, 1), q = plain_params(0.0f, 99);
    p.top_k = 3; /* filters do not matter for greedy */
    q.top_p = 0.5f;
    tnd_sampler *s = make(&p, N), *t = make(&q, N);
    if (!s || !t) goto done;
    int agree = 0;
    for (int trial = 0; trial < 50; trial++) {
        random_logits(logits, N, 3.0f);
        int32_t expect = 0;
        for (int32_t i = 1; i < N; i++)
            if (logits[i] > logits[expect]) expect = i;
        int32_t a = -1, b = -1;
        CHECK_OK(tnd_sampler_sample(s, logits, &a));
        CHECK_OK(tnd_sampler_sample(t, logits, &b));
        agree += a == expect && b == expect;
    }
    CHECK(agree == 50);
    /* ties go to the lowest id */
    for (int32_t i = 0; i < N; i++) logits[i] = -1.0f;
    logits[700] = logits[3] = logits[512] = 2.5f;
    int32_t tok = -1;
    CHECK_OK(tnd_sampler_sample(s, logits, &tok));
    CHECK(tok == 3);
    float lp = 1.0f;
    CHECK_OK(tnd_sampler_logprobs(s, 3, &lp, NULL, 0, NULL));
    CHECK(lp == 0.0f);
    CHECK_OK(tnd_sampler_logprobs(s, 700, &lp, NULL, 0, NULL));
    CHECK(lp == -INFINITY);
    /* tiny (even subnormal) temperatures sample the argmax and never produce NaN probabilities */
    const float tiny[2] = {1e-30f, 1e-39f};
    random_logits(logits, N, 3.0f);
    int32_t expect = 0;
    for (int32_t i = 1; i < N; i++)
        if (logits[i] > logits[expect]) expect = i;
    for (int which = 0; which < 2; which++) {
        tnd_sampler_params cold = plain_params(tiny[which], 5);
        tnd_sampler *c = make(&cold, N);
        int hits = 0;
        for (int d = 0; c && d < 200; d++) hits += tnd_sampler_sample(c, logits, &tok) == TND_OK && tok == expect;
        CHECK(hits == 200);
        tnd_sampler_free(c);
    }
done:
    tnd_sampler_free(s);
    tnd_sampler_free(t);
}

/* Draws n tokens, accepting each, into out. */
static void draw_sequence(tnd_sampler *s, const float *logits, int32_t n, int32_t *out) {
    for (int32_t i = 0; i < n; i++) {
        out[i] = -1;
        CHECK_OK(tnd_sampler_sample(s, logits, &out[i]));
        CHECK_OK(tnd_sampler_accept(s, out[i]));
    }
}

static void test_seeds(void) {
    enum { N = 300, STEPS = 500 };
    float logits[N];
    random_logits(logits, N, 2.0f);
    tnd_sampler_params p = tnd_sampler_default_params(); /* defaults: top-k 40, top-p, min-p */
    p.temperature = 1.2f;
    p.repeat_penalty = 1.1f;
    p.seed = 1234;
    tnd_sampler *a = make(&p, N), *b = make(&p, N);
    p.seed = 1235;
    tnd_sampler *c = make(&p, N);
    p.seed = TND_SAMPLER_SEED_RANDOM;
    tnd_sampler *r = make(&p, N);
    int32_t sa[STEPS], sb[STEPS], sc[STEPS], again[STEPS];
    if (!a || !b || !c || !r) goto done;
    draw_sequence(a, logits, STEPS, sa);
    draw_sequence(b, logits, STEPS, sb);
    draw_sequence(c, logits, STEPS, sc);
    CHECK(memcmp(sa, sb, sizeof sa) == 0);
    int differ = 0, distinct = 0;
    int8_t seen[N] = {0};
    for (int i = 0; i < STEPS; i++) {
        differ += sa[i] != sc[i];
        distinct += !seen[sa[i]];
        seen[sa[i]] = 1;
    }
    CHECK(differ > STEPS / 2);
    CHECK(distinct > 10); /* it really samples */
    tnd_sampler_reset(a);
    draw_sequence(a, logits, STEPS, again);
    CHECK(memcmp(sa, again, sizeof sa) == 0);
    /* a clock seed is reported and reproduces its sequence when given back explicitly */
    CHECK(tnd_sampler_seed(r) != TND_SAMPLER_SEED_RANDOM);
    p.seed = tnd_sampler_seed(r);
    tnd_sampler *r2 = make(&p, N);
    if (r2) {
        draw_sequence(r, logits, STEPS, sa);
        draw_sequence(r2, logits, STEPS, sb);
        CHECK(memcmp(sa, sb, sizeof sa) == 0);
    }
    tnd_sampler_free(r2);
done:
    tnd_sampler_free(a);
    tnd_sampler_free(b);
    tnd_sampler_free(c);
    tnd_sampler_free(r);
}

/* Draws `draws` tokens and returns the chi-square against expected probabilities p (no accept: no penalties). */
static double draw_chi_square(tnd_sampler *s, const float *logits, int32_t n, const double *p, int64_t draws) {
    int64_t counts[64] = {0};
    for (int64_t d = 0; d < draws; d++) {
        int32_t tok = -1;
        if (tnd_sampler_sample(s, logits, &tok) != TND_OK || tok < 0 || tok >= n) return INFINITY;
        counts[tok]++;
    }
    return chi_square(counts, p, n, draws);
}

static void test_distribution(void) {
    enum { N = 10, DRAWS = 20000 };
    const float logits[N] = {1.0f, 0.2f, -0.5f, 2.0f, 1.5f, 0.0f, -1.0f, 0.7f, 1.1f, -0.2f};
    const float temps[3] = {0.7f, 1.0f, 1.6f};
    for (int t = 0; t < 3; t++) {
        tnd_sampler_params prm = plain_params(temps[t], 42 + (uint64_t)t);
        tnd_sampler *s = make(&prm, N);
        if (!s) continue;
        double p[N], wrong[N];
        ref_softmax(logits, N, temps[t], NULL, p);
        double chi = draw_chi_square(s, logits, N, p, DRAWS);
        printf("  T=%.1f: chi-square %.2f over %d draws (df 9, 0.1%% limit %.2f)\n", (double)temps[t], chi, DRAWS,
               chi_square_limit(9));
        CHECK(chi < chi_square_limit(9));
        /* the test has power: the same draws judged against softmax at another temperature fail it */
        ref_softmax(logits, N, temps[t] * 1.5, NULL, wrong);
        tnd_sampler_reset(s);
        CHECK(draw_chi_square(s, logits, N, wrong, DRAWS) > 10 * chi_square_limit(9));
        /* the reported final distribution is that softmax */
        tnd_token_logprob top[N];
        int32_t n = 0;
        CHECK_OK(tnd_sampler_logprobs(s, 0, NULL, top, N, &n));
        CHECK(n == N);
        double max_err = 0.0;
        for (int32_t i = 0; i < n; i++) max_err = fmax(max_err, fabs(top[i].logprob - log(p[top[i].token])));
        CHECK(max_err < 1e-5);
        CHECK(n == N && top[0].token == 3 && top[1].token == 4 && top[N - 1].token == 6);
        tnd_sampler_free(s);
    }
}

/* Reference: marks the k best logits (larger first, ties to the lower id). */
static const float *cmp_logits;
static int compare_desc(const void *a, const void *b) {
    int32_t i = *(const int32_t *)a, j = *(const int32_t *)b;
    if (cmp_logits[i] != cmp_logits[j]) return cmp_logits[i] > cmp_logits[j] ? -1 : 1;
    return i < j ? -1 : i > j;
}
static void ref_order(const float *logits, int32_t n, int32_t *order) {
    for (int32_t i = 0; i < n; i++) order[i] = i;
    cmp_logits = logits;
    qsort(order, (size_t)n, sizeof *order, compare_desc);
}

static void test_top_k(void) {
    enum { N = 5000, K = 10, DRAWS = 20000 };
    float *logits = malloc(sizeof(float) * N);
    int32_t *order = malloc(sizeof(int32_t) * N);
    int8_t *in_top = calloc(N, 1), *kept = malloc(N);
    random_logits(logits, N, 1.0f);
    ref_order(logits, N, order);
    for (int32_t i = 0; i < K; i++) in_top[order[i]] = 1;
    tnd_sampler_params prm = plain_params(3.0f, 7);
    prm.top_k = K;
    tnd_sampler *s = make(&prm, N);
    if (s) {
        int64_t counts[N] = {0};
        int outside = 0;
        for (int d = 0; d < DRAWS; d++) {
            int32_t tok = -1;
            CHECK_OK(tnd_sampler_sample(s, logits, &tok));
            if (tok >= 0 && tok < N) counts[tok]++;
            outside += tok < 0 || tok >= N || !in_top[tok];
        }
        CHECK(outside == 0);
        double p[N];
        ref_softmax(logits, N, 3.0, in_top, p);
        double chi = chi_square(counts, p, N, DRAWS);
        printf("  top-k %d of %d: %d draws outside, chi-square %.2f (df 9, limit %.2f)\n", K, N, outside, chi,
               chi_square_limit(9));
        CHECK(chi < chi_square_limit(9));
        CHECK(kept_set(s, N, kept) == K && memcmp(kept, in_top, N) == 0);
    }
    tnd_sampler_free(s);
    free(logits);
    free(order);
    free(in_top);
    free(kept);
}

/* A 152k vocabulary with many tied logits (values on a coarse grid, ids shuffled): for several k, top_p and min_p,
 * the kept set equals the reference computed by a full sort. */
static void test_large_vocab_filters(void) {
    enum { N = 151936 };
    float *logits = malloc(sizeof(float) * N);
    int32_t *order = malloc(sizeof(int32_t) * N);
    int8_t *expect = malloc(N), *kept = malloc(N);
    for (int32_t i = 0; i < N; i++) logits[i] = (float)(int)(test_rand() % 400) * 0.05f - 10.0f;
    ref_order(logits, N, order);
    const int32_t ks[] = {1, 2, 40, 1000, 50000, N - 1};
    int k_ok = 0;
    for (size_t t = 0; t < sizeof ks / sizeof ks[0]; t++) {
        tnd_sampler_params prm = plain_params(1.0f, 5);
        prm.top_k = ks[t];
        tnd_sampler *s = make(&prm, N);
        int32_t tok = -1;
        if (!s || !CHECK_OK(tnd_sampler_sample(s, logits, &tok))) {
            tnd_sampler_free(s);
            continue;
        }
        memset(expect, 0, N);
        for (int32_t i = 0; i < ks[t]; i++) expect[order[i]] = 1;
        k_ok += kept_set(s, N, kept) == ks[t] && memcmp(kept, expect, N) == 0 && expect[tok];
        tnd_sampler_free(s);
    }
    CHECK(k_ok == (int)(sizeof ks / sizeof ks[0]));
    /* top-p at temperature 1.3: reference cumulative sum in sorted order */
    const float top_ps[] = {0.05f, 0.3f, 0.77f, 0.95f, 0.999f};
    double *p = malloc(sizeof(double) * N);
    ref_softmax(logits, N, 1.3, NULL, p);
    int p_ok = 0;
    for (size_t t = 0; t < sizeof top_ps / sizeof top_ps[0]; t++) {
        tnd_sampler_params prm = plain_params(1.3f, 5);
        prm.top_p = top_ps[t];
        tnd_sampler *s = make(&prm, N);
        int32_t tok = -1;
        if (!s || !CHECK_OK(tnd_sampler_sample(s, logits, &tok))) {
            tnd_sampler_free(s);
            continue;
        }
        memset(expect, 0, N);
        double cum = 0.0;
        int32_t cut = 0;
        while (cut < N && cum < top_ps[t]) {
            cum += p[order[cut]];
            expect[order[cut++]] = 1;
        }
        /* a tie at the cut makes the boundary token's choice depend on ids only, which the order already fixes */
        int32_t n = kept_set(s, N, kept);
        bool same = n == cut && memcmp(kept, expect, N) == 0 && expect[tok];
        if (!same) fprintf(stderr, "  top_p %.3f: kept %d, reference %d\n", (double)top_ps[t], n, cut);
        p_ok += same;
        tnd_sampler_free(s);
    }
    CHECK(p_ok == (int)(sizeof top_ps / sizeof top_ps[0]));
    /* min-p at temperature 0.8: keep p >= min_p * p_max */
    tnd_sampler_params prm = plain_params(0.8f, 5);
    prm.min_p = 0.02f;
    tnd_sampler *s = make(&prm, N);
    int32_t tok = -1;
    if (s && CHECK_OK(tnd_sampler_sample(s, logits, &tok))) {
        double max = logits[order[0]];
        int32_t count = 0;
        for (int32_t i = 0; i < N; i++) {
            expect[i] = exp(((double)logits[i] - max) / 0.8) >= 0.02;
            count += expect[i];
        }
        CHECK(kept_set(s, N, kept) == count && memcmp(kept, expect, N) == 0);
        CHECK(count > 100 && count < N / 2);
    }
    tnd_sampler_free(s);
    free(p);
    free(logits);
    free(order);
    free(expect);
    free(kept);
}

/* Orderings that trouble naive quickselect (sorted both ways, all equal, organ pipe, few distinct values): top-k
 * through both selection paths and top-p keep exactly the reference sets. */
static void test_selection_patterns(void) {
    enum { N = 20000, PATTERNS = 5 };
    float *logits = malloc(sizeof(float) * N);
    int32_t *order = malloc(sizeof(int32_t) * N);
    int8_t *expect = malloc(N), *kept = malloc(N);
    double *p = malloc(sizeof(double) * N);
    const int32_t ks[] = {10, 2000, 5000, N - 1};
    int failures = 0, cases = 0;
    for (int pattern = 0; pattern < PATTERNS; pattern++) {
        for (int32_t i = 0; i < N; i++) {
            float v = pattern == 0 ? (float)i * 1e-3f                       /* ascending */
                      : pattern == 1 ? -(float)i * 1e-3f                    /* descending */
                      : pattern == 2 ? 0.5f                                 /* all equal: ids decide */
                      : pattern == 3 ? (float)(i < N / 2 ? i : N - i) * 1e-3f /* organ pipe */
                                     : (float)(i % 3);                      /* three values */
            logits[i] = v;
        }
        ref_order(logits, N, order);
        for (size_t t = 0; t < sizeof ks / sizeof ks[0]; t++) {
            tnd_sampler_params prm = plain_params(1.0f, 2);
            prm.top_k = ks[t];
            tnd_sampler *s = make(&prm, N);
            int32_t tok = -1;
            cases++;
            if (!s || tnd_sampler_sample(s, logits, &tok) != TND_OK) {
                failures++;
                tnd_sampler_free(s);
                continue;
            }
            memset(expect, 0, N);
            for (int32_t i = 0; i < ks[t]; i++) expect[order[i]] = 1;
            failures += !(kept_set(s, N, kept) == ks[t] && memcmp(kept, expect, N) == 0);
            tnd_sampler_free(s);
        }
        tnd_sampler_params prm = plain_params(1.0f, 2);
        prm.top_p = 0.6f;
        tnd_sampler *s = make(&prm, N);
        int32_t tok = -1;
        cases++;
        if (!s || tnd_sampler_sample(s, logits, &tok) != TND_OK) {
            failures++;
            tnd_sampler_free(s);
            continue;
        }
        ref_softmax(logits, N, 1.0, NULL, p);
        memset(expect, 0, N);
        double cum = 0.0;
        for (int32_t cut = 0; cut < N && cum < 0.6f; cut++) {
            cum += p[order[cut]];
            expect[order[cut]] = 1;
        }
        kept_set(s, N, kept);
        failures += memcmp(kept, expect, N) != 0;
        tnd_sampler_free(s);
    }
    printf("  selection patterns: %d cases, %d wrong kept sets\n", cases, failures);
    CHECK(failures == 0);
    free(logits);
    free(order);
    free(expect);
    free(kept);
    free(p);
}

/* Samples `draws` times and returns how many draws fell outside `allowed`; kept set must equal it too. */
static int draws_outside(tnd_sampler *s, const float *logits, int32_t n, const int8_t *allowed, int draws,
                         int8_t *seen) {
    int outside = 0;
    for (int d = 0; d < draws; d++) {
        int32_t tok = -1;
        CHECK_OK(tnd_sampler_sample(s, logits, &tok));
        if (tok < 0 || tok >= n || !allowed[tok]) outside++;
        else seen[tok] = 1;
    }
    return outside;
}

static void test_top_p_min_p_exact(void) {
    enum { N = 6 };
    /* probabilities 0.4, 0.3, 0.15, 0.1, 0.05 and 0 (banned by -inf), listed out of order */
    const double probs[N] = {0.1, 0.4, 0.05, 0.3, 0.0, 0.15};
    float logits[N];
    for (int i = 0; i < N; i++) logits[i] = probs[i] > 0 ? (float)log(probs[i]) : -INFINITY;
    struct {
        float top_p, min_p, temperature;
        int8_t allowed[N];
    } cases[] = {
        {0.8f, 0.0f, 1.0f, {0, 1, 0, 1, 0, 1}},  /* 0.4 + 0.3 = 0.7 < 0.8, + 0.15 = 0.85 */
        {0.35f, 0.0f, 1.0f, {0, 1, 0, 0, 0, 0}}, /* the best token alone already reaches it */
        {0.9f, 0.0f, 1.0f, {1, 1, 0, 1, 0, 1}},  /* 0.85 < 0.9 <= 0.95 */
        {1.0f, 0.3f, 1.0f, {0, 1, 0, 1, 0, 1}},  /* relative 1, .75, .375, .25, .125: keep >= 0.3 */
        {1.0f, 0.2f, 1.0f, {1, 1, 0, 1, 0, 1}},
        {1.0f, 0.3f, 0.5f, {0, 1, 0, 1, 0, 0}},  /* squared: 1, .5625, .14, .0625, .0156 */
        {0.7f, 0.2f, 1.0f, {0, 1, 0, 1, 0, 0}},  /* min-p keeps four, top-p of their 0.95: 0.4/0.95 + 0.3/0.95 */
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        tnd_sampler_params prm = plain_params(cases[c].temperature, 11 + c);
        prm.top_p = cases[c].top_p;
        prm.min_p = cases[c].min_p;
        tnd_sampler *s = make(&prm, N);
        if (!s) continue;
        int8_t seen[N] = {0}, kept[N];
        int outside = draws_outside(s, logits, N, cases[c].allowed, 5000, seen);
        CHECK(outside == 0);
        CHECK(memcmp(seen, cases[c].allowed, N) == 0); /* every allowed token does occur */
        CHECK(kept_set(s, N, kept) >= 1 && memcmp(kept, cases[c].allowed, N) == 0);
        /* the kept tokens carry the renormalized tempered probabilities */
        double ref[N];
        ref_softmax(logits, N, cases[c].temperature, cases[c].allowed, ref);
        double max_err = 0.0;
        for (int i = 0; i < N; i++) {
            float lp = 0.0f;
            CHECK_OK(tnd_sampler_logprobs(s, i, &lp, NULL, 0, NULL));
            max_err = fmax(max_err, ref[i] > 0 ? fabs(lp - log(ref[i])) : (lp == -INFINITY ? 0.0 : 1.0));
        }
        if (!CHECK(max_err < 1e-5)) fprintf(stderr, "  case %zu: log-probability error %g\n", c, max_err);
        tnd_sampler_free(s);
    }
}

/* Documented penalty formula, written out independently. */
static float ref_penalized(float l, int count, float repeat, float presence, float frequency) {
    if (count == 0) return l;
    double v = l > 0 ? (double)l / repeat : (double)l * repeat;
    return (float)(v - presence - (double)frequency * count);
}

/* Compares the sampler's final distribution (temperature 1, no filters) with softmax(expected logits). */
static double final_error(const tnd_sampler *s, const float *expected, int32_t n) {
    double ref[16], err = 0.0;
    ref_softmax(expected, n, 1.0, NULL, ref);
    for (int32_t i = 0; i < n; i++) {
        float lp = 0.0f;
        if (tnd_sampler_logprobs(s, i, &lp, NULL, 0, NULL) != TND_OK) return INFINITY;
        err = fmax(err, fabs(lp - log(ref[i])));
    }
    return err;
}

static void test_penalties(void) {
    enum { N = 8 };
    const float logits[N] = {2.0f, -1.0f, 1.5f, 0.5f, -0.3f, 3.0f, 0.0f, 1.0f};
    const float repeat = 1.3f, presence = 0.5f, frequency = 0.25f;
    tnd_sampler_params prm = plain_params(1.0f, 3);
    prm.repeat_penalty = repeat;
    prm.presence_penalty = presence;
    prm.frequency_penalty = frequency;
    prm.penalty_last_n = 4;
    tnd_sampler *s = make(&prm, N);
    if (!s) return;
    /* accepted 2 5 2 4 2 1: the window of 4 holds 2 4 2 1 (token 5 left it) */
    const int32_t history[] = {2, 5, 2, 4, 2, 1};
    for (int i = 0; i < 6; i++) CHECK_OK(tnd_sampler_accept(s, history[i]));
    int counts[N] = {0, 1, 2, 0, 1, 0, 0, 0};
    float expected[N];
    for (int i = 0; i < N; i++) expected[i] = ref_penalized(logits[i], counts[i], repeat, presence, frequency);
    int32_t tok = -1;
    CHECK_OK(tnd_sampler_sample(s, logits, &tok));
    double err = final_error(s, expected, N);
    printf("  penalties (window 4): max log-probability error %.2g\n", err);
    CHECK(err < 1e-5);
    /* the same check fails against the unpenalized logits: the penalty does act */
    CHECK(final_error(s, logits, N) > 0.1);
    /* four more tokens push every earlier one out of the window */
    for (int i = 0; i < 4; i++) CHECK_OK(tnd_sampler_accept(s, 7));
    memcpy(expected, logits, sizeof expected);
    expected[7] = ref_penalized(logits[7], 4, repeat, presence, frequency);
    CHECK_OK(tnd_sampler_sample(s, logits, &tok));
    CHECK(final_error(s, expected, N) < 1e-5);
    tnd_sampler_free(s);

    /* window -1: every accepted token since reset counts */
    prm.penalty_last_n = -1;
    s = make(&prm, N);
    if (!s) return;
    for (int i = 0; i < 300; i++) CHECK_OK(tnd_sampler_accept(s, i % 3 == 0 ? 5 : 1));
    memcpy(expected, logits, sizeof expected);
    expected[5] = ref_penalized(logits[5], 100, repeat, presence, frequency);
    expected[1] = ref_penalized(logits[1], 200, repeat, presence, frequency);
    CHECK_OK(tnd_sampler_sample(s, logits, &tok));
    CHECK(final_error(s, expected, N) < 1e-5);
    tnd_sampler_reset(s);
    CHECK_OK(tnd_sampler_sample(s, logits, &tok));
    CHECK(final_error(s, logits, N) < 1e-5);
    tnd_sampler_free(s);

    /* window 0 disables penalties; greedy with a strong repetition penalty moves off the repeated argmax */
    prm.penalty_last_n = 0;
    s = make(&prm, N);
    if (s) {
        CHECK_OK(tnd_sampler_accept(s, 5));
        CHECK_OK(tnd_sampler_sample(s, logits, &tok));
        CHECK(final_error(s, logits, N) < 1e-5);
    }
    tnd_sampler_free(s);
    prm = plain_params(0.0f, 3);
    prm.repeat_penalty = 2.0f;
    s = make(&prm, N);
    if (s) {
        CHECK_OK(tnd_sampler_sample(s, logits, &tok));
        CHECK(tok == 5);
        CHECK_OK(tnd_sampler_accept(s, 5)); /* 3.0 / 2 = 1.5 < 2.0 */
        CHECK_OK(tnd_sampler_sample(s, logits, &tok));
        CHECK(tok == 0);
    }
    tnd_sampler_free(s);
}

static void test_logit_bias(void) {
    enum { N = 8 };
    const float logits[N] = {2.0f, -1.0f, 1.5f, 0.5f, -0.3f, 3.0f, 0.0f, 1.0f};
    tnd_logit_bias bias[3] = {{5, -INFINITY}, {3, 1.5f}, {3, 0.25f}}; /* token 3 listed twice: +1.75 */
    tnd_sampler_params prm = plain_params(0.0f, 9);
    prm.logit_bias = bias;
    prm.n_logit_bias = 3;
    tnd_sampler *g = make(&prm, N);
    prm.temperature = 1.0f;
    tnd_sampler *s = make(&prm, N);
    bias[1].bias = 100.0f; /* the sampler copied the array: this must not matter */
    if (!g || !s) goto done;
    int32_t tok = -1;
    CHECK_OK(tnd_sampler_sample(g, logits, &tok));
    CHECK(tok == 3); /* 5 (3.0) is banned; 3 rises from 0.5 to 2.25, past 0 (2.0) */
    int8_t allowed[N] = {1, 1, 1, 1, 1, 0, 1, 1}, seen[N] = {0};
    CHECK(draws_outside(s, logits, N, allowed, 5000, seen) == 0);
    float expected[N];
    memcpy(expected, logits, sizeof expected);
    expected[3] += 1.75f;
    double ref[N];
    ref_softmax(expected, N, 1.0, allowed, ref);
    double err = 0.0;
    for (int i = 0; i < N; i++) {
        float lp = 0.0f;
        CHECK_OK(tnd_sampler_logprobs(s, i, &lp, NULL, 0, NULL));
        err = fmax(err, allowed[i] ? fabs(lp - log(ref[i])) : (lp == -INFINITY ? 0.0 : 1.0));
    }
    CHECK(err < 1e-5);
done:
    tnd_sampler_free(g);
    tnd_sampler_free(s);
    /* banning every token is an error, not a crash */
    tnd_logit_bias all[N];
    for (int i = 0; i < N; i++) all[i] = (tnd_logit_bias){i, -INFINITY};
    prm = plain_params(1.0f, 9);
    prm.logit_bias = all;
    prm.n_logit_bias = N;
    s = make(&prm, N);
    int32_t banned = 0;
    CHECK(s && tnd_sampler_sample(s, logits, &banned) == TND_ERR_INVALID_ARGUMENT && banned == -1);
    tnd_sampler_free(s);
}

static void test_nan_and_inf(void) {
    enum { N = 16 };
    float logits[N];
    random_logits(logits, N, 1.0f);
    logits[0] = NAN;
    logits[4] = NAN;
    logits[9] = -INFINITY;
    logits[11] = 50.0f; /* huge but finite: also NaN-free for the others */
    tnd_sampler_params g = plain_params(0.0f, 1), t = plain_params(1.5f, 1);
    tnd_sampler *sg = make(&g, N), *st = make(&t, N);
    if (!sg || !st) goto done;
    int32_t tok = -1;
    CHECK_OK(tnd_sampler_sample(sg, logits, &tok));
    CHECK(tok == 11);
    logits[11] = 1.0f;
    int8_t allowed[N], seen[N] = {0};
    for (int i = 0; i < N; i++) allowed[i] = i != 0 && i != 4 && i != 9;
    CHECK(draws_outside(st, logits, N, allowed, 5000, seen) == 0);
    CHECK(memcmp(seen, allowed, N) == 0);
    float lp = 0.0f;
    CHECK_OK(tnd_sampler_logprobs(st, 4, &lp, NULL, 0, NULL));
    CHECK(lp == -INFINITY);
    /* +inf logits share all the probability */
    logits[2] = INFINITY;
    logits[13] = INFINITY;
    int8_t inf_only[N] = {0};
    inf_only[2] = inf_only[13] = 1;
    memset(seen, 0, sizeof seen);
    CHECK(draws_outside(st, logits, N, inf_only, 2000, seen) == 0 && seen[2] && seen[13]);
    CHECK_OK(tnd_sampler_sample(sg, logits, &tok));
    CHECK(tok == 2);
    /* all NaN: an error with a message */
    for (int i = 0; i < N; i++) logits[i] = NAN;
    CHECK(tnd_sampler_sample(st, logits, &tok) == TND_ERR_INVALID_ARGUMENT && tok == -1);
    CHECK(tnd_sampler_sample(sg, logits, &tok) == TND_ERR_INVALID_ARGUMENT && strstr(tnd_last_error(), "NaN"));
    CHECK(tnd_logprobs(logits, N, 0, &lp, NULL, 0, NULL) == TND_ERR_INVALID_ARGUMENT);
done:
    tnd_sampler_free(sg);
    tnd_sampler_free(st);
}

static void test_raw_logprobs(void) {
    enum { N = 2000, TOP = 7 };
    float *logits = malloc(sizeof(float) * N);
    int32_t *order = malloc(sizeof(int32_t) * N);
    double *ref = malloc(sizeof(double) * N);
    random_logits(logits, N, 4.0f);
    logits[17] = NAN;
    logits[100] = logits[1500] = 9.0f; /* a tie at the top: lower id first */
    float clean[N];
    for (int i = 0; i < N; i++) clean[i] = isnan(logits[i]) ? -INFINITY : logits[i];
    ref_order(clean, N, order);
    ref_softmax(clean, N, 1.0, NULL, ref);
    tnd_token_logprob top[TOP];
    int32_t n = 0;
    float lp = 0.0f;
    CHECK_OK(tnd_logprobs(logits, N, 1234, &lp, top, TOP, &n));
    CHECK(n == TOP);
    CHECK(fabs(lp - log(ref[1234])) < 1e-5);
    double err = 0.0;
    int order_ok = 0;
    for (int i = 0; i < n; i++) {
        order_ok += top[i].token == order[i];
        err = fmax(err, fabs(top[i].logprob - log(ref[order[i]])));
    }
    CHECK(order_ok == TOP && top[0].token == 100 && top[1].token == 1500);
    CHECK(err < 1e-5);
    CHECK_OK(tnd_logprobs(logits, N, 17, &lp, NULL, 0, NULL));
    CHECK(lp == -INFINITY);
    /* more alternatives than tokens */
    tnd_token_logprob all[4];
    const float four[4] = {0.0f, 1.0f, 2.0f, 3.0f};
    CHECK_OK(tnd_logprobs(four, 3, 0, NULL, all, 4, &n));
    CHECK(n == 3 && all[0].token == 2 && all[2].token == 0);
    CHECK(tnd_logprobs(four, 4, 4, &lp, NULL, 0, NULL) == TND_ERR_INVALID_ARGUMENT);
    CHECK(tnd_logprobs(four, 4, 0, NULL, NULL, 2, NULL) == TND_ERR_INVALID_ARGUMENT);
    free(logits);
    free(order);
    free(ref);
}

/* Counting allocator: sampling must not allocate. */
static int alloc_calls;
static void *count_alloc(void *user, size_t size) {
    (void)user;
    alloc_calls++;
    return aligned_alloc(64, (size + 63) & ~(size_t)63);
}
static void count_free(void *user, void *ptr) {
    (void)user;
    free(ptr);
}

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void test_large_vocab_speed_and_allocation(void) {
    enum { N = 151936, STEPS = 100 };
    float *logits = malloc(sizeof(float) * N);
    random_logits(logits, N, 3.0f);
    struct {
        const char *name;
        int32_t top_k;
        float top_p, min_p;
    } configs[] = {
        {"defaults (top-k 40, top-p 0.95, min-p 0.05)", 40, 0.95f, 0.05f},
        {"top-p 0.95 only (worst case: flat logits)", 0, 0.95f, 0.0f},
        {"no filters", 0, 1.0f, 0.0f},
    };
    for (size_t c = 0; c < sizeof configs / sizeof configs[0]; c++) {
        tnd_sampler_params prm = plain_params(0.8f, 77);
        prm.top_k = configs[c].top_k;
        prm.top_p = configs[c].top_p;
        prm.min_p = configs[c].min_p;
        prm.repeat_penalty = 1.1f;
        prm.allocator = (tnd_allocator){count_alloc, count_free, NULL};
        alloc_calls = 0;
        tnd_sampler *s = make(&prm, N);
        if (!s) continue;
        int after_init = alloc_calls;
        double t0 = now_seconds();
        for (int i = 0; i < STEPS; i++) {
            int32_t tok = -1;
            CHECK_OK(tnd_sampler_sample(s, logits, &tok));
            CHECK_OK(tnd_sampler_accept(s, tok));
            logits[tok] -= 0.5f; /* vary the input a little */
        }
        double per_call = (now_seconds() - t0) / STEPS;
        CHECK(alloc_calls == after_init);
        printf("  n_vocab %d, %s: %.3f ms per sample+accept, %d allocations after init\n", N, configs[c].name,
               per_call * 1e3, alloc_calls - after_init);
        tnd_sampler_free(s);
    }
    free(logits);
}

int main(void) {
    test_invalid_params();
    test_greedy();
    test_seeds();
    test_distribution();
    test_top_k();
    test_large_vocab_filters();
    test_selection_patterns();
    test_top_p_min_p_exact();
    test_penalties();
    test_logit_bias();
    test_nan_and_inf();
    test_raw_logprobs();
    test_large_vocab_speed_and_allocation();
    return tnd_test_finish("test_sampler");
}
