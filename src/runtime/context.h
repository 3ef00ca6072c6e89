/* context.h: an inference context: the devices and the placement plan (what the forward pass runs on), the KV
 * cache, the batch scratch and the logits of the last batch. */
#ifndef TND_RUNTIME_CONTEXT_H
#define TND_RUNTIME_CONTEXT_H

#include "model/expert_cache.h"
#include "model/forward.h"
#include "model/model.h"
#include "runtime/kv_cache.h"
#include "runtime/speculate.h"

struct tnd_context {
    tnd_model *model;
    const tnd_bound_model *bm;
    tnd_allocator allocator;
    int32_t n_ctx, n_batch, n_seq;
    tnd_forward fw;       /* devices (owned), plan, stages, device views, KV pools: what the forward pass runs on */
    tnd_backend *remote;  /* the cloud device among fw.devices (unwrapped: a testing aid may wrap it), or NULL */
    int32_t *group_device; /* [2 n_layer + 2]: the plan, the device of each tensor group */
    tnd_expert_cache expert_cache; /* the hot experts' bookkeeping (n_slots 0: none) */
    tnd_status expert_failure;     /* fw.expert_failure points here */
    tnd_kv_cache kv;
    /* per-batch scratch (host) */
    int64_t *slots;
    int32_t *n_ctx_of;
    const int32_t **tables;
    int8_t *want;         /* per micro-batch row: logits asked for */
    /* [n_batch] the batch the sessions of this context build for a step (runtime/session.c) */
    int32_t *step_tokens, *step_pos, *step_seq;
    int8_t *step_logits;
    tnd_step_cost step_cost; /* how long the sessions' steps take by their size (for speculation's controller) */
    float *logits;        /* [logits_cap][n_vocab] host copy of the last batch's requested logits; grown to the
                             rows a batch asks for */
    int32_t n_logits, logits_cap;
};

#endif
