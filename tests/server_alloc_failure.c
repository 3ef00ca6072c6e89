/* server_alloc_failure.c: every allocation of a server request (JSON body, OpenAI mapping and tokenization, the
 * engine's admission, the session's start and steps, the output, the response body) is made to fail in turn, as
 * test_alloc_failure does for the library: each time the request ends with an error that has a message or, where
 * the failure was recoverable (a step tried again), with the full correct answer; nothing leaks (the ASan run
 * checks); and the next request gets the correct answer. The program is linked with the server's sources and
 * --wrap for the C library's allocation functions, so it counts what the server and the library allocate, jansson
 * included (the server routes its allocations through malloc). Requests go straight to the engine, as the HTTP
 * layer hands them over. */
#include "harness.h"

#include "../apps/server/server.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------------------------------------------
 * The failing allocator: allocation number `fail_at` (counted over all threads) returns NULL
 * ---------------------------------------------------------------------------------------------------------- */

static atomic_long n_allocs;
static atomic_long fail_at = -1;
static atomic_bool failed;

static bool fails_now(void) {
    if (atomic_fetch_add(&n_allocs, 1) != atomic_load(&fail_at)) return false;
    atomic_store(&failed, true);
    return true;
}

void *__real_malloc(size_t size);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t size);
void *__real_aligned_alloc(size_t align, size_t size);
char *__real_strdup(const char *s);
char *__real_strndup(const char *s, size_t n);
void *__wrap_malloc(size_t size);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t size);
void *__wrap_aligned_alloc(size_t align, size_t size);
char *__wrap_strdup(const char *s);
char *__wrap_strndup(const char *s, size_t n);

void *__wrap_malloc(size_t size) { return fails_now() ? NULL : __real_malloc(size); }
void *__wrap_calloc(size_t n, size_t size) { return fails_now() ? NULL : __real_calloc(n, size); }
void *__wrap_realloc(void *p, size_t size) { return fails_now() ? NULL : __real_realloc(p, size); }
void *__wrap_aligned_alloc(size_t align, size_t size) { return fails_now() ? NULL : __real_aligned_alloc(align, size); }
char *__wrap_strdup(const char *s) { return fails_now() ? NULL : __real_strdup(s); }
char *__wrap_strndup(const char *s, size_t n) { return fails_now() ? NULL : __real_strndup(s, n); }

/* ------------------------------------------------------------------------------------------------------------
 * One request, as the HTTP layer runs it
 * ---------------------------------------------------------------------------------------------------------- */

static srv_model_info mi;
static srv_engine *engine;

/* Runs a request body. Returns true with the generated text in answer (cap bytes) on success; false with the
 * error's message in answer when it failed. The failing allocator is disarmed before the test reads the response. */
static bool request(srv_kind kind, const char *body_text, char *answer, size_t cap) {
    srv_error err = {0};
    json_t *body = srv_openai_load(body_text, strlen(body_text), &err);
    if (!body) return snprintf(answer, cap, "%d %s", err.status, err.message), false;
    srv_request *r = kind == SRV_KIND_EMBEDDING ? srv_openai_parse_embeddings(&mi, body, &err)
                                                : srv_openai_parse(&mi, kind, body, &err);
    json_decref(body);
    if (!r) return snprintf(answer, cap, "%d %s", err.status, err.message), false;
    r->t_arrival = srv_now();
    r->deadline = r->t_arrival + 60;
    bool ok = false;
    if (srv_engine_submit(engine, r) != SRV_SUBMIT_OK) {
        snprintf(answer, cap, "submit refused");
        srv_request_release(r);
        return false;
    }
    for (;;) { /* wait for the end; taking output only then keeps this thread's allocations in one place */
        srv_request_wait(r, 1.0);
        pthread_mutex_lock(&r->mu);
        bool done = r->done;
        pthread_mutex_unlock(&r->mu);
        if (done) break;
    }
    srv_output out = {0};
    bool has_new = false;
    char *resp = NULL;
    json_t *parsed = NULL;
    if (srv_request_take(r, &out, &has_new) < 0) snprintf(answer, cap, "out of memory taking the output");
    else if (r->finish == SRV_FINISH_ERROR) snprintf(answer, cap, "%d %s", r->error_status, r->error);
    else if (!(resp = kind == SRV_KIND_EMBEDDING ? srv_openai_embeddings(&mi, r) : srv_openai_response(&mi, r, &out)))
        snprintf(answer, cap, "no response body (500)");
    else if (atomic_store(&fail_at, -1), !(parsed = json_loads(resp, 0, NULL))) /* the test's own reading */
        snprintf(answer, cap, "the response is not JSON");
    else if (kind == SRV_KIND_EMBEDDING) { /* the vectors' first values stand for them */
        json_t *data = json_object_get(parsed, "data");
        size_t at = 0;
        ok = json_array_size(data) == 2;
        for (size_t i = 0; ok && i < 2; i++) {
            json_t *v = json_object_get(json_array_get(data, i), "embedding");
            ok = json_array_size(v) == (size_t)mi.n_embd;
            at += (size_t)snprintf(answer + at, cap - at, "%.6f ", json_real_value(json_array_get(v, 0)));
        }
        if (!ok) snprintf(answer, cap, "no embeddings in the response");
    } else {
        json_t *choice = json_array_get(json_object_get(parsed, "choices"), 0);
        json_t *text = kind == SRV_KIND_CHAT ? json_object_get(json_object_get(choice, "message"), "content")
                                             : json_object_get(choice, "text");
        ok = json_is_string(text);
        snprintf(answer, cap, "%s", ok ? json_string_value(text) : "no text in the response");
    }
    json_decref(parsed);
    free(resp);
    srv_output_free(&out);
    srv_request_release(r);
    return ok;
}

typedef struct case_ {
    const char *name;
    srv_kind kind;
    const char *body;
} case_;

static const case_ cases[] = {
    {"completion", SRV_KIND_COMPLETION,
     "{\"model\":\"m\",\"prompt\":\"Once upon a time\",\"max_tokens\":12,\"temperature\":0,\"logprobs\":2,"
     "\"stop\":[\"zzz\"]}"},
    {"chat", SRV_KIND_CHAT,
     "{\"model\":\"m\",\"messages\":[{\"role\":\"system\",\"content\":\"Be brief.\"},{\"role\":\"user\","
     "\"content\":\"Tell a story\"}],\"max_tokens\":12,\"temperature\":0,\"logit_bias\":{\"5\":-100}}"},
    {"json schema", SRV_KIND_CHAT,
     "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"Lily\"}],\"max_tokens\":12,\"temperature\":0,"
     "\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"x\",\"schema\":{\"type\":\"object\","
     "\"properties\":{\"a\":{\"enum\":[1,2]}},\"required\":[\"a\"]}}}}"},
    {"embeddings", SRV_KIND_EMBEDDING, "{\"model\":\"m\",\"input\":[\"Lily went to the park.\",[1,403,407]]}"},
    {"tools", SRV_KIND_CHAT,
     "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"Lily\"},{\"role\":\"assistant\","
     "\"tool_calls\":[{\"id\":\"c\",\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"{}\"}}]},"
     "{\"role\":\"tool\",\"tool_call_id\":\"c\",\"content\":\"ok\"}],\"max_tokens\":24,\"temperature\":0,"
     "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\",\"parameters\":{\"type\":\"object\","
     "\"properties\":{\"n\":{\"enum\":[1]}},\"required\":[\"n\"]}}}],\"tool_choice\":\"required\"}"},
};

int main(void) {
    srv_json_setup();
    tnd_model *model = NULL;
    tnd_tokenizer *tok = NULL;
    srv_metrics *metrics = srv_metrics_new();
    srv_config cfg = {.parallel = 2, .n_ctx = 1024, .n_batch = 32, .n_threads = 1, .max_queue = 4,
                      .k_type = TND_TYPE_F16, .v_type = TND_TYPE_F16};
    if (!CHECK_OK(tnd_model_open(tnd_fixture("real/stories260K.gguf"), NULL, &model)) ||
        !CHECK_OK(tnd_tokenizer_init(model, &tok)) || !CHECK(metrics) ||
        !CHECK_OK(srv_engine_start(&cfg, model, tok, metrics, &engine)))
        goto cleanup;
    mi = (srv_model_info){.tok = tok, .id = "stories", .chat_template = "chatml", .n_ctx = cfg.n_ctx,
                          .n_vocab = tnd_model_n_vocab(model), .n_embd = srv_engine_n_embd(engine),
                          .pooling = tnd_model_pooling(model)};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        char want[4096], got[4096];
        if (!CHECK(request(cases[c].kind, cases[c].body, want, sizeof want))) {
            fprintf(stderr, "  %s: %s\n", cases[c].name, want);
            continue;
        }
        long errors = 0, recovered = 0, k = 0;
        for (;; k++) {
            atomic_store(&failed, false);
            atomic_store(&fail_at, atomic_load(&n_allocs) + k);
            bool ok = request(cases[c].kind, cases[c].body, got, sizeof got);
            atomic_store(&fail_at, -1);
            if (!atomic_load(&failed)) { /* past the request's last allocation */
                CHECK(ok && !strcmp(got, want));
                break;
            }
            if (ok) { /* the failure was absorbed: then the answer is the full, correct one */
                recovered++;
                if (!CHECK(!strcmp(got, want))) fprintf(stderr, "  allocation %ld: got \"%s\"\n", k, got);
            } else {
                errors++;
                if (!CHECK(got[0] != 0)) fprintf(stderr, "  allocation %ld failed without a message\n", k);
            }
            /* the next request works */
            if (!CHECK(request(cases[c].kind, cases[c].body, got, sizeof got) && !strcmp(got, want)))
                fprintf(stderr, "  after allocation %ld: \"%s\"\n", k, got);
        }
        CHECK(errors > 0);
        printf("  %s request: each of its %ld allocations failed in turn: %ld clean errors, %ld retried to the "
               "correct answer \"%s\"\n", cases[c].name, k, errors, recovered, want);
    }
cleanup:
    srv_engine_free(engine);
    srv_metrics_free(metrics);
    tnd_tokenizer_free(tok);
    tnd_model_close(model);
    return tnd_test_finish("server_alloc_failure");
}
