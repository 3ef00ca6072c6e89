/* test_backend_ops.c: the conformance suite of the device interface. Every op of every device compiled in runs
 * through the vtable (buffers, views, begin_step, synchronize) on random data and shapes (widths that are not
 * multiples of 32 or 256, 1 and odd numbers of tokens, one and several sequences, every weight type and KV type)
 * and is compared with the CPU reference device by normalized mean squared error, under a bound per type. The
 * devices under test: the CPU with its fast kernels, the first Vulkan device where the machine has one (CI's
 * software driver, lavapipe) and the first CUDA GPU where it has one; each must support every op, weight type and KV
 * type. */
#include "harness.h"

#include "backend/cpu/cpu_backend.h"
#include "backend/cuda/cuda_backend.h"
#include "backend/vulkan/vk_backend.h"
#include "quant/quant.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------------------------------------------
 * Devices and data
 * ---------------------------------------------------------------------------------------------------------- */

typedef struct device_under_test {
    const char *name;
    tnd_status (*init)(tnd_backend **out);
    double rounding; /* NMSE allowed where the CPU's fast kernels must match the reference exactly: a GPU rounds
                        otherwise (fused multiply-adds, another order of sums, its own exp) */
    double matmul;   /* the matmul bound of every type where the device keeps activations in float (0: per type) */
} device_under_test;

static tnd_status cpu_fast(tnd_backend **out) { return tnd_backend_cpu_init(2, false, NULL, "cpu-fast", out); }
static tnd_status vulkan(tnd_backend **out) { return tnd_backend_vulkan_init(0, NULL, "vulkan0", out); }
static tnd_status cuda(tnd_backend **out) { return tnd_backend_cuda_init(0, NULL, "cuda0", out); }

static const device_under_test devices[] = {{"cpu (fast kernels)", cpu_fast, 0, 0},
                                            {"vulkan0", vulkan, 1e-12, 1e-9},
                                            {"cuda0", cuda, 1e-12, 1e-9}};
static const device_under_test *current; /* the device under test now */
static bool int8_activations;             /* it multiplies quantized weights by 8-bit activations ("int8 dot") */

static tnd_backend *ref; /* the CPU reference device: scalar float kernels */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static float frand(void) { /* uniform in [-1, 1) */
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((double)(rng_state >> 11) * 0x1.0p-52 - 1.0);
}

static float *random_floats(int64_t n, float scale) {
    float *x = malloc(sizeof(float) * (size_t)n);
    for (int64_t i = 0; i < n; i++) x[i] = frand() * scale;
    return x;
}

static double nmse(const float *x, const float *want, int64_t n) {
    double num = 0, den = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = (double)x[i] - want[i];
        num += d * d;
        den += (double)want[i] * want[i];
    }
    return den > 0 ? num / den : num;
}

/* A buffer on d holding n floats from host (or zeros). */
static tnd_buffer *upload(tnd_backend *d, const float *host, int64_t n) {
    tnd_buffer *b = d->vt->alloc(d, sizeof(float) * (size_t)n);
    if (b && host) d->vt->write(d, b, 0, host, sizeof(float) * (size_t)n);
    return b;
}

static float *download(tnd_backend *d, const tnd_buffer *b, int64_t n) {
    float *x = malloc(sizeof(float) * (size_t)n);
    d->vt->read(d, x, b, 0, sizeof(float) * (size_t)n);
    return x;
}

/* The worst NMSE seen per case, printed at the end. */
typedef struct tally {
    char what[48];
    double worst;
    int runs;
} tally;

static tally tallies[64];
static int n_tallies;

static void record(const char *what, double e, double bound) {
    int i = 0;
    while (i < n_tallies && strcmp(tallies[i].what, what)) i++;
    if (i == n_tallies && n_tallies < 64) snprintf(tallies[n_tallies++].what, sizeof tallies[0].what, "%s", what);
    if (i < 64) {
        if (e > tallies[i].worst) tallies[i].worst = e;
        tallies[i].runs++;
    }
    if (!CHECK(e <= bound)) fprintf(stderr, "  %s: NMSE %.3g above the bound %.3g\n", what, e, bound);
}

/* Positions 0 .. n - 1 (n <= 512). */
static const int32_t *positions(int64_t n) {
    static int32_t pos[512];
    for (int64_t i = 0; i < n && i < 512; i++) pos[i] = (int32_t)i;
    return pos;
}

/* Begins a step of n_tokens tokens at positions 0.. (for the ops that do not read the KV cache). */
static void begin(tnd_backend *d, int64_t n_tokens) {
    tnd_step step = {.n_tokens = n_tokens, .pos = positions(n_tokens), .block_size = 16};
    d->vt->begin_step(d, &step);
}

/* ------------------------------------------------------------------------------------------------------------
 * matmul and embed over every weight type
 * ---------------------------------------------------------------------------------------------------------- */

/* A host weight of `rows` random rows in [-scale, scale) quantized to `type` (its data malloc'ed). */
static tnd_weight random_weight(tnd_type type, int64_t cols, int64_t rows, float scale, bool lookup_only) {
    size_t row_bytes = tnd_row_size(type, cols);
    uint8_t *data = malloc(row_bytes * (size_t)rows);
    float *w = random_floats(cols * rows, scale);
    for (int64_t r = 0; r < rows; r++)
        tnd_type_traits_of(type)->from_float(w + r * cols, data + (size_t)r * row_bytes, cols);
    free(w);
    return (tnd_weight){.type = type, .n_cols = cols, .n_rows = rows, .row_bytes = row_bytes, .data = data,
                        .lookup_only = lookup_only};
}

/* NMSE bounds of a matmul against the reference (float activations). The fast kernels convert activations to 8 bits
 * for the quantized types (1e-5 .. 1e-4 over many outputs) and to BF16 for BF16 weights (2e-6), and keep them F32 for
 * F32 and F16. A case of 1 row and 1 to 3 tokens has so few outputs that one small dot product (cancellation) can
 * lift its NMSE tenfold (measured up to 6e-4 for Q6_K and 1.5e-5 for BF16), so the bounds sit above that; a wrong
 * block, tail or row gives 1e-2 and more. */
static double matmul_bound(tnd_type t) {
    return t == TND_TYPE_F32 || t == TND_TYPE_F16 ? 1e-9 : t == TND_TYPE_BF16 ? 1e-4 : 3e-3;
}

static void check_matmul(tnd_backend *d, tnd_type type, int64_t cols, int64_t rows,
                         int64_t n_tokens) {
    tnd_weight host = random_weight(type, cols, rows, 1.0f, false);
    float *x = random_floats(cols * n_tokens, 1.0f);
    float *out[2] = {0};
    tnd_backend *pair[2] = {ref, d};
    for (int k = 0; k < 2; k++) {
        tnd_backend *b = pair[k];
        tnd_weight view;
        if (!CHECK_OK(b->vt->prepare_weight(b, &host, &view))) continue;
        tnd_buffer *xb = upload(b, x, cols * n_tokens), *yb = upload(b, NULL, rows * n_tokens);
        tnd_tensor xv = tnd_rows_f32(xb, cols, 0, n_tokens), yv = tnd_rows_f32(yb, rows, 0, n_tokens);
        begin(b, n_tokens);
        b->vt->matmul(b, &view, &xv, &yv);
        if (CHECK_OK(b->vt->synchronize(b))) out[k] = download(b, yb, rows * n_tokens);
        b->vt->free(b, xb);
        b->vt->free(b, yb);
        b->vt->release_weight(b, &view);
    }
    if (out[0] && out[1]) {
        char what[48];
        snprintf(what, sizeof what, "matmul %s", tnd_type_name(type));
        double bound = current->matmul && !int8_activations ? current->matmul : matmul_bound(type);
        record(what, nmse(out[1], out[0], rows * n_tokens), bound);
    }
    free(out[0]);
    free(out[1]);
    free((void *)host.data);
    free(x);
}

/* matmul_many of weights of one input (of types that convert the input alike and not, and row counts that are no
 * multiple of a row tile) gives each weight's matmul bit for bit. */
static void check_matmul_many(tnd_backend *d) {
    static const tnd_type sets[][3] = {{TND_TYPE_Q4_K, TND_TYPE_Q4_K, TND_TYPE_Q6_K},
                                       {TND_TYPE_Q8_0, TND_TYPE_F32, TND_TYPE_Q4_0},
                                       {TND_TYPE_Q5_0, TND_TYPE_Q5_0, TND_TYPE_F16}};
    static const int64_t rows[3] = {96, 40, 1}, token_counts[2] = {1, 19};
    int64_t cols = 512;
    for (size_t s = 0; s < sizeof sets / sizeof sets[0]; s++)
        for (int ti = 0; ti < 2; ti++) {
            int64_t n_tokens = token_counts[ti];
            float *x = random_floats(cols * n_tokens, 1.0f);
            tnd_weight host[3], view[3];
            tnd_buffer *yb[3];
            tnd_tensor yv[3];
            const tnd_weight *w[3];
            const tnd_tensor *y[3];
            tnd_buffer *xb = upload(d, x, cols * n_tokens);
            tnd_tensor xv = tnd_rows_f32(xb, cols, 0, n_tokens);
            bool ok = true;
            for (int i = 0; i < 3; i++) {
                host[i] = random_weight(sets[s][i], cols, rows[i], 1.0f, false);
                ok &= CHECK_OK(d->vt->prepare_weight(d, &host[i], &view[i]));
                yb[i] = upload(d, NULL, rows[i] * n_tokens);
                yv[i] = tnd_rows_f32(yb[i], rows[i], 0, n_tokens);
                w[i] = &view[i];
                y[i] = &yv[i];
            }
            float *alone[3] = {0}, *fused[3] = {0};
            if (ok) {
                begin(d, n_tokens);
                for (int i = 0; i < 3; i++) d->vt->matmul(d, w[i], &xv, y[i]);
                bool synced = CHECK_OK(d->vt->synchronize(d));
                for (int i = 0; i < 3 && synced; i++) alone[i] = download(d, yb[i], rows[i] * n_tokens);
                d->vt->matmul_many(d, 3, w, &xv, y);
                synced = CHECK_OK(d->vt->synchronize(d));
                for (int i = 0; i < 3 && synced; i++) fused[i] = download(d, yb[i], rows[i] * n_tokens);
            }
            for (int i = 0; i < 3; i++) {
                if (!CHECK(alone[i] && fused[i] &&
                           !memcmp(alone[i], fused[i], sizeof(float) * (size_t)(rows[i] * n_tokens))))
                    fprintf(stderr, "  matmul_many: weight %d (%s) differs from its matmul\n", i,
                            tnd_type_name(sets[s][i]));
                free(alone[i]);
                free(fused[i]);
                d->vt->free(d, yb[i]);
                d->vt->release_weight(d, &view[i]);
                free((void *)host[i].data);
            }
            d->vt->free(d, xb);
            free(x);
        }
}

static void check_embed(tnd_backend *d, tnd_type type, int64_t cols) {
    int64_t rows = 50, n = 7;
    tnd_weight host = random_weight(type, cols, rows, 2.0f, true);
    const int32_t ids[7] = {0, 49, 3, 3, 17, 48, 1};
    float *out[2] = {0};
    tnd_backend *pair[2] = {ref, d};
    for (int k = 0; k < 2; k++) {
        tnd_backend *b = pair[k];
        tnd_weight view;
        if (!CHECK_OK(b->vt->prepare_weight(b, &host, &view))) continue;
        tnd_buffer *ob = upload(b, NULL, cols * n);
        tnd_tensor ov = tnd_rows_f32(ob, cols, 0, n);
        begin(b, n);
        b->vt->embed(b, &view, ids, &ov);
        if (CHECK_OK(b->vt->synchronize(b))) out[k] = download(b, ob, cols * n);
        b->vt->free(b, ob);
        b->vt->release_weight(b, &view);
    }
    if (out[0] && out[1]) { /* a lookup decodes the same rows: exact */
        char what[48];
        snprintf(what, sizeof what, "embed %s", tnd_type_name(type));
        record(what, nmse(out[1], out[0], cols * n), current->rounding);
    }
    free(out[0]);
    free(out[1]);
    free((void *)host.data);
}

static void check_weight_types(tnd_backend *d) {
    static const tnd_type types[] = {TND_TYPE_F32,  TND_TYPE_F16,  TND_TYPE_BF16, TND_TYPE_Q4_0, TND_TYPE_Q4_1,
                                     TND_TYPE_Q5_0, TND_TYPE_Q5_1, TND_TYPE_Q8_0, TND_TYPE_Q2_K, TND_TYPE_Q3_K,
                                     TND_TYPE_Q4_K, TND_TYPE_Q5_K, TND_TYPE_Q6_K};
    static const int64_t row_counts[] = {1, 7, 33, 130}, token_counts[] = {1, 3, 5, 70};
    for (size_t t = 0; t < sizeof types / sizeof types[0]; t++) {
        tnd_type type = types[t];
        tnd_op_query q = {.op = TND_OP_MATMUL, .type = type};
        if (!CHECK(d->vt->supports(d, &q))) continue;
        bool k_quant = tnd_type_traits_of(type)->block_size == 256;
        /* widths: one block, a width that is no multiple of 256 (Qwen2.5-0.5B's 896), a larger one */
        const int64_t widths[3] = {k_quant ? 256 : 32, k_quant ? 768 : 896, k_quant ? 2304 : 1440};
        for (int wi = 0; wi < 3; wi++)
            for (int ri = 0; ri < 4; ri++)
                check_matmul(d, type, widths[wi], row_counts[ri], token_counts[(wi + ri) % 4]);
        check_embed(d, type, widths[1]);
    }
    check_matmul_many(d);
}

/* ------------------------------------------------------------------------------------------------------------
 * Mixture-of-experts ops
 * ---------------------------------------------------------------------------------------------------------- */

/* Token t's n_used distinct experts, skewed towards the low ones as trained routers are (a few experts hot). */
static void random_ids(int32_t *ids, int64_t n_tokens, int32_t n_used, int32_t n_experts) {
    for (int64_t t = 0; t < n_tokens; t++)
        for (int32_t j = 0; j < n_used; j++) {
            int32_t e;
            bool taken;
            do {
                float u = 0.5f * (frand() + 1.0f);
                e = (int32_t)((float)n_experts * u * u);
                if (e >= n_experts) e = n_experts - 1;
                taken = false;
                for (int32_t i = 0; i < j; i++) taken |= ids[t * n_used + i] == e;
            } while (taken);
            ids[t * n_used + j] = e;
        }
}

/* matmul_experts of n stacked weights the device prepared (w): x is one row per token or (per_slot) one per pair;
 * out[i] gets weight i's result [pairs][rows] (NULL on failure). */
static void run_prepared(tnd_backend *b, int n, const tnd_weight *const *w, const float *x, const int32_t *ids,
                         int64_t n_tokens, int32_t n_used, bool per_slot, float **out) {
    int64_t rows = w[0]->n_rows / w[0]->n_experts, pairs = n_tokens * n_used;
    int64_t x_rows = per_slot ? pairs : n_tokens;
    tnd_buffer *yb[2] = {0};
    tnd_tensor yv[2];
    const tnd_tensor *y[2];
    float *stale = malloc(sizeof(float) * (size_t)(rows * pairs)); /* what an op must overwrite, every row */
    for (int64_t i = 0; i < rows * pairs; i++) stale[i] = 7.0f;
    for (int i = 0; i < n; i++) {
        yb[i] = upload(b, stale, rows * pairs);
        yv[i] = tnd_rows_f32(yb[i], rows, 0, pairs);
        y[i] = &yv[i];
        out[i] = NULL;
    }
    tnd_buffer *xb = upload(b, x, w[0]->n_cols * x_rows), *ib = b->vt->alloc(b, sizeof(int32_t) * (size_t)pairs);
    b->vt->write(b, ib, 0, ids, sizeof(int32_t) * (size_t)pairs);
    tnd_tensor xv = tnd_rows_f32(xb, w[0]->n_cols, 0, x_rows), iv = tnd_rows_i32(ib, n_used, 0, n_tokens);
    begin(b, n_tokens);
    b->vt->matmul_experts(b, n, w, &xv, &iv, y);
    bool ok = CHECK_OK(b->vt->synchronize(b));
    for (int i = 0; i < n; i++) {
        if (ok) out[i] = download(b, yb[i], rows * pairs);
        b->vt->free(b, yb[i]);
    }
    b->vt->free(b, xb);
    b->vt->free(b, ib);
    free(stale);
}

/* The same for n stacked host weights, prepared for the run and released after it. */
static void run_experts(tnd_backend *b, int n, const tnd_weight *hosts, const float *x, const int32_t *ids,
                        int64_t n_tokens, int32_t n_used, bool per_slot, float **out) {
    tnd_weight view[2];
    const tnd_weight *w[2];
    bool ok = true;
    for (int i = 0; i < n; i++) {
        ok &= CHECK_OK(b->vt->prepare_weight(b, &hosts[i], &view[i]));
        w[i] = &view[i];
        out[i] = NULL;
    }
    if (ok) run_prepared(b, n, w, x, ids, n_tokens, n_used, per_slot, out);
    for (int i = 0; i < n; i++) b->vt->release_weight(b, &view[i]);
}

/* The experts' matmul of two weights (gate and up) against the reference, each weight fused as alone, and a batch
 * against the same tokens one at a time (bit for bit: a token's logits must not depend on which other tokens chose
 * its experts). */
static void check_experts(tnd_backend *d, tnd_type type, int64_t cols, int64_t rows, int32_t n_experts,
                          int32_t n_used, int64_t n_tokens, bool per_slot) {
    tnd_weight host[2];
    for (int i = 0; i < 2; i++) {
        host[i] = random_weight(type, cols, rows * n_experts, 1.0f, false);
        host[i].n_experts = n_experts;
    }
    int64_t pairs = n_tokens * n_used, x_rows = per_slot ? pairs : n_tokens;
    size_t bytes = sizeof(float) * (size_t)(rows * pairs);
    float *x = random_floats(cols * x_rows, 1.0f);
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)pairs);
    random_ids(ids, n_tokens, n_used, n_experts);
    float *want[2], *got[2], *single[1];
    run_experts(ref, 2, host, x, ids, n_tokens, n_used, per_slot, want);
    run_experts(d, 2, host, x, ids, n_tokens, n_used, per_slot, got);
    run_experts(d, 1, &host[1], x, ids, n_tokens, n_used, per_slot, single);
    if (want[0] && want[1] && got[0] && got[1] && single[0]) {
        char what[48];
        snprintf(what, sizeof what, "matmul_experts %s", tnd_type_name(type));
        record(what, nmse(got[0], want[0], rows * pairs) + nmse(got[1], want[1], rows * pairs), matmul_bound(type));
        CHECK(!memcmp(single[0], got[1], bytes));
        int differ = 0;
        for (int64_t t = 0; t < n_tokens; t++) {
            const float *xt = x + (per_slot ? t * n_used : t) * cols;
            float *alone[2];
            run_experts(d, 2, host, xt, ids + t * n_used, 1, n_used, per_slot, alone);
            for (int i = 0; i < 2; i++) {
                size_t part = sizeof(float) * (size_t)(n_used * rows);
                differ += !alone[i] || memcmp(alone[i], got[i] + t * n_used * rows, part) != 0;
                free(alone[i]);
            }
        }
        if (!CHECK(differ == 0))
            fprintf(stderr, "  matmul_experts %s: %d of %lld tokens differ from the batch alone\n", tnd_type_name(type),
                    differ, (long long)n_tokens);
    }
    for (int i = 0; i < 2; i++) {
        free(want[i]);
        free(got[i]);
        free((void *)host[i].data);
    }
    free(single[0]);
    free(ids);
    free(x);
}

/* Skipped pairs (id -1) give rows of zeros and leave the others' bits as they were; and where the device keeps a
 * cache of experts, a weight of three slots into which update_weight copied experts 5 and 2 gives those experts'
 * bits, and rows that are not whole experts are refused. */
static void check_expert_slots(tnd_backend *d, tnd_type type, int64_t cols, int64_t rows) {
    enum { E = 8, K = 2, T = 9, SLOTS = 3 };
    tnd_weight host = random_weight(type, cols, rows * E, 1.0f, false);
    host.n_experts = E;
    float *x = random_floats(cols * T, 1.0f);
    int32_t chosen[T * K], skipped[T * K];
    random_ids(chosen, T, K, E);
    for (int p = 0; p < T * K; p++) skipped[p] = p % 3 == 1 ? -1 : chosen[p];
    size_t bytes = sizeof(float) * (size_t)(rows * T * K);
    float *all = NULL, *some = NULL;
    run_experts(d, 1, &host, x, chosen, T, K, false, &all);
    run_experts(d, 1, &host, x, skipped, T, K, false, &some);
    if (CHECK(all && some)) {
        int bad = 0;
        for (int64_t p = 0; p < T * K; p++)
            for (int64_t r = 0; r < rows; r++)
                bad += skipped[p] < 0 ? some[p * rows + r] != 0.0f
                                      : memcmp(&some[p * rows + r], &all[p * rows + r], sizeof(float)) != 0;
        if (!CHECK(bad == 0))
            fprintf(stderr, "  matmul_experts %s: %d values wrong with pairs skipped\n", tnd_type_name(type), bad);
    }
    free(all);
    free(some);
    if (d->vt->update_weight) {
        int32_t experts[T * K], in_slots[T * K];
        for (int p = 0; p < T * K; p++) {
            experts[p] = p % 2 ? 5 : 2;
            in_slots[p] = p % 2 ? 1 : 2;
        }
        tnd_weight slots = host, view, five = host, two = host;
        slots.n_experts = SLOTS;
        slots.n_rows = rows * SLOTS;
        slots.writable = true;
        five.n_experts = two.n_experts = 1;
        five.n_rows = two.n_rows = rows;
        five.data = (const uint8_t *)host.data + (size_t)(5 * rows) * host.row_bytes;
        two.data = (const uint8_t *)host.data + (size_t)(2 * rows) * host.row_bytes;
        float *want = NULL, *got = NULL;
        run_experts(d, 1, &host, x, experts, T, K, false, &want);
        if (CHECK_OK(d->vt->prepare_weight(d, &slots, &view))) {
            CHECK_OK(d->vt->update_weight(d, &view, rows, &five));
            CHECK_OK(d->vt->update_weight(d, &view, 2 * rows, &two));
            CHECK(d->vt->update_weight(d, &view, rows / 2, &two) == TND_ERR_INVALID_ARGUMENT);
            CHECK(d->vt->update_weight(d, &view, 3 * rows, &two) == TND_ERR_INVALID_ARGUMENT);
            const tnd_weight *w = &view;
            run_prepared(d, 1, &w, x, in_slots, T, K, false, &got);
            d->vt->release_weight(d, &view);
        }
        if (!CHECK(want && got && !memcmp(want, got, bytes)))
            fprintf(stderr, "  update_weight %s: the slots do not give the experts copied in\n", tnd_type_name(type));
        free(want);
        free(got);
    }
    free(x);
    free((void *)host.data);
}

static void check_expert_types(tnd_backend *d) {
    static const tnd_type types[] = {TND_TYPE_F32,  TND_TYPE_F16,  TND_TYPE_BF16, TND_TYPE_Q4_0, TND_TYPE_Q4_1,
                                     TND_TYPE_Q5_0, TND_TYPE_Q5_1, TND_TYPE_Q8_0, TND_TYPE_Q2_K, TND_TYPE_Q3_K,
                                     TND_TYPE_Q4_K, TND_TYPE_Q5_K, TND_TYPE_Q6_K};
    for (size_t t = 0; t < sizeof types / sizeof types[0]; t++) {
        tnd_op_query q = {.op = TND_OP_MATMUL_EXPERTS, .type = types[t]};
        if (!CHECK(d->vt->supports(d, &q))) continue;
        int64_t cols = tnd_type_traits_of(types[t])->block_size == 256 ? 512 : 96;
        /* experts of whole row tiles (packed) and of 40 rows (not), one token and a prompt, inputs per token (gate,
         * up) and per slot (down) */
        check_experts(d, types[t], cols, 64, 8, 2, 1, false);
        check_experts(d, types[t], cols, 64, 8, 3, 37, true);
        check_experts(d, types[t], cols, 40, 6, 2, 19, false);
        check_expert_slots(d, types[t], cols, 64);
        check_expert_slots(d, types[t], cols, 40);
    }
}

/* The router, the weighted sum and the shared expert's gate against the reference: the same experts (ids equal),
 * weights and sums to rounding. */
static void check_moe_ops(tnd_backend *d) {
    enum { N = 23, E = 10, K = 3, W = 200 };
    tnd_op_query route = {.op = TND_OP_MOE_ROUTE}, combine = {.op = TND_OP_MOE_COMBINE};
    if (!CHECK(d->vt->supports(d, &route) && d->vt->supports(d, &combine))) return;
    float *logits = random_floats(N * E, 4.0f), *experts = random_floats(N * K * W, 1.0f);
    float *resid = random_floats(N * W, 1.0f), *gates = random_floats(N, 3.0f);
    logits[5] = logits[7]; /* a tie: the lower index first */
    tnd_backend *pair[2] = {ref, d};
    float *weights[2][2] = {{0}}, *sums[2] = {0}, *scaled[2] = {0};
    int32_t ids[2][2][N * K];
    for (int k = 0; k < 2; k++) {
        tnd_backend *b = pair[k];
        begin(b, N);
        for (int norm = 0; norm < 2; norm++) {
            tnd_buffer *lb = upload(b, logits, N * E), *ib = b->vt->alloc(b, sizeof(int32_t) * N * K),
                       *wb = upload(b, NULL, N * K);
            tnd_moe_route_args a = {.logits = tnd_rows_f32(lb, E, 0, N), .ids = tnd_rows_i32(ib, K, 0, N),
                                    .weights = tnd_rows_f32(wb, K, 0, N), .n_used = K, .normalize = norm};
            b->vt->moe_route(b, &a);
            if (CHECK_OK(b->vt->synchronize(b))) {
                b->vt->read(b, ids[k][norm], ib, 0, sizeof(int32_t) * N * K);
                weights[k][norm] = download(b, wb, N * K);
            }
            b->vt->free(b, lb);
            b->vt->free(b, ib);
            b->vt->free(b, wb);
        }
        tnd_buffer *eb = upload(b, experts, N * K * W), *wb = upload(b, weights[0][1], N * K),
                   *yb = upload(b, resid, N * W), *gb = upload(b, gates, N);
        tnd_tensor ev = tnd_rows_f32(eb, W, 0, N * K), wv = tnd_rows_f32(wb, K, 0, N), yv = tnd_rows_f32(yb, W, 0, N),
                   gv = tnd_rows_f32(gb, 1, 0, N);
        b->vt->moe_combine(b, &ev, &wv, &yv);
        if (CHECK_OK(b->vt->synchronize(b))) sums[k] = download(b, yb, N * W);
        b->vt->sigmoid_scale(b, &yv, &gv);
        if (CHECK_OK(b->vt->synchronize(b))) scaled[k] = download(b, yb, N * W);
        b->vt->free(b, eb);
        b->vt->free(b, wb);
        b->vt->free(b, yb);
        b->vt->free(b, gb);
    }
    if (weights[0][0] && weights[1][0] && weights[0][1] && weights[1][1]) {
        CHECK(memcmp(ids[0], ids[1], sizeof ids[0]) == 0);
        CHECK(ids[0][0][0] != ids[0][0][1]);
        record("moe_route", nmse(weights[1][0], weights[0][0], N * K) + nmse(weights[1][1], weights[0][1], N * K),
               1e-12);
        /* the reference's own rules: normalized weights sum to 1, and descend */
        for (int t = 0; t < N; t++) {
            float sum = 0;
            for (int j = 0; j < K; j++) sum += weights[0][1][t * K + j];
            CHECK(fabsf(sum - 1.0f) < 1e-6f && weights[0][0][t * K] >= weights[0][0][t * K + 1]);
        }
    }
    if (sums[0] && sums[1]) record("moe_combine", nmse(sums[1], sums[0], N * W), 1e-12);
    if (scaled[0] && scaled[1]) record("sigmoid_scale", nmse(scaled[1], scaled[0], N * W), 1e-12);
    for (int k = 0; k < 2; k++) {
        free(weights[k][0]);
        free(weights[k][1]);
        free(sums[k]);
        free(scaled[k]);
    }
    free(logits);
    free(experts);
    free(resid);
    free(gates);
}

/* ------------------------------------------------------------------------------------------------------------
 * Element-wise ops
 * ---------------------------------------------------------------------------------------------------------- */

typedef enum elementwise { EW_RMS_NORM, EW_ADD, EW_ADD_BIAS, EW_SWIGLU, EW_COPY, EW_ROPE_NORMAL, EW_ROPE_NEOX } elementwise;

static const char *const ew_names[] = {"rms_norm", "add", "add_bias", "swiglu", "copy", "rope (normal)", "rope (neox)"};

/* Runs one element-wise op on [rows][width] inputs a and b (b: [width] for norms and biases) on device d. */
static float *run_elementwise(tnd_backend *d, elementwise op, const float *a, const float *b, int64_t width,
                              int64_t rows, bool freq_factors) {
    tnd_buffer *ab = upload(d, a, width * rows), *bb = upload(d, b, width * rows), *ob = upload(d, NULL, width * rows);
    tnd_tensor av = tnd_rows_f32(ab, width, 0, rows), bv = tnd_rows_f32(bb, width, 0, rows);
    tnd_tensor gv = tnd_rows_f32(bb, width, 0, 1), ov = tnd_rows_f32(ob, width, 0, rows);
    begin(d, rows);
    int32_t head_dim = 64, n_heads = (int32_t)(width / head_dim);
    tnd_buffer *fb = NULL;
    switch (op) {
    case EW_RMS_NORM: d->vt->rms_norm(d, &av, &gv, &ov, 1e-5f); break;
    case EW_ADD: d->vt->add(d, &av, &bv); break;
    case EW_ADD_BIAS: d->vt->add_bias(d, &av, &gv); break;
    case EW_SWIGLU: d->vt->swiglu(d, &av, &bv, &ov); break;
    case EW_COPY: d->vt->copy(d, &ov, &av); break;
    case EW_ROPE_NORMAL:
    case EW_ROPE_NEOX: {
        float factors[24];
        for (int i = 0; i < 24; i++) factors[i] = 1.0f + (float)i * 0.25f;
        if (freq_factors) fb = upload(d, factors, 24);
        tnd_rope rope = {.mode = op == EW_ROPE_NEOX ? TND_ROPE_NEOX : TND_ROPE_NORMAL, .head_dim = head_dim,
                         .n_rot = 48, .base = 10000.0f, .scale = 1.0f};
        if (fb) rope.freq_factors = tnd_rows_f32(fb, 24, 0, 1);
        d->vt->rope(d, &av, n_heads, &rope);
        break;
    }
    }
    float *out = NULL;
    if (CHECK_OK(d->vt->synchronize(d)))
        out = download(d, op == EW_RMS_NORM || op == EW_SWIGLU || op == EW_COPY ? ob : ab, width * rows);
    d->vt->free(d, ab);
    d->vt->free(d, bb);
    d->vt->free(d, ob);
    if (fb) d->vt->free(d, fb);
    return out;
}

static void check_elementwise(tnd_backend *d) {
    static const int64_t shapes[][2] = {{64, 1}, {896, 3}, {1000, 7}, {4864, 2}, {128, 70}};
    for (int op = EW_RMS_NORM; op <= EW_ROPE_NEOX; op++)
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
            int64_t width = shapes[s][0], rows = shapes[s][1];
            if (op >= EW_ROPE_NORMAL && width % 64) continue; /* whole heads of 64 */
            float *a = random_floats(width * rows, 3.0f), *b = random_floats(width * rows, 2.0f);
            for (int ff = 0; ff < (op >= EW_ROPE_NORMAL ? 2 : 1); ff++) {
                float *want = run_elementwise(ref, (elementwise)op, a, b, width, rows, ff);
                float *got = run_elementwise(d, (elementwise)op, a, b, width, rows, ff);
                /* the fast swiglu uses a vector exp (relative error ~1e-7 per element); the rest is exact */
                if (want && got)
                    record(ew_names[op], nmse(got, want, width * rows), op == EW_SWIGLU ? 1e-11 : current->rounding);
                free(want);
                free(got);
            }
            free(a);
            free(b);
        }
}

/* ------------------------------------------------------------------------------------------------------------
 * KV store and attention: several sequences in a paged cache with shuffled blocks
 * ---------------------------------------------------------------------------------------------------------- */

enum { BLOCK = 16, N_SEQ = 3, N_BLOCKS = 24 };

static const int32_t seq_len[N_SEQ] = {1, 37, 130};  /* positions each sequence holds */
static const int32_t seq_new[N_SEQ] = {1, 3, 5};     /* of them, the last ones the attention step runs */

/* Attention of the last seq_new[s] tokens of every sequence after all their K/V rows were stored in one step;
 * returns the output [n_tokens][n_head * head_dim]. */
/* Stores the float K and V rows ([n][kvw]) of `store`'s tokens into the pools as k_type and v_type; false when the
 * device reported a failure. */
static bool store_kv(tnd_backend *d, const tnd_step *store, tnd_buffer *k_pool, tnd_buffer *v_pool, tnd_type k_type,
                     tnd_type v_type, const float *k, const float *v, int64_t kvw, int32_t head_dim) {
    tnd_buffer *kb = upload(d, k, kvw * store->n_tokens), *vb = upload(d, v, kvw * store->n_tokens);
    tnd_tensor kt = tnd_rows_f32(kb, kvw, 0, store->n_tokens), vt = tnd_rows_f32(vb, kvw, 0, store->n_tokens);
    d->vt->begin_step(d, store);
    d->vt->kv_store(d, k_pool, v_pool, k_type, v_type, &kt, &vt, head_dim);
    bool ok = CHECK_OK(d->vt->synchronize(d));
    d->vt->free(d, kb);
    d->vt->free(d, vb);
    return ok;
}

static float *run_attention(tnd_backend *d, tnd_type k_type, tnd_type v_type, int32_t n_head, int32_t n_head_kv,
                            int32_t head_dim, const float *k, const float *v, const float *q,
                            const int32_t tables[N_SEQ][N_BLOCKS]) {
    int64_t kvw = (int64_t)n_head_kv * head_dim, qw = (int64_t)n_head * head_dim;
    tnd_buffer *k_pool = d->vt->alloc(d, tnd_row_size(k_type, kvw) * BLOCK * N_BLOCKS);
    tnd_buffer *v_pool = d->vt->alloc(d, tnd_row_size(v_type, kvw) * BLOCK * N_BLOCKS);
    /* store: every position of every sequence */
    int64_t n_all = 0, n_run = 0;
    int32_t pos[256], n_ctx[256];
    int64_t slots[256];
    const int32_t *tabs[256];
    for (int s = 0; s < N_SEQ; s++)
        for (int32_t p = 0; p < seq_len[s]; p++, n_all++) {
            pos[n_all] = p;
            slots[n_all] = (int64_t)tables[s][p / BLOCK] * BLOCK + p % BLOCK;
            tabs[n_all] = tables[s];
            n_ctx[n_all] = p + 1;
        }
    tnd_step store = {.n_tokens = n_all, .pos = pos, .slots = slots, .block_tables = tabs, .n_ctx = n_ctx,
                      .block_size = BLOCK};
    store_kv(d, &store, k_pool, v_pool, k_type, v_type, k, v, kvw, head_dim);
    /* attend: the last seq_new[s] positions of each sequence, their rows already in the cache */
    int32_t rpos[16], rctx[16];
    int64_t rslots[16];
    const int32_t *rtabs[16];
    for (int s = 0, at = 0; s < N_SEQ; at += seq_len[s], s++)
        for (int32_t j = seq_len[s] - seq_new[s]; j < seq_len[s]; j++, n_run++) {
            rpos[n_run] = pos[at + j];
            rslots[n_run] = slots[at + j];
            rtabs[n_run] = tabs[at + j];
            rctx[n_run] = n_ctx[at + j];
        }
    tnd_buffer *qb = upload(d, q, qw * n_run), *ob = upload(d, NULL, qw * n_run);
    tnd_step step = {.n_tokens = n_run, .pos = rpos, .slots = rslots, .block_tables = rtabs, .n_ctx = rctx,
                     .block_size = BLOCK};
    tnd_attention_args args = {.q = tnd_rows_f32(qb, qw, 0, n_run), .out = tnd_rows_f32(ob, qw, 0, n_run),
                               .n_head = n_head, .n_head_kv = n_head_kv, .head_dim = head_dim,
                               .scale = 1.0f / sqrtf((float)head_dim), .k_pool = k_pool, .v_pool = v_pool,
                               .k_type = k_type, .v_type = v_type};
    d->vt->begin_step(d, &step);
    d->vt->attention(d, &args);
    float *out = CHECK_OK(d->vt->synchronize(d)) ? download(d, ob, qw * n_run) : NULL;
    tnd_buffer *bufs[] = {k_pool, v_pool, qb, ob};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) d->vt->free(d, bufs[i]);
    return out;
}

static void check_attention(tnd_backend *d) {
    static const int32_t heads[][3] = {{4, 4, 64}, {14, 2, 64}, {8, 2, 128}, {6, 3, 32}, {32, 8, 64}};
    /* K and V types, alike and mixed (an F16 K read transposed with a V of another type, and the other way) */
    static const tnd_type kv_types[][2] = {{TND_TYPE_F32, TND_TYPE_F32},   {TND_TYPE_F16, TND_TYPE_F16},
                                           {TND_TYPE_Q8_0, TND_TYPE_Q8_0}, {TND_TYPE_Q4_0, TND_TYPE_Q4_0},
                                           {TND_TYPE_F16, TND_TYPE_Q4_0},  {TND_TYPE_Q8_0, TND_TYPE_F16}};
    /* each sequence's blocks, shuffled over the pool */
    int32_t tables[N_SEQ][N_BLOCKS], next = 0, order[N_BLOCKS];
    for (int i = 0; i < N_BLOCKS; i++) order[i] = (i * 7 + 3) % N_BLOCKS;
    for (int s = 0; s < N_SEQ; s++)
        for (int b = 0; b < (seq_len[s] + BLOCK - 1) / BLOCK; b++) tables[s][b] = order[next++];
    int64_t n_all = 0, n_run = 0;
    for (int s = 0; s < N_SEQ; s++) n_all += seq_len[s], n_run += seq_new[s];
    for (size_t h = 0; h < sizeof heads / sizeof heads[0]; h++)
        for (size_t t = 0; t < sizeof kv_types / sizeof kv_types[0]; t++) {
            int32_t n_head = heads[h][0], n_head_kv = heads[h][1], head_dim = heads[h][2];
            tnd_type kt = kv_types[t][0], vt = kv_types[t][1];
            tnd_op_query q = {.op = TND_OP_ATTENTION, .type = kt, .v_type = vt, .n_head = n_head,
                              .n_head_kv = n_head_kv, .head_dim = head_dim};
            if (!CHECK(d->vt->supports(d, &q))) continue;
            float *k = random_floats((int64_t)n_head_kv * head_dim * n_all, 1.0f);
            float *v = random_floats((int64_t)n_head_kv * head_dim * n_all, 1.0f);
            float *qx = random_floats((int64_t)n_head * head_dim * n_run, 1.0f);
            float *want = run_attention(ref, kt, vt, n_head, n_head_kv, head_dim, k, v, qx, tables);
            float *got = run_attention(d, kt, vt, n_head, n_head_kv, head_dim, k, v, qx, tables);
            char what[48];
            snprintf(what, sizeof what, "kv_store + attention, %s K %s V", tnd_type_name(kt), tnd_type_name(vt));
            /* the CPU's fast kernels read the same stored values, sum in another order and use a vector exp; a GPU's
             * division (a reciprocal) may round a Q8_0 or Q4_0 block's scale apart from the CPU's and move a level by
             * one (lavapipe: 1.3e-11); the CPU scores a Q8_0 K against the queries rounded to 8 bits a value, as
             * llama.cpp's CPU does (1.7e-7 to 2.1e-7), and sums a Q8_0 V with the weights rounded to 8 bits (avx512:
             * 7.9e-7 in all) or 7 (AVX2: 2.5e-6 to 2.6e-6); a wrong block or row gives 1e-3 and more */
            bool quantized = kt == TND_TYPE_Q8_0 || kt == TND_TYPE_Q4_0 || vt == TND_TYPE_Q8_0 || vt == TND_TYPE_Q4_0;
            double bound = kt == TND_TYPE_Q8_0 ? (vt == TND_TYPE_Q8_0 ? 1e-5 : 1e-6)
                           : current->rounding && quantized ? 1e-7
                                                            : 1e-10;
            if (want && got) record(what, nmse(got, want, (int64_t)n_head * head_dim * n_run), bound);
            free(want);
            free(got);
            free(k);
            free(v);
            free(qx);
        }
}

/* ------------------------------------------------------------------------------------------------------------
 * Long contexts: attention in segments of the context (split across threads), merged
 * ---------------------------------------------------------------------------------------------------------- */

enum { LONG_POS = 4600, LONG_HEADS = 4, LONG_KV = 2, LONG_HD = 64 };

/* Attention of query tokens [first, first + n) of one sequence over an F32 cache of LONG_POS positions (k, v:
 * [LONG_POS][LONG_KV * LONG_HD]), in one step or (alone) one step per token; out [n][LONG_HEADS * LONG_HD]. */
static float *run_long(tnd_backend *d, const float *k, const float *v, const float *q, int32_t first, int32_t n,
                       bool alone) {
    int64_t kvw = LONG_KV * LONG_HD, qw = LONG_HEADS * LONG_HD, n_blocks = (LONG_POS + BLOCK - 1) / BLOCK;
    static int32_t table[(LONG_POS + BLOCK - 1) / BLOCK], pos[LONG_POS], n_ctx[LONG_POS];
    static int64_t slots[LONG_POS];
    static const int32_t *tabs[LONG_POS];
    for (int64_t b = 0; b < n_blocks; b++) table[b] = (int32_t)((b * 37 + 11) % n_blocks); /* shuffled blocks */
    for (int32_t p = 0; p < LONG_POS; p++) {
        pos[p] = p;
        slots[p] = (int64_t)table[p / BLOCK] * BLOCK + p % BLOCK;
        tabs[p] = table;
        n_ctx[p] = p + 1;
    }
    tnd_buffer *k_pool = d->vt->alloc(d, sizeof(float) * (size_t)(kvw * BLOCK * n_blocks));
    tnd_buffer *v_pool = d->vt->alloc(d, sizeof(float) * (size_t)(kvw * BLOCK * n_blocks));
    tnd_step store = {.n_tokens = LONG_POS, .pos = pos, .slots = slots, .block_tables = tabs, .n_ctx = n_ctx,
                      .block_size = BLOCK};
    bool ok = store_kv(d, &store, k_pool, v_pool, TND_TYPE_F32, TND_TYPE_F32, k, v, kvw, LONG_HD);
    tnd_buffer *qb = upload(d, q, qw * n), *ob = upload(d, NULL, qw * n);
    for (int32_t i = 0; i < n && ok; i += alone ? 1 : n) {
        int32_t m = alone ? 1 : n;
        tnd_step step = {.n_tokens = m, .pos = pos + first + i, .slots = slots + first + i, .block_tables = tabs,
                         .n_ctx = n_ctx + first + i, .block_size = BLOCK};
        tnd_attention_args args = {.q = tnd_rows_f32(qb, qw, i, m), .out = tnd_rows_f32(ob, qw, i, m),
                                   .n_head = LONG_HEADS, .n_head_kv = LONG_KV, .head_dim = LONG_HD,
                                   .scale = 1.0f / sqrtf((float)LONG_HD), .k_pool = k_pool, .v_pool = v_pool,
                                   .k_type = TND_TYPE_F32, .v_type = TND_TYPE_F32};
        d->vt->begin_step(d, &step);
        d->vt->attention(d, &args);
        ok = CHECK_OK(d->vt->synchronize(d));
    }
    float *out = ok ? download(d, ob, qw * n) : NULL;
    tnd_buffer *bufs[] = {k_pool, v_pool, qb, ob};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) d->vt->free(d, bufs[i]);
    return out;
}

/* Contexts of up to three segments: against softmax attention in double precision, the same bits with 1, 2 and 3
 * threads, and a block of 16 tokens straddling a segment's end equal to its tokens one by one. */
static void check_long_attention(bool reference) {
    int64_t kvw = LONG_KV * LONG_HD, qw = LONG_HEADS * LONG_HD;
    float *k = random_floats(kvw * LONG_POS, 1.0f), *v = random_floats(kvw * LONG_POS, 1.0f);
    static const int32_t firsts[] = {2040, LONG_POS - 16}; /* across the first segment's end; the last positions */
    for (size_t f = 0; f < sizeof firsts / sizeof firsts[0]; f++) {
        int32_t first = firsts[f], n = 16;
        float *q = random_floats(qw * n, 1.0f);
        float *got[3] = {0}, *alone = NULL;
        for (int threads = 1; threads <= 3; threads++) {
            tnd_backend *d = NULL;
            if (!CHECK_OK(tnd_backend_cpu_init(threads, reference, NULL, "cpu-long", &d))) continue;
            got[threads - 1] = run_long(d, k, v, q, first, n, false);
            if (threads == 2) alone = run_long(d, k, v, q, first, n, true);
            d->vt->destroy(d);
        }
        size_t bytes = sizeof(float) * (size_t)(qw * n);
        CHECK(got[0] && got[1] && got[2] && alone && !memcmp(got[0], got[1], bytes) && !memcmp(got[0], got[2], bytes) &&
              !memcmp(got[0], alone, bytes));
        /* the exact math */
        double *want = malloc(sizeof(double) * (size_t)(qw * n)), *w = malloc(sizeof(double) * LONG_POS);
        for (int32_t t = 0; t < n; t++)
            for (int32_t h = 0; h < LONG_HEADS; h++) {
                int32_t g = h / (LONG_HEADS / LONG_KV), n_ctx = first + t + 1;
                double m = -INFINITY, z = 0;
                for (int32_t p = 0; p < n_ctx; p++) {
                    double s = 0;
                    for (int32_t i = 0; i < LONG_HD; i++)
                        s += (double)q[(t * LONG_HEADS + h) * LONG_HD + i] * k[p * kvw + g * LONG_HD + i];
                    w[p] = s / sqrt((double)LONG_HD);
                    if (w[p] > m) m = w[p];
                }
                for (int32_t p = 0; p < n_ctx; p++) z += w[p] = exp(w[p] - m);
                for (int32_t i = 0; i < LONG_HD; i++) {
                    double o = 0;
                    for (int32_t p = 0; p < n_ctx; p++) o += w[p] * v[p * kvw + g * LONG_HD + i];
                    want[(t * LONG_HEADS + h) * LONG_HD + i] = o / z;
                }
            }
        float *wantf = malloc(bytes);
        for (int64_t i = 0; i < qw * n; i++) wantf[i] = (float)want[i];
        if (got[0]) record(reference ? "attention in segments (reference)" : "attention in segments",
                           nmse(got[0], wantf, qw * n), 1e-10);
        for (int i = 0; i < 3; i++) free(got[i]);
        free(alone);
        free(want);
        free(wantf);
        free(w);
        free(q);
    }
    free(k);
    free(v);
}

int main(void) {
    if (!CHECK_OK(tnd_backend_cpu_init(2, true, NULL, "cpu-ref", &ref))) return tnd_test_finish("backend_ops");
    for (size_t i = 0; i < sizeof devices / sizeof devices[0]; i++) {
        tnd_backend *d = NULL;
        current = &devices[i];
        bool absent = devices[i].init == vulkan ? tnd_vulkan_devices(NULL, 0) < 1
                      : devices[i].init == cuda ? tnd_cuda_devices() < 1 : false;
        if (absent) {
            /* CI installs a software Vulkan driver and asks for it, scripts/gpu_check.sh asks for a CUDA GPU;
             * elsewhere a device may be absent */
            const char *need = getenv(devices[i].init == vulkan ? "TANDEM_REQUIRE_VULKAN" : "TANDEM_REQUIRE_CUDA");
            CHECK(!need || !*need || !strcmp(need, "0"));
            printf("%s: no such device on this machine: not tested\n", current->name);
            continue;
        }
        if (!CHECK_OK(current->init(&d)) || !CHECK_OK(d->vt->reserve(d, 4096, 256))) continue;
        char description[160];
        d->vt->describe(d, description, sizeof description);
        int8_activations = strstr(description, "int8 dot") != NULL;
        memset(tallies, 0, sizeof tallies);
        n_tallies = 0;
        check_weight_types(d);
        check_elementwise(d);
        check_attention(d);
        check_expert_types(d);
        check_moe_ops(d);
        printf("%s (%s) against the reference:\n", devices[i].name, description);
        for (int t = 0; t < n_tallies; t++)
            printf("  %-34s %4d runs, worst NMSE %.3g\n", tallies[t].what, tallies[t].runs, tallies[t].worst);
        d->vt->destroy(d);
    }
    current = &devices[0];
    check_expert_slots(ref, TND_TYPE_Q8_0, 96, 40); /* the reference path, and writable weights kept unpacked */
    check_expert_slots(ref, TND_TYPE_Q4_K, 512, 64);
    memset(tallies, 0, sizeof tallies);
    n_tallies = 0;
    check_long_attention(false);
    check_long_attention(true);
    printf("cpu attention in segments:\n");
    for (int t = 0; t < n_tallies; t++)
        printf("  %-34s %4d runs, worst NMSE %.3g\n", tallies[t].what, tallies[t].runs, tallies[t].worst);
    ref->vt->destroy(ref);
    return tnd_test_finish("backend_ops");
}
