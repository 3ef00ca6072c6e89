/* qwen2moe.c: Qwen 1.5 / 2 MoE: Qwen 2's attention (q/k/v biases, NEOX rope); every block a mixture of experts
 * (softmax over all experts, the chosen weights kept as they are) plus a shared expert behind a sigmoid gate. */
#include "model/arch.h"

const tnd_arch tnd_arch_qwen2moe = {.name = "qwen2moe", .rope_mode = TND_ROPE_NEOX, .qkv_bias = true,
                                    .experts = true, .shared_expert = true};
