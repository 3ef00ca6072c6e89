/* test_quant.c: the reference kernels of every tensor format: round-trip error within the bounds quant.h documents
 * (several distributions, odd block counts), edge values (zeros, huge, tiny, NaN, infinities), unaligned blocks, the
 * reference dots against double math, and real data: every tensor of the quantized fixture models decodes to its
 * f32 source within the bound, and quantizing the f32 source reproduces the file's bytes exactly. */
#include "harness.h"

#include "core/mapped_file.h"
#include "gguf/gguf.h"
#include "quant/quant.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The round-trip bounds documented in quant.h: relative RMS error on gaussian, uniform and all-positive data
 * (`typical`, also the bound for the fixture models' weights), and on gaussian data where one element in 61 is 8
 * times larger and dominates its block (`outliers`). */
static const struct {
    tnd_type type;
    double typical, outliers;
} formats[] = {
    {TND_TYPE_F32, 0, 0},           {TND_TYPE_F16, 4.9e-4, 4.9e-4},   {TND_TYPE_BF16, 3.9e-3, 3.9e-3},
    {TND_TYPE_Q8_0, 0.011, 0.017},  {TND_TYPE_Q8_1, 0.011, 0.017},    {TND_TYPE_Q8_K, 0.011, 0.035},
    {TND_TYPE_Q6_K, 0.026, 0.042},  {TND_TYPE_Q5_0, 0.075, 0.13},     {TND_TYPE_Q5_1, 0.062, 0.081},
    {TND_TYPE_Q5_K, 0.049, 0.064},  {TND_TYPE_Q4_0, 0.16, 0.26},      {TND_TYPE_Q4_1, 0.13, 0.15},
    {TND_TYPE_Q4_K, 0.094, 0.125},  {TND_TYPE_Q3_K, 0.2, 0.29},       {TND_TYPE_Q2_K, 0.4, 0.53},
};
enum { N_FORMATS = sizeof formats / sizeof formats[0] };

static double bound_of(tnd_type type) {
    for (int f = 0; f < N_FORMATS; f++)
        if (formats[f].type == type) return formats[f].typical;
    return -1;
}

/* ------------------------------------------------------------------------------------------------------------
 * Data
 * ---------------------------------------------------------------------------------------------------------- */

static uint64_t rng = 42;
static double uniform01(void) {
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return (double)(rng >> 11) / 9007199254740992.0;
}
static float gaussian(void) {
    double u1 = uniform01(), u2 = uniform01();
    return (float)(sqrt(-2.0 * log(u1 + 1e-300)) * cos(6.283185307179586 * u2));
}

enum distribution { GAUSSIAN, UNIFORM, OUTLIERS, POSITIVE, N_DISTRIBUTIONS };
static const char *const distribution_names[] = {"gaussian", "uniform", "outliers", "positive"};

static void fill(float *x, int64_t n, enum distribution d) {
    for (int64_t i = 0; i < n; i++) {
        switch (d) {
        case GAUSSIAN: x[i] = gaussian(); break;
        case UNIFORM: x[i] = (float)(2 * uniform01() - 1); break;
        case OUTLIERS: x[i] = gaussian() * (i % 61 == 0 ? 8.0f : 1.0f); break; /* one in 61 dominates its block */
        default: x[i] = (float)uniform01() + 0.25f; break;
        }
    }
}

static double rel_rms(const float *a, const float *ref, int64_t n) {
    double num = 0, den = 0;
    for (int64_t i = 0; i < n; i++) {
        num += ((double)a[i] - ref[i]) * ((double)a[i] - ref[i]);
        den += (double)ref[i] * ref[i];
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

/* Elements per block, at least 1. */
static int64_t block_of(tnd_type type) { return tnd_type_traits_of(type)->block_size; }

static void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    return p;
}

/* ------------------------------------------------------------------------------------------------------------
 * Round trips
 * ---------------------------------------------------------------------------------------------------------- */

/* Quantizes n floats and decodes them again. */
static void round_trip(tnd_type type, const float *x, float *y, int64_t n) {
    const tnd_type_traits *t = tnd_type_traits_of(type);
    uint8_t *q = xmalloc(tnd_row_size(type, n));
    t->from_float(x, q, n);
    t->to_float(q, y, n);
    free(q);
}

static void test_round_trips(void) {
    static const int64_t block_counts[] = {1, 3, 7, 33};
    printf("round trips (relative RMS error, worst over 1/3/7/33 blocks of 256 or 32 elements):\n");
    for (int f = 0; f < N_FORMATS; f++) {
        const tnd_type type = formats[f].type;
        const tnd_type_traits *t = tnd_type_traits_of(type);
        if (!CHECK(t && t->to_float && t->from_float)) continue;
        double worst[N_DISTRIBUTIONS] = {0};
        for (int d = 0; d < N_DISTRIBUTIONS; d++) {
            for (size_t b = 0; b < sizeof block_counts / sizeof block_counts[0]; b++) {
                /* float types: odd element counts; block types: odd block counts */
                int64_t n = block_counts[b] * (block_of(type) == 1 ? 37 : block_of(type));
                float *x = xmalloc(sizeof(float) * (size_t)n), *y = xmalloc(sizeof(float) * (size_t)n);
                fill(x, n, (enum distribution)d);
                round_trip(type, x, y, n);
                double e = rel_rms(y, x, n);
                worst[d] = e > worst[d] ? e : worst[d];
                free(x);
                free(y);
            }
        }
        /* the validity range quant.h states: gaussian data of deviation 1e-3 and 1e4 stays within the bound */
        double scaled = 0;
        static const float deviations[] = {1e-3f, 1e4f};
        for (size_t k = 0; k < 2; k++) {
            int64_t n = 7 * (block_of(type) == 1 ? 37 : block_of(type));
            float *x = xmalloc(sizeof(float) * (size_t)n), *y = xmalloc(sizeof(float) * (size_t)n);
            fill(x, n, GAUSSIAN);
            for (int64_t i = 0; i < n; i++) x[i] *= deviations[k];
            round_trip(type, x, y, n);
            double e = rel_rms(y, x, n);
            scaled = e > scaled ? e : scaled;
            free(x);
            free(y);
        }
        printf("  %-5s", t->name);
        for (int d = 0; d < N_DISTRIBUTIONS; d++) printf("  %s %.5f", distribution_names[d], worst[d]);
        printf("  scaled %.5f  (bounds %.4g, outliers %.4g)\n", scaled, formats[f].typical, formats[f].outliers);
        bool ok = scaled <= formats[f].typical;
        for (int d = 0; d < N_DISTRIBUTIONS; d++)
            ok &= worst[d] <= (d == OUTLIERS ? formats[f].outliers : formats[f].typical);
        if (!CHECK(ok)) fprintf(stderr, "  %s exceeds its bound\n", t->name);
    }
}

/* ------------------------------------------------------------------------------------------------------------
 * Edge values
 * ---------------------------------------------------------------------------------------------------------- */

/* Blocks are independent: block `b` of a round trip of the whole row equals the round trip of that block alone. */
static bool same_as_alone(tnd_type type, const float *x, const float *y, int64_t bs, int64_t b) {
    float *alone = xmalloc(sizeof(float) * (size_t)bs);
    round_trip(type, x + b * bs, alone, bs);
    bool same = memcmp(alone, y + b * bs, sizeof(float) * (size_t)bs) == 0;
    free(alone);
    return same;
}

static void test_edge_values(void) {
    for (int f = 0; f < N_FORMATS; f++) {
        const tnd_type type = formats[f].type;
        const tnd_type_traits *t = tnd_type_traits_of(type);
        const bool blocky = t->block_size > 1;
        const int64_t bs = blocky ? t->block_size : 32; /* float types: treat 32 elements as a "block" */
        const int64_t n = 3 * bs;
        float *x = xmalloc(sizeof(float) * (size_t)n), *y = xmalloc(sizeof(float) * (size_t)n);
        int64_t bad = 0;

        /* all zeros (and negative zeros): exact zeros back */
        for (int64_t i = 0; i < n; i++) x[i] = i % 2 ? -0.0f : 0.0f;
        round_trip(type, x, y, n);
        for (int64_t i = 0; i < n; i++) bad += y[i] != 0;
        if (!CHECK(bad == 0)) fprintf(stderr, "  %s: zeros decode to non-zero\n", t->name);

        /* huge values among small ones (block 0), an ordinary block 1, huge alone in block 2: finite output; the
         * ordinary block is unaffected. f16 is excluded: its elements overflow to infinity by definition. */
        if (type != TND_TYPE_F16) {
            for (int64_t i = 0; i < n; i++) x[i] = (float)(i % 7) * 0.25f - 0.5f;
            for (int64_t i = 0; i < bs; i += 5) x[i] = (i / 5) % 2 ? 1e30f : -1e30f;
            for (int64_t i = 2 * bs; i < n; i++) x[i] = i % 2 ? 3e38f : -2e38f;
            round_trip(type, x, y, n);
            bad = 0;
            for (int64_t i = 0; i < n; i++) bad += !isfinite(y[i]);
            if (!CHECK(bad == 0)) fprintf(stderr, "  %s: %lld non-finite values from huge input\n", t->name,
                                          (long long)bad);
            CHECK(same_as_alone(type, x, y, bs, 1));
        } else {
            x[0] = 65519.0f; /* rounds to the largest half */
            x[1] = 65520.0f; /* rounds past it: infinity, as IEEE conversion does */
            round_trip(type, x, y, 2);
            CHECK(y[0] == 65504.0f && isinf(y[1]) && y[1] > 0);
        }

        /* tiny values (subnormal floats included): finite, no NaN, and no larger than the input's magnitude */
        for (int64_t i = 0; i < n; i++) x[i] = (i % 3 ? 1e-30f : -1e-38f) * (float)(i % 5 + 1);
        x[1] = 1e-44f;
        round_trip(type, x, y, n);
        bad = 0;
        for (int64_t i = 0; i < n; i++) bad += !isfinite(y[i]) || fabsf(y[i]) > 1e-29f;
        if (!CHECK(bad == 0)) fprintf(stderr, "  %s: tiny input decodes badly\n", t->name);

        /* NaN, +Inf, -Inf in block 1: that block decodes to NaN everywhere (block types) or keeps NaN / the
         * infinity in place (float types); blocks 0 and 2 decode as if alone */
        static const float specials[3] = {NAN, INFINITY, -INFINITY};
        for (int s = 0; s < 3; s++) {
            for (int64_t i = 0; i < n; i++) x[i] = (float)(i % 7) - 3.0f;
            x[bs + 3] = specials[s];
            round_trip(type, x, y, n);
            bad = 0;
            if (blocky) {
                for (int64_t i = bs; i < 2 * bs; i++) bad += !isnan(y[i]);
            } else {
                bad += s == 0 ? !isnan(y[bs + 3]) : y[bs + 3] != specials[s];
            }
            if (!CHECK(bad == 0))
                fprintf(stderr, "  %s: special value %g: %lld elements not as documented\n", t->name,
                        (double)specials[s], (long long)bad);
            CHECK(same_as_alone(type, x, y, bs, 0) && same_as_alone(type, x, y, bs, 2));
        }
        free(x);
        free(y);
    }
}

/* Blocks at odd addresses (as inside GGUF files) quantize and decode to the same bytes and floats. */
static void test_unaligned(void) {
    for (int f = 0; f < N_FORMATS; f++) {
        const tnd_type type = formats[f].type;
        const tnd_type_traits *t = tnd_type_traits_of(type);
        const int64_t n = 3 * (t->block_size > 1 ? t->block_size : 33);
        const size_t bytes = tnd_row_size(type, n);
        float *x = xmalloc(sizeof(float) * (size_t)n), *y0 = xmalloc(sizeof(float) * (size_t)n),
              *y1 = xmalloc(sizeof(float) * (size_t)n);
        uint8_t *aligned = xmalloc(bytes), *odd = xmalloc(bytes + 1);
        fill(x, n, GAUSSIAN);
        t->from_float(x, aligned, n);
        t->from_float(x, odd + 1, n);
        t->to_float(aligned, y0, n);
        t->to_float(odd + 1, y1, n);
        CHECK(memcmp(aligned, odd + 1, bytes) == 0 && memcmp(y0, y1, sizeof(float) * (size_t)n) == 0);
        free(x);
        free(y0);
        free(y1);
        free(aligned);
        free(odd);
    }
}

/* Activation formats carry consistent side data: Q8_K's bsums are the sums of its quants; Q8_1's s is d times the
 * sum of its quants (within fp16 rounding of both). */
static void test_activation_side_data(void) {
    const int64_t n = 5 * 256;
    float *x = xmalloc(sizeof(float) * (size_t)n);
    fill(x, n, OUTLIERS);
    uint8_t *q = xmalloc(tnd_row_size(TND_TYPE_Q8_K, n));
    tnd_type_traits_of(TND_TYPE_Q8_K)->from_float(x, q, n);
    int bad = 0;
    for (int64_t b = 0; b < n / 256; b++) {
        const uint8_t *blk = q + b * 292;
        for (int g = 0; g < 16; g++) {
            int sum = 0;
            for (int e = 0; e < 16; e++) sum += (int8_t)blk[4 + 16 * g + e];
            int16_t stored;
            memcpy(&stored, blk + 260 + 2 * g, 2);
            bad += stored != sum;
        }
    }
    CHECK(bad == 0);
    free(q);
    q = xmalloc(tnd_row_size(TND_TYPE_Q8_1, n));
    tnd_type_traits_of(TND_TYPE_Q8_1)->from_float(x, q, n);
    float *y = xmalloc(sizeof(float) * 32);
    bad = 0;
    for (int64_t b = 0; b < n / 32; b++) {
        const uint8_t *blk = q + b * 36;
        tnd_type_traits_of(TND_TYPE_Q8_1)->to_float(blk, y, 32);
        double sum = 0;
        for (int e = 0; e < 32; e++) sum += y[e];
        uint16_t h;
        memcpy(&h, blk + 2, 2);
        float s;
        tnd_type_traits_of(TND_TYPE_F16)->to_float(&h, &s, 1);
        bad += fabs(s - sum) > 1.0 / 1024 * fabs(sum) + 1e-6;
    }
    CHECK(bad == 0);
    free(y);
    free(q);
    free(x);
}

/* ------------------------------------------------------------------------------------------------------------
 * Dot products
 * ---------------------------------------------------------------------------------------------------------- */

/* The reference dot of x (in the type) and y (in its vec_dot_type) equals the double dot of the decoded operands
 * to within 1e-6 of the sum of |x_i y_i|; a NaN block in x makes the dot NaN. */
static void test_dots(void) {
    static const int64_t counts[] = {1, 3, 7, 33};
    printf("reference dots (worst |dot - exact| / sum|x y|):\n");
    for (int f = 0; f < N_FORMATS; f++) {
        const tnd_type type = formats[f].type;
        const tnd_type_traits *t = tnd_type_traits_of(type);
        if (!t->vec_dot) continue;
        const tnd_type_traits *a = tnd_type_traits_of(t->vec_dot_type);
        if (!CHECK(a && a->from_float && a->to_float)) continue;
        double worst = 0;
        for (size_t c = 0; c < sizeof counts / sizeof counts[0]; c++) {
            const int64_t bs = t->block_size > a->block_size ? t->block_size : a->block_size;
            const int64_t n = counts[c] * (bs == 1 ? 29 : bs);
            float *x = xmalloc(sizeof(float) * (size_t)n), *y = xmalloc(sizeof(float) * (size_t)n);
            float *xd = xmalloc(sizeof(float) * (size_t)n), *yd = xmalloc(sizeof(float) * (size_t)n);
            uint8_t *xq = xmalloc(tnd_row_size(type, n)), *yq = xmalloc(tnd_row_size(t->vec_dot_type, n));
            fill(x, n, c % 2 ? OUTLIERS : GAUSSIAN);
            fill(y, n, c % 2 ? GAUSSIAN : POSITIVE);
            t->from_float(x, xq, n);
            a->from_float(y, yq, n);
            t->to_float(xq, xd, n);
            a->to_float(yq, yd, n);
            double exact = 0, scale = 0;
            for (int64_t i = 0; i < n; i++) {
                exact += (double)xd[i] * yd[i];
                scale += fabs((double)xd[i] * yd[i]);
            }
            double err = fabs(t->vec_dot(xq, yq, n) - exact) / scale;
            worst = err > worst ? err : worst;
            if (t->block_size > 1) { /* a non-finite input block makes the dot NaN */
                x[n - 1] = NAN;
                t->from_float(x, xq, n);
                CHECK(isnan(t->vec_dot(xq, yq, n)));
            }
            free(x);
            free(y);
            free(xd);
            free(yd);
            free(xq);
            free(yq);
        }
        printf("  %-5s x %-4s %.2e\n", t->name, a->name, worst);
        CHECK(worst <= 1e-6);
    }
}

/* ------------------------------------------------------------------------------------------------------------
 * Fixture models: decoding error against the f32 source and byte-exact quantization
 * ---------------------------------------------------------------------------------------------------------- */

typedef struct type_tally {
    int tensors, exact_tensors, within_bound;
    int64_t blocks, differing_blocks, differing_bytes;
    double worst_error;
} type_tally;

/* Compares one quantized tensor with its f32 source: decode error, and the bytes of quantizing the source. */
static void compare_tensor(const tnd_gguf_tensor *t, const tnd_gguf_tensor *src, type_tally *tally) {
    const tnd_type_traits *tr = tnd_type_traits_of(t->type);
    const int64_t n = (int64_t)t->n_elements;
    if (!CHECK(tr && tr->to_float && tr->from_float && src->type == TND_TYPE_F32 && src->n_elements == t->n_elements))
        return;
    float *decoded = xmalloc(sizeof(float) * (size_t)n);
    uint8_t *requantized = xmalloc((size_t)t->size);
    const float *ref = (const float *)(const void *)src->data; /* tensor data is 32-byte aligned in the mapping */
    tr->to_float(t->data, decoded, n);
    double e = rel_rms(decoded, ref, n);
    tr->from_float(ref, requantized, n);
    const int64_t n_blocks = (int64_t)(t->size / tr->type_size);
    int64_t blocks = 0, bytes = 0;
    for (int64_t b = 0; b < n_blocks; b++) {
        int64_t diff = 0;
        for (uint32_t k = 0; k < tr->type_size; k++)
            diff += requantized[b * tr->type_size + k] != t->data[b * tr->type_size + k];
        blocks += diff > 0;
        bytes += diff;
    }
    tally->tensors++;
    tally->exact_tensors += blocks == 0;
    tally->within_bound += e <= bound_of(t->type);
    tally->blocks += n_blocks;
    tally->differing_blocks += blocks;
    tally->differing_bytes += bytes;
    tally->worst_error = e > tally->worst_error ? e : tally->worst_error;
    if (blocks || e > bound_of(t->type))
        fprintf(stderr, "  %s (%s): relative RMS %.5f, %lld of %lld blocks differ\n", t->name, tr->name, e,
                (long long)blocks, (long long)n_blocks);
    free(decoded);
    free(requantized);
}

static void test_fixture_models(void) {
    static const char *const files[] = {"f16", "bf16", "q8_0", "q4_0", "q4_1", "q5_0", "q5_1",
                                        "q2_k", "q3_k_m", "q4_k_m", "q5_k_m", "q6_k"};
    tnd_mapped_file ref_file = {0}, file = {0};
    tnd_gguf *ref = NULL, *g = NULL;
    type_tally tally[TND_TYPE_COUNT];
    memset(tally, 0, sizeof tally);
    if (!CHECK_OK(tnd_mapped_file_open(tnd_fixture("models/llama-tiny-f32.gguf"), true, NULL, &ref_file)) ||
        !CHECK_OK(tnd_gguf_parse(ref_file.data, ref_file.size, NULL, &ref)))
        goto cleanup;
    for (size_t k = 0; k < sizeof files / sizeof files[0]; k++) {
        char path[96];
        snprintf(path, sizeof path, "models/llama-tiny-%s.gguf", files[k]);
        if (!CHECK_OK(tnd_mapped_file_open(tnd_fixture(path), true, NULL, &file))) continue;
        if (CHECK_OK(tnd_gguf_parse(file.data, file.size, NULL, &g))) {
            CHECK(g->n_tensors == ref->n_tensors);
            for (uint64_t i = 0; i < g->n_tensors; i++) {
                const tnd_gguf_tensor *t = &g->tensors[i];
                int64_t j = tnd_gguf_find_tensor(ref, t->name);
                if (CHECK(j >= 0)) compare_tensor(t, &ref->tensors[j], &tally[t->type]);
            }
            tnd_gguf_free(g);
            g = NULL;
        }
        tnd_mapped_file_close(&file);
    }
    printf("fixture tensors (12 files against llama-tiny-f32):\n");
    int types_seen = 0;
    for (int type = 0; type < TND_TYPE_COUNT; type++) {
        const type_tally *c = &tally[type];
        if (!c->tensors) continue;
        types_seen++;
        printf("  %-5s %3d tensors, %3d within bound (worst relative RMS %.5f), %3d byte-exact "
               "(%lld of %lld blocks differ, %lld bytes)\n",
               tnd_type_name((tnd_type)type), c->tensors, c->within_bound, c->worst_error, c->exact_tensors,
               (long long)c->differing_blocks, (long long)c->blocks, (long long)c->differing_bytes);
        CHECK(c->within_bound == c->tensors);
        CHECK(c->differing_blocks == 0);
    }
    /* f32 (norms), f16, bf16 and the ten quantized types of the files must all have appeared */
    CHECK(types_seen == 13);
cleanup:
    tnd_gguf_free(ref);
    tnd_mapped_file_close(&ref_file);
}

int main(void) {
    test_round_trips();
    test_edge_values();
    test_unaligned();
    test_activation_side_data();
    test_dots();
    test_fixture_models();
    return tnd_test_finish("test_quant");
}
