/* session.c: the generation session: a token record over one sequence of a context, prefix reuse, batched steps of
 * prompt chunks and sampled tokens, the verification of drafted tokens, the stop conditions, the generated text,
 * and clone and rollback. */
#include "core/alloc.h"
#include "core/clock.h"
#include "core/error.h"
#include "runtime/context.h"
#include "runtime/sampler_state.h"
#include "text/grammar.h"
#include "text/tokenizer.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

/* The state of a session. The record holds the prompt, then the generated tokens; the KV cache of the sequence
 * holds the first n_kv of them. While a generation runs, the record is ahead of the cache: by the prompt tokens
 * not evaluated yet, or by the one token sampled last, which is evaluated at the next step together with the other
 * sessions' tokens. So every step does the same thing: evaluate tokens[n_kv, n_tokens) (a chunk of them while the
 * prompt is long), then, once the cache has caught up, sample the next token from the logits of the last one. */
struct tnd_session {
    tnd_context *ctx;
    const tnd_tokenizer *tok;
    tnd_allocator allocator;       /* the context's (its model's hooks) */
    int32_t seq, max_context, n_vocab;

    int32_t *tokens;               /* [max_context + 1]: the token sampled last is recorded before it is evaluated */
    int32_t n_tokens, n_prompt, n_kv;

    /* the generation: present while sampler != NULL */
    tnd_sampler *sampler;
    tnd_detokenizer *det;
    tnd_stop_matcher *stops;
    int32_t max_tokens;
    bool ignore_eog, speculate;
    tnd_text_fn on_text;
    void *user;
    uint64_t (*draws)[4];          /* [max_context + 1]: the sampler's random state before draw i of the generation */
    int32_t n_draws;
    char *text;                    /* [text_cap], NUL-terminated: the text shown so far */
    size_t text_len, text_cap;
    char *piece;                   /* [piece_cap]: the bytes one token decodes to */
    int32_t piece_cap;
    tnd_finish_reason finish;
    tnd_status failure;            /* the status that ended it with TND_FINISH_ERROR */
    char error[256];
    atomic_int cancel;
    tnd_session_stats stats;
    double t_start;

    tnd_spec *spec;                /* speculation: draft source and controller; NULL = none */

    /* a grammar: the generation's matcher (NULL = none), the vocabulary's trie (made at the first grammar, kept),
     * and the mask's scratch */
    g_matcher *grammar;
    g_vocab *grammar_vocab;
    uint8_t *allowed;              /* [n_vocab] */

    /* the last step */
    int32_t last_token;
    const float *last_logits;
    int32_t n_fed, fed_from, logits_row; /* tokens it fed, from which position, and the row of the first logits */
    int32_t n_draft;               /* of the tokens fed, drafted ones (they follow the pending token) */
};

static bool generating(const tnd_session *s) { return s->sampler && s->finish == TND_FINISH_NONE; }

static int32_t n_generated(const tnd_session *s) { return s->n_tokens - s->n_prompt; }

const char *tnd_finish_reason_name(tnd_finish_reason reason) {
    switch (reason) {
    case TND_FINISH_NONE: return "none";
    case TND_FINISH_EOG: return "eog";
    case TND_FINISH_STOP_STRING: return "stop_string";
    case TND_FINISH_LENGTH: return "length";
    case TND_FINISH_CONTEXT: return "context";
    case TND_FINISH_CANCELLED: return "cancelled";
    case TND_FINISH_ERROR: return "error";
    }
    return "unknown";
}

tnd_generate_params tnd_generate_default_params(void) {
    return (tnd_generate_params){.sampling = tnd_sampler_default_params(), .max_tokens = -1,
                                 .detokenize_flags = TND_DETOKENIZE_KEEP_SPACE};
}

/* ------------------------------------------------------------------------------------------------------------
 * Life cycle
 * ---------------------------------------------------------------------------------------------------------- */

/* Frees the objects of the generation; the record and the cache stay. */
static void drop_generation(tnd_session *s) {
    g_matcher_free(s->grammar);
    s->grammar = NULL;
    tnd_sampler_free(s->sampler);
    tnd_detokenizer_free(s->det);
    tnd_stop_matcher_free(s->stops);
    s->sampler = NULL;
    s->det = NULL;
    s->stops = NULL;
    s->finish = TND_FINISH_NONE;
    s->last_token = -1;
    s->last_logits = NULL;
}

/* A session with its arrays and no generation; the caller sets up the sequence. */
static tnd_status session_new(tnd_context *ctx, const tnd_tokenizer *tok, int32_t seq, int32_t max_context,
                              tnd_session **out) {
    tnd_session *s = tnd_alloc(&ctx->allocator, sizeof *s);
    if (!s) return tnd_fail(TND_ERR_OUT_OF_MEMORY, "session: out of memory");
    s->allocator = ctx->allocator;
    s->ctx = ctx;
    s->tok = tok;
    s->seq = seq;
    s->max_context = max_context;
    s->n_vocab = tnd_model_n_vocab(ctx->model);
    s->last_token = -1;
    atomic_init(&s->cancel, 0);
    size_t n = (size_t)max_context + 1;
    s->tokens = tnd_alloc_array(&s->allocator, n, sizeof *s->tokens);
    s->draws = tnd_alloc_array(&s->allocator, n, sizeof *s->draws);
    s->text = tnd_alloc(&s->allocator, s->text_cap = 256);
    s->piece = tnd_alloc(&s->allocator, (size_t)(s->piece_cap = 256));
    if (!s->tokens || !s->draws || !s->text || !s->piece) {
        tnd_session_free(s);
        return tnd_fail(TND_ERR_OUT_OF_MEMORY, "session: out of memory for a context of %d tokens", max_context);
    }
    *out = s;
    return TND_OK;
}

tnd_status tnd_session_init(tnd_context *ctx, const tnd_tokenizer *tok, int32_t seq, int32_t max_context,
                            tnd_session **out) {
    if (out) *out = NULL;
    if (!ctx || !tok || !out) return tnd_fail(TND_ERR_INVALID_ARGUMENT, "tnd_session_init: NULL context, tokenizer or out");
    if (seq < 0 || seq >= ctx->n_seq)
        return tnd_fail(TND_ERR_INVALID_ARGUMENT, "tnd_session_init: sequence %d is outside [0, %d)", seq, ctx->n_seq);
    if (max_context < 0 || max_context > ctx->n_ctx)
        return tnd_fail(TND_ERR_INVALID_ARGUMENT, "tnd_session_init: max_context %d is outside [0, n_ctx %d]",
                        max_context, ctx->n_ctx);
    if (tnd_tokenizer_n_vocab(tok) != tnd_model_n_vocab(ctx->model))
        return tnd_fail(TND_ERR_INVALID_ARGUMENT, "tnd_session_init: the tokenizer has %d tokens, the model %d",
                        tnd_tokenizer_n_vocab(tok), tnd_model_n_vocab(ctx->model));
    tnd_status st = session_new(ctx, tok, seq, max_context ? max_context : ctx->n_ctx, out);
    if (!st) tnd_context_seq_truncate(ctx, seq, 0);
    return st;
}

void tnd_session_free(tnd_session *s) {
    if (!s) return;
    if (s->tokens) tnd_context_seq_truncate(s->ctx, s->seq, 0);
    drop_generation(s);
    tnd_spec_free(s->spec);
    g_vocab_free(s->grammar_vocab);
    tnd_allocator a = s->allocator;
    tnd_free(&a, s->allowed);
    tnd_free(&a, s->tokens);
    tnd_free(&a, s->draws);
    tnd_free(&a, s->text);
    tnd_free(&a, s->piece);
    tnd_free(&a, s);
}

void tnd_session_clear(tnd_session *s) {
    if (!s) return;
    drop_generation(s);
    tnd_context_seq_truncate(s->ctx, s->seq, 0);
    s->n_tokens = s->n_prompt = s->n_kv = 0;
    s->text_len = 0;
    s->text[0] = 0;
}

/* ------------------------------------------------------------------------------------------------------------
 * The prompt and prefix reuse
 * ---------------------------------------------------------------------------------------------------------- */

tnd_status tnd_session_move(tnd_session *s, tnd_context *ctx, int32_t seq) {
    if (!s || !ctx || ctx == s->ctx)
        return tnd_fail(TND_ERR_INVALID_ARGUMENT, "tnd_session_move: NULL, or the session's own context");
    if (seq < 0 || seq >= ctx->n_seq)
        return tnd_fail(TND_ERR_INVALID_ARGUMENT, "tnd_session_move: sequence %d is outside [0, %d)", seq, ctx->n_seq);
    if (tnd_model_n_vocab(ctx->model) != s->n_vocab)
        return tnd_fail(TND_ERR_INVALID_ARGUMENT, "tnd_session_move: the new context's model has %d tokens, the "
                        "session's %d", tnd_model_n_vocab(ctx->model), s->n_vocab);
    if (s->n_tokens > ctx->n_ctx)
        return tnd_fail(TND_ERR_INVALID_ARGUMENT, "tnd_session_move: the record has %d tokens; the new context holds "
                        "%d", s->n_tokens, ctx->n_ctx);
    /* rows the new sequence holds of the record stay (a context that followed the conversation); the last token is
     * evaluated again for its logits */
    int32_t keep = tnd_context_seq_cached_prefix(ctx, seq, s->tokens, s->n_tokens - 1);
    tnd_status st = tnd_context_seq_truncate(ctx, seq, keep);
    if (st) return st;
    tnd_context_seq_truncate(s->ctx, s->seq, 0);
    s->ctx = ctx;
    s->seq = seq;
    if (s->max_context > ctx->n_ctx) s->max_context = ctx->n_ctx;
    s->n_kv = keep;
    s->last_logits = NULL;
    return TND_OK;
}

int32_t tnd_session_cached_prefix(const tnd_session *s, const int32_t *tokens, int32_t n) {
    if (!s || !tokens) return 0;
    int32_t limit = n < s->n_kv ? n : s->n_kv, i = 0;
    while (i < limit && s->tokens[i] == tokens[i]) i++;
    return i;
}

tnd_status tnd_session_adopt_cache(tnd_session *dst, const tnd_session *src) {
    if (!dst || !src || dst == src || dst->ctx != src->ctx)
        return tnd_fail(TND_ERR_INVALID_ARGUMENT, "tnd_session_adopt_cache: two different sessions of one context");
    tnd_session_clear(dst);
    int32_t n = src->n_kv < dst->max_context ? src->n_kv : dst->max_context;
    tnd_status st = tnd_context_seq_fork(dst->ctx, src->seq, dst->seq);
    if (!st) st = tnd_context_seq_truncate(dst->ctx, dst->seq, n);
    if (st) {
        tnd_context_seq_truncate(dst->ctx, dst->seq, 0);
        return st;
    }
    memcpy(dst->tokens, src->tokens, sizeof *dst->tokens * (size_t)n);
    dst->n_tokens = dst->n_kv = n;
    return TND_OK;
}

/* The matcher of a generation's grammar; the vocabulary's trie is made at the session's first grammar. */
static tnd_status new_matcher(tnd_session *s, const tnd_generate_params *p, g_matcher **out) {
    tnd_status st = TND_OK;
    if (!s->grammar_vocab) st = g_vocab_init(s->tok, &s->allocator, &s->grammar_vocab);
    if (!st && !s->allowed && !(s->allowed = tnd_alloc(&s->allocator, (size_t)s->n_vocab)))
        st = tnd_fail(TND_ERR_OUT_OF_MEMORY, "grammar: out of memory");
    /* the grammar sees the text as shown: without the space prefix the detokenizer removes */
    if (!st) st = g_matcher_init(p->grammar, s->grammar_vocab, tnd_detok_strips_space(s->tok, p->detokenize_flags),
                                 &s->allocator, out);
    return st;
}

/* Sets up the sampler, detokenizer, stop matcher and grammar of a new generation; nothing changes on failure. */
static tnd_status new_generation(tnd_session *s, const tnd_generate_params *p) {
    tnd_sampler *sampler = NULL;
    tnd_detokenizer *det = NULL;
    tnd_stop_matcher *stops = NULL;
    g_matcher *grammar = NULL;
    tnd_sampler_params sp = p->sampling;
    if (!sp.allocator.alloc && !sp.allocator.free) sp.allocator = s->allocator; /* the context's hooks by default */
    tnd_status st = tnd_sampler_init(&sp, s->n_vocab, &sampler);
    if (!st) st = tnd_detokenizer_init(s->tok, p->detokenize_flags, &det);
    if (!st) st = tnd_stop_matcher_init(p->stops, p->stop_lens, p->n_stops, 1, &stops);
    if (!st && p->grammar) st = new_matcher(s, p, &grammar);
    if (st) {
        tnd_sampler_free(sampler);
        tnd_detokenizer_free(det);
        tnd_stop_matcher_free(stops);
        return st;
    }
    drop_generation(s);
    s->sampler = sampler;
    s->det = det;
    s->stops = stops;
    s->grammar = grammar;
    s->max_tokens = p->max_tokens;
    s->ignore_eog = p->ignore_eog != 0;
    s->speculate = !p->no_speculation;
    s->on_text = p->on_text;
    s->user = p->user;
    return TND_OK;
}

tnd_status tnd_session_start(tnd_session *s, const tnd_generate_params *p, const int32_t *prompt, int32_t n) {
    if (!s || !p || !prompt) return tnd_fail(TND_ERR_INVALID_ARGUMENT, "tnd_session_start: NULL session, params or prompt");
    if (n < 1 || n > s->max_context)
        return tnd_fail(TND_ERR_INVALID_ARGUMENT, "the prompt has %d tokens; a session takes 1 to %d (its context)", n,
                        s->max_context);
    if (p->max_tokens < -1)
        return tnd_fail(TND_ERR_INVALID_ARGUMENT, "max_tokens %d: use -1 for no budget", p->max_tokens);
    for (int32_t i = 0; i < n; i++)
        if (prompt[i] < 0 || prompt[i] >= s->n_vocab)
            return tnd_fail(TND_ERR_INVALID_ARGUMENT, "prompt token %d (at %d) is outside [0, %d)", prompt[i], i,
                            s->n_vocab);
    tnd_status st = new_generation(s, p);
    if (st) return st;
    int32_t keep = tnd_session_cached_prefix(s, prompt, n);
    if (keep > n - 1) keep = n - 1; /* the last token is evaluated again for its logits */
    if (keep < s->n_kv && tnd_context_seq_truncate(s->ctx, s->seq, keep) != TND_OK) {
        tnd_context_seq_truncate(s->ctx, s->seq, 0);
        keep = 0;
    }
    memcpy(s->tokens, prompt, sizeof *prompt * (size_t)n);
    s->n_tokens = s->n_prompt = n;
    s->n_kv = keep;
    s->n_draws = 0;
    s->text_len = 0;
    s->text[0] = 0;
    s->failure = TND_OK;
    s->error[0] = 0;
    atomic_store(&s->cancel, 0);
    s->stats = (tnd_session_stats){.n_prompt = n, .n_reused = keep};
    s->t_start = tnd_now_seconds();
    return TND_OK;
}

tnd_status tnd_session_start_chat(tnd_session *s, const tnd_generate_params *p, const char *template_name,
                                  const tnd_chat_message *messages, size_t n_messages, uint32_t flags) {
    if (!s) return tnd_fail(TND_ERR_INVALID_ARGUMENT, "tnd_session_start_chat: session is NULL");
    if (flags & ~TND_CHAT_CONTENT_SPECIAL)
        return tnd_fail(TND_ERR_INVALID_ARGUMENT, "tnd_session_start_chat: unknown flags 0x%x", flags);
    /* the text the format writes for eos_token is the vocabulary entry of the model's EOS token */
    int32_t eos = tnd_tokenizer_special(s->tok, TND_TOKEN_EOS);
    size_t eos_len = 0;
    const char *eos_piece = eos >= 0 ? tnd_tokenizer_token_text(s->tok, eos, &eos_len) : NULL;
    char eos_text[128] = "";
    if (eos_piece && eos_len < sizeof eos_text) memcpy(eos_text, eos_piece, eos_len);
    const char *eos_arg = eos_text[0] ? eos_text : NULL;
    flags |= TND_TOKENIZE_ADD_SPECIAL;
    int32_t n = tnd_chat_encode(s->tok, template_name, messages, n_messages, 1, eos_arg, flags, NULL, 0);
    if (n == TND_TOKENIZE_ERROR) {
        char message[512];
        snprintf(message, sizeof message, "%s", tnd_last_error());
        return tnd_fail(TND_ERR_INVALID_ARGUMENT, "%s", message);
    }
    n = n < 0 ? -n : n;
    if (n > s->max_context)
        return tnd_fail(TND_ERR_INVALID_ARGUMENT, "the conversation has %d tokens; the session's context holds %d", n,
                        s->max_context);
    int32_t *prompt = tnd_alloc_array(&s->allocator, (size_t)n + 1, sizeof *prompt);
    if (!prompt) return tnd_fail(TND_ERR_OUT_OF_MEMORY, "out of memory for a conversation of %d tokens", n);
    tnd_status st = TND_ERR_INTERNAL;
    if (tnd_chat_encode(s->tok, template_name, messages, n_messages, 1, eos_arg, flags, prompt, n) == n)
        st = tnd_session_start(s, p, prompt, n);
    else tnd_fail(st, "the conversation encoded to another length the second time");
    tnd_free(&s->allocator, prompt);
    return st;
}

/* ------------------------------------------------------------------------------------------------------------
 * Text and the end of a generation
 * ---------------------------------------------------------------------------------------------------------- */

/* Ends the generation with an error; the first message stays. */
static void fail_generation(tnd_session *s, tnd_status status, const char *what) {
    if (s->finish == TND_FINISH_ERROR) return;
    s->finish = TND_FINISH_ERROR;
    s->failure = status;
    snprintf(s->error, sizeof s->error, "%s", what);
}

/* Passes decoded bytes through the stop matcher and appends what is safe to show to the text (and to on_text when
 * `live`). Returns the index of a stop string that was hit, -1 for none, or -2 after an allocation failure. */
static int32_t show(tnd_session *s, const char *bytes, size_t len, bool live) {
    const char *out = NULL;
    size_t out_len = 0;
    int32_t hit = -1;
    if (tnd_stop_matcher_feed(s->stops, bytes, len, &out, &out_len, &hit) != TND_OK) return -2;
    if (out_len > s->text_cap - 1 - s->text_len) {
        size_t cap = s->text_cap;
        while (cap - 1 - s->text_len < out_len) cap *= 2;
        char *grown = tnd_alloc(&s->allocator, cap);
        if (!grown) return -2;
        memcpy(grown, s->text, s->text_len);
        tnd_free(&s->allocator, s->text);
        s->text = grown;
        s->text_cap = cap;
    }
    if (!out_len) return hit;
    memcpy(s->text + s->text_len, out, out_len);
    s->text_len += out_len;
    s->text[s->text_len] = 0;
    if (live && s->on_text) s->on_text(s->user, out, out_len);
    return hit;
}

/* Decodes a generated token and shows its text; returns as show(). */
static int32_t show_token(tnd_session *s, int32_t token, bool live) {
    int32_t n = tnd_detokenizer_push(s->det, token, s->piece, s->piece_cap);
    if (n < 0 && n != TND_TOKENIZE_ERROR) { /* a piece longer than the buffer */
        char *grown = tnd_alloc(&s->allocator, (size_t)-n);
        if (!grown) return -2;
        tnd_free(&s->allocator, s->piece);
        s->piece = grown;
        s->piece_cap = -n;
        n = tnd_detokenizer_push(s->det, token, s->piece, s->piece_cap);
    }
    return n < 0 ? -2 : show(s, s->piece, (size_t)n, live);
}

/* Ends the generation with `reason`. Ends that keep the text show what the detokenizer and the stop matcher still
 * hold back: the start of a character that never completed, text that did not become a stop string. */
static void end_generation(tnd_session *s, tnd_finish_reason reason) {
    if (reason != TND_FINISH_CANCELLED) {
        char tail[4];
        int32_t n = tnd_detokenizer_finish(s->det, tail, (int32_t)sizeof tail);
        const char *rest = NULL;
        size_t rest_len = 0;
        if (n < 0 || show(s, tail, (size_t)n, true) == -2 ||
            tnd_stop_matcher_flush(s->stops, &rest, &rest_len) != TND_OK || show(s, rest, rest_len, true) == -2) {
            fail_generation(s, TND_ERR_OUT_OF_MEMORY, "out of memory for the generated text");
            return;
        }
    }
    s->finish = reason;
}

tnd_status tnd_session_end(tnd_session *s, tnd_finish_reason reason) {
    if (!s || (reason != TND_FINISH_LENGTH && reason != TND_FINISH_CANCELLED))
        return tnd_fail(TND_ERR_INVALID_ARGUMENT, "tnd_session_end: NULL session, or a reason other than length or "
                                                  "cancelled");
    if (generating(s)) end_generation(s, reason);
    return TND_OK;
}

void tnd_session_cancel(tnd_session *s) {
    if (s) atomic_store(&s->cancel, 1);
}

/* Samples the next token from `logits` (the session's cache has caught up with its record) and decides whether
 * the generation goes on. The random state before the draw is kept for rollback. */
static bool grammar_allows(void *user, int32_t token) {
    tnd_session *s = user;
    bool eog = tnd_tokenizer_is_eog(s->tok, token);
    return (!eog || !s->ignore_eog) && g_matcher_allows(s->grammar, token, eog);
}

static bool grammar_mask(void *user, uint8_t *allowed) {
    tnd_session *s = user;
    return g_matcher_mask(s->grammar, !s->ignore_eog, allowed);
}

static void sample(tnd_session *s, const float *logits) {
    int32_t g = n_generated(s);
    tnd_sampler_rng_save(s->sampler, s->draws[g]);
    s->n_draws = g + 1;
    int32_t token = -1;
    tnd_sample_filter grammar = {grammar_allows, grammar_mask, s, s->allowed};
    tnd_status st = s->grammar ? tnd_sampler_sample_filtered(s->sampler, logits, &grammar, &token)
                               : tnd_sampler_sample(s->sampler, logits, &token);
    if (st != TND_OK) {
        char message[256];
        snprintf(message, sizeof message, "sampling failed: %s", tnd_last_error());
        fail_generation(s, TND_ERR_INVALID_ARGUMENT, message);
        return;
    }
    s->last_logits = logits;
    if (s->stats.t_first_token == 0) s->stats.t_first_token = tnd_now_seconds() - s->t_start;
    if (!s->ignore_eog && tnd_tokenizer_is_eog(s->tok, token)) {
        end_generation(s, TND_FINISH_EOG);
        return;
    }
    tnd_sampler_accept(s->sampler, token);
    s->tokens[s->n_tokens++] = token;
    s->last_token = token;
    s->stats.n_generated = n_generated(s);
    if (s->grammar && !g_matcher_accept(s->grammar, token)) { /* it was allowed: only memory can fail here */
        fail_generation(s, TND_ERR_OUT_OF_MEMORY, "grammar: out of memory following the text");
        return;
    }
    int32_t hit = show_token(s, token, true);
    if (hit == -2) {
        char message[256];
        snprintf(message, sizeof message, "decoding token %d failed: %s", token, tnd_last_error());
        fail_generation(s, TND_ERR_OUT_OF_MEMORY, message);
    } else if (hit >= 0) end_generation(s, TND_FINISH_STOP_STRING);
    else if (s->max_tokens >= 0 && s->stats.n_generated >= s->max_tokens) end_generation(s, TND_FINISH_LENGTH);
    else if (s->n_tokens > s->max_context) end_generation(s, TND_FINISH_CONTEXT);
    else if (s->grammar && !g_matcher_can_go_on(s->grammar)) end_generation(s, TND_FINISH_EOG); /* complete */
}

/* Brings the grammar's matcher to the generated tokens again (after a rollback, or in a clone). */
static bool replay_grammar(tnd_session *s) {
    if (!s->grammar) return true;
    bool ok = g_matcher_reset(s->grammar);
    for (int32_t i = s->n_prompt; ok && i < s->n_tokens; i++) ok = g_matcher_accept(s->grammar, s->tokens[i]);
    return ok;
}

/* ------------------------------------------------------------------------------------------------------------
 * Steps
 * ---------------------------------------------------------------------------------------------------------- */

static tnd_status check_sessions(tnd_session *const *ss, int32_t n) {
    if (!ss || n < 0) return tnd_fail(TND_ERR_INVALID_ARGUMENT, "tnd_session_step_many: NULL sessions or n < 0");
    for (int32_t i = 0; i < n; i++) {
        if (!ss[i]) return tnd_fail(TND_ERR_INVALID_ARGUMENT, "tnd_session_step_many: session %d is NULL", i);
        if (ss[i]->ctx != ss[0]->ctx)
            return tnd_fail(TND_ERR_INVALID_ARGUMENT, "tnd_session_step_many: sessions %d and 0 have different "
                                                      "contexts", i);
        for (int32_t j = 0; j < i; j++)
            if (ss[j]->seq == ss[i]->seq)
                return tnd_fail(TND_ERR_INVALID_ARGUMENT, "tnd_session_step_many: sessions %d and %d share sequence "
                                                          "%d", j, i, ss[i]->seq);
    }
    return TND_OK;
}

/* The step's batch: entries of token, position, sequence and whether its logits are wanted. */
typedef struct step_batch {
    int32_t *tokens, *pos, *seq;
    int8_t *logits;
    int32_t n, cap, rows;
} step_batch;

static void put(step_batch *b, int32_t token, int32_t pos, int32_t seq, bool logits) {
    b->tokens[b->n] = token;
    b->pos[b->n] = pos;
    b->seq[b->n] = seq;
    b->logits[b->n++] = logits;
    b->rows += logits;
}

/* Puts up to `room` of the session's tokens not yet in the cache into the batch; the one that catches up with the
 * record asks for logits, and so do the session's drafted tokens after it (n_draft of them: room was left). */
static void feed(step_batch *b, tnd_session *s, int32_t room) {
    int32_t n = s->n_tokens - s->n_kv < room ? s->n_tokens - s->n_kv : room;
    s->fed_from = s->n_kv;
    s->n_fed = n;
    for (int32_t i = 0; i < n; i++) {
        int32_t pos = s->n_kv + i;
        if (pos == s->n_tokens - 1) s->logits_row = b->rows;
        put(b, s->tokens[pos], pos, s->seq, pos == s->n_tokens - 1);
    }
    if (s->logits_row < 0 || !s->n_draft) return;
    const int32_t *draft = tnd_spec_draft_tokens(s->spec);
    for (int32_t i = 0; i < s->n_draft; i++) put(b, draft[i], s->n_tokens + i, s->seq, true);
    s->n_fed += s->n_draft;
}

static bool pending_one(const tnd_session *s) { return generating(s) && s->n_tokens - s->n_kv == 1; }

/* Sessions whose drafts are made together (tnd_spec_draft_many): those that draft with one draft model share its
 * steps. */
enum { DRAFT_AT_ONCE = 64 };
typedef struct draft_set {
    tnd_session *who[DRAFT_AT_ONCE];
    tnd_spec *spec[DRAFT_AT_ONCE];
    const int32_t *record[DRAFT_AT_ONCE];
    int32_t n_record[DRAFT_AT_ONCE], k[DRAFT_AT_ONCE], n;
} draft_set;

/* Drafts for the set's sessions and empties it; returns the tokens drafted. */
static int32_t draft_set_run(draft_set *set) {
    int32_t counts[DRAFT_AT_ONCE], drafted = 0;
    double t0 = tnd_now_seconds();
    tnd_spec_draft_many(set->spec, set->record, set->n_record, set->k, set->n, counts);
    double seconds = tnd_now_seconds() - t0; /* each session waited for all of it */
    for (int32_t i = 0; i < set->n; i++) {
        set->who[i]->n_draft = counts[i];
        set->who[i]->stats.t_generate += seconds;
        drafted += counts[i];
    }
    set->n = 0;
    return drafted;
}

/* Drafts for the generating sessions that speculate, each as long as its controller finds worth it in this step:
 * after the pending token of every generating session, in the room that n_batch, the session's context and its
 * token budget leave (each draft counted at the length asked for). Returns the drafted tokens in all. */
static int32_t draft_all(tnd_session *const *ss, int32_t n, int32_t cap) {
    tnd_context *ctx = ss[0]->ctx;
    int32_t n_streams = 0, asked = 0, drafted = 0;
    draft_set set = {.n = 0};
    for (int32_t i = 0; i < n; i++) n_streams += pending_one(ss[i]);
    for (int32_t i = 0; i < n; i++) {
        tnd_session *s = ss[i];
        s->n_draft = 0;
        if (!s->spec || !s->speculate || !pending_one(s)) continue;
        int32_t room = cap - n_streams - asked;
        if (room > s->max_context - s->n_tokens) room = s->max_context - s->n_tokens;
        if (s->max_tokens >= 0 && room > s->max_tokens - n_generated(s) - 1)
            room = s->max_tokens - n_generated(s) - 1;
        int32_t k = room > 0 ? tnd_spec_choose(s->spec, &ctx->step_cost, n_streams, n_streams + asked, room,
                                               s->n_tokens, n_generated(s))
                             : 0;
        if (!k) {
            tnd_spec_plain(s->spec);
            continue;
        }
        asked += k;
        set.who[set.n] = s;
        set.spec[set.n] = s->spec;
        set.record[set.n] = s->tokens;
        set.n_record[set.n] = s->n_tokens;
        set.k[set.n++] = k;
        if (set.n == DRAFT_AT_ONCE) drafted += draft_set_run(&set);
    }
    if (set.n) drafted += draft_set_run(&set);
    return drafted;
}

/* The step's batch: the one pending token of every generating session first (with its draft), then prompt chunks
 * in the caller's order. */
static void build_batch(step_batch *b, tnd_session *const *ss, int32_t n) {
    for (int32_t i = 0; i < n && b->n < b->cap; i++)
        if (pending_one(ss[i])) feed(b, ss[i], 1);
    for (int32_t i = 0; i < n && b->n < b->cap; i++)
        if (generating(ss[i]) && ss[i]->n_tokens - ss[i]->n_kv > 1) feed(b, ss[i], b->cap - b->n);
}

/* Samples over the rows of the pending token and of the drafted ones as the session would have token by token,
 * keeping drafted token i while it is what was sampled from row i; the first token sampled otherwise takes its
 * place, and the cache keeps only the accepted draft. */
static void verify(tnd_session *s, const tnd_context *ctx) {
    const int32_t *draft = tnd_spec_draft_tokens(s->spec);
    int32_t accepted = 0;
    bool rejected = false;
    for (int32_t i = 0; i <= s->n_draft && generating(s); i++) {
        int32_t before = s->n_tokens;
        sample(s, tnd_context_logits(ctx, s->logits_row + i));
        if (i == s->n_draft) break;
        bool took = s->n_tokens > before;
        if (!took || s->tokens[before] != draft[i]) {
            rejected = took || s->finish == TND_FINISH_EOG;
            break;
        }
        accepted++;
    }
    int32_t keep = s->fed_from + 1 + accepted;
    if (keep < s->n_kv) {
        tnd_context_seq_truncate(s->ctx, s->seq, keep);
        s->n_kv = keep;
    }
    tnd_spec_verified(s->spec, s->n_draft, accepted, rejected);
}

tnd_status tnd_session_step_many(tnd_session *const *ss, int32_t n, tnd_step_stats *stats) {
    if (stats) *stats = (tnd_step_stats){0};
    tnd_status st = check_sessions(ss, n);
    if (st || n == 0) return st;
    tnd_context *ctx = ss[0]->ctx;
    for (int32_t i = 0; i < n; i++) {
        tnd_session *s = ss[i];
        s->n_fed = s->n_draft = 0;
        s->logits_row = -1;
        s->last_token = -1;
        s->last_logits = NULL;
        if (generating(s) && atomic_exchange(&s->cancel, 0)) end_generation(s, TND_FINISH_CANCELLED);
    }
    /* the step's batch in the context's arrays for it (one thread uses a context at a time) */
    step_batch b = {ctx->step_tokens, ctx->step_pos, ctx->step_seq, ctx->step_logits, 0, ctx->n_batch, 0};
    bool drafts = draft_all(ss, n, b.cap) > 0;
    build_batch(&b, ss, n);
    if (!b.n) return TND_OK;
    int32_t n_prompt_tokens = 0;
    for (int32_t i = 0; i < n; i++) {
        const tnd_session *s = ss[i];
        int32_t end = s->n_kv + s->n_fed, prompt_end = s->n_prompt < end ? s->n_prompt : end;
        if (s->n_fed && prompt_end > s->n_kv) n_prompt_tokens += prompt_end - s->n_kv;
    }
    tnd_batch batch = {.n_tokens = b.n, .tokens = b.tokens, .pos = b.pos, .seq_id = b.seq, .logits = b.logits};
    double t0 = tnd_now_seconds();
    st = tnd_context_decode(ctx, &batch);
    if (st && drafts) { /* the drafts may be what did not fit (the KV cache is full): the step goes on without */
        b.n = b.rows = 0;
        for (int32_t i = 0; i < n; i++) {
            if (ss[i]->n_draft) tnd_spec_verified(ss[i]->spec, 0, 0, false);
            ss[i]->n_fed = ss[i]->n_draft = 0;
            ss[i]->logits_row = -1;
        }
        build_batch(&b, ss, n);
        batch.n_tokens = b.n;
        st = tnd_context_decode(ctx, &batch);
    }
    double seconds = tnd_now_seconds() - t0;
    if (st == TND_ERR_DEVICE_LOST) { /* the generations stay as before the step, to go on elsewhere */
        for (int32_t i = 0; i < n; i++) {
            if (ss[i]->n_draft) tnd_spec_verified(ss[i]->spec, 0, 0, false);
            ss[i]->n_fed = ss[i]->n_draft = 0;
        }
        return st;
    }
    if (st) {
        char message[256];
        snprintf(message, sizeof message, "forward step failed: %s", tnd_last_error());
        for (int32_t i = 0; i < n; i++)
            if (ss[i]->n_fed) fail_generation(ss[i], st, message);
        return tnd_fail(st, "%s", message);
    }
    /* decode and verification steps (logits for every token, as a draft's have) tell what a draft costs */
    if (b.rows == b.n) tnd_step_cost_add(&ctx->step_cost, b.n, seconds);
    int32_t generated = 0;
    for (int32_t i = 0; i < n; i++) {
        tnd_session *s = ss[i];
        if (!s->n_fed) continue;
        if (s->n_kv < s->n_prompt) s->stats.t_prompt += seconds;
        else s->stats.t_generate += seconds;
        bool generation_step = s->n_fed == 1 + s->n_draft && s->n_kv >= s->n_prompt;
        s->n_kv += s->n_fed;
        if (s->logits_row < 0) continue;
        int32_t before = s->stats.n_generated;
        if (s->n_draft) verify(s, ctx);
        else sample(s, tnd_context_logits(ctx, s->logits_row));
        generated += s->stats.n_generated - before;
        if (s->spec && generation_step) tnd_spec_step_done(s->spec, seconds, s->stats.n_generated - before);
    }
    if (stats) *stats = (tnd_step_stats){.n_prompt_tokens = n_prompt_tokens, .n_generated = generated,
                                         .seconds = seconds};
    return TND_OK;
}

tnd_status tnd_session_step(tnd_session *s) { return tnd_session_step_many(&s, 1, NULL); }

tnd_status tnd_session_generate(tnd_session *s) {
    if (!s || !s->sampler) return tnd_fail(TND_ERR_INVALID_ARGUMENT, "tnd_session_generate: no generation started");
    while (generating(s)) {
        tnd_status st = tnd_session_step(s);
        if (st) return st;
    }
    if (s->finish == TND_FINISH_ERROR) return tnd_fail(s->failure, "%s", s->error);
    return TND_OK;
}

/* ------------------------------------------------------------------------------------------------------------
 * Rollback and clone
 * ---------------------------------------------------------------------------------------------------------- */

tnd_status tnd_session_rollback(tnd_session *s, int32_t k) {
    if (!s || !s->sampler) return tnd_fail(TND_ERR_INVALID_ARGUMENT, "tnd_session_rollback: no generation started");
    if (k < 0 || k > n_generated(s))
        return tnd_fail(TND_ERR_INVALID_ARGUMENT, "tnd_session_rollback: %d tokens, but %d were generated", k,
                        n_generated(s));
    s->n_tokens -= k;
    int32_t g = n_generated(s);
    /* the last kept token is evaluated again: its logits are gone with the steps after it */
    if (s->n_kv > s->n_tokens - 1) {
        s->n_kv = s->n_tokens - 1;
        tnd_context_seq_truncate(s->ctx, s->seq, s->n_kv);
    }
    if (g < s->n_draws) {
        tnd_sampler_rng_restore(s->sampler, s->draws[g]);
        s->n_draws = g;
    }
    /* the penalty history is the window's tail of the generated tokens */
    tnd_sampler_forget_history(s->sampler);
    int32_t window = tnd_sampler_history_window(s->sampler);
    int32_t from = window > 0 && g > window ? s->n_tokens - window : s->n_prompt;
    for (int32_t i = from; i < s->n_tokens; i++) tnd_sampler_accept(s->sampler, s->tokens[i]);
    /* the detokenizer and the stop matcher are replayed from the start of the generation (cheap next to a step) */
    char discard[4];
    tnd_detokenizer_finish(s->det, discard, (int32_t)sizeof discard);
    tnd_stop_matcher_reset(s->stops);
    s->text_len = 0;
    s->text[0] = 0;
    s->finish = TND_FINISH_NONE;
    s->failure = TND_OK;
    s->error[0] = 0;
    s->last_token = -1;
    s->last_logits = NULL;
    s->stats.n_generated = g;
    for (int32_t i = s->n_prompt; i < s->n_tokens; i++) {
        int32_t hit = show_token(s, s->tokens[i], false);
        if (hit == -2) {
            fail_generation(s, TND_ERR_OUT_OF_MEMORY, "out of memory replaying the generated text");
            return tnd_fail(TND_ERR_OUT_OF_MEMORY, "tnd_session_rollback: out of memory replaying the text");
        }
        if (hit >= 0) s->finish = TND_FINISH_STOP_STRING; /* only the last token can complete a stop string */
    }
    if (!replay_grammar(s)) {
        fail_generation(s, TND_ERR_OUT_OF_MEMORY, "out of memory replaying the grammar");
        return tnd_fail(TND_ERR_OUT_OF_MEMORY, "tnd_session_rollback: out of memory replaying the grammar");
    }
    if (s->grammar && s->finish == TND_FINISH_NONE && s->n_tokens > s->n_prompt && !g_matcher_can_go_on(s->grammar))
        s->finish = TND_FINISH_EOG;
    return TND_OK;
}

tnd_status tnd_session_clone(const tnd_session *src, int32_t seq, tnd_session **out) {
    if (out) *out = NULL;
    if (!src || !out) return tnd_fail(TND_ERR_INVALID_ARGUMENT, "tnd_session_clone: NULL session or out");
    if (seq < 0 || seq >= src->ctx->n_seq || seq == src->seq)
        return tnd_fail(TND_ERR_INVALID_ARGUMENT, "tnd_session_clone: sequence %d is outside [0, %d) or the source's",
                        seq, src->ctx->n_seq);
    tnd_session *s = NULL;
    tnd_status st = session_new(src->ctx, src->tok, seq, src->max_context, &s);
    if (st) return st;
    if (src->sampler) {
        st = tnd_sampler_clone(src->sampler, &s->sampler);
        if (!st) st = tnd_detokenizer_clone(src->det, &s->det);
        if (!st) st = tnd_stop_matcher_clone(src->stops, &s->stops);
    }
    if (!st && src->grammar) {
        s->grammar_vocab = g_vocab_retain(src->grammar_vocab);
        if (!(s->allowed = tnd_alloc(&s->allocator, (size_t)s->n_vocab)))
            st = tnd_fail(TND_ERR_OUT_OF_MEMORY, "tnd_session_clone: out of memory");
        if (!st) st = g_matcher_clone(src->grammar, &s->grammar);
    }
    if (!st && src->text_cap > s->text_cap) {
        tnd_free(&s->allocator, s->text);
        if (!(s->text = tnd_alloc(&s->allocator, s->text_cap = src->text_cap)))
            st = tnd_fail(TND_ERR_OUT_OF_MEMORY, "tnd_session_clone: out of memory for the text");
    }
    if (!st) st = tnd_context_seq_fork(src->ctx, src->seq, seq);
    if (st) {
        tnd_session_free(s);
        return st;
    }
    size_t n = (size_t)src->max_context + 1;
    memcpy(s->tokens, src->tokens, n * sizeof *s->tokens);
    memcpy(s->draws, src->draws, n * sizeof *s->draws);
    memcpy(s->text, src->text, src->text_len + 1);
    s->text_len = src->text_len;
    s->n_tokens = src->n_tokens;
    s->n_prompt = src->n_prompt;
    s->n_kv = src->n_kv;
    s->max_tokens = src->max_tokens;
    s->ignore_eog = src->ignore_eog;
    s->speculate = src->speculate;
    s->on_text = src->on_text;
    s->user = src->user;
    s->n_draws = src->n_draws;
    s->finish = src->finish;
    s->failure = src->failure;
    memcpy(s->error, src->error, sizeof s->error);
    s->stats = src->stats;
    s->t_start = src->t_start;
    s->last_token = src->last_token;
    s->last_logits = src->last_logits;
    *out = s;
    return TND_OK;
}

/* ------------------------------------------------------------------------------------------------------------
 * Speculation
 * ---------------------------------------------------------------------------------------------------------- */

tnd_status tnd_session_set_speculation(tnd_session *s, const tnd_speculation_params *p) {
    if (!s) return tnd_fail(TND_ERR_INVALID_ARGUMENT, "tnd_session_set_speculation: session is NULL");
    tnd_spec *spec = NULL;
    if (p && p->source != TND_DRAFT_NONE) {
        tnd_status st = tnd_spec_init(p, s->ctx, s->tok, &s->allocator, &spec);
        if (st) return st;
    }
    tnd_spec_free(s->spec);
    s->spec = spec;
    return TND_OK;
}

void tnd_session_speculation_stats(const tnd_session *s, tnd_speculation_stats *out) {
    if (!out) return;
    *out = (tnd_speculation_stats){0};
    if (s && s->spec) tnd_spec_stats(s->spec, &s->ctx->step_cost, out);
}

/* ------------------------------------------------------------------------------------------------------------
 * Accessors
 * ---------------------------------------------------------------------------------------------------------- */

tnd_finish_reason tnd_session_finish_reason(const tnd_session *s) { return s ? s->finish : TND_FINISH_NONE; }

const char *tnd_session_error(const tnd_session *s) { return s && s->finish == TND_FINISH_ERROR ? s->error : ""; }

const char *tnd_session_text(const tnd_session *s, size_t *len) {
    if (len) *len = s ? s->text_len : 0;
    return s ? s->text : "";
}

int32_t tnd_session_last_token(const tnd_session *s) { return s ? s->last_token : -1; }

const float *tnd_session_logits(const tnd_session *s) { return s ? s->last_logits : NULL; }

const int32_t *tnd_session_tokens(const tnd_session *s, int32_t *n) {
    if (n) *n = s ? s->n_tokens : 0;
    return s ? s->tokens : NULL;
}

void tnd_session_stats_get(const tnd_session *s, tnd_session_stats *out) {
    if (out) *out = s ? s->stats : (tnd_session_stats){0};
}
