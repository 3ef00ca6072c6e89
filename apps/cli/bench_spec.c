/* bench_spec.c: `tandem bench --spec SOURCE ...`: generation speed with and without speculative decoding on the same
 * prompt, alternating, with the acceptance and the controller's figures. */
#include "cli_util.h"
#include "speculate.h"

#include <stdlib.h>
#include <string.h>

typedef struct spec_run {
    double tps;
    tnd_speculation_stats spec;
} spec_run;

static int cmp_run(const void *a, const void *b) {
    double x = ((const spec_run *)a)->tps, y = ((const spec_run *)b)->tps;
    return x < y ? -1 : x > y;
}

/* Generates n_gen tokens greedily after the prompt (end of generation ignored, so every run has the same length)
 * and returns tokens/s of the generation (the first token, which comes with the prompt, excluded). */
static bool run_once(tnd_session *s, const cli_spec_options *spec, cli_draft *d, const int32_t *prompt,
                     int32_t n_prompt, int32_t n_gen, spec_run *out) {
    tnd_generate_params gp = tnd_generate_default_params();
    gp.sampling.temperature = 0;
    gp.max_tokens = n_gen;
    gp.ignore_eog = 1;
    tnd_session_clear(s); /* every run evaluates the prompt anew: the draft model's cache starts empty too */
    if (!cli_spec_apply(spec, d, s, 0) || tnd_session_start(s, &gp, prompt, n_prompt) != TND_OK ||
        tnd_session_generate(s) != TND_OK) {
        cli_error("generation");
        return false;
    }
    tnd_session_stats st;
    tnd_session_stats_get(s, &st);
    out->tps = st.t_generate > 0 ? (st.n_generated - 1) / st.t_generate : 0;
    tnd_session_speculation_stats(s, &out->spec);
    return true;
}

int cli_bench_speculation(const char *model_path, const cli_spec_options *spec, const char *prompt_text,
                          int32_t n_gen, int32_t n_threads, int32_t reps, bool json) {
    enum { MAX_REPS = 100 };
    int rc = 1;
    cli_draft draft = {0};
    tnd_model *m = cli_open_model(model_path);
    tnd_tokenizer *tok = NULL;
    tnd_context *ctx = NULL;
    tnd_session *s = NULL;
    int32_t *prompt = NULL, n_prompt = 0;
    spec_run plain[MAX_REPS], fast[MAX_REPS];
    cli_spec_options none = *spec;
    none.params.source = TND_DRAFT_NONE;
    if (reps > MAX_REPS) reps = MAX_REPS;
    if (!m || tnd_tokenizer_init(m, &tok) != TND_OK) goto cleanup;
    n_prompt = tnd_tokenizer_encode(tok, prompt_text, strlen(prompt_text), TND_TOKENIZE_ADD_SPECIAL, NULL, 0);
    n_prompt = n_prompt < 0 ? -n_prompt : n_prompt;
    if (!n_prompt || !(prompt = malloc(sizeof *prompt * (size_t)n_prompt)) ||
        tnd_tokenizer_encode(tok, prompt_text, strlen(prompt_text), TND_TOKENIZE_ADD_SPECIAL, prompt, n_prompt) !=
            n_prompt) {
        fprintf(stderr, "tandem: bench: the prompt did not encode\n");
        goto cleanup;
    }
    tnd_context_params p = tnd_context_default_params();
    p.n_ctx = (n_prompt + n_gen + 64 + 63) / 64 * 64;
    p.n_threads = n_threads;
    if (tnd_context_init(m, &p, &ctx) != TND_OK || tnd_session_init(ctx, tok, 0, 0, &s) != TND_OK) {
        cli_error(model_path);
        goto cleanup;
    }
    if (!cli_draft_open(spec, &p, 1, &draft)) goto cleanup;
    spec_run warm;
    if (!run_once(s, &none, &draft, prompt, n_prompt, n_gen < 8 ? n_gen : 8, &warm)) goto cleanup;
    for (int32_t r = 0; r < reps; r++) /* alternating, so that a change in the machine's speed falls on both */
        if (!run_once(s, &none, &draft, prompt, n_prompt, n_gen, &plain[r]) ||
            !run_once(s, spec, &draft, prompt, n_prompt, n_gen, &fast[r]))
            goto cleanup;
    qsort(plain, (size_t)reps, sizeof *plain, cmp_run);
    qsort(fast, (size_t)reps, sizeof *fast, cmp_run);
    const spec_run *a = &plain[reps / 2], *b = &fast[reps / 2];
    const tnd_speculation_stats *st = &b->spec;
    double acceptance = st->n_drafted ? (double)st->n_accepted / (double)st->n_drafted : 0;
    double per_verify = st->n_verified ? 1.0 + (double)st->n_accepted / (double)st->n_verified : 0;
    if (json)
        printf("{\"model\": \"%s\", \"source\": \"%s\", \"draft_model\": \"%s\", \"adaptive\": %d, \"draft_max\": %d, "
               "\"threads\": %d, \"repetitions\": %d, \"tokens\": %d, \"tg_tps_plain\": %.2f, \"tg_tps_spec\": %.2f, "
               "\"speedup\": %.3f, \"drafted\": %lld, \"accepted\": %lld, \"acceptance\": %.3f, "
               "\"tokens_per_verification\": %.2f, \"verifications\": %lld, \"plain_steps\": %lld, \"probes\": %lld, "
               "\"draft_ms\": %.2f, \"draft_token_ms\": %.3f, \"step_ms\": %.3f, \"step_token_ms\": %.3f}\n",
               model_path, tnd_draft_source_name(spec->params.source), spec->draft_path ? spec->draft_path : "",
               spec->params.adaptive, spec->params.draft_max, n_threads, reps, n_gen, a->tps, b->tps,
               a->tps > 0 ? b->tps / a->tps : 0, (long long)st->n_drafted, (long long)st->n_accepted, acceptance,
               per_verify, (long long)st->n_verified, (long long)st->n_plain, (long long)st->n_probes,
               st->t_draft * 1e3, st->draft_token_seconds * 1e3, st->step_seconds * 1e3, st->step_token_seconds * 1e3);
    else {
        printf("model      %s\nspeculate  %s%s%s, %s, draft max %d, %d threads, %d repetitions (medians)\n\n",
               model_path, tnd_draft_source_name(spec->params.source), spec->draft_path ? " " : "",
               spec->draft_path ? spec->draft_path : "", spec->params.adaptive ? "adaptive" : "fixed length",
               spec->params.draft_max, n_threads, reps);
        printf("tg%-5d    plain %.2f t/s   speculative %.2f t/s   (x%.2f)\n", n_gen, a->tps, b->tps,
               a->tps > 0 ? b->tps / a->tps : 0);
        printf("drafts     %lld of %lld tokens accepted (%.0f%%), %.2f tokens per verification, %lld verifications, "
               "%lld steps without a draft, %lld probes\n",
               (long long)st->n_accepted, (long long)st->n_drafted, 100 * acceptance, per_verify,
               (long long)st->n_verified, (long long)st->n_plain, (long long)st->n_probes);
        printf("costs      drafting %.1f ms in all, %.3f ms per token; step %.3f ms + %.3f ms per further token\n",
               st->t_draft * 1e3, st->draft_token_seconds * 1e3, st->step_seconds * 1e3, st->step_token_seconds * 1e3);
    }
    rc = 0;
cleanup:
    tnd_session_free(s);
    cli_draft_close(&draft);
    tnd_context_free(ctx);
    tnd_tokenizer_free(tok);
    tnd_model_close(m);
    free(prompt);
    return rc;
}
