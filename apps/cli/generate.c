/* generate.c: options, session set-up, prompt evaluation with prefix reuse, and the streaming generation loop. */
#include "generate.h"

#include "cli_util.h"

#include <stdlib.h>
#include <string.h>

void cli_gen_defaults(cli_gen_options *o) {
    memset(o, 0, sizeof *o);
    o->n_predict = 128;
    o->n_batch = 512;
    cli_kv_defaults(&o->kv);
    o->sampling = tnd_sampler_default_params();
    cli_plan_defaults(&o->plan);
    cli_spec_defaults(&o->spec);
}

void cli_gen_usage(FILE *f) {
    fprintf(f, "  -n N                tokens to generate (-1: until the end of generation; default 128)\n"
               "  -c CTX              context size in tokens (default: the model's, within 512..4096)\n"
               "  -t THREADS          threads (default: physical cores)\n"
               "  -b N                prompt tokens per forward step (default 512)\n"
               "  --temp T            temperature, 0 = greedy (default 0.8)\n"
               "  --top-k K  --top-p P  --min-p P  --seed S\n"
               "  --repeat-penalty R  --repeat-last-n N  --presence-penalty P  --frequency-penalty P\n"
               "  --stop TEXT         stop before TEXT (repeatable)\n"
               "  --special (show control tokens)   --ignore-eos\n"
               "  --grammar FILE      the output follows this grammar (GBNF)\n"
               "  --json              the output is a JSON object\n"
               "  --json-schema FILE  the output is JSON that validates against this JSON Schema\n");
    cli_kv_usage(f);
    cli_plan_usage(f);
    cli_spec_usage(f);
}

int cli_gen_parse(cli_gen_options *o, int argc, char **argv, int *i) {
    const char *a = argv[*i];
    int placement = cli_plan_parse(&o->plan, argc, argv, i);
    if (placement) return placement;
    int kv = cli_kv_parse(&o->kv, argc, argv, i);
    if (kv) return kv;
    int spec = cli_spec_parse(&o->spec, argc, argv, i);
    if (spec) return spec;
    if (!strcmp(a, "--special")) return o->show_special = true, 1;
    if (!strcmp(a, "--ignore-eos")) return o->ignore_eos = true, 1;
    if (!strcmp(a, "--json")) return o->json = true, 1;
    static const char *const with_value[] = {"-m", "-n", "-c", "-t", "-b", "--temp", "--top-k", "--top-p", "--min-p",
                                             "--seed", "--repeat-penalty", "--repeat-last-n", "--presence-penalty",
                                             "--frequency-penalty", "--stop", "--grammar", "--json-schema"};
    const char *v = NULL;
    int found = cli_flag_value(with_value, sizeof with_value / sizeof with_value[0], argc, argv, i, &v);
    if (found <= 0) return found;
    long long n = 0;
    double x = 0;
    tnd_sampler_params *sp = &o->sampling;
    bool ok = true;
    if (!strcmp(a, "-m")) o->model_path = v;
    else if (!strcmp(a, "-n")) ok = cli_int(a, v, -1, 1 << 24, &n) && ((o->n_predict = (int32_t)n), 1);
    else if (!strcmp(a, "-c")) ok = cli_int(a, v, 0, 1 << 24, &n) && ((o->n_ctx = (int32_t)n), 1);
    else if (!strcmp(a, "-t")) ok = cli_int(a, v, 0, 1024, &n) && ((o->n_threads = (int32_t)n), 1);
    else if (!strcmp(a, "-b")) ok = cli_int(a, v, 1, 1 << 16, &n) && ((o->n_batch = (int32_t)n), 1);
    else if (!strcmp(a, "--temp")) ok = cli_float(a, v, 0, 100, &x) && ((sp->temperature = (float)x), 1);
    else if (!strcmp(a, "--top-k")) ok = cli_int(a, v, 0, 1 << 24, &n) && ((sp->top_k = (int32_t)n), 1);
    else if (!strcmp(a, "--top-p")) ok = cli_float(a, v, 1e-9, 1, &x) && ((sp->top_p = (float)x), 1);
    else if (!strcmp(a, "--min-p")) ok = cli_float(a, v, 0, 1, &x) && ((sp->min_p = (float)x), 1);
    else if (!strcmp(a, "--seed")) ok = cli_int(a, v, 0, INT64_MAX, &n) && ((sp->seed = (uint64_t)n), 1);
    else if (!strcmp(a, "--repeat-penalty")) ok = cli_float(a, v, 1e-3, 100, &x) && ((sp->repeat_penalty = (float)x), 1);
    else if (!strcmp(a, "--repeat-last-n")) ok = cli_int(a, v, -1, 1 << 20, &n) && ((sp->penalty_last_n = (int32_t)n), 1);
    else if (!strcmp(a, "--presence-penalty")) ok = cli_float(a, v, -2, 2, &x) && ((sp->presence_penalty = (float)x), 1);
    else if (!strcmp(a, "--frequency-penalty")) ok = cli_float(a, v, -2, 2, &x) && ((sp->frequency_penalty = (float)x), 1);
    else if (!strcmp(a, "--grammar")) o->grammar_path = v;
    else if (!strcmp(a, "--json-schema")) o->schema_path = v;
    else if (!strcmp(a, "--stop")) {
        if (o->n_stops == CLI_MAX_STOPS || !*v) {
            fprintf(stderr, "tandem: --stop takes a non-empty text, at most %d times\n", CLI_MAX_STOPS);
            return -1;
        }
        o->stops[o->n_stops++] = v;
    }
    return ok ? 1 : -1;
}

/* ------------------------------------------------------------------------------------------------------------
 * Session
 * ---------------------------------------------------------------------------------------------------------- */

/* The grammar of --grammar, --json-schema or --json; prints the error and returns false on failure. */
static bool open_grammar(cli_session *s, const cli_gen_options *o) {
    if ((o->grammar_path != NULL) + (o->schema_path != NULL) + o->json > 1) {
        fprintf(stderr, "tandem: --grammar, --json-schema and --json exclude each other\n");
        return false;
    }
    const char *path = o->grammar_path ? o->grammar_path : o->schema_path;
    if (!path && !o->json) return true;
    size_t len = 0;
    char *text = path ? cli_read_file(path, &len) : NULL;
    if (path && !text) return false;
    tnd_status st = o->schema_path ? tnd_grammar_from_json_schema(text, len, &s->grammar)
                    : text         ? tnd_grammar_parse(text, len, NULL, &s->grammar)
                                   : tnd_grammar_parse(tnd_grammar_json_text(), strlen(tnd_grammar_json_text()), NULL,
                                                       &s->grammar);
    free(text);
    if (st != TND_OK) cli_error(path ? path : "--json");
    return st == TND_OK;
}

bool cli_session_open(cli_session *s, const cli_gen_options *o) {
    memset(s, 0, sizeof *s);
    if (!open_grammar(s, o)) return false;
    double t0 = cli_now();
    if (!(s->model = cli_open_model(o->model_path))) return false;
    if (tnd_tokenizer_init(s->model, &s->tok) != TND_OK) {
        cli_error("tokenizer");
        return false;
    }
    tnd_context_params p = tnd_context_default_params();
    int32_t trained = tnd_model_n_ctx_train(s->model);
    p.n_ctx = o->n_ctx ? o->n_ctx : cli_default_context(s->model);
    if (trained && p.n_ctx > trained)
        fprintf(stderr, "tandem: note: context %d exceeds the model's trained %d\n", p.n_ctx, trained);
    p.n_batch = o->n_batch;
    p.n_threads = o->n_threads;
    cli_kv_apply(&o->kv, &p);
    if (!cli_plan_make(&o->plan, s->model, &p, &s->groups)) return false;
    cli_load_progress(&p);
    if (!cli_fallback_open(&s->fallback, o->plan.fallback_model, !o->plan.no_follow, s->model, s->tok, &p))
        return false;
    tnd_status st = tnd_context_init(s->model, &p, &s->ctx);
    bool on_plan = st == TND_OK;
    if (st != TND_OK && s->fallback.ready) st = (s->ctx = cli_fallback_take(&s->fallback, s->model)) ? TND_OK : st;
    else if (st != TND_OK && cli_plan_fell_back(&o->plan, &p)) st = tnd_context_init(s->model, &p, &s->ctx);
    if (st != TND_OK) {
        cli_error(o->model_path);
        return false;
    }
    if (on_plan) cli_fallback_prepare(&s->fallback, s->model);
    if (tnd_session_init(s->ctx, s->tok, 0, 0, &s->session) != TND_OK) {
        cli_error("session");
        return false;
    }
    if (!cli_draft_open(&o->spec, &p, 1, &s->draft) || !cli_spec_apply(&o->spec, &s->draft, s->session, 0))
        return false;
    s->t_load = cli_now() - t0;
    return true;
}

void cli_session_close(cli_session *s) {
    tnd_session_free(s->session);
    cli_draft_close(&s->draft);
    tnd_grammar_free(s->grammar);
    tnd_context_free(s->ctx);
    cli_fallback_close(&s->fallback);
    free(s->groups);
    tnd_tokenizer_free(s->tok);
    tnd_model_close(s->model);
    memset(s, 0, sizeof *s);
}

static void write_text(void *user, const char *text, size_t len) {
    FILE *out = user;
    fwrite(text, 1, len, out);
    fflush(out);
}

tnd_generate_params cli_generate_params(const cli_gen_options *o, const cli_session *s, FILE *out, bool keep_space) {
    tnd_generate_params p = tnd_generate_default_params();
    p.grammar = s->grammar;
    p.sampling = o->sampling;
    p.max_tokens = o->n_predict;
    p.stops = o->stops;
    p.n_stops = o->n_stops;
    p.ignore_eog = o->ignore_eos;
    p.detokenize_flags = (o->show_special ? TND_DETOKENIZE_SPECIAL : 0) | (keep_space ? TND_DETOKENIZE_KEEP_SPACE : 0);
    p.on_text = write_text;
    p.user = out;
    return p;
}

void cli_session_try_plan(cli_session *s) {
    tnd_context *ctx = cli_fallback_retry(&s->fallback, s->model);
    if (!ctx) return;
    if (tnd_session_move(s->session, ctx, 0) != TND_OK) { /* (cannot happen: the same sequence and vocabulary) */
        tnd_context_free(ctx);
        s->fallback.lost = true;
        return;
    }
    cli_fallback_keep(&s->fallback, s->ctx);
    s->ctx = ctx;
}

/* tnd_session_generate, telling the fallback's context the record after each step so that it follows. */
static tnd_status generate_followed(cli_session *s) {
    while (tnd_session_finish_reason(s->session) == TND_FINISH_NONE) {
        tnd_status st = tnd_session_step(s->session);
        if (st) return st;
        cli_fallback_noticed(&s->fallback, s->ctx);
        int32_t n = 0;
        const int32_t *record = tnd_session_tokens(s->session, &n);
        cli_fallback_follow(&s->fallback, 0, record, n);
    }
    return tnd_session_generate(s->session); /* the generation's end, or its error */
}

bool cli_session_generate(cli_session *s) {
    for (;;) {
        tnd_status st = generate_followed(s);
        if (st == TND_OK) return true;
        tnd_context *here = st == TND_ERR_DEVICE_LOST ? cli_fallback_take(&s->fallback, s->model) : NULL;
        if (!here) break;
        if (tnd_session_move(s->session, here, 0) != TND_OK) {
            tnd_context_free(here);
            break;
        }
        tnd_context_free(s->ctx);
        s->ctx = here;
    }
    cli_error("generation");
    return false;
}

void cli_session_report(const cli_session *s) {
    tnd_session_stats st;
    tnd_session_stats_get(s->session, &st);
    /* the first token comes with the prompt's last step; each later step samples one more (an end-of-generation
     * token included) */
    int32_t evaluated = st.n_prompt - st.n_reused;
    int32_t later = st.n_generated - 1 + (tnd_session_finish_reason(s->session) == TND_FINISH_EOG);
    fprintf(stderr, "\ntandem: load %.2f s | prompt %d tokens (%d cached), %.1f t/s | first token %.3f s | "
                    "generation %d tokens, %.1f t/s\n",
            s->t_load, st.n_prompt, st.n_reused, st.t_prompt > 0 ? evaluated / st.t_prompt : 0.0, st.t_first_token,
            st.n_generated, st.t_generate > 0 && later > 0 ? later / st.t_generate : 0.0);
    cli_spec_report(stderr, s->session);
}
