/* quant_k.c: reference kernels of the K types Q2_K, Q3_K, Q4_K, Q5_K, Q6_K and of Q8_K, their activation format
 * (layouts in quant_blocks.h).
 *
 * Reading a block goes through one unpack function per type that turns its bits into plain integers (per-element
 * signed values, per-sub-block scales and mins, two float super scales); dequantization and the dot product are
 * then written once for all types. Quantization is the published reference algorithm, in the same float operations
 * and the same order, so that its bytes equal those of files made without an importance matrix:
 *   1. each sub-block gets a scale (and for the affine types a min) by a small search: candidate scales around the
 *      range-derived one, each followed by a least-squares refit, keeping the best weighted error;
 *   2. the sub-block scales and mins are quantized against one fp16 super scale each;
 *   3. every element is re-assigned to its nearest level under its final, stored scale. */
#include "quant/quant_ref.h"

#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF /* a fused multiply-add would round differently from the published quantizer */
#endif

enum { QK_K = TND_QK_SUPER };

/* A group whose largest magnitude is below this counts as all zero. */
#define GROUP_MAX_EPS 1e-15f

/* ------------------------------------------------------------------------------------------------------------
 * Unpacked form: x[e] = (d * scale[e / sub]) * q[e] - dmin * min[e / sub]
 * ---------------------------------------------------------------------------------------------------------- */

typedef struct unpacked_k {
    int sub;          /* elements per sub-block: 16 or 32 */
    float d, dmin;    /* super-block scales; dmin is 0 for the symmetric types */
    int scale[16];    /* [QK_K / sub] integer sub-block scales */
    int min[16];      /* [QK_K / sub] integer sub-block mins (0 for the symmetric types) */
    int8_t q[QK_K];   /* per element: the level minus the type's offset */
} unpacked_k;

/* Signed 6-bit scale of sub-block s (< 16) of Q3_K. */
static inline int q3_scale(const uint8_t p[12], int s) {
    int low = s < 8 ? p[s] & 15 : p[s - 8] >> 4;
    int high = (p[8 + s % 4] >> (2 * (s / 4))) & 3;
    return (low | high << 4) - 32;
}

/* 2-bit part of element e in the qs planes shared by Q2_K and Q3_K. */
static inline int q23_low_bits(const uint8_t qs[QK_K / 4], int e) {
    int h = e / 128, p = (e % 128) / 32, l = e % 32;
    return (qs[32 * h + l] >> (2 * p)) & 3;
}

/* 4-bit part of element e in the nibble chunks shared by Q4_K and Q5_K. */
static inline int q45_low_bits(const uint8_t qs[QK_K / 2], int e) {
    int c = e / 64, l = e % 32;
    return e % 64 < 32 ? qs[32 * c + l] & 15 : qs[32 * c + l] >> 4;
}

static void unpack_q2_K(const tnd_block_q2_K *b, unpacked_k *u) {
    u->sub = 16;
    u->d = tnd_block_f16(b->d);
    u->dmin = tnd_block_f16(b->dmin);
    for (int s = 0; s < 16; s++) {
        u->scale[s] = b->scales[s] & 15;
        u->min[s] = b->scales[s] >> 4;
    }
    for (int e = 0; e < QK_K; e++) u->q[e] = (int8_t)q23_low_bits(b->qs, e);
}

static void unpack_q3_K(const tnd_block_q3_K *b, unpacked_k *u) {
    u->sub = 16;
    u->d = tnd_block_f16(b->d);
    u->dmin = 0;
    for (int s = 0; s < 16; s++) {
        u->scale[s] = q3_scale(b->scales, s);
        u->min[s] = 0;
    }
    for (int e = 0; e < QK_K; e++) {
        int third = (b->hmask[e % 32] >> (e / 32)) & 1;
        u->q[e] = (int8_t)((q23_low_bits(b->qs, e) | third << 2) - 4);
    }
}

/* Q4_K (qh == NULL) and Q5_K share everything but the fifth bit. */
static void unpack_q45_K(const uint8_t *d, const uint8_t *dmin, const uint8_t scales[12], const uint8_t *qh,
                         const uint8_t qs[QK_K / 2], unpacked_k *u) {
    u->sub = 32;
    u->d = tnd_block_f16(d);
    u->dmin = tnd_block_f16(dmin);
    for (int s = 0; s < 8; s++) tnd_k4_scale_min(scales, s, &u->scale[s], &u->min[s]);
    for (int e = 0; e < QK_K; e++) {
        int fifth = qh ? (qh[e % 32] >> (e / 32)) & 1 : 0;
        u->q[e] = (int8_t)(q45_low_bits(qs, e) | fifth << 4);
    }
}

static void unpack_q6_K(const tnd_block_q6_K *b, unpacked_k *u) {
    u->sub = 16;
    u->d = tnd_block_f16(b->d);
    u->dmin = 0;
    for (int s = 0; s < 16; s++) {
        u->scale[s] = b->scales[s];
        u->min[s] = 0;
    }
    for (int e = 0; e < QK_K; e++) {
        int h = e / 128, part = (e % 128) / 32, l = e % 32;
        int low = b->ql[64 * h + 32 * (part & 1) + l] >> (part >= 2 ? 4 : 0) & 15;
        int high = (b->qh[32 * h + l] >> (2 * part)) & 3;
        u->q[e] = (int8_t)((low | high << 4) - 32);
    }
}

/* Unpacks block i of a row of `type` (one of the five K types). */
static void unpack_block(tnd_type type, const void *row, int64_t i, unpacked_k *u) {
    switch (type) {
    case TND_TYPE_Q2_K: unpack_q2_K((const tnd_block_q2_K *)row + i, u); break;
    case TND_TYPE_Q3_K: unpack_q3_K((const tnd_block_q3_K *)row + i, u); break;
    case TND_TYPE_Q4_K: {
        const tnd_block_q4_K *b = (const tnd_block_q4_K *)row + i;
        unpack_q45_K(b->d, b->dmin, b->scales, NULL, b->qs, u);
        break;
    }
    case TND_TYPE_Q5_K: {
        const tnd_block_q5_K *b = (const tnd_block_q5_K *)row + i;
        unpack_q45_K(b->d, b->dmin, b->scales, b->qh, b->qs, u);
        break;
    }
    default: unpack_q6_K((const tnd_block_q6_K *)row + i, u); break;
    }
}

void tnd_k_block_levels(tnd_type type, const void *block, uint8_t levels[QK_K]) {
    unpacked_k u;
    unpack_block(type, block, 0, &u);
    int offset = type == TND_TYPE_Q3_K ? 4 : type == TND_TYPE_Q6_K ? 32 : 0;
    for (int e = 0; e < QK_K; e++) levels[e] = (uint8_t)(u.q[e] + offset);
}

/* ------------------------------------------------------------------------------------------------------------
 * Dequantization and dot products (against Q8_K), one body for all K types
 * ---------------------------------------------------------------------------------------------------------- */

/* x[e] = dl * q[e] - ml with dl = d * scale, ml = dmin * min of e's sub-block, both rounded to float first (the
 * published dequantizer's operations, so that decoded floats are identical). */
static void dequantize_k(tnd_type type, const void *src, float *y, int64_t n) {
    unpacked_k u;
    for (int64_t i = 0; i < n / QK_K; i++, y += QK_K) {
        unpack_block(type, src, i, &u);
        for (int s = 0; s < QK_K / u.sub; s++) {
            const float dl = u.d * (float)u.scale[s], ml = u.dmin * (float)u.min[s];
            for (int e = s * u.sub; e < (s + 1) * u.sub; e++) y[e] = dl * (float)u.q[e] - ml;
        }
    }
}

/* sum over super-blocks of dy * (d * sum_s scale_s * sum_e q_e qy_e - dmin * sum_s min_s * sum_e qy_e): integer
 * sums per sub-block, then double. The sums of qy are counted from the quants, not read from bsums, so the
 * reference does not depend on them. */
static float dot_k(tnd_type type, const void *vx, const void *vy, int64_t n) {
    const tnd_block_q8_K *y = vy;
    unpacked_k u;
    double sum = 0;
    for (int64_t i = 0; i < n / QK_K; i++) {
        unpack_block(type, vx, i, &u);
        const int8_t *qy = y[i].qs;
        int64_t scaled = 0, mins = 0;
        for (int s = 0; s < QK_K / u.sub; s++) {
            int prod = 0, ysum = 0;
            for (int e = s * u.sub; e < (s + 1) * u.sub; e++) {
                prod += u.q[e] * qy[e];
                ysum += qy[e];
            }
            scaled += (int64_t)u.scale[s] * prod;
            mins += (int64_t)u.min[s] * ysum;
        }
        sum += (double)tnd_block_f32(y[i].d) * ((double)u.d * (double)scaled - (double)u.dmin * (double)mins);
    }
    return (float)sum;
}

#define DEFINE_K_READERS(name, TYPE)                                                                                  \
    void tnd_dequantize_##name##_ref(const void *src, float *dst, int64_t n) { dequantize_k(TYPE, src, dst, n); }   \
    float tnd_vec_dot_##name##_ref(const void *x, const void *y, int64_t n) { return dot_k(TYPE, x, y, n); }

DEFINE_K_READERS(q2_K, TND_TYPE_Q2_K)
DEFINE_K_READERS(q3_K, TND_TYPE_Q3_K)
DEFINE_K_READERS(q4_K, TND_TYPE_Q4_K)
DEFINE_K_READERS(q5_K, TND_TYPE_Q5_K)
DEFINE_K_READERS(q6_K, TND_TYPE_Q6_K)

void tnd_dequantize_q8_K_ref(const void *src, float *y, int64_t n) {
    const tnd_block_q8_K *b = src;
    for (int64_t i = 0; i < n / QK_K; i++, y += QK_K) {
        const float d = tnd_block_f32(b[i].d);
        for (int e = 0; e < QK_K; e++) y[e] = d * (float)b[i].qs[e];
    }
}

/* ------------------------------------------------------------------------------------------------------------
 * Sub-block fitting (step 1)
 * ---------------------------------------------------------------------------------------------------------- */

/* Affine fit of n (<= 32) values with weights w: x ~ scale * L - offset, L in [0, top], offset >= 0 (the format
 * stores a non-negative offset, so a group's min counts as at most 0). Starts from the range [min, max]; then for
 * nstep + 1 candidate inverse scales (rmin + rdelta * k + top) / (max - min) assigns levels, solves the weighted
 * two-parameter least squares for them (offset clamped to >= 0) and keeps the candidate of smallest weighted error
 * (absolute or squared). Writes the levels and the offset; returns the scale (0 for a constant group). */
static float fit_affine(int n, int top, const float *x, const float *w, uint8_t *L, float *offset, float rmin,
                        float rdelta, int nstep, bool absolute_error) {
    uint8_t Ltry[32];
    float min = x[0], max = x[0];
    float sum_w = w[0], sum_x = sum_w * x[0];
    for (int i = 1; i < n; i++) {
        if (x[i] < min) min = x[i];
        if (x[i] > max) max = x[i];
        sum_w += w[i];
        sum_x += w[i] * x[i];
    }
    if (min > 0) min = 0;
    if (max == min) {
        memset(L, 0, (size_t)n);
        *offset = -min;
        return 0.0f;
    }
    float iscale = (float)top / (max - min);
    float scale = 1 / iscale;
    float best_error = 0;
    for (int i = 0; i < n; i++) {
        L[i] = (uint8_t)tnd_clamp_int(tnd_nearest_int(iscale * (x[i] - min)), 0, top);
        float diff = scale * (float)L[i] + min - x[i];
        diff = absolute_error ? fabsf(diff) : diff * diff;
        best_error += w[i] * diff;
    }
    for (int k = 0; k <= nstep; k++) {
        iscale = (rmin + rdelta * (float)k + (float)top) / (max - min);
        float sum_l = 0, sum_l2 = 0, sum_xl = 0;
        for (int i = 0; i < n; i++) {
            int l = tnd_clamp_int(tnd_nearest_int(iscale * (x[i] - min)), 0, top);
            Ltry[i] = (uint8_t)l;
            sum_l += w[i] * (float)l;
            sum_l2 += w[i] * (float)l * (float)l;
            sum_xl += w[i] * (float)l * x[i];
        }
        float det = sum_w * sum_l2 - sum_l * sum_l;
        if (!(det > 0)) continue;
        float this_scale = (sum_w * sum_xl - sum_x * sum_l) / det;
        float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / det;
        if (this_min > 0) {
            this_min = 0;
            this_scale = sum_xl / sum_l2;
        }
        float error = 0;
        for (int i = 0; i < n; i++) {
            float diff = this_scale * (float)Ltry[i] + this_min - x[i];
            diff = absolute_error ? fabsf(diff) : diff * diff;
            error += w[i] * diff;
        }
        if (error < best_error) {
            memcpy(L, Ltry, (size_t)n);
            best_error = error;
            scale = this_scale;
            min = this_min;
        }
    }
    *offset = -min;
    return scale;
}

/* Largest magnitude of n values and the signed value that has it (the first one). */
static float signed_absmax(const float *x, int n, float *amax_out) {
    float amax = 0, max = 0;
    for (int i = 0; i < n; i++) {
        if (fabsf(x[i]) > amax) {
            amax = fabsf(x[i]);
            max = x[i];
        }
    }
    *amax_out = amax;
    return max;
}

/* Symmetric fit of Q3_K (levels -nmax .. nmax - 1) with weights x^2: levels from the scale that puts the largest
 * magnitude on -nmax, then up to 5 sweeps that move single elements to the level the others' least-squares scale
 * asks for whenever that raises sumlx^2 / suml2 (equivalently lowers the weighted error). Writes L = level + nmax
 * (all 0 for an all-zero group) and returns the least-squares scale. */
static float fit_q3(int n, int nmax, const float *x, int8_t *L) {
    float amax, max = signed_absmax(x, n, &amax);
    if (amax < GROUP_MAX_EPS) {
        memset(L, 0, (size_t)n);
        return 0.0f;
    }
    float iscale = (float)-nmax / max;
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; i++) {
        int l = tnd_clamp_int(tnd_nearest_int(iscale * x[i]), -nmax, nmax - 1);
        L[i] = (int8_t)l;
        float w = x[i] * x[i];
        sumlx += w * x[i] * (float)l;
        suml2 += w * (float)l * (float)l;
    }
    for (int sweep = 0; sweep < 5; sweep++) {
        int changed = 0;
        for (int i = 0; i < n; i++) {
            float w = x[i] * x[i];
            float slx = sumlx - w * x[i] * (float)L[i];
            if (!(slx > 0)) continue;
            float sl2 = suml2 - w * (float)L[i] * (float)L[i];
            int new_l = tnd_clamp_int(tnd_nearest_int(x[i] * sl2 / slx), -nmax, nmax - 1);
            if (new_l == L[i]) continue;
            slx += w * x[i] * (float)new_l;
            sl2 += w * (float)new_l * (float)new_l;
            if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) {
                L[i] = (int8_t)new_l;
                sumlx = slx;
                suml2 = sl2;
                changed++;
            }
        }
        if (!changed) break;
    }
    for (int i = 0; i < n; i++) L[i] = (int8_t)(L[i] + nmax);
    return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

/* Symmetric fit of Q6_K (levels -nmax .. nmax - 1) with weights x^2: the scale that puts the largest magnitude on
 * -nmax, then 18 nearby candidates -(nmax + k / 10) / max (k = -9..9, k != 0), each refit by least squares, keeping
 * the one of largest sumlx^2 / suml2. Writes L = level + nmax (all 0 for an all-zero group), returns the scale. */
static float fit_q6(int n, int nmax, const float *x, int8_t *L) {
    float amax, max = signed_absmax(x, n, &amax);
    if (amax < GROUP_MAX_EPS) {
        memset(L, 0, (size_t)n);
        return 0.0f;
    }
    float iscale = (float)-nmax / max;
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; i++) {
        int l = tnd_clamp_int(tnd_nearest_int(iscale * x[i]), -nmax, nmax - 1);
        L[i] = (int8_t)(l + nmax);
        float w = x[i] * x[i];
        sumlx += w * x[i] * (float)l;
        suml2 += w * (float)l * (float)l;
    }
    float scale = suml2 != 0 ? sumlx / suml2 : 0.0f;
    float best = scale * sumlx;
    for (int k = -9; k <= 9; k++) {
        if (k == 0) continue;
        iscale = -((float)nmax + 0.1f * (float)k) / max;
        sumlx = suml2 = 0;
        for (int i = 0; i < n; i++) {
            int l = tnd_clamp_int(tnd_nearest_int(iscale * x[i]), -nmax, nmax - 1);
            float w = x[i] * x[i];
            sumlx += w * x[i] * (float)l;
            suml2 += w * (float)l * (float)l;
        }
        if (suml2 > 0 && sumlx * sumlx > best * suml2) {
            for (int i = 0; i < n; i++)
                L[i] = (int8_t)(nmax + tnd_clamp_int(tnd_nearest_int(iscale * x[i]), -nmax, nmax - 1));
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    return scale;
}

/* Largest positive value of n floats (0 if none). */
static float positive_max(const float *v, int n) {
    float max = 0;
    for (int i = 0; i < n; i++)
        if (v[i] > max) max = v[i];
    return max;
}

/* ------------------------------------------------------------------------------------------------------------
 * Packing the K-type levels
 * ---------------------------------------------------------------------------------------------------------- */

/* Q2_K / Q3_K 2-bit planes: qs[32h + l] holds elements 128h + 32p + l in bits 2p (levels in 0..3). */
static void pack_q23_planes(const uint8_t level[QK_K], uint8_t qs[QK_K / 4]) {
    for (int h = 0; h < 2; h++)
        for (int l = 0; l < 32; l++) {
            const uint8_t *v = level + 128 * h + l;
            qs[32 * h + l] = (uint8_t)(v[0] | v[32] << 2 | v[64] << 4 | v[96] << 6);
        }
}

/* Q4_K / Q5_K nibble chunks (low 4 bits of each level) and, when qh is not NULL, the fifth bits. */
static void pack_q45_levels(const uint8_t level[QK_K], uint8_t qs[QK_K / 2], uint8_t *qh) {
    if (qh) memset(qh, 0, QK_K / 8);
    for (int c = 0; c < 4; c++)
        for (int l = 0; l < 32; l++) {
            int lo = level[64 * c + l], hi = level[64 * c + 32 + l];
            qs[32 * c + l] = (uint8_t)((lo & 15) | (hi & 15) << 4);
            if (qh) qh[l] |= (uint8_t)((lo >> 4) << (2 * c) | (hi >> 4) << (2 * c + 1));
        }
}

/* The k4 packing of eight 6-bit scales and mins (Q4_K, Q5_K). */
static void pack_k4_scales(const int scale[8], const int min[8], uint8_t p[12]) {
    for (int s = 0; s < 4; s++) {
        p[s] = (uint8_t)(scale[s] | (scale[s + 4] >> 4) << 6);
        p[s + 4] = (uint8_t)(min[s] | (min[s + 4] >> 4) << 6);
        p[s + 8] = (uint8_t)((scale[s + 4] & 15) | (min[s + 4] & 15) << 4);
    }
}

/* ------------------------------------------------------------------------------------------------------------
 * Quantization of the affine types: Q2_K (16 x 16, 2 bits, 4-bit scales and mins), Q4_K / Q5_K (8 x 32, 4 / 5
 * bits, 6-bit scales and mins)
 * ---------------------------------------------------------------------------------------------------------- */

/* Steps 2 and 3 for the affine types: quantizes the fitted sub-block scales and offsets to integers in
 * [0, scale_top] against d = max_scale / scale_top and dmin = max_offset / scale_top (both stored as fp16, written
 * to d_at / dmin_at), then re-assigns the levels of every sub-block whose stored scale is not zero. q_scale / q_min
 * receive the integers as the format will store them (the caller packs them). */
static void finish_affine(const float *x, int sub, int top, int scale_top, const float *scales,
                          const float *offsets, uint8_t *d_at, uint8_t *dmin_at, int *q_scale, int *q_min,
                          uint8_t level[QK_K]) {
    const int n_sub = QK_K / sub;
    const float max_scale = positive_max(scales, n_sub), max_offset = positive_max(offsets, n_sub);
    const float inv_scale = max_scale > 0 ? (float)scale_top / max_scale : 0.0f;
    const float inv_offset = max_offset > 0 ? (float)scale_top / max_offset : 0.0f;
    for (int s = 0; s < n_sub; s++) {
        /* the integer is taken modulo 256, as the published code stores it in a byte before clamping */
        q_scale[s] = tnd_clamp_int((uint8_t)tnd_nearest_int(inv_scale * scales[s]), 0, scale_top);
        q_min[s] = tnd_clamp_int((uint8_t)tnd_nearest_int(inv_offset * offsets[s]), 0, scale_top);
    }
    tnd_block_set_f16(d_at, max_scale / (float)scale_top);
    tnd_block_set_f16(dmin_at, max_offset / (float)scale_top);
    const float d_all = tnd_block_f16(d_at), dmin_all = tnd_block_f16(dmin_at);
    for (int s = 0; s < n_sub; s++) {
        const float d = d_all * (float)q_scale[s];
        if (d == 0) continue; /* keep the levels of the fit */
        const float dm = dmin_all * (float)q_min[s];
        for (int e = s * sub; e < (s + 1) * sub; e++)
            level[e] = (uint8_t)tnd_clamp_int(tnd_nearest_int((x[e] + dm) / d), 0, top);
    }
}

void tnd_quantize_q2_K_ref(const float *x, void *dst, int64_t n) {
    tnd_block_q2_K *b = dst;
    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K) {
        memset(&b[i], 0, sizeof b[i]);
        if (!tnd_all_finite(x, QK_K)) {
            tnd_block_set_nan(b[i].d);
            tnd_block_set_nan(b[i].dmin);
            continue;
        }
        uint8_t level[QK_K];
        float scales[16], offsets[16], w[16];
        for (int s = 0; s < 16; s++) {
            const float *xs = x + 16 * s;
            for (int l = 0; l < 16; l++) w[l] = fabsf(xs[l]);
            scales[s] = fit_affine(16, 3, xs, w, level + 16 * s, &offsets[s], -0.5f, 0.1f, 15, true);
        }
        /* Q2_K's scale integers are not clamped after rounding: they are at most 15 by construction */
        const float max_scale = positive_max(scales, 16), max_offset = positive_max(offsets, 16);
        uint8_t packed[16] = {0};
        if (max_scale > 0) {
            const float iscale = 15.0f / max_scale;
            for (int s = 0; s < 16; s++) packed[s] = (uint8_t)tnd_nearest_int(iscale * scales[s]);
            tnd_block_set_f16(b[i].d, max_scale / 15.0f);
        }
        if (max_offset > 0) {
            const float iscale = 15.0f / max_offset;
            for (int s = 0; s < 16; s++) packed[s] |= (uint8_t)((unsigned)tnd_nearest_int(iscale * offsets[s]) << 4);
            tnd_block_set_f16(b[i].dmin, max_offset / 15.0f);
        }
        memcpy(b[i].scales, packed, 16);
        const float d_all = tnd_block_f16(b[i].d), dmin_all = tnd_block_f16(b[i].dmin);
        for (int s = 0; s < 16; s++) {
            const float d = d_all * (float)(packed[s] & 15);
            if (d == 0) continue;
            const float dm = dmin_all * (float)(packed[s] >> 4);
            for (int e = 16 * s; e < 16 * s + 16; e++)
                level[e] = (uint8_t)tnd_clamp_int(tnd_nearest_int((x[e] + dm) / d), 0, 3);
        }
        pack_q23_planes(level, b[i].qs);
    }
}

/* Q4_K (top 15, qh NULL) and Q5_K (top 31): sub-block weights av + |x| with av the sub-block's RMS. */
static void quantize_q45_block(const float *x, int top, float rmin, int nstep, uint8_t *d_at, uint8_t *dmin_at,
                               uint8_t scales_at[12], uint8_t *qh, uint8_t qs[QK_K / 2]) {
    uint8_t level[QK_K];
    float scales[8], offsets[8], w[32];
    for (int s = 0; s < 8; s++) {
        const float *xs = x + 32 * s;
        float sum_x2 = 0;
        for (int l = 0; l < 32; l++) sum_x2 += xs[l] * xs[l];
        const float av_x = sqrtf(sum_x2 / 32.0f);
        for (int l = 0; l < 32; l++) w[l] = av_x + fabsf(xs[l]);
        scales[s] = fit_affine(32, top, xs, w, level + 32 * s, &offsets[s], rmin, 0.1f, nstep, false);
    }
    int q_scale[8], q_min[8];
    finish_affine(x, 32, top, 63, scales, offsets, d_at, dmin_at, q_scale, q_min, level);
    pack_k4_scales(q_scale, q_min, scales_at);
    pack_q45_levels(level, qs, qh);
}

void tnd_quantize_q4_K_ref(const float *x, void *dst, int64_t n) {
    tnd_block_q4_K *b = dst;
    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K) {
        memset(&b[i], 0, sizeof b[i]);
        if (!tnd_all_finite(x, QK_K)) {
            tnd_block_set_nan(b[i].d);
            tnd_block_set_nan(b[i].dmin);
            continue;
        }
        quantize_q45_block(x, 15, -1.0f, 20, b[i].d, b[i].dmin, b[i].scales, NULL, b[i].qs);
    }
}

void tnd_quantize_q5_K_ref(const float *x, void *dst, int64_t n) {
    tnd_block_q5_K *b = dst;
    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K) {
        memset(&b[i], 0, sizeof b[i]);
        if (!tnd_all_finite(x, QK_K)) {
            tnd_block_set_nan(b[i].d);
            tnd_block_set_nan(b[i].dmin);
            continue;
        }
        quantize_q45_block(x, 31, -0.5f, 15, b[i].d, b[i].dmin, b[i].scales, b[i].qh, b[i].qs);
    }
}

/* ------------------------------------------------------------------------------------------------------------
 * Quantization of the symmetric types: Q3_K (16 x 16, levels -4..3, 6-bit signed scales), Q6_K (16 x 16, levels
 * -32..31, int8 scales)
 * ---------------------------------------------------------------------------------------------------------- */

/* Signed scale of largest magnitude among 16 (the first one), 0 if all are 0. */
static float signed_max_scale(const float scales[16]) {
    float amax;
    return signed_absmax(scales, 16, &amax);
}

void tnd_quantize_q3_K_ref(const float *x, void *dst, int64_t n) {
    tnd_block_q3_K *b = dst;
    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K) {
        memset(&b[i], 0, sizeof b[i]);
        if (!tnd_all_finite(x, QK_K)) {
            tnd_block_set_nan(b[i].d);
            continue;
        }
        int8_t L[QK_K];
        float scales[16];
        for (int s = 0; s < 16; s++) scales[s] = fit_q3(16, 4, x + 16 * s, L + 16 * s);
        const float max_scale = signed_max_scale(scales);
        if (max_scale != 0) {
            const float iscale = -32.0f / max_scale;
            for (int s = 0; s < 16; s++) {
                /* the rounded value passes through an int8, as in the published code */
                int v = tnd_clamp_int((int8_t)tnd_nearest_int(iscale * scales[s]), -32, 31) + 32;
                if (s < 8) b[i].scales[s] = (uint8_t)(v & 15);
                else b[i].scales[s - 8] |= (uint8_t)((v & 15) << 4);
                b[i].scales[8 + s % 4] |= (uint8_t)((v >> 4) << (2 * (s / 4)));
            }
            tnd_block_set_f16(b[i].d, 1 / iscale);
        }
        const float d_all = tnd_block_f16(b[i].d);
        for (int s = 0; s < 16; s++) {
            const float d = d_all * (float)q3_scale(b[i].scales, s);
            if (d == 0) continue;
            for (int e = 16 * s; e < 16 * s + 16; e++)
                L[e] = (int8_t)(tnd_clamp_int(tnd_nearest_int(x[e] / d), -4, 3) + 4);
        }
        uint8_t low[QK_K];
        for (int e = 0; e < QK_K; e++) {
            low[e] = (uint8_t)(L[e] & 3);
            b[i].hmask[e % 32] |= (uint8_t)((L[e] >> 2 & 1) << (e / 32));
        }
        pack_q23_planes(low, b[i].qs);
    }
}

void tnd_quantize_q6_K_ref(const float *x, void *dst, int64_t n) {
    tnd_block_q6_K *b = dst;
    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K) {
        memset(&b[i], 0, sizeof b[i]);
        if (!tnd_all_finite(x, QK_K)) {
            tnd_block_set_nan(b[i].d);
            continue;
        }
        int8_t L[QK_K];
        float scales[16];
        for (int s = 0; s < 16; s++) scales[s] = fit_q6(16, 32, x + 16 * s, L + 16 * s);
        float max_abs;
        const float max_scale = signed_absmax(scales, 16, &max_abs);
        if (max_abs < GROUP_MAX_EPS) continue; /* an all-zero block */
        const float iscale = -128.0f / max_scale;
        tnd_block_set_f16(b[i].d, 1 / iscale);
        for (int s = 0; s < 16; s++) {
            int v = tnd_nearest_int(iscale * scales[s]);
            b[i].scales[s] = (int8_t)tnd_clamp_int(v, -128, 127);
        }
        const float d_all = tnd_block_f16(b[i].d);
        for (int s = 0; s < 16; s++) {
            const float d = d_all * (float)b[i].scales[s];
            if (d == 0) continue;
            for (int e = 16 * s; e < 16 * s + 16; e++)
                L[e] = (int8_t)(tnd_clamp_int(tnd_nearest_int(x[e] / d), -32, 31) + 32);
        }
        for (int h = 0; h < 2; h++)
            for (int l = 0; l < 32; l++) {
                const int8_t *v = L + 128 * h + l; /* levels 0..63 of elements +0, +32, +64, +96 */
                b[i].ql[64 * h + l] = (uint8_t)((v[0] & 15) | (v[64] & 15) << 4);
                b[i].ql[64 * h + 32 + l] = (uint8_t)((v[32] & 15) | (v[96] & 15) << 4);
                b[i].qh[32 * h + l] = (uint8_t)((v[0] >> 4) | (v[32] >> 4) << 2 | (v[64] >> 4) << 4 | (v[96] >> 4) << 6);
            }
    }
}

/* Q8_K: q = nearest(-127 * x / max) with max the element of largest magnitude (kept signed so that it maps to
 * exactly -127), at most 127; d = max / -127 as float; bsums are the sums of each 16 quants. An all-zero block has
 * d = 0; a block holding NaN or an infinity has d = NaN and zero quants. */
void tnd_quantize_q8_K_ref(const float *x, void *dst, int64_t n) {
    tnd_block_q8_K *b = dst;
    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K) {
        memset(&b[i], 0, sizeof b[i]);
        if (!tnd_all_finite(x, QK_K)) {
            const float nan = NAN;
            memcpy(b[i].d, &nan, 4);
            continue;
        }
        float amax, max = signed_absmax(x, QK_K, &amax);
        if (amax == 0) continue;
        const float iscale = -127.0f / max;
        for (int e = 0; e < QK_K; e++) {
            int v = tnd_nearest_int(iscale * x[e]);
            b[i].qs[e] = (int8_t)tnd_clamp_int(v, -128, 127);
        }
        for (int g = 0; g < QK_K / 16; g++) {
            int sum = 0;
            for (int e = 16 * g; e < 16 * g + 16; e++) sum += b[i].qs[e];
            int16_t s16 = (int16_t)sum;
            memcpy(b[i].bsums + 2 * g, &s16, 2);
        }
        const float d = 1 / iscale;
        memcpy(b[i].d, &d, 4);
    }
}
