/* test_models.c: logits of every fixture model, dense and mixture-of-experts, against the references beside it
 * (llama.cpp's, and the exact float64 computation, where the fixture has them), greedy continuation against the
 * reference's, a mixture of experts' batch against its tokens one by one, and placement of layers on two devices. */
#include "harness.h"

#include "tandem.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const int32_t prompt[16] = {1, 403, 407, 261, 378, 436, 300, 290, 259, 268, 421, 375, 262, 266, 302, 431};
enum { N_PROMPT = 16, N_GREEDY = 32 };

typedef struct model_case {
    const char *name;     /* fixture base name */
    double max_llamacpp;  /* NMSE bound against llama.cpp */
} model_case;

/* Bounds from the fixtures' README: f32/f16 1e-5, bf16 1e-4, quantized 2e-3 against llama.cpp; 1e-5 against the
 * exact computation for every type, because tandem's reference path keeps activations in float. */
static const model_case cases[] = {
    {"llama-tiny-f32", 1e-5},     {"llama-tiny-f16", 1e-5},     {"llama-tiny-bf16", 1e-4},
    {"llama-tiny-q8_0", 2e-3},    {"llama-tiny-q4_0", 2e-3},    {"llama-tiny-q4_1", 2e-3},
    {"llama-tiny-q5_0", 2e-3},    {"llama-tiny-q5_1", 2e-3},    {"llama-tiny-q2_k", 2e-3},
    {"llama-tiny-q3_k_m", 2e-3},  {"llama-tiny-q4_k_m", 2e-3},  {"llama-tiny-q5_k_m", 2e-3},
    {"llama-tiny-q6_k", 2e-3},    {"llama3-tiny-f32", 1e-5},    {"llama3-tiny-q8_0", 2e-3},
    {"llama3-tiny-q4_k_m", 2e-3}, {"qwen2-tiny-f32", 1e-5},     {"qwen2-tiny-q8_0", 2e-3},
    {"qwen2-tiny-q4_k_m", 2e-3},  {"qwen3-tiny-f32", 1e-5},     {"qwen3-tiny-q8_0", 2e-3},
    {"qwen3-tiny-q4_k_m", 2e-3},  {"qwen2moe-tiny-f32", 1e-5},  {"qwen2moe-tiny-q8_0", 2e-3},
    {"qwen2moe-tiny-q4_k_m", 2e-3}, {"mixtral-tiny-f32", 1e-5}, {"mixtral-tiny-q8_0", 2e-3},
    {"mixtral-tiny-q4_k_m", 2e-3}, {"qwen3moe-tiny-f32", 1e-5},
};
static const double max_exact = 1e-5;
static const double max_exact_quantized_activations = 2e-3;

/* The fixture's reference of one kind ("ref-exact", "ref-llamacpp") and the file's suffix, or NULL where the
 * fixture has none (the MoE files have only the references their README lists). */
static const char *reference(const char *model, const char *kind, const char *suffix, char *path, size_t cap) {
    char relative[256];
    snprintf(relative, sizeof relative, "models/%s.%s.%s", model, kind, suffix);
    snprintf(path, cap, "%s", tnd_fixture(relative));
    FILE *f = fopen(path, "rb");
    if (f) fclose(f);
    return f ? path : NULL;
}



static int32_t argmax(const float *v, int32_t n) {
    int32_t best = 0;
    for (int32_t i = 1; i < n; i++)
        if (v[i] > v[best]) best = i;
    return best;
}

/* Runs the prompt with logits for every position into out [16][n_vocab]. */
static bool run_prompt(tnd_context *ctx, int32_t seq, float *out, int32_t n_vocab) {
    int32_t pos[N_PROMPT], seqs[N_PROMPT];
    int8_t want[N_PROMPT];
    for (int i = 0; i < N_PROMPT; i++) {
        pos[i] = i;
        seqs[i] = seq;
        want[i] = 1;
    }
    tnd_batch b = {.n_tokens = N_PROMPT, .tokens = prompt, .pos = pos, .seq_id = seqs, .logits = want};
    if (!CHECK_OK(tnd_context_decode(ctx, &b))) return false;
    for (int i = 0; i < N_PROMPT; i++) memcpy(out + (size_t)i * n_vocab, tnd_context_logits(ctx, i), sizeof(float) * n_vocab);
    return true;
}

/* Greedy steps after the prompt against llama.cpp's, teacher-forced: every step feeds the reference's token, so
 * every step of the file is compared on the same history. Up to the reference's first near-tie (margin < 0.1) the
 * tokens must be equal (the fixtures' rule); after it, a step fails when the two disagree clearly: the reference's
 * margin and ours over the reference's token both at least 0.1 (a quantized model's logits differ from llama.cpp's
 * by a few hundredths, so later steps meet near-ties on our side too). A file whose first step is a near-tie is
 * thus still checked. */
static void check_greedy(tnd_context *ctx, const char *name, const float *last_logits, int32_t n_vocab) {
    char path[512];
    const char *file = reference(name, "ref-llamacpp", "greedy.txt", path, sizeof path);
    if (!file) file = reference(name, "ref-exact", "greedy.txt", path, sizeof path);
    FILE *f = file ? fopen(file, "r") : NULL;
    if (!CHECK(f != NULL)) return;
    const float *last = last_logits;
    int equal_prefix = 0, bad_prefix = 0, clear = 0, disagree = 0, skipped = 0;
    bool in_prefix = true;
    char line[256];
    for (int step = 0; step < N_GREEDY && fgets(line, sizeof line, f);) {
        int ref_token;
        double margin;
        if (line[0] == '#') continue; /* header comments */
        if (sscanf(line, "%d %lf", &ref_token, &margin) != 2 || ref_token < 0 || ref_token >= n_vocab) break;
        int32_t token = argmax(last, n_vocab);
        double ours = (double)last[token] - last[ref_token]; /* 0 when we agree */
        if (margin < 0.1) in_prefix = false;
        if (in_prefix) {
            equal_prefix += token == ref_token;
            bad_prefix += token != ref_token;
            if (token != ref_token)
                fprintf(stderr, "%s: greedy step %d: token %d, reference %d (margin %.3f), before any near-tie\n", name,
                        step, token, ref_token, margin);
        } else if (margin >= 0.1 && ours >= 0.1) {
            disagree++;
            fprintf(stderr, "%s: greedy step %d: token %d, reference %d (its margin %.3f, ours %.3f)\n", name, step,
                    token, ref_token, margin, ours);
        } else if (margin >= 0.1) {
            clear += token == ref_token;
            skipped += token != ref_token;
        } else {
            skipped++;
        }
        int32_t pos = N_PROMPT + step, next = ref_token;
        tnd_batch b = {.n_tokens = 1, .tokens = &next, .pos = &pos};
        if (!CHECK_OK(tnd_context_decode(ctx, &b))) break;
        last = tnd_context_logits(ctx, 0);
        step++;
    }
    fclose(f);
    CHECK(bad_prefix == 0 && disagree == 0 && equal_prefix + clear > 0);
    printf("  greedy: %d steps equal before the first near-tie, %d equal after it (reference tokens fed back), %d "
           "near-ties skipped, %d clear disagreements\n",
           equal_prefix, clear, skipped, disagree + bad_prefix);
}

static void test_model(const model_case *c) {
    char path[256];
    snprintf(path, sizeof path, "models/%s.gguf", c->name);
    tnd_model *m = NULL;
    if (!CHECK_OK(tnd_model_open(tnd_fixture(path), NULL, &m))) return;
    tnd_context_params p = tnd_context_default_params();
    p.n_ctx = 256;
    p.n_threads = 2;
    p.kv_type = TND_TYPE_F32; /* exact math first: reference kernels, float activations, F32 cache */
    p.kernels = TND_KERNELS_REFERENCE;
    tnd_context *ctx = NULL;
    if (!CHECK_OK(tnd_context_init(m, &p, &ctx))) {
        tnd_model_close(m);
        return;
    }
    int32_t n_vocab = tnd_model_n_vocab(m);
    size_t n = (size_t)N_PROMPT * n_vocab;
    float *ours = malloc(n * sizeof(float)), *ours_f16 = malloc(n * sizeof(float));
    char file[512];
    float *exact = tnd_test_read_floats(reference(c->name, "ref-exact", "logits.f32", file, sizeof file), n);
    float *llamacpp = tnd_test_read_floats(reference(c->name, "ref-llamacpp", "logits.f32", file, sizeof file), n);
    const float *best_ref = llamacpp ? llamacpp : exact; /* what the fast path's argmax is compared with */
    if (CHECK(exact || llamacpp) && run_prompt(ctx, 0, ours, n_vocab)) {
        double e = exact ? tnd_test_nmse(ours, exact, n) : NAN;
        /* then as users run it: the fastest kernels and the F16 cache, against llama.cpp and the exact math */
        tnd_context *ctx16 = NULL;
        p.kv_type = TND_TYPE_F16;
        p.kernels = TND_KERNELS_BEST;
        double l = NAN, e_best = NAN;
        if (CHECK_OK(tnd_context_init(m, &p, &ctx16)) && run_prompt(ctx16, 0, ours_f16, n_vocab)) {
            if (llamacpp) l = tnd_test_nmse(ours_f16, llamacpp, n);
            if (exact) e_best = tnd_test_nmse(ours_f16, exact, n);
        }
        int agree = 0;
        for (int i = 0; i < N_PROMPT; i++)
            agree += argmax(ours_f16 + (size_t)i * n_vocab, n_vocab) == argmax(best_ref + (size_t)i * n_vocab, n_vocab);
        printf("%-20s reference kernels: NMSE vs exact %.3g | best kernels: vs llama.cpp %.3g, vs exact %.3g,"
               " argmax = %s %d/16\n", c->name, e, l, e_best, llamacpp ? "llama.cpp" : "exact", agree);
        CHECK(!exact || e <= max_exact);
        CHECK(!llamacpp || l <= c->max_llamacpp);
        CHECK(!exact || e_best <= max_exact_quantized_activations);
        if (ctx16) check_greedy(ctx16, c->name, ours_f16 + (size_t)(N_PROMPT - 1) * n_vocab, n_vocab);
        tnd_context_free(ctx16);
    }
    free(ours);
    free(ours_f16);
    free(exact);
    free(llamacpp);
    tnd_context_free(ctx);
    tnd_model_close(m);
}

/* Counts progress calls: the last `done` and `total`, and how many named cpu1. */
typedef struct progress_count {
    uint64_t done, total, calls, on_cpu1;
} progress_count;

static void count_progress(void *user, const char *what, uint64_t done, uint64_t total) {
    progress_count *c = user;
    c->calls++;
    c->on_cpu1 += strstr(what, " on cpu1") != NULL;
    CHECK(done == c->calls && done <= total);
    c->done = done;
    c->total = total;
}

/* The same model placed on two CPU devices gives the same logits: by layer ranges (layer 0 on one, layer 1 on the
 * other), and by tensor groups alternating between the devices (embedding on the second, then attention on the
 * first and feed-forward on the second in every layer, output on the first: a hand-over at every group). */
static void test_two_devices(void) {
    tnd_model *m = NULL;
    if (!CHECK_OK(tnd_model_open(tnd_fixture("models/qwen2-tiny-q8_0.gguf"), NULL, &m))) return;
    tnd_context_params p = tnd_context_default_params();
    p.n_ctx = 64;
    tnd_context *one = NULL, *two = NULL;
    CHECK_OK(tnd_context_init(m, &p, &one));
    p.n_devices = 2;
    CHECK_OK(tnd_context_init(m, &p, &two));
    int32_t layers[2] = {2, 0};
    p.layers_per_device = layers;
    tnd_context *bad = NULL, *mixed = NULL;
    CHECK(tnd_context_init(m, &p, &bad) == TND_ERR_INVALID_ARGUMENT && bad == NULL);
    p.layers_per_device = NULL;
    int32_t groups[64];
    int32_t n_groups = tnd_model_n_groups(m);
    for (int32_t g = 0; g < n_groups && g < 64; g++) groups[g] = g % 2 == 0 ? 1 : 0;
    p.group_device = groups;
    p.n_groups = n_groups;
    progress_count loaded = {0}; /* and the load reports each group as it is ready, on its device */
    p.progress = count_progress;
    p.progress_user = &loaded;
    CHECK(n_groups == 6 && tnd_context_init(m, &p, &mixed) == TND_OK);
    CHECK(loaded.calls == 6 && loaded.done == 6 && loaded.total == 6 && loaded.on_cpu1 == 3);
    p.progress = NULL;
    for (int32_t g = 0; g < n_groups; g++) groups[g] = 0; /* device 1 would hold nothing */
    CHECK(tnd_context_init(m, &p, &bad) == TND_ERR_INVALID_ARGUMENT && strstr(tnd_last_error(), "no tensor group"));
    if (one && two && mixed) {
        int32_t nv = tnd_model_n_vocab(m);
        float *a = malloc(sizeof(float) * N_PROMPT * nv), *b = malloc(sizeof(float) * N_PROMPT * nv);
        CHECK(run_prompt(one, 0, a, nv) && run_prompt(two, 0, b, nv));
        CHECK(memcmp(a, b, sizeof(float) * N_PROMPT * nv) == 0);
        CHECK(run_prompt(mixed, 0, b, nv) && memcmp(a, b, sizeof(float) * N_PROMPT * nv) == 0);
        free(a);
        free(b);
    }
    tnd_context_free(one);
    tnd_context_free(two);
    tnd_context_free(mixed);
    tnd_model_close(m);
}

/* KV cache types, K and V alike and mixed, against the exact logits (F32 cache, reference kernels): each within its
 * bound. The bounds are the error of the fast kernels plus what the cache's rounding adds, measured on these models
 * (F16 1.3e-7, Q8_0 1.1e-4, Q4_0 2.6e-2: 4 bits per value cost what published methods report) with room to spare. */
static void test_kv_types(void) {
    static const char *const names[] = {"llama-tiny-f32", "qwen3-tiny-f32"};
    static const struct {
        tnd_type k, v;
        double bound;
    } kinds[] = {{TND_TYPE_F16, TND_TYPE_F16, 2e-5},   {TND_TYPE_Q8_0, TND_TYPE_Q8_0, 1e-3},
                 {TND_TYPE_Q4_0, TND_TYPE_Q4_0, 1e-1}, {TND_TYPE_Q8_0, TND_TYPE_F16, 1e-3},
                 {TND_TYPE_F16, TND_TYPE_Q4_0, 1e-1}};
    for (size_t mi = 0; mi < sizeof names / sizeof names[0]; mi++) {
        char path[256];
        snprintf(path, sizeof path, "models/%s.gguf", names[mi]);
        tnd_model *m = NULL;
        if (!CHECK_OK(tnd_model_open(tnd_fixture(path), NULL, &m))) continue;
        tnd_context_params p = tnd_context_default_params();
        p.n_ctx = 64;
        p.n_threads = 2;
        tnd_context *ctx = NULL;
        CHECK_OK(tnd_context_init(m, &p, &ctx)); /* binds the model, for n_vocab */
        tnd_context_free(ctx);
        int32_t n_vocab = tnd_model_n_vocab(m);
        size_t n = (size_t)N_PROMPT * n_vocab;
        snprintf(path, sizeof path, "models/%s.ref-exact.logits.f32", names[mi]);
        float *exact = tnd_test_read_floats(tnd_fixture(path), n), *ours = malloc(n * sizeof(float));
        for (size_t k = 0; exact && k < sizeof kinds / sizeof kinds[0]; k++) {
            p.k_type = kinds[k].k;
            p.v_type = kinds[k].v;
            ctx = NULL;
            if (CHECK_OK(tnd_context_init(m, &p, &ctx)) && run_prompt(ctx, 0, ours, n_vocab)) {
                double e = tnd_test_nmse(ours, exact, n);
                printf("%-16s KV %s K %s V: NMSE vs exact %.3g (bound %.0e)\n", names[mi], tnd_type_name(kinds[k].k),
                       tnd_type_name(kinds[k].v), e, kinds[k].bound);
                CHECK(e <= kinds[k].bound);
            }
            tnd_context_free(ctx);
        }
        free(exact);
        free(ours);
        tnd_model_close(m);
    }
}

/* A context whose KV cache cannot fit the machine is refused before anything is allocated, with what needs how
 * much. */
static void test_too_large(void) {
    tnd_model *m = NULL;
    if (!CHECK_OK(tnd_model_open(tnd_fixture("models/qwen2-tiny-q8_0.gguf"), NULL, &m))) return;
    tnd_context_params p = tnd_context_default_params();
    p.n_ctx = 1 << 30;
    tnd_context *ctx = NULL;
    CHECK(tnd_context_init(m, &p, &ctx) == TND_ERR_OUT_OF_MEMORY && !ctx);
    CHECK(strstr(tnd_last_error(), "does not fit") && strstr(tnd_last_error(), "KV cache"));
    tnd_model_close(m);
}

/* A context needs a model. (Architectures tandem cannot run are refused with their name: test_moe.) */
static void test_no_model(void) {
    tnd_context *ctx = NULL;
    CHECK(tnd_context_init(NULL, NULL, &ctx) == TND_ERR_INVALID_ARGUMENT);
}

int main(int argc, char **argv) {
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        if (argc < 2 || strstr(cases[i].name, argv[1])) test_model(&cases[i]);
    test_two_devices();
    test_too_large();
    test_kv_types();
    test_no_model();
    return tnd_test_finish("test_models");
}
