/* link.c: TCP links between a device and a cloud server, TLS 1.3 with a pre-shared key (GnuTLS) or plaintext, and
 * the frames of wire.h over them (see link.h). */
#include "remote/link.h"

#include "core/clock.h"
#include "core/error.h"

#include <errno.h>
#include <fcntl.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

/* The PSK identity both sides name; the key is what they prove to hold. */
static const char PSK_IDENTITY[] = "tandem";
/* TLS 1.3 only, a pre-shared key with an ephemeral (EC)DH exchange: forward secrecy even if the key leaks later. */
static const char PRIORITIES[] = "NORMAL:-VERS-ALL:+VERS-TLS1.3:-KX-ALL:+ECDHE-PSK:+DHE-PSK";
static const char KEY_HEADER[] = "tandem-key-v1 ";
enum { HANDSHAKE_MS = 10000 }; /* the handshake's deadline where the wait for a peer has none */

struct tnd_link {
    int fd;
    gnutls_session_t tls; /* NULL: plaintext */
    gnutls_psk_client_credentials_t client_cred;
    gnutls_psk_server_credentials_t server_cred;
    tnd_link_key key;
    uint32_t seq_out, seq_in;
    uint8_t *buf;
    size_t cap;
    uint64_t sent, received;
};

struct tnd_listener {
    int fd, port;
};

/* ------------------------------------------------------------------------------------------------------------
 * Keys
 * ---------------------------------------------------------------------------------------------------------- */

tnd_status tnd_link_keygen(const char *path) {
    tnd_link_key key;
    if (gnutls_rnd(GNUTLS_RND_KEY, key.bytes, sizeof key.bytes) != 0)
        return tnd_fail(TND_ERR_INTERNAL, "no random bytes for a key");
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    if (fd < 0) return tnd_fail(TND_ERR_IO, "%s: %s", path, strerror(errno));
    char text[sizeof KEY_HEADER + 2 * TND_LINK_KEY_BYTES + 2];
    int n = snprintf(text, sizeof text, "%s", KEY_HEADER);
    for (int i = 0; i < TND_LINK_KEY_BYTES; i++) n += snprintf(text + n, sizeof text - (size_t)n, "%02x", key.bytes[i]);
    text[n++] = '\n';
    bool ok = write(fd, text, (size_t)n) == n;
    ok = close(fd) == 0 && ok;
    memset(&key, 0, sizeof key);
    return ok ? TND_OK : tnd_fail(TND_ERR_IO, "%s: %s", path, strerror(errno));
}

tnd_status tnd_link_key_load(const char *path, tnd_link_key *key) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) return tnd_fail(TND_ERR_IO, "key file %s: %s", path, strerror(errno));
    struct stat sb;
    char text[256];
    ssize_t n = fstat(fd, &sb) == 0 ? read(fd, text, sizeof text - 1) : -1;
    close(fd);
    if (n < 0) return tnd_fail(TND_ERR_IO, "key file %s: %s", path, strerror(errno));
    if (sb.st_mode & (S_IRWXG | S_IRWXO))
        return tnd_fail(TND_ERR_IO, "key file %s can be read by others than its owner (chmod 600 it)", path);
    text[n] = 0;
    size_t header = sizeof KEY_HEADER - 1;
    if (strncmp(text, KEY_HEADER, header) || (size_t)n < header + 2 * TND_LINK_KEY_BYTES)
        return tnd_fail(TND_ERR_FORMAT, "%s is not a tandem key file (make one with `tandem cloud keygen`)", path);
    for (int i = 0; i < TND_LINK_KEY_BYTES; i++) {
        unsigned v;
        if (sscanf(text + header + 2 * i, "%2x", &v) != 1)
            return tnd_fail(TND_ERR_FORMAT, "%s: the key is not %d hex bytes", path, TND_LINK_KEY_BYTES);
        key->bytes[i] = (uint8_t)v;
    }
    return TND_OK;
}

/* ------------------------------------------------------------------------------------------------------------
 * Sockets
 * ---------------------------------------------------------------------------------------------------------- */

static double now_ms(void) { return 1e3 * tnd_now_seconds(); }

/* Splits "HOST:PORT" (the last colon; "[v6]:PORT" too) and resolves it. */
static tnd_status resolve(const char *host_port, bool passive, struct addrinfo **out) {
    const char *colon = strrchr(host_port, ':');
    char host[256];
    if (!colon || colon == host_port || (size_t)(colon - host_port) >= sizeof host || !colon[1])
        return tnd_fail(TND_ERR_INVALID_ARGUMENT, "'%s' is not HOST:PORT", host_port);
    const char *h = host_port;
    size_t len = (size_t)(colon - host_port);
    if (h[0] == '[' && h[len - 1] == ']') h++, len -= 2;
    memcpy(host, h, len);
    host[len] = 0;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = passive ? AI_PASSIVE : 0};
    int rc = getaddrinfo(host, colon + 1, &hints, out);
    if (rc) return tnd_fail(TND_ERR_IO, "%s: %s", host_port, gai_strerror(rc));
    return TND_OK;
}

/* Waits until fd is readable (or writable); false on timeout. */
static bool wait_fd(int fd, bool for_write, int timeout_ms) {
    struct pollfd p = {.fd = fd, .events = for_write ? POLLOUT : POLLIN};
    int rc;
    do rc = poll(&p, 1, timeout_ms);
    while (rc < 0 && errno == EINTR);
    return rc > 0;
}

static void tune_socket(int fd) {
    int one = 1; /* a step is one small message each way: Nagle's delay would add to every round trip */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    /* a link may stay idle for hours between requests; the kernel's probes find a peer that is gone (after 90 s) */
    setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
#ifdef TCP_KEEPIDLE
    int idle = 60, interval = 10, count = 3;
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval, sizeof interval);
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &count, sizeof count);
#endif
}

tnd_status tnd_listener_open(const char *host_port, tnd_listener **out) {
    *out = NULL;
    struct addrinfo *ai = NULL;
    tnd_status st = resolve(host_port, true, &ai);
    if (st) return st;
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    bool ok = fd >= 0 && bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, 16) == 0;
    freeaddrinfo(ai);
    if (!ok) {
        st = tnd_fail(TND_ERR_IO, "cannot listen on %s: %s", host_port, strerror(errno));
        if (fd >= 0) close(fd);
        return st;
    }
    struct sockaddr_storage sa;
    socklen_t sl = sizeof sa;
    getsockname(fd, (struct sockaddr *)&sa, &sl);
    tnd_listener *l = calloc(1, sizeof *l);
    if (!l) {
        close(fd);
        return tnd_fail(TND_ERR_OUT_OF_MEMORY, "out of memory");
    }
    l->fd = fd;
    l->port = ntohs(sa.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&sa)->sin6_port
                                             : ((struct sockaddr_in *)&sa)->sin_port);
    *out = l;
    return TND_OK;
}

int tnd_listener_port(const tnd_listener *l) { return l->port; }

void tnd_listener_close(tnd_listener *l) {
    if (!l) return;
    close(l->fd);
    free(l);
}

/* ------------------------------------------------------------------------------------------------------------
 * TLS
 * ---------------------------------------------------------------------------------------------------------- */

/* The server's side of the PSK: the one identity, the one key. */
static int server_key(gnutls_session_t session, const char *username, gnutls_datum_t *key) {
    const tnd_link *l = gnutls_session_get_ptr(session);
    if (strcmp(username, PSK_IDENTITY)) return -1;
    key->data = gnutls_malloc(TND_LINK_KEY_BYTES);
    if (!key->data) return -1;
    memcpy(key->data, l->key.bytes, TND_LINK_KEY_BYTES);
    key->size = TND_LINK_KEY_BYTES;
    return 0;
}

/* A failed handshake in words a user can act on: a peer with another key ends it as one that speaks no TLS does. */
static tnd_status handshake_failed(int rc) {
    return tnd_fail(TND_ERR_IO, "the TLS handshake failed (%s): the two sides hold different keys, or the peer is not "
                    "a tandem link with TLS (--insecure on one side only?)", gnutls_strerror(rc));
}

/* The socket under TLS: sends never raise SIGPIPE on a peer that left (the library must not kill its process). */
static ssize_t tls_push(gnutls_transport_ptr_t ptr, const void *data, size_t n) {
    const tnd_link *l = ptr;
    ssize_t k = send(l->fd, data, n, MSG_NOSIGNAL);
    if (k < 0) gnutls_transport_set_errno(l->tls, errno);
    return k;
}

static ssize_t tls_pull(gnutls_transport_ptr_t ptr, void *data, size_t n) {
    const tnd_link *l = ptr;
    ssize_t k = recv(l->fd, data, n, 0);
    if (k < 0) gnutls_transport_set_errno(l->tls, errno);
    return k;
}

/* How the handshake's deadline waits for the peer (GnuTLS asks this of a transport of one's own). */
static int tls_pull_timeout(gnutls_transport_ptr_t ptr, unsigned ms) {
    const tnd_link *l = ptr;
    struct pollfd p = {.fd = l->fd, .events = POLLIN};
    int rc;
    do rc = poll(&p, 1, ms == GNUTLS_INDEFINITE_TIMEOUT ? -1 : (int)ms);
    while (rc < 0 && errno == EINTR);
    return rc;
}

static tnd_status start_tls(tnd_link *l, bool server, int timeout_ms) {
    unsigned flags = server ? GNUTLS_SERVER : GNUTLS_CLIENT;
    int rc = gnutls_init(&l->tls, flags);
    if (rc == 0 && server) {
        rc = gnutls_psk_allocate_server_credentials(&l->server_cred);
        if (rc == 0) gnutls_psk_set_server_credentials_function(l->server_cred, server_key);
        if (rc == 0) rc = gnutls_credentials_set(l->tls, GNUTLS_CRD_PSK, l->server_cred);
    } else if (rc == 0) {
        gnutls_datum_t key = {.data = l->key.bytes, .size = TND_LINK_KEY_BYTES};
        rc = gnutls_psk_allocate_client_credentials(&l->client_cred);
        if (rc == 0) rc = gnutls_psk_set_client_credentials(l->client_cred, PSK_IDENTITY, &key, GNUTLS_PSK_KEY_RAW);
        if (rc == 0) rc = gnutls_credentials_set(l->tls, GNUTLS_CRD_PSK, l->client_cred);
    }
    if (rc == 0) rc = gnutls_priority_set_direct(l->tls, PRIORITIES, NULL);
    if (rc != 0) {
        if (l->tls) gnutls_deinit(l->tls), l->tls = NULL; /* close() must not speak TLS on it */
        return tnd_fail(TND_ERR_INTERNAL, "TLS setup: %s", gnutls_strerror(rc));
    }
    gnutls_session_set_ptr(l->tls, l);
    gnutls_transport_set_ptr(l->tls, l);
    gnutls_transport_set_push_function(l->tls, tls_push);
    gnutls_transport_set_pull_function(l->tls, tls_pull);
    gnutls_transport_set_pull_timeout_function(l->tls, tls_pull_timeout);
    gnutls_handshake_set_timeout(l->tls, (unsigned)timeout_ms);
    do rc = gnutls_handshake(l->tls);
    while (rc < 0 && !gnutls_error_is_fatal(rc));
    return rc < 0 ? handshake_failed(rc) : TND_OK;
}

static tnd_status new_link(int fd, const tnd_link_key *key, bool server, int timeout_ms, tnd_link **out) {
    tnd_link *l = calloc(1, sizeof *l);
    if (!l) {
        close(fd);
        return tnd_fail(TND_ERR_OUT_OF_MEMORY, "out of memory");
    }
    l->fd = fd;
    tune_socket(fd);
    tnd_status st = TND_OK;
    if (key) {
        l->key = *key;
        st = start_tls(l, server, timeout_ms);
    }
    if (st) {
        tnd_link_close(l);
        return st;
    }
    *out = l;
    return TND_OK;
}

tnd_status tnd_listener_accept(tnd_listener *l, const tnd_link_key *key, int timeout_ms, tnd_link **out) {
    *out = NULL;
    if (!wait_fd(l->fd, false, timeout_ms)) return tnd_fail(TND_ERR_IO, "no device connected in %d ms", timeout_ms);
    int fd = accept(l->fd, NULL, NULL);
    if (fd < 0) return tnd_fail(TND_ERR_IO, "accept: %s", strerror(errno));
    fcntl(fd, F_SETFD, FD_CLOEXEC);
    return new_link(fd, key, true, HANDSHAKE_MS, out);
}

tnd_status tnd_link_connect(const char *host_port, const tnd_link_key *key, int timeout_ms, tnd_link **out) {
    *out = NULL;
    struct addrinfo *ai = NULL;
    tnd_status st = resolve(host_port, false, &ai);
    if (st) return st;
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0), err = 0;
    if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) != 0 && errno == EINPROGRESS) {
        socklen_t el = sizeof err;
        if (!wait_fd(fd, true, timeout_ms)) err = ETIMEDOUT;
        else getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el);
    } else if (fd < 0) {
        err = errno;
    }
    freeaddrinfo(ai);
    if (err) {
        if (fd >= 0) close(fd);
        return tnd_fail(TND_ERR_IO, "cannot connect to %s: %s", host_port, strerror(err));
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    st = new_link(fd, key, false, timeout_ms, out);
    if (st) tnd_error_prefix("%s: ", host_port);
    return st;
}

/* ------------------------------------------------------------------------------------------------------------
 * Frames
 * ---------------------------------------------------------------------------------------------------------- */

static tnd_status send_all(tnd_link *l, const uint8_t *p, size_t n) {
    while (n > 0) {
        ssize_t k = l->tls ? gnutls_record_send(l->tls, p, n) : send(l->fd, p, n, MSG_NOSIGNAL);
        if (k < 0 && (l->tls ? k == GNUTLS_E_AGAIN || k == GNUTLS_E_INTERRUPTED : errno == EINTR)) continue;
        if (k <= 0)
            return tnd_fail(TND_ERR_IO, "the link is gone (%s)",
                            l->tls ? gnutls_strerror((int)k) : k == 0 ? "closed" : strerror(errno));
        p += k;
        n -= (size_t)k;
        l->sent += (uint64_t)k;
    }
    return TND_OK;
}

/* Reads exactly n bytes before the deadline (a time of now_ms(); < 0: none). */
static tnd_status recv_all(tnd_link *l, uint8_t *p, size_t n, double deadline, bool mid_frame) {
    while (n > 0) {
        bool pending = l->tls && gnutls_record_check_pending(l->tls) > 0, forever = deadline < 0;
        int left = forever ? -1 : (int)(deadline - now_ms());
        if (!pending && ((!forever && left <= 0) || !wait_fd(l->fd, false, left)))
            return tnd_fail(TND_ERR_IO, "the peer sent nothing for %s", mid_frame ? "the rest of a frame in time"
                                                                                  : "too long (the link is stalled or dead)");
        ssize_t k = l->tls ? gnutls_record_recv(l->tls, p, n) : recv(l->fd, p, n, 0);
        if (k < 0 && (l->tls ? k == GNUTLS_E_AGAIN || k == GNUTLS_E_INTERRUPTED : errno == EINTR)) continue;
        if (k == 0)
            return tnd_fail(TND_ERR_IO, mid_frame ? "the link closed in the middle of a frame (truncated)"
                                                  : "the peer closed the link");
        if (k < 0)
            return tnd_fail(TND_ERR_IO, "the link failed (%s)", l->tls ? gnutls_strerror((int)k) : strerror(errno));
        p += k;
        n -= (size_t)k;
        l->received += (uint64_t)k;
    }
    return TND_OK;
}

tnd_status tnd_link_send(tnd_link *l, tnd_wire_type type, const void *payload, size_t n) {
    if (n > TND_WIRE_MAX_PAYLOAD) return tnd_fail(TND_ERR_INVALID_ARGUMENT, "a message of %zu bytes is too large", n);
    uint8_t header[TND_WIRE_HEADER_BYTES];
    tnd_wire_put_header(header, type, l->seq_out++, (uint32_t)n);
    if (l->tls) gnutls_record_cork(l->tls); /* header and payload in one record where they fit */
    tnd_status st = send_all(l, header, sizeof header);
    if (!st && n) st = send_all(l, payload, n);
    if (l->tls) {
        int rc;
        do rc = gnutls_record_uncork(l->tls, GNUTLS_RECORD_WAIT);
        while (rc == GNUTLS_E_AGAIN || rc == GNUTLS_E_INTERRUPTED);
        if (!st && rc < 0) st = tnd_fail(TND_ERR_IO, "the link is gone (%s)", gnutls_strerror(rc));
    }
    return st;
}

tnd_status tnd_link_recv(tnd_link *l, tnd_wire_header *h, const uint8_t **payload, int timeout_ms) {
    *payload = NULL;
    double deadline = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
    uint8_t header[TND_WIRE_HEADER_BYTES];
    tnd_status st = recv_all(l, header, sizeof header, deadline, false);
    if (!st) st = tnd_wire_get_header(header, h);
    if (st) return st;
    if (h->seq != l->seq_in)
        return tnd_fail(TND_ERR_FORMAT, "frame %u arrived where %u was due (lost, replayed or reordered)", h->seq,
                        l->seq_in);
    l->seq_in++;
    if (h->length > l->cap) {
        uint8_t *grown = realloc(l->buf, h->length);
        if (!grown) return tnd_fail(TND_ERR_OUT_OF_MEMORY, "no memory for a message of %u bytes", h->length);
        l->buf = grown;
        l->cap = h->length;
    }
    if ((st = recv_all(l, l->buf, h->length, deadline, true))) return st;
    *payload = l->buf;
    return TND_OK;
}

bool tnd_link_readable(tnd_link *l, int timeout_ms) {
    return (l->tls && gnutls_record_check_pending(l->tls) > 0) || wait_fd(l->fd, false, timeout_ms);
}

void tnd_link_traffic(const tnd_link *l, uint64_t *sent, uint64_t *received) {
    *sent = l->sent;
    *received = l->received;
}

void tnd_link_abort(tnd_link *l) {
    if (l && l->fd >= 0) shutdown(l->fd, SHUT_RDWR);
}

void tnd_link_close(tnd_link *l) {
    if (!l) return;
    if (l->tls) {
        gnutls_bye(l->tls, GNUTLS_SHUT_WR);
        gnutls_deinit(l->tls);
    }
    if (l->client_cred) gnutls_psk_free_client_credentials(l->client_cred);
    if (l->server_cred) gnutls_psk_free_server_credentials(l->server_cred);
    if (l->fd >= 0) close(l->fd);
    memset(&l->key, 0, sizeof l->key);
    free(l->buf);
    free(l);
}
