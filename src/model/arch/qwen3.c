/* qwen3.c: Qwen 3 dense: per-head RMS norms on q and k before rope, head_dim independent of n_embd, NEOX rope. */
#include "model/arch.h"

const tnd_arch tnd_arch_qwen3 = {.name = "qwen3", .rope_mode = TND_ROPE_NEOX, .qk_norm = true};
