/* cmd_cloud.c: `tandem cloud`: serve the middle layers of a model to devices that hold its first and last layers,
 * several at once (docs/REMOTE.md), and `tandem cloud keygen FILE`: the key both sides are given. */
#include "cli_util.h"
#include "commands.h"

#include "remote/remote.h"

#include <stdio.h>
#include <string.h>

static int usage(FILE *f) {
    fprintf(f, "usage: tandem cloud -m MODEL --listen HOST:PORT (--key FILE | --insecure) [options]\n"
               "       tandem cloud keygen FILE\n"
               "  -m MODEL            the model the devices run (the same file: both sides check its id)\n"
               "  --listen HOST:PORT  where devices connect (port 0: any free port, printed)\n"
               "  --key FILE          the pre-shared key (`tandem cloud keygen FILE`): TLS 1.3, both sides authenticated\n"
               "  --insecure          plaintext links instead (anyone on the path reads and alters them)\n"
               "  --parallel N        devices served at once, their steps batched together (default 4)\n"
               "  -c CTX              KV cache tokens kept for each device (default 4096; a device's -c must fit)\n"
               "  -b N                most tokens of one batched step, all devices together (default 512)\n"
               "  -t THREADS          threads for the layers (default: physical cores)\n"
               "  --links N           serve N links in all, then exit (default: for ever)\n");
    cli_kv_usage(f);
    return f == stdout ? 0 : 2;
}

static void log_to_stderr(void *user, tnd_log_level level, const char *message) {
    (void)user;
    fprintf(stderr, "tandem cloud: %s%s\n", level >= TND_LOG_WARN ? "warning: " : "", message);
}

int tnd_cmd_cloud(int argc, char **argv) {
    if (argc >= 2 && !strcmp(argv[1], "keygen")) {
        if (argc != 3) return usage(stderr);
        if (tnd_link_keygen(argv[2]) != TND_OK) {
            cli_error("keygen");
            return 1;
        }
        fprintf(stderr, "tandem cloud: wrote a new key to %s (mode 0600); give the same file to the devices\n", argv[2]);
        return 0;
    }
    const char *model_path = NULL, *listen = NULL, *key_file = NULL;
    bool insecure = false;
    tnd_cloud_params cp = tnd_cloud_default_params();
    long long threads = 0, links = 0, devices = cp.n_devices, n_ctx = cp.n_ctx, n_batch = cp.n_batch;
    cli_kv_types kv;
    cli_kv_defaults(&kv);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) return usage(stdout);
        if (!strcmp(a, "--insecure")) {
            insecure = true;
            continue;
        }
        int kv_option = cli_kv_parse(&kv, argc, argv, &i);
        if (kv_option < 0) return 2;
        if (kv_option) continue;
        const char *v = cli_value(argc, argv, &i);
        if (!v) return 2;
        bool ok = true;
        if (!strcmp(a, "-m")) model_path = v;
        else if (!strcmp(a, "--listen")) listen = v;
        else if (!strcmp(a, "--key")) key_file = v;
        else if (!strcmp(a, "-t")) ok = cli_int(a, v, 0, 1024, &threads);
        else if (!strcmp(a, "--links")) ok = cli_int(a, v, 0, 1 << 30, &links);
        else if (!strcmp(a, "--parallel")) ok = cli_int(a, v, 1, 1024, &devices);
        else if (!strcmp(a, "-c")) ok = cli_int(a, v, 1, 1 << 24, &n_ctx);
        else if (!strcmp(a, "-b")) ok = cli_int(a, v, 1, 1 << 16, &n_batch);
        else return fprintf(stderr, "tandem: unknown option '%s'\n", a), usage(stderr);
        if (!ok) return 2;
    }
    if (!model_path || !listen || (!key_file && !insecure)) return usage(stderr);
    tnd_link_key key;
    if (key_file && tnd_link_key_load(key_file, &key) != TND_OK) {
        cli_error("--key");
        return 1;
    }
    if (!key_file)
        fprintf(stderr, "tandem cloud: warning: plaintext links (--insecure): anyone on the path can read and alter "
                        "them\n");
    tnd_model_params mp = tnd_model_default_params();
    mp.log = log_to_stderr;
    mp.log_level = TND_LOG_INFO;
    tnd_model *m = NULL;
    if (tnd_model_open(model_path, &mp, &m) != TND_OK) {
        cli_error(model_path);
        return 1;
    }
    tnd_listener *lis = NULL;
    int rc = 1;
    if (tnd_listener_open(listen, &lis) != TND_OK) {
        cli_error("--listen");
        goto done;
    }
    fprintf(stderr, "tandem cloud: serving %s on port %d (%s), %lld devices at once, %lld KV tokens each\n",
            model_path, tnd_listener_port(lis), key_file ? "TLS 1.3, pre-shared key" : "plaintext", devices, n_ctx);
    cp.n_threads = (int32_t)threads;
    cp.max_links = (int32_t)links;
    cp.n_devices = (int32_t)devices;
    cp.n_ctx = (int32_t)n_ctx;
    cp.n_batch = (int32_t)n_batch;
    cp.k_type = kv.k;
    cp.v_type = kv.v;
    if (tnd_cloud_serve(m, lis, key_file ? &key : NULL, &cp) != TND_OK) {
        cli_error("cloud");
        goto done;
    }
    rc = 0;
done:
    tnd_listener_close(lis);
    tnd_model_close(m);
    memset(&key, 0, sizeof key);
    return rc;
}
