/* cmd_logits.c: `tandem logits -m MODEL --ids "1 2 3 ..." -o OUT.f32 [-t THREADS] [--kv-type f16|f32|q8_0]`:
 * evaluates the ids as one sequence from position 0 and writes float32 logits [n_ids][n_vocab], row-major, for
 * validating models against other engines. */
#include "cli_util.h"
#include "commands.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int usage(void) {
    fprintf(stderr, "usage: tandem logits -m MODEL --ids \"1 2 3 ...\" -o OUT.f32 [-t THREADS] [--kv-type f16|f32|q8_0]\n");
    return 2;
}

/* Parses space- or comma-separated token ids; returns the count or -1 with a message. */
static int parse_ids(const char *text, int32_t **out) {
    size_t cap = strlen(text) / 2 + 1, n = 0;
    int32_t *ids = malloc(cap * sizeof *ids);
    if (!ids) return -1;
    const char *p = text;
    while (*p) {
        while (*p == ' ' || *p == ',' || *p == '\t' || *p == '\n') p++;
        if (!*p) break;
        char *end = NULL;
        long v = strtol(p, &end, 10);
        if (end == p || v < 0 || v > INT32_MAX) {
            fprintf(stderr, "tandem: --ids: '%.20s' is not a token id\n", p);
            free(ids);
            return -1;
        }
        ids[n++] = (int32_t)v;
        p = end;
    }
    *out = ids;
    return (int)n;
}

int tnd_cmd_logits(int argc, char **argv) {
    const char *model_path = NULL, *ids_text = NULL, *out_path = NULL;
    long long threads = 0;
    tnd_type kv_type = TND_TYPE_F16;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage();
            return 0;
        }
        bool known = !strcmp(a, "-m") || !strcmp(a, "--ids") || !strcmp(a, "-o") || !strcmp(a, "-t") ||
                     !strcmp(a, "--kv-type");
        if (!known) {
            fprintf(stderr, "tandem: unknown option '%s'\n", a);
            return usage();
        }
        const char *v = cli_value(argc, argv, &i);
        if (!v) return 2;
        if (!strcmp(a, "-m")) model_path = v;
        else if (!strcmp(a, "--ids")) ids_text = v;
        else if (!strcmp(a, "-o")) out_path = v;
        else if (!strcmp(a, "-t") && !cli_int("-t", v, 0, 1024, &threads)) return 2;
        else if (!strcmp(a, "--kv-type") && !cli_kv_type(v, &kv_type)) return 2;
    }
    if (!model_path || !ids_text || !out_path) return usage();
    int32_t *ids = NULL;
    int n = parse_ids(ids_text, &ids);
    if (n <= 0) {
        if (n == 0) fprintf(stderr, "tandem: --ids is empty\n");
        free(ids);
        return 2;
    }
    int rc = 1;
    tnd_context *ctx = NULL;
    int32_t *pos = malloc(sizeof(int32_t) * (size_t)n);
    int8_t *want = malloc((size_t)n);
    FILE *f = NULL;
    tnd_model *m = cli_open_model(model_path);
    if (!m || !pos || !want) goto cleanup;
    tnd_context_params p = tnd_context_default_params();
    p.n_ctx = n;
    p.n_batch = n;
    p.n_threads = (int32_t)threads;
    p.kv_type = kv_type;
    if (tnd_context_init(m, &p, &ctx) != TND_OK) {
        cli_error(model_path);
        goto cleanup;
    }
    for (int i = 0; i < n; i++) {
        pos[i] = i;
        want[i] = 1;
    }
    tnd_batch b = {.n_tokens = n, .tokens = ids, .pos = pos, .logits = want};
    if (tnd_context_decode(ctx, &b) != TND_OK) {
        cli_error("decode");
        goto cleanup;
    }
    f = fopen(out_path, "wb");
    if (!f) {
        fprintf(stderr, "tandem: cannot create %s\n", out_path);
        goto cleanup;
    }
    int32_t nv = tnd_model_n_vocab(m);
    for (int i = 0; i < n; i++) {
        if (fwrite(tnd_context_logits(ctx, i), sizeof(float), (size_t)nv, f) != (size_t)nv) {
            fprintf(stderr, "tandem: write to %s failed\n", out_path);
            goto cleanup;
        }
    }
    fprintf(stderr, "tandem: wrote %d x %d logits to %s\n", n, nv, out_path);
    rc = 0;
cleanup:
    if (f && fclose(f) != 0) rc = 1;
    tnd_context_free(ctx);
    tnd_model_close(m);
    free(ids);
    free(pos);
    free(want);
    return rc;
}
