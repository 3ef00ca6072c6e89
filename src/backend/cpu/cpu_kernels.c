/* cpu_kernels.c: builds the CPU kernel table: scalar entries from the type traits, then the overrides of the best
 * instruction set this processor has. */
#include "backend/cpu/cpu_kernels.h"

#include <string.h>

static void copy_f32(const float *src, void *dst, int64_t n) { memcpy(dst, src, sizeof(float) * (size_t)n); }

void tnd_cpu_kernels_reference(tnd_cpu_kernels *k) {
    memset(k, 0, sizeof *k);
    for (int t = 0; t < TND_TYPE_COUNT; t++) {
        const tnd_type_traits *tr = tnd_type_traits_of((tnd_type)t);
        if (!tr || !tr->vec_dot) continue;
        const tnd_type_traits *act = tnd_type_traits_of(tr->vec_dot_type);
        if (!act) continue;
        tnd_from_float_fn q = tr->vec_dot_type == TND_TYPE_F32 ? copy_f32 : act->from_float;
        if (!q) continue;
        k->dot[t] = (tnd_cpu_dot){.act_type = tr->vec_dot_type, .quantize_act = q, .dot = tr->vec_dot, .isa = "ref"};
    }
}

void tnd_cpu_kernels_best(tnd_cpu_kernels *k, const tnd_cpu_features *f) {
    tnd_cpu_kernels_reference(k);
#if defined(TND_HAVE_AVX2_FILE)
    if (f->avx2 && f->fma && f->f16c) tnd_cpu_kernels_avx2(k);
#else
    (void)f;
#endif
}
