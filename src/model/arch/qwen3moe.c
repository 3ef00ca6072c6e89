/* qwen3moe.c: Qwen 3 MoE (Qwen3-30B-A3B, 235B-A22B): Qwen 3's attention (per-head q/k RMS norms, NEOX rope); every
 * block a mixture of experts without a shared expert, the chosen experts' weights renormalised to sum 1. */
#include "model/arch.h"

const tnd_arch tnd_arch_qwen3moe = {.name = "qwen3moe", .rope_mode = TND_ROPE_NEOX, .qk_norm = true,
                                    .experts = true, .normalize_experts = true};
