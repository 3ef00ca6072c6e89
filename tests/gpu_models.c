/* gpu_models.c (tests test_vulkan, test_vulkan_staging and test_cuda: `gpu_models vulkan|cuda [MODEL ...]`, MODEL a
 * fixture's name, all of them by default): the fixture models on the first GPU of a family (Vulkan: lavapipe in CI;
 * CUDA: where a GPU is lent, scripts/gpu_check.sh): logits of a GPU-only plan and of a split plan (groups
 * alternating between the CPU and the GPU) against the exact float64 references, dense and mixture-of-experts
 * fixtures (these also with their experts on the CPU), quantized KV caches against the CPU's, and plans that cannot
 * be made fail clearly. The device's ops one by one are in test_backend_ops; the real model's greedy text in
 * test_generate (Vulkan) and scripts/gpu_check.sh (CUDA). */
#include "harness.h"

#include "tandem.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const int32_t prompt[16] = {1, 403, 407, 261, 378, 436, 300, 290, 259, 268, 421, 375, 262, 266, 302, 431};
enum { N_PROMPT = 16, KIND_CPU = 0 };

/* The GPU under test: its device kind and name ("vulkan0", "cuda0"). */
static int32_t gpu_kind;
static char gpu_name[32];

/* The float activations of the GPU's matmuls and an F16 KV cache: the exact logits to this bound (the CPU's
 * reference path with an F16 cache measures 1.3e-7; quantized activations would give 1e-4 and more). */
static const double max_exact = 1e-5;
/* A split plan's CPU groups run the CPU's fast kernels, which convert activations to 8 bits: test_models' bound for
 * them (measured 2e-4 to 5e-4 here); so does a GPU that multiplies by 8-bit activations ("int8 dot"). */
static const double max_exact_split = 2e-3;
static bool int8_activations;



/* The prompt's logits at every position under a plan of n_devices of `kinds` (group_device NULL: layers split
 * evenly) with the KV types and kernels of `base` (NULL: the defaults), or NULL when the context or the decode fails
 * (the error stays in tnd_last_error). */
static float *logits_on(tnd_model *m, int32_t n_devices, const int32_t *kinds, const int32_t *group_device,
                        const tnd_context_params *base) {
    tnd_context_params p = base ? *base : tnd_context_default_params();
    p.n_ctx = 64;
    p.n_threads = 2;
    p.n_devices = n_devices;
    p.device_kinds = kinds;
    p.group_device = group_device;
    p.n_groups = group_device ? tnd_model_n_groups(m) : 0;
    tnd_context *ctx = NULL;
    if (tnd_context_init(m, &p, &ctx) != TND_OK) return NULL;
    int32_t pos[N_PROMPT], seqs[N_PROMPT], n_vocab = tnd_model_n_vocab(m);
    int8_t want[N_PROMPT];
    for (int i = 0; i < N_PROMPT; i++) pos[i] = i, seqs[i] = 0, want[i] = 1;
    tnd_batch b = {.n_tokens = N_PROMPT, .tokens = prompt, .pos = pos, .seq_id = seqs, .logits = want};
    float *out = malloc(sizeof(float) * N_PROMPT * (size_t)n_vocab);
    bool ok = tnd_context_decode(ctx, &b) == TND_OK;
    for (int i = 0; i < N_PROMPT && ok; i++)
        memcpy(out + (size_t)i * n_vocab, tnd_context_logits(ctx, i), sizeof(float) * (size_t)n_vocab);
    tnd_context_free(ctx);
    if (!ok) free(out);
    return ok ? out : NULL;
}

/* Whether group g of m is a feed-forward group with experts. */
static bool experts_group(tnd_model *m, int32_t g) {
    tnd_group_info gi;
    char name[96];
    if (tnd_model_group(m, g, &gi) != TND_OK || gi.layer < 0 || !strstr(gi.name, ".ffn")) return false;
    snprintf(name, sizeof name, "blk.%d.ffn_gate_exps.weight", gi.layer);
    return tnd_model_tensor_find(m, name) >= 0;
}

static void check_model(const char *name) {
    char path[256];
    snprintf(path, sizeof path, "models/%s.gguf", name);
    tnd_model *m = NULL;
    if (!CHECK_OK(tnd_model_open(tnd_fixture(path), NULL, &m))) return;
    int32_t n_vocab = tnd_model_n_vocab(m), n_groups = tnd_model_n_groups(m);
    size_t n = (size_t)N_PROMPT * n_vocab;
    snprintf(path, sizeof path, "models/%s.ref-exact.logits.f32", name);
    float *exact = tnd_test_read_floats(tnd_fixture(path), n);
    int32_t *groups = malloc(sizeof(int32_t) * (size_t)n_groups);
    const int32_t gpu_only[1] = {gpu_kind}, split[2] = {gpu_kind, KIND_CPU};
    bool moe = false;
    for (int32_t g = 0; g < n_groups; g++) moe |= experts_group(m, g);
    float *alone = logits_on(m, 1, gpu_only, NULL, NULL);
    if (!CHECK(alone)) fprintf(stderr, "%s on %s: %s\n", name, gpu_name, tnd_last_error());
    for (int32_t g = 0; g < n_groups; g++) groups[g] = g % 2; /* a hand-over at every group */
    float *mixed = logits_on(m, 2, split, groups, NULL);
    if (!CHECK(mixed)) fprintf(stderr, "%s split: %s\n", name, tnd_last_error());
    float *cpu_experts = NULL; /* a mixture of experts with its experts on the CPU (--cpu-moe), the rest on the GPU */
    for (int32_t g = 0; g < n_groups && moe; g++) groups[g] = experts_group(m, g);
    if (moe && !CHECK(cpu_experts = logits_on(m, 2, split, groups, NULL)))
        fprintf(stderr, "%s experts on cpu0: %s\n", name, tnd_last_error());
    float *cached = NULL; /* every group on the GPU but the embedding, the experts on the CPU, 2 of them cached */
    tnd_context_params apart = tnd_context_default_params();
    apart.expert_device = 1;
    apart.expert_cache_slots = 2;
    for (int32_t g = 0; g < n_groups && moe; g++) groups[g] = g == 0;
    if (moe && !CHECK(cached = logits_on(m, 2, split, groups, &apart)))
        fprintf(stderr, "%s experts apart, cached: %s\n", name, tnd_last_error());
    if (CHECK(exact) && alone && mixed) {
        double e_alone = tnd_test_nmse(alone, exact, n), e_mixed = tnd_test_nmse(mixed, exact, n);
        double e_experts = cpu_experts ? tnd_test_nmse(cpu_experts, exact, n) : 0;
        double e_cached = cached ? tnd_test_nmse(cached, exact, n) : 0;
        printf("%-22s %s: NMSE vs exact %.3g | split with cpu0: %.3g", name, gpu_name, e_alone, e_mixed);
        if (moe) printf(" | experts on cpu0: %.3g | apart, 2 cached here: %.3g", e_experts, e_cached);
        printf("\n");
        CHECK(e_alone <= (int8_activations ? max_exact_split : max_exact) && e_mixed <= max_exact_split &&
              e_experts <= max_exact_split && e_cached <= max_exact_split);
    }
    free(cpu_experts);
    free(cached);
    free(alone);
    free(mixed);
    free(exact);
    free(groups);
    tnd_model_close(m);
}

/* Quantized and mixed KV caches: the GPU quantizes as the CPU does, so with float activations on both (the CPU's
 * reference kernels) the logits agree closely: to float rounding where the values are the same, and to 1e-8 where
 * the GPU's division (through a reciprocal, on lavapipe as on most GPUs) rounds a Q8_0 scale apart from the CPU's
 * and moves a level by one. The bound sits far below what the cache's own rounding costs (1e-4 for Q8_0, 2.6e-2
 * for Q4_0 against the exact logits). */
static void check_kv_types(void) {
    static const char *const names[] = {"llama-tiny-f32", "qwen3-tiny-f32"};
    static const tnd_type kinds[][2] = {{TND_TYPE_Q8_0, TND_TYPE_Q8_0}, {TND_TYPE_Q4_0, TND_TYPE_Q4_0},
                                        {TND_TYPE_Q8_0, TND_TYPE_F16},  {TND_TYPE_F16, TND_TYPE_Q4_0}};
    const int32_t gpu_only[1] = {gpu_kind}, cpu_only[1] = {KIND_CPU};
    for (size_t mi = 0; mi < sizeof names / sizeof names[0]; mi++) {
        char path[256];
        snprintf(path, sizeof path, "models/%s.gguf", names[mi]);
        tnd_model *m = NULL;
        if (!CHECK_OK(tnd_model_open(tnd_fixture(path), NULL, &m))) continue;
        for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
            tnd_context_params p = tnd_context_default_params();
            p.k_type = kinds[k][0];
            p.v_type = kinds[k][1];
            float *gpu = logits_on(m, 1, gpu_only, NULL, &p);
            p.kernels = TND_KERNELS_REFERENCE;
            float *cpu = logits_on(m, 1, cpu_only, NULL, &p);
            if (CHECK(gpu && cpu)) {
                double e = tnd_test_nmse(gpu, cpu, (size_t)N_PROMPT * tnd_model_n_vocab(m));
                printf("%-16s KV %s K %s V: %s vs the CPU's reference kernels NMSE %.3g\n", names[mi],
                       tnd_type_name(kinds[k][0]), tnd_type_name(kinds[k][1]), gpu_name, e);
                CHECK(e <= 1e-7);
            }
            free(gpu);
            free(cpu);
        }
        tnd_model_close(m);
    }
}

/* What a plan gets wrong is a clear error at context creation. */
static void check_refusals(void) {
    tnd_model *m = NULL;
    if (!CHECK_OK(tnd_model_open(tnd_fixture("models/llama-tiny-f32.gguf"), NULL, &m))) return;
    tnd_context_params p = tnd_context_default_params();
    const int32_t twice[2] = {gpu_kind, gpu_kind}, absent[1] = {99};
    tnd_context *ctx = NULL;
    p.n_ctx = 64;
    p.n_devices = 2;
    p.device_kinds = twice;
    CHECK(tnd_context_init(m, &p, &ctx) == TND_ERR_INVALID_ARGUMENT && !ctx && strstr(tnd_last_error(), "twice"));
    p.n_devices = 1;
    p.device_kinds = absent;
    CHECK(tnd_context_init(m, &p, &ctx) == TND_ERR_INVALID_ARGUMENT && strstr(tnd_last_error(), "device kind 99"));
    tnd_model_close(m);
}

int main(int argc, char **argv) {
    const char *family = argc > 1 ? argv[1] : "vulkan";
    snprintf(gpu_name, sizeof gpu_name, "%s0", family);
    tnd_device_info info;
    for (int32_t k = 1; k < tnd_device_count() && !gpu_kind; k++)
        if (tnd_device_get_info(k, 2, &info) == TND_OK && !strcmp(info.name, gpu_name)) gpu_kind = k;
    if (!gpu_kind) {
        /* CI installs a software Vulkan driver and asks for it, scripts/gpu_check.sh asks for a CUDA GPU; elsewhere
         * the device may be absent */
        const char *need = getenv(!strcmp(family, "cuda") ? "TANDEM_REQUIRE_CUDA" : "TANDEM_REQUIRE_VULKAN");
        CHECK(!need || !*need || !strcmp(need, "0"));
        printf("no %s device on this machine: not tested\n", gpu_name);
        return tnd_test_finish(gpu_name);
    }
    if (CHECK_OK(tnd_device_get_info(gpu_kind, 2, &info))) printf("%s: %s\n", gpu_name, info.description);
    int8_activations = strstr(info.description, "int8 dot") != NULL;
    static const char *const models[] = {"llama-tiny-f32",   "llama-tiny-f16",    "llama-tiny-bf16",
                                         "llama-tiny-q8_0",  "llama-tiny-q4_0",   "llama-tiny-q4_1",
                                         "llama-tiny-q5_0",  "llama-tiny-q5_1",   "llama-tiny-q2_k",
                                         "llama-tiny-q3_k_m", "llama-tiny-q4_k_m", "llama-tiny-q5_k_m",
                                         "llama-tiny-q6_k",  "llama3-tiny-f32",   "llama3-tiny-q4_k_m",
                                         "qwen2-tiny-f32",   "qwen2-tiny-q4_k_m", "qwen3-tiny-f32",
                                         "qwen3-tiny-q4_k_m", "qwen2moe-tiny-f32", "mixtral-tiny-f32",
                                         "qwen3moe-tiny-f32"};
    if (argc > 2) /* the models named after the family (scripts/gpu_check.sh carries a few) */
        for (int i = 2; i < argc; i++) check_model(argv[i]);
    else
        for (size_t i = 0; i < sizeof models / sizeof models[0]; i++) check_model(models[i]);
    check_kv_types();
    check_refusals();
    return tnd_test_finish(gpu_name);
}
