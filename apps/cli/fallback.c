/* fallback.c: the context a command goes on in when its cloud link dies (see fallback.h). */
#include "fallback.h"

#include "cli_util.h"

#include <stdio.h>
#include <string.h>

/* The token texts of both vocabularies are the same, id for id: a record tokenized for one reads the same in the
 * other. Prints the first difference. */
static bool same_vocabulary(const tnd_tokenizer *a, tnd_model *other, const char *path) {
    tnd_tokenizer *b = NULL;
    if (tnd_tokenizer_init(other, &b) != TND_OK) {
        cli_error(path);
        return false;
    }
    int32_t n = tnd_tokenizer_n_vocab(a);
    bool same = n == tnd_tokenizer_n_vocab(b);
    if (!same) fprintf(stderr, "tandem: --fallback-model %s has %d tokens, the model %d\n", path,
                       tnd_tokenizer_n_vocab(b), n);
    for (int32_t id = 0; same && id < n; id++) {
        size_t la = 0, lb = 0;
        const char *ta = tnd_tokenizer_token_text(a, id, &la), *tb = tnd_tokenizer_token_text(b, id, &lb);
        same = la == lb && (!la || !memcmp(ta, tb, la));
        if (!same) fprintf(stderr, "tandem: --fallback-model %s: token %d is \"%.*s\" there, \"%.*s\" in the model\n",
                           path, id, (int)lb, tb, (int)la, ta);
    }
    tnd_tokenizer_free(b);
    return same;
}

bool cli_fallback_open(cli_fallback *f, const char *fallback_path, tnd_model *model, const tnd_tokenizer *tok,
                       const tnd_context_params *p) {
    memset(f, 0, sizeof *f);
    bool beyond_cpu = p->remote != NULL;
    for (int32_t d = 0; p->device_kinds && d < p->n_devices; d++) beyond_cpu |= p->device_kinds[d] != 0;
    if (!beyond_cpu) return true; /* the CPU is not lost while the process runs */
    f->armed = true;
    f->plan = *p;
    f->plan.progress = NULL;
    f->params = *p;
    f->params.n_devices = 1;
    f->params.device_kinds = NULL;
    f->params.group_device = NULL;
    f->params.n_groups = 0;
    f->params.remote = f->params.remote_key_file = NULL;
    f->params.progress = NULL;
    if (!fallback_path) return true;
    if (!(f->model = cli_open_model(fallback_path))) return false;
    if (!same_vocabulary(tok, f->model, fallback_path)) return false;
    if (tnd_context_init(f->model, &f->params, &f->ready) != TND_OK) {
        cli_error(fallback_path);
        return false;
    }
    return true;
}

static void *make_ready(void *arg) {
    cli_fallback *f = arg;
    if (tnd_context_init(f->own, &f->params, &f->ready) != TND_OK) f->ready = NULL; /* made at the loss instead */
    return NULL;
}

void cli_fallback_prepare(cli_fallback *f, tnd_model *model) {
    if (!f->armed || f->model || f->ready || f->making || !f->plan.remote) return;
    tnd_device_info cpu;
    uint64_t bytes = tnd_model_file_size(model);
    if (tnd_device_get_info(0, f->params.n_threads, &cpu) != TND_OK || cpu.memory_available / 2 < bytes) return;
    f->own = model;
    f->making = pthread_create(&f->maker, NULL, make_ready, f) == 0;
}

/* Waits for the background making of the fallback's context, if it runs. */
static void made(cli_fallback *f) {
    if (!f->making) return;
    pthread_join(f->maker, NULL);
    f->making = false;
}

tnd_context *cli_fallback_take(cli_fallback *f, tnd_model *model) {
    double t0 = cli_now();
    char lost[512];
    snprintf(lost, sizeof lost, "%s", tnd_last_error());
    if (!f->armed) return NULL;
    made(f);
    tnd_context *ctx = f->ready;
    bool made_before = ctx && !f->model; /* in the background (--fallback-model's is always made at start) */
    f->ready = NULL;
    f->lost = true;
    if (!ctx && tnd_context_init(f->model ? f->model : model, &f->params, &ctx) != TND_OK) {
        fprintf(stderr, "\ntandem: %s; no context here to go on in: %s\n", lost, tnd_last_error());
        f->retry_at = t0; /* the plan again at the next request */
        f->running = false;
        return NULL;
    }
    f->retry_at = t0 + CLI_RETRY_SECONDS;
    f->running = true;
    fprintf(stderr, "\ntandem: note: %s; going on here with %s (ready in %.3f s%s)\n", lost,
            f->model ? "the fallback model" : "the whole model", cli_now() - t0,
            made_before ? ", made in the background" : "");
    return ctx;
}

tnd_context *cli_fallback_retry(cli_fallback *f, tnd_model *model) {
    double now = cli_now();
    if (!f->lost || now < f->retry_at) return NULL;
    tnd_context_params p = f->plan;
    p.remote_connect_timeout_ms = CLI_RECONNECT_TIMEOUT_MS;
    tnd_context *ctx = NULL;
    if (tnd_context_init(model, &p, &ctx) != TND_OK) {
        f->retry_at = now + CLI_RETRY_SECONDS;
        return NULL;
    }
    f->lost = false;
    fprintf(stderr, "tandem: note: the plan's devices answer again%s%s%s; going on with them\n",
            p.remote ? " (the cloud at " : "", p.remote ? p.remote : "", p.remote ? ")" : "");
    return ctx;
}

void cli_fallback_keep(cli_fallback *f, tnd_context *current) {
    if (f->running && (f->model || f->own) && !f->ready) f->ready = current; /* ready for the next loss */
    else tnd_context_free(current);
    f->running = false;
}

void cli_fallback_close(cli_fallback *f) {
    made(f);
    tnd_context_free(f->ready);
    tnd_model_close(f->model);
    memset(f, 0, sizeof *f);
}
