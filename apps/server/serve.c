/* serve.c: `tandem serve -m MODEL [options]`: an OpenAI-compatible HTTP server with continuous batching. Parses the
 * options, loads the model, starts the engine and the HTTP listener, and shuts both down on SIGINT or SIGTERM. */
#include "server.h"

#include "../cli/cli_util.h"
#include "../cli/commands.h"
#include "../cli/plan.h"
#include "../cli/speculate.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int usage(FILE *f) {
    fprintf(f,
            "usage: tandem serve -m MODEL [options]\n"
            "  --host ADDR          numeric address to listen on (default 127.0.0.1; 0.0.0.0 or :: for all)\n"
            "  --port N             port (default 8080; 0 = any free port, printed at start)\n"
            "  --parallel N         sequences decoded together in one forward step (default 4)\n"
            "  -c CTX               tokens per sequence, prompt and reply (default: the model's, in 512..4096)\n"
            "  -b N                 most tokens per forward step: one per generating sequence plus prompt\n"
            "                       chunks (default 256, at least --parallel)\n"
            "  -t THREADS           threads (default: physical cores)\n"
            "  --max-queue Q        requests waiting for a free sequence before 429 (default 64)\n"
            "  --max-connections N  open connections (default 256)\n"
            "  --api-key KEY        require 'Authorization: Bearer KEY' (or --api-key-file FILE, or the\n"
            "                       TANDEM_API_KEY environment variable; /health stays open)\n"
            "  --chat-template NAME chat format when the model has none or tandem does not recognise it\n"
            "  --alias NAME         model id in the API (default: the file name)\n"
            "  --timeout S          time limit of a request from arrival to its last token (default 600)\n"
            "  --read-timeout S     time allowed to receive a request body; idle connections close after it\n"
            "                       (default 15)\n"
            "  --max-body BYTES     largest request body (default 4194304)\n"
            "  --log-prompts        include the prompt in the request log (off: no request text is logged)\n");
    cli_kv_usage(f);
    cli_plan_usage(f);
    cli_spec_usage(f);
    return f == stdout ? 0 : 2;
}

/* Reads the API key from a file (surrounding whitespace removed) into a malloc'ed string. */
static char *read_key_file(const char *path) {
    size_t len = 0;
    char *key = cli_read_file(path, &len);
    if (!key) return NULL;
    while (len && strchr(" \t\r\n", key[len - 1])) key[--len] = 0;
    size_t start = strspn(key, " \t\r\n");
    memmove(key, key + start, len - start + 1);
    if (!key[0]) {
        fprintf(stderr, "tandem: %s holds no API key\n", path);
        free(key);
        return NULL;
    }
    return key;
}

/* Parses the options into cfg; *key_owned receives a key read from a file. Returns 0 to go on, -1 after --help,
 * or the exit code of a usage error. */
static int parse_options(int argc, char **argv, srv_config *cfg, cli_plan_options *plan, cli_spec_options *spec,
                         char **key_owned) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) return usage(stdout) - 1;
        int placement = cli_plan_parse(plan, argc, argv, &i);
        if (placement == 0) placement = cli_spec_parse(spec, argc, argv, &i);
        if (placement < 0) return 2;
        if (placement) continue;
        cli_kv_types kv_types = {cfg->k_type, cfg->v_type};
        int kv = cli_kv_parse(&kv_types, argc, argv, &i);
        if (kv < 0) return 2;
        cfg->k_type = kv_types.k;
        cfg->v_type = kv_types.v;
        if (kv) continue;
        if (!strcmp(a, "--log-prompts")) {
            cfg->log_prompts = true;
            continue;
        }
        const char *v = cli_value(argc, argv, &i);
        if (!v) return 2;
        long long n = 0;
        double x = 0;
        bool ok = true;
        if (!strcmp(a, "-m")) cfg->model_path = v;
        else if (!strcmp(a, "--host")) cfg->host = v;
        else if (!strcmp(a, "--port")) ok = cli_int(a, v, 0, 65535, &n) && ((cfg->port = (int)n), 1);
        else if (!strcmp(a, "--parallel")) ok = cli_int(a, v, 1, 256, &n) && ((cfg->parallel = (int32_t)n), 1);
        else if (!strcmp(a, "-c")) ok = cli_int(a, v, 16, 1 << 20, &n) && ((cfg->n_ctx = (int32_t)n), 1);
        else if (!strcmp(a, "-b")) ok = cli_int(a, v, 1, 8192, &n) && ((cfg->n_batch = (int32_t)n), 1);
        else if (!strcmp(a, "-t")) ok = cli_int(a, v, 0, 1024, &n) && ((cfg->n_threads = (int32_t)n), 1);
        else if (!strcmp(a, "--max-queue")) ok = cli_int(a, v, 0, 1 << 20, &n) && ((cfg->max_queue = (int32_t)n), 1);
        else if (!strcmp(a, "--max-connections"))
            ok = cli_int(a, v, 1, 1 << 16, &n) && ((cfg->max_connections = (int32_t)n), 1);
        else if (!strcmp(a, "--api-key")) cfg->api_key = v;
        else if (!strcmp(a, "--api-key-file")) ok = (cfg->api_key = *key_owned = read_key_file(v)) != NULL;
        else if (!strcmp(a, "--chat-template")) cfg->chat_template = v;
        else if (!strcmp(a, "--alias")) cfg->alias = v;
        else if (!strcmp(a, "--timeout")) ok = cli_float(a, v, 0.1, 86400 * 7, &x) && ((cfg->request_timeout = x), 1);
        else if (!strcmp(a, "--read-timeout"))
            ok = cli_int(a, v, 1, 3600, &n) && ((cfg->read_timeout = (unsigned)n), 1);
        else if (!strcmp(a, "--max-body"))
            ok = cli_int(a, v, 1024, 1ll << 30, &n) && ((cfg->max_body = (size_t)n), 1);
        else {
            fprintf(stderr, "tandem: unknown option '%s'\n", a);
            return usage(stderr);
        }
        if (!ok) return 2;
    }
    if (!cfg->model_path) return usage(stderr);
    if (cfg->api_key && !cfg->api_key[0]) {
        fprintf(stderr, "tandem: the API key is empty\n");
        return 2;
    }
    if (cfg->n_batch < cfg->parallel) {
        fprintf(stderr, "tandem: -b %d must be at least --parallel %d (one token per sequence per step)\n",
                cfg->n_batch, cfg->parallel);
        return 2;
    }
    return 0;
}

/* The model id: the alias, or the file name without folders. */
static const char *model_id(const srv_config *cfg) {
    if (cfg->alias) return cfg->alias;
    const char *slash = strrchr(cfg->model_path, '/');
    return slash ? slash + 1 : cfg->model_path;
}

int tnd_cmd_serve(int argc, char **argv) {
    srv_json_setup();
    srv_config cfg = {.host = "127.0.0.1", .port = 8080, .parallel = 4, .n_batch = 256, .max_queue = 64,
                      .max_connections = 256, .k_type = TND_TYPE_F16,
                      .v_type = TND_TYPE_F16, .request_timeout = 600, .read_timeout = 15,
                      .max_body = 4u << 20};
    const char *env_key = getenv("TANDEM_API_KEY");
    cfg.api_key = env_key && *env_key ? env_key : NULL;
    char *key_owned = NULL, *eos_text = NULL;
    int32_t *groups = NULL;
    cli_plan_options plan;
    cli_plan_defaults(&plan);
    cli_spec_options spec;
    cli_spec_defaults(&spec);
    cli_draft draft = {0};
    int rc = parse_options(argc, argv, &cfg, &plan, &spec, &key_owned);
    if (rc) {
        free(key_owned);
        return rc < 0 ? 0 : rc;
    }
    /* SIGINT / SIGTERM are taken by sigwait below: block them before any thread starts, so all inherit it */
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);
    signal(SIGPIPE, SIG_IGN);

    rc = 1;
    tnd_model *model = cli_open_model(cfg.model_path);
    tnd_tokenizer *tok = NULL;
    srv_metrics *metrics = NULL;
    srv_engine *engine = NULL;
    srv_http *http = NULL;
    srv_model_info mi = {.id = model_id(&cfg)};
    if (!model) goto cleanup;
    if (tnd_tokenizer_init(model, &tok) != TND_OK) {
        cli_error("tokenizer");
        goto cleanup;
    }
    if (!cfg.n_ctx) cfg.n_ctx = cli_default_context(model);
    tnd_context_params placed = tnd_context_default_params();
    if (!cli_plan_make(&plan, model, &placed, &groups)) goto cleanup;
    cfg.n_devices = placed.n_devices;
    cfg.device_kinds = placed.device_kinds;
    cfg.remote = placed.remote;
    cfg.remote_key_file = placed.remote_key_file;
    cfg.fallback_model = plan.fallback_model;
    cfg.no_follow = plan.no_follow;
    cfg.group_device = placed.group_device;
    cfg.n_groups = placed.n_groups;
    cfg.expert_device = placed.expert_device;
    cfg.expert_cache_slots = placed.expert_cache_slots;
    cfg.expert_cache_policy = placed.expert_cache_policy;
    if (cfg.chat_template && tnd_chat_template_lookup(cfg.chat_template, &mi.chat_template) != TND_OK) {
        cli_error("--chat-template");
        goto cleanup;
    }
    if (!cfg.chat_template && tnd_model_chat_template(model, &mi.chat_template) != TND_OK) {
        fprintf(stderr, "tandem serve: note: /v1/chat/completions is off until --chat-template is given: %s\n",
                tnd_last_error());
        mi.chat_template = NULL;
    }
    int32_t eos = tnd_tokenizer_special(tok, TND_TOKEN_EOS);
    size_t eos_len = 0;
    const char *eos_raw = eos >= 0 ? tnd_tokenizer_token_text(tok, eos, &eos_len) : NULL;
    if (eos_raw && !(eos_text = strndup(eos_raw, eos_len))) goto cleanup;
    mi.tok = tok;
    mi.eos_text = eos_text;
    mi.n_ctx = cfg.n_ctx;
    if (spec.params.source != TND_DRAFT_NONE) {
        /* the draft model's context: like the engine's, a sequence per slot */
        tnd_context_params dp = tnd_context_default_params();
        dp.n_ctx = (cfg.n_ctx + dp.kv_block_size - 1) / dp.kv_block_size * dp.kv_block_size * cfg.parallel;
        dp.n_batch = cfg.n_batch;
        dp.n_threads = cfg.n_threads;
        if (!cli_draft_open(&spec, &dp, cfg.parallel, &draft)) goto cleanup;
        spec.params.draft_context = draft.ctx;
        cfg.spec = &spec.params;
    }
    if (!(metrics = srv_metrics_new())) goto cleanup;
    if (srv_engine_start(&cfg, model, tok, metrics, &engine) != TND_OK) {
        cli_error(cfg.model_path);
        goto cleanup;
    }
    mi.n_vocab = tnd_model_n_vocab(model);
    mi.n_embd = srv_engine_n_embd(engine);
    mi.pooling = tnd_model_pooling(model);
    int port = 0;
    if (srv_http_start(&cfg, &mi, engine, metrics, &http, &port) != TND_OK) goto cleanup;
    bool v6 = strchr(cfg.host, ':') != NULL;
    fprintf(stderr,
            "tandem serve: listening on http://%s%s%s:%d (model %s, %d sequences x %d tokens, chat template "
            "%s%s%s%s)\n",
            v6 ? "[" : "", cfg.host, v6 ? "]" : "", port, mi.id, cfg.parallel, cfg.n_ctx,
            mi.chat_template ? mi.chat_template : "none", cfg.api_key ? ", API key required" : "",
            cfg.spec ? ", speculation " : "", cfg.spec ? tnd_draft_source_name(cfg.spec->source) : "");
    int sig = 0;
    sigwait(&stop_signals, &sig);
    fprintf(stderr, "tandem serve: %s: shutting down\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
    rc = 0;
cleanup:
    srv_engine_stop(engine); /* running requests end with 503, so the connection threads can finish */
    srv_http_stop(http);
    srv_engine_free(engine);
    cli_draft_close(&draft);
    srv_metrics_free(metrics);
    tnd_tokenizer_free(tok);
    tnd_model_close(model);
    free(eos_text);
    free(key_owned);
    free(groups);
    return rc;
}
