/* cpu_features.c: cpuid on x86 (checking that the OS saves the vector state), hwcaps on ARM. */
#include "backend/cpu/cpu_features.h"

#include <stdio.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>

static unsigned long long xgetbv0(void) {
    unsigned eax, edx;
    __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
    return ((unsigned long long)edx << 32) | eax;
}

tnd_cpu_features tnd_cpu_detect(void) {
    tnd_cpu_features f;
    memset(&f, 0, sizeof f);
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
    bool osxsave = c & (1u << 27);
    unsigned long long xcr0 = osxsave ? xgetbv0() : 0;
    bool ymm = (xcr0 & 0x6) == 0x6, zmm = (xcr0 & 0xe6) == 0xe6, amx = (xcr0 & 0x60000) == 0x60000;
    f.fma = ymm && (c & (1u << 12));
    f.f16c = ymm && (c & (1u << 29));
    if (__get_cpuid_count(7, 0, &a, &b, &c, &d)) {
        f.avx2 = ymm && (b & (1u << 5));
        f.avx512f = zmm && (b & (1u << 16));
        f.avx512bw = zmm && (b & (1u << 30));
        f.avx512vl = zmm && (b & (1u << 31));
        f.avx512vnni = zmm && (c & (1u << 11));
        f.amx_bf16 = amx && (d & (1u << 22));
        f.amx_tile = amx && (d & (1u << 24));
        f.amx_int8 = amx && (d & (1u << 25));
    }
    if (__get_cpuid_count(7, 1, &a, &b, &c, &d)) {
        f.avxvnni = ymm && (a & (1u << 4));
        f.avx512bf16 = zmm && (a & (1u << 5));
    }
    return f;
}
#elif defined(__aarch64__)
#include <sys/auxv.h>

tnd_cpu_features tnd_cpu_detect(void) {
    tnd_cpu_features f;
    memset(&f, 0, sizeof f);
    unsigned long hw = getauxval(AT_HWCAP);
    f.neon = true;               /* mandatory on AArch64 */
    f.dotprod = hw & (1ul << 20); /* HWCAP_ASIMDDP */
    return f;
}
#else
tnd_cpu_features tnd_cpu_detect(void) {
    tnd_cpu_features f;
    memset(&f, 0, sizeof f);
    return f;
}
#endif

void tnd_cpu_features_string(const tnd_cpu_features *f, char *buf, unsigned cap) {
    struct { bool on; const char *name; } all[] = {
        {f->avx2, "avx2"}, {f->fma, "fma"}, {f->f16c, "f16c"}, {f->avx512f, "avx512f"}, {f->avx512bw, "avx512bw"},
        {f->avx512vl, "avx512vl"}, {f->avx512vnni, "avx512vnni"}, {f->avx512bf16, "avx512bf16"},
        {f->avxvnni, "avxvnni"}, {f->amx_tile, "amx-tile"}, {f->amx_int8, "amx-int8"}, {f->amx_bf16, "amx-bf16"},
        {f->neon, "neon"}, {f->dotprod, "dotprod"}};
    unsigned n = 0;
    buf[0] = 0;
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        if (!all[i].on) continue;
        int w = snprintf(buf + n, cap - n, "%s%s", n ? " " : "", all[i].name);
        if (w < 0 || (unsigned)w >= cap - n) break;
        n += (unsigned)w;
    }
}
