/* llama.c: Llama 2/3.x, TinyLlama, Mistral, SmolLM: no biases, adjacent-pair rope, optional rope_freqs. */
#include "model/arch.h"

const tnd_arch tnd_arch_llama = {.name = "llama", .rope_mode = TND_ROPE_NORMAL};
