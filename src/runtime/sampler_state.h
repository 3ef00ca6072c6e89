/* sampler_state.h: the sampler's state as the generation session saves and restores it for rollback: the random
 * state before each draw, and the penalty history, which the session rebuilds from its token record. */
#ifndef TND_RUNTIME_SAMPLER_STATE_H
#define TND_RUNTIME_SAMPLER_STATE_H

#include "tandem.h"

/* Copies the xoshiro256** state out of / into the sampler. */
void tnd_sampler_rng_save(const tnd_sampler *s, uint64_t state[4]);
void tnd_sampler_rng_restore(tnd_sampler *s, const uint64_t state[4]);

/* Empties the penalty history (the random state stays). */
void tnd_sampler_forget_history(tnd_sampler *s);

/* The penalty window of the sampler's params (penalty_last_n: > 0 tokens, -1 all, 0 none). */
int32_t tnd_sampler_history_window(const tnd_sampler *s);

#endif
