/* cli_util.c: option parsing and error printing for the subcommands. */
#include "cli_util.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

bool cli_int(const char *flag, const char *value, long long lo, long long hi, long long *out) {
    char *end = NULL;
    errno = 0;
    long long v = value ? strtoll(value, &end, 10) : 0;
    if (!value || errno || end == value || *end || v < lo || v > hi) {
        fprintf(stderr, "tandem: %s expects a whole number in [%lld, %lld], got '%s'\n", flag, lo, hi,
                value ? value : "");
        return false;
    }
    *out = v;
    return true;
}

bool cli_float(const char *flag, const char *value, double lo, double hi, double *out) {
    char *end = NULL;
    errno = 0;
    double v = value ? strtod(value, &end) : 0;
    if (!value || errno || end == value || *end || !isfinite(v) || v < lo || v > hi) {
        fprintf(stderr, "tandem: %s expects a number in [%g, %g], got '%s'\n", flag, lo, hi, value ? value : "");
        return false;
    }
    *out = v;
    return true;
}

int cli_flag_value(const char *const *flags, size_t n, int argc, char **argv, int *i, const char **value) {
    size_t k = 0;
    while (k < n && strcmp(argv[*i], flags[k])) k++;
    if (k == n) return 0;
    return (*value = cli_value(argc, argv, i)) ? 1 : -1;
}

const char *cli_value(int argc, char **argv, int *i) {
    if (*i + 1 >= argc) {
        fprintf(stderr, "tandem: option %s needs a value\n", argv[*i]);
        return NULL;
    }
    return argv[++*i];
}

bool cli_kv_type(const char *value, tnd_type *out) {
    static const struct { const char *name; tnd_type type; } kinds[] = {
        {"f16", TND_TYPE_F16}, {"f32", TND_TYPE_F32}, {"q8_0", TND_TYPE_Q8_0}, {"q4_0", TND_TYPE_Q4_0}};
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        if (!strcmp(value, kinds[i].name)) {
            *out = kinds[i].type;
            return true;
        }
    }
    fprintf(stderr, "tandem: KV cache type must be f16, f32, q8_0 or q4_0, got '%s'\n", value);
    return false;
}

void cli_kv_defaults(cli_kv_types *kv) { kv->k = kv->v = TND_TYPE_F16; }

int cli_kv_parse(cli_kv_types *kv, int argc, char **argv, int *i) {
    const char *a = argv[*i];
    bool both = !strcmp(a, "--kv-type"), k = !strcmp(a, "--cache-type-k") || !strcmp(a, "-ctk"),
         v = !strcmp(a, "--cache-type-v") || !strcmp(a, "-ctv");
    if (!both && !k && !v) return 0;
    const char *value = cli_value(argc, argv, i);
    tnd_type t = TND_TYPE_F16;
    if (!value || !cli_kv_type(value, &t)) return -1;
    if (both || k) kv->k = t;
    if (both || v) kv->v = t;
    return 1;
}

void cli_kv_usage(FILE *f) {
    fprintf(f, "  --kv-type T         KV cache type of K and V: f16 (default), f32, q8_0, q4_0\n"
               "  --cache-type-k T, -ctk T / --cache-type-v T, -ctv T   the K or the V cache alone\n");
}

double cli_kv_value_bytes(tnd_type type) {
    return type == TND_TYPE_F32 ? 4.0 : type == TND_TYPE_Q8_0 ? 34.0 / 32.0 : type == TND_TYPE_Q4_0 ? 18.0 / 32.0 : 2.0;
}

void cli_kv_apply(const cli_kv_types *kv, tnd_context_params *p) {
    p->kv_type = kv->k;
    p->k_type = kv->k;
    p->v_type = kv->v;
}

void cli_error(const char *what) { fprintf(stderr, "tandem: %s: %s\n", what, tnd_last_error()); }

tnd_model *cli_open_model(const char *path) {
    tnd_model *m = NULL;
    if (tnd_model_open(path, NULL, &m) != TND_OK) {
        fprintf(stderr, "tandem: %s\n", tnd_last_error());
        return NULL;
    }
    return m;
}

double cli_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void cli_load_progress(tnd_context_params *p) {
    if (isatty(STDERR_FILENO)) p->progress = cli_progress;
}

void cli_progress(void *user, const char *what, uint64_t done, uint64_t total) {
    (void)user;
    if (!isatty(STDERR_FILENO)) { /* logs get one line per tenth, not a carriage-return animation */
        if (total && (done * 10 / total != (done - 1) * 10 / total || done == total))
            fprintf(stderr, "[%4llu/%4llu] %s\n", (unsigned long long)done, (unsigned long long)total, what);
        return;
    }
    fprintf(stderr, "\r[%4llu/%4llu] %-40.40s", (unsigned long long)done, (unsigned long long)total, what);
    if (done == total) fputc('\n', stderr);
}

char *cli_read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "tandem: cannot open %s\n", path);
        return NULL;
    }
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        n += fread(buf + n, 1, cap - 1 - n, f);
        if (n < cap - 1) break;
        char *bigger = realloc(buf, cap * 2);
        if (!bigger) {
            free(buf);
            buf = NULL;
        } else {
            buf = bigger;
            cap *= 2;
        }
    }
    bool bad = ferror(f);
    fclose(f);
    if (!buf || bad) {
        fprintf(stderr, "tandem: cannot read %s\n", path);
        free(buf);
        return NULL;
    }
    buf[n] = 0;
    *len = n;
    return buf;
}

int32_t cli_default_context(const tnd_model *m) {
    int32_t trained = tnd_model_n_ctx_train(m);
    return trained < 512 ? 512 : trained > 4096 ? 4096 : trained;
}
