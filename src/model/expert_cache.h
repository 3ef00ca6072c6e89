/* expert_cache.h: the bookkeeping of a hot-expert cache. Where a mixture-of-experts layer's experts live on a slower
 * device than the rest of its feed-forward block, the faster device holds copies of a few of them (slots); each step
 * the pairs (token, chosen expert) whose expert has a slot run there and the others where the experts live, and
 * after the step the cache swaps experts in by measured use. This file decides; the forward pass moves the rows. */
#ifndef TND_MODEL_EXPERT_CACHE_H
#define TND_MODEL_EXPERT_CACHE_H

#include "tandem.h"

#include <stdint.h>

/* The policies (TND_EXPERT_CACHE_LRU, TND_EXPERT_CACHE_LFU in tandem.h):
 * LRU: every expert a step chose and missed takes the slot chosen longest ago (not by this step);
 * LFU: each expert's count of uses decays by TND_EXPERT_LFU_DECAY a step, and an expert outside takes the slot of
 *      the lowest count inside when its own count is higher by more than TND_EXPERT_LFU_MARGIN (so two experts of
 *      nearly the same use do not swap back and forth). */
#define TND_EXPERT_LFU_DECAY  0.95
#define TND_EXPERT_LFU_MARGIN 1.0

typedef struct tnd_expert_cache {
    int32_t n_layers, n_experts, n_slots;
    int32_t policy;
    int32_t *slot_expert; /* [n_layers][n_slots]: the expert each slot holds */
    int32_t *expert_slot; /* [n_layers][n_experts]: its slot, or -1 */
    double *score;        /* [n_layers][n_experts]: LRU the step it was last chosen (0: never), LFU its count */
    uint32_t *chosen;     /* [n_experts]: scratch, pairs of the step that chose each expert */
    uint64_t step;        /* steps seen (the LRU's clock) */
    tnd_expert_cache_stats stats;
    tnd_allocator allocator;
} tnd_expert_cache;

/* A cache of n_slots per layer (1 <= n_slots < n_experts), slot s holding expert s at first. */
tnd_status tnd_expert_cache_init(tnd_expert_cache *c, int32_t n_layers, int32_t n_experts, int32_t n_slots,
                                 int32_t policy, const tnd_allocator *allocator);
void tnd_expert_cache_free(tnd_expert_cache *c);

/* Splits layer il's step of n_pairs chosen experts (ids, each in [0, n_experts)): near[p] = the slot of ids[p] or -1,
 * far[p] = ids[p] where no slot holds it or -1; counts the pairs and hits and records the use. */
void tnd_expert_cache_split(tnd_expert_cache *c, int32_t il, const int32_t *ids, int64_t n_pairs, int32_t *near,
                            int32_t *far);

/* After the split of layer il's step: the experts to copy in, at most `max` (slot[i] takes expert[i]); the
 * bookkeeping already counts them as held (and the caller adds their bytes with tnd_expert_cache_moved). */
int32_t tnd_expert_cache_swaps(tnd_expert_cache *c, int32_t il, int32_t *slot, int32_t *expert, int32_t max);

/* Slot s of layer il holds nothing any more (its copy failed): no pair goes there until a swap fills it. */
void tnd_expert_cache_lost(tnd_expert_cache *c, int32_t il, int32_t s);

/* The expert slot s of layer il holds (-1: none). */
static inline int32_t tnd_expert_cache_held(const tnd_expert_cache *c, int32_t il, int32_t s) {
    return c->slot_expert[(int64_t)il * c->n_slots + s];
}

#endif
