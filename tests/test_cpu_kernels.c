/* test_cpu_kernels.c: every entry of the CPU kernel table chosen for this processor (SIMD where present) against a
 * double-precision dot product of the same dequantized operands, on odd sizes; and the table for the reference
 * kernels matches the type traits. */
#include "harness.h"

#include "backend/cpu/cpu_kernels.h"
#include "core/fp16.h"

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
    uint8_t *wq = malloc(tnd_row_size(t, n) + 64), *xq = malloc(tnd_cpu_act_bytes(k, n) + 64);
    CHECK(tnd_cpu_act_bytes(k, n) <= TND_CPU_ACT_MAX_BYTES_PER_ELEMENT * (size_t)n);
    for (int64_t i = 0; i < n; i++) {
        w[i] = uniform() * (i % 7 == 0 ? 3.0f : 1.0f);
        x[i] = uniform() * (i % 5 == 0 ? 4.0f : 1.0f);
    }
    wt->from_float(w, wq, n);
    wt->to_float(wq, wd, n);
    k->quantize_act(x, xq, n);
    tnd_cpu_act_to_float(k, xq, xd, n);
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

/* A tile equals the entry's dot product for each of its rows x tokens bit for bit, for every shape up to the
 * entry's largest, so that a row's result does not depend on the batch it was computed in (the server's batching
 * invariance rests on it). */
static void check_tile(tnd_type t, const tnd_cpu_dot *k, int64_t n) {
    const tnd_type_traits *wt = tnd_type_traits_of(t);
    size_t wrow = tnd_row_size(t, n), arow = tnd_cpu_act_bytes(k, n);
    enum { STRIDE = TND_CPU_TILE_MAX + 1 };
    uint8_t *w = malloc(wrow * (size_t)k->tile_rows), *a = malloc(arow * (size_t)k->tile_tokens);
    float *x = malloc(sizeof(float) * (size_t)n), y[TND_CPU_TILE_MAX * STRIDE];
    for (int r = 0; r < k->tile_rows; r++) {
        for (int64_t i = 0; i < n; i++) x[i] = uniform();
        wt->from_float(x, w + r * wrow, n);
    }
    for (int q = 0; q < k->tile_tokens; q++) {
        for (int64_t i = 0; i < n; i++) x[i] = uniform() * 3;
        k->quantize_act(x, a + q * arow, n);
    }
    /* the packed layout of the same rows, for entries that have one */
    uint8_t *packed = malloc(wrow * (size_t)k->tile_rows);
    if (k->tile_packed)
        tnd_cpu_pack_rows(w, k->tile_rows, wrow, k->tile_rows, k->pack_chunk, k->pack_transform, packed);
    for (int layout = k->tile ? 0 : 1; layout < (k->tile_packed ? 2 : 1); layout++) {
        int same = 0, total = 0, untouched = 0;
        for (int rows = 1; rows <= k->tile_rows; rows++)
            for (int tokens = 1; tokens <= k->tile_tokens; tokens++) {
                for (int i = 0; i < TND_CPU_TILE_MAX * STRIDE; i++) y[i] = -12345.0f;
                if (layout) k->tile_packed(packed, 0, a, arow, n, y, STRIDE, rows, tokens);
                else k->tile(w, wrow, a, arow, n, y, STRIDE, rows, tokens);
                for (int q = 0; q < k->tile_tokens; q++)
                    for (int r = 0; r < STRIDE; r++) {
                        bool inside = q < tokens && r < rows;
                        if (!inside) {
                            untouched += y[q * STRIDE + r] == -12345.0f;
                            continue;
                        }
                        float d = k->dot(w + r * wrow, a + q * arow, n);
                        same += memcmp(&y[q * STRIDE + r], &d, sizeof d) == 0;
                        total++;
                    }
            }
        if (!CHECK(same == total))
            fprintf(stderr, "  %s %s tile (%s) n=%lld: %d of %d equal to the dot\n", wt->name, layout ? "packed" : "",
                    k->isa, (long long)n, same, total);
        CHECK(untouched == k->tile_tokens * STRIDE * k->tile_rows * k->tile_tokens - total); /* writes stay inside */
    }
    free(packed);
    free(w);
    free(a);
    free(x);
}

/* Packing: every byte of every row lands where the layout says, and padding rows are zero. */
static void check_pack(void) {
    enum { ROWS = 7, ROW_BYTES = 50, GROUP = 4, CHUNK = 16 };
    uint8_t src[ROWS * ROW_BYTES], dst[2 * GROUP * ROW_BYTES];
    for (int i = 0; i < ROWS * ROW_BYTES; i++) src[i] = (uint8_t)(i * 7 + 1);
    memset(dst, 0xee, sizeof dst);
    tnd_cpu_pack_rows(src, ROWS, ROW_BYTES, GROUP, CHUNK, NULL, dst);
    int wrong = 0;
    for (int row = 0; row < 2 * GROUP; row++)
        for (int byte = 0; byte < ROW_BYTES; byte++) {
            int g = row / GROUP, r = row % GROUP, c = byte / CHUNK, len = ROW_BYTES - c * CHUNK < CHUNK ? ROW_BYTES - c * CHUNK : CHUNK;
            size_t at = (size_t)g * GROUP * ROW_BYTES + (size_t)c * GROUP * CHUNK + (size_t)r * len + byte % CHUNK;
            wrong += dst[at] != (row < ROWS ? src[row * ROW_BYTES + byte] : 0);
        }
    CHECK(wrong == 0);
}

/* The attention of the quantized queries q8 over n positions of Q8_0 K rows ke and V rows ve (decoded: vd), in
 * double precision: each score is its blocks' exact integer dots times the K block's scale times the query block's
 * (the softmax scale included), as the stored entry defines them. out[r][hd]: each head's normalized output; m[r]:
 * its largest score; bound[r][hd]: what the entry's weights, rounded to 7 bits or more per tile of `tile` positions
 * and block (tnd_kv_stored), may move the output: per tile, half a level of its largest weight times V scale, times
 * the sum of the tile's |V levels|, over the sum of the weights. */
static void q8_attention(tnd_attn_q8 q8, int32_t rep, int32_t hd, const uint8_t *ke, const uint8_t *ve,
                         const float *vd, int32_t n, int32_t tile, double *out, double *bound, double *m) {
    size_t row = tnd_row_size(TND_TYPE_Q8_0, hd);
    double *s = malloc(sizeof(double) * (size_t)n);
    for (int32_t r = 0; r < rep; r++) {
        m[r] = -INFINITY;
        for (int32_t j = 0; j < n; j++) {
            s[j] = 0;
            for (int32_t b = 0; b < hd / 32; b++) {
                const uint8_t *block = ke + row * (size_t)j + 34 * (size_t)b;
                uint16_t half;
                memcpy(&half, block, 2);
                int64_t dot = 0;
                for (int32_t i = 0; i < 32; i++) dot += (int64_t)q8.levels[r * hd + 32 * b + i] * (int8_t)block[2 + i];
                s[j] += (double)dot * tnd_fp16_to_f32(half) * q8.scale[r * (hd / 32) + b];
            }
            m[r] = s[j] > m[r] ? s[j] : m[r];
        }
        double z = 0;
        for (int32_t j = 0; j < n; j++) z += exp(s[j] - m[r]);
        for (int32_t i = 0; i < hd; i++) {
            double o = 0, slack = 0;
            for (int32_t j = 0; j < n; j++) o += exp(s[j] - m[r]) / z * vd[j * hd + i];
            for (int32_t t0 = 0; t0 < n; t0 += tile) {
                double top = 0, levels = 0;
                for (int32_t j = t0; j < n && j < t0 + tile; j++) {
                    const uint8_t *block = ve + row * (size_t)j + 34 * (size_t)(i / 32);
                    uint16_t half;
                    memcpy(&half, block, 2);
                    double w = exp(s[j] - m[r]) * tnd_fp16_to_f32(half);
                    top = w > top ? w : top;
                    levels += abs((int8_t)block[2 + i % 32]);
                }
                slack += 0.5 / TND_ATTN_V_LEVELS_AVX2 * top * levels / z;
            }
            out[r * hd + i] = o;
            bound[r * hd + i] = slack;
        }
    }
    free(s);
}

/* The stored entry on rows encoded in `type` (F16 or Q8_0), laid out as the cache keeps them for this entry: K
 * transposed (F16 values [hd][n]; Q8_0 levels [hd / 4][n][4], then scales [hd / 32][n]; each tile a column offset);
 * V as F16 rows, or Q8_0 levels in groups of four positions [n / 4][hd][4] (the last group's extra positions filled
 * with levels the zero weights must cancel), then scales [hd / 32][n]. F16: the float entry's bits on the rows
 * decoded. Q8_0: the scores of the quantized queries and the weights' rounding bound (q8_attention) within float
 * rounding, and near the float entry's result by what the queries' and weights' rounding cost. */
static void check_attention_stored(const tnd_cpu_vec *vec, const tnd_cpu_vec *twin, const char *isa, tnd_type type,
                                   const float *q, int32_t rep, int32_t hd, const float *k, const float *v, int32_t n,
                                   int32_t tile) {
    if (!vec->attn_tile_stored_takes(type, hd)) return;
    const tnd_type_traits *t = tnd_type_traits_of(type);
    bool q8_0 = type == TND_TYPE_Q8_0;
    size_t row = tnd_row_size(type, hd), value = q8_0 ? 1 : 2; /* bytes of a K value */
    uint8_t *ke = malloc(row * (size_t)n), *ve = malloc(row * (size_t)n), *kt = malloc(row * (size_t)n);
    uint16_t *scales = (uint16_t *)(void *)(kt + value * (size_t)(n * hd)); /* Q8_0: after the levels */
    int32_t groups = (n + 3) / 4;
    uint8_t *vg = malloc((size_t)(4 * groups * hd) + 2 * (size_t)(n * hd / 32)); /* Q8_0 V in groups */
    uint16_t *v_scales = (uint16_t *)(void *)(vg + 4 * (size_t)(groups * hd));
    memset(vg, 0x7f, (size_t)(4 * groups * hd));
    float *kd = malloc(sizeof(float) * (size_t)(n * hd)), *vd = malloc(sizeof(float) * (size_t)(n * hd));
    float *acc = calloc((size_t)(rep * hd), sizeof(float)), *acc_s = calloc((size_t)(rep * hd), sizeof(float));
    float *acc_t = calloc((size_t)(rep * hd), sizeof(float));
    float mx[16], sum[16], mx_s[16], sum_s[16], mx_t[16], sum_t[16];
    for (int32_t j = 0; j < n; j++) {
        t->from_float(k + j * hd, ke + row * (size_t)j, hd);
        t->from_float(v + j * hd, ve + row * (size_t)j, hd);
    }
    t->to_float(ke, kd, n * hd);
    t->to_float(ve, vd, n * hd);
    for (int32_t j = 0; j < n; j++)
        for (int32_t d = 0; d < hd; d++) {
            const uint8_t *r = ke + row * (size_t)j;
            if (!q8_0) {
                memcpy(kt + 2 * ((size_t)d * n + j), r + 2 * d, 2);
            } else { /* Q8_0 blocks of 34 bytes: the F16 scale, then 32 levels */
                const uint8_t *rv = ve + row * (size_t)j;
                kt[4 * ((size_t)(d / 4) * n + j) + d % 4] = r[34 * (d / 32) + 2 + d % 32];
                memcpy(&scales[(size_t)(d / 32) * n + j], r + 34 * (d / 32), 2);
                vg[4 * ((size_t)(j / 4) * hd + d) + j % 4] = rv[34 * (d / 32) + 2 + d % 32];
                memcpy(&v_scales[(size_t)(d / 32) * n + j], rv + 34 * (d / 32), 2);
            }
        }
    for (int32_t r = 0; r < rep; r++) {
        mx[r] = mx_s[r] = mx_t[r] = -INFINITY;
        sum[r] = sum_s[r] = sum_t[r] = 0;
    }
    float scale = 1.0f / sqrtf((float)hd);
    uint8_t *q8_bytes = malloc(tnd_cpu_attn_q8_bytes(rep, hd));
    tnd_attn_q8 q8 = {0};
    if (q8_0) q8 = tnd_cpu_quantize_queries(q, rep, hd, scale, q8_bytes);
    int tiles = 0;
    for (int32_t p0 = 0; p0 < n; p0 += tile, tiles++) {
        int32_t np = n - p0 < tile ? n - p0 : tile;
        vec->attn_tile(q, rep, hd, kd + p0 * hd, vd + p0 * hd, np, scale, mx, sum, acc);
        /* the next tile's rows asked for on every other tile: a hint that must not change any bit */
        int32_t rest = n - p0 - np < tile ? n - p0 - np : tile;
        size_t k_unit = q8_0 ? 4 : 2, k_at = q8_0 ? 4 * (size_t)p0 : 2 * (size_t)p0; /* a position's bytes in a row */
        tnd_kv_prefetch next = {kt + k_at + k_unit * (size_t)np, ve + row * (size_t)(p0 + np), row * (size_t)rest};
        tnd_kv_stored kv = {.type = type, .k = kt + k_at, .k_scales = scales + p0, .stride = n,
                            .v = ve + row * (size_t)p0, .q8 = q8};
        if (q8_0) kv.v = vg + (size_t)(p0 * hd), kv.v_scales = v_scales + p0; /* (tiles of multiples of 4) */
        vec->attn_tile_stored(q, rep, hd, &kv, np, scale, mx_s, sum_s, acc_s, rest > 0 && tiles % 2 ? &next : NULL);
        if (twin) twin->attn_tile_stored(q, rep, hd, &kv, np, scale, mx_t, sum_t, acc_t, NULL);
    }
    /* a twin set (the same kernels with and without VNNI) gives the same bits: its integer sums are exact */
    if (twin && !CHECK(memcmp(acc_s, acc_t, sizeof(float) * (size_t)(rep * hd)) == 0 &&
                       memcmp(sum_s, sum_t, sizeof(float) * (size_t)rep) == 0))
        fprintf(stderr, "  attention %s (%s) rep %d hd %d n %d: bits differ from the twin set\n", t->name, isa, rep, hd,
                n);
    if (!q8_0) {
        bool same = memcmp(mx, mx_s, sizeof(float) * (size_t)rep) == 0 &&
                    memcmp(sum, sum_s, sizeof(float) * (size_t)rep) == 0 &&
                    memcmp(acc, acc_s, sizeof(float) * (size_t)(rep * hd)) == 0;
        if (!CHECK(same))
            fprintf(stderr, "  attention %s (%s) rep %d hd %d n %d tile %d: bits differ over %d tiles\n", t->name, isa,
                    rep, hd, n, tile, tiles);
    } else {
        double *want = malloc(sizeof(double) * (size_t)(rep * hd)), m[16], far = 0;
        double *bound = malloc(sizeof(double) * (size_t)(rep * hd));
        q8_attention(q8, rep, hd, ke, ve, vd, n, tile, want, bound, m);
        int bad = 0;
        for (int32_t r = 0; r < rep; r++) {
            bad += fabs(mx_s[r] - m[r]) > 1e-5 * (1 + fabs(m[r]));
            for (int32_t i = 0; i < hd; i++) {
                double got = acc_s[r * hd + i] / sum_s[r], unquantized = acc[r * hd + i] / sum[r];
                bad += !(fabs(got - want[r * hd + i]) <= bound[r * hd + i] + 2e-6);
                far = fabs(got - unquantized) > far ? fabs(got - unquantized) : far;
            }
        }
        if (!CHECK(bad == 0))
            fprintf(stderr, "  attention Q8_0 (%s) rep %d hd %d n %d tile %d: %d values off\n", isa, rep, hd, n, tile,
                    bad);
        /* the queries' and the weights' rounding (8 bits, and 7 on AVX2 or 8) move outputs of magnitude below 1 by
         * about a hundredth at most (measured: up to 4.4e-3 with float weights, 5.2e-3 with 8-bit and 1.1e-2 with
         * 7-bit ones) */
        if (!CHECK(far < 2e-2))
            fprintf(stderr, "  attention Q8_0 (%s) rep %d hd %d n %d: %g from the float queries' result\n", isa, rep,
                    hd, n, far);
        free(want);
        free(bound);
    }
    free(vg);
    free(q8_bytes);
    free(ke);
    free(ve);
    free(kt);
    free(kd);
    free(vd);
    free(acc);
    free(acc_s);
    free(acc_t);
}

/* A Q8_0 V block whose scale is not finite at one position (NaN, or infinite: 0x7e00, 0x7c00) makes that block's
 * outputs NaN for every head, as float sums would, and leaves the other block's finite: the stored entry on 8
 * positions of a head of 64, K levels 0 (equal scores), V levels 1. */
static void check_attention_v_not_finite(const tnd_cpu_vec *vec, const char *isa) {
    enum { N = 8, HD = 64, REP = 2 };
    if (!vec->attn_tile_stored || !vec->attn_tile_stored_takes(TND_TYPE_Q8_0, HD)) return;
    static const uint16_t bad_scales[] = {0x7e00, 0x7c00};
    for (int c = 0; c < 2; c++) {
        uint8_t k[N * HD] = {0}, v[N * HD];
        uint16_t k_scales[HD / 32 * N], v_scales[HD / 32 * N];
        float q[REP * HD], mx[REP] = {-INFINITY, -INFINITY}, sum[REP] = {0}, acc[REP * HD] = {0};
        memset(v, 1, sizeof v);
        for (int i = 0; i < HD / 32 * N; i++) k_scales[i] = v_scales[i] = 0x3c00; /* 1.0 */
        v_scales[3] = bad_scales[c]; /* block 0 of position 3 */
        for (int i = 0; i < REP * HD; i++) q[i] = uniform();
        uint8_t q8_bytes[1024];
        tnd_kv_stored kv = {.type = TND_TYPE_Q8_0, .k = k, .k_scales = k_scales, .stride = N, .v = v,
                            .v_scales = v_scales, .q8 = tnd_cpu_quantize_queries(q, REP, HD, 0.125f, q8_bytes)};
        vec->attn_tile_stored(q, REP, HD, &kv, N, 0.125f, mx, sum, acc, NULL);
        int wrong = 0;
        for (int r = 0; r < REP; r++)
            for (int i = 0; i < HD; i++) /* block 1: the mean of levels 1 at scale 1 */
                wrong += i < 32 ? !isnan(acc[r * HD + i]) : !(fabsf(acc[r * HD + i] / sum[r] - 1) < 1e-6f);
        if (!CHECK(wrong == 0))
            fprintf(stderr, "  attention Q8_0 (%s): V scale 0x%04x gives %d outputs not as float sums would\n", isa,
                    bad_scales[c], wrong);
    }
}

/* The attention tile: a context of n positions in tiles of `tile` against softmax attention in double precision,
 * for each query head, and the running max against the largest score; then the stored entry on the same rows
 * (check_attention_stored, with the set's twin if it has one). */
static void check_attention(const tnd_cpu_vec *vec, const tnd_cpu_vec *twin, const char *isa, int32_t rep, int32_t hd,
                            int32_t n, int32_t tile) {
    float *q = malloc(sizeof(float) * (size_t)(rep * hd)), *k = malloc(sizeof(float) * (size_t)(n * hd));
    float *v = malloc(sizeof(float) * (size_t)(n * hd)), *acc = calloc((size_t)(rep * hd), sizeof(float));
    float mx[16], sum[16];
    for (int32_t i = 0; i < rep * hd; i++) q[i] = uniform() * 2;
    for (int32_t i = 0; i < n * hd; i++) {
        k[i] = uniform() * 2;
        v[i] = uniform();
    }
    for (int32_t r = 0; r < rep; r++) {
        mx[r] = -INFINITY;
        sum[r] = 0;
    }
    float scale = 1.0f / sqrtf((float)hd);
    for (int32_t p0 = 0; p0 < n; p0 += tile)
        vec->attn_tile(q, rep, hd, k + p0 * hd, v + p0 * hd, n - p0 < tile ? n - p0 : tile, scale, mx, sum, acc);
    int bad = 0;
    for (int32_t r = 0; r < rep; r++) {
        double *s = malloc(sizeof(double) * (size_t)n), m = -INFINITY, z = 0;
        for (int32_t j = 0; j < n; j++) {
            s[j] = 0;
            for (int32_t i = 0; i < hd; i++) s[j] += (double)q[r * hd + i] * k[j * hd + i];
            s[j] *= scale;
            m = s[j] > m ? s[j] : m;
        }
        for (int32_t j = 0; j < n; j++) z += exp(s[j] - m);
        bad += fabs(mx[r] - m) > 1e-5 * (1 + fabs(m));
        for (int32_t i = 0; i < hd; i++) {
            double o = 0;
            for (int32_t j = 0; j < n; j++) o += exp(s[j] - m) / z * v[j * hd + i];
            bad += fabs(acc[r * hd + i] / sum[r] - o) > 2e-6;
        }
        free(s);
    }
    if (!CHECK(bad == 0))
        fprintf(stderr, "  attention (%s) rep %d hd %d n %d tile %d: %d values off\n", isa, rep, hd, n, tile, bad);
    if (vec->attn_tile_stored) {
        check_attention_stored(vec, twin, isa, TND_TYPE_F16, q, rep, hd, k, v, n, tile);
        check_attention_stored(vec, twin, isa, TND_TYPE_Q8_0, q, rep, hd, k, v, n, tile);
    }
    free(q);
    free(k);
    free(v);
    free(acc);
}

/* silu(gate) * up against double math, over the range where it changes and beyond. */
static void check_swiglu(const tnd_cpu_vec *vec, const char *isa) {
    enum { N = 203 };
    float g[N], u[N], out[N];
    for (int i = 0; i < N; i++) {
        g[i] = (float)(i - N / 2) * 0.5f + uniform() * 0.1f; /* -50 .. 50 */
        u[i] = uniform() * 3;
    }
    g[0] = -100.0f;
    g[1] = 100.0f;
    vec->swiglu(g, u, out, N);
    int bad = 0;
    for (int i = 0; i < N; i++) {
        double want = (double)g[i] / (1.0 + exp(-(double)g[i])) * u[i];
        bad += fabs(out[i] - want) > 1e-6 * (fabs(want) + 1e-3);
    }
    if (!CHECK(bad == 0)) fprintf(stderr, "  swiglu (%s): %d values off\n", isa, bad);
    /* an element's result does not depend on where the batch put it (the server's batching invariance) */
    float shifted[N];
    int moved = 0;
    for (int off = 1; off < 9; off++) {
        vec->swiglu(g + off, u + off, shifted, N - off);
        moved += memcmp(shifted, out + off, sizeof(float) * (size_t)(N - off)) != 0;
    }
    CHECK(moved == 0);
}

/* The KV cache decoders and encoders against the types' own, bit for bit, on quantized random rows of several block
 * counts. */
static void check_kv_decoders(const tnd_cpu_vec *vec, const char *isa) {
    static const tnd_type kv_types[] = {TND_TYPE_F32, TND_TYPE_F16, TND_TYPE_Q8_0, TND_TYPE_Q4_0};
    enum { MOST = 7 * 64 };
    float x[MOST], want[MOST], got[MOST];
    uint8_t row[MOST * 4];
    for (size_t i = 0; i < sizeof kv_types / sizeof *kv_types; i++) {
        const tnd_type_traits *tr = tnd_type_traits_of(kv_types[i]);
        for (int64_t n = tr->block_size; n <= MOST; n += 3 * 64 + tr->block_size) {
            for (int64_t j = 0; j < n; j++) x[j] = (uniform() - 0.5f) * (float)(1 + j % 5);
            tr->from_float(x, row, n);
            tr->to_float(row, want, n);
            memset(got, 0xff, sizeof got);
            CHECK(vec->to_float[kv_types[i]] != NULL);
            vec->to_float[kv_types[i]](row, got, n);
            if (!CHECK(memcmp(got, want, sizeof(float) * (size_t)n) == 0))
                fprintf(stderr, "  %s: the %s decoder differs from the type's own (%lld elements)\n", isa, tr->name,
                        (long long)n);
            /* the encoder, on values with ties, subnormals, overflow and infinities of the smaller types */
            static const float edges[] = {0.0f, -0.0f, 1.0f + 0x1p-11f, 1.0f + 3 * 0x1p-11f, 6e-8f, 3e-5f, -7e-6f,
                                          65504.0f, 65520.0f, 1e6f, -1e9f, 1.0f / 0.0f, -1.0f / 0.0f};
            for (size_t e = 0; e < sizeof edges / sizeof *edges && (int64_t)e < n; e++) x[e * 5 % n] = edges[e];
            uint8_t encoded[MOST * 4];
            tr->from_float(x, row, n);
            memset(encoded, 0xff, sizeof encoded);
            CHECK(vec->from_float[kv_types[i]] != NULL);
            vec->from_float[kv_types[i]](x, encoded, n);
            if (!CHECK(memcmp(encoded, row, (size_t)tnd_row_size(kv_types[i], n)) == 0))
                fprintf(stderr, "  %s: the %s encoder differs from the type's own (%lld elements)\n", isa, tr->name,
                        (long long)n);
        }
    }
}

/* No scalar fallbacks: every weight type a model computes with has a SIMD dot and a prompt tile (weights unpacked
 * once for several tokens) on every instruction set. */
static void check_coverage(const tnd_cpu_kernels *table, tnd_cpu_isa isa) {
    static const tnd_type weight_types[] = {TND_TYPE_F32,  TND_TYPE_F16,  TND_TYPE_BF16, TND_TYPE_Q4_0, TND_TYPE_Q4_1,
                                            TND_TYPE_Q5_0, TND_TYPE_Q5_1, TND_TYPE_Q8_0, TND_TYPE_Q2_K, TND_TYPE_Q3_K,
                                            TND_TYPE_Q4_K, TND_TYPE_Q5_K, TND_TYPE_Q6_K};
    if (isa == TND_ISA_REF) return;
    for (size_t i = 0; i < sizeof weight_types / sizeof *weight_types; i++) {
        tnd_type t = weight_types[i];
        const tnd_cpu_dot *k = &table->dot[t];
        bool simd = k->dot && strcmp(k->isa, "ref") != 0;
        bool tiled = k->tile || k->tile_packed;
        if (!CHECK(simd && tiled))
            fprintf(stderr, "  %s: %s has %s\n", tnd_cpu_isa_name(isa), tnd_type_name(t),
                    !simd ? "no SIMD dot (the scalar reference runs)" : "no prompt tile");
    }
}

/* The queries' quantizer: each value within half a step of its level times the block's scale (the softmax scale
 * taken out), the largest magnitude at 127, the sums those of the levels; a block with a NaN gets a NaN scale, so
 * its scores are NaN as the float ones would be. */
static void check_quantize_queries(void) {
    enum { HEADS = 3, HD = 64 };
    float q[HEADS * HD], scale = 0.125f;
    uint8_t bytes[HEADS * HD * 2];
    for (int i = 0; i < HEADS * HD; i++) q[i] = uniform() * (float)(1 + i / 32);
    q[70] = NAN;
    CHECK(tnd_cpu_attn_q8_bytes(HEADS, HD) <= sizeof bytes);
    tnd_attn_q8 q8 = tnd_cpu_quantize_queries(q, HEADS, HD, scale, bytes);
    int bad = 0;
    for (int b = 0; b < HEADS * HD / 32; b++) {
        float step = q8.scale[b] / scale;
        if (b == 2) { /* the block of q[70] */
            bad += !isnan(step);
            continue;
        }
        int32_t total = 0, top = 0;
        for (int i = 0; i < 32; i++) {
            int level = q8.levels[32 * b + i];
            total += level;
            top = abs(level) > top ? abs(level) : top;
            bad += fabsf(q[32 * b + i] - (float)level * step) > 0.5001f * step;
        }
        bad += total != q8.sum[b] || top != 127;
    }
    if (!CHECK(bad == 0)) fprintf(stderr, "  quantized queries: %d values off\n", bad);
}

/* An entry whose activations keep their type's own layout (no act_bytes) gives that type's quantizer's bytes, on
 * blocks of several scales, exact ties after scaling, both signs of the largest magnitude, zeros and a NaN. */
static void check_act_layout(const tnd_cpu_kernels *table, const char *isa) {
    enum { N = 6 * 256 };
    float x[N];
    for (int i = 0; i < N; i++) x[i] = uniform() * (float)(1 + i / 256 * 10);
    for (int i = 0; i < 256; i++) x[256 + i] = (float)((i % 9) - 4) * 0.5f; /* -127/2 * k/2 ties, max -2 and 2 */
    for (int i = 512; i < 768; i++) x[i] = 0;
    x[768 + 7] = NAN;
    x[1024 + 3] = -5.0f; /* the largest magnitude twice, negative first */
    x[1024 + 200] = 5.0f;
    for (int t = 0; t < TND_TYPE_COUNT; t++) {
        const tnd_cpu_dot *k = &table->dot[t];
        const tnd_type_traits *act = k->dot ? tnd_type_traits_of(k->act_type) : NULL;
        if (!act || k->act_bytes || !act->from_float || k->quantize_act == act->from_float) continue;
        size_t bytes = tnd_row_size(k->act_type, N);
        uint8_t *want = malloc(bytes), *got = malloc(bytes);
        act->from_float(x, want, N);
        k->quantize_act(x, got, N);
        if (!CHECK(memcmp(want, got, bytes) == 0))
            fprintf(stderr, "  %s (%s): activations differ from %s's quantizer\n", tnd_type_name((tnd_type)t), isa,
                    act->name);
        free(want);
        free(got);
    }
}

/* Checks every entry of one kernel table. */
static int check_table(const tnd_cpu_kernels *table) {
    int tested = 0;
    for (int t = 0; t < TND_TYPE_COUNT; t++) {
        const tnd_type_traits *tr = tnd_type_traits_of((tnd_type)t);
        const tnd_cpu_dot *k = &table->dot[t];
        if (!tr || !k->dot || !tr->from_float || !tr->to_float || !tnd_type_traits_of(k->act_type)->to_float)
            continue;
        int64_t bs = tr->block_size > tnd_type_traits_of(k->act_type)->block_size
                         ? tr->block_size : tnd_type_traits_of(k->act_type)->block_size;
        static const int64_t blocks[] = {1, 2, 3, 7, 33};
        for (size_t b = 0; b < sizeof blocks / sizeof *blocks; b++) check_entry((tnd_type)t, k, bs * blocks[b]);
        if (bs == 1)
            for (int64_t n = 1; n < 70; n += 3) check_entry((tnd_type)t, k, n);
        if (k->tile || k->tile_packed) {
            CHECK(k->tile_rows >= 1 && k->tile_rows <= TND_CPU_TILE_MAX);
            CHECK(k->tile_tokens >= 1 && k->tile_tokens <= TND_CPU_TILE_MAX);
            for (size_t b = 0; b < sizeof blocks / sizeof *blocks; b++) check_tile((tnd_type)t, k, bs * blocks[b]);
        }
        tested++;
        printf("  %-6s %-6s activations %s", tr->name, k->isa, tnd_type_traits_of(k->act_type)->name);
        if (k->tile || k->tile_packed)
            printf(", tiles up to %d x %d%s", k->tile_rows, k->tile_tokens,
                   !k->tile ? ", packed rows only" : k->tile_packed ? ", packed rows" : "");
        printf("\n");
    }
    return tested;
}

int main(void) {
    tnd_cpu_features f = tnd_cpu_detect();
    char names[256];
    tnd_cpu_features_string(&f, names, sizeof names);
    printf("cpu features: %s\n", names);
    tnd_cpu_kernels ref;
    tnd_cpu_kernels_reference(&ref);
    for (int t = 0; t < TND_TYPE_COUNT; t++) {
        const tnd_type_traits *tr = tnd_type_traits_of((tnd_type)t);
        if (tr && tr->vec_dot) CHECK(ref.dot[t].dot == tr->vec_dot && ref.dot[t].act_type == tr->vec_dot_type);
    }
    /* every instruction set this machine has, not only the best one */
    check_pack();
    check_quantize_queries();
    int sets = 0;
    tnd_cpu_kernels avx2; /* the twin of the avxvnni set */
    bool have_avx2 = tnd_cpu_kernels_for(&avx2, TND_ISA_AVX2, &f);
    for (int isa = 0; isa < TND_ISA_COUNT; isa++) {
        tnd_cpu_kernels table;
        if (!tnd_cpu_kernels_for(&table, (tnd_cpu_isa)isa, &f)) {
            printf("%s: not on this machine or build\n", tnd_cpu_isa_name((tnd_cpu_isa)isa));
            continue;
        }
        printf("%s:\n", tnd_cpu_isa_name((tnd_cpu_isa)isa));
        CHECK(check_table(&table) > 0);
        check_coverage(&table, (tnd_cpu_isa)isa);
        check_swiglu(&table.vec, tnd_cpu_isa_name((tnd_cpu_isa)isa));
        check_kv_decoders(&table.vec, tnd_cpu_isa_name((tnd_cpu_isa)isa));
        check_act_layout(&table, tnd_cpu_isa_name((tnd_cpu_isa)isa));
        static const int32_t shapes[][4] = {{1, 8, 1, 32},  {4, 64, 100, 32}, {8, 64, 5, 32},   {3, 72, 70, 32},
                                            {2, 128, 64, 64}, {5, 12, 33, 7}, {1, 64, 500, 32}, {16, 64, 40, 32},
                                            {11, 64, 77, 32}, {8, 128, 90, 64}, {5, 96, 70, 32}};
        check_attention_v_not_finite(&table.vec, tnd_cpu_isa_name((tnd_cpu_isa)isa));
        for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++)
            check_attention(&table.vec, isa == TND_ISA_AVXVNNI && have_avx2 ? &avx2.vec : NULL,
                            tnd_cpu_isa_name((tnd_cpu_isa)isa), shapes[i][0], shapes[i][1], shapes[i][2], shapes[i][3]);
        sets++;
    }
    CHECK(sets >= 1);
    return tnd_test_finish("test_cpu_kernels");
}
