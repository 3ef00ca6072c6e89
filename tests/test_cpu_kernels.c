/* test_cpu_kernels.c: every entry of the CPU kernel table chosen for this processor (SIMD where present) against a
 * double-precision dot product of the same dequantized operands, on odd sizes; and the table for the reference
 * kernels matches the type traits. */
#include "harness.h"

#include "backend/cpu/cpu_kernels.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng = 0x1234567;
static float uniform(void) {
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((rng >> 40) * (1.0 / 16777216.0)) * 2.0f - 1.0f;
}

/* Dot of weights of type `t` and activations converted by `k`, against double math on the decoded operands. */
static void check_entry(tnd_type t, const tnd_cpu_dot *k, int64_t n) {
    const tnd_type_traits *wt = tnd_type_traits_of(t), *at = tnd_type_traits_of(k->act_type);
    float *w = malloc(sizeof(float) * (size_t)n), *x = malloc(sizeof(float) * (size_t)n);
    float *wd = malloc(sizeof(float) * (size_t)n), *xd = malloc(sizeof(float) * (size_t)n);
    uint8_t *wq = malloc(tnd_row_size(t, n) + 64), *xq = malloc(tnd_row_size(k->act_type, n) + 64);
    for (int64_t i = 0; i < n; i++) {
        w[i] = uniform() * (i % 7 == 0 ? 3.0f : 1.0f);
        x[i] = uniform() * (i % 5 == 0 ? 4.0f : 1.0f);
    }
    wt->from_float(w, wq, n);
    wt->to_float(wq, wd, n);
    k->quantize_act(x, xq, n);
    at->to_float(xq, xd, n);
    double exact = 0, scale = 0;
    for (int64_t i = 0; i < n; i++) {
        exact += (double)wd[i] * xd[i];
        scale += fabs((double)wd[i] * xd[i]);
    }
    double got = k->dot(wq, xq, n);
    bool ok = fabs(got - exact) <= 2e-5 * scale + 1e-6;
    if (!CHECK(ok))
        fprintf(stderr, "  %s (%s, activations %s) n=%lld: %.7g, exact %.7g\n", wt->name, k->isa, at->name,
                (long long)n, got, exact);
    free(w);
    free(x);
    free(wd);
    free(xd);
    free(wq);
    free(xq);
}

/* A tile equals the entry's dot product for each of its rows x tokens bit for bit, so that a row's result does not
 * depend on the batch it was computed in (the server's batching invariance rests on it). */
static void check_tile(tnd_type t, const tnd_cpu_dot *k, int64_t n) {
    const tnd_type_traits *wt = tnd_type_traits_of(t);
    size_t wrow = tnd_row_size(t, n), arow = tnd_row_size(k->act_type, n);
    uint8_t *w = malloc(wrow * TND_CPU_TILE_ROWS), *a = malloc(arow * TND_CPU_TILE_TOKENS);
    float *x = malloc(sizeof(float) * (size_t)n), y[TND_CPU_TILE_TOKENS * 8];
    for (int r = 0; r < TND_CPU_TILE_ROWS; r++) {
        for (int64_t i = 0; i < n; i++) x[i] = uniform();
        wt->from_float(x, w + r * wrow, n);
    }
    for (int q = 0; q < TND_CPU_TILE_TOKENS; q++) {
        for (int64_t i = 0; i < n; i++) x[i] = uniform() * 3;
        k->quantize_act(x, a + q * arow, n);
    }
    k->tile(w, wrow, a, arow, n, y, 8);
    int same = 0;
    for (int q = 0; q < TND_CPU_TILE_TOKENS; q++)
        for (int r = 0; r < TND_CPU_TILE_ROWS; r++) {
            float d = k->dot(w + r * wrow, a + q * arow, n);
            same += memcmp(&y[q * 8 + r], &d, sizeof d) == 0;
        }
    if (!CHECK(same == TND_CPU_TILE_ROWS * TND_CPU_TILE_TOKENS))
        fprintf(stderr, "  %s tile (%s) n=%lld: %d of %d equal to the dot\n", wt->name, k->isa, (long long)n, same,
                TND_CPU_TILE_ROWS * TND_CPU_TILE_TOKENS);
    free(w);
    free(a);
    free(x);
}

int main(void) {
    tnd_cpu_features f = tnd_cpu_detect();
    char names[256];
    tnd_cpu_features_string(&f, names, sizeof names);
    printf("cpu features: %s\n", names);
    tnd_cpu_kernels best, ref;
    tnd_cpu_kernels_best(&best, &f);
    tnd_cpu_kernels_reference(&ref);
    int tested = 0;
    for (int t = 0; t < TND_TYPE_COUNT; t++) {
        const tnd_type_traits *tr = tnd_type_traits_of((tnd_type)t);
        if (!tr) continue;
        if (tr->vec_dot) CHECK(ref.dot[t].dot == tr->vec_dot && ref.dot[t].act_type == tr->vec_dot_type);
        const tnd_cpu_dot *entries[2] = {&ref.dot[t], &best.dot[t]};
        for (int e = 0; e < 2; e++) {
            const tnd_cpu_dot *k = entries[e];
            if (!k->dot || !tr->from_float || !tr->to_float || !tnd_type_traits_of(k->act_type)->to_float) continue;
            int64_t bs = tr->block_size > tnd_type_traits_of(k->act_type)->block_size
                             ? tr->block_size : tnd_type_traits_of(k->act_type)->block_size;
            static const int64_t blocks[] = {1, 3, 7, 33};
            for (size_t b = 0; b < 4; b++) check_entry((tnd_type)t, k, bs * blocks[b]);
            if (bs == 1)
                for (int64_t n = 1; n < 70; n += 3) check_entry((tnd_type)t, k, n);
            if (k->tile)
                for (size_t b = 0; b < 4; b++) check_tile((tnd_type)t, k, bs * blocks[b]);
            tested++;
            printf("  %-6s %-5s activations %s%s\n", tr->name, k->isa, tnd_type_traits_of(k->act_type)->name,
                   k->tile ? ", tiles" : "");
        }
    }
    CHECK(tested > 0);
    return tnd_test_finish("test_cpu_kernels");
}
