/* cli_util.h: small helpers shared by the subcommands: option values with range checks, opening a model and a
 * context with one-line error messages. */
#ifndef TND_CLI_UTIL_H
#define TND_CLI_UTIL_H

#include "tandem.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

/* Parse `value` of option `flag` as a whole number / number within [lo, hi]; print "tandem: FLAG ..." and return
 * false when it is not. */
bool cli_int(const char *flag, const char *value, long long lo, long long hi, long long *out);
bool cli_float(const char *flag, const char *value, double lo, double hi, double *out);

/* The value after option argv[*i] (advancing *i), or NULL with a message when it is missing. */
const char *cli_value(int argc, char **argv, int *i);

/* When argv[*i] is one of the n flags that take a value: 1 with *value set (advancing *i), or -1 after a message
 * when the value is missing; 0 when it is none of them. */
int cli_flag_value(const char *const *flags, size_t n, int argc, char **argv, int *i, const char **value);

/* Opens a model; prints "tandem: <error>" and returns NULL on failure. */
tnd_model *cli_open_model(const char *path);

/* Parses a KV cache type name (f16, f32, q8_0, q4_0). */
bool cli_kv_type(const char *value, tnd_type *out);

/* The KV cache types of a command: --kv-type (K and V), --cache-type-k / -ctk, --cache-type-v / -ctv. */
typedef struct cli_kv_types {
    tnd_type k, v;
} cli_kv_types;

void cli_kv_defaults(cli_kv_types *kv);
/* 1 if argv[*i] was a KV option (advancing *i), 0 if not, -1 after printing an error. */
int cli_kv_parse(cli_kv_types *kv, int argc, char **argv, int *i);
void cli_kv_usage(FILE *f);
void cli_kv_apply(const cli_kv_types *kv, tnd_context_params *p);

/* Bytes one K or V value takes in a cache of `type` (Q8_0 and Q4_0 count their block scales). */
double cli_kv_value_bytes(tnd_type type);

/* Prints "tandem: <what>: <last error>" to stderr. */
void cli_error(const char *what);

/* Progress printer for long model writes: "[ 12/201] blk.1.attn_q.weight" on stderr, one line updated in place. */
void cli_progress(void *user, const char *what, uint64_t done, uint64_t total);

/* Shows a context's loading (packing, uploading) with cli_progress where stderr is a terminal: a large model on a
 * GPU takes a while. */
void cli_load_progress(tnd_context_params *p);

/* Reads a whole file into a NUL-terminated malloc'ed buffer; prints the error and returns NULL on failure. */
char *cli_read_file(const char *path, size_t *len);

/* Monotonic seconds. */
double cli_now(void);

/* The context for a model when -c is not given: its trained context within [512, 4096] (small models often
 * under-state theirs; 4096 keeps the KV cache small on a device). */
int32_t cli_default_context(const tnd_model *m);

#endif
