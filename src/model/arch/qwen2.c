/* qwen2.c: Qwen 2 / 2.5 and DeepSeek-R1-Distill-Qwen: q/k/v biases, half-split (NEOX) rope, tied output optional. */
#include "model/arch.h"

const tnd_arch tnd_arch_qwen2 = {.name = "qwen2", .rope_mode = TND_ROPE_NEOX, .qkv_bias = true};
