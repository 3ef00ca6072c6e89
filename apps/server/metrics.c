/* metrics.c: server counters and gauges under one lock, rendered in the Prometheus text exposition format. */
#include "server.h"

#include <stdlib.h>
#include <string.h>

enum {
    STATUS_MIN = 100,
    STATUS_MAX = 599,
    RATE_WINDOW = 10 /* seconds over which tokens/s are averaged */
};

/* Tokens per one-second bucket; bucket i holds second `second[i]`. */
typedef struct rate_ring {
    int64_t second[RATE_WINDOW];
    uint64_t count[RATE_WINDOW];
} rate_ring;

/* The numbers, copied out under the lock for rendering. */
typedef struct counters {
    uint64_t by_status[STATUS_MAX - STATUS_MIN + 1];
    uint64_t cancelled;
    uint64_t prompt_tokens, cached_tokens, generated_tokens, steps;
    uint64_t drafted_tokens, accepted_tokens, verifications;
    double step_seconds;
    double ttft_sum;
    uint64_t ttft_count;
    int32_t queued, active, kv_used, kv_total;
    uint64_t devices_lost;
    int32_t on_fallback;
    tnd_expert_cache_stats experts; /* the hot-expert cache */
    rate_ring prompt_rate, generation_rate;
} counters;

struct srv_metrics {
    pthread_mutex_t mu;
    counters c;
};

srv_metrics *srv_metrics_new(void) {
    srv_metrics *m = calloc(1, sizeof *m);
    if (m && pthread_mutex_init(&m->mu, NULL)) {
        free(m);
        return NULL;
    }
    return m;
}

void srv_metrics_free(srv_metrics *m) {
    if (!m) return;
    pthread_mutex_destroy(&m->mu);
    free(m);
}

static void rate_add(rate_ring *r, int64_t second, uint64_t n) {
    int i = (int)(second % RATE_WINDOW);
    if (r->second[i] != second) {
        r->second[i] = second;
        r->count[i] = 0;
    }
    r->count[i] += n;
}

/* Average per second over the last RATE_WINDOW whole seconds (the current, partial one excluded). */
static double rate_per_second(const rate_ring *r, int64_t now) {
    uint64_t sum = 0;
    for (int i = 0; i < RATE_WINDOW; i++)
        if (r->second[i] < now && r->second[i] >= now - RATE_WINDOW) sum += r->count[i];
    return (double)sum / RATE_WINDOW;
}

void srv_metrics_request(srv_metrics *m, int status) {
    pthread_mutex_lock(&m->mu);
    if (status >= STATUS_MIN && status <= STATUS_MAX) m->c.by_status[status - STATUS_MIN]++;
    pthread_mutex_unlock(&m->mu);
}

void srv_metrics_cancelled(srv_metrics *m) {
    pthread_mutex_lock(&m->mu);
    m->c.cancelled++;
    pthread_mutex_unlock(&m->mu);
}

void srv_metrics_admitted(srv_metrics *m, int32_t n_prompt, int32_t n_cached) {
    pthread_mutex_lock(&m->mu);
    m->c.prompt_tokens += (uint64_t)n_prompt;
    m->c.cached_tokens += (uint64_t)n_cached;
    pthread_mutex_unlock(&m->mu);
}

void srv_metrics_first_token(srv_metrics *m, double seconds) {
    pthread_mutex_lock(&m->mu);
    m->c.ttft_sum += seconds;
    m->c.ttft_count++;
    pthread_mutex_unlock(&m->mu);
}

void srv_metrics_step(srv_metrics *m, int32_t n_prompt_tokens, int32_t n_generated, double seconds) {
    int64_t second = (int64_t)srv_now();
    pthread_mutex_lock(&m->mu);
    m->c.steps++;
    m->c.step_seconds += seconds;
    m->c.generated_tokens += (uint64_t)n_generated;
    rate_add(&m->c.prompt_rate, second, (uint64_t)n_prompt_tokens);
    rate_add(&m->c.generation_rate, second, (uint64_t)n_generated);
    pthread_mutex_unlock(&m->mu);
}

void srv_metrics_speculation(srv_metrics *m, int64_t drafted, int64_t accepted, int64_t verified) {
    pthread_mutex_lock(&m->mu);
    m->c.drafted_tokens += (uint64_t)drafted;
    m->c.accepted_tokens += (uint64_t)accepted;
    m->c.verifications += (uint64_t)verified;
    pthread_mutex_unlock(&m->mu);
}

void srv_metrics_expert_cache(srv_metrics *m, const tnd_expert_cache_stats *step) {
    pthread_mutex_lock(&m->mu);
    m->c.experts.pairs += step->pairs;
    m->c.experts.hits += step->hits;
    m->c.experts.swaps += step->swaps;
    m->c.experts.bytes_moved += step->bytes_moved;
    pthread_mutex_unlock(&m->mu);
}

void srv_metrics_engine(srv_metrics *m, int32_t queued, int32_t active, int32_t kv_used, int32_t kv_total) {
    pthread_mutex_lock(&m->mu);
    m->c.queued = queued;
    m->c.active = active;
    m->c.kv_used = kv_used;
    m->c.kv_total = kv_total;
    pthread_mutex_unlock(&m->mu);
}

void srv_metrics_device(srv_metrics *m, bool lost, bool on_fallback) {
    pthread_mutex_lock(&m->mu);
    m->c.devices_lost += lost;
    m->c.on_fallback = on_fallback;
    pthread_mutex_unlock(&m->mu);
}

/* One metric: HELP and TYPE lines, then the sample. */
static bool metric(srv_buf *out, const char *name, const char *type, const char *help, double value) {
    return srv_buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n%s %.17g\n", name, help, name, type, name, value);
}

bool srv_metrics_render(srv_metrics *m, srv_buf *out) {
    pthread_mutex_lock(&m->mu);
    counters s = m->c;
    pthread_mutex_unlock(&m->mu);
    int64_t now = (int64_t)srv_now();
    bool ok = srv_buf_printf(out, "# HELP tandem_requests_total HTTP requests answered, by status code.\n"
                                  "# TYPE tandem_requests_total counter\n");
    for (int i = 0; ok && i <= STATUS_MAX - STATUS_MIN; i++)
        if (s.by_status[i])
            ok = srv_buf_printf(out, "tandem_requests_total{status=\"%d\"} %llu\n", i + STATUS_MIN,
                                (unsigned long long)s.by_status[i]);
    return ok &&
           metric(out, "tandem_requests_cancelled_total", "counter",
                  "Generations stopped because the client went away.", (double)s.cancelled) &&
           metric(out, "tandem_prompt_tokens_total", "counter", "Prompt tokens of admitted requests.",
                  (double)s.prompt_tokens) &&
           metric(out, "tandem_prompt_tokens_cached_total", "counter",
                  "Prompt tokens reused from the KV cache instead of being computed.", (double)s.cached_tokens) &&
           metric(out, "tandem_generated_tokens_total", "counter", "Tokens generated.", (double)s.generated_tokens) &&
           metric(out, "tandem_forward_steps_total", "counter", "Forward steps of the batching engine.",
                  (double)s.steps) &&
           metric(out, "tandem_forward_seconds_total", "counter", "Time spent in forward steps.", s.step_seconds) &&
           metric(out, "tandem_spec_drafted_tokens_total", "counter",
                  "Drafted tokens verified by speculative decoding.", (double)s.drafted_tokens) &&
           metric(out, "tandem_spec_accepted_tokens_total", "counter",
                  "Drafted tokens accepted (each saved a forward step).", (double)s.accepted_tokens) &&
           metric(out, "tandem_spec_verifications_total", "counter",
                  "Forward steps that verified a draft.", (double)s.verifications) &&
           metric(out, "tandem_device_lost_total", "counter",
                  "Times a device of the plan was lost (the cloud link died or stalled) and the running requests went "
                  "on here.", (double)s.devices_lost) &&
           metric(out, "tandem_running_on_fallback", "gauge",
                  "1 while the model runs here without the lost device, until it is back.", (double)s.on_fallback) &&
           metric(out, "tandem_expert_cache_pairs_total", "counter",
                  "Chosen (token, expert) pairs of the layers whose experts live apart with a hot-expert cache.",
                  (double)s.experts.pairs) &&
           metric(out, "tandem_expert_cache_hits_total", "counter",
                  "Of those pairs, the ones the hot-expert cache served.", (double)s.experts.hits) &&
           metric(out, "tandem_expert_cache_swaps_total", "counter", "Experts copied into the hot-expert cache.",
                  (double)s.experts.swaps) &&
           metric(out, "tandem_expert_cache_bytes_moved_total", "counter",
                  "Bytes of experts copied into the hot-expert cache.", (double)s.experts.bytes_moved) &&
           metric(out, "tandem_queue_depth", "gauge", "Requests waiting for a free sequence slot.",
                  (double)s.queued) &&
           metric(out, "tandem_active_requests", "gauge", "Requests being prefilled or generated.",
                  (double)s.active) &&
           metric(out, "tandem_kv_blocks_used", "gauge",
                  "KV cache blocks in use (running requests and prompt prefixes kept for reuse).",
                  (double)s.kv_used) &&
           metric(out, "tandem_kv_blocks_free", "gauge", "KV cache blocks free.", (double)(s.kv_total - s.kv_used)) &&
           metric(out, "tandem_prompt_tokens_per_second", "gauge", "Prompt tokens computed per second, last 10 s.",
                  rate_per_second(&s.prompt_rate, now)) &&
           metric(out, "tandem_generation_tokens_per_second", "gauge", "Tokens generated per second, last 10 s.",
                  rate_per_second(&s.generation_rate, now)) &&
           srv_buf_printf(out,
                          "# HELP tandem_time_to_first_token_seconds From arrival to the first generated token.\n"
                          "# TYPE tandem_time_to_first_token_seconds summary\n"
                          "tandem_time_to_first_token_seconds_sum %.17g\n"
                          "tandem_time_to_first_token_seconds_count %llu\n",
                          s.ttft_sum, (unsigned long long)s.ttft_count);
}
