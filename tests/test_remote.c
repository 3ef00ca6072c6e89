/* test_remote.c: a device and a cloud running one model together over loopback (the cloud on a thread of this
 * process, serving a model handle of its own): the middle layers in the cloud give the local model's greedy text and
 * logits within the F16 hand-off's rounding, over TLS and plaintext; a cloud with another model, a wrong key and a
 * plan that gives the cloud the embedding are refused with the reason; a tap on a plaintext link finds no token id;
 * a link cut or stalled mid-answer is found within a second and the generation goes on here with the local model's
 * tokens; `tandem run` split over a `tandem cloud` process prints the local text, and over a link cut mid-answer
 * too; --fallback-model takes over where the cloud is gone, and one of another vocabulary is refused. */
#include "harness.h"

#include "model/forward.h"
#include "remote/remote.h"
#include "runtime/context.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { N_PROMPT = 12, N_GREEDY = 24 };
static const int32_t prompt[N_PROMPT] = {1, 403, 407, 261, 378, 436, 300, 290, 259, 268, 421, 375};
static char dir[] = "/tmp/tnd_remote_XXXXXX", key_a[256], key_b[256];

typedef struct cloud_job {
    tnd_model *model;
    tnd_listener *listener;
    const tnd_link_key *key;
    int32_t links;
    int32_t block_size; /* of the KV cache: 0 = 16 */
    tnd_cloud_stats stats;
} cloud_job;

/* The geometry of the devices of these tests: blocks of 16 tokens (several to a prompt: the tables cross the link)
 * or, for the command line, its default; a context of up to 512. */
static void *cloud(void *arg) {
    cloud_job *j = arg;
    tnd_cloud_params p = tnd_cloud_default_params();
    p.block_size = j->block_size ? j->block_size : 16;
    p.n_ctx = 512;
    p.n_threads = 1;
    p.max_links = j->links;
    p.stats = &j->stats;
    tnd_cloud_serve(j->model, j->listener, j->key, &p);
    return NULL;
}

/* ------------------------------------------------------------------------------------------------------------
 * A tap on a plaintext link: what the device sends holds no token id
 * ---------------------------------------------------------------------------------------------------------- */

typedef struct tap {
    int listen_fd, cloud_port;
    uint8_t *seen; /* what the device sent */
    size_t n_seen, cap;
    size_t fail_after; /* > 0: after the device sent this many bytes, the link is cut (or stalls with `stall`) */
    bool stall;
    bool stall_at_ping; /* the link stalls once the device's first heartbeat went through (its PONG never comes) */
} tap;

static int count_frames(const tap *t, tnd_wire_type type);

/* Forwards one connection to the cloud both ways, keeping the device's bytes. A link that fails is cut (both
 * sockets closed) or stalls: nothing more goes either way until the device leaves. */
static void *tap_run(void *arg) {
    tap *t = arg;
    int dev = accept(t->listen_fd, NULL, NULL), cl = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)t->cloud_port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (dev < 0 || connect(cl, (struct sockaddr *)&sa, sizeof sa) != 0) goto done;
    int one = 1; /* as the link's own sockets: no small message waits for the last one's acknowledgement */
    setsockopt(dev, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(cl, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    for (;;) {
        struct pollfd p[2] = {{.fd = dev, .events = POLLIN}, {.fd = cl, .events = POLLIN}};
        /* quiet for longer than a heartbeat period (5 s) with room: an idle link is not a dead one (at 5 s the tap
         * raced the heartbeat and could cut the link first on a slow run, under TSan) */
        if (poll(p, 2, 15000) <= 0) break;
        uint8_t buf[65536];
        int from = p[0].revents ? 0 : 1;
        ssize_t n = read(p[from].fd, buf, sizeof buf);
        if (n <= 0 || write(p[1 - from].fd, buf, (size_t)n) != n) break;
        if (from == 0) {
            if (t->n_seen + (size_t)n > t->cap) t->seen = realloc(t->seen, t->cap = 2 * (t->n_seen + (size_t)n));
            memcpy(t->seen + t->n_seen, buf, (size_t)n);
            t->n_seen += (size_t)n;
            if (t->fail_after && t->n_seen >= t->fail_after) break;
            if (t->stall_at_ping && count_frames(t, TND_WIRE_PING) > 0) break;
        }
    }
    if (t->stall || t->stall_at_ping) { /* hold both sockets open, reading nothing, until the device leaves (or 10 s) */
        uint8_t sink[4096];
        struct pollfd p = {.fd = dev, .events = POLLIN};
        while (poll(&p, 1, 10000) > 0 && read(dev, sink, sizeof sink) > 0) {}
    }
done:
    if (dev >= 0) close(dev);
    close(cl);
    return NULL;
}

/* A tap listening on loopback for one device; its address into hp. */
static bool tap_open(tap *t, int cloud_port, char *hp, size_t cap) {
    *t = (tap){.listen_fd = socket(AF_INET, SOCK_STREAM, 0), .cloud_port = cloud_port};
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t sl = sizeof sa;
    bool ok = bind(t->listen_fd, (struct sockaddr *)&sa, sizeof sa) == 0 && listen(t->listen_fd, 1) == 0 &&
              getsockname(t->listen_fd, (struct sockaddr *)&sa, &sl) == 0;
    snprintf(hp, cap, "127.0.0.1:%d", ntohs(sa.sin_port));
    return ok;
}

/* A cloud on a thread of this process, behind a tap where asked: hp is where a device connects. */
typedef struct bed_options {
    int32_t links;            /* links the cloud serves before it returns (0: 1) */
    int32_t block_size;       /* of its KV cache (0: 16) */
    const tnd_link_key *key;  /* NULL: plaintext */
    bool tapped;
    size_t fail_after;        /* the tap's */
    bool stall, stall_at_ping;
} bed_options;

typedef struct bed {
    tnd_listener *lis;
    cloud_job job;
    tap t;
    bool tapped;
    pthread_t tc, tt;
    char hp[64];
} bed;

/* (Again) the cloud's thread and the tap's, for their next links. */
static void bed_start(bed *b) {
    pthread_create(&b->tc, NULL, cloud, &b->job);
    if (b->tapped) pthread_create(&b->tt, NULL, tap_run, &b->t);
}

static bool bed_open(bed *b, tnd_model *cloud_model, bed_options o) {
    *b = (bed){.tapped = o.tapped, .t.listen_fd = -1};
    if (!CHECK_OK(tnd_listener_open("127.0.0.1:0", &b->lis))) return false;
    b->job = (cloud_job){.model = cloud_model, .listener = b->lis, .key = o.key, .links = o.links ? o.links : 1,
                         .block_size = o.block_size};
    if (o.tapped) {
        CHECK(tap_open(&b->t, tnd_listener_port(b->lis), b->hp, sizeof b->hp));
        b->t.fail_after = o.fail_after;
        b->t.stall = o.stall;
        b->t.stall_at_ping = o.stall_at_ping;
    } else {
        snprintf(b->hp, sizeof b->hp, "127.0.0.1:%d", tnd_listener_port(b->lis));
    }
    bed_start(b);
    return true;
}

/* Waits until the tap and the cloud are done with their links. */
static void bed_join(bed *b) {
    if (b->tapped) pthread_join(b->tt, NULL);
    pthread_join(b->tc, NULL);
}

/* After bed_join. */
static void bed_close(bed *b) {
    free(b->t.seen);
    if (b->t.listen_fd >= 0) close(b->t.listen_fd);
    tnd_listener_close(b->lis);
}

/* The frames of `type` the device sent through the tap. */
static int count_frames(const tap *t, tnd_wire_type type) {
    int n = 0;
    for (size_t at = 0; at + TND_WIRE_HEADER_BYTES <= t->n_seen;) {
        tnd_wire_header h;
        if (tnd_wire_get_header(t->seen + at, &h) != TND_OK) break;
        n += h.type == type;
        at += TND_WIRE_HEADER_BYTES + h.length;
    }
    return n;
}

/* Context params of these tests (a context of 512 tokens in blocks of 16, one thread) on n_devices of `kinds`, the
 * cloud at host_port. */
static tnd_context_params test_params(int32_t n_devices, const int32_t *kinds, const char *host_port) {
    tnd_context_params p = tnd_context_default_params();
    p.n_ctx = 512;
    p.n_threads = 1;
    p.kv_block_size = 16;
    p.n_devices = n_devices;
    p.device_kinds = kinds;
    p.remote = host_port;
    return p;
}

/* Whether file `name` of the test's folder holds `phrase`. */
static bool file_says(const char *name, const char *phrase) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    size_t n = 0;
    uint8_t *bytes = tnd_test_read_file(path, &n);
    char *text = bytes ? malloc(n + 1) : NULL;
    bool says = false;
    if (text) {
        memcpy(text, bytes, n);
        text[n] = 0;
        says = strstr(text, phrase) != NULL;
    }
    free(bytes);
    free(text);
    return says;
}

/* Waits up to 10 s until file `name` (a process's log) holds `phrase`. */
static bool wait_for_log(const char *name, const char *phrase) {
    for (int i = 0; i < 500; i++, usleep(20000))
        if (file_says(name, phrase)) return true;
    return false;
}

/* The logits at every position of prompt `toks`, then N_GREEDY greedy tokens, with the plan of `kinds` (3 devices:
 * layers split evenly; the middle one the cloud at host_port). */
static bool run_prompt(tnd_model *m, int32_t n_devices, const int32_t *kinds, const char *host_port,
                       const char *key_file, const int32_t *toks, int32_t n_toks, float *logits, int32_t *greedy) {
    tnd_context_params p = test_params(n_devices, kinds, host_port);
    p.remote_key_file = key_file;
    tnd_context *ctx = NULL;
    if (tnd_context_init(m, &p, &ctx) != TND_OK) return false;
    int32_t n_vocab = tnd_model_n_vocab(m), *pos = malloc(sizeof(int32_t) * (size_t)n_toks),
            *seq = calloc((size_t)n_toks, sizeof(int32_t));
    int8_t *want = malloc((size_t)n_toks);
    for (int i = 0; i < n_toks; i++) pos[i] = i, want[i] = 1;
    tnd_batch b = {.n_tokens = n_toks, .tokens = toks, .pos = pos, .seq_id = seq, .logits = want};
    bool ok = tnd_context_decode(ctx, &b) == TND_OK;
    for (int i = 0; i < n_toks && ok; i++)
        memcpy(logits + (size_t)i * n_vocab, tnd_context_logits(ctx, i), sizeof(float) * (size_t)n_vocab);
    int32_t token = 0, position = n_toks;
    for (int i = 0; i < N_GREEDY && ok; i++) {
        const float *l = tnd_context_logits(ctx, i == 0 ? n_toks - 1 : 0);
        token = 0;
        for (int32_t v = 1; v < n_vocab; v++)
            if (l[v] > l[token]) token = v;
        greedy[i] = token;
        int8_t one = 1;
        tnd_batch step = {.n_tokens = 1, .tokens = &token, .pos = &position, .seq_id = seq, .logits = &one};
        ok = tnd_context_decode(ctx, &step) == TND_OK;
        position++;
    }
    tnd_context_free(ctx);
    free(pos);
    free(seq);
    free(want);
    return ok;
}

static bool run(tnd_model *m, int32_t n_devices, const int32_t *kinds, const char *host_port, const char *key_file,
                float *logits, int32_t *greedy) {
    return run_prompt(m, n_devices, kinds, host_port, key_file, prompt, N_PROMPT, logits, greedy);
}

/* The split against the local model, through a cloud with `cloud_key` reached with `device_key_file`. */
static void check_split(tnd_model *local, tnd_model *cloud_model, const tnd_link_key *cloud_key,
                        const char *device_key_file, const float *want_logits, const int32_t *want_greedy,
                        const char *label) {
    bed b;
    if (!bed_open(&b, cloud_model, (bed_options){.key = cloud_key})) return;
    int32_t n_vocab = tnd_model_n_vocab(local), greedy[N_GREEDY];
    float *logits = malloc(sizeof(float) * N_PROMPT * (size_t)n_vocab);
    const int32_t kinds[3] = {0, TND_DEVICE_REMOTE, 0};
    bool ok = run(local, 3, kinds, b.hp, device_key_file, logits, greedy);
    if (!CHECK(ok)) fprintf(stderr, "  %s: %s\n", label, tnd_last_error());
    if (ok) {
        double e = tnd_test_nmse(logits, want_logits, (size_t)N_PROMPT * n_vocab);
        bool same = !memcmp(greedy, want_greedy, sizeof greedy);
        printf("%s: logits NMSE %.3g against the local model, greedy %s\n", label, e, same ? "equal" : "DIFFERS");
        CHECK(e < 1e-5 && same);
    }
    bed_join(&b);
    bed_close(&b);
    free(logits);
}

/* A prompt long enough to cross the link in slices several at a time (TND_PIPELINE_SLICE): the same logits at every
 * position and the same greedy tokens as the local model. */
static void check_pipelined(tnd_model *local, tnd_model *cloud_model) {
    enum { N_LONG = 300 };
    int32_t toks[N_LONG], n_vocab = tnd_model_n_vocab(local), want_greedy[N_GREEDY], greedy[N_GREEDY];
    uint32_t x = 12345;
    toks[0] = 1;
    for (int i = 1; i < N_LONG; i++) toks[i] = 3 + (int32_t)((x = x * 1103515245u + 12345u) >> 8) % (n_vocab - 3);
    size_t bytes = sizeof(float) * N_LONG * (size_t)n_vocab;
    float *want = malloc(bytes), *got = malloc(bytes);
    const int32_t cpu_only[1] = {0}, kinds[3] = {0, TND_DEVICE_REMOTE, 0};
    CHECK(run_prompt(local, 1, cpu_only, NULL, NULL, toks, N_LONG, want, want_greedy));
    bed b;
    if (bed_open(&b, cloud_model, (bed_options){0})) {
        bool ok = run_prompt(local, 3, kinds, b.hp, NULL, toks, N_LONG, got, greedy);
        if (!CHECK(ok)) fprintf(stderr, "  pipelined: %s\n", tnd_last_error());
        if (ok) {
            double e = tnd_test_nmse(got, want, (size_t)N_LONG * n_vocab);
            bool same = !memcmp(greedy, want_greedy, sizeof greedy);
            printf("a %d-token prompt in slices of %d in flight: logits NMSE %.3g against the local model, greedy %s\n",
                   N_LONG, TND_PIPELINE_SLICE, e, same ? "equal" : "DIFFERS");
            CHECK(e < 1e-5 && same);
        }
        bed_join(&b);
        bed_close(&b);
    }
    free(want);
    free(got);
}

/* Several devices on one cloud at once, each greedy on a prompt of its own: every one gets the local model's tokens
 * for its prompt while the cloud batches the steps that wait together. */
enum { N_AT_ONCE = 3 };

typedef struct device_job {
    tnd_model *model;
    const char *host_port;
    int32_t toks[N_PROMPT], greedy[N_GREEDY];
    float *logits;
    bool ok;
} device_job;

static void *device_run(void *arg) {
    device_job *j = arg;
    const int32_t kinds[3] = {0, TND_DEVICE_REMOTE, 0};
    j->ok = run_prompt(j->model, 3, kinds, j->host_port, NULL, j->toks, N_PROMPT, j->logits, j->greedy);
    return NULL;
}

static void check_devices_at_once(tnd_model *local, tnd_model *cloud_model) {
    bed b;
    if (!bed_open(&b, cloud_model, (bed_options){.links = N_AT_ONCE})) return;
    pthread_t td[N_AT_ONCE];
    int32_t n_vocab = tnd_model_n_vocab(local);
    const int32_t cpu_only[1] = {0};
    device_job jobs[N_AT_ONCE];
    for (int d = 0; d < N_AT_ONCE; d++) {
        jobs[d] = (device_job){.model = local, .host_port = b.hp,
                               .logits = malloc(sizeof(float) * N_PROMPT * (size_t)n_vocab)};
        for (int i = 0; i < N_PROMPT; i++) jobs[d].toks[i] = prompt[(i + 3 * d) % N_PROMPT];
        pthread_create(&td[d], NULL, device_run, &jobs[d]);
    }
    bool all_same = true;
    for (int d = 0; d < N_AT_ONCE; d++) {
        pthread_join(td[d], NULL);
        int32_t want[N_GREEDY];
        float *want_logits = malloc(sizeof(float) * N_PROMPT * (size_t)n_vocab);
        bool same = CHECK(jobs[d].ok) &&
                    CHECK(run_prompt(local, 1, cpu_only, NULL, NULL, jobs[d].toks, N_PROMPT, want_logits, want)) &&
                    !memcmp(want, jobs[d].greedy, sizeof want) &&
                    tnd_test_nmse(jobs[d].logits, want_logits, (size_t)N_PROMPT * n_vocab) < 1e-5;
        all_same &= same;
        free(want_logits);
        free(jobs[d].logits);
    }
    bed_join(&b);
    const tnd_cloud_stats *cs = &b.job.stats;
    printf("%d devices at once on one cloud: %s; %lld device steps in %lld forward passes (at most %d devices in "
           "one)\n", N_AT_ONCE, all_same ? "each the local model's logits and tokens" : "SOMETHING DIFFERS",
           (long long)cs->device_steps, (long long)cs->batched_steps, cs->most_devices);
    CHECK(all_same && cs->device_steps == N_AT_ONCE * (1 + N_GREEDY));
    bed_close(&b);
}

/* Every byte the device sent is a frame of HELLO, STEP, COPY_BLOCKS or BYE, and every STEP decodes exactly into
 * positions, slots, context lengths, block tables and hidden states: there is no room for a token id. */
static void check_tap(tnd_model *local, tnd_model *cloud_model) {
    bed b;
    if (!bed_open(&b, cloud_model, (bed_options){.tapped = true})) return;
    const tap *t = &b.t;
    int32_t n_vocab = tnd_model_n_vocab(local), greedy[N_GREEDY];
    float *logits = malloc(sizeof(float) * N_PROMPT * (size_t)n_vocab);
    const int32_t kinds[3] = {0, TND_DEVICE_REMOTE, 0};
    CHECK(run(local, 3, kinds, b.hp, NULL, logits, greedy));
    bed_join(&b);
    int frames = 0, steps = 0;
    bool clean = true;
    uint32_t pos[64], slot[64], n_ctx[64], table_at[64], tables[256];
    float *hidden = malloc(sizeof(float) * 64 * 4096);
    for (size_t at = 0; at + TND_WIRE_HEADER_BYTES <= t->n_seen && clean;) {
        tnd_wire_header h;
        clean = tnd_wire_get_header(t->seen + at, &h) == TND_OK && at + TND_WIRE_HEADER_BYTES + h.length <= t->n_seen &&
                (h.type == TND_WIRE_HELLO || h.type == TND_WIRE_STEP || h.type == TND_WIRE_COPY_BLOCKS ||
                 h.type == TND_WIRE_BYE);
        if (clean && h.type == TND_WIRE_STEP) {
            tnd_wire_step ws = {.pos = pos, .slot = slot, .n_ctx = n_ctx, .table_at = table_at, .tables = tables,
                                .hidden = hidden};
            tnd_wire_reader r = {.data = t->seen + at + TND_WIRE_HEADER_BYTES, .len = h.length};
            clean = tnd_wire_get_step(&r, 64, 64, 256, 16, &ws) == TND_OK; /* it reads the payload to its end */
            steps++;
        }
        at += TND_WIRE_HEADER_BYTES + h.length;
        frames++;
    }
    printf("tap on a plaintext link: %d frames from the device, %d steps, %s\n", frames, steps,
           clean ? "only positions, KV slots, block tables and hidden states" : "SOMETHING ELSE");
    CHECK(clean && steps == 1 + N_GREEDY);
    free(hidden);
    free(logits);
    bed_close(&b);
}

/* The device drafts with a model of its own and the split verifies each draft in one step, one round trip: the
 * local model's greedy tokens, in fewer round trips than tokens (the tap counts the steps). The draft here is the
 * model itself, run here: every drafted token is accepted. */
static void check_drafted(tnd_model *local, tnd_model *cloud_model, const int32_t *want_greedy) {
    bed b;
    if (!bed_open(&b, cloud_model, (bed_options){.tapped = true})) return;
    const int32_t kinds[3] = {0, TND_DEVICE_REMOTE, 0};
    tnd_context_params p = test_params(3, kinds, b.hp), dp = test_params(1, NULL, NULL);
    tnd_context *split = NULL, *draft = NULL;
    tnd_tokenizer *tok = NULL;
    tnd_session *s = NULL;
    CHECK_OK(tnd_tokenizer_init(local, &tok));
    CHECK_OK(tnd_context_init(local, &dp, &draft));
    if (CHECK_OK(tnd_context_init(local, &p, &split)) && CHECK_OK(tnd_session_init(split, tok, 0, 0, &s))) {
        tnd_speculation_params sp = tnd_speculation_default_params();
        sp.source = TND_DRAFT_MODEL;
        sp.draft_context = draft;
        sp.draft_max = 4;
        sp.adaptive = 0;
        sp.p_min = 0; /* the whole draft, however unsure the draft model is */
        CHECK_OK(tnd_session_set_speculation(s, &sp));
        tnd_generate_params g = tnd_generate_default_params();
        g.sampling.temperature = 0;
        g.ignore_eog = 1;
        g.max_tokens = N_GREEDY;
        CHECK_OK(tnd_session_start(s, &g, prompt, N_PROMPT));
        CHECK_OK(tnd_session_generate(s));
        int32_t n = 0;
        const int32_t *tokens = tnd_session_tokens(s, &n);
        bool same = n == N_PROMPT + N_GREEDY && !memcmp(tokens + N_PROMPT, want_greedy, sizeof(int32_t) * N_GREEDY);
        tnd_speculation_stats ss;
        tnd_session_speculation_stats(s, &ss);
        tnd_session_free(s);
        s = NULL;
        tnd_context_free(split); /* the link ends: the tap has every step */
        split = NULL;
        bed_join(&b);
        int steps = count_frames(&b.t, TND_WIRE_STEP);
        printf("device drafts, the split verifies: %d tokens in %d round trips (%lld of %lld drafted accepted), greedy "
               "%s\n", N_GREEDY, steps - 1, (long long)ss.n_accepted, (long long)ss.n_drafted,
               same ? "equal to the local model" : "DIFFERS");
        CHECK(same && ss.n_accepted > 0 && steps - 1 < N_GREEDY / 2);
    } else {
        tnd_context_free(split);
        split = NULL;
        bed_join(&b);
    }
    tnd_session_free(s);
    tnd_context_free(draft);
    tnd_tokenizer_free(tok);
    bed_close(&b);
}

static int free_port(void);

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* An idle link carries a heartbeat (PING, answered by PONG, which the device passes over), and a step after it
 * gives the local model's logits. Beside it, a link that stalls while idle, its first PING unanswered: the device
 * finds it on its own, so the step after it fails at once, naming the heartbeat, and not at that step's deadline. */
static void check_heartbeat(tnd_model *local, tnd_model *cloud_model) {
    bed b[2];
    if (!bed_open(&b[0], cloud_model, (bed_options){.tapped = true})) return;
    if (!bed_open(&b[1], cloud_model, (bed_options){.tapped = true, .stall_at_ping = true})) return;
    int32_t n_vocab = tnd_model_n_vocab(local), greedy[N_GREEDY];
    float *want = malloc(sizeof(float) * N_PROMPT * (size_t)n_vocab);
    const int32_t cpu_only[1] = {0}, kinds[3] = {0, TND_DEVICE_REMOTE, 0};
    CHECK(run_prompt(local, 1, cpu_only, NULL, NULL, prompt, N_PROMPT, want, greedy));
    int32_t pos[N_PROMPT], seq[N_PROMPT] = {0};
    int8_t last[N_PROMPT] = {0};
    for (int i = 0; i < N_PROMPT; i++) pos[i] = i;
    last[N_PROMPT - 1] = 1;
    tnd_batch first = {.n_tokens = N_PROMPT - 1, .tokens = prompt, .pos = pos, .seq_id = seq, .logits = last};
    tnd_batch then = {.n_tokens = 1, .tokens = prompt + N_PROMPT - 1, .pos = pos + N_PROMPT - 1, .seq_id = seq,
                      .logits = last + N_PROMPT - 1};
    tnd_context *ctx[2] = {NULL, NULL};
    bool ok[2];
    for (int i = 0; i < 2; i++) {
        tnd_context_params p = test_params(3, kinds, b[i].hp);
        ok[i] = CHECK_OK(tnd_context_init(local, &p, &ctx[i])) && CHECK_OK(tnd_context_decode(ctx[i], &first));
    }
    sleep(9); /* idle past the heartbeat (5 s) and past its answer's deadline (3 s) */
    if (ok[0]) ok[0] = CHECK_OK(tnd_context_decode(ctx[0], &then));
    double e = ok[0] ? tnd_test_nmse(tnd_context_logits(ctx[0], 0), want + (size_t)(N_PROMPT - 1) * n_vocab,
                                     (size_t)n_vocab) : 1;
    /* the device's profile of its stages: what it waited, and the part the cloud reports computing */
    tnd_context_profile prof;
    tnd_context_profile_get(ctx[0], &prof, 0);
    printf("the profile of %llu stages: waited %.2f ms, the cloud computing %.2f ms of it\n",
           (unsigned long long)prof.link_stages, prof.link_seconds * 1e3, prof.link_compute_seconds * 1e3);
    CHECK(prof.link_stages == 2 && prof.link_compute_seconds > 0 && prof.link_seconds > prof.link_compute_seconds);
    double t0 = now_s();
    tnd_status st = ok[1] ? tnd_context_decode(ctx[1], &then) : TND_ERR_INTERNAL;
    double took = now_s() - t0;
    bool named = strstr(tnd_last_error(), "heartbeat") != NULL;
    printf("a stalled idle link: the step after it failed in %.1f ms (status %d: %s)\n", took * 1e3, (int)st,
           tnd_last_error());
    CHECK(st == TND_ERR_DEVICE_LOST && named && took < 0.1);
    for (int i = 0; i < 2; i++) tnd_context_free(ctx[i]);
    for (int i = 0; i < 2; i++) bed_join(&b[i]);
    int pings = count_frames(&b[0].t, TND_WIRE_PING);
    printf("an idle link: %d heartbeat(s) in 9 s, the step after them NMSE %.3g against the local model\n", pings, e);
    CHECK(pings >= 1 && e < 1e-5);
    free(want);
    for (int i = 0; i < 2; i++) bed_close(&b[i]);
}

/* ------------------------------------------------------------------------------------------------------------
 * The link dies mid-answer: the generation goes on locally
 * ---------------------------------------------------------------------------------------------------------- */

/* What a greedy session split over the cloud at hp did, going on here where the link was lost. */
typedef struct fallback_run {
    bool same;          /* the local model's greedy tokens */
    int32_t lost_at;    /* tokens generated when the link was lost (-1: never) */
    double t_lost;      /* seconds the failing step took */
    double t_next;      /* seconds from the move to the next token */
    double step_before; /* the median decode step before the loss */
    bool taken_over;    /* with a stand-in: the context says it took the cloud's layers over */
    double t_slowest;   /* with a stand-in: the slowest step (the one that found the loss) */
    char why[400];      /* ... and what it says of it */
    char lost_why[400]; /* the error of the step that found the loss */
} fallback_run;

static int by_value(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static fallback_run greedy_with_fallback(tnd_model *local, const char *hp, const int32_t *want_greedy,
                                         bool stand_in) {
    fallback_run r = {.lost_at = -1};
    const int32_t kinds[3] = {0, TND_DEVICE_REMOTE, 0};
    tnd_context_params p = test_params(3, kinds, hp), lp = test_params(1, NULL, NULL);
    p.remote_stand_in = stand_in;
    tnd_context *split = NULL, *here = NULL;
    tnd_tokenizer *tok = NULL;
    tnd_session *s = NULL;
    double steps[N_GREEDY + 1];
    int n_steps = 0;
    CHECK_OK(tnd_tokenizer_init(local, &tok));
    if (CHECK_OK(tnd_context_init(local, &p, &split)) && CHECK_OK(tnd_session_init(split, tok, 0, 0, &s))) {
        tnd_generate_params g = tnd_generate_default_params();
        g.sampling.temperature = 0;
        g.ignore_eog = 1;
        g.max_tokens = N_GREEDY;
        CHECK_OK(tnd_session_start(s, &g, prompt, N_PROMPT));
        for (bool first = true; tnd_session_finish_reason(s) == TND_FINISH_NONE; first = false) {
            double t0 = now_s();
            tnd_status st = tnd_session_step(s);
            if (st == TND_ERR_DEVICE_LOST && r.lost_at < 0) {
                r.t_lost = now_s() - t0;
                snprintf(r.lost_why, sizeof r.lost_why, "%s", tnd_last_error());
                tnd_session_stats ss;
                tnd_session_stats_get(s, &ss);
                r.lost_at = ss.n_generated;
                if (!CHECK_OK(tnd_context_init(local, &lp, &here)) || !CHECK_OK(tnd_session_move(s, here, 0))) break;
                t0 = now_s();
                CHECK_OK(tnd_session_step(s)); /* the record evaluated again, and the next token */
                r.t_next = now_s() - t0;
            } else if (!CHECK_OK(st)) {
                break;
            } else if (!first && r.lost_at < 0) {
                steps[n_steps++] = now_s() - t0;
            }
            if (now_s() - t0 > r.t_slowest) r.t_slowest = now_s() - t0;
        }
        r.taken_over = tnd_context_cloud_lost(split, r.why, sizeof r.why);
        int32_t n = 0;
        const int32_t *tokens = tnd_session_tokens(s, &n);
        r.same = n == N_PROMPT + N_GREEDY && !memcmp(tokens + N_PROMPT, want_greedy, sizeof(int32_t) * N_GREEDY);
    }
    qsort(steps, (size_t)n_steps, sizeof *steps, by_value);
    r.step_before = n_steps ? steps[n_steps / 2] : 0;
    tnd_session_free(s);
    tnd_context_free(here);
    tnd_context_free(split);
    tnd_tokenizer_free(tok);
    return r;
}

/* A greedy session split over a link that is cut (or stalls) after a few steps: the step fails with
 * TND_ERR_DEVICE_LOST (a stall within the step's deadline, well under a second), the session moves to a context of
 * the whole model here and its tokens are the local model's. */
static void check_fallback(tnd_model *local, tnd_model *cloud_model, const int32_t *want_greedy, bool stall) {
    bed b; /* the tap fails after the handshake, the prompt and about ten decode steps */
    if (!bed_open(&b, cloud_model, (bed_options){.tapped = true, .fail_after = 4000, .stall = stall})) return;
    fallback_run r = greedy_with_fallback(local, b.hp, want_greedy, false);
    printf("link %s after %d of %d tokens: lost after %.3f s in the step, next token here %.3f s later, greedy %s\n",
           stall ? "stalls" : "cut", r.lost_at, N_GREEDY, r.t_lost, r.t_next,
           r.same ? "equal to the local model" : "DIFFERS");
    CHECK(r.lost_at > 0 && r.lost_at < N_GREEDY && r.same && r.t_lost < 1.0);
    bed_join(&b);
    bed_close(&b);
}

/* The same with the cloud's stand-in (remote_stand_in): no step fails; the stand-in takes the cloud's layers over
 * within the step that found the loss, and the tokens are the local model's. Cut or stalled after `fail_after` bytes
 * from the device: early (the prompt's step in flight, the stand-in's context perhaps still being made) or after
 * several decode steps. */
static void check_stand_in(tnd_model *local, tnd_model *cloud_model, const int32_t *want_greedy, bool stall,
                           size_t fail_after) {
    bed b;
    if (!bed_open(&b, cloud_model, (bed_options){.tapped = true, .fail_after = fail_after, .stall = stall})) return;
    fallback_run r = greedy_with_fallback(local, b.hp, want_greedy, true);
    printf("stand-in, link %s after %zu bytes: no step failed: %s, slowest step %.3f s, greedy %s\n  %s\n",
           stall ? "stalls" : "cut", fail_after, r.lost_at < 0 ? "yes" : "NO", r.t_slowest,
           r.same ? "equal to the local model" : "DIFFERS", r.why);
    CHECK(r.lost_at < 0 && r.same && r.taken_over && strstr(r.why, "stand-in caught up in") &&
          strstr(r.why, "the cloud link is lost"));
    CHECK(r.t_slowest < (stall ? 1.5 : 1.0));
    bed_join(&b);
    bed_close(&b);
}

/* A stand-in that gave up (here: its log may hold 64 bytes, less than a step) leaves a loss as it was without one:
 * the step fails with TND_ERR_DEVICE_LOST, saying why beside the loss, and the session goes on in a context here. */
static void check_stand_in_gave_up(tnd_model *local, tnd_model *cloud_model, const int32_t *want_greedy) {
    bed b; /* (the environment changes while no other thread runs: the cloud's reads it as it starts) */
    setenv("TANDEM_STAND_IN_LOG_LIMIT", "64", 1);
    if (!bed_open(&b, cloud_model, (bed_options){.tapped = true, .fail_after = 4000})) {
        unsetenv("TANDEM_STAND_IN_LOG_LIMIT");
        return;
    }
    fallback_run r = greedy_with_fallback(local, b.hp, want_greedy, true);
    printf("a stand-in that gave up: the loss after %d tokens: %s; greedy %s\n", r.lost_at, r.lost_why,
           r.same ? "equal to the local model" : "DIFFERS");
    CHECK(r.lost_at > 0 && !r.taken_over && r.same && strstr(r.lost_why, "the cloud link is lost") &&
          strstr(r.lost_why, "the cloud's stand-in gave up: it fell more than 0 KiB of steps behind the cloud"));
    bed_join(&b);
    unsetenv("TANDEM_STAND_IN_LOG_LIMIT");
    bed_close(&b);
}

/* TANDEM_FAULT wraps a cloud device stage by stage: step:N@remote0 loses the N-th stage's answer (the link itself
 * stays well), and the session goes on here as after a real loss. */
static void check_fault_on_cloud(tnd_model *local, tnd_model *cloud_model, const int32_t *want_greedy) {
    bed b; /* (the environment changes while no other thread runs: the cloud's reads it as it starts) */
    setenv("TANDEM_FAULT", "step:8@remote0", 1);
    if (!bed_open(&b, cloud_model, (bed_options){0})) {
        unsetenv("TANDEM_FAULT");
        return;
    }
    fallback_run r = greedy_with_fallback(local, b.hp, want_greedy, false);
    printf("TANDEM_FAULT=step:8@remote0: lost after %d tokens (%s), greedy %s\n", r.lost_at, r.lost_why,
           r.same ? "equal to the local model" : "DIFFERS");
    CHECK(r.lost_at == 7 /* the prompt's stage gave the first token, each of 6 more one more */ && r.same &&
          strstr(r.lost_why, "remote0: step 8 failed: the device was lost"));
    bed_join(&b);
    unsetenv("TANDEM_FAULT");
    bed_close(&b);
}

/* Two sequences that share the prompt's blocks (a fork: the first step of each copies the shared block, a
 * COPY_BLOCKS to the cloud), each step a token of each, over a link cut after `fail_after` bytes from the device:
 * every step's logits are the local model's, before the loss and after it, where the stand-in answers. */
static void check_stand_in_forked(tnd_model *local, tnd_model *cloud_model, size_t fail_after) {
    enum { STEPS = 10 };
    bed b;
    if (!bed_open(&b, cloud_model, (bed_options){.tapped = true, .fail_after = fail_after})) return;
    const int32_t kinds[3] = {0, TND_DEVICE_REMOTE, 0};
    tnd_context_params p = test_params(3, kinds, b.hp), lp = test_params(1, NULL, NULL);
    p.remote_stand_in = lp.n_seq_max = p.n_seq_max = 2;
    tnd_context *ctx[2] = {NULL, NULL}; /* here, split */
    int32_t n_vocab = tnd_model_n_vocab(local), pos[N_PROMPT], seq[N_PROMPT] = {0};
    int8_t want[N_PROMPT] = {0};
    for (int i = 0; i < N_PROMPT; i++) pos[i] = i;
    want[N_PROMPT - 1] = 1;
    tnd_batch first = {.n_tokens = N_PROMPT, .tokens = prompt, .pos = pos, .seq_id = seq, .logits = want};
    bool ok = true;
    for (int c = 0; c < 2 && ok; c++)
        ok = CHECK_OK(tnd_context_init(local, c ? &p : &lp, &ctx[c])) && CHECK_OK(tnd_context_decode(ctx[c], &first)) &&
             CHECK_OK(tnd_context_seq_fork(ctx[c], 0, 1));
    double worst = 0;
    int steps = 0;
    for (int i = 0; i < STEPS && ok; i++, steps++) {
        int32_t toks[2] = {prompt[i % N_PROMPT], prompt[(i + 5) % N_PROMPT]}, at[2] = {N_PROMPT + i, N_PROMPT + i},
                seqs[2] = {0, 1};
        int8_t both[2] = {1, 1};
        tnd_batch step = {.n_tokens = 2, .tokens = toks, .pos = at, .seq_id = seqs, .logits = both};
        for (int c = 0; c < 2 && ok; c++) ok = CHECK_OK(tnd_context_decode(ctx[c], &step));
        for (int r = 0; r < 2 && ok; r++) {
            double e = tnd_test_nmse(tnd_context_logits(ctx[1], r), tnd_context_logits(ctx[0], r), (size_t)n_vocab);
            if (e > worst) worst = e;
        }
    }
    char why[400] = "";
    bool taken = ctx[1] && tnd_context_cloud_lost(ctx[1], why, sizeof why);
    printf("stand-in, two forked sequences, link cut after %zu bytes: %d of %d steps, worst NMSE %.3g against the "
           "local model, taken over: %s\n", fail_after, steps, STEPS, worst, taken ? why : "no");
    CHECK(ok && steps == STEPS && worst < 1e-4 && taken);
    for (int c = 0; c < 2; c++) tnd_context_free(ctx[c]);
    bed_join(&b);
    int copies = count_frames(&b.t, TND_WIRE_COPY_BLOCKS);
    printf("  COPY_BLOCKS frames through the tap before the cut: %d\n", copies);
    bed_close(&b);
}

/* A plan with a device that holds nothing (the stand-in's kind, here for the middle layers): the context is made,
 * and a pass that reaches those layers fails, naming the device, where it would compute them. */
static void check_none_device(tnd_model *local) {
    const int32_t kinds[3] = {0, TND_DEVICE_NONE, 0};
    tnd_context_params p = test_params(3, kinds, NULL);
    tnd_context *ctx = NULL;
    int32_t pos[N_PROMPT], seq[N_PROMPT] = {0};
    int8_t want[N_PROMPT] = {0};
    for (int i = 0; i < N_PROMPT; i++) pos[i] = i;
    tnd_batch b = {.n_tokens = N_PROMPT, .tokens = prompt, .pos = pos, .seq_id = seq, .logits = want};
    if (!CHECK_OK(tnd_context_init(local, &p, &ctx))) return;
    tnd_status st = tnd_context_decode(ctx, &b);
    printf("a plan whose middle layers are on a device that holds nothing: status %d: %s\n", (int)st,
           tnd_last_error());
    CHECK(st == TND_ERR_UNSUPPORTED && strstr(tnd_last_error(), "none0 holds nothing"));
    tnd_context_free(ctx);
}

/* The relay of scripts/netbed.sh (link_delay) between device and cloud: a decode step takes at least its added
 * round trip, and the cut it makes mid-answer is a lost device the session outlives. */
static void check_link_delay(tnd_model *local, tnd_model *cloud_model, const int32_t *want_greedy) {
    enum { DELAY_MS = 200 }; /* 24 steps take 4.8 s: the cut at 2.5 s lands mid-answer even on a loaded machine */
    bed b;
    if (!bed_open(&b, cloud_model, (bed_options){0})) return;
    int port = free_port(), pid = 0;
    char cmd[1024], out[64], hp[64];
    snprintf(cmd, sizeof cmd, "%s --listen 127.0.0.1:%d --to %s --delay-ms %d --cut-after 2.5 >/dev/null "
             "2>'%s/delay.log' & echo $!", TND_LINK_DELAY_BIN, port, b.hp, DELAY_MS, dir);
    if (tnd_test_run(cmd, out, sizeof out) == 0) pid = atoi(out);
    snprintf(hp, sizeof hp, "127.0.0.1:%d", port);
    if (CHECK(pid > 0 && wait_for_log("delay.log", "round trip"))) {
        fallback_run r = greedy_with_fallback(local, hp, want_greedy, false);
        printf("link_delay +%d ms: a decode step took %.3f s; cut after 2.5 s, at token %d of %d; greedy %s\n",
               DELAY_MS, r.step_before, r.lost_at, N_GREEDY, r.same ? "equal to the local model" : "DIFFERS");
        CHECK(r.step_before >= DELAY_MS / 1000.0 && r.lost_at > 0 && r.lost_at < N_GREEDY && r.same);
    }
    if (pid > 0) kill(pid, SIGTERM);
    bed_join(&b);
    bed_close(&b);
}

/* ------------------------------------------------------------------------------------------------------------
 * The command line: `tandem cloud` in its own process, `tandem run` split over it
 * ---------------------------------------------------------------------------------------------------------- */

/* A free loopback port (taken and given back: the cloud takes it next). */
static int free_port(void) {
    tnd_listener *lis = NULL;
    if (tnd_listener_open("127.0.0.1:0", &lis) != TND_OK) return 0;
    int port = tnd_listener_port(lis);
    tnd_listener_close(lis);
    return port;
}

/* Starts `tandem cloud` for one link in the background and waits until it listens; its process id, or 0. */
static int start_cloud(const char *model, int port, const char *security) {
    char cmd[1536], out[64];
    snprintf(cmd, sizeof cmd, "%s cloud -m '%s' --listen 127.0.0.1:%d %s --links 1 -t 1 >/dev/null 2>'%s/cloud.log' & "
             "echo $!", TND_TANDEM_BIN, model, port, security, dir);
    int pid = tnd_test_run(cmd, out, sizeof out) == 0 ? atoi(out) : 0;
    return pid > 0 && wait_for_log("cloud.log", "serving") ? pid : 0;
}

static void check_command_line(const char *model) {
    char cmd[2048], want[4096], got[4096];
    snprintf(cmd, sizeof cmd, "%s run -m '%s' -p 'Once upon a time' -n 40 --temp 0 -t 1 2>/dev/null", TND_TANDEM_BIN,
             model);
    CHECK(tnd_test_run(cmd, want, sizeof want) == 0 && strlen(want) > 40);
    int port = free_port(), pid = 0;
    char security[300];
    snprintf(security, sizeof security, "--key '%s'", key_a);
    if (CHECK(port > 0 && (pid = start_cloud(model, port, security)) > 0)) {
        snprintf(cmd, sizeof cmd, "%s run -m '%s' -p 'Once upon a time' -n 40 --temp 0 -t 1 "
                 "--device cpu,remote:127.0.0.1:%d,cpu --remote-key '%s' 2>/dev/null", TND_TANDEM_BIN, model, port,
                 key_a);
        bool same = tnd_test_run(cmd, got, sizeof got) == 0 && !strcmp(got, want);
        if (!CHECK(same)) fprintf(stderr, "  tandem run over a cloud: got \"%s\", want \"%s\"\n", got, want);
        printf("tandem run split over `tandem cloud` (TLS): %s\n", same ? "the local text" : "DIFFERS");
    }
    /* a cloud device with neither key nor --insecure is refused before anything connects */
    snprintf(cmd, sizeof cmd, "%s run -m '%s' -p 'Hi' -n 2 --device cpu,remote:127.0.0.1:%d,cpu 2>&1", TND_TANDEM_BIN,
             model, port);
    CHECK(tnd_test_run(cmd, got, sizeof got) != 0 && strstr(got, "--remote-key"));
    /* a cloud that does not answer: the device runs the whole model itself, with a note */
    snprintf(cmd, sizeof cmd, "%s run -m '%s' -p 'Once upon a time' -n 40 --temp 0 -t 1 --device "
             "cpu,remote:127.0.0.1:%d,cpu --remote-key '%s' 2>&1", TND_TANDEM_BIN, model, free_port(), key_a);
    CHECK(tnd_test_run(cmd, got, sizeof got) == 0 && strstr(got, "running everything here") && strstr(got, want));
    if (pid > 0) kill(pid, SIGTERM); /* served its link and left; if the run never came, it must not stay */
}

/* `tandem run` split over a link that is cut mid-answer prints the local text whole, with a note of the switch. */
static void check_command_line_fallback(const char *path, tnd_model *cloud_model) {
    char cmd[2048], want[4096], got[8192];
    snprintf(cmd, sizeof cmd, "%s run -m '%s' -p 'Once upon a time' -n 40 --temp 0 -t 1 2>/dev/null", TND_TANDEM_BIN,
             path);
    CHECK(tnd_test_run(cmd, want, sizeof want) == 0 && strlen(want) > 40);
    /* by default (memory permitting) the stand-in of the cloud's part takes over; with --no-follow the whole model's
     * context, made in the background while the cloud served, does */
    for (int follow = 1; follow >= 0; follow--) {
        bed b; /* the command line's KV blocks */
        if (!bed_open(&b, cloud_model, (bed_options){.block_size = 64, .tapped = true, .fail_after = 5000})) return;
        snprintf(cmd, sizeof cmd, "%s run -m '%s' -p 'Once upon a time' -n 40 --temp 0 -t 1 --device "
                 "cpu,remote:%s,cpu --insecure %s 2>'%s/run.err'", TND_TANDEM_BIN, path, b.hp,
                 follow ? "" : "--no-follow", dir);
        bool ran = tnd_test_run(cmd, got, sizeof got) == 0, whole = !strcmp(got, want);
        bool noted = file_says("run.err", follow ? "the cloud's layers go on here (its stand-in caught up in"
                                                 : "going on here with the whole model"),
             ready = follow || file_says("run.err", "made in the background"),
             moved = file_says("run.err", "going on here with") != follow;
        printf("tandem run over a link cut mid-answer%s: %s, %s%s\n", follow ? "" : " (--no-follow)",
               whole ? "the local text" : "TEXT DIFFERS", noted ? "the switch noted" : "NO NOTE",
               follow ? ", the stand-in took over" : ready ? ", its context made in the background"
                                                          : ", MADE AT THE LOSS");
        if (!CHECK(ran && whole && noted && ready && moved))
            fprintf(stderr, "  got \"%s\"\n  want \"%s\"\n", got, want);
        snprintf(cmd, sizeof cmd, "grep -o 'stand-in caught up in [0-9.]* s' '%s/run.err'", dir);
        if (follow && tnd_test_run(cmd, got, sizeof got) == 0) printf("  %s", got);
        bed_join(&b);
        bed_close(&b);
    }

    /* --fallback-model: a smaller copy of the same vocabulary takes over (here where the cloud cannot be reached at
     * all); a model of another vocabulary is refused at start */
    char small[1024], small_text[4096];
    snprintf(small, sizeof small, "%s/small.gguf", dir);
    snprintf(cmd, sizeof cmd, "%s quantize '%s' '%s' Q8_0 >/dev/null 2>&1", TND_TANDEM_BIN, path, small);
    CHECK(tnd_test_run(cmd, got, sizeof got) == 0);
    snprintf(cmd, sizeof cmd, "%s run -m '%s' -p 'Once upon a time' -n 40 --temp 0 -t 1 2>/dev/null", TND_TANDEM_BIN,
             small);
    CHECK(tnd_test_run(cmd, small_text, sizeof small_text) == 0);
    snprintf(cmd, sizeof cmd, "%s run -m '%s' -p 'Once upon a time' -n 40 --temp 0 -t 1 --device "
             "cpu,remote:127.0.0.1:%d,cpu --insecure --fallback-model '%s' 2>'%s/run.err'", TND_TANDEM_BIN, path,
             free_port(), small, dir);
    CHECK(tnd_test_run(cmd, got, sizeof got) == 0 && !strcmp(got, small_text));
    CHECK(file_says("run.err", "going on here with the fallback model"));
    snprintf(cmd, sizeof cmd, "%s run -m '%s' -p 'Hi' -n 2 --device cpu,remote:127.0.0.1:%d,cpu --insecure "
             "--fallback-model '%s' 2>&1", TND_TANDEM_BIN, path, free_port(),
             tnd_fixture("vocab/ggml-vocab-llama-spm.gguf"));
    CHECK(tnd_test_run(cmd, got, sizeof got) != 0 && strstr(got, "has 32000 tokens, the model 512"));
}

/* ------------------------------------------------------------------------------------------------------------
 * The server: a cloud lost mid-answer, the answer whole, and the cloud used again once it is back
 * ---------------------------------------------------------------------------------------------------------- */

/* One HTTP request to the server on `port` (the connection closed after it): the whole answer into out. */
static bool http(int port, const char *method, const char *path, const char *body, char *out, size_t cap) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    char request[1024];
    int n = snprintf(request, sizeof request, "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                     "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s", method, path,
                     body ? strlen(body) : 0, body ? body : "");
    bool ok = fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0 && write(fd, request, (size_t)n) == n;
    size_t len = 0;
    for (ssize_t got = 1; ok && got > 0 && len + 1 < cap; len += (size_t)got) got = read(fd, out + len, cap - 1 - len);
    out[len] = 0;
    if (fd >= 0) close(fd);
    return ok && strstr(out, " 200 ");
}

/* The "text" of a completion's answer into text (JSON escapes left as they are). */
static bool completion_text(const char *answer, char *text, size_t cap) {
    const char *at = strstr(answer, "\"text\":\"");
    if (!at) return false;
    at += 8;
    size_t n = 0;
    while (at[n] && !(at[n] == '"' && at[n - 1] != '\\') && n + 1 < cap) n++;
    memcpy(text, at, n);
    text[n] = 0;
    return at[n] == '"';
}

static void check_server_fallback(const char *path, tnd_model *cloud_model) {
    bed b; /* the command line's KV blocks */
    if (!bed_open(&b, cloud_model, (bed_options){.block_size = 64, .tapped = true, .fail_after = 5000})) return;
    char cmd[2048], out[64];
    int port = free_port(), pid = 0;
    snprintf(cmd, sizeof cmd, "%s serve -m '%s' --port %d --parallel 1 -t 1 --device cpu,remote:%s,cpu --insecure "
             ">/dev/null 2>'%s/serve.log' & echo $!", TND_TANDEM_BIN, path, port, b.hp, dir);
    if (tnd_test_run(cmd, out, sizeof out) == 0) pid = atoi(out);
    char log[8192], answer[16384], metrics[16384], first[4096] = "", second[4096] = "";
    bool up = pid > 0 && wait_for_log("serve.log", "listening");
    const char *body = "{\"prompt\": \"Once upon a time\", \"max_tokens\": 40, \"temperature\": 0}";
    if (CHECK(up) && CHECK(http(port, "POST", "/v1/completions", body, answer, sizeof answer)) &&
        CHECK(completion_text(answer, first, sizeof first)) &&
        CHECK(http(port, "GET", "/metrics", NULL, metrics, sizeof metrics)))
        CHECK(strstr(metrics, "tandem_device_lost_total 1\n") && strstr(metrics, "tandem_running_on_fallback 1\n"));
    /* the stand-in of the cloud's part took over */
    CHECK(!up || file_says("serve.log", "the cloud's layers go on here (its stand-in caught up in"));
    bed_join(&b);
    /* the cloud is back: an idle server tries it again at a request 10 s after the loss */
    size_t seen_before = b.t.n_seen;
    b.t.fail_after = 0;
    bed_start(&b);
    sleep(10);
    bool back = up && http(port, "POST", "/v1/completions", body, answer, sizeof answer) &&
                completion_text(answer, second, sizeof second) &&
                http(port, "GET", "/metrics", NULL, metrics, sizeof metrics) &&
                strstr(metrics, "tandem_running_on_fallback 0\n") && b.t.n_seen > seen_before;
    printf("tandem serve: a cloud lost mid-answer gives \"%s\"; back 10 s later: %s\n", first,
           back && !strcmp(first, second) ? "used again, the same answer" : "NOT USED AGAIN OR ANOTHER ANSWER");
    CHECK(back && strlen(first) > 40 && !strcmp(first, second));
    if (pid > 0) kill(pid, SIGTERM);
    bed_join(&b);
    snprintf(cmd, sizeof cmd, "cat '%s/serve.log'", dir);
    if (!up || !back) {
        tnd_test_run(cmd, log, sizeof log);
        fprintf(stderr, "  server log:\n%s\n", log);
    }
    bed_close(&b);
}

int main(void) {
    if (!CHECK(mkdtemp(dir) != NULL)) return tnd_test_finish("remote");
    snprintf(key_a, sizeof key_a, "%s/a.key", dir);
    snprintf(key_b, sizeof key_b, "%s/b.key", dir);
    tnd_link_key ka, kb;
    CHECK_OK(tnd_link_keygen(key_a));
    CHECK_OK(tnd_link_keygen(key_b));
    CHECK_OK(tnd_link_key_load(key_a, &ka));
    CHECK_OK(tnd_link_key_load(key_b, &kb));
    tnd_model *local = NULL, *cloud_model = NULL, *other = NULL;
    char path[1024]; /* (tnd_fixture's buffer is reused by the next call) */
    snprintf(path, sizeof path, "%s", tnd_fixture("real/stories260K.gguf"));
    if (!CHECK_OK(tnd_model_open(path, NULL, &local)) || !CHECK_OK(tnd_model_open(path, NULL, &cloud_model)))
        return tnd_test_finish("remote");
    int32_t n_vocab = tnd_model_n_vocab(local), want_greedy[N_GREEDY];
    float *want = malloc(sizeof(float) * N_PROMPT * (size_t)n_vocab);
    const int32_t cpu_only[1] = {0};
    CHECK(run(local, 1, cpu_only, NULL, NULL, want, want_greedy));

    check_split(local, cloud_model, &ka, key_a, want, want_greedy, "split over TLS");
    check_split(local, cloud_model, NULL, NULL, want, want_greedy, "split over plaintext");
    check_pipelined(local, cloud_model);
    check_devices_at_once(local, cloud_model);
    check_tap(local, cloud_model);
    check_heartbeat(local, cloud_model);
    check_drafted(local, cloud_model, want_greedy);
    check_fallback(local, cloud_model, want_greedy, false);
    check_fallback(local, cloud_model, want_greedy, true);
    check_stand_in(local, cloud_model, want_greedy, false, 4000);
    check_stand_in(local, cloud_model, want_greedy, true, 4000);
    check_stand_in(local, cloud_model, want_greedy, false, 800);
    check_stand_in_forked(local, cloud_model, 1900);
    check_stand_in_forked(local, cloud_model, 3500);
    check_none_device(local);
    check_stand_in_gave_up(local, cloud_model, want_greedy);
    check_fault_on_cloud(local, cloud_model, want_greedy);
    check_link_delay(local, cloud_model, want_greedy);

    /* refusals: another key, another model, a plan that gives the cloud the embedding */
    tnd_listener *lis = NULL;
    if (CHECK_OK(tnd_listener_open("127.0.0.1:0", &lis))) {
        char hp[64];
        snprintf(hp, sizeof hp, "127.0.0.1:%d", tnd_listener_port(lis));
        float *logits = malloc(sizeof(float) * N_PROMPT * (size_t)n_vocab);
        int32_t greedy[N_GREEDY];
        const int32_t kinds[3] = {0, TND_DEVICE_REMOTE, 0}, cloud_first[2] = {TND_DEVICE_REMOTE, 0};
        cloud_job job = {.model = cloud_model, .listener = lis, .key = &kb, .links = 1};
        pthread_t t;
        pthread_create(&t, NULL, cloud, &job);
        CHECK(!run(local, 3, kinds, hp, key_a, logits, greedy) && strstr(tnd_last_error(), "different keys"));
        pthread_join(t, NULL);
        CHECK_OK(tnd_model_open(tnd_fixture("models/llama-tiny-f32.gguf"), NULL, &other));
        job = (cloud_job){.model = other, .listener = lis, .key = &ka, .links = 1};
        pthread_create(&t, NULL, cloud, &job);
        CHECK(!run(local, 3, kinds, hp, key_a, logits, greedy) && strstr(tnd_last_error(), "not the one this cloud holds"));
        pthread_join(t, NULL);
        job = (cloud_job){.model = cloud_model, .listener = lis, .key = &ka, .links = 1};
        pthread_create(&t, NULL, cloud, &job);
        CHECK(!run(local, 2, cloud_first, hp, key_a, logits, greedy) && strstr(tnd_last_error(), "whole layers"));
        pthread_join(t, NULL);
        free(logits);
        tnd_listener_close(lis);
    }
    check_command_line(path);
    check_command_line_fallback(path, cloud_model);
    check_server_fallback(path, cloud_model);
    tnd_model_close(other);
    tnd_model_close(local);
    tnd_model_close(cloud_model);
    free(want);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0);
    return tnd_test_finish("remote");
}
