/* x86_avxvnni.c: the AVX2 kernels compiled with AVX-VNNI enabled (the "avxvnni" set), where their 8-bit dots take
 * vpdpbusd: one instruction for four products and their sum into an int32 lane, where AVX2 needs maddubs and madd
 * and, for Q8_0, one madd per step. The arithmetic is x86_avx2.c's; only its dot primitives change. */
#include "x86_avx2.c"
