/* speculate.h: the draft sources and the controller of speculative decoding. The session (session.c) puts a draft
 * into its step and verifies it; this module says how long the draft should be, makes it, and learns from the
 * outcome. */
#ifndef TND_RUNTIME_SPECULATE_H
#define TND_RUNTIME_SPECULATE_H

#include "tandem.h"

#include <stdbool.h>

/* The cost of a context's decode steps (every token asks for logits): a step of one token, and what each further
 * token adds, as running averages (recent steps weigh more). */
typedef struct tnd_step_cost {
    double one, per_token;
    int64_t n_one, n_more;  /* steps of one token, and of more, seen */
} tnd_step_cost;

/* Adds one timed step. */
void tnd_step_cost_add(tnd_step_cost *cost, int32_t tokens, double seconds);

/* *one = seconds of a step of one token, *per_token = seconds each further token adds. Returns false while no step
 * was timed. Until a step of several tokens was seen, each further token is assumed to cost a tenth of a step (a
 * step reads the weights once; the extra tokens add arithmetic). */
bool tnd_step_cost_line(const tnd_step_cost *cost, double *one, double *per_token);

/* One session's speculation: its draft source, the draft, and the controller's state. */
typedef struct tnd_spec tnd_spec;

/* Checks the params (and the draft model's vocabulary against `tok`) and makes the state; `target` is the
 * session's context. */
tnd_status tnd_spec_init(const tnd_speculation_params *params, const tnd_context *target, const tnd_tokenizer *tok,
                         const tnd_allocator *allocator, tnd_spec **out);

/* Releases it and empties the draft model's sequence. Accepts NULL. */
void tnd_spec_free(tnd_spec *sp);

/* The draft length for this step, 0 for none: at most `room` (what the context, the token budget and the batch
 * leave), chosen to maximise the expected tokens per second of a step in which `n_streams` sessions generate and
 * `batch_tokens` tokens are already placed (this session's pending token among them); n_record is the length of
 * the session's record (what a draft model would have to catch up on), n_generated how much of it this generation
 * generated. */
int32_t tnd_spec_choose(tnd_spec *sp, const tnd_step_cost *cost, int32_t n_streams, int32_t batch_tokens,
                        int32_t room, int32_t n_record, int32_t n_generated);

/* Drafts up to k tokens that follow record[0..n) into tnd_spec_draft_tokens; returns how many (0 when the source
 * has nothing, or a draft shorter than draft_min). Never fails: a failing draft model step gives a shorter draft. */
int32_t tnd_spec_draft(tnd_spec *sp, const int32_t *record, int32_t n, int32_t k);
/* tnd_spec_draft for n sessions at once (counts[i] for sps[i]): those that draft with the same draft context share
 * its steps, one batch for every token they draft, instead of a step each. */
void tnd_spec_draft_many(tnd_spec *const *sps, const int32_t *const *records, const int32_t *ns, const int32_t *ks,
                         int32_t n, int32_t *counts);
const int32_t *tnd_spec_draft_tokens(const tnd_spec *sp);

/* The outcome of a verification: `accepted` of `drafted` tokens; `rejected` when a drafted token was sampled
 * otherwise (false when the generation ended before the draft was decided). */
void tnd_spec_verified(tnd_spec *sp, int32_t drafted, int32_t accepted, bool rejected);

/* A generating step that carried no draft. */
void tnd_spec_plain(tnd_spec *sp);

/* A generating step of the session: its seconds and the tokens it gave the session (with or without a draft, as
 * tnd_spec_draft made it), for the probes' share of the time and for what speculation really gives. */
void tnd_spec_step_done(tnd_spec *sp, double seconds, int32_t tokens);

/* The figures of tnd_session_speculation_stats. */
void tnd_spec_stats(const tnd_spec *sp, const tnd_step_cost *cost, tnd_speculation_stats *out);

#endif
