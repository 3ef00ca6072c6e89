/* step_flat.c: a step's metadata as flat words (see step_flat.h). */
#include "backend/step_flat.h"

/* The first token of the step that reads token t's block table. */
static uint32_t first_with_table(const tnd_step *step, uint32_t t) {
    uint32_t first = 0;
    while (step->block_tables[first] != step->block_tables[t]) first++;
    return first;
}

/* The blocks of token t's table that the step reads: as many as its sequence's longest context in the step. */
static uint32_t table_blocks(const tnd_step *step, uint32_t t) {
    int32_t longest = 0;
    for (uint32_t u = t; u < (uint32_t)step->n_tokens; u++)
        if (step->block_tables[u] == step->block_tables[t] && step->n_ctx[u] > longest) longest = step->n_ctx[u];
    return (uint32_t)((longest + step->block_size - 1) / step->block_size);
}

size_t tnd_step_flat_words(const tnd_step *step) {
    uint32_t n = (uint32_t)step->n_tokens;
    size_t words = 4 * (size_t)n;
    for (uint32_t t = 0; t < n && step->block_tables; t++)
        if (first_with_table(step, t) == t) words += table_blocks(step, t);
    return words;
}

void tnd_step_flatten(const tnd_step *step, uint32_t *out, uint32_t table_base) {
    uint32_t n = (uint32_t)step->n_tokens, *table_at = out + 3 * (size_t)n, *tables = out + 4 * (size_t)n, next = 0;
    for (uint32_t t = 0; t < n; t++) {
        out[t] = step->pos ? (uint32_t)step->pos[t] : 0;
        out[n + t] = step->slots ? (uint32_t)step->slots[t] : 0;
        out[2 * n + t] = step->n_ctx ? (uint32_t)step->n_ctx[t] : 0;
        table_at[t] = 0;
        if (!step->block_tables) continue;
        uint32_t first = first_with_table(step, t);
        if (first < t) {
            table_at[t] = table_at[first];
            continue;
        }
        uint32_t len = table_blocks(step, t);
        table_at[t] = table_base + next;
        for (uint32_t i = 0; i < len; i++) tables[next + i] = (uint32_t)step->block_tables[t][i];
        next += len;
    }
}
