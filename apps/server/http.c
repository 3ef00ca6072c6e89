/* http.c: the HTTP side of `tandem serve` on libmicrohttpd, one thread per connection: routing, the bearer-token
 * check, body size and time limits, JSON loading with a depth limit, waiting for the engine's output (whole, or as
 * server-sent events) while watching for the client going away, and one log line per request. */
#include "server.h"

#include <errno.h>
#include <stdarg.h>
#include <microhttpd.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

enum {
    KEEPALIVE_SECONDS = 10 /* an idle stream gets an SSE comment this often */
};
#define POLL_SECONDS 0.2 /* how often a waiting thread looks at its client's socket */

struct srv_http {
    const srv_config *cfg;
    const srv_model_info *mi;
    srv_engine *engine;
    srv_metrics *metrics;
    struct MHD_Daemon *daemon;
    int64_t started; /* Unix seconds, the "created" of /v1/models */
    pthread_mutex_t log_mu;
};

typedef enum route_id {
    R_HEALTH, R_MODELS, R_METRICS, R_CHAT, R_COMPLETIONS, R_EMBEDDINGS, R_TOKENIZE, R_DETOKENIZE
} route_id;

static const struct route {
    const char *path;
    const char *method;
    route_id id;
    bool needs_key; /* when the server has an API key */
} routes[] = {
    {"/health", "GET", R_HEALTH, false},
    {"/v1/models", "GET", R_MODELS, true},
    {"/metrics", "GET", R_METRICS, true},
    {"/v1/chat/completions", "POST", R_CHAT, true},
    {"/v1/completions", "POST", R_COMPLETIONS, true},
    {"/v1/embeddings", "POST", R_EMBEDDINGS, true},
    {"/tokenize", "POST", R_TOKENIZE, true},
    {"/detokenize", "POST", R_DETOKENIZE, true},
};

/* One HTTP request, from its headers to the log line. */
typedef struct exchange {
    srv_http *h;
    struct MHD_Connection *conn;
    const struct route *route;
    char method[8];
    char path[64];
    char client[64];
    double t_start;
    double t_checked;     /* when the client's socket was last looked at */
    srv_buf body;
    int status;           /* the status answered (for the log and metrics); 0 = none yet */
    const char *note;     /* why it ended unusually */
    srv_request *req;     /* a generation, if any */
    srv_output out;       /* output taken from it: all of it (whole) or what is still to be sent (stream) */
    srv_buf pending;      /* stream bytes not yet handed to the library */
    size_t pending_off;
    bool sent_first, sent_end;
    size_t content_sent;  /* a reply with tools: bytes of its content already streamed */
    int32_t text_offset;  /* completions logprobs: bytes of text before the next token */
    char *prompt_log;     /* the prompt as JSON, with --log-prompts */
} exchange;

/* ------------------------------------------------------------------------------------------------------------
 * Responses
 * ---------------------------------------------------------------------------------------------------------- */

/* Queues `body` (malloc'ed, taken; NULL means out of memory: a 500 without body). */
static enum MHD_Result respond(exchange *x, int status, const char *content_type, char *body, const char *hdr,
                               const char *hdr_value) {
    if (!body) status = 500;
    size_t len = body ? strlen(body) : 0;
    struct MHD_Response *r = MHD_create_response_from_buffer(len, body ? (void *)body : (void *)"",
                                                             body ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
    if (!r) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    if (hdr) MHD_add_response_header(r, hdr, hdr_value);
    enum MHD_Result ret = MHD_queue_response(x->conn, (unsigned)status, r);
    MHD_destroy_response(r);
    x->status = status;
    return ret;
}

static enum MHD_Result respond_json(exchange *x, int status, char *body) {
    return respond(x, status, "application/json", body, NULL, NULL);
}

/* An OpenAI error body, with the header the status calls for. */
static enum MHD_Result respond_error(exchange *x, const srv_error *err) {
    const char *hdr = NULL, *value = NULL;
    if (err->status == 401) hdr = MHD_HTTP_HEADER_WWW_AUTHENTICATE, value = "Bearer";
    if (err->status == 429) hdr = MHD_HTTP_HEADER_RETRY_AFTER, value = "1";
    if (err->status == 405) hdr = MHD_HTTP_HEADER_ALLOW, value = x->route ? x->route->method : "GET, POST";
    return respond(x, err->status, "application/json", srv_error_json(err), hdr, value);
}

static enum MHD_Result fail(exchange *x, int status, const char *type, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static enum MHD_Result fail(exchange *x, int status, const char *type, const char *code, const char *fmt, ...) {
    srv_error err;
    srv_fail(&err, status, type, code, NULL, "%s", "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err.message, sizeof err.message, fmt, ap);
    va_end(ap);
    return respond_error(x, &err);
}

/* ------------------------------------------------------------------------------------------------------------
 * Waiting for the engine while watching the client
 * ---------------------------------------------------------------------------------------------------------- */

/* Whether the client closed its side or the connection failed: the socket is readable and reading would return
 * end-of-file or an error (bytes of a next request just sit there). */
static bool client_gone(const exchange *x) {
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(x->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!ci) return false;
    struct pollfd p = {.fd = ci->connect_fd, .events = POLLIN};
    if (poll(&p, 1, 0) <= 0) return false;
    if (p.revents & (POLLERR | POLLHUP | POLLNVAL)) return true;
    char c;
    ssize_t n = recv(ci->connect_fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

typedef enum wait_result { WAIT_READY, WAIT_IDLE, WAIT_GONE } wait_result;

/* Waits until the request has output or is done (READY), the client went away (GONE: the request is cancelled), or
 * `idle_seconds` passed with nothing (IDLE; 0 = wait without limit). The socket is looked at every POLL_SECONDS
 * also while output keeps coming, so a client that leaves during a long whole response is noticed. */
static wait_result wait_output(exchange *x, double idle_seconds) {
    double until = srv_now() + idle_seconds;
    for (;;) {
        bool ready = srv_request_wait(x->req, POLL_SECONDS);
        double now = srv_now();
        if (!ready || now - x->t_checked >= POLL_SECONDS) {
            x->t_checked = now;
            if (client_gone(x)) {
                srv_engine_cancel(x->h->engine, x->req);
                x->note = "client went away";
                return WAIT_GONE;
            }
        }
        if (ready) return WAIT_READY;
        if (idle_seconds > 0 && now > until) return WAIT_IDLE;
    }
}

/* ------------------------------------------------------------------------------------------------------------
 * Generation: whole responses and streams
 * ---------------------------------------------------------------------------------------------------------- */

/* The request's error as an OpenAI error. */
static void request_error(const srv_request *r, srv_error *err) {
    srv_fail(err, r->error_status ? r->error_status : 500, "server_error", NULL, NULL, "%s",
             r->error[0] ? r->error : "generation failed");
}

/* Produces the next stream bytes into x->pending: a chunk of new output, the end of the stream, or a keep-alive
 * comment. Returns false when the stream must be cut (client gone, out of memory). */
static bool stream_produce(exchange *x) {
    const srv_model_info *mi = x->h->mi;
    srv_request *r = x->req;
    bool has_new = false;
    int done = srv_request_take(r, &x->out, &has_new);
    if (done < 0) return false;
    /* a reply that may hold tool calls: its text is streamed while it cannot be part of a call (the rest is held),
     * the calls are sent as deltas once the reply is complete */
    bool tools = r->kind == SRV_KIND_CHAT && r->tools.choice != SRV_TOOLS_NONE;
    if (tools && done && r->finish != SRV_FINISH_ERROR) {
        bool ok = srv_openai_tool_chunks(mi, r, &x->out, x->content_sent, !x->sent_first, &x->pending) &&
                  (!r->include_usage ||
                   srv_openai_chunk(mi, r, "", 0, NULL, 0, &x->text_offset, SRV_FINISH_NONE, false, true, &x->pending));
        x->sent_first = x->sent_end = true;
        return ok && srv_buf_printf(&x->pending, "data: [DONE]\n\n");
    }
    if (tools && !done) {
        size_t from = 0, to = 0;
        srv_tools_streamable(&r->tools, x->out.text.data ? x->out.text.data : "", x->out.text.len, &from, &to);
        if (to > from + x->content_sent) {
            bool ok = srv_openai_chunk(mi, r, x->out.text.data + from + x->content_sent, to - from - x->content_sent,
                                       NULL, 0, &x->text_offset, SRV_FINISH_NONE, !x->sent_first, false, &x->pending);
            x->sent_first = true;
            x->content_sent = to - from;
            return ok;
        }
    }
    if (!tools && (x->out.text.len || x->out.n_infos)) {
        bool ok = srv_openai_chunk(mi, r, x->out.text.data ? x->out.text.data : "", x->out.text.len, x->out.infos,
                                   x->out.n_infos, &x->text_offset, SRV_FINISH_NONE, !x->sent_first, false,
                                   &x->pending);
        x->sent_first = true;
        x->out.text.len = 0;
        x->out.n_infos = 0;
        return ok;
    }
    if (done) {
        bool ok = true;
        if (r->finish == SRV_FINISH_ERROR) {
            srv_error err;
            request_error(r, &err);
            char *e = srv_error_json(&err);
            ok = e && srv_buf_printf(&x->pending, "data: %s\n\n", e);
            free(e);
            x->note = "error during generation";
        } else {
            ok = srv_openai_chunk(mi, r, "", 0, NULL, 0, &x->text_offset, r->finish, !x->sent_first, false,
                                  &x->pending) &&
                 (!r->include_usage ||
                  srv_openai_chunk(mi, r, "", 0, NULL, 0, &x->text_offset, SRV_FINISH_NONE, false, true, &x->pending));
        }
        x->sent_end = true;
        return ok && srv_buf_printf(&x->pending, "data: [DONE]\n\n");
    }
    wait_result w = wait_output(x, KEEPALIVE_SECONDS);
    if (w == WAIT_GONE) return false;
    return w == WAIT_READY || srv_buf_printf(&x->pending, ": keep-alive\n\n");
}

/* The library's content reader for streams: hands out pending bytes, producing more as needed. */
static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max) {
    exchange *x = cls;
    while (x->pending_off == x->pending.len) {
        x->pending.len = x->pending_off = 0;
        if (x->sent_end) return MHD_CONTENT_READER_END_OF_STREAM;
        if (!stream_produce(x)) return MHD_CONTENT_READER_END_WITH_ERROR;
    }
    size_t n = x->pending.len - x->pending_off;
    if (n > max) n = max;
    memcpy(buf, x->pending.data + x->pending_off, n);
    x->pending_off += n;
    return (ssize_t)n;
}

/* Submits a parsed request and answers: waits for the first output so that errors before it still get their HTTP
 * status, then sends the whole response or starts the event stream. */
static enum MHD_Result run_generation(exchange *x, srv_request *r) {
    srv_http *h = x->h;
    r->t_arrival = x->t_start;
    r->deadline = x->t_start + h->cfg->request_timeout;
    r->created = (int64_t)time(NULL);
    switch (srv_engine_submit(h->engine, r)) {
    case SRV_SUBMIT_QUEUE_FULL:
        srv_request_release(r);
        return fail(x, 429, "server_busy", "queue_full", "%s",
                    "the server is busy: every sequence slot and queue place is taken; retry shortly");
    case SRV_SUBMIT_CLOSED:
        srv_request_release(r);
        return fail(x, 503, "server_error", NULL, "%s", "the server is shutting down");
    case SRV_SUBMIT_OK:
        break;
    }
    x->req = r;
    bool has_new = false;
    int done = 0;
    if (wait_output(x, 0) == WAIT_GONE) return MHD_NO;
    if (!r->stream) { /* collect everything */
        while ((done = srv_request_take(r, &x->out, &has_new)) == 0)
            if (wait_output(x, 0) == WAIT_GONE) return MHD_NO;
    } else {
        pthread_mutex_lock(&r->mu);
        done = r->done && r->finish == SRV_FINISH_ERROR && !r->text.len;
        pthread_mutex_unlock(&r->mu);
    }
    if (done < 0) return fail(x, 500, "server_error", NULL, "%s", "out of memory");
    if (done && r->finish == SRV_FINISH_ERROR && (!r->stream || !x->out.text.len)) {
        srv_error err;
        request_error(r, &err);
        return respond_error(x, &err);
    }
    if (r->kind == SRV_KIND_EMBEDDING) return respond_json(x, 200, srv_openai_embeddings(h->mi, r));
    if (!r->stream) return respond_json(x, 200, srv_openai_response(h->mi, r, &x->out));
    struct MHD_Response *resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024, stream_read, x, NULL);
    if (!resp) return MHD_NO;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    MHD_add_response_header(resp, "X-Accel-Buffering", "no");
    enum MHD_Result ret = MHD_queue_response(x->conn, MHD_HTTP_OK, resp);
    MHD_destroy_response(resp);
    x->status = 200;
    return ret;
}

/* ------------------------------------------------------------------------------------------------------------
 * Routing
 * ---------------------------------------------------------------------------------------------------------- */

/* Answers a fully received request. */
static enum MHD_Result handle(exchange *x) {
    srv_http *h = x->h;
    const srv_model_info *mi = h->mi;
    srv_error err;
    switch (x->route->id) {
    case R_HEALTH:
        return respond_json(x, 200, strdup("{\"status\":\"ok\"}"));
    case R_MODELS:
        return respond_json(x, 200, srv_openai_models(mi, h->started));
    case R_METRICS: {
        srv_buf b = {0};
        if (!srv_metrics_render(h->metrics, &b)) srv_buf_free(&b);
        return respond(x, 200, "text/plain; version=0.0.4; charset=utf-8", b.data, NULL, NULL);
    }
    default:
        break;
    }
    json_t *body = srv_openai_load(x->body.data, x->body.len, &err);
    if (!body) return respond_error(x, &err);
    enum MHD_Result ret = MHD_NO;
    char *out = NULL;
    if (x->route->id == R_CHAT || x->route->id == R_COMPLETIONS) {
        srv_kind kind = x->route->id == R_CHAT ? SRV_KIND_CHAT : SRV_KIND_COMPLETION;
        if (h->cfg->log_prompts) {
            const json_t *p = json_object_get(body, kind == SRV_KIND_CHAT ? "messages" : "prompt");
            x->prompt_log = p ? json_dumps(p, JSON_COMPACT | JSON_ENCODE_ANY | JSON_ENSURE_ASCII) : NULL;
        }
        srv_request *r = srv_openai_parse(mi, kind, body, &err);
        json_decref(body);
        return r ? run_generation(x, r) : respond_error(x, &err);
    }
    if (x->route->id == R_EMBEDDINGS) {
        srv_request *r = srv_openai_parse_embeddings(mi, body, &err);
        json_decref(body);
        return r ? run_generation(x, r) : respond_error(x, &err);
    }
    out = x->route->id == R_TOKENIZE ? srv_openai_tokenize(mi, body, &err) : srv_openai_detokenize(mi, body, &err);
    ret = out ? respond_json(x, 200, out) : respond_error(x, &err);
    json_decref(body);
    return ret;
}

static bool authorized(const exchange *x) {
    const char *key = x->h->cfg->api_key;
    if (!key || !x->route->needs_key) return true;
    const char *auth = MHD_lookup_connection_value(x->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    if (!auth || strncasecmp(auth, "Bearer ", 7)) return false;
    const char *token = auth + 7;
    while (*token == ' ') token++;
    return srv_secret_equal(key, strlen(key), token, strlen(token));
}

/* The first call for a request (headers received): route, method, key and declared size are checked before any
 * body is read. Returns MHD_YES to go on reading the body. */
static enum MHD_Result on_headers(exchange *x, const char *url, const char *method) {
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++)
        if (!strcmp(url, routes[i].path)) x->route = &routes[i];
    if (!x->route) return fail(x, 404, "invalid_request_error", "unknown_url", "Unknown request URL: %.200s", url);
    if (strcmp(method, x->route->method))
        return fail(x, 405, "invalid_request_error", "method_not_allowed", "%s", "method not allowed for this URL");
    if (!authorized(x))
        return fail(x, 401, "invalid_request_error", "invalid_api_key", "%s",
                    "Incorrect API key provided: pass it as 'Authorization: Bearer KEY'");
    const char *length = MHD_lookup_connection_value(x->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (length && strtoull(length, NULL, 10) > x->h->cfg->max_body) {
        srv_error err;
        srv_fail(&err, 413, "invalid_request_error", "request_too_large", NULL,
                 "the request body is larger than the server's limit of %zu bytes", x->h->cfg->max_body);
        return respond_error(x, &err);
    }
    return MHD_YES;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **con_cls) {
    srv_http *h = cls;
    exchange *x = *con_cls;
    if (!x) {
        if (!(x = calloc(1, sizeof *x))) return MHD_NO;
        *con_cls = x;
        x->h = h;
        x->conn = conn;
        x->t_start = srv_now();
        snprintf(x->method, sizeof x->method, "%s", method);
        snprintf(x->path, sizeof x->path, "%s", url);
        for (char *c = x->path; *c; c++) /* the log shows it: no control characters from a decoded URL */
            if ((unsigned char)*c < 0x20 || *c == 0x7f) *c = '?';
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        if (!ci || !ci->client_addr ||
            getnameinfo(ci->client_addr,
                        ci->client_addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                                               : sizeof(struct sockaddr_in),
                        x->client, sizeof x->client, NULL, 0, NI_NUMERICHOST))
            snprintf(x->client, sizeof x->client, "-");
        return on_headers(x, url, method);
    }
    if (x->status) { /* answered already (early error): drop whatever body still comes */
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (*upload_data_size) {
        if (*upload_data_size > h->cfg->max_body - x->body.len) {
            x->status = 413;
            x->note = "body over the size limit: connection closed";
            return MHD_NO;
        }
        if (srv_now() - x->t_start > h->cfg->read_timeout) {
            x->status = 408;
            x->note = "body too slow: connection closed";
            return MHD_NO;
        }
        if (!srv_buf_append(&x->body, upload_data, *upload_data_size)) return MHD_NO;
        *upload_data_size = 0;
        return MHD_YES;
    }
    return handle(x);
}

/* ------------------------------------------------------------------------------------------------------------
 * End of a request: cancel what runs, log, count, free
 * ---------------------------------------------------------------------------------------------------------- */

static void log_request(exchange *x, int status) {
    char when[32];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    srv_buf line = {0};
    srv_buf_printf(&line, "%s %s %s %s %d %.0f ms", when, x->client, x->method, x->path, status,
                   (srv_now() - x->t_start) * 1e3);
    srv_request *r = x->req;
    if (r) {
        pthread_mutex_lock(&r->mu);
        srv_buf_printf(&line, " | prompt %d (cached %d) generated %d", r->n_prompt, r->n_cached, r->n_generated);
        if (r->t_first_token > 0) srv_buf_printf(&line, " ttft %.0f ms", (r->t_first_token - r->t_arrival) * 1e3);
        if (r->done && r->finish != SRV_FINISH_NONE)
            srv_buf_printf(&line, " %s", r->finish == SRV_FINISH_STOP     ? "stop"
                                         : r->finish == SRV_FINISH_LENGTH ? "length"
                                         : r->finish == SRV_FINISH_ERROR  ? "error"
                                                                          : "cancelled");
        pthread_mutex_unlock(&r->mu);
    }
    if (x->note) srv_buf_printf(&line, " | %s", x->note);
    if (x->prompt_log) srv_buf_printf(&line, " | prompt: %s", x->prompt_log);
    pthread_mutex_lock(&x->h->log_mu);
    fprintf(stderr, "tandem serve: %s\n", line.data ? line.data : "(out of memory)");
    pthread_mutex_unlock(&x->h->log_mu);
    srv_buf_free(&line);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
    exchange *x = *con_cls;
    if (!x) return;
    *con_cls = NULL;
    int status = x->status;
    if (x->req) {
        pthread_mutex_lock(&x->req->mu);
        bool done = x->req->done;
        pthread_mutex_unlock(&x->req->mu);
        if (!done) srv_engine_cancel(x->h->engine, x->req);
    }
    if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK) {
        if (!x->note)
            x->note = toe == MHD_REQUEST_TERMINATED_TIMEOUT_REACHED ? "timed out: connection closed"
                      : toe == MHD_REQUEST_TERMINATED_DAEMON_SHUTDOWN ? "server shutting down"
                                                                     : "client went away";
        if (!status || (x->req && status == 200)) status = 499; /* closed before the answer was complete */
    }
    if (!status) status = 499;
    srv_metrics_request(x->h->metrics, status);
    log_request(x, status);
    srv_request_release(x->req);
    srv_output_free(&x->out);
    srv_buf_free(&x->body);
    srv_buf_free(&x->pending);
    free(x->prompt_log);
    free(x);
}

/* ------------------------------------------------------------------------------------------------------------
 * Start and stop
 * ---------------------------------------------------------------------------------------------------------- */

tnd_status srv_http_start(const srv_config *cfg, const srv_model_info *mi, srv_engine *engine, srv_metrics *metrics,
                          srv_http **out, int *port_out) {
    *out = NULL;
    struct addrinfo hints = {.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE, .ai_socktype = SOCK_STREAM};
    struct addrinfo *ai = NULL;
    char port[16];
    snprintf(port, sizeof port, "%d", cfg->port);
    if (getaddrinfo(cfg->host, port, &hints, &ai) || !ai) {
        fprintf(stderr, "tandem serve: --host %s is not a numeric IPv4 or IPv6 address\n", cfg->host);
        return TND_ERR_INVALID_ARGUMENT;
    }
    srv_http *h = calloc(1, sizeof *h);
    if (!h || pthread_mutex_init(&h->log_mu, NULL)) {
        free(h);
        freeaddrinfo(ai);
        return TND_ERR_OUT_OF_MEMORY;
    }
    h->cfg = cfg;
    h->mi = mi;
    h->engine = engine;
    h->metrics = metrics;
    h->started = (int64_t)time(NULL);
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL |
                     (ai->ai_family == AF_INET6 ? MHD_USE_IPv6 : 0);
    h->daemon = MHD_start_daemon(flags, (uint16_t)cfg->port, NULL, NULL, on_request, h, MHD_OPTION_SOCK_ADDR,
                                 ai->ai_addr, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)cfg->read_timeout,
                                 MHD_OPTION_CONNECTION_LIMIT, (unsigned)cfg->max_connections,
                                 MHD_OPTION_NOTIFY_COMPLETED, on_completed, h, MHD_OPTION_LISTENING_ADDRESS_REUSE,
                                 (unsigned)1, MHD_OPTION_END);
    freeaddrinfo(ai);
    if (!h->daemon) {
        fprintf(stderr, "tandem serve: cannot listen on %s port %d: %s\n", cfg->host, cfg->port, strerror(errno));
        pthread_mutex_destroy(&h->log_mu);
        free(h);
        return TND_ERR_IO;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(h->daemon, MHD_DAEMON_INFO_BIND_PORT);
    *port_out = di ? di->port : cfg->port;
    *out = h;
    return TND_OK;
}

void srv_http_stop(srv_http *h) {
    if (!h) return;
    MHD_stop_daemon(h->daemon);
    pthread_mutex_destroy(&h->log_mu);
    free(h);
}
