/* test_quant_formats.c: every tensor format's reference kernels: quantize-then-dequantize error within a per-type
 * bound on odd block counts, edge values (zeros, huge, NaN), the reference dot against double math, and real data:
 * the quantized fixture files decode to their f32 source within the same bounds. */
#include "harness.h"

#include "model/model.h"
#include "quant/quant.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Relative RMS error bounds of a round trip on gaussian data with an outlier (6 sigma) every 61 elements, which
 * dominates the blocks it falls in; measured values are printed (bounds are about 1.2x them). */
static const struct {
    tnd_type type;
    double bound;
} formats[] = {
    {TND_TYPE_F32, 0},       {TND_TYPE_F16, 1e-3},    {TND_TYPE_BF16, 5e-3},  {TND_TYPE_Q8_0, 0.01},
    {TND_TYPE_Q8_1, 0.015},  {TND_TYPE_Q8_K, 0.025},   {TND_TYPE_Q6_K, 0.04},  {TND_TYPE_Q5_0, 0.13},
    {TND_TYPE_Q5_1, 0.06},   {TND_TYPE_Q5_K, 0.06},   {TND_TYPE_Q4_0, 0.18},  {TND_TYPE_Q4_1, 0.12},
    {TND_TYPE_Q4_K, 0.11},   {TND_TYPE_Q3_K, 0.25},   {TND_TYPE_Q2_K, 0.45},
};
enum { N_FORMATS = sizeof formats / sizeof formats[0] };

static uint64_t rng = 42;
static float gaussian(void) {
    double u = 0;
    for (int i = 0; i < 12; i++) {
        rng = rng * 6364136223846793005ull + 1442695040888963407ull;
        u += (double)(rng >> 11) / 9007199254740992.0;
    }
    return (float)(u - 6.0);
}

static double rel_rms(const float *a, const float *ref, int64_t n) {
    double num = 0, den = 0;
    for (int64_t i = 0; i < n; i++) {
        num += ((double)a[i] - ref[i]) * ((double)a[i] - ref[i]);
        den += (double)ref[i] * ref[i];
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

static void test_round_trips(void) {
    static const int64_t blocks[] = {1, 3, 7, 33};
    for (int f = 0; f < N_FORMATS; f++) {
        const tnd_type_traits *t = tnd_type_traits_of(formats[f].type);
        if (!CHECK(t && t->to_float && t->from_float)) continue;
        double worst = 0;
        for (size_t b = 0; b < 4; b++) {
            int64_t n = blocks[b] * (t->block_size < 32 ? 32 : t->block_size);
            float *x = malloc(sizeof(float) * (size_t)n), *y = malloc(sizeof(float) * (size_t)n);
            uint8_t *q = malloc(tnd_row_size(formats[f].type, n));
            for (int64_t i = 0; i < n; i++) x[i] = gaussian() * (i % 61 == 0 ? 6.0f : 1.0f);
            t->from_float(x, q, n);
            t->to_float(q, y, n);
            double e = rel_rms(y, x, n);
            worst = e > worst ? e : worst;
            free(x);
            free(y);
            free(q);
        }
        printf("  %-5s round-trip relative RMS error %.4f (bound %.4f)\n", t->name, worst, formats[f].bound);
        CHECK(worst <= formats[f].bound);
    }
}

/* Zeros come back as exact zeros; huge finite values stay finite; a NaN in a block does not touch other blocks. */
static void test_edge_values(void) {
    for (int f = 0; f < N_FORMATS; f++) {
        const tnd_type_traits *t = tnd_type_traits_of(formats[f].type);
        int64_t n = 2 * (t->block_size < 32 ? 32 : t->block_size);
        float *x = calloc((size_t)n, sizeof(float)), *y = malloc(sizeof(float) * (size_t)n);
        uint8_t *q = malloc(tnd_row_size(formats[f].type, n));
        t->from_float(x, q, n);
        t->to_float(q, y, n);
        bool zeros = true;
        for (int64_t i = 0; i < n; i++) zeros &= y[i] == 0;
        CHECK(zeros);
        float big = formats[f].type == TND_TYPE_F16 ? 6e4f : 1e30f;
        for (int64_t i = 0; i < n; i++) x[i] = (i % 3 ? 0.5f : -1.0f) * (i % 5 == 0 ? big : 1.0f);
        t->from_float(x, q, n);
        t->to_float(q, y, n);
        bool finite = true;
        for (int64_t i = 0; i < n; i++) finite &= isfinite(y[i]);
        CHECK(finite); /* fp16 block scales saturate: huge inputs decode to large finite values */
        /* NaN in the first block only: the second block decodes as if alone */
        for (int64_t i = 0; i < n; i++) x[i] = (float)(i % 7) - 3.0f;
        x[1] = NAN;
        t->from_float(x, q, n);
        t->to_float(q, y, n);
        float *alone = malloc(sizeof(float) * (size_t)n / 2);
        uint8_t *q2 = malloc(tnd_row_size(formats[f].type, n / 2));
        t->from_float(x + n / 2, q2, n / 2);
        t->to_float(q2, alone, n / 2);
        CHECK(memcmp(alone, y + n / 2, sizeof(float) * (size_t)n / 2) == 0);
        free(alone);
        free(q2);
        free(x);
        free(y);
        free(q);
    }
}

/* The reference dot equals a double dot of the dequantized operands. */
static void test_dots(void) {
    for (int f = 0; f < N_FORMATS; f++) {
        const tnd_type_traits *t = tnd_type_traits_of(formats[f].type);
        if (!t->vec_dot) continue;
        const tnd_type_traits *a = tnd_type_traits_of(t->vec_dot_type);
        int64_t n = 3 * 256;
        float *x = malloc(sizeof(float) * (size_t)n), *y = malloc(sizeof(float) * (size_t)n);
        float *xd = malloc(sizeof(float) * (size_t)n), *yd = malloc(sizeof(float) * (size_t)n);
        uint8_t *xq = malloc(tnd_row_size(formats[f].type, n)), *yq = malloc(tnd_row_size(t->vec_dot_type, n));
        for (int64_t i = 0; i < n; i++) {
            x[i] = gaussian();
            y[i] = gaussian();
        }
        t->from_float(x, xq, n);
        a->from_float(y, yq, n);
        t->to_float(xq, xd, n);
        a->to_float(yq, yd, n);
        double exact = 0, scale = 0;
        for (int64_t i = 0; i < n; i++) {
            exact += (double)xd[i] * yd[i];
            scale += fabs((double)xd[i] * yd[i]);
        }
        CHECK(fabs(t->vec_dot(xq, yq, n) - exact) <= 1e-6 * scale);
        free(x);
        free(y);
        free(xd);
        free(yd);
        free(xq);
        free(yq);
    }
}

/* Real data: each quantized fixture's tensors decode to the f32 file's tensors within the type's bound. */
static void test_fixture_tensors(void) {
    static const char *files[] = {"f16", "bf16", "q8_0", "q4_0", "q4_1", "q5_0", "q5_1",
                                  "q2_k", "q3_k_m", "q4_k_m", "q5_k_m", "q6_k"};
    tnd_model *ref = NULL;
    if (!CHECK_OK(tnd_model_open(tnd_fixture("models/llama-tiny-f32.gguf"), NULL, &ref))) return;
    for (size_t k = 0; k < sizeof files / sizeof files[0]; k++) {
        char path[96];
        snprintf(path, sizeof path, "models/llama-tiny-%s.gguf", files[k]);
        tnd_model *m = NULL;
        if (!CHECK_OK(tnd_model_open(tnd_fixture(path), NULL, &m))) continue;
        int ok = 0, total = 0;
        double worst = 0;
        for (uint64_t i = 0; i < m->gguf->n_tensors; i++) {
            const tnd_gguf_tensor *t = &m->gguf->tensors[i];
            int64_t j = tnd_gguf_find_tensor(ref->gguf, t->name);
            if (!CHECK(j >= 0)) continue;
            const tnd_gguf_tensor *r = &ref->gguf->tensors[j];
            float *y = malloc(sizeof(float) * t->n_elements);
            tnd_type_traits_of(t->type)->to_float(t->data, y, (int64_t)t->n_elements);
            double e = rel_rms(y, (const float *)(const void *)r->data, (int64_t)t->n_elements);
            double bound = 1;
            for (int f = 0; f < N_FORMATS; f++)
                if (formats[f].type == t->type) bound = formats[f].bound;
            ok += e <= bound;
            total++;
            worst = e > worst ? e : worst;
            free(y);
        }
        printf("  llama-tiny-%-7s %d/%d tensors within their type's bound (worst relative RMS %.4f)\n", files[k], ok,
               total, worst);
        CHECK(ok == total && total == 21);
        tnd_model_close(m);
    }
    tnd_model_close(ref);
}

int main(void) {
    test_round_trips();
    test_edge_values();
    test_dots();
    test_fixture_tensors();
    return tnd_test_finish("test_quant_formats");
}
