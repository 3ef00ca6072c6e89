/* sampler_state.h: the sampler's state as the generation session saves and restores it for rollback: the random
 * state before each draw, and the penalty history, which the session rebuilds from its token record. */
#ifndef TND_RUNTIME_SAMPLER_STATE_H
#define TND_RUNTIME_SAMPLER_STATE_H

#include "tandem.h"

#include <stdbool.h>
#include <stdint.h>

/* Copies the xoshiro256** state out of / into the sampler. */
void tnd_sampler_rng_save(const tnd_sampler *s, uint64_t state[4]);
void tnd_sampler_rng_restore(tnd_sampler *s, const uint64_t state[4]);

/* Empties the penalty history (the random state stays). */
void tnd_sampler_forget_history(tnd_sampler *s);

/* The penalty window of the sampler's params (penalty_last_n: > 0 tokens, -1 all, 0 none). */
int32_t tnd_sampler_history_window(const tnd_sampler *s);

/* A filter on the sampled token (the grammar's): allows(user, token) says whether one token may come; mask(user,
 * allowed) marks allowed[n_vocab] for all of them (false when out of memory). */
typedef struct tnd_sample_filter {
    bool (*allows)(void *user, int32_t token);
    bool (*mask)(void *user, uint8_t *allowed);
    void *user;
    uint8_t *allowed;  /* [n_vocab] scratch for the mask */
} tnd_sample_filter;

/* tnd_sampler_sample with the token drawn from the final distribution restricted to what the filter allows: a draw
 * the filter allows stands (the common case: one check); otherwise the kept candidates the filter allows are drawn
 * from, renormalised; where it allows none of them, all the stages run again over the tokens its mask allows (for
 * greedy sampling: the most likely allowed token). TND_ERR_INVALID_ARGUMENT when no allowed token has a finite
 * logit. */
tnd_status tnd_sampler_sample_filtered(tnd_sampler *s, const float *logits, const tnd_sample_filter *f,
                                       int32_t *token);

#endif
