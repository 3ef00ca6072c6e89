/* generate.c: options, session set-up, prompt evaluation with prefix reuse, and the streaming generation loop. */
#include "generate.h"

#include "cli_util.h"

#include <stdlib.h>
#include <string.h>

void cli_gen_defaults(cli_gen_options *o) {
    memset(o, 0, sizeof *o);
    o->n_predict = 128;
    o->n_batch = 512;
    o->kv_type = TND_TYPE_F16;
    o->sampling = tnd_sampler_default_params();
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
               "  --kv-type f16|f32|q8_0   --special (show control tokens)   --ignore-eos\n");
}

int cli_gen_parse(cli_gen_options *o, int argc, char **argv, int *i) {
    const char *a = argv[*i];
    if (!strcmp(a, "--special")) return o->show_special = true, 1;
    if (!strcmp(a, "--ignore-eos")) return o->ignore_eos = true, 1;
    static const char *const with_value[] = {"-m", "-n", "-c", "-t", "-b", "--temp", "--top-k", "--top-p", "--min-p",
                                             "--seed", "--repeat-penalty", "--repeat-last-n", "--presence-penalty",
                                             "--frequency-penalty", "--stop", "--kv-type"};
    size_t k = 0;
    while (k < sizeof with_value / sizeof with_value[0] && strcmp(a, with_value[k])) k++;
    if (k == sizeof with_value / sizeof with_value[0]) return 0;
    const char *v = cli_value(argc, argv, i);
    if (!v) return -1;
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
    else if (!strcmp(a, "--kv-type")) ok = cli_kv_type(v, &o->kv_type);
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

int32_t cli_trained_context(const tnd_model *m) {
    const char *arch = NULL;
    size_t len = 0;
    int64_t v = 0;
    char key[96];
    if (tnd_model_meta_string(m, "general.architecture", &arch, &len) != TND_OK || len > 64) return 0;
    snprintf(key, sizeof key, "%.*s.context_length", (int)len, arch);
    return tnd_model_meta_int(m, key, &v) == TND_OK && v > 0 && v < (1 << 24) ? (int32_t)v : 0;
}

bool cli_session_open(cli_session *s, const cli_gen_options *o) {
    memset(s, 0, sizeof *s);
    double t0 = cli_now();
    if (!(s->model = cli_open_model(o->model_path))) return false;
    if (tnd_tokenizer_init(s->model, &s->tok) != TND_OK) {
        cli_error("tokenizer");
        return false;
    }
    tnd_context_params p = tnd_context_default_params();
    int32_t trained = cli_trained_context(s->model);
    /* default: the trained context within [512, 4096] (small models often under-state theirs) */
    p.n_ctx = o->n_ctx ? o->n_ctx : trained < 512 ? 512 : trained > 4096 ? 4096 : trained;
    if (trained && p.n_ctx > trained)
        fprintf(stderr, "tandem: note: context %d exceeds the model's trained %d\n", p.n_ctx, trained);
    p.n_batch = o->n_batch;
    p.n_threads = o->n_threads;
    p.kv_type = o->kv_type;
    if (tnd_context_init(s->model, &p, &s->ctx) != TND_OK) {
        cli_error(o->model_path);
        return false;
    }
    s->n_ctx = p.n_ctx;
    s->n_vocab = tnd_model_n_vocab(s->model);
    s->cached = malloc(sizeof(int32_t) * (size_t)s->n_ctx);
    s->logits = malloc(sizeof(float) * (size_t)s->n_vocab);
    size_t stop_lens[CLI_MAX_STOPS];
    for (int32_t i = 0; i < o->n_stops; i++) stop_lens[i] = strlen(o->stops[i]);
    if (!s->cached || !s->logits || tnd_sampler_init(&o->sampling, s->n_vocab, &s->sampler) != TND_OK ||
        tnd_detokenizer_init(s->tok, o->show_special ? TND_DETOKENIZE_SPECIAL : 0, &s->det) != TND_OK ||
        tnd_stop_matcher_init(o->stops, stop_lens, o->n_stops, 0, &s->stops) != TND_OK) {
        cli_error("setup");
        return false;
    }
    s->t_load = cli_now() - t0;
    return true;
}

void cli_session_close(cli_session *s) {
    tnd_stop_matcher_free(s->stops);
    tnd_detokenizer_free(s->det);
    tnd_sampler_free(s->sampler);
    tnd_context_free(s->ctx);
    tnd_tokenizer_free(s->tok);
    tnd_model_close(s->model);
    free(s->cached);
    free(s->logits);
    memset(s, 0, sizeof *s);
}

/* Evaluates tokens[0..n) at positions n_cached.. in micro-batches; keeps the logits of the last one. */
static bool evaluate(cli_session *s, const int32_t *tokens, int32_t n) {
    if (s->n_cached + n > s->n_ctx) {
        fprintf(stderr, "tandem: %d tokens do not fit the context of %d (use -c)\n", s->n_cached + n, s->n_ctx);
        return false;
    }
    int32_t pos[512];
    for (int32_t i0 = 0; i0 < n; i0 += 512) {
        int32_t m = n - i0 < 512 ? n - i0 : 512;
        for (int32_t i = 0; i < m; i++) pos[i] = s->n_cached + i;
        tnd_batch b = {.n_tokens = m, .tokens = tokens + i0, .pos = pos};
        if (tnd_context_decode(s->ctx, &b) != TND_OK) {
            cli_error("decode");
            return false;
        }
        memcpy(s->cached + s->n_cached, tokens + i0, sizeof(int32_t) * (size_t)m);
        s->n_cached += m;
    }
    memcpy(s->logits, tnd_context_logits(s->ctx, 0), sizeof(float) * (size_t)s->n_vocab);
    return true;
}

bool cli_session_set_tokens(cli_session *s, const int32_t *tokens, int32_t n) {
    int32_t common = 0;
    while (common < n && common < s->n_cached && s->cached[common] == tokens[common]) common++;
    if (common == n) common--; /* re-evaluate the last token for its logits */
    if (common < 0) common = 0;
    if (tnd_context_seq_truncate(s->ctx, 0, common) != TND_OK) {
        cli_error("cache");
        return false;
    }
    s->n_cached = common;
    double t0 = cli_now();
    bool ok = evaluate(s, tokens + common, n - common);
    s->n_prompt = n - common;
    s->t_prompt = cli_now() - t0;
    return ok;
}

/* Appends `len` bytes to the malloc'ed string *text. */
static bool append(char **text, size_t *text_len, const char *bytes, size_t len) {
    if (!text || !len) return true;
    char *t = realloc(*text, *text_len + len + 1);
    if (!t) return false;
    memcpy(t + *text_len, bytes, len);
    *text_len += len;
    t[*text_len] = 0;
    *text = t;
    return true;
}

/* Shows bytes decoded from tokens, through the stop matcher; returns false once a stop string was hit. */
static bool emit(cli_session *s, const char *bytes, size_t len, FILE *out, char **text, size_t *text_len) {
    const char *show = NULL;
    size_t show_len = 0;
    int32_t hit = -1;
    tnd_stop_matcher_feed(s->stops, bytes, len, &show, &show_len, &hit);
    fwrite(show, 1, show_len, out);
    fflush(out);
    append(text, text_len, show, show_len);
    return hit < 0;
}

bool cli_session_generate(cli_session *s, const cli_gen_options *o, FILE *out, char **text) {
    size_t text_len = text && *text ? strlen(*text) : 0;
    tnd_stop_matcher_reset(s->stops);
    double t0 = cli_now();
    s->n_generated = 0;
    bool ok = true, going = true;
    char piece[4096];
    while (going && (o->n_predict < 0 || s->n_generated < o->n_predict) && s->n_cached < s->n_ctx) {
        int32_t token = -1;
        if (tnd_sampler_sample(s->sampler, s->logits, &token) != TND_OK) {
            cli_error("sampling");
            ok = false;
            break;
        }
        tnd_sampler_accept(s->sampler, token);
        s->n_generated++;
        if (!o->ignore_eos && tnd_tokenizer_is_eog(s->tok, token)) break;
        int32_t n = tnd_detokenizer_push(s->det, token, piece, (int32_t)sizeof piece);
        if (n > 0) going = emit(s, piece, (size_t)n, out, text, &text_len);
        if (going && !evaluate(s, &token, 1)) {
            ok = false;
            break;
        }
    }
    int32_t n = tnd_detokenizer_finish(s->det, piece, (int32_t)sizeof piece);
    if (going && n > 0) emit(s, piece, (size_t)n, out, text, &text_len);
    const char *rest = NULL;
    size_t rest_len = 0;
    if (tnd_stop_matcher_flush(s->stops, &rest, &rest_len) == TND_OK) {
        fwrite(rest, 1, rest_len, out);
        append(text, &text_len, rest, rest_len);
    }
    fflush(out);
    s->t_generate = cli_now() - t0;
    return ok;
}

void cli_session_report(const cli_session *s) {
    fprintf(stderr, "\ntandem: load %.2f s | prompt %d tokens, %.1f t/s | generation %d tokens, %.1f t/s\n", s->t_load,
            s->n_prompt, s->t_prompt > 0 ? s->n_prompt / s->t_prompt : 0.0, s->n_generated,
            s->t_generate > 0 ? s->n_generated / s->t_generate : 0.0);
}
