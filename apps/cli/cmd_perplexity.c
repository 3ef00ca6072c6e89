/* cmd_perplexity.c: `tandem perplexity -m MODEL -f TEXT [-c CTX] [-t THREADS]`: perplexity of a text. The text is
 * cut into windows of CTX tokens, each starting with BOS; every window is evaluated in one pass and the tokens of its
 * second half are scored (they all see at least CTX/2 tokens of context), as common engines report it. */
#include "cli_util.h"
#include "commands.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int usage(FILE *f) {
    fprintf(f, "usage: tandem perplexity -m MODEL -f TEXT [-c CTX (default 512)] [-t THREADS] [KV types]\n");
    cli_kv_usage(f);
    return f == stdout ? 0 : 2;
}

/* log-softmax of `target` in a row of logits. */
static double log_prob(const float *logits, int32_t n_vocab, int32_t target) {
    float mx = logits[0];
    for (int32_t i = 1; i < n_vocab; i++) mx = logits[i] > mx ? logits[i] : mx;
    double sum = 0;
    for (int32_t i = 0; i < n_vocab; i++) sum += exp((double)logits[i] - mx);
    return (double)logits[target] - mx - log(sum);
}

int tnd_cmd_perplexity(int argc, char **argv) {
    const char *model_path = NULL, *text_path = NULL;
    long long n_ctx = 512, threads = 0;
    cli_kv_types kv;
    cli_kv_defaults(&kv);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) return usage(stdout);
        int r = cli_kv_parse(&kv, argc, argv, &i);
        if (r < 0) return 2;
        if (r) continue;
        if (strcmp(a, "-m") && strcmp(a, "-f") && strcmp(a, "-c") && strcmp(a, "-t")) {
            fprintf(stderr, "tandem: unknown option '%s'\n", a);
            return usage(stderr);
        }
        const char *v = cli_value(argc, argv, &i);
        if (!v) return 2;
        if (!strcmp(a, "-m")) model_path = v;
        else if (!strcmp(a, "-f")) text_path = v;
        else if (!strcmp(a, "-c") && !cli_int("-c", v, 8, 1 << 20, &n_ctx)) return 2;
        else if (!strcmp(a, "-t") && !cli_int("-t", v, 0, 1024, &threads)) return 2;
    }
    if (!model_path || !text_path) return usage(stderr);
    int rc = 1;
    size_t len = 0;
    char *text = cli_read_file(text_path, &len);
    tnd_model *m = text ? cli_open_model(model_path) : NULL;
    tnd_tokenizer *tok = NULL;
    tnd_context *ctx = NULL;
    int32_t *tokens = NULL, *pos = malloc(sizeof(int32_t) * (size_t)n_ctx);
    int8_t *want = malloc((size_t)n_ctx);
    if (!m || !pos || !want) goto cleanup;
    if (tnd_tokenizer_init(m, &tok) != TND_OK) {
        cli_error("tokenizer");
        goto cleanup;
    }
    int32_t n = tnd_tokenizer_encode(tok, text, len, 0, NULL, 0);
    if (n == TND_TOKENIZE_ERROR || !(tokens = malloc(sizeof(int32_t) * (size_t)(n < 0 ? -n : n) + 1)) ||
        tnd_tokenizer_encode(tok, text, len, 0, tokens, n < 0 ? -n : n) != (n < 0 ? -n : n)) {
        cli_error(text_path);
        goto cleanup;
    }
    n = n < 0 ? -n : n;
    int32_t n_windows = n / (int32_t)n_ctx, bos = tnd_tokenizer_special(tok, TND_TOKEN_BOS);
    if (n_windows == 0) {
        fprintf(stderr, "tandem: %s has %d tokens, fewer than one window of %lld (use a smaller -c)\n", text_path, n,
                n_ctx);
        goto cleanup;
    }
    tnd_context_params p = tnd_context_default_params();
    p.n_ctx = (int32_t)n_ctx;
    p.n_batch = (int32_t)n_ctx;
    p.n_threads = (int32_t)threads;
    cli_kv_apply(&kv, &p);
    if (tnd_context_init(m, &p, &ctx) != TND_OK) {
        cli_error(model_path);
        goto cleanup;
    }
    int32_t n_vocab = tnd_model_n_vocab(m), first = (int32_t)n_ctx / 2;
    double nll = 0, nll2 = 0;
    long long scored = 0;
    double t0 = cli_now();
    for (int32_t w = 0; w < n_windows; w++) {
        int32_t *win = tokens + (size_t)w * (size_t)n_ctx;
        int32_t saved = win[0];
        if (bos >= 0) win[0] = bos;
        for (int32_t i = 0; i < n_ctx; i++) {
            pos[i] = i;
            want[i] = i >= first - 1 && i < n_ctx - 1;
        }
        tnd_context_seq_truncate(ctx, 0, 0);
        tnd_batch b = {.n_tokens = (int32_t)n_ctx, .tokens = win, .pos = pos, .logits = want};
        tnd_status st = tnd_context_decode(ctx, &b);
        win[0] = saved;
        if (st != TND_OK) {
            cli_error("decode");
            goto cleanup;
        }
        for (int32_t i = first - 1, k = 0; i < n_ctx - 1; i++, k++) {
            double lp = log_prob(tnd_context_logits(ctx, k), n_vocab, win[i + 1]);
            nll -= lp;
            nll2 += lp * lp;
            scored++;
        }
        fprintf(stderr, "[%d/%d] perplexity so far %.4f\n", w + 1, n_windows, exp(nll / (double)scored));
    }
    double mean = nll / (double)scored, var = nll2 / (double)scored - mean * mean;
    double ppl = exp(mean), err = ppl * sqrt(var > 0 ? var / (double)(scored - 1 > 0 ? scored - 1 : 1) : 0);
    printf("perplexity %.4f +/- %.4f over %lld tokens (%d windows of %lld, %.1f tokens/s)\n", ppl, err, scored,
           n_windows, n_ctx, (double)n_windows * (double)n_ctx / (cli_now() - t0));
    rc = 0;
cleanup:
    tnd_context_free(ctx);
    tnd_tokenizer_free(tok);
    tnd_model_close(m);
    free(text);
    free(tokens);
    free(pos);
    free(want);
    return rc;
}
