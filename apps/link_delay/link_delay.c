/* link_delay.c: a TCP relay that holds every byte for a while, to give a link the round trip of a real network where
 * the kernel has no delay discipline (netem). scripts/netbed.sh puts it between a device and a cloud in two network
 * namespaces whose veth pair is limited in rate by tbf.
 *
 *   link_delay --listen HOST:PORT --to HOST:PORT --delay-ms MS [--cut-after S]
 *
 * Each connection accepted on --listen is relayed to --to; the bytes of each direction wait MS/2 ms, so a round
 * trip takes MS ms longer. --cut-after S: S seconds after start every link is cut (both sockets closed) and new ones
 * are refused: a link that dies. */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double delay_s, cut_at; /* cut_at: monotonic seconds, 0 = never */
static struct addrinfo *target;

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static bool cut(void) { return cut_at > 0 && now_s() >= cut_at; }

/* Bytes read at `due - delay`, to be written at `due`. */
typedef struct chunk {
    struct chunk *next;
    double due;
    size_t len, sent;
    uint8_t data[];
} chunk;

/* One direction of a link: what `from` sends goes to `to`, late. */
typedef struct pump {
    int from, to;
    atomic_int *open;  /* pumps of the link still running: the last closes the sockets */
    struct pump *pair; /* both pumps of the link, allocated as one */
} pump;

static void *run_pump(void *arg) {
    pump *p = arg;
    chunk *head = NULL, *tail = NULL;
    bool eof = false;
    while (!cut() && (!eof || head)) {
        double wait = head ? head->due - now_s() : 0.1; /* to the microsecond: a millisecond would add up */
        wait = wait < 0 ? 0 : wait > 0.1 ? 0.1 : wait;
        struct timespec timeout = {.tv_sec = 0, .tv_nsec = (long)(wait * 1e9)};
        struct pollfd pf = {.fd = p->from, .events = eof ? 0 : POLLIN};
        if (ppoll(&pf, 1, &timeout, NULL) < 0 && errno != EINTR) break;
        if (pf.revents & (POLLIN | POLLHUP | POLLERR)) {
            uint8_t buf[65536];
            ssize_t n = read(p->from, buf, sizeof buf);
            if (n <= 0) eof = true;
            else {
                chunk *c = malloc(sizeof *c + (size_t)n);
                if (!c) break;
                *c = (chunk){.due = now_s() + delay_s, .len = (size_t)n};
                memcpy(c->data, buf, (size_t)n);
                if (tail) tail->next = c;
                else head = c;
                tail = c;
            }
        }
        bool failed = false;
        while (head && head->due <= now_s() && !failed) {
            ssize_t n = write(p->to, head->data + head->sent, head->len - head->sent);
            failed = n <= 0;
            if (!failed && (head->sent += (size_t)n) == head->len) {
                chunk *done = head;
                head = head->next;
                if (!head) tail = NULL;
                free(done);
            }
        }
        if (failed) break;
    }
    while (head) {
        chunk *next = head->next;
        free(head);
        head = next;
    }
    shutdown(p->to, cut() ? SHUT_RDWR : SHUT_WR);
    if (cut()) shutdown(p->from, SHUT_RDWR);
    if (atomic_fetch_sub(p->open, 1) == 1) {
        close(p->from);
        close(p->to);
        free(p->open);
        free(p->pair);
    }
    return NULL;
}

/* Relays one accepted connection on two detached threads. */
static void relay(int client) {
    int server = socket(target->ai_family, SOCK_STREAM, 0), one = 1;
    if (server < 0 || connect(server, target->ai_addr, target->ai_addrlen) != 0) {
        fprintf(stderr, "link_delay: cannot reach the target: %s\n", strerror(errno));
        close(client);
        if (server >= 0) close(server);
        return;
    }
    setsockopt(client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(server, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    pump *pair = calloc(2, sizeof *pair);
    atomic_int *open = malloc(sizeof *open);
    if (!pair || !open) {
        free(pair);
        free(open);
        close(client);
        close(server);
        return;
    }
    atomic_init(open, 2);
    pair[0] = (pump){client, server, open, pair};
    pair[1] = (pump){server, client, open, pair};
    for (int i = 0; i < 2; i++) {
        pthread_t t;
        if (pthread_create(&t, NULL, run_pump, &pair[i]) == 0) pthread_detach(t);
        else run_pump(&pair[i]);
    }
}

/* "HOST:PORT" (the last colon splits) resolved for a stream socket. */
static struct addrinfo *resolve(const char *host_port, bool passive) {
    const char *colon = strrchr(host_port, ':');
    if (!colon) return NULL;
    char host[256];
    snprintf(host, sizeof host, "%.*s", (int)(colon - host_port), host_port);
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = passive ? AI_PASSIVE : 0}, *out = NULL;
    return getaddrinfo(host[0] ? host : NULL, colon + 1, &hints, &out) == 0 ? out : NULL;
}

static int usage(void) {
    fprintf(stderr, "usage: link_delay --listen HOST:PORT --to HOST:PORT --delay-ms MS [--cut-after SECONDS]\n");
    return 2;
}

int main(int argc, char **argv) {
    const char *listen_at = NULL, *to = NULL;
    double delay_ms = -1, cut_after = 0;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--listen")) listen_at = argv[i + 1];
        else if (!strcmp(argv[i], "--to")) to = argv[i + 1];
        else if (!strcmp(argv[i], "--delay-ms")) delay_ms = atof(argv[i + 1]);
        else if (!strcmp(argv[i], "--cut-after")) cut_after = atof(argv[i + 1]);
        else return usage();
    }
    if (!listen_at || !to || delay_ms < 0 || cut_after < 0 || argc % 2 == 0) return usage();
    signal(SIGPIPE, SIG_IGN);
    delay_s = delay_ms / 2000.0;
    struct addrinfo *local = resolve(listen_at, true);
    target = resolve(to, false);
    if (!local || !target) {
        fprintf(stderr, "link_delay: cannot resolve %s\n", local ? to : listen_at);
        return 1;
    }
    int fd = socket(local->ai_family, SOCK_STREAM, 0), one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (fd < 0 || bind(fd, local->ai_addr, local->ai_addrlen) != 0 || listen(fd, 16) != 0) {
        fprintf(stderr, "link_delay: cannot listen on %s: %s\n", listen_at, strerror(errno));
        return 1;
    }
    if (cut_after > 0) cut_at = now_s() + cut_after;
    fprintf(stderr, "link_delay: %s -> %s, round trip + %.1f ms%s\n", listen_at, to, delay_ms,
            cut_after > 0 ? ", cut later" : "");
    while (!cut()) {
        struct pollfd pf = {.fd = fd, .events = POLLIN};
        if (poll(&pf, 1, 100) <= 0) continue;
        int client = accept(fd, NULL, NULL);
        if (client >= 0) relay(client);
    }
    fprintf(stderr, "link_delay: the link is cut\n");
    close(fd);
    sleep(1); /* the pumps see the cut within 0.1 s and close their links */
    return 0;
}
