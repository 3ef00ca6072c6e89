/* cpu_kernels.c: builds the CPU kernel table: scalar entries from the type traits, then the overrides of the best
 * instruction set this processor has. */
#include "backend/cpu/cpu_kernels.h"

#include <math.h>
#include <string.h>

static void copy_f32(const float *src, void *dst, int64_t n) { memcpy(dst, src, sizeof(float) * (size_t)n); }

void tnd_cpu_attn_tile_ref(const float *q, int32_t rep, int32_t hd, const float *k, const float *v, int32_t np,
                           float scale, float *mx, float *sum, float *acc) {
    float score[TND_CPU_ATTN_TILE_MAX];
    for (int32_t r = 0; r < rep; r++) {
        const float *qr = q + r * hd;
        float tile_max = -INFINITY;
        for (int32_t j = 0; j < np; j++) {
            float s = 0;
            for (int32_t i = 0; i < hd; i++) s += qr[i] * k[j * hd + i];
            score[j] = s * scale;
            tile_max = score[j] > tile_max ? score[j] : tile_max;
        }
        float m_new = tile_max > mx[r] ? tile_max : mx[r], c = sum[r] > 0 ? expf(mx[r] - m_new) : 0.0f;
        float *ar = acc + r * hd;
        sum[r] *= c;
        for (int32_t i = 0; i < hd; i++) ar[i] *= c;
        for (int32_t j = 0; j < np; j++) {
            float w = expf(score[j] - m_new);
            sum[r] += w;
            for (int32_t i = 0; i < hd; i++) ar[i] += w * v[j * hd + i];
        }
        mx[r] = m_new;
    }
}

size_t tnd_cpu_attn_q8_bytes(int32_t n_heads, int32_t hd) {
    size_t blocks = (size_t)n_heads * (size_t)(hd / 32);
    return (size_t)n_heads * (size_t)hd + blocks * (sizeof(float) + sizeof(int32_t));
}

tnd_attn_q8 tnd_cpu_quantize_queries(const float *q, int32_t n_heads, int32_t hd, float scale, void *out) {
    size_t blocks = (size_t)n_heads * (size_t)(hd / 32);
    float *d = out; /* the floats and ints first, so that each is aligned */
    int32_t *sums = (int32_t *)(d + blocks);
    int8_t *levels = (int8_t *)(sums + blocks);
    for (size_t b = 0; b < blocks; b++) {
        const float *x = q + 32 * b;
        float amax = 0;
        bool finite = true;
        for (int i = 0; i < 32; i++) {
            amax = fabsf(x[i]) > amax ? fabsf(x[i]) : amax;
            finite = finite && isfinite(x[i]);
        }
        float step = finite ? amax / 127 : NAN, inv = finite && amax > 0 ? 127 / amax : 0; /* NaN scores, as floats */
        int32_t total = 0;
        for (int i = 0; i < 32; i++) {
            /* to nearest, ties to even, as lrintf, without a call per value (a decode step's work item quantizes
             * 448 values, once per segment of 2048 positions: with the calls this function was 1.6% of a decode's
             * samples at depth 16384): adding 1.5 x 2^23 leaves no fraction bits for a magnitude <= 127 */
            int32_t level = finite ? (int32_t)((x[i] * inv + 12582912.0f) - 12582912.0f) : 0;
            levels[32 * b + (size_t)i] = (int8_t)level;
            total += level;
        }
        d[b] = step * scale;
        sums[b] = total;
    }
    return (tnd_attn_q8){levels, d, sums};
}

static void swiglu_ref(const float *gate, const float *up, float *out, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        float g = gate[i];
        out[i] = g / (1.0f + expf(-g)) * up[i];
    }
}

void tnd_cpu_kernels_reference(tnd_cpu_kernels *k) {
    memset(k, 0, sizeof *k);
    k->vec.attn_tile = tnd_cpu_attn_tile_ref;
    k->vec.swiglu = swiglu_ref;
    for (int t = 0; t < TND_TYPE_COUNT; t++) {
        const tnd_type_traits *tr = tnd_type_traits_of((tnd_type)t);
        if (tr) k->vec.to_float[t] = tr->to_float;
        if (tr) k->vec.from_float[t] = tr->from_float;
        if (!tr || !tr->vec_dot) continue;
        const tnd_type_traits *act = tnd_type_traits_of(tr->vec_dot_type);
        if (!act) continue;
        tnd_from_float_fn q = tr->vec_dot_type == TND_TYPE_F32 ? copy_f32 : act->from_float;
        if (!q) continue;
        k->dot[t] = (tnd_cpu_dot){.act_type = tr->vec_dot_type, .quantize_act = q, .dot = tr->vec_dot, .isa = "ref"};
    }
}

void tnd_cpu_pack_rows(const uint8_t *src, int64_t n_rows, size_t row_bytes, int group, size_t chunk,
                       void (*transform)(uint8_t *chunks, int group, size_t len), uint8_t *dst) {
    tnd_cpu_pack_groups(src, n_rows, row_bytes, group, chunk, transform, dst, 0, (n_rows + group - 1) / group);
}

void tnd_cpu_pack_groups(const uint8_t *src, int64_t n_rows, size_t row_bytes, int group, size_t chunk,
                         void (*transform)(uint8_t *chunks, int group, size_t len), uint8_t *dst, int64_t first,
                         int64_t end) {
    for (int64_t g = first; g < end; g++) {
        uint8_t *out = dst + (size_t)g * (size_t)group * row_bytes;
        for (size_t c0 = 0; c0 < row_bytes; c0 += chunk) {
            size_t len = row_bytes - c0 < chunk ? row_bytes - c0 : chunk;
            uint8_t *set = out;
            for (int r = 0; r < group; r++, out += len) {
                int64_t row = g * group + r;
                if (row >= n_rows)
                    memset(out, 0, len);
                else
                    memcpy(out, src + (size_t)row * row_bytes + c0, len);
            }
            if (transform) transform(set, group, len);
        }
    }
}

size_t tnd_cpu_act_bytes(const tnd_cpu_dot *k, int64_t n) {
    return k->act_bytes ? k->act_bytes(n) : tnd_row_size(k->act_type, n);
}

void tnd_cpu_act_to_float(const tnd_cpu_dot *k, const void *act, float *out, int64_t n) {
    if (k->act_to_float)
        k->act_to_float(act, out, n);
    else
        tnd_type_traits_of(k->act_type)->to_float(act, out, n);
}

const char *tnd_cpu_isa_name(tnd_cpu_isa isa) {
    static const char *names[TND_ISA_COUNT] = {"ref", "avx2", "avxvnni", "avx512", "neon"};
    return isa >= 0 && isa < TND_ISA_COUNT ? names[isa] : "?";
}

#if defined(TND_HAVE_X86_FILES)
static bool has_avx2(const tnd_cpu_features *f) { return f->avx2 && f->fma && f->f16c; }
static bool has_avx512(const tnd_cpu_features *f) {
    return has_avx2(f) && f->avx512f && f->avx512bw && f->avx512vl && f->avx512vnni;
}
#endif

bool tnd_cpu_kernels_for(tnd_cpu_kernels *k, tnd_cpu_isa isa, const tnd_cpu_features *f) {
    tnd_cpu_kernels_reference(k);
    if (isa == TND_ISA_REF) return true;
#if defined(TND_HAVE_X86_FILES)
    if (isa > TND_ISA_AVX512 || !has_avx2(f)) return false;
    tnd_cpu_kernels_avx2(k);
    if (isa == TND_ISA_AVX2) return true;
#if defined(TND_HAVE_AVXVNNI_FILE) /* (a compiler without -mavxvnni builds no such file) */
    bool vnni = f->avxvnni;
#else
    bool vnni = false;
#endif
    if (vnni) tnd_cpu_kernels_avxvnni(k); /* under AVX-512 too, for any entry that set leaves to the sets before it */
    if (isa == TND_ISA_AVXVNNI) return vnni;
    if (!has_avx512(f)) return false;
    tnd_cpu_kernels_avx512(k);
    return true;
#elif defined(TND_HAVE_ARM_FILES)
    if (isa != TND_ISA_NEON || !f->neon || !f->dotprod) return false;
    tnd_cpu_kernels_neon(k);
    return true;
#else
    (void)f;
    return false;
#endif
}

void tnd_cpu_kernels_best(tnd_cpu_kernels *k, const tnd_cpu_features *f) {
    for (int isa = TND_ISA_COUNT - 1; isa >= 0; isa--)
        if (tnd_cpu_kernels_for(k, (tnd_cpu_isa)isa, f)) return;
}
