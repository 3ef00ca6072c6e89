/* test_remote_link.c: the link between a device and a cloud server (src/remote): key files, TLS 1.3 with a
 * pre-shared key over loopback (messages both ways, a wrong key and a plaintext peer refused on both sides), frames
 * out of sequence, truncated or malformed refused with the reason, a silent peer timed out, and the messages'
 * decoding checked against counts that do not add up. */
#include "harness.h"

#include "remote/link.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[] = "/tmp/tnd_link_XXXXXX";

/* ------------------------------------------------------------------------------------------------------------
 * Keys
 * ---------------------------------------------------------------------------------------------------------- */

static void key_path(const char *name, char *path, size_t cap) { snprintf(path, cap, "%s/%s", dir, name); }

static void check_keys(tnd_link_key *a, tnd_link_key *b) {
    char pa[256], pb[256], other[256];
    key_path("a.key", pa, sizeof pa);
    key_path("b.key", pb, sizeof pb);
    key_path("other.key", other, sizeof other);
    CHECK_OK(tnd_link_keygen(pa));
    CHECK_OK(tnd_link_keygen(pb));
    struct stat sb;
    CHECK(stat(pa, &sb) == 0 && (sb.st_mode & 0777) == 0600);
    CHECK(tnd_link_keygen(pa) == TND_ERR_IO); /* never overwrites */
    CHECK_OK(tnd_link_key_load(pa, a));
    CHECK_OK(tnd_link_key_load(pb, b));
    CHECK(memcmp(a->bytes, b->bytes, sizeof a->bytes) != 0);
    tnd_link_key k;
    FILE *f = fopen(other, "w");
    fputs("not a key\n", f);
    fclose(f);
    chmod(other, 0600);
    CHECK(tnd_link_key_load(other, &k) == TND_ERR_FORMAT && strstr(tnd_last_error(), "not a tandem key file"));
    chmod(pb, 0644);
    CHECK(tnd_link_key_load(pb, &k) == TND_ERR_IO && strstr(tnd_last_error(), "chmod 600"));
    CHECK(tnd_link_key_load("/nonexistent/key", &k) == TND_ERR_IO);
}

/* ------------------------------------------------------------------------------------------------------------
 * A cloud side on a thread
 * ---------------------------------------------------------------------------------------------------------- */

typedef struct server_job {
    tnd_listener *listener;
    const tnd_link_key *key;
    tnd_status accept_status;
    char accept_error[256];
    bool echo; /* answer each message with a WELCOME of its payload, until BYE */
    int echoed;
} server_job;

static void *serve(void *arg) {
    server_job *j = arg;
    tnd_link *l = NULL;
    j->accept_status = tnd_listener_accept(j->listener, j->key, 5000, &l);
    if (j->accept_status) snprintf(j->accept_error, sizeof j->accept_error, "%s", tnd_last_error());
    while (l && j->echo) {
        tnd_wire_header h;
        const uint8_t *payload;
        if (tnd_link_recv(l, &h, &payload, 5000) || h.type == TND_WIRE_BYE) break;
        if (tnd_link_send(l, TND_WIRE_WELCOME, payload, h.length)) break;
        j->echoed++;
    }
    tnd_link_close(l);
    return NULL;
}

static void connect_to(tnd_listener *lis, char *host_port, size_t cap) {
    snprintf(host_port, cap, "127.0.0.1:%d", tnd_listener_port(lis));
}

/* A device and a cloud with keys ka and kb (NULL: plaintext): the device's status, the cloud's in *job. */
static tnd_status try_link(const tnd_link_key *device_key, const tnd_link_key *cloud_key, server_job *job) {
    tnd_listener *lis = NULL;
    if (!CHECK_OK(tnd_listener_open("127.0.0.1:0", &lis))) return TND_ERR_IO;
    *job = (server_job){.listener = lis, .key = cloud_key};
    pthread_t t;
    pthread_create(&t, NULL, serve, job);
    char hp[64];
    connect_to(lis, hp, sizeof hp);
    tnd_link *l = NULL;
    tnd_status st = tnd_link_connect(hp, device_key, 3000, &l);
    tnd_link_close(l); /* a device that got through leaves: the cloud's accept has its answer */
    pthread_join(t, NULL);
    tnd_listener_close(lis);
    return st;
}

/* Messages both ways over TLS: a HELLO and a STEP come back bit for bit, the STEP decodes to what was sent. */
static void check_tls_exchange(const tnd_link_key *key) {
    tnd_listener *lis = NULL;
    if (!CHECK_OK(tnd_listener_open("127.0.0.1:0", &lis))) return;
    server_job job = {.listener = lis, .key = key, .echo = true};
    pthread_t t;
    pthread_create(&t, NULL, serve, &job);
    char hp[64];
    connect_to(lis, hp, sizeof hp);
    tnd_link *l = NULL;
    if (CHECK_OK(tnd_link_connect(hp, key, 3000, &l))) {
        tnd_wire_hello hello = {.version = TND_WIRE_VERSION, .k_type = TND_TYPE_F16, .v_type = TND_TYPE_Q8_0,
                                .block_size = 64, .n_blocks = 16, .n_batch = 512};
        for (int i = 0; i < TND_WIRE_MODEL_ID_BYTES; i++) hello.model_id[i] = (uint8_t)(i * 7);
        tnd_wire_writer w = {0};
        tnd_wire_put_hello(&w, &hello);
        tnd_wire_header h;
        const uint8_t *back;
        uint64_t least = 2 * TND_WIRE_HEADER_BYTES + w.len; /* each side's frame bytes */
        CHECK_OK(tnd_link_send(l, TND_WIRE_HELLO, w.data, w.len));
        if (CHECK_OK(tnd_link_recv(l, &h, &back, 3000)) && CHECK(h.type == TND_WIRE_WELCOME && h.length == w.len)) {
            tnd_wire_reader r = {.data = back, .len = h.length};
            tnd_wire_hello got;
            CHECK(tnd_wire_get_hello(&r, &got) == TND_OK && !memcmp(&got, &hello, sizeof got));
        }
        tnd_wire_writer_free(&w);
        /* a step of 3 tokens of two sequences: positions, slots in their blocks, tables, F16 hidden states */
        enum { N = 3, E = 40 };
        uint32_t pos[N] = {0, 5, 6}, n_ctx[N] = {1, 6, 7}, table_at[N] = {0, 1, 1}, tables[2] = {4, 9};
        uint32_t slot[N] = {4 * 64 + 0, 9 * 64 + 5, 9 * 64 + 6};
        float hidden[N * E];
        for (int i = 0; i < N * E; i++) hidden[i] = (float)(i - 60) / 8.0f; /* exact in F16 */
        tnd_wire_step s = {.n_tokens = N, .group_begin = 3, .group_end = 7, .n_embd = E, .pos = pos, .slot = slot,
                           .n_ctx = n_ctx, .table_at = table_at, .n_table_words = 2, .tables = tables, .hidden = hidden};
        tnd_wire_put_step(&w, &s);
        CHECK_OK(tnd_link_send(l, TND_WIRE_STEP, w.data, w.len));
        if (CHECK_OK(tnd_link_recv(l, &h, &back, 3000))) {
            uint32_t p2[N], s2[N], c2[N], t2[N], tab2[8];
            float x2[N * E];
            tnd_wire_step d = {.pos = p2, .slot = s2, .n_ctx = c2, .table_at = t2, .tables = tab2, .hidden = x2};
            tnd_wire_reader r = {.data = back, .len = h.length};
            CHECK(tnd_wire_get_step(&r, 512, E, 8, 64, &d) == TND_OK && d.n_tokens == N && d.group_begin == 3 &&
                  d.group_end == 7 && !memcmp(p2, pos, sizeof pos) && !memcmp(s2, slot, sizeof slot) &&
                  !memcmp(tab2, tables, sizeof tables) && !memcmp(x2, hidden, sizeof hidden));
            /* the same payload against the caps of a smaller cloud, and with a count that does not add up */
            r = (tnd_wire_reader){.data = back, .len = h.length};
            CHECK(tnd_wire_get_step(&r, 2, E, 8, 64, &d) == TND_ERR_FORMAT && strstr(tnd_last_error(), "3 tokens"));
            r = (tnd_wire_reader){.data = back, .len = h.length};
            CHECK(tnd_wire_get_step(&r, 512, E + 1, 8, 64, &d) == TND_ERR_FORMAT);
            r = (tnd_wire_reader){.data = back, .len = h.length - 1};
            CHECK(tnd_wire_get_step(&r, 512, E, 8, 64, &d) == TND_ERR_FORMAT && strstr(tnd_last_error(), "ends early"));
            r = (tnd_wire_reader){.data = back, .len = h.length};
            CHECK(tnd_wire_get_step(&r, 512, E, 8, 16, &d) == TND_ERR_FORMAT); /* slots of another block size */
        }
        uint64_t sent, received;
        least += w.len; /* the echo: as many back */
        tnd_wire_writer_free(&w);
        tnd_link_traffic(l, &sent, &received);
        if (!CHECK(sent == least && received == least))
            fprintf(stderr, "  sent %llu, received %llu, least %llu\n", (unsigned long long)sent, (unsigned long long)received, (unsigned long long)least);
        CHECK_OK(tnd_link_send(l, TND_WIRE_BYE, NULL, 0));
    }
    tnd_link_close(l);
    pthread_join(t, NULL);
    CHECK(job.accept_status == TND_OK && job.echoed == 2);
    tnd_listener_close(lis);
}

static void check_refused_handshakes(const tnd_link_key *a, const tnd_link_key *b) {
    server_job job;
    tnd_status st = try_link(a, b, &job); /* different keys */
    CHECK(st == TND_ERR_IO && strstr(tnd_last_error(), "different keys"));
    CHECK(job.accept_status == TND_ERR_IO);
    st = try_link(NULL, b, &job); /* a plaintext device against a TLS cloud */
    CHECK(job.accept_status == TND_ERR_IO);
    st = try_link(a, NULL, &job); /* a TLS device against a plaintext cloud */
    CHECK(st == TND_ERR_IO);
    st = try_link(a, a, &job);
    CHECK(st == TND_OK && job.accept_status == TND_OK);
    tnd_link *l = NULL;
    CHECK(tnd_link_connect("127.0.0.1:1", a, 2000, &l) == TND_ERR_IO && strstr(tnd_last_error(), "cannot connect"));
    CHECK(tnd_link_connect("no-port", a, 2000, &l) == TND_ERR_INVALID_ARGUMENT);
}

/* ------------------------------------------------------------------------------------------------------------
 * Frames from a raw socket against a plaintext cloud
 * ---------------------------------------------------------------------------------------------------------- */

/* Connects a raw TCP socket to the listener, accepts it as a plaintext link, sends `bytes` and closes (or not);
 * returns the cloud's receive status. */
static tnd_status raw_frames(const uint8_t *bytes, size_t n, bool close_after, int timeout_ms) {
    tnd_listener *lis = NULL;
    if (!CHECK_OK(tnd_listener_open("127.0.0.1:0", &lis))) return TND_ERR_IO;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)tnd_listener_port(lis))};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK(connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0);
    tnd_link *l = NULL;
    tnd_status st = tnd_listener_accept(lis, NULL, 2000, &l);
    if (CHECK_OK(st)) {
        CHECK(write(fd, bytes, n) == (ssize_t)n);
        if (close_after) close(fd), fd = -1;
        tnd_wire_header h;
        const uint8_t *payload;
        st = tnd_link_recv(l, &h, &payload, timeout_ms);
        while (st == TND_OK) st = tnd_link_recv(l, &h, &payload, timeout_ms); /* the first frames may be good */
    }
    if (fd >= 0) close(fd);
    tnd_link_close(l);
    tnd_listener_close(lis);
    return st;
}

static void check_bad_frames(void) {
    uint8_t f[3 * TND_WIRE_HEADER_BYTES + 8];
    tnd_wire_put_header(f, TND_WIRE_PING, 1, 0); /* the first frame must be 0 */
    CHECK(raw_frames(f, TND_WIRE_HEADER_BYTES, false, 2000) == TND_ERR_FORMAT &&
          strstr(tnd_last_error(), "frame 1 arrived where 0 was due"));
    tnd_wire_put_header(f, TND_WIRE_PING, 0, 0); /* a replay: 0 again after 0 */
    tnd_wire_put_header(f + TND_WIRE_HEADER_BYTES, TND_WIRE_PING, 0, 0);
    CHECK(raw_frames(f, 2 * TND_WIRE_HEADER_BYTES, false, 2000) == TND_ERR_FORMAT &&
          strstr(tnd_last_error(), "replayed"));
    tnd_wire_put_header(f, TND_WIRE_HELLO, 0, 100); /* 100 bytes announced, 8 sent, then the link closes */
    CHECK(raw_frames(f, TND_WIRE_HEADER_BYTES + 8, true, 2000) == TND_ERR_IO && strstr(tnd_last_error(), "truncated"));
    memcpy(f, "GET / HTTP/1.1\r\n", 16); /* not our protocol */
    CHECK(raw_frames(f, TND_WIRE_HEADER_BYTES, false, 2000) == TND_ERR_FORMAT && strstr(tnd_last_error(), "magic"));
    tnd_wire_put_header(f, TND_WIRE_HELLO, 0, 0);
    f[4] = 9; /* version 9 */
    CHECK(raw_frames(f, TND_WIRE_HEADER_BYTES, false, 2000) == TND_ERR_UNSUPPORTED &&
          strstr(tnd_last_error(), "version 9"));
    tnd_wire_put_header(f, TND_WIRE_HELLO, 0, (uint32_t)TND_WIRE_MAX_PAYLOAD + 1);
    CHECK(raw_frames(f, TND_WIRE_HEADER_BYTES, false, 2000) == TND_ERR_FORMAT);
    tnd_wire_put_header(f, TND_WIRE_PING, 0, 0); /* a good frame, then the peer leaves: a wait without deadline ends */
    CHECK(raw_frames(f, TND_WIRE_HEADER_BYTES, true, -1) == TND_ERR_IO && strstr(tnd_last_error(), "closed the link"));
    tnd_wire_put_header(f, TND_WIRE_PING, 0, 0); /* a good frame, then silence: the deadline */
    CHECK(raw_frames(f, TND_WIRE_HEADER_BYTES, false, 300) == TND_ERR_IO && strstr(tnd_last_error(), "stalled"));
}

/* ERROR messages carry a status and printable text; an unknown or non-failing status still fails. */
static void check_error_message(void) {
    tnd_wire_writer w = {0};
    tnd_wire_put_error(&w, TND_ERR_UNSUPPORTED, "model mismatch\x01");
    tnd_wire_reader r = {.data = w.data, .len = w.len};
    tnd_status st;
    char text[64];
    CHECK(tnd_wire_get_error(&r, &st, text, sizeof text) == TND_OK && st == TND_ERR_UNSUPPORTED &&
          !strcmp(text, "model mismatch?"));
    tnd_wire_writer_free(&w);
    tnd_wire_put_error(&w, TND_OK, "");
    r = (tnd_wire_reader){.data = w.data, .len = w.len};
    CHECK(tnd_wire_get_error(&r, &st, text, sizeof text) == TND_OK && st == TND_ERR_INTERNAL);
    r = (tnd_wire_reader){.data = w.data, .len = 5};
    CHECK(tnd_wire_get_error(&r, &st, text, sizeof text) == TND_ERR_FORMAT);
    tnd_wire_writer_free(&w);
}

int main(void) {
    if (!CHECK(mkdtemp(dir) != NULL)) return tnd_test_finish("remote_link");
    tnd_link_key a, b;
    check_keys(&a, &b);
    check_tls_exchange(&a);
    check_refused_handshakes(&a, &b);
    check_bad_frames();
    check_error_message();
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0);
    return tnd_test_finish("remote_link");
}
