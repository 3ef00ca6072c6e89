/* speculate.h: the speculative decoding options of the commands that generate (--spec, --draft-model, ...), the
 * draft model they load, and the line that reports what speculation did. */
#ifndef TND_CLI_SPECULATE_H
#define TND_CLI_SPECULATE_H

#include "tandem.h"

#include <stdbool.h>
#include <stdio.h>

typedef struct cli_spec_options {
    tnd_speculation_params params; /* source NONE unless --spec or --draft-model */
    const char *draft_path;        /* --draft-model FILE */
} cli_spec_options;

void cli_spec_defaults(cli_spec_options *o);

/* Parses the speculation option argv[*i] (and its value): 1 if it was one (advancing *i), 0 if not, -1 after
 * printing an error. */
int cli_spec_parse(cli_spec_options *o, int argc, char **argv, int *i);

/* Usage lines of the speculation options. */
void cli_spec_usage(FILE *f);

/* The draft model and its context, when --draft-model is given. */
typedef struct cli_draft {
    tnd_model *model;
    tnd_context *ctx;
} cli_draft;

/* Opens the draft model with a context like `target` (n_ctx, n_batch, threads, kernels) for n_seq sequences, when
 * the options ask for one; prints the error and returns false on failure. */
bool cli_draft_open(const cli_spec_options *o, const tnd_context_params *target, int32_t n_seq, cli_draft *d);
void cli_draft_close(cli_draft *d);

/* Gives the session the options' speculation (none: it stops speculating), drafting on sequence draft_seq of d's
 * context; prints the error and returns false on failure (a draft model of another vocabulary, say). */
bool cli_spec_apply(const cli_spec_options *o, cli_draft *d, tnd_session *session, int32_t draft_seq);

/* `tandem bench --spec ...`: n_gen greedy tokens after the prompt, reps times with and without speculation,
 * alternating; prints the medians and the speculation figures (JSON with json). Returns the exit code. */
int cli_bench_speculation(const char *model_path, const cli_spec_options *spec, const char *prompt_text,
                          int32_t n_gen, int32_t n_threads, int32_t reps, bool json);

/* Prints one line of what speculation did in the session to f (nothing when it does not speculate). */
void cli_spec_report(FILE *f, const tnd_session *session);

#endif
