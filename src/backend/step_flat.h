/* step_flat.h: a step's batch metadata (tnd_step) as flat 32-bit words, the form a GPU reads and the cloud link
 * sends: n_tokens positions, KV slots, context lengths and table offsets, then each distinct block table once (the
 * tokens of one sequence share theirs), as long as the longest context that reads it. */
#ifndef TND_BACKEND_STEP_FLAT_H
#define TND_BACKEND_STEP_FLAT_H

#include "backend/backend.h"

/* Words of the flat form: 4 per token, then the tables. */
size_t tnd_step_flat_words(const tnd_step *step);

/* Writes the flat form to out (tnd_step_flat_words of them). A token's table offset is table_base plus the index of
 * its table's first word counted from the start of the tables (out + 4 * n_tokens). A step without block tables
 * (slots, n_ctx NULL too) gets zeros there. */
void tnd_step_flatten(const tnd_step *step, uint32_t *out, uint32_t table_base);

#endif
