/* generate.h: what `tandem run` and `tandem chat` share: the generation options and their parsing, and the set-up
 * of the model, context and library generation session (tnd_session), which runs the loop itself. */
#ifndef TND_CLI_GENERATE_H
#define TND_CLI_GENERATE_H

#include "cli_util.h"
#include "fallback.h"
#include "plan.h"
#include "speculate.h"
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
    cli_kv_types kv;
    bool show_special;       /* print control tokens as text */
    bool ignore_eos;
    tnd_sampler_params sampling;
    const char *stops[CLI_MAX_STOPS];
    int32_t n_stops;
    cli_plan_options plan;   /* --device, -ngl, --override-tensor, --plan */
    cli_spec_options spec;   /* --spec, --draft-model, ... */
    const char *grammar_path; /* --grammar FILE (GBNF) */
    const char *schema_path; /* --json-schema FILE */
    bool json;               /* --json: the output is a JSON object */
} cli_gen_options;

/* Defaults: 128 tokens, temperature 0.8, top-k 40, top-p 0.95, min-p 0.05, F16 KV cache. */
void cli_gen_defaults(cli_gen_options *o);

/* Parses the generation option argv[*i] (and its value). Returns 1 if it was one (advancing *i), 0 if argv[*i] is
 * not a generation option, -1 after printing an error. */
int cli_gen_parse(cli_gen_options *o, int argc, char **argv, int *i);

/* Usage lines of the generation options. */
void cli_gen_usage(FILE *f);

/* What `run` and `chat` hold: the model, one context, its tokenizer and a generation session over sequence 0. */
typedef struct cli_session {
    tnd_model *model;
    tnd_context *ctx;
    tnd_tokenizer *tok;
    tnd_session *session;
    cli_draft draft;         /* the draft model of --draft-model */
    tnd_grammar *grammar;    /* of --grammar or --json; NULL = none */
    cli_fallback fallback;   /* where a split with a cloud goes on when the link dies */
    int32_t *groups;         /* the plan's arrays (the fallback tries the plan again with them) */
    double t_load;
} cli_session;

/* Loads the model and creates everything; prints the error and returns false on failure. */
bool cli_session_open(cli_session *s, const cli_gen_options *o);
void cli_session_close(cli_session *s);

/* The session's generation parameters from the options (and the session's grammar), streaming the text to `out`.
 * keep_space: the text continues a prompt (keep the first piece's leading space). */
tnd_generate_params cli_generate_params(const cli_gen_options *o, const cli_session *s, FILE *out, bool keep_space);

/* Before a new request: where a device was lost a while ago, the session moves back to the plan's devices if they
 * answer again. */
void cli_session_try_plan(cli_session *s);

/* Runs the started generation to its end, going on here when the cloud link dies; prints the error and returns
 * false on failure. */
bool cli_session_generate(cli_session *s);

/* Prints load, prompt and generation speeds to stderr (and what speculation did). */
void cli_session_report(const cli_session *s);

#endif
