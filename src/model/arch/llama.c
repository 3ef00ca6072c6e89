/* llama.c: Llama 2/3.x, TinyLlama, Mistral, SmolLM: no biases, adjacent-pair rope, optional rope_freqs. Mixtral is
 * this architecture with expert_count set: its blocks are mixtures of experts whose chosen weights are renormalised
 * to sum 1 (a softmax over the chosen experts' logits). */
#include "model/arch.h"

const tnd_arch tnd_arch_llama = {.name = "llama", .rope_mode = TND_ROPE_NORMAL, .normalize_experts = true};
