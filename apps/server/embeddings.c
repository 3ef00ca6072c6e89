/* embeddings.c: POST /v1/embeddings: the request body into a request whose inputs are tokenized, and the response
 * with one vector per input (floats, or base64 of little-endian float32 as OpenAI's encoding_format has it). */
#include "server.h"

#include <stdlib.h>
#include <string.h>

#define INVALID "invalid_request_error"

enum { MAX_INPUTS = 2048 }; /* OpenAI's limit per request */

/* Appends input i's tokens to the request's run of tokens. */
static bool add_input(const srv_model_info *mi, srv_request *r, const json_t *v, size_t i, srv_error *err) {
    int32_t n = 0;
    int32_t *at = NULL;
    if (json_is_string(v)) {
        const char *text = json_string_value(v);
        size_t len = json_string_length(v);
        n = tnd_tokenizer_encode(mi->tok, text, len, TND_TOKENIZE_ADD_SPECIAL, NULL, 0);
        n = n < 0 ? -n : n;
        if (n == TND_TOKENIZE_ERROR || n > mi->n_ctx)
            return srv_fail(err, 400, INVALID, n > 0 ? "context_length_exceeded" : NULL, "input",
                            "input %zu does not fit: %d tokens, the context holds %d", i, n, mi->n_ctx);
        int32_t *grown = realloc(r->prompt, sizeof *grown * (size_t)(r->n_prompt + n + 1));
        if (!grown) return srv_fail(err, 500, "server_error", NULL, NULL, "out of memory");
        r->prompt = grown;
        at = r->prompt + r->n_prompt;
        if (tnd_tokenizer_encode(mi->tok, text, len, TND_TOKENIZE_ADD_SPECIAL, at, n) != n)
            return srv_fail(err, 500, "server_error", NULL, NULL, "tokenizing input %zu failed", i);
    } else if (json_is_array(v)) {
        size_t m = json_array_size(v), k;
        if (m > (size_t)mi->n_ctx)
            return srv_fail(err, 400, INVALID, "context_length_exceeded", "input",
                            "input %zu does not fit: %zu tokens, the context holds %d", i, m, mi->n_ctx);
        int32_t *grown = realloc(r->prompt, sizeof *grown * ((size_t)r->n_prompt + m + 1));
        if (!grown) return srv_fail(err, 500, "server_error", NULL, NULL, "out of memory");
        r->prompt = grown;
        at = r->prompt + r->n_prompt;
        const json_t *t;
        json_array_foreach(v, k, t) {
            if (!json_is_integer(t) || json_integer_value(t) < 0 || json_integer_value(t) >= mi->n_vocab)
                return srv_fail(err, 400, INVALID, NULL, "input", "input %zu: token ids must be in [0, %d)", i,
                                mi->n_vocab);
            at[k] = (int32_t)json_integer_value(t);
        }
        n = (int32_t)m;
    } else
        return srv_fail(err, 400, INVALID, NULL, "input",
                        "'input' must be a string, an array of strings, or token ids (an array, or arrays of them)");
    if (!n) return srv_fail(err, 400, INVALID, NULL, "input", "input %zu is empty", i);
    r->input_len[i] = n;
    r->n_prompt += n;
    return true;
}

srv_request *srv_openai_parse_embeddings(const srv_model_info *mi, const json_t *body, srv_error *err) {
    if (!json_is_object(body)) {
        srv_fail(err, 400, INVALID, NULL, NULL, "the request body must be a JSON object");
        return NULL;
    }
    const char *key;
    const json_t *v, *input = NULL, *format = NULL, *dimensions = NULL;
    json_object_foreach((json_t *)body, key, v) {
        if (!strcmp(key, "input")) input = v;
        else if (!strcmp(key, "encoding_format")) format = v;
        else if (!strcmp(key, "dimensions")) dimensions = v;
        else if (strcmp(key, "model") && strcmp(key, "user")) {
            srv_fail(err, 400, INVALID, NULL, key, "Unrecognized request argument supplied: %.64s", key);
            return NULL;
        }
    }
    if (!input) {
        srv_fail(err, 400, INVALID, NULL, "input", "'input' is required");
        return NULL;
    }
    const char *fmt = format ? json_string_value(format) : "float";
    if (!fmt || (strcmp(fmt, "float") && strcmp(fmt, "base64"))) {
        srv_fail(err, 400, INVALID, NULL, "encoding_format", "'encoding_format' must be 'float' or 'base64'");
        return NULL;
    }
    if (dimensions && (!json_is_integer(dimensions) || json_integer_value(dimensions) != mi->n_embd)) {
        srv_fail(err, 400, INVALID, NULL, "dimensions",
                 "'dimensions' cannot shorten this model's embeddings: leave it out, or give %d", mi->n_embd);
        return NULL;
    }
    /* one input, or a list of them: a list of integers is one input of token ids */
    bool list = json_is_array(input) && json_array_size(input) && !json_is_integer(json_array_get(input, 0));
    size_t n = list ? json_array_size(input) : 1;
    if (json_is_array(input) && !json_array_size(input)) {
        srv_fail(err, 400, INVALID, NULL, "input", "'input' is empty");
        return NULL;
    }
    if (n > MAX_INPUTS) {
        srv_fail(err, 400, INVALID, NULL, "input", "'input' has %zu entries; at most %d", n, MAX_INPUTS);
        return NULL;
    }
    srv_request *r = srv_request_new();
    if (!r) {
        srv_fail(err, 500, "server_error", NULL, NULL, "out of memory");
        return NULL;
    }
    r->kind = SRV_KIND_EMBEDDING;
    r->base64 = !strcmp(fmt, "base64");
    r->n_inputs = (int32_t)n;
    r->n_embd = mi->n_embd;
    r->input_len = calloc(n, sizeof *r->input_len);
    r->embeddings = calloc(n * (size_t)mi->n_embd, sizeof *r->embeddings);
    bool ok = r->input_len && r->embeddings;
    if (!ok) srv_fail(err, 500, "server_error", NULL, NULL, "out of memory");
    for (size_t i = 0; ok && i < n; i++) ok = add_input(mi, r, list ? json_array_get(input, i) : input, i, err);
    if (!ok) {
        srv_request_release(r);
        return NULL;
    }
    return r;
}

/* Base64 of n bytes into out (4 * ceil(n / 3) characters and a NUL). */
static void base64(const uint8_t *in, size_t n, char *out) {
    static const char digits[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < n ? (uint32_t)in[i + 1] << 8 : 0) | (i + 2 < n ? in[i + 2] : 0);
        out[o++] = digits[v >> 18 & 63];
        out[o++] = digits[v >> 12 & 63];
        out[o++] = i + 1 < n ? digits[v >> 6 & 63] : '=';
        out[o++] = i + 2 < n ? digits[v & 63] : '=';
    }
    out[o] = 0;
}

/* One vector as JSON: an array of floats, or base64 of its little-endian float32 bytes. */
static json_t *vector_json(const float *v, int32_t n, bool as_base64) {
    if (!as_base64) {
        json_t *a = json_array();
        for (int32_t j = 0; a && j < n; j++)
            if (json_array_append_new(a, json_real((double)v[j]))) {
                json_decref(a);
                return NULL;
            }
        return a;
    }
    size_t bytes = sizeof(float) * (size_t)n;
    uint8_t *raw = malloc(bytes);
    char *text = malloc(bytes / 3 * 4 + 8);
    json_t *s = NULL;
    if (raw && text) {
        for (int32_t j = 0; j < n; j++) { /* little-endian, whatever the host */
            uint32_t u;
            memcpy(&u, &v[j], sizeof u);
            for (int k = 0; k < 4; k++) raw[4 * j + k] = (uint8_t)(u >> (8 * k));
        }
        base64(raw, bytes, text);
        s = json_string(text);
    }
    free(raw);
    free(text);
    return s;
}

char *srv_openai_embeddings(const srv_model_info *mi, const srv_request *r) {
    json_t *o = json_object(), *data = json_array(), *usage = json_object();
    bool ok = o && data && usage && !json_object_set_new(o, "object", json_string("list")) &&
              !json_object_set(o, "data", data) && !json_object_set_new(o, "model", json_string(mi->id)) &&
              !json_object_set_new(usage, "prompt_tokens", json_integer(r->n_prompt)) &&
              !json_object_set_new(usage, "total_tokens", json_integer(r->n_prompt)) &&
              !json_object_set(o, "usage", usage);
    for (int32_t i = 0; ok && i < r->n_inputs; i++) {
        json_t *e = json_object();
        ok = e && !json_array_append_new(data, e) && !json_object_set_new(e, "object", json_string("embedding")) &&
             !json_object_set_new(e, "index", json_integer(i)) &&
             !json_object_set_new(e, "embedding",
                                  vector_json(r->embeddings + (size_t)i * (size_t)r->n_embd, r->n_embd, r->base64));
    }
    char *s = ok ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(data);
    json_decref(usage);
    json_decref(o);
    return s;
}
