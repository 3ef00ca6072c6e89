/* speculate.c: speculative decoding's draft sources (prompt lookup, a draft model) and the controller that picks
 * the draft length from measured acceptance and costs. The verification itself is the session's (session.c). */
#include "runtime/speculate.h"

#include "core/alloc.h"
#include "core/clock.h"
#include "core/error.h"
#include "runtime/context.h"

#include <math.h>
#include <string.h>

enum {
    DRAFT_MAX_LIMIT = 64,  /* the most tokens a draft may have (a verification asks for 1 + this many rows) */
    NGRAM_MAX_LIMIT = 16,
    PROBE_FIRST = 8,       /* steps off before the first probe; the interval doubles up to PROBE_LAST */
    PROBE_LAST = 256,
    PROBE_LENGTH = 4,      /* tokens a probe drafts: enough to see a good draft at once */
    PROBE_WINDOW = 64,     /* a draft model's probe after a while off sees the last this many tokens only */
    VOCAB_SIZE_SLACK = 128, /* a draft vocabulary may have this many tokens more or fewer (padding rows) */
    DRAFT_GROUP = 64       /* sessions drafted together at most (more take turns) */
};

/* How fast old observations fade: acceptance per verification, step costs per step. */
#define ACCEPT_DECAY 0.9
#define COST_EMA 0.1
#define DRAFT_COST_EMA 0.2
#define RATE_DECAY 0.9
#define RATE_MIN_STEPS 4   /* steps of each kind before what they gave is trusted over the cost model */
/* Probes may take this share of the generation's time at most: a probe of a draft model that was off for a while
 * first evaluates every token since (its catch-up), which can cost more than the probe itself. */
#define PROBE_BUDGET 0.01

struct tnd_spec {
    tnd_speculation_params p;
    tnd_allocator allocator;
    int32_t target_vocab;
    int32_t *draft;              /* [draft_max] the current draft */
    int32_t n_requested;         /* the length asked of the current draft */

    /* TND_DRAFT_MODEL: the draft context's sequence and the tokens its cache holds: record[doff .. doff + n_drec),
     * at its positions 0 .. n_drec - 1 (doff > 0 after a probe that looked at a window of the record only) */
    tnd_context *dctx;
    int32_t *drec, n_drec, doff; /* drec: [dctx->n_ctx] */
    int32_t *btok, *bpos, *bseq; /* [dctx->n_batch] a batch of the draft context (the first session's, in a batched
                                    draft) */
    int8_t *blog;

    /* the controller */
    double accepted, rejected;   /* decayed counts of accepted drafted tokens and of drafts that ended short */
    double draft_token_seconds;  /* measured cost of drafting one token (0 until measured) */
    double size_ratio;           /* draft model bytes / target bytes: the first guess of a draft step's cost, as a
                                    share of a target step (decode reads every weight once) */
    double step_seconds;         /* what one draft step of the current draft took (0: not known) */
    double catch_up_token_seconds; /* measured cost of a token of a longer catch-up (0 until measured) */
    int32_t k_last, off_steps, probe_every;
    bool probing;                /* the current draft is a probe */
    double t_steps, t_probes;    /* seconds of the session's steps, and of the drafting of its probes */
    double last_probe;           /* seconds the last probe's drafting took: about what the next one will */
    /* what the steps really gave, with a draft and without: decayed sums of seconds (drafting included) and of
     * tokens, and how many steps of each kind were seen */
    double draft_pending;        /* seconds of drafting for the step under way */
    bool step_drafted;           /* a draft was attempted for the step under way */
    double on_seconds, on_tokens, off_seconds, off_tokens;
    int32_t n_on, n_off;
    tnd_speculation_stats stats;
};

static int32_t min_i32(int32_t a, int32_t b) { return a < b ? a : b; }

const char *tnd_draft_source_name(tnd_draft_source source) {
    switch (source) {
    case TND_DRAFT_NONE: return "none";
    case TND_DRAFT_NGRAM: return "ngram";
    case TND_DRAFT_MODEL: return "model";
    }
    return "unknown";
}

tnd_speculation_params tnd_speculation_default_params(void) {
    return (tnd_speculation_params){.source = TND_DRAFT_NONE, .draft_max = 16, .draft_min = 1, .p_min = 0.5f,
                                    .ngram_min = 2, .ngram_max = 4, .adaptive = 1};
}

/* ------------------------------------------------------------------------------------------------------------
 * The step cost
 * ---------------------------------------------------------------------------------------------------------- */

void tnd_step_cost_add(tnd_step_cost *c, int32_t tokens, double seconds) {
    if (tokens < 1 || !(seconds > 0)) return;
    if (tokens == 1) {
        c->one = c->n_one++ ? c->one * (1 - COST_EMA) + seconds * COST_EMA : seconds;
        return;
    }
    if (!c->n_one) return;
    /* a busy machine makes single steps slow: an extra token is taken to cost at most a step, and at most three
     * times the estimate so far, so that one outlier cannot switch speculation off for good */
    double extra = (seconds - c->one) / (tokens - 1), prior = 0.1 * c->one;
    if (extra < 0) extra = 0;
    if (extra > c->one) extra = c->one;
    if (c->n_more && extra > 3 * c->per_token) extra = 3 * c->per_token;
    c->per_token = c->n_more++ ? c->per_token * (1 - COST_EMA) + extra * COST_EMA : 0.5 * (prior + extra);
}

bool tnd_step_cost_line(const tnd_step_cost *c, double *one, double *per_token) {
    if (!c->n_one) return false;
    *one = c->one;
    *per_token = c->n_more ? c->per_token : 0.1 * c->one;
    return true;
}

/* ------------------------------------------------------------------------------------------------------------
 * Set-up
 * ---------------------------------------------------------------------------------------------------------- */

/* The draft model's token strings must be the target's: drafted ids are handed over as they are. */
static tnd_status check_vocabulary(const tnd_tokenizer *tok, const tnd_model *draft) {
    static const char key[] = "tokenizer.ggml.tokens";
    tnd_value_type type;
    uint64_t count = 0;
    if (tnd_model_meta_array(draft, key, &type, &count) != TND_OK || type != TND_VALUE_STRING)
        return tnd_fail(TND_ERR_INVALID_ARGUMENT, "draft model: it has no vocabulary (%s)", key);
    int64_t n_target = tnd_tokenizer_n_vocab(tok), n_draft = (int64_t)count;
    if (n_draft - n_target > VOCAB_SIZE_SLACK || n_target - n_draft > VOCAB_SIZE_SLACK)
        return tnd_fail(TND_ERR_INVALID_ARGUMENT, "draft model: its vocabulary has %lld tokens, the target's %lld: "
                        "not the same vocabulary", (long long)n_draft, (long long)n_target);
    int64_t n = n_draft < n_target ? n_draft : n_target;
    for (int64_t i = 0; i < n; i++) {
        const char *a = NULL, *b = NULL;
        size_t la = 0, lb = 0;
        a = tnd_tokenizer_token_text(tok, (int32_t)i, &la);
        if (tnd_model_meta_array_string(draft, key, (uint64_t)i, &b, &lb) != TND_OK || la != lb || memcmp(a, b, la))
            return tnd_fail(TND_ERR_INVALID_ARGUMENT, "draft model: token %lld is '%.*s' in the draft's vocabulary "
                            "and '%.*s' in the target's: not the same vocabulary", (long long)i, (int)(lb > 40 ? 40 : lb),
                            b ? b : "", (int)(la > 40 ? 40 : la), a);
    }
    return TND_OK;
}

static tnd_status check_params(const tnd_speculation_params *p, const tnd_context *target) {
    if (p->draft_max < 1 || p->draft_max > DRAFT_MAX_LIMIT)
        return tnd_fail(TND_ERR_INVALID_ARGUMENT, "speculation: draft_max %d is outside [1, %d]", p->draft_max,
                        DRAFT_MAX_LIMIT);
    if (p->draft_min < 1 || p->draft_min > p->draft_max)
        return tnd_fail(TND_ERR_INVALID_ARGUMENT, "speculation: draft_min %d is outside [1, draft_max %d]",
                        p->draft_min, p->draft_max);
    if (p->adaptive != 0 && p->adaptive != 1)
        return tnd_fail(TND_ERR_INVALID_ARGUMENT, "speculation: adaptive is %d; use 0 or 1", p->adaptive);
    if (p->source == TND_DRAFT_NGRAM &&
        (p->ngram_min < 1 || p->ngram_max < p->ngram_min || p->ngram_max > NGRAM_MAX_LIMIT))
        return tnd_fail(TND_ERR_INVALID_ARGUMENT, "speculation: n-gram lengths %d..%d; use 1 <= min <= max <= %d",
                        p->ngram_min, p->ngram_max, NGRAM_MAX_LIMIT);
    if (p->source == TND_DRAFT_MODEL) {
        if (!(p->p_min >= 0.0f && p->p_min <= 1.0f))
            return tnd_fail(TND_ERR_INVALID_ARGUMENT, "speculation: p_min %g is outside [0, 1]", (double)p->p_min);
        if (!p->draft_context)
            return tnd_fail(TND_ERR_INVALID_ARGUMENT, "speculation: a draft model needs draft_context");
        if (p->draft_context == target)
            return tnd_fail(TND_ERR_INVALID_ARGUMENT, "speculation: the draft context is the session's own");
        if (p->draft_seq < 0 || p->draft_seq >= p->draft_context->n_seq)
            return tnd_fail(TND_ERR_INVALID_ARGUMENT, "speculation: draft sequence %d is outside [0, %d)",
                            p->draft_seq, p->draft_context->n_seq);
    }
    if (p->source != TND_DRAFT_NGRAM && p->source != TND_DRAFT_MODEL)
        return tnd_fail(TND_ERR_INVALID_ARGUMENT, "speculation: unknown draft source %d", (int)p->source);
    return TND_OK;
}

tnd_status tnd_spec_init(const tnd_speculation_params *p, const tnd_context *target, const tnd_tokenizer *tok,
                         const tnd_allocator *allocator, tnd_spec **out) {
    *out = NULL;
    tnd_status st = check_params(p, target);
    if (!st && p->source == TND_DRAFT_MODEL) st = check_vocabulary(tok, p->draft_context->model);
    if (st) return st;
    tnd_spec *sp = tnd_alloc(allocator, sizeof *sp);
    if (!sp) return tnd_fail(TND_ERR_OUT_OF_MEMORY, "speculation: out of memory");
    sp->p = *p;
    sp->allocator = *allocator;
    sp->target_vocab = tnd_tokenizer_n_vocab(tok);
    sp->probe_every = PROBE_FIRST;
    sp->stats.source = p->source;
    bool ok = (sp->draft = tnd_alloc_array(allocator, (size_t)p->draft_max, sizeof *sp->draft)) != NULL;
    if (ok && p->source == TND_DRAFT_MODEL) {
        sp->dctx = p->draft_context;
        sp->drec = tnd_alloc_array(allocator, (size_t)sp->dctx->n_ctx, sizeof *sp->drec);
        size_t nb = (size_t)sp->dctx->n_batch;
        sp->btok = tnd_alloc_array(allocator, nb, sizeof *sp->btok);
        sp->bpos = tnd_alloc_array(allocator, nb, sizeof *sp->bpos);
        sp->bseq = tnd_alloc_array(allocator, nb, sizeof *sp->bseq);
        sp->blog = tnd_alloc_array(allocator, nb, sizeof *sp->blog);
        ok = sp->drec && sp->btok && sp->bpos && sp->bseq && sp->blog;
        uint64_t target_bytes = tnd_model_file_size(target->model);
        sp->size_ratio = target_bytes ? (double)tnd_model_file_size(sp->dctx->model) / (double)target_bytes : 0;
        if (ok) tnd_context_seq_truncate(sp->dctx, p->draft_seq, 0);
    }
    if (!ok) {
        tnd_spec_free(sp);
        return tnd_fail(TND_ERR_OUT_OF_MEMORY, "speculation: out of memory");
    }
    *out = sp;
    return TND_OK;
}

void tnd_spec_free(tnd_spec *sp) {
    if (!sp) return;
    if (sp->dctx && sp->drec) tnd_context_seq_truncate(sp->dctx, sp->p.draft_seq, 0);
    tnd_allocator a = sp->allocator;
    tnd_free(&a, sp->draft);
    tnd_free(&a, sp->drec);
    tnd_free(&a, sp->btok);
    tnd_free(&a, sp->bpos);
    tnd_free(&a, sp->bseq);
    tnd_free(&a, sp->blog);
    tnd_free(&a, sp);
}

/* ------------------------------------------------------------------------------------------------------------
 * The controller
 * ---------------------------------------------------------------------------------------------------------- */

/* The chance a drafted token is accepted, given the one before it was: accepted / (accepted + drafts that ended
 * short), with one of each as a prior so that a new session tries. */
static double acceptance(const tnd_spec *sp) { return (sp->accepted + 1) / (sp->accepted + sp->rejected + 2); }

/* Tokens of the record a draft model has not evaluated: one or two while it drafts every step (the pending token and
 * the last accepted one), more after steps without it. */
static int32_t draft_behind(const tnd_spec *sp, int32_t n_record) {
    return sp->dctx ? n_record - sp->doff - sp->n_drec : 0;
}

/* What drafting now would cost before its first token: a draft model that was off evaluates every token since
 * (half a draft step each until measured). */
static double catch_up_cost(const tnd_spec *sp, int32_t n_record, double draft_cost) {
    int32_t behind = draft_behind(sp, n_record);
    if (behind <= 0) return 0;
    double per = sp->catch_up_token_seconds > 0 ? sp->catch_up_token_seconds : 0.5 * draft_cost;
    return per * min_i32(behind, PROBE_WINDOW);
}

int32_t tnd_spec_choose(tnd_spec *sp, const tnd_step_cost *cost, int32_t n_streams, int32_t batch_tokens,
                        int32_t room, int32_t n_record, int32_t n_generated) {
    int32_t k_max = min_i32(room, sp->p.draft_max);
    if (k_max < sp->p.draft_min) return 0;
    if (!sp->p.adaptive) return sp->k_last = k_max;
    double one, per_token;
    if (!tnd_step_cost_line(cost, &one, &per_token)) return sp->k_last = 0; /* a plain step first, to time it */
    /* with k drafted tokens each accepted with chance a (after the one before it), the stream gains
     * 1 + a + ... + a^k tokens; the step costs k more tokens and the drafting */
    double a = acceptance(sp), step = one + per_token * (batch_tokens - 1);
    double draft_cost = sp->draft_token_seconds > 0 ? sp->draft_token_seconds : one * sp->size_ratio;
    /* a gain within noise is not worth the variance; one that rests on a guessed draft cost must be larger */
    double margin = sp->draft_token_seconds > 0 ? 1.02 : 1.05;
    double best_rate = n_streams / step, gained = 1, a_k = 1;
    int32_t best = 0;
    for (int32_t k = 1; k <= k_max; k++) {
        a_k *= a;
        gained += a_k;
        if (k < sp->p.draft_min) continue;
        double rate = (n_streams - 1 + gained) / (step + (per_token + draft_cost) * k);
        if (rate > best_rate * margin) {
            best_rate = rate;
            best = k;
        }
    }
    /* what the steps really gave overrides the model: speculation that has been slower than steps without it
     * stays off (the model's costs are estimates; the machine may be busy, the draft slower than it looks) */
    if (best && sp->n_on >= RATE_MIN_STEPS) {
        double off_rate = sp->n_off >= RATE_MIN_STEPS ? sp->off_tokens / sp->off_seconds : 1.0 / step;
        if (sp->on_tokens < off_rate * sp->on_seconds) best = 0;
    }
    /* a draft model that was off must first catch up on every token generated since (on a small model that costs
     * as many draft steps, more than speculation gains back in a while): it comes back through a probe, whose
     * catch-up looks at a window only and must fit the probes' share of the time */
    int32_t off_behind = min_i32(draft_behind(sp, n_record), n_generated); /* the prompt's catch-up is a prefill */
    if (best && off_behind > 2) best = 0;
    sp->k_last = best;
    if (best) {
        sp->off_steps = 0;
        sp->probe_every = PROBE_FIRST;
        return best;
    }
    /* off: probe now and then, less often while probes keep failing, and within the probes' share of the time
     * (the next one counted at what the last cost, or at its catch-up where that is more) */
    double next_probe = catch_up_cost(sp, n_record, draft_cost);
    if (sp->last_probe > next_probe) next_probe = sp->last_probe;
    if (++sp->off_steps < sp->probe_every || sp->t_probes + next_probe > PROBE_BUDGET * sp->t_steps) return 0;
    sp->off_steps = 0;
    sp->probing = true;
    if (sp->probe_every < PROBE_LAST) sp->probe_every *= 2;
    sp->stats.n_probes++;
    return min_i32(k_max, sp->p.draft_min > PROBE_LENGTH ? sp->p.draft_min : PROBE_LENGTH);
}

void tnd_spec_verified(tnd_spec *sp, int32_t drafted, int32_t accepted, bool rejected) {
    sp->accepted = sp->accepted * ACCEPT_DECAY + accepted;
    /* a draft cut short (nothing more to look up, an unsure draft model) ends the chain like a rejection */
    bool ended_short = rejected || accepted < sp->n_requested;
    sp->rejected = sp->rejected * ACCEPT_DECAY + (ended_short ? 1 : 0);
    if (drafted) {
        sp->stats.n_verified++;
        sp->stats.n_drafted += drafted;
        sp->stats.n_accepted += accepted;
    } else sp->stats.n_plain++;
}

void tnd_spec_plain(tnd_spec *sp) { sp->stats.n_plain++; }

void tnd_spec_step_done(tnd_spec *sp, double seconds, int32_t tokens) {
    sp->t_steps += seconds;
    seconds += sp->draft_pending;
    if (sp->step_drafted) {
        sp->on_seconds = sp->on_seconds * RATE_DECAY + seconds;
        sp->on_tokens = sp->on_tokens * RATE_DECAY + tokens;
        sp->n_on++;
    } else {
        sp->off_seconds = sp->off_seconds * RATE_DECAY + seconds;
        sp->off_tokens = sp->off_tokens * RATE_DECAY + tokens;
        sp->n_off++;
    }
    sp->draft_pending = 0;
    sp->step_drafted = false;
}

void tnd_spec_stats(const tnd_spec *sp, const tnd_step_cost *cost, tnd_speculation_stats *out) {
    *out = sp->stats;
    out->acceptance = acceptance(sp);
    out->draft_length = sp->k_last;
    out->draft_token_seconds = sp->draft_token_seconds;
    if (!tnd_step_cost_line(cost, &out->step_seconds, &out->step_token_seconds))
        out->step_seconds = out->step_token_seconds = 0;
}

/* ------------------------------------------------------------------------------------------------------------
 * Draft sources
 * ---------------------------------------------------------------------------------------------------------- */

/* Prompt lookup: the latest earlier occurrence of the record's last n tokens, longest n first; the draft is what
 * followed it. */
static int32_t draft_ngram(tnd_spec *sp, const int32_t *rec, int32_t n, int32_t k) {
    for (int32_t len = min_i32(sp->p.ngram_max, n - 1); len >= sp->p.ngram_min; len--) {
        const int32_t *tail = rec + n - len;
        for (int32_t j = n - len - 1; j >= 0; j--) {
            if (rec[j] != tail[0] || memcmp(rec + j, tail, sizeof *rec * (size_t)len)) continue;
            int32_t c = min_i32(k, n - (j + len));
            memcpy(sp->draft, rec + j + len, sizeof *rec * (size_t)c);
            return c;
        }
    }
    return 0;
}

/* The most likely token of a row of logits and its probability (computed only when asked for). */
static int32_t most_likely(const float *logits, int32_t n_vocab, bool want_p, float *p) {
    int32_t best = 0;
    for (int32_t i = 1; i < n_vocab; i++)
        if (logits[i] > logits[best]) best = i;
    *p = 1.0f;
    if (want_p) {
        double sum = 0;
        for (int32_t i = 0; i < n_vocab; i++) sum += exp((double)(logits[i] - logits[best]));
        *p = (float)(1.0 / sum);
    }
    return best;
}

/* One session's part of a draft by a draft model: the record as the draft model sees it, then the drafted tokens;
 * what of both its cache holds (sp->n_drec), and what the steps it took part in cost. */
typedef struct draft_run {
    tnd_spec *sp;
    const int32_t *rec;
    int32_t n, k, c;            /* record length, tokens asked for, drafted so far */
    int32_t behind;             /* record tokens its cache lacked at the start */
    int32_t fed, row;           /* its tokens in the step under way, and its logits row there (-1: none) */
    bool done, catching_up;     /* catching_up: the step under way feeds it record tokens */
    double catch_up_seconds, draft_seconds;
    int32_t draft_steps;
} draft_run;

/* Brings the run's draft cache to the longest prefix it shares with the record (a probe after a long while off
 * looks at the last PROBE_WINDOW tokens only: catching up on all of them would cost more than a probe may; a
 * record shorter than the window's start, a new generation, starts over). False where it cannot draft. */
static bool draft_begin(draft_run *r, tnd_spec *sp, const int32_t *rec, int32_t n, int32_t k) {
    tnd_context *d = sp->dctx;
    *r = (draft_run){.sp = sp, .row = -1, .done = true};
    bool window = sp->probing && n - sp->doff - sp->n_drec > PROBE_WINDOW;
    if (window || sp->doff > n - 1) {
        if (tnd_context_seq_truncate(d, sp->p.draft_seq, 0) != TND_OK) return false;
        sp->n_drec = 0;
        sp->doff = window ? n - PROBE_WINDOW : 0;
    }
    rec += sp->doff; /* from here on the record as the draft model sees it */
    n -= sp->doff;
    k = min_i32(k, d->n_ctx - n + 1); /* the draft's cache takes the record and all drafted tokens but the last */
    if (k < 1) return false;
    int32_t common = 0, limit = min_i32(sp->n_drec, n - 1);
    while (common < limit && sp->drec[common] == rec[common]) common++;
    if (common < sp->n_drec) {
        if (tnd_context_seq_truncate(d, sp->p.draft_seq, common) != TND_OK) return false;
        sp->n_drec = common;
    }
    *r = (draft_run){.sp = sp, .rec = rec, .n = n, .k = k, .behind = n - sp->n_drec, .row = -1};
    return true;
}

/* Takes the draft model's most likely token from its logits; the run's draft ends where the model is unsure or
 * has drafted all that was asked. */
static void take_next(draft_run *r, const float *logits) {
    tnd_spec *sp = r->sp;
    int32_t n_vocab = tnd_model_n_vocab(sp->dctx->model);
    float p;
    int32_t token = most_likely(logits, n_vocab < sp->target_vocab ? n_vocab : sp->target_vocab, sp->p.p_min > 0, &p);
    if (p < sp->p.p_min) {
        r->done = true;
        return;
    }
    sp->draft[r->c++] = token;
    r->done = r->c == r->k;
}

/* Drafts greedily for the runs at once, on their shared draft context: each step takes the tokens every run's
 * cache lacks (its record, then each drafted token but the last), as many as a batch holds, and asks logits of
 * each run's newest token; the runs that catch up on their records and those that draft share the steps. A
 * failing step ends the drafts of the runs it carried. */
static void draft_runs(draft_run *runs, int32_t m) {
    tnd_spec *first = runs[0].sp;
    tnd_context *d = first->dctx;
    for (;;) {
        int32_t nb = 0, rows = 0;
        for (int32_t i = 0; i < m; i++) {
            draft_run *r = &runs[i];
            tnd_spec *sp = r->sp;
            r->catching_up = sp->n_drec < r->n;
            r->fed = 0;
            for (int32_t pos = sp->n_drec; !r->done && pos < r->n + r->c && nb < d->n_batch; pos++, nb++, r->fed++) {
                first->btok[nb] = pos < r->n ? r->rec[pos] : sp->draft[pos - r->n];
                first->bpos[nb] = pos;
                first->bseq[nb] = sp->p.draft_seq;
                first->blog[nb] = pos == r->n + r->c - 1;
                if (first->blog[nb]) r->row = rows++;
            }
        }
        if (!nb) return;
        double t0 = tnd_now_seconds();
        tnd_batch batch = {.n_tokens = nb, .tokens = first->btok, .pos = first->bpos, .seq_id = first->bseq,
                           .logits = first->blog};
        bool ok = tnd_context_decode(d, &batch) == TND_OK;
        double seconds = tnd_now_seconds() - t0;
        for (int32_t i = 0, at = 0; i < m; at += runs[i++].fed) {
            draft_run *r = &runs[i];
            tnd_spec *sp = r->sp;
            if (!r->fed) continue;
            if (!ok) {
                r->done = true;
                continue;
            }
            memcpy(sp->drec + sp->n_drec, first->btok + at, sizeof *sp->drec * (size_t)r->fed);
            sp->n_drec += r->fed;
            if (r->catching_up) r->catch_up_seconds += seconds;
            else r->draft_seconds += seconds, r->draft_steps++;
            if (r->row >= 0) take_next(r, tnd_context_logits(d, r->row));
            r->row = -1;
        }
    }
}

/* What the run's steps cost, for its controller: a catch-up of a token or two costs about a draft step; a longer
 * one (a probe after a while off) says little of one, and is kept apart; single-token draft steps say the most. */
static void draft_run_costs(const draft_run *r) {
    tnd_spec *sp = r->sp;
    if (r->behind <= 2) sp->step_seconds = r->catch_up_seconds;
    else
        sp->catch_up_token_seconds = sp->catch_up_token_seconds == 0
                                         ? r->catch_up_seconds / r->behind
                                         : sp->catch_up_token_seconds * (1 - DRAFT_COST_EMA) +
                                               r->catch_up_seconds / r->behind * DRAFT_COST_EMA;
    if (r->draft_steps) sp->step_seconds = r->draft_seconds / r->draft_steps;
}

/* The draft model's sessions among sps[first..n) that share the draft context of sps[first], drafted together (in
 * groups of DRAFT_GROUP); counts[] of those that cannot draft stay as they are (0). */
static void draft_models(tnd_spec *const *sps, const int32_t *const *recs, const int32_t *ns, const int32_t *ks,
                         int32_t n, int32_t first, int32_t *counts) {
    draft_run runs[DRAFT_GROUP];
    int32_t which[DRAFT_GROUP];
    for (int32_t i = first; i < n;) {
        int32_t m = 0;
        for (; i < n && m < DRAFT_GROUP; i++) {
            if (sps[i]->p.source != TND_DRAFT_MODEL || sps[i]->dctx != sps[first]->dctx) continue;
            if (draft_begin(&runs[m], sps[i], recs[i], ns[i], ks[i])) which[m++] = i;
        }
        if (m) draft_runs(runs, m);
        for (int32_t j = 0; j < m; j++) {
            draft_run_costs(&runs[j]);
            counts[which[j]] = runs[j].c;
        }
    }
}

/* Whether sps[i] is the first of the sessions in sps[0..n) that draft with its draft context. */
static bool first_of_its_model(tnd_spec *const *sps, int32_t i) {
    if (sps[i]->p.source != TND_DRAFT_MODEL) return false;
    for (int32_t j = 0; j < i; j++)
        if (sps[j]->p.source == TND_DRAFT_MODEL && sps[j]->dctx == sps[i]->dctx) return false;
    return true;
}

/* After a session's draft of c tokens that took `seconds` (its share of a batched draft: all of it): its
 * controller's figures, and the draft's length as the session takes it (0 where shorter than draft_min). */
static int32_t draft_done(tnd_spec *sp, int32_t c, double seconds) {
    if (sp->p.source == TND_DRAFT_NGRAM) sp->step_seconds = seconds / sp->n_requested; /* a lookup: per token */
    sp->stats.t_draft += seconds;
    sp->t_steps += seconds;
    sp->draft_pending += seconds;
    if (sp->probing) {
        sp->t_probes += seconds;
        sp->last_probe = seconds;
    }
    sp->probing = false;
    /* a draft of k tokens takes about k draft model steps (the catch-up of the last token or two, then k - 1
     * steps), so the cost of a drafted token is that of a draft step */
    if (sp->step_seconds > 0)
        sp->draft_token_seconds = sp->draft_token_seconds == 0
                                      ? sp->step_seconds
                                      : sp->draft_token_seconds * (1 - DRAFT_COST_EMA) + sp->step_seconds * DRAFT_COST_EMA;
    /* a step with a draft pays for it; so does one whose draft model ran for nothing (a lookup costs nothing) */
    sp->step_drafted = c >= sp->p.draft_min || sp->p.source == TND_DRAFT_MODEL;
    if (c >= sp->p.draft_min) return c;
    /* nothing to verify: a lookup without a match tells nothing about drafts, a draft model too unsure to draft
     * ended its chain at once */
    if (sp->p.source == TND_DRAFT_MODEL) tnd_spec_verified(sp, 0, 0, true);
    else tnd_spec_plain(sp);
    return 0;
}

void tnd_spec_draft_many(tnd_spec *const *sps, const int32_t *const *recs, const int32_t *ns, const int32_t *ks,
                         int32_t n, int32_t *counts) {
    for (int32_t i = 0; i < n; i++) {
        sps[i]->n_requested = ks[i];
        sps[i]->step_seconds = 0;
        counts[i] = 0;
    }
    double t0 = tnd_now_seconds();
    for (int32_t i = 0; i < n; i++) {
        if (first_of_its_model(sps, i)) draft_models(sps, recs, ns, ks, n, i, counts);
        if (sps[i]->p.source != TND_DRAFT_NGRAM) continue;
        double t_lookup = tnd_now_seconds();
        counts[i] = draft_ngram(sps[i], recs[i], ns[i], ks[i]);
        counts[i] = draft_done(sps[i], counts[i], tnd_now_seconds() - t_lookup);
    }
    double seconds = tnd_now_seconds() - t0; /* every draft model session waited for all of it */
    for (int32_t i = 0; i < n; i++)
        if (sps[i]->p.source == TND_DRAFT_MODEL) counts[i] = draft_done(sps[i], counts[i], seconds);
}

int32_t tnd_spec_draft(tnd_spec *sp, const int32_t *rec, int32_t n, int32_t k) {
    int32_t c = 0;
    tnd_spec_draft_many(&sp, &rec, &n, &k, 1, &c);
    return c;
}

const int32_t *tnd_spec_draft_tokens(const tnd_spec *sp) { return sp->draft; }
