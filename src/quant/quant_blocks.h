/* quant_blocks.h: the on-disk blocks of every block-quantized tensor type, byte by byte, as GGUF files store them.
 *
 * Every member is a byte array, so every struct has alignment 1 and no padding: a block may sit at any address
 * (tensors in a file are aligned only at their start, and blocks of 18 or 210 bytes follow each other). Multi-byte
 * fields are little-endian and read with tnd_block_f16() / memcpy, never through a wider pointer. Sizes are pinned
 * below and are the type sizes of the traits table (type_traits.c uses sizeof of these structs).
 *
 * Notation: "level" is the unsigned integer stored in the bits, "q" the signed value it stands for, x the decoded
 * float. Element e of a block is the e-th float of the row segment the block covers. */
#ifndef TND_QUANT_QUANT_BLOCKS_H
#define TND_QUANT_QUANT_BLOCKS_H

#include <stdint.h>

enum {
    TND_QK_LEGACY = 32, /* elements per block of Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1 */
    TND_QK_SUPER = 256  /* elements per super-block of the K types (same as TND_QK_K) */
};

/* ------------------------------------------------------------------------------------------------------------
 * The 32-element types
 * ---------------------------------------------------------------------------------------------------------- */

/* Q4_0, 18 bytes:
 *   offset 0        2                                    18
 *          +--------+------------------------------------+
 *          | d fp16 | qs[16]                             |
 *          +--------+------------------------------------+
 *   qs[j] = level[j] | level[j + 16] << 4   (j < 16: first half in low nibbles, second half in high nibbles)
 *   x[e] = d * (level[e] - 8) */
typedef struct tnd_block_q4_0 {
    uint8_t d[2];
    uint8_t qs[TND_QK_LEGACY / 2];
} tnd_block_q4_0;
_Static_assert(sizeof(tnd_block_q4_0) == 18, "q4_0 block is 18 bytes");

/* Q4_1, 20 bytes:
 *   offset 0        2        4                           20
 *          | d fp16 | m fp16 | qs[16] as Q4_0            |
 *   x[e] = d * level[e] + m */
typedef struct tnd_block_q4_1 {
    uint8_t d[2];
    uint8_t m[2];
    uint8_t qs[TND_QK_LEGACY / 2];
} tnd_block_q4_1;
_Static_assert(sizeof(tnd_block_q4_1) == 20, "q4_1 block is 20 bytes");

/* Q5_0, 22 bytes:
 *   offset 0        2               6                    22
 *          | d fp16 | qh u32 LE     | qs[16] as Q4_0     |
 *   level[e] = 4-bit part from qs | (qh >> e & 1) << 4       (bit e of qh is the fifth bit of element e)
 *   x[e] = d * (level[e] - 16) */
typedef struct tnd_block_q5_0 {
    uint8_t d[2];
    uint8_t qh[4];
    uint8_t qs[TND_QK_LEGACY / 2];
} tnd_block_q5_0;
_Static_assert(sizeof(tnd_block_q5_0) == 22, "q5_0 block is 22 bytes");

/* Q5_1, 24 bytes:
 *   offset 0        2        4               8           24
 *          | d fp16 | m fp16 | qh u32 LE     | qs[16]    |
 *   level[e] as Q5_0;  x[e] = d * level[e] + m */
typedef struct tnd_block_q5_1 {
    uint8_t d[2];
    uint8_t m[2];
    uint8_t qh[4];
    uint8_t qs[TND_QK_LEGACY / 2];
} tnd_block_q5_1;
_Static_assert(sizeof(tnd_block_q5_1) == 24, "q5_1 block is 24 bytes");

/* Q8_0, 34 bytes:
 *   offset 0        2                                    34
 *          | d fp16 | qs[32] int8                        |
 *   x[e] = d * qs[e] */
typedef struct tnd_block_q8_0 {
    uint8_t d[2];
    int8_t qs[TND_QK_LEGACY];
} tnd_block_q8_0;
_Static_assert(sizeof(tnd_block_q8_0) == 34, "q8_0 block is 34 bytes");

/* Q8_1, 36 bytes (activations of the Q4_1 / Q5_1 dot products, never in files):
 *   offset 0        2        4                           36
 *          | d fp16 | s fp16 | qs[32] int8               |
 *   x[e] = d * qs[e];  s = d * sum(qs) rounded to fp16 (d before its own rounding), a shortcut for kernels that
 *   add the Q4_1 / Q5_1 minimum; decoding ignores it. */
typedef struct tnd_block_q8_1 {
    uint8_t d[2];
    uint8_t s[2];
    int8_t qs[TND_QK_LEGACY];
} tnd_block_q8_1;
_Static_assert(sizeof(tnd_block_q8_1) == 36, "q8_1 block is 36 bytes");

/* ------------------------------------------------------------------------------------------------------------
 * The K types: super-blocks of 256 elements in sub-blocks of 16 or 32 with quantized sub-block scales
 * ---------------------------------------------------------------------------------------------------------- */

/* Q2_K, 84 bytes: 16 sub-blocks of 16, 2-bit levels, 4-bit scale and 4-bit min per sub-block.
 *   offset 0                16                              80       82        84
 *          | scales[16]     | qs[64]                        | d fp16 | dmin fp16 |
 *   scales[s] = sc[s] | mn[s] << 4
 *   qs: two halves of 32 bytes; half h holds elements 128h .. 128h + 127 in four 2-bit planes:
 *       qs[32h + l] >> 2p & 3 = level of element 128h + 32p + l   (p < 4, l < 32)
 *   x[e] = d * sc[e / 16] * level[e] - dmin * mn[e / 16] */
typedef struct tnd_block_q2_K {
    uint8_t scales[TND_QK_SUPER / 16];
    uint8_t qs[TND_QK_SUPER / 4];
    uint8_t d[2];
    uint8_t dmin[2];
} tnd_block_q2_K;
_Static_assert(sizeof(tnd_block_q2_K) == 84, "q2_K block is 84 bytes");

/* Q3_K, 110 bytes: 16 sub-blocks of 16, 3-bit levels, signed 6-bit scales.
 *   offset 0             32                       96            108      110
 *          | hmask[32]   | qs[64] as Q2_K         | scales[12]  | d fp16 |
 *   third bit of element e: hmask[e % 32] >> (e / 32) & 1
 *   level[e] = 2-bit part from qs | third bit << 2, in 0..7
 *   scales: 16 6-bit values sc6[s]: low 4 bits in scales[s] (s < 8) or the high nibble of scales[s - 8] (s >= 8);
 *           high 2 bits in scales[8 + s % 4] >> 2 (s / 4) & 3
 *   x[e] = d * (sc6[e / 16] - 32) * (level[e] - 4) */
typedef struct tnd_block_q3_K {
    uint8_t hmask[TND_QK_SUPER / 8];
    uint8_t qs[TND_QK_SUPER / 4];
    uint8_t scales[12];
    uint8_t d[2];
} tnd_block_q3_K;
_Static_assert(sizeof(tnd_block_q3_K) == 110, "q3_K block is 110 bytes");

/* 6-bit scale and min of sub-block s (< 8) in the 12-byte k4 packing of Q4_K / Q5_K. */
static inline void tnd_k4_scale_min(const uint8_t p[12], int s, int *scale, int *min) {
    if (s < 4) {
        *scale = p[s] & 63;
        *min = p[s + 4] & 63;
    } else {
        *scale = (p[s + 4] & 15) | (p[s - 4] >> 6) << 4;
        *min = (p[s + 4] >> 4) | (p[s] >> 6) << 4;
    }
}

/* Q4_K, 144 bytes: 8 sub-blocks of 32, 4-bit levels, 6-bit scale and 6-bit min per sub-block.
 *   offset 0        2           4             16                             144
 *          | d fp16 | dmin fp16 | scales[12]  | qs[128]                      |
 *   scales (the "k4" packing of 8 scales sc and 8 mins mn, 6 bits each):
 *       s < 4:  sc = scales[s] & 63,                               mn = scales[s + 4] & 63
 *       s >= 4: sc = scales[s + 4] & 15 | (scales[s - 4] >> 6) << 4, mn = scales[s + 4] >> 4 | (scales[s] >> 6) << 4
 *   qs: four chunks of 32 bytes; chunk c holds elements 64c .. 64c + 63:
 *       qs[32c + l] & 15 = level of element 64c + l (sub-block 2c),  >> 4 = element 64c + 32 + l (sub-block 2c + 1)
 *   x[e] = d * sc[e / 32] * level[e] - dmin * mn[e / 32] */
typedef struct tnd_block_q4_K {
    uint8_t d[2];
    uint8_t dmin[2];
    uint8_t scales[12];
    uint8_t qs[TND_QK_SUPER / 2];
} tnd_block_q4_K;
_Static_assert(sizeof(tnd_block_q4_K) == 144, "q4_K block is 144 bytes");

/* Q5_K, 176 bytes: as Q4_K plus a fifth bit per element.
 *   offset 0        2           4             16          48                 176
 *          | d fp16 | dmin fp16 | scales[12]  | qh[32]    | qs[128]          |
 *   fifth bit of element 64c + l is qh[l] >> 2c & 1, of element 64c + 32 + l is qh[l] >> (2c + 1) & 1
 *   (that is: element e's fifth bit is qh[e % 32] >> (e / 32) & 1)
 *   x[e] = d * sc[e / 32] * level[e] - dmin * mn[e / 32], level in 0..31 */
typedef struct tnd_block_q5_K {
    uint8_t d[2];
    uint8_t dmin[2];
    uint8_t scales[12];
    uint8_t qh[TND_QK_SUPER / 8];
    uint8_t qs[TND_QK_SUPER / 2];
} tnd_block_q5_K;
_Static_assert(sizeof(tnd_block_q5_K) == 176, "q5_K block is 176 bytes");

/* Q6_K, 210 bytes: 16 sub-blocks of 16, 6-bit levels, int8 scales.
 *   offset 0                128              192             208      210
 *          | ql[128]        | qh[64]         | scales[16]    | d fp16 |
 *   two halves h of 128 elements; within half h, for l < 32:
 *       element 128h +      l: low 4 bits ql[64h + l] & 15,      high 2 bits qh[32h + l] >> 0 & 3
 *       element 128h + 32 + l: low 4 bits ql[64h + 32 + l] & 15, high 2 bits qh[32h + l] >> 2 & 3
 *       element 128h + 64 + l: low 4 bits ql[64h + l] >> 4,      high 2 bits qh[32h + l] >> 4 & 3
 *       element 128h + 96 + l: low 4 bits ql[64h + 32 + l] >> 4, high 2 bits qh[32h + l] >> 6 & 3
 *   x[e] = d * scales[e / 16] * (level[e] - 32) */
typedef struct tnd_block_q6_K {
    uint8_t ql[TND_QK_SUPER / 2];
    uint8_t qh[TND_QK_SUPER / 4];
    int8_t scales[TND_QK_SUPER / 16];
    uint8_t d[2];
} tnd_block_q6_K;
_Static_assert(sizeof(tnd_block_q6_K) == 210, "q6_K block is 210 bytes");

/* Q8_K, 292 bytes (activations of the K-type dot products, never in files):
 *   offset 0          4                      260                  292
 *          | d f32 LE | qs[256] int8         | bsums[16] int16 LE |
 *   bsums[g] = sum of qs[16g .. 16g + 15];  x[e] = d * qs[e] */
typedef struct tnd_block_q8_K {
    uint8_t d[4];
    int8_t qs[TND_QK_SUPER];
    uint8_t bsums[2 * TND_QK_SUPER / 16];
} tnd_block_q8_K;
_Static_assert(sizeof(tnd_block_q8_K) == 292, "q8_K block is 292 bytes");

#endif
