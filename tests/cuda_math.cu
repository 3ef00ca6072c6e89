// cuda_math.cu (test_cuda_math, built with the CUDA device): the CUDA device's per-element arithmetic
// (src/backend/cuda/cuda_math.cuh), run on the host, against the CPU's reference kernels: every weight type's chunks
// decode to the same floats bit for bit, the quantized types' 8-bit levels give them back and their int8 dots equal
// the float dots, KV rows read back the same, and a quantized KV row holds the same bytes. So the arithmetic is
// checked where no GPU is; the kernels around it need one (scripts/gpu_check.sh).
extern "C" {
#include "harness.h"
#include "quant/quant.h"
}
#include "backend/cuda/cuda_math.cuh"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

using namespace tnd_cuda;

static uint64_t rng = 0x2545f4914f6cdd1dull;

static float frand(void) { // uniform in [-1, 1)
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((double)(rng >> 11) * 0x1.0p-52 - 1.0);
}

// Whether two floats are the same bits, or both NaN.
static bool same(float a, float b) {
    uint32_t x, y;
    memcpy(&x, &a, 4);
    memcpy(&y, &b, 4);
    return x == y || (isnan(a) && isnan(b));
}

// Rows quantized by the CPU, and rows of random bytes (NaN and infinite scales, every level) decode as the CPU's
// to_float decodes them. Widths: a whole number of blocks, and for the float types one that ends inside a chunk.
static void check_weights(tnd_type type) {
    const tnd_type_traits *tr = tnd_type_traits_of(type);
    int64_t widths[2] = {1024, tr->block_size == 1 ? 1000 : 1024};
    int mismatches = 0;
    for (int wi = 0; wi < 2; wi++)
        for (int random_bytes = 0; random_bytes < 2; random_bytes++) {
            int64_t n = widths[wi];
            size_t bytes = tnd_row_size(type, n);
            uint8_t *row = (uint8_t *)malloc(bytes);
            float *x = (float *)malloc(sizeof(float) * n), *want = (float *)malloc(sizeof(float) * n);
            for (int64_t i = 0; i < n; i++) x[i] = frand() * 3.0f;
            if (random_bytes)
                for (size_t i = 0; i < bytes; i++) row[i] = (uint8_t)(frand() * 128.0f + 128.0f);
            else
                tr->from_float(x, row, n);
            tr->to_float(row, want, n);
            with_weight_type(type, [&](auto T) {
                float v[32];
                for (int c = 0; c < (n + 31) / 32; c++) {
                    dequant32<decltype(T)::value>(row, c, (int)n, v);
                    for (int i = 0; i < 32; i++) {
                        int64_t e = 32 * (int64_t)c + i;
                        mismatches += e < n ? !same(v[i], want[e]) : v[i] != 0.0f;
                    }
                }
            });
            free(row);
            free(x);
            free(want);
        }
    if (!CHECK(mismatches == 0)) fprintf(stderr, "  %s: %d elements differ\n", tr->name, mismatches);
}

// A KV row of each cache type reads back as the CPU decodes it, and the Q8_0 and Q4_0 rows the GPU would store are
// the CPU's bytes (blocks with a NaN or an infinity get a NaN scale and zero levels on both).
static void check_kv(tnd_type type) {
    const tnd_type_traits *tr = tnd_type_traits_of(type);
    enum { WIDTH = 256 };
    float x[WIDTH], want[WIDTH];
    uint8_t cpu[WIDTH * 4], gpu[WIDTH * 4];
    int mismatches = 0;
    for (int round = 0; round < 64; round++) {
        for (int i = 0; i < WIDTH; i++) x[i] = frand() * (float)(1 << (round % 8));
        if (round % 16 == 15) x[round % WIDTH] = round % 32 == 15 ? NAN : INFINITY; // a block with a bad value
        if (round % 16 == 7) memset(x, 0, sizeof x);                                // all zero
        size_t bytes = tnd_row_size(type, WIDTH);
        tr->from_float(x, cpu, WIDTH);
        memset(gpu, 0xa5, sizeof gpu);
        int units = type == TND_TYPE_Q8_0 || type == TND_TYPE_Q4_0 ? WIDTH / 32 : WIDTH;
        tr->to_float(cpu, want, WIDTH);
        bool stored = with_kv_type(type, [&](auto T) {
            for (int j = 0; j < units; j++) store_row<decltype(T)::value>(x, j, WIDTH, gpu);
            for (int e = 0; e < WIDTH; e++) mismatches += !same(kv_at<decltype(T)::value>(cpu, e), want[e]);
        });
        if (!CHECK(stored)) return;
        // the stored bytes: the CPU's (F16: the same values, a NaN's bits aside)
        float back[WIDTH];
        tr->to_float(gpu, back, WIDTH);
        for (int e = 0; e < WIDTH; e++) mismatches += !same(back[e], want[e]);
        if (type != TND_TYPE_F16) mismatches += memcmp(cpu, gpu, bytes) != 0;
    }
    if (!CHECK(mismatches == 0)) fprintf(stderr, "  KV %s: %d differences\n", tr->name, mismatches);
}

// The int8 path: a chunk's levels give its elements back (scale * level - minv, to float rounding), and a row's
// dot with 8-bit activation blocks equals the float dot of the decoded row with the activations those blocks hold.
static void check_int8(tnd_type type) {
    const tnd_type_traits *tr = tnd_type_traits_of(type);
    enum { N = 1024 };
    uint8_t row[N * 2];
    float x[N], w[N];
    uint32_t xq[N / 32][Q8_WORDS];
    int bad_levels = 0, bad_dots = 0;
    for (int round = 0; round < 16; round++) {
        for (int i = 0; i < N; i++) x[i] = frand() * (float)(1 + round), w[i] = frand() * 2.0f;
        tr->from_float(w, row, N);
        for (int b = 0; b < N / 32; b++) quantize_q8_block(x, b, N, xq[b]);
        double want = 0, scale_of_terms = 0;
        float got = 0;
        with_quantized_type(type, [&](auto T) {
            constexpr tnd_type TT = decltype(T)::value;
            for (int c = 0; c < N / 32; c++) {
                float v[32], scale[2], minv[2];
                uint32_t qw[8];
                dequant32<TT>(row, c, N, v);
                chunk_levels<TT>(row, c, qw, scale, minv);
                float dx = float_from_bits(xq[c][8]);
                for (int i = 0; i < 32; i++) {
                    int level = (int8_t)(qw[i / 4] >> (8 * (i % 4)));
                    if (type != TND_TYPE_Q8_0) level &= 0xff; // unsigned levels but Q8_0's
                    float back = scale[i / 16] * (float)level - minv[i / 16];
                    bad_levels += fabsf(back - v[i]) > 1e-5f * (fabsf(v[i]) + fabsf(minv[i / 16]) + 1e-6f);
                    int xl = (int8_t)(xq[c][i / 4] >> (8 * (i % 4)));
                    want += (double)v[i] * dx * xl;
                    scale_of_terms += fabs((double)v[i] * dx * xl);
                }
                got += dot_chunk_q8(qw, scale, minv, xq[c]);
            }
        });
        bad_dots += fabs((double)got - want) > 1e-5 * scale_of_terms;
    }
    if (!CHECK(bad_levels == 0 && bad_dots == 0))
        fprintf(stderr, "  int8 %s: %d elements and %d dots off\n", tr->name, bad_levels, bad_dots);
}

int main(void) {
    static const tnd_type weights[] = {TND_TYPE_F32,  TND_TYPE_F16,  TND_TYPE_BF16, TND_TYPE_Q4_0, TND_TYPE_Q4_1,
                                       TND_TYPE_Q5_0, TND_TYPE_Q5_1, TND_TYPE_Q8_0, TND_TYPE_Q2_K, TND_TYPE_Q3_K,
                                       TND_TYPE_Q4_K, TND_TYPE_Q5_K, TND_TYPE_Q6_K};
    for (tnd_type t : weights) check_weights(t);
    for (tnd_type t : weights)
        if (tnd_type_traits_of(t)->block_size > 1) check_int8(t);
    /* an activation block with a NaN or an infinity gives NaN dots, as the float path would */
    float bad[32] = {0};
    bad[5] = INFINITY;
    uint32_t block[Q8_WORDS], qw[8] = {0x01010101u, 0, 0, 0, 0, 0, 0, 0};
    float unit[2] = {1.0f, 1.0f}, none[2] = {0.0f, 0.0f};
    quantize_q8_block(bad, 0, 32, block);
    CHECK(isnan(float_from_bits(block[8])) && block[0] == 0 && isnan(dot_chunk_q8(qw, unit, none, block)));
    static const tnd_type kv[] = {TND_TYPE_F32, TND_TYPE_F16, TND_TYPE_Q8_0, TND_TYPE_Q4_0};
    for (tnd_type t : kv) check_kv(t);
    printf("the CUDA device's decoding of 13 weight types (and as 8-bit levels, the 10 quantized ones) and 4 KV types, "
           "on the host: checked against the CPU's\n");
    return tnd_test_finish("cuda_math");
}
