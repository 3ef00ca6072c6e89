/* quant_k.c: the K types: super-blocks of 256 elements split into sub-blocks of 16 or 32, whose scales (and
 * minimums) are themselves quantized against one or two fp16 super-block scales. Q8_K is the activation format of
 * their dot products. Quantization fits each sub-block by least squares (scale and, for the affine types, minimum),
 * quantizes the fitted scales, then re-assigns every element to the nearest level under its final scale. */
#include "quant/quant_ref.h"

enum { QK_K = 256 };

/* Q2_K, 84 bytes:  [scales: 16 bytes, low nibble = scale, high nibble = min of sub-block i (16 elements)]
 *                  [qs: 64 bytes of 2-bit levels][d: fp16][dmin: fp16]
 *   half h (0, 1), shift 2j (j < 4): qs[32h + l] >> 2j & 3 is element 128h + 32j + l (l < 32), sub-block 8h + 2j + l/16
 *   x = d * scale * q - dmin * min */
_Static_assert(QK_K / 16 + QK_K / 4 + 4 == 84, "q2_K block");
/* Q3_K, 110 bytes: [hmask: 32 bytes][qs: 64 bytes of 2-bit levels][scales: 12 bytes = 16 x 6 bits][d: fp16]
 *   element as in Q2_K; its third bit is hmask[l] bit (4h + j); level = q2 | bit << 2, x = d * (scale - 32) * (level - 4)
 *   scale i: low 4 bits in byte i (i < 8) or the high nibble of byte i - 8; high 2 bits at byte 8 + i % 4, bits 2 (i / 4) */
_Static_assert(QK_K / 8 + QK_K / 4 + 12 + 2 == 110, "q3_K block");
/* Q4_K, 144 bytes: [d: fp16][dmin: fp16][scales: 12 bytes = 8 x (6-bit scale, 6-bit min)][qs: 128 bytes]
 *   chunk c (< 4): qs[32c + l] low nibble = element 64c + l (sub-block 2c), high nibble = element 64c + 32 + l (2c + 1)
 *   sub-block i < 4: scale = b[i] & 63, min = b[i + 4] & 63;  i >= 4: scale = b[i + 4] & 15 | (b[i - 4] >> 6) << 4,
 *   min = b[i + 4] >> 4 | (b[i] >> 6) << 4;  x = d * scale * q - dmin * min */
_Static_assert(4 + 12 + QK_K / 2 == 144, "q4_K block");
/* Q5_K, 176 bytes: [d][dmin][scales: 12 bytes as Q4_K][qh: 32 bytes][qs: 128 bytes as Q4_K]
 *   fifth bit of element 64c + l is qh[l] bit 2c, of element 64c + 32 + l is qh[l] bit 2c + 1 */
_Static_assert(4 + 12 + QK_K / 8 + QK_K / 2 == 176, "q5_K block");
/* Q6_K, 210 bytes: [ql: 128 bytes, low 4 bits][qh: 64 bytes, high 2 bits][scales: 16 x int8][d: fp16]
 *   half h, l < 32: element 128h + l      = ql[64h + l] & 15      | (qh[32h + l] >> 0 & 3) << 4, scale 8h + l/16
 *                   element 128h + 32 + l = ql[64h + 32 + l] & 15 | (qh[32h + l] >> 2 & 3) << 4, scale 8h + 2 + l/16
 *                   element 128h + 64 + l = ql[64h + l] >> 4      | (qh[32h + l] >> 4 & 3) << 4, scale 8h + 4 + l/16
 *                   element 128h + 96 + l = ql[64h + 32 + l] >> 4 | (qh[32h + l] >> 6 & 3) << 4, scale 8h + 6 + l/16
 *   x = d * scale * (level - 32) */
_Static_assert(QK_K / 2 + QK_K / 4 + QK_K / 16 + 2 == 210, "q6_K block");
/* Q8_K, 292 bytes: [d: f32][qs: 256 x int8][bsums: 16 x int16, sums of each 16 quants]   x = d * q */
_Static_assert(4 + QK_K + QK_K / 16 * 2 == 292, "q8_K block");

/* ------------------------------------------------------------------------------------------------------------
 * Element layouts: where element e of a block keeps its low bits, high bits and sub-block
 * ---------------------------------------------------------------------------------------------------------- */

/* Q2_K / Q3_K: byte of qs and shift of element e. */
static void q23_position(int e, int *byte, int *shift) {
    int h = e / 128, r = e % 128, j = r / 32, l = r % 32;
    *byte = 32 * h + l;
    *shift = 2 * j;
}

/* Q4_K / Q5_K: byte of qs, nibble (0 low / 1 high) of element e; its sub-block is e / 32. */
static void q45_position(int e, int *byte, int *nibble) {
    int c = e / 64, r = e % 64;
    *byte = 32 * c + r % 32;
    *nibble = r / 32;
}

/* Q6_K: ql byte, ql shift, qh byte, qh shift and scale index of element e. */
static void q6_position(int e, int *ql, int *ql_shift, int *qh, int *qh_shift, int *scale) {
    int h = e / 128, r = e % 128, part = r / 32, l = r % 32;
    *ql = 64 * h + (part & 1) * 32 + l;
    *ql_shift = part >= 2 ? 4 : 0;
    *qh = 32 * h + l;
    *qh_shift = 2 * part;
    *scale = 8 * h + 2 * part + l / 16;
}

static void q4k_get(const uint8_t *b, int i, int *scale, int *min) {
    if (i < 4) {
        *scale = b[i] & 63;
        *min = b[i + 4] & 63;
    } else {
        *scale = (b[i + 4] & 15) | (b[i - 4] >> 6) << 4;
        *min = (b[i + 4] >> 4) | (b[i] >> 6) << 4;
    }
}

static void q4k_put(uint8_t *b, int i, int scale, int min) {
    if (i < 4) {
        b[i] = (uint8_t)((b[i] & 0xc0) | scale);
        b[i + 4] = (uint8_t)((b[i + 4] & 0xc0) | min);
    } else {
        b[i + 4] = (uint8_t)((scale & 15) | (min & 15) << 4);
        b[i - 4] = (uint8_t)((b[i - 4] & 63) | (scale >> 4) << 6);
        b[i] = (uint8_t)((b[i] & 63) | (min >> 4) << 6);
    }
}

static int q3k_scale(const uint8_t *s, int i) {
    int low = i < 8 ? s[i] & 15 : s[i - 8] >> 4;
    int high = (s[8 + i % 4] >> (2 * (i / 4))) & 3;
    return (low | high << 4) - 32;
}

static void q3k_put_scale(uint8_t *s, int i, int value) {
    int v = value + 32;
    if (i < 8) s[i] = (uint8_t)((s[i] & 0xf0) | (v & 15));
    else s[i - 8] = (uint8_t)((s[i - 8] & 0x0f) | (v & 15) << 4);
    int shift = 2 * (i / 4);
    s[8 + i % 4] = (uint8_t)((s[8 + i % 4] & ~(3 << shift)) | ((v >> 4) & 3) << shift);
}

/* ------------------------------------------------------------------------------------------------------------
 * Dequantization
 * ---------------------------------------------------------------------------------------------------------- */

void tnd_dequantize_q2_K_ref(const void *src, float *y, int64_t n) {
    const uint8_t *b = src;
    for (int64_t blk = 0; blk < n / QK_K; blk++, b += 84, y += QK_K) {
        float d = tnd_block_f16(b + 80), dmin = tnd_block_f16(b + 82);
        for (int e = 0; e < QK_K; e++) {
            int byte, shift, sb = e / 16;
            q23_position(e, &byte, &shift);
            y[e] = d * (float)(b[sb] & 15) * (float)((b[16 + byte] >> shift) & 3) - dmin * (float)(b[sb] >> 4);
        }
    }
}

void tnd_dequantize_q3_K_ref(const void *src, float *y, int64_t n) {
    const uint8_t *b = src;
    for (int64_t blk = 0; blk < n / QK_K; blk++, b += 110, y += QK_K) {
        float d = tnd_block_f16(b + 108);
        for (int e = 0; e < QK_K; e++) {
            int byte, shift;
            q23_position(e, &byte, &shift);
            int bit = (b[e % 32] >> (4 * (e / 128) + shift / 2)) & 1;
            int level = ((b[32 + byte] >> shift) & 3) | bit << 2;
            y[e] = d * (float)q3k_scale(b + 96, e / 16) * (float)(level - 4);
        }
    }
}

static void dequantize_q45(const uint8_t *b, const uint8_t *qh, const uint8_t *qs, float *y) {
    float d = tnd_block_f16(b), dmin = tnd_block_f16(b + 2);
    for (int e = 0; e < QK_K; e++) {
        int byte, nibble, scale, min;
        q45_position(e, &byte, &nibble);
        q4k_get(b + 4, e / 32, &scale, &min);
        int level = (qs[byte] >> (4 * nibble)) & 15;
        if (qh) level |= ((qh[e % 32] >> (2 * (e / 64) + nibble)) & 1) << 4;
        y[e] = d * (float)scale * (float)level - dmin * (float)min;
    }
}

void tnd_dequantize_q4_K_ref(const void *src, float *y, int64_t n) {
    const uint8_t *b = src;
    for (int64_t blk = 0; blk < n / QK_K; blk++, b += 144, y += QK_K) dequantize_q45(b, NULL, b + 16, y);
}

void tnd_dequantize_q5_K_ref(const void *src, float *y, int64_t n) {
    const uint8_t *b = src;
    for (int64_t blk = 0; blk < n / QK_K; blk++, b += 176, y += QK_K) dequantize_q45(b, b + 16, b + 48, y);
}

void tnd_dequantize_q6_K_ref(const void *src, float *y, int64_t n) {
    const uint8_t *b = src;
    for (int64_t blk = 0; blk < n / QK_K; blk++, b += 210, y += QK_K) {
        float d = tnd_block_f16(b + 208);
        for (int e = 0; e < QK_K; e++) {
            int ql, qls, qh, qhs, sc;
            q6_position(e, &ql, &qls, &qh, &qhs, &sc);
            int level = ((b[ql] >> qls) & 15) | ((b[128 + qh] >> qhs) & 3) << 4;
            y[e] = d * (float)(int8_t)b[192 + sc] * (float)(level - 32);
        }
    }
}

void tnd_dequantize_q8_K_ref(const void *src, float *y, int64_t n) {
    const uint8_t *b = src;
    for (int64_t blk = 0; blk < n / QK_K; blk++, b += 292, y += QK_K) {
        float d;
        memcpy(&d, b, 4);
        for (int e = 0; e < QK_K; e++) y[e] = d * (float)(int8_t)b[4 + e];
    }
}

/* ------------------------------------------------------------------------------------------------------------
 * Sub-block fitting
 * ---------------------------------------------------------------------------------------------------------- */

static int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

/* Affine fit x ~ scale * L - offset with L in [0, top], scale >= 0, offset >= 0 (the minimum is at most 0, as the
 * formats store a non-negative offset): start from the range, then alternate assigning levels and solving the
 * two-parameter least squares, keeping the best. */
static void fit_affine(const float *x, int n, int top, float *scale, float *offset) {
    float mn = 0, mx = 0;
    for (int i = 0; i < n; i++) {
        mn = x[i] < mn ? x[i] : mn;
        mx = x[i] > mx ? x[i] : mx;
    }
    float s = (mx - mn) / (float)top, o = -mn;
    *scale = s;
    *offset = o;
    if (s <= 0) return;
    double best = INFINITY;
    for (int iter = 0; iter < 4; iter++) {
        double sl = 0, sll = 0, sx = 0, sxl = 0, err = 0;
        for (int i = 0; i < n; i++) {
            int l = clampi(tnd_nearest_int((x[i] + o) / s), 0, top);
            double r = (double)s * l - o - x[i];
            err += r * r;
            sl += l;
            sll += (double)l * l;
            sx += x[i];
            sxl += (double)x[i] * l;
        }
        if (err < best) {
            best = err;
            *scale = s;
            *offset = o;
        }
        double det = n * sll - sl * sl;
        if (det <= 0) break;
        double ns = (n * sxl - sl * sx) / det, no = (ns * sl - sx) / n; /* x = ns * l - no */
        if (no < 0) {                                                    /* keep the minimum <= 0 */
            no = 0;
            ns = sll > 0 ? sxl / sll : ns;
        }
        if (!(ns > 0)) break;
        s = (float)ns;
        o = (float)no;
    }
}

/* Symmetric fit x ~ scale * L with L in [-neg, neg - 1]: start where the largest magnitude lands on -neg, refine by
 * least squares. The sign of scale follows that element. */
static float fit_symmetric(const float *x, int n, int neg) {
    float amax = 0, max = 0;
    for (int i = 0; i < n; i++) {
        if (fabsf(x[i]) > amax) {
            amax = fabsf(x[i]);
            max = x[i];
        }
    }
    if (amax == 0) return 0;
    float s = max / (float)-neg, best_s = s;
    double best = INFINITY;
    for (int iter = 0; iter < 3; iter++) {
        double sxl = 0, sll = 0, err = 0;
        for (int i = 0; i < n; i++) {
            int l = clampi(tnd_nearest_int(x[i] / s), -neg, neg - 1);
            double r = (double)s * l - x[i];
            err += r * r;
            sxl += (double)x[i] * l;
            sll += (double)l * l;
        }
        if (err < best) {
            best = err;
            best_s = s;
        }
        if (sll <= 0) break;
        s = (float)(sxl / sll);
    }
    return best_s;
}

/* Quantizes fitted sub-block values v[0..n) (all >= 0) to integers in [0, top] against one super scale. */
static float quantize_unsigned_scales(const float *v, int n, int top, int *q) {
    float mx = 0;
    for (int i = 0; i < n; i++) mx = v[i] > mx ? v[i] : mx;
    float d = mx / (float)top, id = d > 0 ? 1.0f / d : 0;
    for (int i = 0; i < n; i++) q[i] = clampi(tnd_nearest_int(v[i] * id), 0, top);
    return d;
}

/* Quantizes signed sub-block scales to integers in [-neg, neg - 1] against one super scale. */
static float quantize_signed_scales(const float *v, int n, int neg, int *q) {
    float amax = 0, max = 0;
    for (int i = 0; i < n; i++) {
        if (fabsf(v[i]) > amax) {
            amax = fabsf(v[i]);
            max = v[i];
        }
    }
    float d = max / (float)-neg, id = d != 0 ? 1.0f / d : 0;
    for (int i = 0; i < n; i++) q[i] = clampi(tnd_nearest_int(v[i] * id), -neg, neg - 1);
    return d;
}

/* Level of x under effective scale and offset (x = scale * L - offset), in [lo, hi]. */
static int level_of(float x, float scale, float offset, int lo, int hi) {
    return scale != 0 ? clampi(tnd_nearest_int((x + offset) / scale), lo, hi) : (lo < 0 ? 0 : lo);
}

/* ------------------------------------------------------------------------------------------------------------
 * Quantization of the affine types (Q2_K: 16 x 16, 2-bit levels, 4-bit scales; Q4_K / Q5_K: 8 x 32, 4/5-bit levels,
 * 6-bit scales)
 * ---------------------------------------------------------------------------------------------------------- */

/* Fits the sub-blocks of one super-block and returns the per-element levels plus stored scales and offsets. */
static void fit_affine_superblock(const float *x, int sub, int top, int scale_top, float *d, float *dmin,
                                  int *scales, int *offsets, int *levels) {
    int n_sub = QK_K / sub;
    float s[16], o[16];
    for (int i = 0; i < n_sub; i++) fit_affine(x + i * sub, sub, top, &s[i], &o[i]);
    *d = quantize_unsigned_scales(s, n_sub, scale_top, scales);
    *dmin = quantize_unsigned_scales(o, n_sub, scale_top, offsets);
    /* the stored fp16 values are what decoding uses */
    *d = tnd_fp16_to_f32(tnd_f32_to_fp16(*d));
    *dmin = tnd_fp16_to_f32(tnd_f32_to_fp16(*dmin));
    for (int e = 0; e < QK_K; e++) {
        int i = e / sub;
        levels[e] = level_of(x[e], *d * (float)scales[i], *dmin * (float)offsets[i], 0, top);
    }
}

void tnd_quantize_q2_K_ref(const float *x, void *dst, int64_t n) {
    uint8_t *b = dst;
    for (int64_t blk = 0; blk < n / QK_K; blk++, b += 84, x += QK_K) {
        float d, dmin;
        int sc[16], mn[16], L[QK_K];
        fit_affine_superblock(x, 16, 3, 15, &d, &dmin, sc, mn, L);
        memset(b, 0, 84);
        for (int i = 0; i < 16; i++) b[i] = (uint8_t)(sc[i] | mn[i] << 4);
        for (int e = 0; e < QK_K; e++) {
            int byte, shift;
            q23_position(e, &byte, &shift);
            b[16 + byte] |= (uint8_t)(L[e] << shift);
        }
        tnd_block_set_f16(b + 80, d);
        tnd_block_set_f16(b + 82, dmin);
    }
}

static void quantize_q45(const float *x, uint8_t *b, uint8_t *qh, uint8_t *qs, int top) {
    float d, dmin;
    int sc[8], mn[8], L[QK_K];
    fit_affine_superblock(x, 32, top, 63, &d, &dmin, sc, mn, L);
    tnd_block_set_f16(b, d);
    tnd_block_set_f16(b + 2, dmin);
    memset(b + 4, 0, 12);
    for (int i = 0; i < 8; i++) q4k_put(b + 4, i, sc[i], mn[i]);
    memset(qs, 0, QK_K / 2);
    if (qh) memset(qh, 0, QK_K / 8);
    for (int e = 0; e < QK_K; e++) {
        int byte, nibble;
        q45_position(e, &byte, &nibble);
        qs[byte] |= (uint8_t)((L[e] & 15) << (4 * nibble));
        if (qh) qh[e % 32] |= (uint8_t)(((L[e] >> 4) & 1) << (2 * (e / 64) + nibble));
    }
}

void tnd_quantize_q4_K_ref(const float *x, void *dst, int64_t n) {
    uint8_t *b = dst;
    for (int64_t blk = 0; blk < n / QK_K; blk++, b += 144, x += QK_K) quantize_q45(x, b, NULL, b + 16, 15);
}

void tnd_quantize_q5_K_ref(const float *x, void *dst, int64_t n) {
    uint8_t *b = dst;
    for (int64_t blk = 0; blk < n / QK_K; blk++, b += 176, x += QK_K) quantize_q45(x, b, b + 16, b + 48, 31);
}

/* ------------------------------------------------------------------------------------------------------------
 * Quantization of the symmetric types (Q3_K: 16 x 16, levels -4..3, 6-bit scales; Q6_K: 16 x 16, levels -32..31,
 * int8 scales)
 * ---------------------------------------------------------------------------------------------------------- */

static void fit_symmetric_superblock(const float *x, int neg, int scale_neg, float *d, int *scales, int *levels) {
    float s[16];
    for (int i = 0; i < 16; i++) s[i] = fit_symmetric(x + 16 * i, 16, neg);
    *d = tnd_fp16_to_f32(tnd_f32_to_fp16(quantize_signed_scales(s, 16, scale_neg, scales)));
    for (int e = 0; e < QK_K; e++) levels[e] = level_of(x[e], *d * (float)scales[e / 16], 0, -neg, neg - 1);
}

void tnd_quantize_q3_K_ref(const float *x, void *dst, int64_t n) {
    uint8_t *b = dst;
    for (int64_t blk = 0; blk < n / QK_K; blk++, b += 110, x += QK_K) {
        float d;
        int sc[16], L[QK_K];
        fit_symmetric_superblock(x, 4, 32, &d, sc, L);
        memset(b, 0, 110);
        for (int i = 0; i < 16; i++) q3k_put_scale(b + 96, i, sc[i]);
        for (int e = 0; e < QK_K; e++) {
            int byte, shift, level = L[e] + 4;
            q23_position(e, &byte, &shift);
            b[32 + byte] |= (uint8_t)((level & 3) << shift);
            if (level & 4) b[e % 32] |= (uint8_t)(1 << (4 * (e / 128) + shift / 2));
        }
        tnd_block_set_f16(b + 108, d);
    }
}

void tnd_quantize_q6_K_ref(const float *x, void *dst, int64_t n) {
    uint8_t *b = dst;
    for (int64_t blk = 0; blk < n / QK_K; blk++, b += 210, x += QK_K) {
        float d;
        int sc[16], L[QK_K];
        fit_symmetric_superblock(x, 32, 128, &d, sc, L);
        memset(b, 0, 210);
        for (int i = 0; i < 16; i++) b[192 + i] = (uint8_t)(int8_t)sc[i];
        for (int e = 0; e < QK_K; e++) {
            int ql, qls, qh, qhs, s, level = L[e] + 32;
            q6_position(e, &ql, &qls, &qh, &qhs, &s);
            b[ql] |= (uint8_t)((level & 15) << qls);
            b[128 + qh] |= (uint8_t)(((level >> 4) & 3) << qhs);
        }
        tnd_block_set_f16(b + 208, d);
    }
}

/* Q8_K: the element of largest magnitude maps to -127 (so the scale keeps its sign), others round to nearest
 * (the same levels as the activation quantizer that published K-quant files were validated with). */
void tnd_quantize_q8_K_ref(const float *x, void *dst, int64_t n) {
    uint8_t *b = dst;
    for (int64_t blk = 0; blk < n / QK_K; blk++, b += 292, x += QK_K) {
        float amax = 0, max = 0;
        for (int e = 0; e < QK_K; e++) {
            if (fabsf(x[e]) > amax) {
                amax = fabsf(x[e]);
                max = x[e];
            }
        }
        memset(b, 0, 292);
        if (amax == 0) continue;
        float iscale = -127.0f / max, d = 1.0f / iscale;
        memcpy(b, &d, 4);
        for (int g = 0; g < QK_K / 16; g++) {
            int16_t sum = 0;
            for (int e = 16 * g; e < 16 * g + 16; e++) {
                int q = tnd_nearest_int(iscale * x[e]);
                q = q > 127 ? 127 : q;
                b[4 + e] = (uint8_t)(int8_t)q;
                sum = (int16_t)(sum + q);
            }
            memcpy(b + 4 + QK_K + 2 * g, &sum, 2);
        }
    }
}
