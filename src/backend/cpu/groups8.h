/* groups8.h: packed row groups of 8 rows, one 32-bit lane per row, as the AVX2 (one 256-bit vector a step) and
 * NEON (two 128-bit vectors a step) kernels read them. Packing (at prepare_weight, tnd_cpu_pack_rows with a group of
 * G8_ROWS and one block per chunk) is plain C shared by both files, so the two sets read the same bytes.
 *
 * The 32-element types (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0): each block of a group holds the 8 rows' fp16 d, for
 * Q4_1/Q5_1 then their fp16 m, then the levels (or the levels first and d last: g8_legacy_at) in steps of 32
 * bytes: step i holds columns 4i..4i+3 of every row in turn (bytes 4r..4r+3 for row r). Nibble types keep two
 * steps per 32 bytes (low nibbles step 2s, high nibbles step 2s + 1) as unsigned levels; Q5_0/Q5_1 add a 32-byte
 * plane of fifth bits (byte 4r + c, bit i: column 4i + c of row r); Q8_0 keeps its signed bytes.
 *
 * The K types: each super-block of a group holds the 8 rows' fp16 d, their fp16 dmin (Q2_K, Q4_K, Q5_K), their scale
 * bytes as the file has them in 32-bit words (word k of every row in turn, so the fields decode in lanes), then the
 * levels in steps of 4 columns as bit fields: a nibble vector holds two steps (low nibble 2v, high 2v + 1), a
 * 2-bit plane four (bits 2m: step 4v + m), a 1-bit plane eight (bit m: step 8v + m). Q2_K: a 2-bit plane; Q3_K:
 * 2-bit plane + 1-bit plane (third bit); Q4_K: nibbles; Q5_K: nibbles + 1-bit plane (fifth bit); Q6_K: nibbles +
 * 2-bit plane (top two bits).
 *
 * Every packed group is exactly the file's 8 rows. Activations of the 32-element types, per block: 32 int8, the
 * float scale d, then the block's integer sum start: minus the levels' offset (8 for Q4_0, 16 for Q5_0, 0 for Q8_0)
 * times the sum of the activations; for Q4_1/Q5_1 that slot holds instead d times the sum, as a float. The K types
 * take Q8_K activations. */
#ifndef TND_BACKEND_CPU_GROUPS8_H
#define TND_BACKEND_CPU_GROUPS8_H

#include "tandem.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum {
    G8_ROWS = 8,            /* rows of a packed group: one per 32-bit lane */
    G8_STEP = 4 * G8_ROWS,  /* bytes of a step: 4 columns of each row */
    G8_QK = 32,             /* elements of a block of the 32-element types */
    G8_QK_K = 256,          /* elements of a K-type super-block */
    G8_ACT_BLOCK_BYTES = 40 /* 32 int8 | float d | int32 start (or float d * sum) */
};

typedef enum g8_legacy_kind { G8_Q4_0, G8_Q4_1, G8_Q5_0, G8_Q5_1, G8_Q8_0 } g8_legacy_kind;
typedef enum g8_k_kind { G8_Q2_K, G8_Q3_K, G8_Q4_K, G8_Q5_K, G8_Q6_K } g8_k_kind;

static const size_t g8_legacy_bytes[] = {
    [G8_Q4_0] = 18, [G8_Q4_1] = 20, [G8_Q5_0] = 22, [G8_Q5_1] = 24, [G8_Q8_0] = 34};
static inline bool g8_has_min(g8_legacy_kind kind) { return kind == G8_Q4_1 || kind == G8_Q5_1; }
static inline bool g8_has_fifth(g8_legacy_kind kind) { return kind == G8_Q5_0 || kind == G8_Q5_1; }
/* Where the nibbles start in a block as the file has it (after d, m, then the fifth bits as a u32), and where the
 * levels start in a packed block (after the rows' d and m). */
static inline size_t g8_file_nibbles_at(g8_legacy_kind kind) {
    return 2 + (g8_has_min(kind) ? 2 : 0) + (g8_has_fifth(kind) ? 4 : 0);
}
static inline size_t g8_levels_at(g8_legacy_kind kind) { return (g8_has_min(kind) ? 4 : 2) * G8_ROWS; }

/* Where a packed block of a group keeps its rows' d, their m and its levels. Q4_0, Q5_0 and Q8_0 blocks of 8 rows
 * (144, 176, 272 bytes) lie 16 bytes past a multiple of 32, so consecutive blocks start alternately on a 32-byte
 * boundary and half-way past one: a block that starts half-way keeps its d first, which takes it to the boundary,
 * one that starts on it keeps its levels first and its d last (needed last too). Every 32-byte step of levels is
 * then aligned and never straddles two cache lines (with d first throughout, a quarter of them did). Q4_1 and Q5_1
 * blocks are whole 32-byte units: d and m first. Packing writes each block where it is read (tnd_cpu_pack_rows in
 * place), so the packer and the tiles see the same address. */
typedef struct g8_legacy_layout {
    size_t d, m, levels;
} g8_legacy_layout;

static inline g8_legacy_layout g8_legacy_at(const uint8_t *block, g8_legacy_kind kind) {
    if (g8_has_min(kind) || ((uintptr_t)block & 16)) return (g8_legacy_layout){0, 2 * G8_ROWS, g8_levels_at(kind)};
    return (g8_legacy_layout){G8_ROWS * g8_legacy_bytes[kind] - 2 * G8_ROWS, 0, 0};
}

/* Where a K type's file block keeps d, dmin (-1: none) and its scale bytes, how many scale words a row has, and
 * where its bit fields lie from the packed levels' start (-1: none). */
typedef struct g8_k_layout {
    int d, dmin, scales, n_words;
    int nibbles, plane2, plane1;
} g8_k_layout;

static const g8_k_layout g8_k_layouts[] = {
    [G8_Q2_K] = {80, 82, 0, 4, -1, 0, -1},      [G8_Q3_K] = {108, -1, 96, 3, -1, 0, 512},
    [G8_Q4_K] = {0, 2, 4, 3, 0, -1, -1},        [G8_Q5_K] = {0, 2, 4, 3, 0, -1, 1024},
    [G8_Q6_K] = {208, -1, 192, 4, 0, 1024, -1},
};
static const size_t g8_k_bytes[] = {[G8_Q2_K] = 84, [G8_Q3_K] = 110, [G8_Q4_K] = 144, [G8_Q5_K] = 176, [G8_Q6_K] = 210};
static const int g8_k_offset[] = {[G8_Q2_K] = 0, [G8_Q3_K] = 4, [G8_Q4_K] = 0, [G8_Q5_K] = 0, [G8_Q6_K] = 32};
static inline bool g8_k_has_min(g8_k_kind kind) { return kind == G8_Q2_K || kind == G8_Q4_K || kind == G8_Q5_K; }

/* Where the levels start in a packed super-block of 8 rows (after d, dmin and the scale words). */
static inline size_t g8_k_levels_at(g8_k_kind kind) {
    const g8_k_layout *l = &g8_k_layouts[kind];
    return 2 * G8_ROWS * (l->dmin >= 0 ? 2 : 1) + 4 * G8_ROWS * (size_t)l->n_words;
}

/* The pack transforms (tnd_cpu_dot.pack_transform) of each type. */
void tnd_g8_pack_q4_0(uint8_t *blocks, int group, size_t len);
void tnd_g8_pack_q4_1(uint8_t *blocks, int group, size_t len);
void tnd_g8_pack_q5_0(uint8_t *blocks, int group, size_t len);
void tnd_g8_pack_q5_1(uint8_t *blocks, int group, size_t len);
void tnd_g8_pack_q8_0(uint8_t *blocks, int group, size_t len);
void tnd_g8_pack_q2_K(uint8_t *blocks, int group, size_t len);
void tnd_g8_pack_q3_K(uint8_t *blocks, int group, size_t len);
void tnd_g8_pack_q4_K(uint8_t *blocks, int group, size_t len);
void tnd_g8_pack_q5_K(uint8_t *blocks, int group, size_t len);
void tnd_g8_pack_q6_K(uint8_t *blocks, int group, size_t len);

/* The activation layout of the 32-element types: bytes of a row of n elements, and its values as floats. */
size_t tnd_g8_act_bytes(int64_t n);
void tnd_g8_act_to_float(const void *act, float *out, int64_t n);

/* ---- Written once for the kernel files that read these groups (expanded there, names resolved there) ---- */

/* A packed type's two entries: its dot on a row as the file has it (the kernel file's row_body(w, act, n, kind)) and
 * its tile over a group (the kernel file's tile_body, given a constant token count by TND_CPU_FOR_TOKENS). */
#define G8_TYPE_ENTRIES(name, kind, row_body, tile_body)                                                               \
    static float dot_group_row_##name(const void *x, const void *a, int64_t n) { return row_body(x, a, n, kind); }     \
    static void tile_group_##name(const uint8_t *w, size_t w_stride, const uint8_t *a, size_t as, int64_t n, float *y, \
                                  size_t ys, int rows, int tokens) {                                                   \
        (void)w_stride;                                                                                                \
        TND_CPU_FOR_TOKENS(tokens, tile_body, w, a, as, n, y, ys, rows, kind);                                         \
    }

/* The row body of the K types: the same integers as a group's lane (the kernel file's k_row_ints(x, y, kind, &total,
 * &mins)) and the lane's float steps, so a row gives the bits its lane would; the file also defines fp16_load, QK_K
 * and Q8_K_BYTES. */
#define G8_K_ROW_DOT                                                                                                   \
    static inline __attribute__((always_inline)) float k_row_dot(const uint8_t *x, const uint8_t *y, int64_t n,      \
                                                                 g8_k_kind kind) {                                     \
        float acc = 0.0f;                                                                                              \
        for (int64_t b = 0; b < n / QK_K; b++, x += g8_k_bytes[kind], y += Q8_K_BYTES) {                               \
            int32_t total, mins;                                                                                       \
            k_row_ints(x, y, kind, &total, &mins);                                                                     \
            float dy = tnd_block_f32(y), d = fp16_load(x + g8_k_layouts[kind].d);                                      \
            acc = fmaf((float)total, d * dy, acc);                                                                     \
            if (g8_k_has_min(kind)) acc = fmaf(-(float)mins, fp16_load(x + g8_k_layouts[kind].dmin) * dy, acc);       \
        }                                                                                                              \
        return acc;                                                                                                    \
    }

#endif
