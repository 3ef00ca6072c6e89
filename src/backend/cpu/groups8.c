/* groups8.c: packing of the 8-row groups that the AVX2 and NEON kernels read (layout: groups8.h). Plain C, built
 * for every processor. */
#include "backend/cpu/groups8.h"

#include "quant/quant_ref.h"

#include <string.h>

/* Rewrites one block of a group's rows (their blocks as the file has them, one after the other) into the packed
 * layout. */
static void pack_legacy_block(uint8_t *blocks, int group, size_t len, g8_legacy_kind kind) {
    uint8_t out[G8_ROWS * 34];
    g8_legacy_layout at = g8_legacy_at(blocks, kind);
    uint8_t *levels_out = out + at.levels;
    memset(out, 0, sizeof out);
    for (int r = 0; r < group; r++) {
        const uint8_t *in = blocks + (size_t)r * len;
        memcpy(out + at.d + 2 * r, in, 2);
        if (g8_has_min(kind)) memcpy(out + at.m + 2 * r, in + 2, 2);
        if (kind == G8_Q8_0) {
            for (int col = 0; col < G8_QK; col++) levels_out[G8_STEP * (col / 4) + 4 * r + col % 4] = in[2 + col];
            continue;
        }
        const uint8_t *nibbles = in + g8_file_nibbles_at(kind); /* byte j: column j (low nibble) and j + 16 (high) */
        for (int col = 0; col < G8_QK; col++) {
            int level = col < G8_QK / 2 ? nibbles[col] & 15 : nibbles[col - G8_QK / 2] >> 4, step = col / 4;
            levels_out[G8_STEP * (step / 2) + 4 * r + col % 4] |= (uint8_t)(level << (4 * (step % 2)));
            if (g8_has_fifth(kind)) /* the file's u32 before the nibbles: bit e for column e */
                levels_out[4 * G8_STEP + 4 * r + col % 4] |=
                    (uint8_t)((nibbles[-4 + col / 8] >> (col % 8) & 1) << step);
        }
    }
    memcpy(blocks, out, (size_t)group * len);
}

/* Rewrites one super-block of a group's rows into the packed layout. */
static void pack_k_block(uint8_t *blocks, int group, size_t len, g8_k_kind kind, tnd_type type) {
    const g8_k_layout *l = &g8_k_layouts[kind];
    uint8_t out[G8_ROWS * 210], levels[G8_QK_K];
    memset(out, 0, sizeof out);
    uint8_t *lv = out + g8_k_levels_at(kind), *words = lv - 4 * G8_ROWS * l->n_words;
    for (int r = 0; r < group; r++) {
        const uint8_t *in = blocks + (size_t)r * len;
        memcpy(out + 2 * r, in + l->d, 2);
        if (l->dmin >= 0) memcpy(out + 2 * G8_ROWS + 2 * r, in + l->dmin, 2);
        for (int k = 0; k < l->n_words; k++) memcpy(words + 4 * (G8_ROWS * k + r), in + l->scales + 4 * k, 4);
        tnd_k_block_levels(type, in, levels);
        for (int col = 0; col < G8_QK_K; col++) {
            int step = col / 4, at = 4 * r + col % 4, level = levels[col];
            if (l->nibbles >= 0) {
                lv[l->nibbles + G8_STEP * (step / 2) + at] |= (uint8_t)((level & 15) << (4 * (step % 2)));
                level >>= 4;
            }
            if (l->plane2 >= 0) {
                lv[l->plane2 + G8_STEP * (step / 4) + at] |= (uint8_t)((level & 3) << (2 * (step % 4)));
                level >>= 2;
            }
            if (l->plane1 >= 0) lv[l->plane1 + G8_STEP * (step / 8) + at] |= (uint8_t)((level & 1) << (step % 8));
        }
    }
    memcpy(blocks, out, (size_t)group * len);
}

void tnd_g8_pack_q4_0(uint8_t *b, int group, size_t len) { pack_legacy_block(b, group, len, G8_Q4_0); }
void tnd_g8_pack_q4_1(uint8_t *b, int group, size_t len) { pack_legacy_block(b, group, len, G8_Q4_1); }
void tnd_g8_pack_q5_0(uint8_t *b, int group, size_t len) { pack_legacy_block(b, group, len, G8_Q5_0); }
void tnd_g8_pack_q5_1(uint8_t *b, int group, size_t len) { pack_legacy_block(b, group, len, G8_Q5_1); }
void tnd_g8_pack_q8_0(uint8_t *b, int group, size_t len) { pack_legacy_block(b, group, len, G8_Q8_0); }
void tnd_g8_pack_q2_K(uint8_t *b, int group, size_t len) { pack_k_block(b, group, len, G8_Q2_K, TND_TYPE_Q2_K); }
void tnd_g8_pack_q3_K(uint8_t *b, int group, size_t len) { pack_k_block(b, group, len, G8_Q3_K, TND_TYPE_Q3_K); }
void tnd_g8_pack_q4_K(uint8_t *b, int group, size_t len) { pack_k_block(b, group, len, G8_Q4_K, TND_TYPE_Q4_K); }
void tnd_g8_pack_q5_K(uint8_t *b, int group, size_t len) { pack_k_block(b, group, len, G8_Q5_K, TND_TYPE_Q5_K); }
void tnd_g8_pack_q6_K(uint8_t *b, int group, size_t len) { pack_k_block(b, group, len, G8_Q6_K, TND_TYPE_Q6_K); }

size_t tnd_g8_act_bytes(int64_t n) { return (size_t)(n / G8_QK) * G8_ACT_BLOCK_BYTES; }

void tnd_g8_act_to_float(const void *act, float *out, int64_t n) {
    const uint8_t *y = act;
    for (int64_t i = 0; i < n; i++) {
        const uint8_t *blk = y + (size_t)(i / G8_QK) * G8_ACT_BLOCK_BYTES;
        float d;
        memcpy(&d, blk + G8_QK, 4);
        out[i] = d * (float)(int8_t)blk[i % G8_QK];
    }
}
