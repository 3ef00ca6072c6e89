/* cpu_features.h: what the processor running tandem can do, read once with cpuid / hwcaps. */
#ifndef TND_BACKEND_CPU_FEATURES_H
#define TND_BACKEND_CPU_FEATURES_H

#include <stdbool.h>

typedef struct tnd_cpu_features {
    bool avx2, fma, f16c;           /* the AVX2 kernel file needs all three */
    bool avx512f, avx512bw, avx512vl, avx512vnni, avx512bf16;
    bool avxvnni;
    bool amx_tile, amx_int8, amx_bf16;
    bool neon, dotprod;
} tnd_cpu_features;

/* Features of this machine (and of what the OS enables: AVX state saved by XSAVE). */
tnd_cpu_features tnd_cpu_detect(void);

/* Space-separated names of the features present, for logs and `tandem bench`. */
void tnd_cpu_features_string(const tnd_cpu_features *f, char *buf, unsigned cap);

#endif
