/* generate.h: the text-generation loop shared by `tandem run` and `tandem chat`: options, a session (model,
 * context, tokenizer, sampler), evaluation of prompt tokens, and streaming generation with stop conditions. */
#ifndef TND_CLI_GENERATE_H
#define TND_CLI_GENERATE_H

#include "tandem.h"

#include <stdbool.h>
#include <stdio.h>

enum { CLI_MAX_STOPS = 16 };

typedef struct cli_gen_options {
    const char *model_path;
    int32_t n_predict;       /* tokens to generate; -1 = until end of generation or a full context */
    int32_t n_ctx;           /* 0 = the model's trained context */
    int32_t n_threads;       /* 0 = physical cores */
    int32_t n_batch;
    tnd_type kv_type;
    bool show_special;       /* print control tokens as text */
    bool ignore_eos;
    tnd_sampler_params sampling;
    const char *stops[CLI_MAX_STOPS];
    int32_t n_stops;
} cli_gen_options;

/* Defaults: 128 tokens, temperature 0.8, top-k 40, top-p 0.95, min-p 0.05, F16 KV cache. */
void cli_gen_defaults(cli_gen_options *o);

/* Parses the generation option argv[*i] (and its value). Returns 1 if it was one (advancing *i), 0 if argv[*i] is
 * not a generation option, -1 after printing an error. */
int cli_gen_parse(cli_gen_options *o, int argc, char **argv, int *i);

/* Usage lines of the generation options. */
void cli_gen_usage(FILE *f);

typedef struct cli_session {
    tnd_model *model;
    tnd_context *ctx;
    tnd_tokenizer *tok;
    tnd_sampler *sampler;
    tnd_detokenizer *det;
    tnd_stop_matcher *stops;
    int32_t *cached;         /* tokens in the KV cache, n_cached of them (for prefix reuse in chat) */
    int32_t n_cached, n_ctx, n_vocab;
    float *logits;           /* logits after the last evaluated token */
    double t_load;
    /* statistics of the last evaluate / generate */
    int32_t n_prompt, n_generated;
    double t_prompt, t_generate;
} cli_session;

/* The model's trained context from `<arch>.context_length` (readable before any context exists), or 0. */
int32_t cli_trained_context(const tnd_model *m);

/* Loads the model and creates everything; prints the error and returns false on failure. */
bool cli_session_open(cli_session *s, const cli_gen_options *o);
void cli_session_close(cli_session *s);

/* Makes the cache hold exactly `tokens`: keeps the longest common prefix with what it holds and evaluates the rest
 * (at least the last token, so that fresh logits exist). Prints the error and returns false on failure. */
bool cli_session_set_tokens(cli_session *s, const int32_t *tokens, int32_t n);

/* Generates up to o->n_predict tokens after the cached ones, writing text to `out` as it comes (and appending it to
 * *text when text is non-NULL: a malloc'ed string the caller frees). Stops at an end-of-generation token, a stop
 * string, n_predict or a full context. Returns false (after printing) on an error. */
bool cli_session_generate(cli_session *s, const cli_gen_options *o, FILE *out, char **text);

/* Prints load, prompt and generation speeds to stderr. */
void cli_session_report(const cli_session *s);

#endif
