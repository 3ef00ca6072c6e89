/* olmoe.c: OLMoE (1B-7B): no biases, RMS norms of q and k over all heads at once (not per head), NEOX rope; every
 * block a mixture of experts without a shared expert, the chosen experts' weights kept as the softmax gives them. */
#include "model/arch.h"

const tnd_arch tnd_arch_olmoe = {.name = "olmoe", .rope_mode = TND_ROPE_NEOX, .qk_norm_full = true, .experts = true};
