/* speculate.c: the speculative decoding options, the draft model's set-up and the report line. */
#include "speculate.h"

#include "cli_util.h"

#include <string.h>

void cli_spec_defaults(cli_spec_options *o) {
    memset(o, 0, sizeof *o);
    o->params = tnd_speculation_default_params();
}

void cli_spec_usage(FILE *f) {
    fprintf(f, "  --spec SOURCE       speculative decoding: ngram (prompt lookup), model (with --draft-model), none\n"
               "  --draft-model FILE  draft with this smaller model of the same vocabulary (implies --spec model)\n"
               "  --draft-max N       most drafted tokens per step, 1..64 (default 16)\n"
               "  --draft-min N       fewest drafted tokens worth verifying (default 1)\n"
               "  --draft-p-min P     stop a model's draft at a token below this probability (default 0.5)\n"
               "  --ngram-min N  --ngram-max N   n-gram lengths prompt lookup matches (default 2 and 4)\n"
               "  --spec-fixed        always draft --draft-max tokens (default: the controller picks the length and\n"
               "                      turns speculation off when it does not pay)\n");
}

int cli_spec_parse(cli_spec_options *o, int argc, char **argv, int *i) {
    const char *a = argv[*i];
    tnd_speculation_params *p = &o->params;
    if (!strcmp(a, "--spec-fixed")) return p->adaptive = 0, 1;
    static const char *const with_value[] = {"--spec", "--draft-model", "--draft-max", "--draft-min", "--draft-p-min",
                                             "--ngram-min", "--ngram-max"};
    const char *v = NULL;
    int found = cli_flag_value(with_value, sizeof with_value / sizeof with_value[0], argc, argv, i, &v);
    if (found <= 0) return found;
    long long n = 0;
    double x = 0;
    bool ok = true;
    if (!strcmp(a, "--spec")) {
        if (!strcmp(v, "ngram")) p->source = TND_DRAFT_NGRAM;
        else if (!strcmp(v, "model")) p->source = TND_DRAFT_MODEL;
        else if (!strcmp(v, "none")) p->source = TND_DRAFT_NONE;
        else {
            fprintf(stderr, "tandem: --spec takes ngram, model or none, not '%s'\n", v);
            return -1;
        }
    } else if (!strcmp(a, "--draft-model")) {
        o->draft_path = v;
        p->source = TND_DRAFT_MODEL;
    } else if (!strcmp(a, "--draft-max")) ok = cli_int(a, v, 1, 64, &n) && ((p->draft_max = (int32_t)n), 1);
    else if (!strcmp(a, "--draft-min")) ok = cli_int(a, v, 1, 64, &n) && ((p->draft_min = (int32_t)n), 1);
    else if (!strcmp(a, "--draft-p-min")) ok = cli_float(a, v, 0, 1, &x) && ((p->p_min = (float)x), 1);
    else if (!strcmp(a, "--ngram-min")) ok = cli_int(a, v, 1, 16, &n) && ((p->ngram_min = (int32_t)n), 1);
    else if (!strcmp(a, "--ngram-max")) ok = cli_int(a, v, 1, 16, &n) && ((p->ngram_max = (int32_t)n), 1);
    return ok ? 1 : -1;
}

bool cli_draft_open(const cli_spec_options *o, const tnd_context_params *target, int32_t n_seq, cli_draft *d) {
    memset(d, 0, sizeof *d);
    if (o->params.source != TND_DRAFT_MODEL) return true;
    if (!o->draft_path) {
        fprintf(stderr, "tandem: --spec model needs --draft-model FILE\n");
        return false;
    }
    if (!(d->model = cli_open_model(o->draft_path))) return false;
    tnd_context_params p = tnd_context_default_params();
    p.n_ctx = target->n_ctx;
    p.n_batch = target->n_batch;
    p.n_threads = target->n_threads;
    p.kernels = target->kernels;
    p.n_seq_max = n_seq;
    if (tnd_context_init(d->model, &p, &d->ctx) != TND_OK) {
        cli_error(o->draft_path);
        cli_draft_close(d);
        return false;
    }
    return true;
}

void cli_draft_close(cli_draft *d) {
    tnd_context_free(d->ctx);
    tnd_model_close(d->model);
    memset(d, 0, sizeof *d);
}

bool cli_spec_apply(const cli_spec_options *o, cli_draft *d, tnd_session *session, int32_t draft_seq) {
    if (o->params.source == TND_DRAFT_NONE) return tnd_session_set_speculation(session, NULL) == TND_OK;
    tnd_speculation_params p = o->params;
    p.draft_context = d->ctx;
    p.draft_seq = draft_seq;
    if (tnd_session_set_speculation(session, &p) == TND_OK) return true;
    cli_error(o->draft_path ? o->draft_path : "speculation");
    return false;
}

void cli_spec_report(FILE *f, const tnd_session *session) {
    tnd_speculation_stats st;
    tnd_session_speculation_stats(session, &st);
    if (st.source == TND_DRAFT_NONE) return;
    fprintf(f, "tandem: speculation (%s): %lld of %lld drafted tokens accepted (%.0f%%) in %lld verifications, "
               "%.2f tokens each | %lld steps without a draft, %lld probes | drafting %.3f s | draft length now %d\n",
            tnd_draft_source_name(st.source), (long long)st.n_accepted, (long long)st.n_drafted,
            st.n_drafted ? 100.0 * (double)st.n_accepted / (double)st.n_drafted : 0.0, (long long)st.n_verified,
            st.n_verified ? 1.0 + (double)st.n_accepted / (double)st.n_verified : 0.0, (long long)st.n_plain,
            (long long)st.n_probes, st.t_draft, st.draft_length);
}
