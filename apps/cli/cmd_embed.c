/* cmd_embed.c: `tandem embed -m MODEL [-p TEXT | -f FILE] [--pooling last|mean|first] [-t THREADS] [-c CTX]`:
 * the embedding of each text (the -p text, or each line of FILE) as one JSON array of floats per line on stdout. */
#include "cli_util.h"
#include "commands.h"

#include <stdlib.h>
#include <string.h>

static int usage(FILE *f) {
    fprintf(f, "usage: tandem embed -m MODEL [-p TEXT | -f FILE] [--pooling last|mean|first] [-t THREADS] [-c CTX]\n"
               "  prints one JSON array per text (unit length): the -p text, or each non-empty line of FILE\n"
               "  --pooling  how token states make the vector (default: what the model declares, else last)\n");
    return f == stdout ? 0 : 2;
}

/* Embeds one text and prints its vector; false after printing the error. */
static bool embed_one(tnd_context *ctx, const tnd_tokenizer *tok, tnd_pooling pooling, const char *text, size_t len,
                      float *v) {
    int32_t n = tnd_tokenizer_encode(tok, text, len, TND_TOKENIZE_ADD_SPECIAL, NULL, 0);
    n = n < 0 ? -n : n;
    int32_t *tokens = malloc(sizeof *tokens * (size_t)(n ? n : 1));
    bool ok = tokens && n > 0 &&
              tnd_tokenizer_encode(tok, text, len, TND_TOKENIZE_ADD_SPECIAL, tokens, n) == n &&
              tnd_context_embed(ctx, 0, tokens, n, pooling, v) == TND_OK;
    free(tokens);
    if (!ok) return cli_error("embed"), false;
    int32_t e = tnd_context_n_embd(ctx);
    putchar('[');
    for (int32_t i = 0; i < e; i++) printf(i ? ", %.8g" : "%.8g", (double)v[i]);
    printf("]\n");
    return true;
}

int tnd_cmd_embed(int argc, char **argv) {
    const char *model_path = NULL, *prompt = NULL, *file = NULL, *pooling_name = NULL;
    long long threads = 0, n_ctx = 2048;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) return usage(stdout);
        if (strcmp(a, "-m") && strcmp(a, "-p") && strcmp(a, "-f") && strcmp(a, "--pooling") && strcmp(a, "-t") &&
            strcmp(a, "-c")) {
            fprintf(stderr, "tandem: unknown option '%s'\n", a);
            return usage(stderr);
        }
        if (!(v = cli_value(argc, argv, &i))) return 2;
        if (!strcmp(a, "-m")) model_path = v;
        else if (!strcmp(a, "-p")) prompt = v;
        else if (!strcmp(a, "-f")) file = v;
        else if (!strcmp(a, "--pooling")) pooling_name = v;
        else if (!strcmp(a, "-t") && !cli_int(a, v, 0, 1024, &threads)) return 2;
        else if (!strcmp(a, "-c") && !cli_int(a, v, 16, 1 << 20, &n_ctx)) return 2;
    }
    if (!model_path || !prompt == !file) return usage(stderr);
    tnd_model *m = cli_open_model(model_path);
    if (!m) return 1;
    tnd_pooling pooling = tnd_model_pooling(m);
    if (pooling_name) {
        if (!strcmp(pooling_name, "last")) pooling = TND_POOLING_LAST;
        else if (!strcmp(pooling_name, "mean")) pooling = TND_POOLING_MEAN;
        else if (!strcmp(pooling_name, "first")) pooling = TND_POOLING_FIRST;
        else {
            fprintf(stderr, "tandem: --pooling takes last, mean or first, not '%s'\n", pooling_name);
            tnd_model_close(m);
            return 2;
        }
    }
    int rc = 1;
    tnd_tokenizer *tok = NULL;
    tnd_context *ctx = NULL;
    char *text = NULL;
    float *v = NULL;
    tnd_context_params p = tnd_context_default_params();
    p.n_ctx = (int32_t)n_ctx;
    p.n_threads = (int32_t)threads;
    if (tnd_tokenizer_init(m, &tok) != TND_OK || tnd_context_init(m, &p, &ctx) != TND_OK) {
        cli_error(model_path);
        goto cleanup;
    }
    if (!(v = malloc(sizeof *v * (size_t)tnd_context_n_embd(ctx)))) goto cleanup;
    if (prompt) rc = embed_one(ctx, tok, pooling, prompt, strlen(prompt), v) ? 0 : 1;
    else {
        size_t len = 0;
        if (!(text = cli_read_file(file, &len))) goto cleanup;
        rc = 0;
        for (char *line = text, *end; rc == 0 && line < text + len; line = end + 1) {
            end = memchr(line, '\n', (size_t)(text + len - line));
            if (!end) end = text + len;
            size_t n = (size_t)(end - line);
            if (n && line[n - 1] == '\r') n--;
            if (n && !embed_one(ctx, tok, pooling, line, n, v)) rc = 1;
        }
    }
cleanup:
    free(v);
    free(text);
    tnd_context_free(ctx);
    tnd_tokenizer_free(tok);
    tnd_model_close(m);
    return rc;
}
