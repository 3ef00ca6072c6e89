/* test_moe.c: mixture-of-experts models beyond their logits (test_models checks those against the references): a
 * prompt in one batch equals its tokens one by one, bit for bit, on every MoE fixture with the fast and the
 * reference kernels (the batch groups tokens by expert, one token alone does not); the experts placed on a second
 * device give the same logits; and files whose expert keys or tensors disagree are refused, naming the key or
 * tensor. */
#include "harness.h"

#include "gguf/gguf.h"
#include "tandem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { N_TOKENS = 48 };

static const char *const moe_fixtures[] = {"qwen2moe-tiny-f32", "qwen2moe-tiny-q4_k_m", "mixtral-tiny-q8_0",
                                           "mixtral-tiny-q4_k_m", "qwen3moe-tiny-f32"};

static tnd_model *open_fixture(const char *name) {
    char path[256];
    snprintf(path, sizeof path, "models/%s.gguf", name);
    tnd_model *m = NULL;
    return CHECK_OK(tnd_model_open(tnd_fixture(path), NULL, &m)) ? m : NULL;
}

/* A prompt of N_TOKENS ids: BOS, then a fixed pseudo-random walk over the vocabulary. */
static void make_prompt(int32_t *tokens, int32_t n_vocab) {
    uint32_t s = 12345;
    tokens[0] = 1;
    for (int i = 1; i < N_TOKENS; i++) {
        s = s * 1664525u + 1013904223u;
        tokens[i] = 3 + (int32_t)((s >> 8) % (uint32_t)(n_vocab - 3));
    }
}

/* Logits of every position of the prompt: [N_TOKENS][n_vocab], decoded in batches of `per` tokens. */
static float *decode_prompt(tnd_context *ctx, const int32_t *tokens, int per, int32_t n_vocab) {
    float *out = malloc(sizeof(float) * N_TOKENS * (size_t)n_vocab);
    for (int i0 = 0; i0 < N_TOKENS; i0 += per) {
        int n = N_TOKENS - i0 < per ? N_TOKENS - i0 : per;
        int32_t pos[N_TOKENS];
        int8_t want[N_TOKENS];
        for (int i = 0; i < n; i++) {
            pos[i] = i0 + i;
            want[i] = 1;
        }
        tnd_batch b = {.n_tokens = n, .tokens = tokens + i0, .pos = pos, .logits = want};
        if (!CHECK_OK(tnd_context_decode(ctx, &b))) {
            free(out);
            return NULL;
        }
        for (int i = 0; i < n; i++)
            memcpy(out + (size_t)(i0 + i) * n_vocab, tnd_context_logits(ctx, i), sizeof(float) * (size_t)n_vocab);
    }
    return out;
}

static float *run(tnd_model *m, tnd_kernels kernels, int n_devices, const int32_t *groups, const int32_t *tokens,
                  int per) {
    tnd_context_params p = tnd_context_default_params();
    p.n_ctx = 128;
    p.n_threads = 2;
    p.kernels = kernels;
    p.n_devices = n_devices;
    if (groups) {
        p.group_device = groups;
        p.n_groups = tnd_model_n_groups(m);
    }
    tnd_context *ctx = NULL;
    if (!CHECK_OK(tnd_context_init(m, &p, &ctx))) return NULL;
    float *out = decode_prompt(ctx, tokens, per, tnd_model_n_vocab(m));
    tnd_context_free(ctx);
    return out;
}

static void test_batch_equals_one_by_one(void) {
    for (size_t f = 0; f < sizeof moe_fixtures / sizeof moe_fixtures[0]; f++) {
        tnd_model *m = open_fixture(moe_fixtures[f]);
        if (!m) continue;
        int32_t n_vocab = tnd_model_n_vocab(m), tokens[N_TOKENS];
        make_prompt(tokens, n_vocab);
        size_t bytes = sizeof(float) * N_TOKENS * (size_t)n_vocab;
        for (int k = 0; k < 2; k++) {
            tnd_kernels kernels = k ? TND_KERNELS_REFERENCE : TND_KERNELS_BEST;
            float *batch = run(m, kernels, 1, NULL, tokens, N_TOKENS), *alone = run(m, kernels, 1, NULL, tokens, 1);
            float *mixed = run(m, kernels, 1, NULL, tokens, 5); /* chunks that end mid-way */
            bool same = batch && alone && mixed && !memcmp(batch, alone, bytes) && !memcmp(batch, mixed, bytes);
            if (!CHECK(same))
                fprintf(stderr, "%s (%s kernels): a batch differs from its tokens one by one\n", moe_fixtures[f],
                        k ? "reference" : "best");
            free(batch);
            free(alone);
            free(mixed);
        }
        tnd_model_close(m);
    }
    printf("batch = one by one, bit for bit: %zu MoE fixtures, best and reference kernels\n",
           sizeof moe_fixtures / sizeof moe_fixtures[0]);
}

/* Every layer's feed-forward block (its router and experts) on a second device, attention on the first. */
static void test_experts_on_another_device(void) {
    tnd_model *m = open_fixture("qwen2moe-tiny-q4_k_m");
    if (!m) return;
    int32_t n_vocab = tnd_model_n_vocab(m), tokens[N_TOKENS], groups[16];
    make_prompt(tokens, n_vocab);
    int32_t n_groups = tnd_model_n_groups(m);
    for (int32_t g = 0; g < n_groups && g < 16; g++) groups[g] = g > 0 && g < n_groups - 1 && g % 2 == 0;
    float *one = run(m, TND_KERNELS_BEST, 1, NULL, tokens, N_TOKENS);
    float *two = run(m, TND_KERNELS_BEST, 2, groups, tokens, N_TOKENS);
    CHECK(n_groups == 6 && one && two && !memcmp(one, two, sizeof(float) * N_TOKENS * (size_t)n_vocab));
    free(one);
    free(two);
    tnd_model_close(m);
}

/* ------------------------------------------------------------------------------------------------------------
 * Experts apart from their feed-forward group, with and without a cache of hot experts
 * ---------------------------------------------------------------------------------------------------------- */

/* A context with every group but the embedding on cpu1 and the experts on cpu0, a cache of `slots` (0: none) by
 * `policy`; NULL (a failed check) where it cannot be made. */
static tnd_context *apart_context(tnd_model *m, int32_t slots, int32_t policy) {
    int32_t groups[64], n_groups = tnd_model_n_groups(m);
    for (int32_t g = 0; g < n_groups && g < 64; g++) groups[g] = g > 0;
    tnd_context_params p = tnd_context_default_params();
    p.n_ctx = 128;
    p.n_threads = 2;
    p.n_devices = 2;
    p.group_device = groups;
    p.n_groups = n_groups;
    p.expert_device = 0;
    p.expert_cache_slots = slots;
    p.expert_cache_policy = policy;
    tnd_context *ctx = NULL;
    return CHECK(n_groups <= 64) && CHECK_OK(tnd_context_init(m, &p, &ctx)) ? ctx : NULL;
}

/* Logits of the prompt in batches of `per` on apart_context; the cache's figures into *stats, layer 0's slots into
 * held. */
static float *run_apart(tnd_model *m, const int32_t *tokens, int per, int32_t slots, int32_t policy,
                        tnd_expert_cache_stats *stats, int32_t *held) {
    tnd_context *ctx = apart_context(m, slots, policy);
    if (!ctx) return NULL;
    float *out = decode_prompt(ctx, tokens, per, tnd_model_n_vocab(m));
    tnd_context_expert_cache_stats(ctx, stats, 0);
    for (int32_t s = 0; s < slots; s++) held[s] = tnd_context_expert_cache_held(ctx, 0, s);
    tnd_context_free(ctx);
    return out;
}

/* The experts computed where they live, some of them in the cache: the same logits, bit for bit, as one device,
 * in one batch and token by token; the cache's figures add up. */
static void test_experts_apart(void) {
    static const char *const fixtures[] = {"qwen2moe-tiny-q4_k_m", "mixtral-tiny-q8_0", "qwen3moe-tiny-f32"};
    for (size_t f = 0; f < sizeof fixtures / sizeof fixtures[0]; f++) {
        tnd_model *m = open_fixture(fixtures[f]);
        if (!m) continue;
        int32_t n_vocab = tnd_model_n_vocab(m), tokens[N_TOKENS];
        make_prompt(tokens, n_vocab);
        size_t bytes = sizeof(float) * N_TOKENS * (size_t)n_vocab;
        int64_t n_layer = 0, used = 0, experts = 0;
        char key[96];
        const char *arch = NULL;
        size_t len = 0;
        tnd_model_meta_string(m, "general.architecture", &arch, &len);
        snprintf(key, sizeof key, "%.*s.block_count", (int)len, arch);
        tnd_model_meta_int(m, key, &n_layer);
        snprintf(key, sizeof key, "%.*s.expert_used_count", (int)len, arch);
        tnd_model_meta_int(m, key, &used);
        snprintf(key, sizeof key, "%.*s.expert_count", (int)len, arch);
        tnd_model_meta_int(m, key, &experts);
        for (int per = 1; per <= N_TOKENS; per += N_TOKENS - 1) {
            float *one = run(m, TND_KERNELS_BEST, 1, NULL, tokens, per);
            struct { int32_t slots, policy; } cases[] = {{0, TND_EXPERT_CACHE_LRU}, {1, TND_EXPERT_CACHE_LRU},
                                                         {2, TND_EXPERT_CACHE_LFU}, {3, TND_EXPERT_CACHE_LRU}};
            for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
                tnd_expert_cache_stats st;
                int32_t held[4] = {-1, -1, -1, -1};
                float *apart = run_apart(m, tokens, per, cases[c].slots, cases[c].policy, &st, held);
                if (!CHECK(one && apart && !memcmp(one, apart, bytes)))
                    fprintf(stderr, "%s, batches of %d, cache of %d (%s): the logits differ from one device's\n",
                            fixtures[f], per, cases[c].slots, cases[c].policy == TND_EXPERT_CACHE_LFU ? "LFU" : "LRU");
                uint64_t pairs = (uint64_t)(n_layer * N_TOKENS * used);
                if (cases[c].slots) {
                    /* one batch of the whole prompt may swap nothing: every expert was chosen in that one step */
                    CHECK(st.pairs == pairs && st.hits > 0 && st.hits < pairs && (per > 1 || st.swaps > 0) &&
                          (st.swaps > 0) == (st.bytes_moved > 0));
                    for (int32_t s = 0; s < cases[c].slots; s++) {
                        CHECK(held[s] >= 0 && held[s] < experts);
                        for (int32_t r = 0; r < s; r++) CHECK(held[r] != held[s]);
                    }
                    if (per == 1)
                        printf("%s, %d of %lld experts cached (%s), token by token: %llu of %llu pairs hit, "
                               "%llu swaps, %llu bytes moved\n", fixtures[f], cases[c].slots, (long long)experts,
                               cases[c].policy == TND_EXPERT_CACHE_LFU ? "LFU" : "LRU", (unsigned long long)st.hits,
                               (unsigned long long)st.pairs, (unsigned long long)st.swaps,
                               (unsigned long long)st.bytes_moved);
                } else {
                    CHECK(st.pairs == 0 && st.swaps == 0);
                }
                free(apart);
            }
            free(one);
        }
        tnd_model_close(m);
    }
}

/* The experts' device throttled (TANDEM_FAULT=slow:F@cpu0, every op of it F times as long), as a slow device
 * beside a fast one: the same logits with and without the cache, and the cache's pairs run where they are fast. */
static void test_throttled_home(void) {
    tnd_model *m = open_fixture("qwen2moe-tiny-q4_k_m");
    if (!m) return;
    int32_t n_vocab = tnd_model_n_vocab(m), tokens[N_TOKENS], held[2];
    make_prompt(tokens, n_vocab);
    tnd_expert_cache_stats st;
    float *one = run(m, TND_KERNELS_BEST, 1, NULL, tokens, 1);
    setenv("TANDEM_FAULT", "slow:4@cpu0", 1);
    float *none = run_apart(m, tokens, 1, 0, TND_EXPERT_CACHE_LFU, &st, held);
    float *cached = run_apart(m, tokens, 1, 2, TND_EXPERT_CACHE_LFU, &st, held);
    size_t bytes = sizeof(float) * N_TOKENS * (size_t)n_vocab;
    CHECK(one && none && cached && !memcmp(one, none, bytes) && !memcmp(one, cached, bytes) && st.hits > 0);
    setenv("TANDEM_FAULT", "slow:0@cpu0", 1); /* out of range: refused, naming the forms */
    tnd_context_params p = tnd_context_default_params();
    p.n_ctx = 64;
    tnd_context *ctx = NULL;
    CHECK(tnd_context_init(m, &p, &ctx) == TND_ERR_INVALID_ARGUMENT && strstr(tnd_last_error(), "slow:F@DEVICE"));
    tnd_context_free(ctx);
    unsetenv("TANDEM_FAULT");
    free(one);
    free(none);
    free(cached);
    tnd_model_close(m);
}

/* Each op of the experts' device failing in turn (TANDEM_FAULT=op:K@cpu0), the experts apart and cached: every decode
 * either reports the failure or gives the right logits, never wrong ones (an experts' device whose failure went
 * unreported would hand back rows it never computed). */
static void test_experts_apart_faults(void) {
    tnd_model *m = open_fixture("qwen2moe-tiny-q4_k_m");
    if (!m) return;
    int32_t n_vocab = tnd_model_n_vocab(m), tokens[N_TOKENS];
    make_prompt(tokens, n_vocab);
    size_t row = sizeof(float) * (size_t)n_vocab;
    float *want = run(m, TND_KERNELS_BEST, 1, NULL, tokens, N_TOKENS);
    int failed = 0, wrong = 0;
    for (int k = 1; k <= 40 && want; k++) {
        char spec[16];
        snprintf(spec, sizeof spec, "op:%d@cpu0", k); /* the experts' device alone */
        setenv("TANDEM_FAULT", spec, 1);
        tnd_context *ctx = apart_context(m, 2, TND_EXPERT_CACHE_LFU);
        if (!ctx) break;
        int32_t pos[N_TOKENS];
        int8_t all[N_TOKENS];
        for (int i = 0; i < N_TOKENS; i++) pos[i] = i, all[i] = 1;
        tnd_batch b = {.n_tokens = N_TOKENS, .tokens = tokens, .pos = pos, .logits = all};
        if (tnd_context_decode(ctx, &b) != TND_OK) {
            failed++;
        } else {
            for (int i = 0; i < N_TOKENS; i++)
                wrong += memcmp(tnd_context_logits(ctx, i), want + (size_t)i * n_vocab, row) != 0;
        }
        tnd_context_free(ctx);
    }
    unsetenv("TANDEM_FAULT");
    if (!CHECK(wrong == 0 && failed > 0)) fprintf(stderr, "faults apart: %d failed, %d wrong rows\n", failed, wrong);
    free(want);
    tnd_model_close(m);
}

/* What the experts' placement refuses, naming why. */
static void test_experts_apart_refused(void) {
    tnd_model *m = open_fixture("qwen2moe-tiny-q4_k_m");
    if (!m) return;
    static const struct { int32_t n_devices, expert_device, slots; const char *expect; } cases[] = {
        {1, -1, 2, "apart"},          /* a cache without experts apart */
        {2, 0, 4, "holds 0 to 3"},    /* as many slots as experts */
        {2, 2, 0, "2 devices"},       /* no such device */
        {1, 0, 1, "nothing to cache"} /* the groups are on the experts' device already */
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        int32_t groups[6] = {0, 1, 1, 1, 1, 1};
        tnd_context_params p = tnd_context_default_params();
        p.n_ctx = 64;
        p.n_devices = cases[c].n_devices;
        if (p.n_devices == 2) {
            p.group_device = groups;
            p.n_groups = 6;
        }
        p.expert_device = cases[c].expert_device;
        p.expert_cache_slots = cases[c].slots;
        tnd_context *ctx = NULL;
        tnd_status st = tnd_context_init(m, &p, &ctx);
        if (!CHECK(st == TND_ERR_INVALID_ARGUMENT && strstr(tnd_last_error(), cases[c].expect)))
            fprintf(stderr, "case %zu: %d, %s\n", c, (int)st, tnd_last_error());
        tnd_context_free(ctx);
    }
    tnd_model_close(m);
    tnd_model *dense = NULL;
    if (CHECK_OK(tnd_model_open(tnd_fixture("models/llama-tiny-f32.gguf"), NULL, &dense))) {
        tnd_context_params p = tnd_context_default_params();
        p.n_ctx = 64;
        p.expert_device = 0;
        tnd_context *ctx = NULL;
        CHECK(tnd_context_init(dense, &p, &ctx) == TND_ERR_INVALID_ARGUMENT &&
              strstr(tnd_last_error(), "no mixture-of-experts"));
        tnd_context_free(ctx);
        tnd_model_close(dense);
    }
}

/* ------------------------------------------------------------------------------------------------------------
 * Bad files: the fixture rewritten with one key or tensor changed
 * ---------------------------------------------------------------------------------------------------------- */

typedef struct edit {
    const char *key;       /* a u32 key to set, or NULL */
    uint32_t value;
    const char *arch;      /* general.architecture to set, or NULL */
    const char *drop;      /* a tensor to leave out, or NULL */
    const char *reshape;   /* a tensor whose last dimension loses one (its data cut to fit), or NULL */
    const char *expect;    /* what the error names */
} edit;

/* Writes fixture `name` with the edit to a temporary file; returns its path (static) or NULL. */
static const char *rewrite(const char *name, const edit *e) {
    static char out[64];
    char path[256];
    snprintf(path, sizeof path, "models/%s.gguf", name);
    size_t size = 0;
    uint8_t *bytes = tnd_test_read_file(tnd_fixture(path), &size);
    tnd_gguf *g = NULL;
    tnd_gguf_writer *w = tnd_gguf_writer_init(NULL);
    bool ok = bytes && w && CHECK_OK(tnd_gguf_parse(bytes, size, NULL, &g)) &&
              CHECK_OK(tnd_gguf_writer_copy_meta(w, g));
    if (ok && e->key) ok = CHECK_OK(tnd_gguf_writer_set_u32(w, e->key, e->value));
    if (ok && e->arch) ok = CHECK_OK(tnd_gguf_writer_set_str(w, "general.architecture", e->arch));
    for (uint64_t i = 0; ok && i < g->n_tensors; i++) {
        const tnd_gguf_tensor *t = &g->tensors[i];
        if (e->drop && !strcmp(t->name, e->drop)) continue;
        int64_t ne[4] = {t->ne[0], t->ne[1], t->ne[2], t->ne[3]};
        if (e->reshape && !strcmp(t->name, e->reshape)) ne[t->n_dims - 1]--;
        ok = CHECK_OK(tnd_gguf_writer_add_tensor(w, t->name, t->type, t->n_dims, ne, t->data));
    }
    snprintf(out, sizeof out, "/tmp/tnd_moe_XXXXXX");
    int fd = ok ? mkstemp(out) : -1;
    if (fd >= 0) close(fd);
    ok = fd >= 0 && CHECK_OK(tnd_gguf_writer_write_file(w, out));
    tnd_gguf_writer_free(w);
    tnd_gguf_free(g);
    free(bytes);
    return ok ? out : NULL;
}

static void test_bad_files(void) {
    static const edit edits[] = {
        {.key = "qwen2moe.expert_used_count", .value = 0, .expect = "qwen2moe.expert_used_count = 0"},
        {.key = "qwen2moe.expert_used_count", .value = 5, .expect = "qwen2moe.expert_used_count = 5"},
        {.key = "qwen2moe.expert_count", .value = 1, .expect = "expert_count = 1"},
        {.key = "qwen2moe.expert_count", .value = 3, .expect = "blk.0.ffn_gate_inp.weight"},
        {.key = "qwen2moe.expert_feed_forward_length", .value = 128, .expect = "blk.0.ffn_gate_exps.weight"},
        {.drop = "blk.1.ffn_up_exps.weight", .expect = "'blk.1.ffn_up_exps.weight' is missing"},
        {.drop = "blk.0.ffn_gate_inp_shexp.weight", .expect = "'blk.0.ffn_gate_inp_shexp.weight' is missing"},
        {.reshape = "blk.0.ffn_down_exps.weight", .expect = "blk.0.ffn_down_exps.weight"},
        {.reshape = "blk.1.ffn_gate_inp.weight", .expect = "blk.1.ffn_gate_inp.weight"},
        {.arch = "gptneox", .expect = "architecture 'gptneox' is not supported"},
    };
    for (size_t i = 0; i < sizeof edits / sizeof edits[0]; i++) {
        const char *path = rewrite("qwen2moe-tiny-f32", &edits[i]);
        if (!path) continue;
        tnd_model *m = NULL;
        tnd_context *ctx = NULL;
        tnd_status st = tnd_model_open(path, NULL, &m);
        if (st == TND_OK) st = tnd_context_init(m, NULL, &ctx);
        if (!CHECK(st != TND_OK && !ctx && strstr(tnd_last_error(), edits[i].expect)))
            fprintf(stderr, "  edit %zu: status %d, error '%s', expected it to name '%s'\n", i, st, tnd_last_error(),
                    edits[i].expect);
        else
            printf("refused: %s\n", tnd_last_error());
        tnd_context_free(ctx);
        tnd_model_close(m);
        unlink(path);
    }
}

int main(void) {
    test_batch_equals_one_by_one();
    test_experts_on_another_device();
    test_experts_apart();
    test_experts_apart_refused();
    test_throttled_home();
    test_experts_apart_faults();
    test_bad_files();
    return tnd_test_finish("test_moe");
}
