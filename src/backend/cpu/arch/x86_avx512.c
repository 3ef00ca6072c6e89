/* x86_avx512.c: CPU kernels for processors with AVX-512 (F, BW, VL) and VNNI, chosen at run time by cpu_kernels.c
 * over the AVX2 file: every quantized type (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K..Q6_K), BF16 (where AVX512_BF16
 * is present) and the attention tile.
 * vpdpbusd multiplies 64 unsigned by 64 signed bytes and adds each group of four products into one of 16 int32
 * lanes in a single instruction, so the weights are brought to unsigned levels (nibbles as they are, Q8_0 bytes
 * + 128, Q5_0 and Q3_K levels as they are, Q6_K levels 0..63) and the offset is taken back through the activation sums.
 *
 * Quantized tiles take packed row groups (one lane per row), and their dot repeats a lane's arithmetic on one row
 * as the file has it; BF16 is one inline template over a tile of R rows x T tokens whose dot is the 1 x 1
 * instance. Each (row, token) pair goes through the same arithmetic in the same order
 * whatever the tile, so tiles and dots agree bit for bit (the batching invariance test_cpu_kernels checks).
 * Layouts: src/quant. */
#include "backend/cpu/cpu_kernels.h"

#include <immintrin.h>
#include <math.h>
#include <stdbool.h>
#include <string.h>

#define ALWAYS_INLINE static inline __attribute__((always_inline))

enum {
    QK = 32,
    Q8_0_BYTES = 34,
    Q4_0_BYTES = 18,
    Q4_1_BYTES = 20,
    Q5_0_BYTES = 22,
    Q5_1_BYTES = 24,
    QK_K = 256,
    Q2_K_BYTES = 84,
    Q3_K_BYTES = 110,
    Q4_K_BYTES = 144,
    Q5_K_BYTES = 176,
    Q6_K_BYTES = 210
};

/* Tile shape of the kernel over rows as the file has them (BF16): accumulators for R x T pairs plus the
 * unpacked weights must fit the 32 vector registers. */
enum { TILE_ROWS_32 = 4, TILE_TOKENS_32 = 4 };

static inline uint16_t load_u16(const uint8_t *p) {
    uint16_t v;
    memcpy(&v, p, 2);
    return v;
}

static inline float load_f32(const uint8_t *p) {
    float v;
    memcpy(&v, p, 4);
    return v;
}

static inline float fp16_load(const uint8_t *p) { return _cvtsh_ss(load_u16(p)); }

ALWAYS_INLINE __m512i load512(const uint8_t *p) { return _mm512_loadu_si512((const void *)p); }
ALWAYS_INLINE __m256i load256(const uint8_t *p) { return _mm256_loadu_si256((const __m256i *)(const void *)p); }

/* ------------------------------------------------------------------------------------------------------------
 * Blocks of 32 with one fp16 scale, activations quantized per block to int8 with a float scale (as Q8_0).
 * ---------------------------------------------------------------------------------------------------------- */

/* Quantizes 32 floats to int8 with d = max|x| / 127 (as Q8_0, but d stays a float); returns d. */
static inline float quantize_block(const float *x, __m128i *lo, __m128i *hi) {
    __m512 v0 = _mm512_loadu_ps(x), v1 = _mm512_loadu_ps(x + 16);
    float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(v0), _mm512_abs_ps(v1)));
    float d = amax / 127.0f;
    __m512 id = _mm512_set1_ps(amax != 0.0f ? 127.0f / amax : 0.0f);
    *lo = _mm512_cvtsepi32_epi8(
        _mm512_cvt_roundps_epi32(_mm512_mul_ps(v0, id), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    *hi = _mm512_cvtsepi32_epi8(
        _mm512_cvt_roundps_epi32(_mm512_mul_ps(v1, id), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    return d;
}

/* ------------------------------------------------------------------------------------------------------------
 * Row groups, one lane per weight row (Q4_0 and Q8_0 here; the K types below use the same steps).
 *
 * Packed rows (tnd_cpu_pack_rows, groups of two halves of GROUP_ROWS, one block per chunk) store each block of a
 * group as the 32 rows' fp16 scales (and then their m, Q4_1/Q5_1), then each half's levels in 64-byte steps: step i
 * holds four consecutive columns of every row of the half in turn (bytes 4r..4r+3 for row r). The scales first:
 * a group's block is a whole number of cache lines (Q8_0 1088 bytes, Q4_0 576, Q5_0 704), so every level step is
 * one aligned line; with each half's scales before its own levels, half the steps straddled two lines. One
 * vpdpbusd multiplies step i by the token's four activations of those columns, broadcast, so every lane sums its
 * own row, and after the block's steps a lane holds the row's exact integer sum
 * for the block: one conversion, one scale multiply and one multiply-add per block for 16 rows x 32 columns. (Two
 * blocks of one row per vector needed the three per 64 multiply-adds: in cache the 4 x 4 tile of that layout ran
 * 135 G multiply-adds/s per core, one group x 8 tokens 320.) Levels are unsigned: nibbles as they are (two steps
 * per 64 bytes: low nibbles columns 8s..8s+3, high nibbles 8s+4..8s+7), Q5_0/Q5_1 with their fifth bits in a 1-bit
 * plane of 64 bytes merged by vpternlog, Q8_0 bytes + 128.
 *
 * Activations, per block: 32 int8, the float scale, and the block's integer sum start: minus the weights' level
 * offset times the sum of the activations (8 for Q4_0 nibbles, 16 for Q5_0, 128 for Q8_0 bytes), which takes the
 * offset back. For Q4_1/Q5_1 the sum starts at 0 and that slot holds instead the float scale times the sum of the
 * activations, which the rows' m multiply.
 * ---------------------------------------------------------------------------------------------------------- */

enum {
    GROUP_ROWS = 16,     /* rows of a packed group: one per lane */
    GROUP_TOKENS = 8,    /* the most tokens of a K-type tile (one group) */
    BLOCKS32_VECS = 2,   /* groups of a Q4_0/Q8_0 tile */
    BLOCKS32_TOKENS = 4, /* ... and its most tokens */
    ACT_BLOCK_BYTES = 40 /* 32 int8 | float d | int32 start */
};

static size_t act_blocks_bytes(int64_t n) { return (size_t)(n / QK) * ACT_BLOCK_BYTES; }

/* offset 0: the float d * sum instead of a start (the kinds with a min). */
static inline void quantize_blocks(const float *x, void *vy, int64_t n, int offset) {
    uint8_t *y = vy;
    for (int64_t b = 0; b < n / QK; b++, y += ACT_BLOCK_BYTES) {
        __m128i lo, hi;
        float d = quantize_block(x + b * QK, &lo, &hi);
        int32_t sum =
            _mm512_reduce_add_epi32(_mm512_cvtepi8_epi32(lo)) + _mm512_reduce_add_epi32(_mm512_cvtepi8_epi32(hi));
        int32_t start = -offset * sum;
        float scaled_sum = d * (float)sum;
        _mm_storeu_si128((__m128i *)(void *)y, lo);
        _mm_storeu_si128((__m128i *)(void *)(y + 16), hi);
        memcpy(y + QK, &d, 4);
        if (offset)
            memcpy(y + QK + 4, &start, 4);
        else
            memcpy(y + QK + 4, &scaled_sum, 4);
    }
}

static void quantize_act_q4_0(const float *x, void *y, int64_t n) { quantize_blocks(x, y, n, 8); }
static void quantize_act_q8_0(const float *x, void *y, int64_t n) { quantize_blocks(x, y, n, 128); }
static void quantize_act_q5_0(const float *x, void *y, int64_t n) { quantize_blocks(x, y, n, 16); }
static void quantize_act_min(const float *x, void *y, int64_t n) { quantize_blocks(x, y, n, 0); }

/* Every activation layout of this file is, per block of `block` elements, the int8 values, the float scale, then
 * what the entry needs of them (bytes in all: `bytes`). */
ALWAYS_INLINE void act_int8_to_float(const void *vy, float *out, int64_t n, int block, size_t bytes) {
    const uint8_t *y = vy;
    for (int64_t i = 0; i < n; i++) {
        const uint8_t *blk = y + (size_t)(i / block) * bytes;
        out[i] = load_f32(blk + block) * (float)(int8_t)blk[i % block];
    }
}

static void act_blocks_to_float(const void *y, float *out, int64_t n) {
    act_int8_to_float(y, out, n, QK, ACT_BLOCK_BYTES);
}

typedef enum block_kind {
    KIND_Q4_0,
    KIND_Q4_1,
    KIND_Q5_0,
    KIND_Q5_1,
    KIND_Q8_0,
    KIND_Q2_K,
    KIND_Q3_K,
    KIND_Q4_K,
    KIND_Q5_K,
    KIND_Q6_K
} block_kind;

/* The blocks of 32: bytes in the file, whether they carry a min (x = d q + m) and a fifth bit per level. */
ALWAYS_INLINE size_t block_bytes(block_kind kind) {
    return kind == KIND_Q4_0   ? Q4_0_BYTES
           : kind == KIND_Q4_1 ? Q4_1_BYTES
           : kind == KIND_Q5_0 ? Q5_0_BYTES
           : kind == KIND_Q5_1 ? Q5_1_BYTES
                               : Q8_0_BYTES;
}
ALWAYS_INLINE bool has_min(block_kind kind) { return kind == KIND_Q4_1 || kind == KIND_Q5_1; }
ALWAYS_INLINE bool has_fifth(block_kind kind) { return kind == KIND_Q5_0 || kind == KIND_Q5_1; }
/* Where the levels of a packed block's half v start (after the d and, for min kinds, the m of its 32 rows, then the
 * first half's levels), and in a block as the file has it (after d, m, then the fifth bits as a u32). */
ALWAYS_INLINE size_t group_levels_at(block_kind kind, int v) {
    size_t scales = (has_min(kind) ? 4 : 2) * GROUP_ROWS; /* a half's share of the block's scales */
    return BLOCKS32_VECS * scales + (size_t)v * (GROUP_ROWS * block_bytes(kind) - scales);
}
ALWAYS_INLINE size_t file_nibbles_at(block_kind kind) {
    return 2 + (has_min(kind) ? 2 : 0) + (has_fifth(kind) ? 4 : 0);
}

/* Bit planes: the `bits`-bit part of each level (bits 1 or 2), 64 bytes per 8 / bits steps of 4
 * columns: byte 4r + c holds the part of column 4m + c of row r (m < 8 / bits counts the steps from the vector's
 * first column) at bits m * bits and up. */
static void put_plane(uint8_t *plane, int r, int col, int part, int bits) {
    int cols = 32 / bits; /* columns per 64 bytes */
    plane[64 * (col / cols) + 4 * r + col % 4] |= (uint8_t)(part << (bits * (col % cols / 4)));
}

/* v with bit `from` of each byte moved to bit `to` (distances within a byte's bits; the 16-bit shift brings nothing
 * from the neighbouring byte below bit `to` + 1). */
ALWAYS_INLINE __m512i move_bits(__m512i v, int from, int to) {
    return to >= from ? _mm512_slli_epi16(v, (unsigned)(to - from)) : _mm512_srli_epi16(v, (unsigned)(from - to));
}

/* The field of step m of a plane moved to bit `to`, other bits cleared. */
ALWAYS_INLINE __m512i plane_step(__m512i plane, int m, int bits, int to) {
    return _mm512_and_si512(move_bits(plane, bits * m, to), _mm512_set1_epi8((char)(((1 << bits) - 1) << to)));
}

/* Writes the low four bits of row r's levels[0..n) into nibble steps: steps 2s and 2s + 1 share 64 bytes, the low
 * nibbles holding columns 8s..8s+3 and the high nibbles 8s+4..8s+7, four bytes per row. */
static void put_levels(uint8_t *steps, int r, const uint8_t *levels, int n) {
    for (int col = 0; col < n; col += 8)
        for (int c = 0; c < 4; c++)
            steps[8 * col + 4 * r + c] = (uint8_t)((levels[col + c] & 15) | (levels[col + 4 + c] & 15) << 4);
}

/* Rewrites one block of a group's rows (their blocks as the file has them, one after the other) into the layout
 * above. */
static void pack_group_block(uint8_t *blocks, int group, size_t len, block_kind kind) {
    uint8_t out[BLOCKS32_VECS * GROUP_ROWS * Q8_0_BYTES];
    memset(out, 0, sizeof out);
    for (int r = 0; r < group; r++) {
        const uint8_t *in = blocks + (size_t)r * len;
        uint8_t *levels_out = out + group_levels_at(kind, r / GROUP_ROWS);
        int lane = r % GROUP_ROWS;
        memcpy(out + 2 * r, in, 2);
        if (has_min(kind)) memcpy(out + 2 * BLOCKS32_VECS * GROUP_ROWS + 2 * r, in + 2, 2);
        if (kind == KIND_Q8_0) {
            for (int col = 0; col < QK; col++) /* step col / 4 */
                levels_out[64 * (col / 4) + 4 * lane + col % 4] = in[2 + col] ^ 0x80;
            continue;
        }
        uint8_t levels[QK]; /* file: byte j holds column j (low nibble) and j + 16 (high) */
        const uint8_t *nibbles = in + file_nibbles_at(kind);
        for (int j = 0; j < QK / 2; j++) {
            levels[j] = nibbles[j] & 15;
            levels[j + QK / 2] = nibbles[j] >> 4;
        }
        put_levels(levels_out, lane, levels, QK);
        if (has_fifth(kind)) /* the file's u32 after d (and m): bit e for column e */
            for (int col = 0; col < QK; col++)
                put_plane(levels_out + QK / 2 * GROUP_ROWS, lane, col, nibbles[-4 + col / 8] >> (col % 8) & 1, 1);
    }
    memcpy(blocks, out, (size_t)group * len);
}

static void pack_q4_0(uint8_t *blocks, int group, size_t len) { pack_group_block(blocks, group, len, KIND_Q4_0); }
static void pack_q8_0(uint8_t *blocks, int group, size_t len) { pack_group_block(blocks, group, len, KIND_Q8_0); }
static void pack_q4_1(uint8_t *blocks, int group, size_t len) { pack_group_block(blocks, group, len, KIND_Q4_1); }
static void pack_q5_0(uint8_t *blocks, int group, size_t len) { pack_group_block(blocks, group, len, KIND_Q5_0); }
static void pack_q5_1(uint8_t *blocks, int group, size_t len) { pack_group_block(blocks, group, len, KIND_Q5_1); }

ALWAYS_INLINE int32_t load_i32(const uint8_t *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return v;
}

/* The lanes of vector v of a tile's first R rows. */
ALWAYS_INLINE __mmask16 rows_of(int R, int v) {
    int n = R - GROUP_ROWS * v;
    return (__mmask16)(n >= GROUP_ROWS ? 0xffff : n > 0 ? (1u << n) - 1 : 0);
}

/* y[t * y_stride + r] for the first R rows of the BLOCKS32_VECS halves of the group at w and T tokens: each
 * broadcast of four activations feeds one vpdpbusd per half, which halves the loads per multiply-add against one
 * group x 8 tokens (in cache, 32 rows x 4 tokens ran 550-590 G multiply-adds/s per core, 16 x 8 250-330: the loads,
 * two per cycle, were the limit). */
ALWAYS_INLINE void tile_group_body(const uint8_t *w, const uint8_t *act, size_t act_stride, int64_t n, float *y,
                                   size_t y_stride, int R, int T, block_kind kind) {
    enum { V = BLOCKS32_VECS };
    const size_t group_block = V * GROUP_ROWS * block_bytes(kind);
    __m512 acc[V][BLOCKS32_TOKENS];
    for (int v = 0; v < V; v++)
        for (int t = 0; t < T; t++) acc[v][t] = _mm512_setzero_ps();
    for (int64_t b = 0; b < n / QK; b++, w += group_block) {
        tnd_cpu_prefetch_ahead(w, group_block);
        __m512 dw[V], mw[V];
        __m512i steps[V][QK / 4];
        for (int v = 0; v < V; v++) {
            const uint8_t *lv = w + group_levels_at(kind, v);
            dw[v] = _mm512_cvtph_ps(load256(w + 2 * GROUP_ROWS * v));
            if (has_min(kind)) mw[v] = _mm512_cvtph_ps(load256(w + 2 * GROUP_ROWS * (V + v)));
            const __m512i low4 = _mm512_set1_epi8(0x0f);
            __m512i fifth = has_fifth(kind) ? load512(lv + QK / 2 * GROUP_ROWS) : _mm512_setzero_si512();
            for (int i = 0; i < QK / 4; i++) {
                if (kind == KIND_Q8_0) {
                    steps[v][i] = load512(lv + 64 * i);
                } else if (i % 2 == 0) {
                    __m512i both = load512(lv + 32 * i), high = _mm512_srli_epi16(both, 4);
                    if (has_fifth(kind)) { /* bits 0-3 from the nibble, bit 4 from the plane (a bitwise select) */
                        steps[v][i] = _mm512_ternarylogic_epi32(low4, both, plane_step(fifth, i, 1, 4), 0xca);
                        steps[v][i + 1] = _mm512_ternarylogic_epi32(low4, high, plane_step(fifth, i + 1, 1, 4), 0xca);
                    } else {
                        steps[v][i] = _mm512_and_si512(both, low4);
                        steps[v][i + 1] = _mm512_and_si512(high, low4);
                    }
                }
            }
        }
        for (int t = 0; t < T; t++) {
            const uint8_t *a = act + (size_t)t * act_stride + (size_t)b * ACT_BLOCK_BYTES;
            /* even and odd steps in two chains, added at the end (exact): one chain of 8 waited on its latency */
            __m512i sum[V], odd[V];
            for (int v = 0; v < V; v++) {
                sum[v] = has_min(kind) ? _mm512_setzero_si512() : _mm512_set1_epi32(load_i32(a + QK + 4));
                odd[v] = _mm512_setzero_si512();
            }
            for (int i = 0; i < QK / 4; i += 2) {
                __m512i four = _mm512_set1_epi32(load_i32(a + 4 * i)),
                        next = _mm512_set1_epi32(load_i32(a + 4 * i + 4));
                for (int v = 0; v < V; v++) {
                    sum[v] = _mm512_dpbusd_epi32(sum[v], steps[v][i], four);
                    odd[v] = _mm512_dpbusd_epi32(odd[v], steps[v][i + 1], next);
                }
            }
            for (int v = 0; v < V; v++) sum[v] = _mm512_add_epi32(sum[v], odd[v]);
            __m512 da = _mm512_set1_ps(load_f32(a + QK));
            for (int v = 0; v < V; v++) {
                acc[v][t] = _mm512_fmadd_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(sum[v]), dw[v]), da, acc[v][t]);
                if (has_min(kind)) acc[v][t] = _mm512_fmadd_ps(mw[v], _mm512_set1_ps(load_f32(a + QK + 4)), acc[v][t]);
            }
        }
    }
    for (int t = 0; t < T; t++)
        for (int v = 0; v < V; v++)
            _mm512_mask_storeu_ps(y + (size_t)t * y_stride + GROUP_ROWS * v, rows_of(R, v), acc[v][t]);
}

/* The exact integer dot product of 32 unsigned levels with the 32 int8 at `act`. */
ALWAYS_INLINE int32_t dot32(__m256i levels, const uint8_t *act) {
    __m256i lanes = _mm256_dpbusd_epi32(_mm256_setzero_si256(), levels, load256(act));
    __m128i half = _mm_add_epi32(_mm256_castsi256_si128(lanes), _mm256_extracti128_si256(lanes, 1));
    half = _mm_add_epi32(half, _mm_shuffle_epi32(half, _MM_SHUFFLE(1, 0, 3, 2)));
    half = _mm_add_epi32(half, _mm_shuffle_epi32(half, _MM_SHUFFLE(2, 3, 0, 1)));
    return _mm_cvtsi128_si32(half);
}

/* One row as the file has it, with a lane's arithmetic of the tile above (the same bits): the block's exact
 * integer sum, converted, times the row's scale, then a multiply-add with the activation's scale. */
ALWAYS_INLINE float dot_row_body(const uint8_t *w, const uint8_t *act, int64_t n, block_kind kind) {
    float acc = 0.0f;
    for (int64_t b = 0; b < n / QK; b++, w += block_bytes(kind), act += ACT_BLOCK_BYTES) {
        __m256i levels;
        if (kind == KIND_Q8_0) {
            levels = _mm256_xor_si256(load256(w + 2), _mm256_set1_epi8((char)0x80));
        } else {
            __m128i nibbles = _mm_loadu_si128((const __m128i *)(const void *)(w + file_nibbles_at(kind)));
            levels = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(nibbles, 4), nibbles), _mm256_set1_epi8(0x0f));
            if (has_fifth(kind))
                levels = _mm256_or_si256(
                    levels,
                    _mm256_and_si256(_mm256_movm_epi8((__mmask32)(uint32_t)load_i32(w + file_nibbles_at(kind) - 4)),
                                     _mm256_set1_epi8(0x10)));
        }
        int32_t sum = (has_min(kind) ? 0 : load_i32(act + QK + 4)) + dot32(levels, act);
        acc = fmaf((float)sum * fp16_load(w), load_f32(act + QK), acc);
        if (has_min(kind)) acc = fmaf(fp16_load(w + 2), load_f32(act + QK + 4), acc);
    }
    return acc;
}

/* ------------------------------------------------------------------------------------------------------------
 * K types (super-blocks of 256), over row groups as Q4_0 above. Activations are 256 int8 per super-block with one
 * float scale, then what each weight type needs of them per sub-block, in a layout of its own.
 * ---------------------------------------------------------------------------------------------------------- */

/* Quantizes 256 floats to int8 at y with d = max|x| / 127 (as Q8_K); returns d and the sums of each 16. */
static float quantize_super_block(const float *x, uint8_t *y, int32_t sums[16]) {
    __m512 m = _mm512_setzero_ps();
    for (int i = 0; i < QK_K; i += 16) m = _mm512_max_ps(m, _mm512_abs_ps(_mm512_loadu_ps(x + i)));
    float amax = _mm512_reduce_max_ps(m);
    __m512 id = _mm512_set1_ps(amax != 0.0f ? 127.0f / amax : 0.0f);
    for (int g = 0; g < 16; g++) {
        __m512i q = _mm512_cvt_roundps_epi32(_mm512_mul_ps(_mm512_loadu_ps(x + 16 * g), id),
                                             _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        _mm_storeu_si128((__m128i *)(void *)(y + 16 * g), _mm512_cvtsepi32_epi8(q));
        sums[g] = _mm512_reduce_add_epi32(q);
    }
    return amax / 127.0f;
}

/* Q4_K: x = d * sc[j] * q - dmin * mn[j] for sub-block j of 32, q in 0..15; 6-bit scales and mins packed in 12
 * bytes (bytes 0-3: low 6 bits of sc 0-3, top 2 bits of sc 4-7; 4-7: the same for mn; 8-11: low 4 bits of sc 4-7
 * and mn 4-7). Returns the 8 scales in bytes 0-7 and the 8 mins in bytes 8-15. */
ALWAYS_INLINE __m128i q4_K_scales_mins(const uint8_t *s) {
    uint32_t u0, u1, u2;
    memcpy(&u0, s, 4);
    memcpy(&u1, s + 4, 4);
    memcpy(&u2, s + 8, 4);
    uint32_t sc_lo = u0 & 0x3f3f3f3fu, mn_lo = u1 & 0x3f3f3f3fu;
    uint32_t sc_hi = (u2 & 0x0f0f0f0fu) | ((u0 >> 6) & 0x03030303u) << 4;
    uint32_t mn_hi = ((u2 >> 4) & 0x0f0f0f0fu) | ((u1 >> 6) & 0x03030303u) << 4;
    return _mm_set_epi32((int)mn_hi, (int)mn_lo, (int)sc_hi, (int)sc_lo);
}

/* Q4_K over row groups, one lane per row as Q4_0 above. A packed super-block of 16 rows holds their d, their dmin
 * (fp16, 32 bytes each), their 12 scale bytes as three 64-byte words (word k of every row in turn, so the 6-bit
 * fields decode in lanes as q4_K_scales_mins does for one row), then the levels in the nibble steps of Q4_0, 32
 * loads of 64 bytes. A lane sums each sub-block of 32 exactly, multiplies the sum by its row's sub-block scale and
 * adds it up (exact in int32: |sum| <= 8 * 63 * 32 * 15 * 127); four vpdpwssd meet the mins with the
 * activations' sub-block sums. Then two conversions and multiply-adds per super-block, 16 rows x 256 columns.
 * Activations per super-block: 256 int8, float d, the 8 sub-block sums as int16 pairs (0, 2), (1, 3), (4, 6),
 * (5, 7) (the order the mins decode in, two to a 32-bit lane). */
enum { ACT_Q4_K_BYTES = QK_K + 4 + 16 };

static size_t act_q4_K_bytes(int64_t n) { return (size_t)(n / QK_K) * ACT_Q4_K_BYTES; }

static void quantize_act_q4_K(const float *x, void *vy, int64_t n) {
    uint8_t *y = vy;
    for (int64_t b = 0; b < n / QK_K; b++, x += QK_K, y += ACT_Q4_K_BYTES) {
        int32_t s[16];
        float d = quantize_super_block(x, y, s);
        const int16_t pairs[8] = {(int16_t)(s[0] + s[1]),   (int16_t)(s[4] + s[5]),  (int16_t)(s[2] + s[3]),
                                  (int16_t)(s[6] + s[7]),   (int16_t)(s[8] + s[9]),  (int16_t)(s[12] + s[13]),
                                  (int16_t)(s[10] + s[11]), (int16_t)(s[14] + s[15])};
        memcpy(y + QK_K, &d, 4);
        memcpy(y + QK_K + 4, pairs, sizeof pairs);
    }
}

static void act_q4_K_to_float(const void *y, float *out, int64_t n) {
    act_int8_to_float(y, out, n, QK_K, ACT_Q4_K_BYTES);
}

enum { Q4_K_GROUP_LEVELS = 4 * GROUP_ROWS + 3 * 64 }; /* where a packed super-block's levels start */

/* Where sub-block j's nibble steps lie in a packed super-block (256 bytes); Q5_K keeps its 64 bytes of fifth bits
 * right after them, so that the tile reads one stream front to back. With the fifth bits of all sub-blocks in a
 * plane after all the nibbles, two streams 2 KiB apart, one thread out of cache read Q5_K at half its in-cache speed
 * where Q4_K kept two thirds. */
static inline size_t q45_K_sub_block_bytes(bool five) { return five ? 256 + 64 : 256; }
static inline size_t q45_K_levels_at(int j, bool five) {
    return Q4_K_GROUP_LEVELS + q45_K_sub_block_bytes(five) * (size_t)j;
}

/* The levels of a Q4_K or Q5_K block as the file has it: element 32j + l of sub-block j takes the low nibble of
 * qs[32(j / 2) + l] for even j, the high one for odd j, and for Q5_K bit j of qh[l] as its fifth bit. */
static void q45_K_levels(const uint8_t *blk, bool five, uint8_t levels[QK_K]) {
    const uint8_t *qs = blk + (five ? 48 : 16), *qh = blk + 16;
    for (int j = 0; j < 8; j++)
        for (int l = 0; l < 32; l++)
            levels[32 * j + l] =
                (uint8_t)((qs[32 * (j / 2) + l] >> (4 * (j % 2)) & 15) | (five ? (qh[l] >> j & 1) << 4 : 0));
}

static void pack_q45_K(uint8_t *blocks, int group, size_t len, bool five) {
    uint8_t out[GROUP_ROWS * Q5_K_BYTES], levels[QK_K];
    memset(out, 0, sizeof out);
    for (int r = 0; r < group; r++) {
        const uint8_t *in = blocks + (size_t)r * len;
        memcpy(out + 2 * r, in, 2);
        memcpy(out + 2 * GROUP_ROWS + 2 * r, in + 2, 2);
        for (int k = 0; k < 3; k++) memcpy(out + 4 * GROUP_ROWS + 64 * k + 4 * r, in + 4 + 4 * k, 4);
        q45_K_levels(in, five, levels);
        for (int j = 0; j < 8; j++) {
            uint8_t *lv = out + q45_K_levels_at(j, five);
            put_levels(lv, r, levels + 32 * j, 32);
            if (five) /* 64 bytes per sub-block */
                for (int col = 0; col < 32; col++) put_plane(lv + 256, r, col, levels[32 * j + col] >> 4, 1);
        }
    }
    memcpy(blocks, out, (size_t)group * len);
}

static void pack_q4_K(uint8_t *blocks, int group, size_t len) { pack_q45_K(blocks, group, len, false); }
static void pack_q5_K(uint8_t *blocks, int group, size_t len) { pack_q45_K(blocks, group, len, true); }

ALWAYS_INLINE void tile_q45_K_body(const uint8_t *w, const uint8_t *act, size_t act_stride, int64_t n, float *y,
                                   size_t y_stride, int R, int T, bool five) {
    const __m512i low4 = _mm512_set1_epi8(0x0f), low6 = _mm512_set1_epi8(0x3f), low2 = _mm512_set1_epi8(0x03);
    const __m512i byte = _mm512_set1_epi32(0xff), even = _mm512_set1_epi32(0x00ff00ff);
    __m512 acc[GROUP_TOKENS];
    for (int t = 0; t < T; t++) acc[t] = _mm512_setzero_ps();
    for (int64_t b = 0; b < n / QK_K; b++, w += GROUP_ROWS * (five ? Q5_K_BYTES : Q4_K_BYTES)) {
        const uint8_t *a0 = act + (size_t)b * ACT_Q4_K_BYTES;
        __m512 dw = _mm512_cvtph_ps(load256(w)), dminw = _mm512_cvtph_ps(load256(w + 2 * GROUP_ROWS));
        __m512i u0 = load512(w + 4 * GROUP_ROWS), u1 = load512(w + 4 * GROUP_ROWS + 64),
                u2 = load512(w + 4 * GROUP_ROWS + 128);
        __m512i sc_lo = _mm512_and_si512(u0, low6), mn_lo = _mm512_and_si512(u1, low6);
        __m512i sc_hi = _mm512_or_si512(_mm512_and_si512(u2, low4),
                                        _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(u0, 6), low2), 4));
        __m512i mn_hi = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi32(u2, 4), low4),
                                        _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(u1, 6), low2), 4));
        __m512i total[GROUP_TOKENS];
        for (int t = 0; t < T; t++) total[t] = _mm512_setzero_si512();
        for (int j = 0; j < 8; j++) {
            const uint8_t *lv = w + q45_K_levels_at(j, five);
            tnd_cpu_prefetch_ahead(lv, q45_K_sub_block_bytes(five));
            __m512i sc = _mm512_and_si512(_mm512_srli_epi32(j < 4 ? sc_lo : sc_hi, 8 * (j % 4)), byte);
            __m512i steps[8], fifth = five ? load512(lv + 256) : _mm512_setzero_si512();
            for (int s = 0; s < 4; s++) {
                __m512i both = load512(lv + 64 * s), high = _mm512_srli_epi16(both, 4);
                if (five) { /* bits 0-3 from the nibble, bit 4 from the fifth bits (vpternlog as a bitwise select) */
                    steps[2 * s] = _mm512_ternarylogic_epi32(low4, both, plane_step(fifth, 2 * s, 1, 4), 0xca);
                    steps[2 * s + 1] = _mm512_ternarylogic_epi32(low4, high, plane_step(fifth, 2 * s + 1, 1, 4), 0xca);
                } else {
                    steps[2 * s] = _mm512_and_si512(both, low4);
                    steps[2 * s + 1] = _mm512_and_si512(high, low4);
                }
            }
            for (int t = 0; t < T; t++) {
                const uint8_t *a = a0 + (size_t)t * act_stride + 32 * j;
                __m512i sum = _mm512_setzero_si512(), odd = _mm512_setzero_si512(); /* two chains, as the tile above */
                for (int i = 0; i < 8; i += 2) {
                    sum = _mm512_dpbusd_epi32(sum, steps[i], _mm512_set1_epi32(load_i32(a + 4 * i)));
                    odd = _mm512_dpbusd_epi32(odd, steps[i + 1], _mm512_set1_epi32(load_i32(a + 4 * i + 4)));
                }
                total[t] = _mm512_add_epi32(total[t], _mm512_mullo_epi32(_mm512_add_epi32(sum, odd), sc));
            }
        }
        const __m512i mn[4] = {_mm512_and_si512(mn_lo, even), _mm512_and_si512(_mm512_srli_epi32(mn_lo, 8), even),
                               _mm512_and_si512(mn_hi, even), _mm512_and_si512(_mm512_srli_epi32(mn_hi, 8), even)};
        for (int t = 0; t < T; t++) {
            const uint8_t *a = a0 + (size_t)t * act_stride;
            __m512i mins = _mm512_setzero_si512();
            for (int p = 0; p < 4; p++)
                mins = _mm512_dpwssd_epi32(mins, mn[p], _mm512_set1_epi32(load_i32(a + QK_K + 4 + 4 * p)));
            __m512 da = _mm512_set1_ps(load_f32(a + QK_K));
            acc[t] = _mm512_fmadd_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(total[t]), dw), da, acc[t]);
            acc[t] = _mm512_fnmadd_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(mins), dminw), da, acc[t]);
        }
    }
    for (int t = 0; t < T; t++) _mm512_mask_storeu_ps(y + (size_t)t * y_stride, (__mmask16)((1u << R) - 1), acc[t]);
}

/* One Q4_K or Q5_K row as the file has it, with a lane's arithmetic of the tile above. */
ALWAYS_INLINE float dot_row_q45_K(const uint8_t *w, const uint8_t *act, int64_t n, bool five) {
    float acc = 0.0f;
    for (int64_t b = 0; b < n / QK_K; b++, w += five ? Q5_K_BYTES : Q4_K_BYTES, act += ACT_Q4_K_BYTES) {
        uint8_t sm[16], levels[QK_K]; /* 8 scales, 8 mins */
        _mm_storeu_si128((__m128i *)(void *)sm, q4_K_scales_mins(w + 4));
        q45_K_levels(w, five, levels);
        int32_t total = 0, mins = 0;
        for (int j = 0; j < 8; j++) total += sm[j] * dot32(load256(levels + 32 * j), act + 32 * j);
        static const int pair_order[8] = {0, 2, 1, 3, 4, 6, 5, 7}; /* sub-block of each int16 sum */
        for (int i = 0; i < 8; i++) {
            int16_t s;
            memcpy(&s, act + QK_K + 4 + 2 * i, 2);
            mins += sm[8 + pair_order[i]] * s;
        }
        float da = load_f32(act + QK_K);
        acc = fmaf((float)total * fp16_load(w), da, acc);
        acc = fmaf(-((float)mins * fp16_load(w + 2)), da, acc);
    }
    return acc;
}

static float dot_group_row_q4_K(const void *w, const void *a, int64_t n) { return dot_row_q45_K(w, a, n, false); }
static float dot_group_row_q5_K(const void *w, const void *a, int64_t n) { return dot_row_q45_K(w, a, n, true); }

/* Q6_K over row groups, one lane per row: x = d * sc[j] * (q - 32) for sub-block j of 16, q in 0..63. A packed
 * super-block of 16 rows holds their d (fp16), their int8 scales by sub-block (16 bytes per sub-block, one per
 * row), then per sub-block the top two bits of the levels (64 bytes: byte 4r + c holds the bits of column 4m + c of
 * row r at bits 2m..2m+1) and the low four bits in the nibble steps of Q4_0 (128 bytes), one stream as Q5_K's. A
 * lane starts each sub-block at minus 32 times the activations' sum (the level offset), adds four vpdpbusd and
 * multiplies by its row's scale (exact in int32), so one conversion and multiply-add remain per super-block.
 * Activations per super-block: 256 int8, float d, the 16 starts as int32. */
enum {
    ACT_Q6_K_BYTES = QK_K + 4 + 64,
    Q6_K_GROUP_SCALES = 2 * GROUP_ROWS,                      /* offsets in a packed super-block */
    Q6_K_GROUP_LEVELS = Q6_K_GROUP_SCALES + 16 * GROUP_ROWS, /* sub-block j's 192 bytes at + 192 j */
    Q6_K_SUB_BLOCK_BYTES = 64 + 128
};

static size_t act_q6_K_bytes(int64_t n) { return (size_t)(n / QK_K) * ACT_Q6_K_BYTES; }

/* Activations of the K types with signed sub-blocks of 16 (Q3_K, Q6_K): each sub-block's sum starts at minus the
 * weights' level offset times the activations' sum. */
ALWAYS_INLINE void quantize_act_starts(const float *x, void *vy, int64_t n, int32_t offset) {
    uint8_t *y = vy;
    for (int64_t b = 0; b < n / QK_K; b++, x += QK_K, y += ACT_Q6_K_BYTES) {
        int32_t s[16];
        float d = quantize_super_block(x, y, s);
        for (int j = 0; j < 16; j++) {
            int32_t start = -offset * s[j];
            memcpy(y + QK_K + 4 + 4 * j, &start, 4);
        }
        memcpy(y + QK_K, &d, 4);
    }
}

static void quantize_act_q6_K(const float *x, void *y, int64_t n) { quantize_act_starts(x, y, n, 32); }
static void quantize_act_q3_K(const float *x, void *y, int64_t n) { quantize_act_starts(x, y, n, 4); }

static void act_q6_K_to_float(const void *y, float *out, int64_t n) {
    act_int8_to_float(y, out, n, QK_K, ACT_Q6_K_BYTES);
}

/* The levels of a Q6_K block as the file has it: in each half h of 128, element 32p + l takes
 * ql[64h + 32(p & 1) + l] (the low nibble for p < 2) and bits 2p..2p+1 of qh[32h + l]. */
static void q6_K_levels(const uint8_t *blk, uint8_t levels[QK_K]) {
    for (int h = 0; h < 2; h++)
        for (int p = 0; p < 4; p++)
            for (int l = 0; l < 32; l++)
                levels[128 * h + 32 * p + l] = (uint8_t)((blk[64 * h + 32 * (p & 1) + l] >> (4 * (p / 2)) & 15) |
                                                         (blk[128 + 32 * h + l] >> (2 * p) & 3) << 4);
}

static void pack_q6_K(uint8_t *blocks, int group, size_t len) {
    uint8_t out[GROUP_ROWS * Q6_K_BYTES], levels[QK_K];
    memset(out, 0, sizeof out);
    for (int r = 0; r < group; r++) {
        const uint8_t *in = blocks + (size_t)r * len;
        memcpy(out + 2 * r, in + 208, 2);
        for (int j = 0; j < 16; j++) out[Q6_K_GROUP_SCALES + GROUP_ROWS * j + r] = in[192 + j];
        q6_K_levels(in, levels);
        for (int j = 0; j < 16; j++) {
            uint8_t *sub = out + Q6_K_GROUP_LEVELS + Q6_K_SUB_BLOCK_BYTES * j;
            for (int col = 0; col < 16; col++) put_plane(sub, r, col, levels[16 * j + col] >> 4, 2);
            put_levels(sub + 64, r, levels + 16 * j, 16);
        }
    }
    memcpy(blocks, out, (size_t)group * len);
}

/* Sub-block j of a packed Q6_K super-block: its four steps of levels 0..63 and the rows' scales. */
ALWAYS_INLINE __m512i q6_K_sub_block(const uint8_t *w, int j, __m512i steps[4]) {
    const __m512i low4 = _mm512_set1_epi8(0x0f);
    const uint8_t *sub = w + Q6_K_GROUP_LEVELS + Q6_K_SUB_BLOCK_BYTES * j;
    tnd_cpu_prefetch_ahead(sub, Q6_K_SUB_BLOCK_BYTES);
    __m512i bits = load512(sub);
    for (int s = 0; s < 2; s++) {
        __m512i both = load512(sub + 64 + 64 * s);
        /* bits 0-3 from the nibble, 4-7 from the top bits (vpternlog as a bitwise select) */
        steps[2 * s] = _mm512_ternarylogic_epi32(low4, both, plane_step(bits, 2 * s, 2, 4), 0xca);
        steps[2 * s + 1] =
            _mm512_ternarylogic_epi32(low4, _mm512_srli_epi16(both, 4), plane_step(bits, 2 * s + 1, 2, 4), 0xca);
    }
    return _mm512_cvtepi8_epi32(
        _mm_loadu_si128((const __m128i *)(const void *)(w + Q6_K_GROUP_SCALES + GROUP_ROWS * j)));
}

/* Q2_K over row groups, one lane per row: x = d * sc[j] * q - dmin * mn[j] for sub-block j of 16, q in 0..3, sc and
 * mn 4 bits (byte j of the file's 16 scale bytes: sc | mn << 4). A packed super-block of 16 rows holds their d, their
 * dmin (fp16, 32 bytes each), their scale bytes as four 64-byte words (word k: sub-blocks 4k..4k+3 of every row in
 * turn), then the levels in a 2-bit plane (64 bytes per sub-block): 84 bytes per row, as in the file. As Q4_K, a lane
 * sums each sub-block exactly, scales it in int32, and meets the mins with the activations' sub-block sums in
 * vpdpwssd: per word, the int16 pairs of sub-blocks (4k, 4k + 2) and (4k + 1, 4k + 3), the order of the sums. */
enum {
    ACT_Q2_K_BYTES = QK_K + 4 + 32,
    Q2_K_GROUP_SCALES = 4 * GROUP_ROWS, /* offsets in a packed super-block */
    Q2_K_GROUP_LEVELS = Q2_K_GROUP_SCALES + 4 * 64
};

static size_t act_q2_K_bytes(int64_t n) { return (size_t)(n / QK_K) * ACT_Q2_K_BYTES; }

static void quantize_act_q2_K(const float *x, void *vy, int64_t n) {
    uint8_t *y = vy;
    for (int64_t b = 0; b < n / QK_K; b++, x += QK_K, y += ACT_Q2_K_BYTES) {
        int32_t s[16];
        float d = quantize_super_block(x, y, s);
        int16_t pairs[16];
        for (int k = 0; k < 4; k++)
            for (int i = 0; i < 4; i++) pairs[4 * k + i] = (int16_t)s[4 * k + i / 2 + 2 * (i % 2)];
        memcpy(y + QK_K, &d, 4);
        memcpy(y + QK_K + 4, pairs, sizeof pairs);
    }
}

static void act_q2_K_to_float(const void *y, float *out, int64_t n) {
    act_int8_to_float(y, out, n, QK_K, ACT_Q2_K_BYTES);
}

/* The levels of a Q2_K block as the file has it: element 128h + 32p + l takes bits 2p..2p+1 of qs[32h + l] (qs at
 * byte 16). */
static void q2_K_levels(const uint8_t *blk, uint8_t levels[QK_K]) {
    for (int e = 0; e < QK_K; e++) levels[e] = blk[16 + 32 * (e / 128) + e % 32] >> (2 * (e % 128 / 32)) & 3;
}

static void pack_q2_K(uint8_t *blocks, int group, size_t len) {
    uint8_t out[GROUP_ROWS * Q2_K_BYTES], levels[QK_K];
    memset(out, 0, sizeof out);
    for (int r = 0; r < group; r++) {
        const uint8_t *in = blocks + (size_t)r * len;
        memcpy(out + 2 * r, in + 80, 2);
        memcpy(out + 2 * GROUP_ROWS + 2 * r, in + 82, 2);
        for (int k = 0; k < 4; k++) memcpy(out + Q2_K_GROUP_SCALES + 64 * k + 4 * r, in + 4 * k, 4);
        q2_K_levels(in, levels);
        for (int col = 0; col < QK_K; col++) put_plane(out + Q2_K_GROUP_LEVELS, r, col, levels[col], 2);
    }
    memcpy(blocks, out, (size_t)group * len);
}

ALWAYS_INLINE void tile_q2_K_body(const uint8_t *w, const uint8_t *act, size_t act_stride, int64_t n, float *y,
                                  size_t y_stride, int R, int T) {
    const __m512i low2 = _mm512_set1_epi8(0x03), low4 = _mm512_set1_epi32(0x0f), mins4 = _mm512_set1_epi32(0x000f000f);
    __m512 acc[GROUP_TOKENS];
    for (int t = 0; t < T; t++) acc[t] = _mm512_setzero_ps();
    for (int64_t b = 0; b < n / QK_K; b++, w += GROUP_ROWS * Q2_K_BYTES) {
        const uint8_t *a0 = act + (size_t)b * ACT_Q2_K_BYTES;
        __m512 dw = _mm512_cvtph_ps(load256(w)), dminw = _mm512_cvtph_ps(load256(w + 2 * GROUP_ROWS));
        __m512i words[4], total[GROUP_TOKENS];
        for (int k = 0; k < 4; k++) words[k] = load512(w + Q2_K_GROUP_SCALES + 64 * k);
        for (int t = 0; t < T; t++) total[t] = _mm512_setzero_si512();
        for (int j = 0; j < 16; j++) {
            tnd_cpu_prefetch_ahead(w + Q2_K_GROUP_LEVELS + 64 * j, 64);
            __m512i sc = _mm512_and_si512(_mm512_srli_epi32(words[j / 4], (unsigned)(8 * (j % 4))), low4);
            __m512i plane = load512(w + Q2_K_GROUP_LEVELS + 64 * j), steps[4];
            for (int m = 0; m < 4; m++) steps[m] = _mm512_and_si512(move_bits(plane, 2 * m, 0), low2);
            for (int t = 0; t < T; t++) {
                const uint8_t *a = a0 + (size_t)t * act_stride + 16 * j;
                __m512i sum = _mm512_setzero_si512();
                for (int i = 0; i < 4; i++)
                    sum = _mm512_dpbusd_epi32(sum, steps[i], _mm512_set1_epi32(load_i32(a + 4 * i)));
                total[t] = _mm512_add_epi32(total[t], _mm512_mullo_epi32(sum, sc));
            }
        }
        __m512i mn[8];
        for (int k = 0; k < 4; k++) {
            mn[2 * k] = _mm512_and_si512(_mm512_srli_epi32(words[k], 4), mins4);
            mn[2 * k + 1] = _mm512_and_si512(_mm512_srli_epi32(words[k], 12), mins4);
        }
        for (int t = 0; t < T; t++) {
            const uint8_t *a = a0 + (size_t)t * act_stride;
            __m512i mins = _mm512_setzero_si512();
            for (int p = 0; p < 8; p++)
                mins = _mm512_dpwssd_epi32(mins, mn[p], _mm512_set1_epi32(load_i32(a + QK_K + 4 + 4 * p)));
            __m512 da = _mm512_set1_ps(load_f32(a + QK_K));
            acc[t] = _mm512_fmadd_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(total[t]), dw), da, acc[t]);
            acc[t] = _mm512_fnmadd_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(mins), dminw), da, acc[t]);
        }
    }
    for (int t = 0; t < T; t++) _mm512_mask_storeu_ps(y + (size_t)t * y_stride, (__mmask16)((1u << R) - 1), acc[t]);
}

/* One Q2_K row as the file has it, with a lane's arithmetic of the tile above. */
static float dot_group_row_q2_K(const void *vw, const void *va, int64_t n) {
    const uint8_t *w = vw, *act = va;
    float acc = 0.0f;
    for (int64_t b = 0; b < n / QK_K; b++, w += Q2_K_BYTES, act += ACT_Q2_K_BYTES) {
        uint8_t levels[QK_K];
        q2_K_levels(w, levels);
        int32_t total = 0, mins = 0;
        for (int j = 0; j < 16; j++) {
            int32_t sum = 0;
            for (int l = 0; l < 16; l++) sum += levels[16 * j + l] * (int8_t)act[16 * j + l];
            total += (w[j] & 15) * sum;
        }
        for (int i = 0; i < 16; i++) { /* the sums in pair order, as quantize_act_q2_K wrote them */
            int16_t s;
            memcpy(&s, act + QK_K + 4 + 2 * i, 2);
            mins += (w[4 * (i / 4) + i % 4 / 2 + 2 * (i % 2)] >> 4) * s;
        }
        float da = load_f32(act + QK_K);
        acc = fmaf((float)total * fp16_load(w + 80), da, acc);
        acc = fmaf(-((float)mins * fp16_load(w + 82)), da, acc);
    }
    return acc;
}

/* Q3_K over row groups, one lane per row, as Q6_K: x = d * (sc[j] - 32) * (q - 4) for sub-block j of 16, q in
 * 0..7, sc 6 bits. A packed super-block of 16 rows holds their d (fp16), their 12 scale bytes as three 64-byte
 * words (as Q4_K), then per two sub-blocks their third bits (a 1-bit plane, 64 bytes) and the low two bits of their
 * levels (a 2-bit plane, 64 bytes per sub-block), one stream as Q5_K's: 110 bytes per row, as in the file. The
 * lanes decode the 16 signed scales four at a time (byte i of S[k] for sub-block 4k + i). Activations as Q6_K's
 * with a level offset of 4. */
enum {
    Q3_K_GROUP_SCALES = 2 * GROUP_ROWS,             /* offsets in a packed super-block */
    Q3_K_GROUP_LEVELS = Q3_K_GROUP_SCALES + 3 * 64, /* sub-blocks 2p and 2p + 1 at + 192 p */
    Q3_K_PAIR_BYTES = 3 * 64
};

/* The levels of a Q3_K block as the file has it: element 128h + 32p + l takes bits 2p..2p+1 of qs[32h + l] (qs
 * at byte 32) and bit (128h + 32p) / 32 of hmask[l] (at byte 0) as its third bit. */
static void q3_K_levels(const uint8_t *blk, uint8_t levels[QK_K]) {
    for (int e = 0; e < QK_K; e++)
        levels[e] = (uint8_t)((blk[32 + 32 * (e / 128) + e % 32] >> (2 * (e % 128 / 32)) & 3) |
                              (blk[e % 32] >> (e / 32) & 1) << 2);
}

/* Scale j of a Q3_K block, 0..63 (12 bytes at `sc`: low four bits in the nibbles of bytes 0-7, high two in 8-11). */
static int q3_K_scale(const uint8_t *sc, int j) {
    return (sc[j % 8] >> (4 * (j / 8)) & 15) | (sc[8 + j % 4] >> (2 * (j / 4)) & 3) << 4;
}

static void pack_q3_K(uint8_t *blocks, int group, size_t len) {
    uint8_t out[GROUP_ROWS * Q3_K_BYTES], levels[QK_K];
    memset(out, 0, sizeof out);
    for (int r = 0; r < group; r++) {
        const uint8_t *in = blocks + (size_t)r * len;
        memcpy(out + 2 * r, in + 108, 2);
        for (int k = 0; k < 3; k++) memcpy(out + Q3_K_GROUP_SCALES + 64 * k + 4 * r, in + 96 + 4 * k, 4);
        q3_K_levels(in, levels);
        for (int col = 0; col < QK_K; col++) {
            uint8_t *pair = out + Q3_K_GROUP_LEVELS + Q3_K_PAIR_BYTES * (col / 32);
            put_plane(pair, r, col % 32, levels[col] >> 2, 1);
            put_plane(pair + 64 + 64 * (col / 16 % 2), r, col % 16, levels[col] & 3, 2);
        }
    }
    memcpy(blocks, out, (size_t)group * len);
}

/* The 16 signed scales of a packed Q3_K super-block, decoded in lanes: byte i of S[k] for sub-block 4k + i. */
ALWAYS_INLINE void q3_K_scales(const uint8_t *w, __m512i S[4]) {
    const __m512i low2 = _mm512_set1_epi8(0x03), low4 = _mm512_set1_epi8(0x0f);
    __m512i u0 = load512(w + Q3_K_GROUP_SCALES), u1 = load512(w + Q3_K_GROUP_SCALES + 64);
    __m512i u2 = load512(w + Q3_K_GROUP_SCALES + 128);
    for (int k = 0; k < 4; k++) {
        __m512i low = _mm512_and_si512(k < 2 ? (k ? u1 : u0) : _mm512_srli_epi32(k == 3 ? u1 : u0, 4), low4);
        __m512i high = _mm512_and_si512(_mm512_srli_epi32(u2, (unsigned)(2 * k)), low2);
        S[k] = _mm512_sub_epi8(_mm512_or_si512(low, _mm512_slli_epi32(high, 4)), _mm512_set1_epi8(32));
    }
}

/* Sub-block j of a packed Q3_K super-block: its four steps of levels 0..7 and the rows' scales (the third bits of
 * sub-blocks j and j + 1 share a vector, loaded at even j into `third`). */
ALWAYS_INLINE __m512i q3_K_sub_block(const uint8_t *w, const __m512i S[4], int j, __m512i *third, __m512i steps[4]) {
    const __m512i low2 = _mm512_set1_epi8(0x03);
    const uint8_t *pair = w + Q3_K_GROUP_LEVELS + Q3_K_PAIR_BYTES * (j / 2);
    if (j % 2 == 0) {
        tnd_cpu_prefetch_ahead(pair, Q3_K_PAIR_BYTES);
        *third = load512(pair);
    }
    __m512i plane = load512(pair + 64 + 64 * (j % 2));
    for (int m = 0; m < 4; m++) /* bits 0-1 from the 2-bit plane, bit 2 from the third bits */
        steps[m] = _mm512_ternarylogic_epi32(low2, move_bits(plane, 2 * m, 0),
                                             plane_step(*third, 4 * (j % 2) + m, 1, 2), 0xca);
    return _mm512_srai_epi32(_mm512_slli_epi32(S[j / 4], (unsigned)(24 - 8 * (j % 4))), 24);
}

/* Q3_K and Q6_K share the lane arithmetic (signed scales per sub-block of 16, sums started at minus the level
 * offset times the activations' sum, no mins); they differ in how levels and scales unpack. */
ALWAYS_INLINE void tile_signed16_body(const uint8_t *w, const uint8_t *act, size_t act_stride, int64_t n, float *y,
                                      size_t y_stride, int R, int T, bool q3) {
    __m512 acc[GROUP_TOKENS];
    for (int t = 0; t < T; t++) acc[t] = _mm512_setzero_ps();
    for (int64_t b = 0; b < n / QK_K; b++, w += GROUP_ROWS * (q3 ? Q3_K_BYTES : Q6_K_BYTES)) {
        const uint8_t *a0 = act + (size_t)b * ACT_Q6_K_BYTES;
        __m512 dw = _mm512_cvtph_ps(load256(w));
        __m512i total[GROUP_TOKENS], S[4], third = _mm512_setzero_si512();
        if (q3) q3_K_scales(w, S);
        for (int t = 0; t < T; t++) total[t] = _mm512_setzero_si512();
        for (int j = 0; j < 16; j++) {
            __m512i steps[4];
            __m512i sc = q3 ? q3_K_sub_block(w, S, j, &third, steps) : q6_K_sub_block(w, j, steps);
            for (int t = 0; t < T; t++) {
                const uint8_t *a = a0 + (size_t)t * act_stride;
                __m512i sum = _mm512_set1_epi32(load_i32(a + QK_K + 4 + 4 * j));
                for (int i = 0; i < 4; i++)
                    sum = _mm512_dpbusd_epi32(sum, steps[i], _mm512_set1_epi32(load_i32(a + 16 * j + 4 * i)));
                total[t] = _mm512_add_epi32(total[t], _mm512_mullo_epi32(sum, sc));
            }
        }
        for (int t = 0; t < T; t++) {
            __m512 da = _mm512_set1_ps(load_f32(a0 + (size_t)t * act_stride + QK_K));
            acc[t] = _mm512_fmadd_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(total[t]), dw), da, acc[t]);
        }
    }
    for (int t = 0; t < T; t++) _mm512_mask_storeu_ps(y + (size_t)t * y_stride, (__mmask16)((1u << R) - 1), acc[t]);
}

/* One Q3_K or Q6_K row as the file has it, with a lane's arithmetic of the tile above. */
ALWAYS_INLINE float dot_row_signed16(const uint8_t *w, const uint8_t *act, int64_t n, bool q3) {
    float acc = 0.0f;
    for (int64_t b = 0; b < n / QK_K; b++, w += q3 ? Q3_K_BYTES : Q6_K_BYTES, act += ACT_Q6_K_BYTES) {
        uint8_t levels[QK_K];
        if (q3)
            q3_K_levels(w, levels);
        else
            q6_K_levels(w, levels);
        int32_t total = 0;
        for (int j = 0; j < 16; j++) {
            int32_t sum = load_i32(act + QK_K + 4 + 4 * j);
            for (int l = 0; l < 16; l++) sum += levels[16 * j + l] * (int8_t)act[16 * j + l];
            total += (q3 ? q3_K_scale(w + 96, j) - 32 : (int8_t)w[192 + j]) * sum;
        }
        acc = fmaf((float)total * fp16_load(w + (q3 ? 108 : 208)), load_f32(act + QK_K), acc);
    }
    return acc;
}

static float dot_group_row_q3_K(const void *w, const void *a, int64_t n) { return dot_row_signed16(w, a, n, true); }
static float dot_group_row_q6_K(const void *w, const void *a, int64_t n) { return dot_row_signed16(w, a, n, false); }

/* ------------------------------------------------------------------------------------------------------------
 * BF16 weights against BF16 activations (rounded to nearest even once per matmul): vdpbf16ps adds the two
 * products of each pair of bf16 into one of 16 float lanes, 32 elements per step (the last step masked).
 * Compiled for AVX512_BF16 only in these functions; registered only where the processor has it.
 * ---------------------------------------------------------------------------------------------------------- */

#define BF16_TARGET __attribute__((target("avx512bf16")))

BF16_TARGET static void quantize_bf16(const float *x, void *vy, int64_t n) {
    uint8_t *y = vy;
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __m512bh b = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(x + i + 16), _mm512_loadu_ps(x + i));
        _mm512_storeu_si512((void *)(y + 2 * i), (__m512i)b);
    }
    for (; i < n; i += 16) {
        __mmask16 m = (__mmask16)(n - i >= 16 ? 0xffff : (1u << (n - i)) - 1);
        __m256bh b = _mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(m, x + i));
        _mm256_mask_storeu_epi16(y + 2 * i, m, (__m256i)b);
    }
}

BF16_TARGET ALWAYS_INLINE void tile_bf16_body(const uint8_t *w, size_t w_stride, const uint8_t *act, size_t act_stride,
                                              int64_t n, float *y, size_t y_stride, int R, int T) {
    __m512 acc[TILE_ROWS_32][TILE_TOKENS_32];
    for (int r = 0; r < R; r++)
        for (int t = 0; t < T; t++) acc[r][t] = _mm512_setzero_ps();
    for (int64_t i = 0; i < n; i += 32) {
        __mmask32 m = (__mmask32)(n - i >= 32 ? 0xffffffffu : (1u << (n - i)) - 1);
        __m512i wv[TILE_ROWS_32];
        for (int r = 0; r < R; r++) wv[r] = _mm512_maskz_loadu_epi16(m, w + (size_t)r * w_stride + (size_t)i * 2);
        for (int t = 0; t < T; t++) {
            __m512i a = _mm512_maskz_loadu_epi16(m, act + (size_t)t * act_stride + (size_t)i * 2);
            for (int r = 0; r < R; r++) acc[r][t] = _mm512_dpbf16_ps(acc[r][t], (__m512bh)wv[r], (__m512bh)a);
        }
    }
    for (int t = 0; t < T; t++)
        for (int r = 0; r < R; r++) y[(size_t)t * y_stride + (size_t)r] = _mm512_reduce_add_ps(acc[r][t]);
}

/* ------------------------------------------------------------------------------------------------------------
 * Attention tile (see tnd_attn_tile_fn) for head sizes 64 and 128; others go to the AVX2 kernel
 * ---------------------------------------------------------------------------------------------------------- */

/* e^x for x <= 0, as the AVX2 file's exp256: x = n ln2 + r, Taylor series of e^r to r^6, 2^n in the exponent. */
static inline __m512 exp_neg512(__m512 x) {
    x = _mm512_max_ps(x, _mm512_set1_ps(-87.0f));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.0f / 720);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, n);
}

/* m[c] = column c of the 16 x 16 floats whose rows were m[0..15]. */
static inline void transpose16x16(__m512 m[16]) {
    __m512 t[16];
    for (int i = 0; i < 16; i += 2) { /* per 128-bit lane L: rows i, i+1 of columns 4L, 4L+1 | 4L+2, 4L+3 */
        t[i] = _mm512_unpacklo_ps(m[i], m[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(m[i], m[i + 1]);
    }
    for (int i = 0; i < 16; i += 4) /* m[i + c], 128-bit lane L: rows i..i+3 of column 4L + c */
        for (int c = 0; c < 4; c++) {
            __m512d lo = _mm512_castps_pd(t[i + c / 2]), hi = _mm512_castps_pd(t[i + 2 + c / 2]);
            m[i + c] = _mm512_castpd_ps(c % 2 ? _mm512_unpackhi_pd(lo, hi) : _mm512_unpacklo_pd(lo, hi));
        }
    for (int c = 0; c < 4; c++) { /* gather each column's four 128-bit pieces from m[c], m[4+c], m[8+c], m[12+c] */
        __m512 u0 = _mm512_shuffle_f32x4(m[c], m[4 + c], _MM_SHUFFLE(2, 0, 2, 0));
        __m512 u1 = _mm512_shuffle_f32x4(m[c], m[4 + c], _MM_SHUFFLE(3, 1, 3, 1));
        __m512 v0 = _mm512_shuffle_f32x4(m[8 + c], m[12 + c], _MM_SHUFFLE(2, 0, 2, 0));
        __m512 v1 = _mm512_shuffle_f32x4(m[8 + c], m[12 + c], _MM_SHUFFLE(3, 1, 3, 1));
        m[c] = _mm512_shuffle_f32x4(u0, v0, _MM_SHUFFLE(2, 0, 2, 0));
        m[8 + c] = _mm512_shuffle_f32x4(u0, v0, _MM_SHUFFLE(3, 1, 3, 1));
        m[4 + c] = _mm512_shuffle_f32x4(u1, v1, _MM_SHUFFLE(2, 0, 2, 0));
        m[12 + c] = _mm512_shuffle_f32x4(u1, v1, _MM_SHUFFLE(3, 1, 3, 1));
    }
}

/* n vectors of 16 values of a V row from element `at`, float or F16. */
ALWAYS_INLINE void load_row16(const void *row, int32_t at, int n, tnd_kv_kind kind, __m512 *out) {
    for (int u = 0; u < n; u++)
        out[u] = kind == TND_KV_F16 ? _mm512_cvtph_ps(_mm256_loadu_si256(
                                          (const __m256i *)(const void *)((const uint16_t *)row + at + 16 * u)))
                                    : _mm512_loadu_ps((const float *)row + at + 16 * u);
}

/* prefetcht0 that the compiler keeps: with _mm_prefetch, GCC 12 at -O3 left no prefetch at all in the attention
 * tile's object code (at -O2 it did), and the kernel ran 1.5x slower from memory. */
static inline void prefetch_line(const void *p) { __asm__ volatile("prefetcht0 %0" : : "m"(*(const char *)p)); }

/* Asks for piece `step` of the next tile's rows: 8 lines of K and 8 of V. One piece per 8 dimensions of 32
 * positions asks for np x hd x 2 bytes in all, the whole next tile of F16. */
enum { PREFETCH_PIECE = 512 };
static inline void prefetch_piece(const tnd_kv_prefetch *next, int32_t step) {
    size_t at = (size_t)step * PREFETCH_PIECE;
    if (!next || !next->k || at >= next->bytes) return;
    for (int off = 0; off < PREFETCH_PIECE; off += 64) {
        prefetch_line((const char *)next->k + at + off);
        prefetch_line((const char *)next->v + at + off);
    }
}

/* The loops over a group's heads (at most 8) carry "#pragma GCC unroll 8": unrolled before GCC lays out the
 * registers. At -O3 GCC 12 otherwise unrolled some of them late and kept the heads' sums in memory as well as in
 * registers, a store and a load in each sum's chain. */

/* acc[r][d0 ..] = acc[r][d0 ..] * c[r] + sum_j w[r][j] v[j][d0 ..] for GH heads at once over HV vectors of 16
 * values from d0: each V value is loaded (and decoded) once per group of heads. */
ALWAYS_INLINE void attn_accumulate(float *acc, const float *w, int32_t w_stride, const float *c, const void *v,
                                   int32_t np, int32_t hd, int32_t d0, int GH, int HV, tnd_kv_kind kind,
                                   const tnd_kv_prefetch *next, int32_t *step) {
    __m512 a[16];
#pragma GCC unroll 8
    for (int h = 0; h < GH; h++)
        for (int u = 0; u < HV; u++)
            a[h * HV + u] = _mm512_mul_ps(_mm512_loadu_ps(acc + h * hd + d0 + 16 * u), _mm512_set1_ps(c[h]));
    for (int32_t j = 0; j < np; j++) {
        if (j % 8 == 0) prefetch_piece(next, (*step)++);
        __m512 vj[8];
        load_row16(v, j * hd + d0, HV, kind, vj);
#pragma GCC unroll 8
        for (int h = 0; h < GH; h++) {
            __m512 wj = _mm512_set1_ps(w[h * w_stride + j]);
            for (int u = 0; u < HV; u++) a[h * HV + u] = _mm512_fmadd_ps(wj, vj[u], a[h * HV + u]);
        }
    }
#pragma GCC unroll 8
    for (int h = 0; h < GH; h++)
        for (int u = 0; u < HV; u++) _mm512_storeu_ps(acc + h * hd + d0 + 16 * u, a[h * HV + u]);
}

/* 16 positions of K transposed at element `at` (F16: positions outside `valid` read as zeros by masked loads,
 * nothing read beyond them). */
ALWAYS_INLINE __m512 load_k16(const void *k, size_t at, __mmask16 valid, tnd_kv_kind kind) {
    if (kind == TND_KV_FLOAT) return _mm512_loadu_ps((const float *)k + at);
    return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(valid, (const uint16_t *)k + at));
}

/* Scores of GH query heads (rows of hd floats) against 32 positions from K transposed: dimension d's values of
 * positions 0..15 at element d * stride of k, of 16..31 at d * stride + second, as float or F16. Each K value is
 * loaded once for all the heads and every multiply-add is a full vector, with no horizontal sums. Asks for a piece
 * of the next tile (if any) every 8 dimensions, *step counting the pieces. */
ALWAYS_INLINE void scores(const float *q, int32_t hd, const void *k, int32_t stride, int32_t second, int32_t n_valid,
                          tnd_kv_kind kind, float *s, int32_t s_stride, int GH, const tnd_kv_prefetch *next,
                          int32_t *step) {
    __mmask16 m0 = (__mmask16)(n_valid >= 16 ? 0xffff : (1u << n_valid) - 1);
    __mmask16 m1 = (__mmask16)(n_valid >= 32 ? 0xffff : n_valid > 16 ? (1u << (n_valid - 16)) - 1 : 0);
    __m512 a[8][2];
#pragma GCC unroll 8
    for (int h = 0; h < GH; h++) a[h][0] = a[h][1] = _mm512_setzero_ps();
    for (int32_t d = 0; d < hd; d++) {
        if (d % 8 == 0) prefetch_piece(next, (*step)++);
        size_t at = (size_t)d * (size_t)stride;
        __m512 k0 = load_k16(k, at, m0, kind), k1 = load_k16(k, at + (size_t)second, m1, kind);
#pragma GCC unroll 8
        for (int h = 0; h < GH; h++) {
            __m512 qd = _mm512_set1_ps(q[h * hd + d]);
            a[h][0] = _mm512_fmadd_ps(qd, k0, a[h][0]);
            a[h][1] = _mm512_fmadd_ps(qd, k1, a[h][1]);
        }
    }
#pragma GCC unroll 8
    for (int h = 0; h < GH; h++) {
        _mm512_storeu_ps(s + h * s_stride, a[h][0]);
        _mm512_storeu_ps(s + h * s_stride + 16, a[h][1]);
    }
}

/* Scores of GH query heads, quantized (qq), against 32 positions of a Q8_0 K in steps of four dimensions
 * (tnd_kv_stored), the softmax scale included: per 16 positions and block of 32 dimensions, the block's 8 steps are
 * loaded once for all the heads as unsigned bytes (levels + 128, as vpdpbusd takes them); a head's int32 lanes are
 * then its exact dot with each position plus 128 times the sum of its levels, which the start takes back, converted
 * and weighed by the position's scale times the head's. Positions from n_valid on are not read (their lanes are
 * written, and the softmax masks them). Asks for a piece of the next tile (if any) per 16 positions and block. */
ALWAYS_INLINE void scores_q8(tnd_attn_q8 qq, int32_t hd, const uint8_t *k, const uint16_t *scales, int32_t stride,
                             int32_t n_valid, float *s, int32_t s_stride, int GH, const tnd_kv_prefetch *next,
                             int32_t *step) {
    const __m512i bias = _mm512_set1_epi8((char)0x80);
    const int32_t blocks = hd / QK;
    for (int32_t j = 0; j < n_valid && j < 32; j += 16) {
        int32_t left = n_valid - j;
        __mmask16 valid = (__mmask16)(left >= 16 ? 0xffff : (1u << left) - 1);
        __mmask64 bytes = left >= 16 ? ~(__mmask64)0 : ((__mmask64)1 << (4 * left)) - 1;
        __m512 a[8];
#pragma GCC unroll 8
        for (int h = 0; h < GH; h++) a[h] = _mm512_setzero_ps();
        for (int32_t b = 0; b < blocks; b++) {
            prefetch_piece(next, (*step)++);
            __m512i steps[QK / 4];
            for (int i = 0; i < QK / 4; i++)
                steps[i] = _mm512_xor_si512(
                    _mm512_maskz_loadu_epi8(bytes, k + 4 * ((size_t)(QK / 4 * b + i) * (size_t)stride + (size_t)j)),
                    bias);
            __m512 dk = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(valid, scales + (size_t)b * (size_t)stride + j));
            __m512i sum[8]; /* the heads' sums advance together: each head's chain alone waits on its latency */
#pragma GCC unroll 8
            for (int h = 0; h < GH; h++) sum[h] = _mm512_set1_epi32(-128 * qq.sum[h * blocks + b]);
            const uint8_t *ql = (const uint8_t *)qq.levels + QK * b; /* head h's at ql + h * hd */
            for (int i = 0; i < QK / 4; i++)
#pragma GCC unroll 8
                for (int h = 0; h < GH; h++)
                    sum[h] = _mm512_dpbusd_epi32(sum[h], steps[i], _mm512_set1_epi32(load_i32(ql + h * hd + 4 * i)));
#pragma GCC unroll 8
            for (int h = 0; h < GH; h++)
                a[h] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sum[h]),
                                       _mm512_mul_ps(dk, _mm512_set1_ps(qq.scale[h * blocks + b])), a[h]);
        }
#pragma GCC unroll 8
        for (int h = 0; h < GH; h++) _mm512_storeu_ps(s + h * s_stride + j, a[h]);
    }
}

enum { ATTN_MAX_REP = 64, ATTN_W = TND_CPU_ATTN_TILE_MAX }; /* ATTN_W: the stride of one head's weights */


/* The weights of GH heads (rows w[h * ATTN_W ..], zero from np on) times the scales of block b of a Q8_0 V's np
 * positions (tnd_kv_stored), as 8-bit levels[h][j] (TND_ATTN_V_LEVELS_AVX512 at the head's largest) and the weight
 * of one level, unit[h] (NaN where a scale is not finite: the block's sums are then NaN, as float ones would be). */
ALWAYS_INLINE void v_weight_levels_of(const float *w, const uint16_t *scales, int32_t np, int GH,
                                      uint8_t (*levels)[ATTN_W], float *unit) {
    __m512 d[ATTN_W / 16]; /* the scales, once for all the heads (none read past np) */
    /* a scale that is not finite (the weights are in [0, 1], or NaN, and then so are the head's sum and outputs) */
    __mmask16 bad = 0;
    for (int32_t i = 0; 16 * i < np; i++) {
        int32_t left = np - 16 * i;
        __mmask16 valid = (__mmask16)(left >= 16 ? 0xffff : (1u << left) - 1);
        d[i] = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(valid, scales + 16 * i));
        bad |= _mm512_cmp_ps_mask(_mm512_abs_ps(d[i]), _mm512_set1_ps(3.0e38f), _CMP_NLE_UQ);
    }
    for (int h = 0; h < GH; h++) {
        __m512 p[ATTN_W / 16], top = _mm512_setzero_ps();
        for (int32_t i = 0; 16 * i < np; i++) {
            p[i] = _mm512_mul_ps(_mm512_loadu_ps(w + h * ATTN_W + 16 * i), d[i]);
            top = _mm512_max_ps(top, p[i]);
        }
        float most = _mm512_reduce_max_ps(top);
        /* a tile whose largest product is below 1e-30 adds nothing a float sum would keep: its levels are all 0 */
        __m512 per = _mm512_set1_ps(most > 1e-30f ? TND_ATTN_V_LEVELS_AVX512 / most : 0.0f);
        unit[h] = bad ? NAN : most / TND_ATTN_V_LEVELS_AVX512;
        for (int32_t i = 0; 16 * i < np; i++)
            _mm_storeu_si128((__m128i *)(void *)(levels[h] + 16 * i),
                             _mm512_cvtusepi32_epi8(_mm512_cvtps_epi32(_mm512_mul_ps(p[i], per))));
    }
}

/* A whole tile (the common case) with its loops' bounds known, so that the products stay in registers. */
ALWAYS_INLINE void v_weight_levels(const float *w, const uint16_t *scales, int32_t np, int GH,
                                   uint8_t (*levels)[ATTN_W], float *unit) {
    if (np == ATTN_W)
        v_weight_levels_of(w, scales, ATTN_W, GH, levels, unit);
    else
        v_weight_levels_of(w, scales, np, GH, levels, unit);
}

/* s[h][0..1] += the products of group g's two vectors of V at `at` (32 dimensions of four positions) with head h's
 * four weight levels, for GH heads. */
ALWAYS_INLINE void v_add_group(__m512i (*s)[2], const uint8_t *at, const uint8_t (*levels)[ATTN_W], int32_t g, int GH) {
    __m512i v0 = _mm512_loadu_si512(at), v1 = _mm512_loadu_si512(at + 64);
#pragma GCC unroll 8
    for (int h = 0; h < GH; h++) {
        __m512i w4 = _mm512_set1_epi32(load_i32(levels[h] + 4 * g));
        s[h][0] = _mm512_dpbusd_epi32(s[h][0], w4, v0);
        s[h][1] = _mm512_dpbusd_epi32(s[h][1], w4, v1);
    }
}

/* acc[h][32 b ..] = acc[h][32 b ..] * c[h] + unit[h] * sum_j levels[h][j] v[j][32 b ..] for GH heads over block b of
 * a Q8_0 V in groups of four positions: per group, the block's 32 dimensions are two vectors of 16 lanes of four
 * levels, and each head's four weight levels one broadcast lane, so vpdpbusd adds four positions' products at once
 * (a float sum takes one multiply-add per position). Asks for a piece of the next tile every fourth group: the
 * groups go four at a time and the rest one at a time, so that each loop is one straight path (with the request
 * inside a loop of single groups, GCC 12 copied every sum between two sets of registers on each group and kept one
 * in memory, a store and a load in its chain). */
ALWAYS_INLINE void v_accumulate_q8(float *acc, int32_t hd, const float *c, const uint8_t *v, int32_t np, int32_t b,
                                   const uint8_t (*levels)[ATTN_W], const float *unit, int GH,
                                   const tnd_kv_prefetch *next, int32_t *step) {
    __m512i s[8][2];
#pragma GCC unroll 8
    for (int h = 0; h < GH; h++) s[h][0] = s[h][1] = _mm512_setzero_si512();
    const uint8_t *block = v + 4 * QK * (size_t)b;
    int32_t groups = (np + 3) / 4, g = 0;
    for (; g + 4 <= groups; g += 4) {
        prefetch_piece(next, (*step)++);
#pragma GCC unroll 4
        for (int i = 0; i < 4; i++) v_add_group(s, block + (size_t)(g + i) * 4 * (size_t)hd, levels, g + i, GH);
    }
    if (g < groups) prefetch_piece(next, (*step)++);
    for (; g < groups; g++) v_add_group(s, block + (size_t)g * 4 * (size_t)hd, levels, g, GH);
#pragma GCC unroll 8
    for (int h = 0; h < GH; h++)
        for (int u = 0; u < 2; u++) {
            float *out = acc + h * hd + QK * b + 16 * u;
            _mm512_storeu_ps(out, _mm512_fmadd_ps(_mm512_cvtepi32_ps(s[h][u]), _mm512_set1_ps(unit[h]),
                                                  _mm512_mul_ps(_mm512_loadu_ps(out), _mm512_set1_ps(c[h]))));
        }
}

/* V of a Q8_0 cache in integers for GH heads (weights w, rows of ATTN_W), block by block of 32 dimensions. */
ALWAYS_INLINE void v_sum_q8(float *acc, int32_t hd, const float *w, const float *c, const tnd_kv_stored *kv,
                            int32_t np, int GH, const tnd_kv_prefetch *next, int32_t *step) {
    uint8_t levels[8][ATTN_W];
    float unit[8];
    for (int32_t b = 0; b < hd / QK; b++) {
        v_weight_levels(w, kv->v_scales + (size_t)b * (size_t)kv->stride, np, GH, levels, unit);
        v_accumulate_q8(acc, hd, c, (const uint8_t *)kv->v, np, b, (const uint8_t(*)[ATTN_W])levels, unit, GH, next,
                        step);
    }
}

/* The tile's softmax for rep heads: each row of weight (np scores) becomes e^(score * scale - m) with m the head's
 * running maximum, zero from np on; sum and mx advance and rescale[r] = e^(old m - m) (0 before the first tile).
 * The rescales take one vector exp for 16 heads rather than a scalar exp per head. */
ALWAYS_INLINE void tile_softmax_of(float (*weight)[ATTN_W], int32_t rep, int32_t np, float scale, float *mx, float *sum,
                                   float *rescale) {
    __mmask16 valid[ATTN_W / 16];
    int32_t n16 = (np + 15) / 16;
    for (int32_t i = 0; i < n16; i++) valid[i] = (__mmask16)(np - 16 * i >= 16 ? 0xffff : (1u << (np - 16 * i)) - 1);
    float m_new[ATTN_MAX_REP];
    for (int32_t r = 0; r < rep; r++) {
        __m512 vmax = _mm512_set1_ps(-INFINITY);
        for (int32_t i = 0; i < n16; i++) {
            float *w = weight[r] + 16 * i;
            __m512 s16 = _mm512_mask_mov_ps(_mm512_set1_ps(-INFINITY), valid[i],
                                            _mm512_mul_ps(_mm512_loadu_ps(w), _mm512_set1_ps(scale)));
            _mm512_storeu_ps(w, s16);
            vmax = _mm512_max_ps(vmax, s16);
        }
        float tile_max = _mm512_reduce_max_ps(vmax);
        m_new[r] = tile_max > mx[r] ? tile_max : mx[r];
    }
    for (int32_t r = 0; r < rep; r += 16) {
        __mmask16 heads = (__mmask16)(rep - r >= 16 ? 0xffff : (1u << (rep - r)) - 1);
        __m512 old = _mm512_maskz_loadu_ps(heads, mx + r), now = _mm512_maskz_loadu_ps(heads, m_new + r);
        __mmask16 started =
            _mm512_mask_cmp_ps_mask(heads, _mm512_maskz_loadu_ps(heads, sum + r), _mm512_setzero_ps(), _CMP_GT_OQ);
        _mm512_mask_storeu_ps(rescale + r, heads, _mm512_maskz_mov_ps(started, exp_neg512(_mm512_sub_ps(old, now))));
        _mm512_mask_storeu_ps(mx + r, heads, now);
    }
    for (int32_t r = 0; r < rep; r++) {
        __m512 wsum = _mm512_setzero_ps(), vm = _mm512_set1_ps(m_new[r]);
        for (int32_t i = 0; i < n16; i++) {
            float *w = weight[r] + 16 * i;
            __m512 w16 = _mm512_maskz_mov_ps(valid[i], exp_neg512(_mm512_sub_ps(_mm512_loadu_ps(w), vm)));
            _mm512_storeu_ps(w, w16);
            wsum = _mm512_add_ps(wsum, w16);
        }
        sum[r] = sum[r] * rescale[r] + _mm512_reduce_add_ps(wsum);
    }
}

/* A whole tile (the common case) with its loops' bounds known. */
ALWAYS_INLINE void tile_softmax(float (*weight)[ATTN_W], int32_t rep, int32_t np, float scale, float *mx, float *sum,
                                float *rescale) {
    if (np == ATTN_W)
        tile_softmax_of(weight, rep, ATTN_W, scale, mx, sum, rescale);
    else
        tile_softmax_of(weight, rep, np, scale, mx, sum, rescale);
}

static bool attn_head_fits(int32_t head_dim) { return head_dim == 64 || head_dim == 128; }

static bool attn_stored_takes(tnd_type type, int32_t head_dim) {
    return (type == TND_TYPE_F16 || type == TND_TYPE_Q8_0) && attn_head_fits(head_dim);
}

/* The tile for head sizes 64 and 128 (rep <= ATTN_MAX_REP) over float rows of K and V (TND_KV_FLOAT: K is transposed
 * here, 16 x 16 at a time), or over a cache as stored (kv: K transposed, V rows, F16 or Q8_0). */
ALWAYS_INLINE void attn_tile_body(const float *q, int32_t rep, int32_t hd, const float *k_rows, const float *v_rows,
                                  const tnd_kv_stored *kv, int32_t np, float scale, float *mx, float *sum, float *acc,
                                  tnd_kv_kind kind, const tnd_kv_prefetch *next) {
    const void *v = kind == TND_KV_FLOAT ? (const void *)v_rows : kv->v;
    float weight[ATTN_MAX_REP][ATTN_W], rescale[ATTN_MAX_REP], kt[2 * 128 * 16];
    int32_t step = 0;
    /* the next tile is asked for through the scores, and where they are short (a Q8_0 cache's integer scores) through
     * V too: requests bunched in a short stretch fill the core's queue of misses (1.1x slower) */
    const tnd_kv_prefetch *k_hint = next, *v_hint = kind == TND_KV_Q8_0 ? next : NULL;
    for (int32_t j0 = 0; j0 < np; j0 += 32) {
        /* K transposed: the cache's as stored (F16 values or Q8_0 levels), or float rows transposed here 16 x 16 at a
         * time into kt ([2][hd][16], rows past np as zeros) */
        const void *k_t = kt;
        const uint16_t *k_scales = NULL;
        int32_t stride = 16, second = hd * 16;
        if (kind != TND_KV_FLOAT) {
            stride = kv->stride, second = 16;
            k_t = kind == TND_KV_F16 ? (const void *)((const uint16_t *)kv->k + j0)
                                 : (const void *)((const uint8_t *)kv->k + 4 * j0); /* steps of 4 levels */
            if (kind == TND_KV_Q8_0) k_scales = kv->k_scales + j0;
        } else
            for (int g = 0; g < 2; g++)
                for (int32_t d0 = 0; d0 < hd; d0 += 16) {
                    __m512 m[16];
                    for (int i = 0; i < 16; i++) {
                        int32_t j = j0 + 16 * g + i;
                        m[i] = j < np ? _mm512_loadu_ps(k_rows + j * hd + d0) : _mm512_setzero_ps();
                    }
                    transpose16x16(m);
                    for (int i = 0; i < 16; i++) _mm512_storeu_ps(kt + ((g * hd) + d0 + i) * 16, m[i]);
                }
        /* groups of 8 heads, then the rest in one group (a KV head's 7 query heads of Qwen2.5-0.5B read each K
         * value once, not four times); the first group asks for the next tile */
        for (int32_t r = 0; r < rep;) {
            int32_t left = rep - r, gh = left >= 8 ? 8 : left;
            float *s_out = weight[r] + j0;
            const tnd_kv_prefetch *hint = r ? NULL : k_hint;
            switch (gh) {
#define SCORES_OF(G)                                                                                                   \
    case G:                                                                                                            \
        if (kind == TND_KV_Q8_0)                                                                                       \
            scores_q8(tnd_attn_q8_from(kv->q8, r, hd), hd, k_t, k_scales, stride, np - j0, s_out, ATTN_W, G, hint,     \
                      &step);                                                                                          \
        else                                                                                                           \
            scores(q + r * hd, hd, k_t, stride, second, np - j0, kind, s_out, ATTN_W, G, hint, &step);                 \
        break;
                SCORES_OF(8) SCORES_OF(7) SCORES_OF(6) SCORES_OF(5) SCORES_OF(4) SCORES_OF(3) SCORES_OF(2)
                SCORES_OF(1)
#undef SCORES_OF
            }
            r += gh;
        }
    }
    tile_softmax(weight, rep, np, kind == TND_KV_Q8_0 ? 1.0f : scale, mx, sum, rescale); /* Q8_0: queries hold it */
    /* V: a Q8_0 cache's in integers, up to 8 heads at a time; rows of floats or F16 values for up to 8 heads over 32
     * values at a time (the rest of the heads in one group), a single head over 64 */
    for (int32_t r = 0; kind == TND_KV_Q8_0 && r < rep;) {
        int32_t left = rep - r, gh = left >= 8 ? 8 : left;
        switch (gh) {
#define V_SUM_OF(G)                                                                                                    \
    case G: v_sum_q8(acc + r * hd, hd, weight[r], rescale + r, kv, np, G, r ? NULL : v_hint, &step); break;
            V_SUM_OF(8) V_SUM_OF(7) V_SUM_OF(6) V_SUM_OF(5) V_SUM_OF(4) V_SUM_OF(3) V_SUM_OF(2) V_SUM_OF(1)
#undef V_SUM_OF
        }
        r += gh;
    }
    for (int32_t r = 0; kind != TND_KV_Q8_0 && r < rep;) {
        int32_t left = rep - r, gh = left >= 8 ? 8 : left;
        switch (gh) {
#define ACCUMULATE_OF(G, HV)                                                                                           \
    case G:                                                                                                            \
        for (int32_t d0 = 0; d0 < hd; d0 += 16 * (HV))                                                                 \
            attn_accumulate(acc + r * hd, weight[r], ATTN_W, rescale + r, v, np, hd, d0, G, HV, kind,                 \
                            r ? NULL : v_hint, &step);                                                                 \
        break;
            ACCUMULATE_OF(8, 2) ACCUMULATE_OF(7, 2) ACCUMULATE_OF(6, 2) ACCUMULATE_OF(5, 2) ACCUMULATE_OF(4, 2)
            ACCUMULATE_OF(3, 2) ACCUMULATE_OF(2, 4) ACCUMULATE_OF(1, 4)
#undef ACCUMULATE_OF
        }
        r += gh;
    }
}

/* Any rep, ATTN_MAX_REP heads at a time (a head gets the same bits in a query block as alone); other head sizes take
 * the AVX2 tile (a processor with AVX-512 has AVX2). */
TND_CPU_ATTN_TILE_FLOAT(static void attn_tile, attn_tile_body, ATTN_MAX_REP, attn_head_fits, tnd_cpu_attn_tile_avx2)

TND_CPU_ATTN_TILE_STORED(attn_tile_body, ATTN_MAX_REP)

/* ------------------------------------------------------------------------------------------------------------
 * Instances: every tile shape up to the largest, and the dot as the 1 x 1 tile
 * ---------------------------------------------------------------------------------------------------------- */

/* A switch over the shapes, each case a constant-shape call the compiler specializes (unrolled, in registers). */
#define SHAPE(body, R, T)                                                                                              \
    case (R)*16 + (T):                                                                                                 \
        body(w, ws, a, as, n, y, ys, R, T);                                                                            \
        break;
#define SHAPES_OF_ROW(body, R) SHAPE(body, R, 1) SHAPE(body, R, 2) SHAPE(body, R, 3) SHAPE(body, R, 4)
/* Up to 4 rows x 4 tokens. */
#define SHAPES_4x4(body) SHAPES_OF_ROW(body, 1) SHAPES_OF_ROW(body, 2) SHAPES_OF_ROW(body, 3) SHAPES_OF_ROW(body, 4)

#define TILE_SHAPES(name, body, shapes, ...)                                                                           \
    __VA_ARGS__ static void tile_##name(const uint8_t *w, size_t ws, const uint8_t *a, size_t as, int64_t n, float *y, \
                                        size_t ys, int rows, int tokens) {                                             \
        switch (rows * 16 + tokens) { shapes(body) default : break; }                                                  \
    }
/* Extra arguments are attributes of the generated functions (an instruction set beyond the file's). */
#define TILE_AND_DOT(name, body, shapes, ...)                                                                          \
    TILE_SHAPES(name, body, shapes, __VA_ARGS__)                                                                       \
    __VA_ARGS__ static float dot_##name(const void *w, const void *a, int64_t n) {                                     \
        float y;                                                                                                       \
        body(w, 0, a, 0, n, &y, 0, 1, 1);                                                                              \
        return y;                                                                                                      \
    }
#define SHAPES_OF_ROW_UP_TO_4(body) SHAPES_OF_ROW(body, 3) SHAPES_OF_ROW(body, 4)

TILE_AND_DOT(bf16, tile_bf16_body, SHAPES_4x4, BF16_TARGET)

/* Row groups: any row count (a lane mask), a constant token count per instance. */
ALWAYS_INLINE void tile_group(const uint8_t *w, const uint8_t *a, size_t as, int64_t n, float *y, size_t ys, int R,
                              int T, block_kind kind) {
    if (kind == KIND_Q4_K || kind == KIND_Q5_K)
        tile_q45_K_body(w, a, as, n, y, ys, R, T, kind == KIND_Q5_K);
    else if (kind == KIND_Q3_K || kind == KIND_Q6_K)
        tile_signed16_body(w, a, as, n, y, ys, R, T, kind == KIND_Q3_K);
    else if (kind == KIND_Q2_K)
        tile_q2_K_body(w, a, as, n, y, ys, R, T);
    else
        tile_group_body(w, a, as, n, y, ys, R, T, kind);
}
#define GROUP_TOKEN(kind, T)                                                                                           \
    case T:                                                                                                            \
        tile_group(w, a, as, n, y, ys, rows, T, kind);                                                                 \
        break;
#define ROW_GROUP_TILE(name, kind)                                                                                     \
    static void tile_group_##name(const uint8_t *w, size_t ws, const uint8_t *a, size_t as, int64_t n, float *y,       \
                                  size_t ys, int rows, int tokens) {                                                   \
        (void)ws;                                                                                                      \
        switch (tokens) {                                                                                              \
            GROUP_TOKEN(kind, 1)                                                                                       \
            GROUP_TOKEN(kind, 2) GROUP_TOKEN(kind, 3) GROUP_TOKEN(kind, 4) GROUP_TOKENS_5_TO_8(kind) default : break;  \
        }                                                                                                              \
    }
#define GROUP_TOKENS_5_TO_8(kind) GROUP_TOKEN(kind, 5) GROUP_TOKEN(kind, 6) GROUP_TOKEN(kind, 7) GROUP_TOKEN(kind, 8)
ROW_GROUP_TILE(q2_K, KIND_Q2_K)
ROW_GROUP_TILE(q3_K, KIND_Q3_K)
ROW_GROUP_TILE(q4_K, KIND_Q4_K)
ROW_GROUP_TILE(q5_K, KIND_Q5_K)
ROW_GROUP_TILE(q6_K, KIND_Q6_K)
#undef GROUP_TOKENS_5_TO_8
#define GROUP_TOKENS_5_TO_8(kind)
ROW_GROUP_TILE(q4_0, KIND_Q4_0)
ROW_GROUP_TILE(q8_0, KIND_Q8_0)
ROW_GROUP_TILE(q4_1, KIND_Q4_1)
ROW_GROUP_TILE(q5_0, KIND_Q5_0)
ROW_GROUP_TILE(q5_1, KIND_Q5_1)
static float dot_group_row_q4_0(const void *w, const void *a, int64_t n) { return dot_row_body(w, a, n, KIND_Q4_0); }
static float dot_group_row_q8_0(const void *w, const void *a, int64_t n) { return dot_row_body(w, a, n, KIND_Q8_0); }
static float dot_group_row_q4_1(const void *w, const void *a, int64_t n) { return dot_row_body(w, a, n, KIND_Q4_1); }
static float dot_group_row_q5_0(const void *w, const void *a, int64_t n) { return dot_row_body(w, a, n, KIND_Q5_0); }
static float dot_group_row_q5_1(const void *w, const void *a, int64_t n) { return dot_row_body(w, a, n, KIND_Q5_1); }

_Static_assert(GROUP_TOKENS == 8 && BLOCKS32_TOKENS == 4, "the token switches above list these counts");
_Static_assert(TILE_TOKENS_32 == 4 && TILE_ROWS_32 == 4, "the shape switches above list these sizes");

/* An entry whose activations and weights take the shapes above. */
static tnd_cpu_dot entry(tnd_type act_type, tnd_from_float_fn quantize, tnd_vec_dot_fn dot, tnd_tile_fn tile,
                         int tile_rows, int tile_tokens) {
    return (tnd_cpu_dot){.act_type = act_type,
                         .quantize_act = quantize,
                         .dot = dot,
                         .isa = "avx512",
                         .tile = tile,
                         .tile_rows = tile_rows,
                         .tile_tokens = tile_tokens};
}

/* Q4_0, Q8_0, K types: activations in a layout of their own, rows packed in groups; rows left unpacked take the dot,
 * one at a time. */
static tnd_cpu_dot group_entry(tnd_from_float_fn quantize, tnd_vec_dot_fn dot, tnd_tile_fn tile_packed, int rows,
                               int tokens, size_t block, void (*transform)(uint8_t *, int, size_t), tnd_type act_type,
                               tnd_act_bytes_fn act_bytes, tnd_act_to_float_fn act_to_float) {
    tnd_cpu_dot e = entry(act_type, quantize, dot, NULL, rows, tokens);
    e.act_bytes = act_bytes;
    e.act_to_float = act_to_float;
    e.tile_packed = tile_packed;
    e.pack_chunk = block;
    e.pack_transform = transform;
    return e;
}

void tnd_cpu_kernels_avx512(tnd_cpu_kernels *k) {
    k->vec.attn_tile = attn_tile;
    k->vec.attn_tile_stored = attn_tile_stored;
    k->vec.attn_tile_stored_takes = attn_stored_takes;
    if (tnd_cpu_detect().avx512bf16)
        k->dot[TND_TYPE_BF16] = entry(TND_TYPE_BF16, quantize_bf16, dot_bf16, tile_bf16, TILE_ROWS_32, TILE_TOKENS_32);
    k->dot[TND_TYPE_Q4_0] =
        group_entry(quantize_act_q4_0, dot_group_row_q4_0, tile_group_q4_0, BLOCKS32_VECS * GROUP_ROWS, BLOCKS32_TOKENS,
                    Q4_0_BYTES, pack_q4_0, TND_TYPE_Q8_0, act_blocks_bytes, act_blocks_to_float);
    k->dot[TND_TYPE_Q8_0] =
        group_entry(quantize_act_q8_0, dot_group_row_q8_0, tile_group_q8_0, BLOCKS32_VECS * GROUP_ROWS, BLOCKS32_TOKENS,
                    Q8_0_BYTES, pack_q8_0, TND_TYPE_Q8_0, act_blocks_bytes, act_blocks_to_float);
    k->dot[TND_TYPE_Q4_K] =
        group_entry(quantize_act_q4_K, dot_group_row_q4_K, tile_group_q4_K, GROUP_ROWS, GROUP_TOKENS, Q4_K_BYTES,
                    pack_q4_K, TND_TYPE_Q8_K, act_q4_K_bytes, act_q4_K_to_float);
    k->dot[TND_TYPE_Q2_K] =
        group_entry(quantize_act_q2_K, dot_group_row_q2_K, tile_group_q2_K, GROUP_ROWS, GROUP_TOKENS, Q2_K_BYTES,
                    pack_q2_K, TND_TYPE_Q8_K, act_q2_K_bytes, act_q2_K_to_float);
    k->dot[TND_TYPE_Q3_K] =
        group_entry(quantize_act_q3_K, dot_group_row_q3_K, tile_group_q3_K, GROUP_ROWS, GROUP_TOKENS, Q3_K_BYTES,
                    pack_q3_K, TND_TYPE_Q8_K, act_q6_K_bytes, act_q6_K_to_float);
    k->dot[TND_TYPE_Q5_K] =
        group_entry(quantize_act_q4_K, dot_group_row_q5_K, tile_group_q5_K, GROUP_ROWS, GROUP_TOKENS, Q5_K_BYTES,
                    pack_q5_K, TND_TYPE_Q8_K, act_q4_K_bytes, act_q4_K_to_float);
    k->dot[TND_TYPE_Q4_1] =
        group_entry(quantize_act_min, dot_group_row_q4_1, tile_group_q4_1, BLOCKS32_VECS * GROUP_ROWS, BLOCKS32_TOKENS,
                    Q4_1_BYTES, pack_q4_1, TND_TYPE_Q8_0, act_blocks_bytes, act_blocks_to_float);
    k->dot[TND_TYPE_Q5_0] =
        group_entry(quantize_act_q5_0, dot_group_row_q5_0, tile_group_q5_0, BLOCKS32_VECS * GROUP_ROWS, BLOCKS32_TOKENS,
                    Q5_0_BYTES, pack_q5_0, TND_TYPE_Q8_0, act_blocks_bytes, act_blocks_to_float);
    k->dot[TND_TYPE_Q5_1] =
        group_entry(quantize_act_min, dot_group_row_q5_1, tile_group_q5_1, BLOCKS32_VECS * GROUP_ROWS, BLOCKS32_TOKENS,
                    Q5_1_BYTES, pack_q5_1, TND_TYPE_Q8_0, act_blocks_bytes, act_blocks_to_float);
    k->dot[TND_TYPE_Q6_K] =
        group_entry(quantize_act_q6_K, dot_group_row_q6_K, tile_group_q6_K, GROUP_ROWS, GROUP_TOKENS, Q6_K_BYTES,
                    pack_q6_K, TND_TYPE_Q8_K, act_q6_K_bytes, act_q6_K_to_float);
}
