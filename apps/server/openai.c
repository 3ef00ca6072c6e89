/* openai.c: the OpenAI API mapping: chat and text completion bodies into requests (every field checked for type
 * and range, unknown fields refused, the conversation rendered with the chat template and tokenized), responses and
 * stream chunks, errors, and the tokenize / detokenize / models bodies. */
#include "server.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define INVALID "invalid_request_error"

/* ------------------------------------------------------------------------------------------------------------
 * Errors and small JSON helpers
 * ---------------------------------------------------------------------------------------------------------- */

bool srv_fail(srv_error *err, int status, const char *type, const char *code, const char *param, const char *fmt,
              ...) {
    err->status = status;
    err->type = type;
    err->code = code;
    snprintf(err->param, sizeof err->param, "%s", param ? param : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    return false;
}

/* A JSON string of n bytes with malformed UTF-8 replaced (jansson accepts only valid UTF-8); NULL if out of memory. */
static json_t *json_text(const char *s, size_t n) {
    srv_buf b = {0};
    json_t *v = srv_utf8_sanitize(s, n, &b) ? json_stringn(b.data ? b.data : "", b.len) : NULL;
    srv_buf_free(&b);
    return v;
}

/* A log-probability as JSON: -inf (a banned or impossible token) becomes -9999, as OpenAI reports it. */
static json_t *json_logprob(float lp) { return json_real(isfinite(lp) ? (double)lp : -9999.0); }

/* Serializes and frees `v`; NULL if v is NULL or out of memory, also when an allocation failed while it was built
 * (a field may then be missing). */
static char *dump(json_t *v) {
    char *s = v ? json_dumps(v, JSON_COMPACT) : NULL;
    json_decref(v);
    if (srv_json_alloc_failed()) {
        free(s);
        return NULL;
    }
    return s;
}

json_t *srv_openai_load(const char *data, size_t len, srv_error *err) {
    if (!len) {
        srv_fail(err, 400, "invalid_request_error", NULL, NULL, "the request needs a JSON body");
        return NULL;
    }
    json_error_t jerr;
    srv_json_alloc_failed(); /* a note left by earlier work on this thread is not about this body */
    json_t *root = json_loadb(data, len, JSON_REJECT_DUPLICATES, &jerr);
    if (srv_json_alloc_failed()) { /* the parse may have dropped characters */
        json_decref(root);
        srv_fail(err, 500, "server_error", NULL, NULL, "out of memory reading the JSON body");
        return NULL;
    }
    if (!root) {
        srv_fail(err, 400, "invalid_request_error", "invalid_json", NULL,
                 "We could not parse the JSON body of your request: %s (line %d, column %d)", jerr.text, jerr.line,
                 jerr.column);
        return NULL;
    }
    if (!srv_json_depth_ok(root, SRV_MAX_JSON_DEPTH)) {
        json_decref(root);
        srv_fail(err, 400, "invalid_request_error", "invalid_json", NULL,
                 "the JSON body is nested deeper than %d levels", SRV_MAX_JSON_DEPTH);
        return NULL;
    }
    return root;
}

char *srv_error_json(const srv_error *err) {
    json_t *e = json_object();
    json_object_set_new(e, "message", json_text(err->message, strlen(err->message)));
    json_object_set_new(e, "type", json_string(err->type ? err->type : INVALID));
    json_object_set_new(e, "param", err->param[0] ? json_text(err->param, strlen(err->param)) : json_null());
    json_object_set_new(e, "code", err->code ? json_string(err->code) : json_null());
    json_t *root = json_object();
    json_object_set_new(root, "error", e);
    return dump(root);
}

/* Type and range checks of one field: each fills *err naming the field and returns false on a mismatch. */
static bool get_bool(const json_t *v, const char *name, bool *out, srv_error *err) {
    if (!json_is_boolean(v)) return srv_fail(err, 400, INVALID, NULL, name, "'%s' must be a boolean", name);
    *out = json_is_true(v);
    return true;
}

static bool get_int(const json_t *v, const char *name, long long lo, long long hi, long long *out, srv_error *err) {
    if (!json_is_integer(v)) return srv_fail(err, 400, INVALID, NULL, name, "'%s' must be an integer", name);
    long long x = json_integer_value(v);
    if (x < lo || x > hi)
        return srv_fail(err, 400, INVALID, NULL, name, "'%s' must be between %lld and %lld, got %lld", name, lo, hi, x);
    *out = x;
    return true;
}

static bool get_number(const json_t *v, const char *name, double lo, double hi, double *out, srv_error *err) {
    if (!json_is_number(v)) return srv_fail(err, 400, INVALID, NULL, name, "'%s' must be a number", name);
    double x = json_number_value(v);
    if (!(x >= lo && x <= hi))
        return srv_fail(err, 400, INVALID, NULL, name, "'%s' must be between %g and %g, got %g", name, lo, hi, x);
    *out = x;
    return true;
}

/* Parses a decimal token id (the keys of logit_bias) in [0, n_vocab). */
static bool parse_token_key(const char *key, int32_t n_vocab, int32_t *out) {
    if (!*key || strlen(key) > 10) return false;
    for (const char *p = key; *p; p++)
        if (*p < '0' || *p > '9') return false;
    long long v = strtoll(key, NULL, 10);
    if (v >= n_vocab) return false;
    *out = (int32_t)v;
    return true;
}

/* ------------------------------------------------------------------------------------------------------------
 * Fields of the request bodies
 * ---------------------------------------------------------------------------------------------------------- */

enum { FOR_CHAT = 1, FOR_COMPLETION = 2, FOR_BOTH = 3 };

typedef enum field_id {
    F_MODEL, F_MESSAGES, F_PROMPT, F_MAX_TOKENS, F_TEMPERATURE, F_TOP_P, F_TOP_K, F_MIN_P, F_STOP, F_SEED,
    F_PRESENCE_PENALTY, F_FREQUENCY_PENALTY, F_LOGIT_BIAS, F_LOGPROBS, F_TOP_LOGPROBS, F_STREAM, F_STREAM_OPTIONS,
    F_N, F_BEST_OF, F_ECHO, F_SUFFIX, F_RESPONSE_FORMAT, F_TOOLS, F_TOOL_CHOICE, F_PARALLEL_TOOL_CALLS, F_IGNORED,
    F_UNSUPPORTED
} field_id;

/* Every field a body may carry. F_IGNORED fields do not change the output (user, metadata); F_UNSUPPORTED ones
 * are OpenAI features this server does not have and are refused by name. top_k and min_p extend the API. */
static const struct field {
    const char *name;
    int kinds;
    field_id id;
} fields[] = {
    {"model", FOR_BOTH, F_MODEL},
    {"messages", FOR_CHAT, F_MESSAGES},
    {"prompt", FOR_COMPLETION, F_PROMPT},
    {"max_tokens", FOR_BOTH, F_MAX_TOKENS},
    {"max_completion_tokens", FOR_CHAT, F_MAX_TOKENS},
    {"temperature", FOR_BOTH, F_TEMPERATURE},
    {"top_p", FOR_BOTH, F_TOP_P},
    {"top_k", FOR_BOTH, F_TOP_K},
    {"min_p", FOR_BOTH, F_MIN_P},
    {"stop", FOR_BOTH, F_STOP},
    {"seed", FOR_BOTH, F_SEED},
    {"presence_penalty", FOR_BOTH, F_PRESENCE_PENALTY},
    {"frequency_penalty", FOR_BOTH, F_FREQUENCY_PENALTY},
    {"logit_bias", FOR_BOTH, F_LOGIT_BIAS},
    {"logprobs", FOR_BOTH, F_LOGPROBS},
    {"top_logprobs", FOR_CHAT, F_TOP_LOGPROBS},
    {"stream", FOR_BOTH, F_STREAM},
    {"stream_options", FOR_BOTH, F_STREAM_OPTIONS},
    {"n", FOR_BOTH, F_N},
    {"best_of", FOR_COMPLETION, F_BEST_OF},
    {"echo", FOR_COMPLETION, F_ECHO},
    {"suffix", FOR_COMPLETION, F_SUFFIX},
    {"response_format", FOR_CHAT, F_RESPONSE_FORMAT},
    {"user", FOR_BOTH, F_IGNORED},
    {"metadata", FOR_CHAT, F_IGNORED},
    {"store", FOR_CHAT, F_IGNORED},
    {"tools", FOR_CHAT, F_TOOLS},
    {"tool_choice", FOR_CHAT, F_TOOL_CHOICE},
    {"parallel_tool_calls", FOR_CHAT, F_PARALLEL_TOOL_CALLS},
    {"functions", FOR_CHAT, F_UNSUPPORTED},
    {"function_call", FOR_CHAT, F_UNSUPPORTED},
    {"audio", FOR_CHAT, F_UNSUPPORTED},
    {"modalities", FOR_CHAT, F_UNSUPPORTED},
    {"prediction", FOR_CHAT, F_UNSUPPORTED},
    {"reasoning_effort", FOR_CHAT, F_UNSUPPORTED},
    {"web_search_options", FOR_CHAT, F_UNSUPPORTED},
    {"service_tier", FOR_BOTH, F_UNSUPPORTED},
};

static const struct field *find_field(const char *name, srv_kind kind) {
    int mask = kind == SRV_KIND_CHAT ? FOR_CHAT : FOR_COMPLETION;
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
        if ((fields[i].kinds & mask) && !strcmp(fields[i].name, name)) return &fields[i];
    return NULL;
}

/* Raw fields found in a body; NULL = absent or null. */
typedef struct body_fields {
    const json_t *v[F_UNSUPPORTED + 1];
} body_fields;

/* ------------------------------------------------------------------------------------------------------------
 * Prompts
 * ---------------------------------------------------------------------------------------------------------- */

/* Tokenizes text into a new array. */
static bool tokenize(const srv_model_info *mi, const char *text, size_t len, uint32_t flags, int32_t **out,
                     int32_t *n, srv_error *err) {
    if (len > TND_TOKENIZE_MAX_TEXT) return srv_fail(err, 400, INVALID, NULL, NULL, "the prompt is too long");
    int32_t count = tnd_tokenizer_encode(mi->tok, text, len, flags, NULL, 0);
    if (count == TND_TOKENIZE_ERROR)
        return srv_fail(err, 400, INVALID, NULL, NULL, "cannot tokenize the prompt: %s", tnd_last_error());
    count = count < 0 ? -count : count;
    *out = malloc(sizeof(int32_t) * (size_t)(count + 1));
    if (!*out) return srv_fail(err, 500, "server_error", NULL, NULL, "out of memory");
    if (count && tnd_tokenizer_encode(mi->tok, text, len, flags, *out, count) != count)
        return srv_fail(err, 500, "server_error", NULL, NULL, "tokenizer: %s", tnd_last_error());
    *n = count;
    return true;
}

/* The text of one message's content: a string, or an array of {"type": "text", "text": ...} parts joined (into
 * *joined, which the caller frees). */
static bool message_content(const json_t *content, const char *param, const char **text, char **joined,
                            srv_error *err) {
    if (json_is_string(content)) {
        *text = json_string_value(content);
        return true;
    }
    if (!json_is_array(content))
        return srv_fail(err, 400, INVALID, NULL, param, "'%s' must be a string or an array of text parts", param);
    srv_buf b = {0};
    size_t i;
    const json_t *part;
    json_array_foreach(content, i, part) {
        const json_t *type = json_object_get(part, "type"), *t = json_object_get(part, "text");
        if (!json_is_object(part) || !json_is_string(type) || strcmp(json_string_value(type), "text") ||
            !json_is_string(t) || json_object_size(part) != 2) {
            srv_buf_free(&b);
            return srv_fail(err, 400, INVALID, NULL, param,
                            "'%s[%zu]': only {\"type\": \"text\", \"text\": ...} content parts are supported", param,
                            i);
        }
        if (!srv_buf_append(&b, json_string_value(t), json_string_length(t))) {
            srv_buf_free(&b);
            return srv_fail(err, 500, "server_error", NULL, NULL, "out of memory");
        }
    }
    if (!srv_buf_reserve(&b, 0)) return srv_fail(err, 500, "server_error", NULL, NULL, "out of memory");
    *joined = b.data;
    *text = b.data;
    return true;
}

/* An assistant message's tool_calls written the way the model writes them, after its text. */
static bool write_calls(const srv_tools *tools, const json_t *calls, const char *param, srv_buf *b, srv_error *err) {
    if (!json_is_array(calls)) return srv_fail(err, 400, INVALID, NULL, param, "'%s' must be an array", param);
    size_t i;
    const json_t *c;
    json_array_foreach(calls, i, c) {
        const json_t *fn = json_object_get(c, "function");
        const char *name = json_string_value(json_object_get(fn, "name")),
                   *args = json_string_value(json_object_get(fn, "arguments"));
        if (!name || !args)
            return srv_fail(err, 400, INVALID, NULL, param,
                            "'%s[%zu]' must have function.name and function.arguments (a string)", param, i);
        if (!srv_tools_write_call(tools, name, args, i, json_array_size(calls), b))
            return srv_fail(err, 500, "server_error", NULL, NULL, "out of memory");
    }
    return true;
}

/* One message of the conversation into msg (text it needs goes to *joined, owned by the caller): roles system,
 * developer, user, assistant (text, tool_calls in the model's format) and tool (a result: the chat template's tool
 * turn). */
static bool chat_message(const srv_tools *tools, const json_t *m, size_t i, tnd_chat_message *msg, char **joined,
                         srv_error *err) {
    char param[64];
    snprintf(param, sizeof param, "messages[%zu]", i);
    if (!json_is_object(m)) return srv_fail(err, 400, INVALID, NULL, param, "'%s' must be an object", param);
    const char *key;
    const json_t *v, *role = NULL, *content = NULL, *calls = NULL;
    json_object_foreach((json_t *)m, key, v) {
        if (!strcmp(key, "role")) role = v;
        else if (!strcmp(key, "content")) content = v;
        else if (!strcmp(key, "tool_calls")) calls = v;
        else if (strcmp(key, "name") && strcmp(key, "tool_call_id"))
            return srv_fail(err, 400, INVALID, NULL, param, "'%s': unsupported field '%s'", param, key);
        else if (!json_is_string(v))
            return srv_fail(err, 400, INVALID, NULL, param, "'%s.%s' must be a string", param, key);
    }
    const char *r = json_is_string(role) ? json_string_value(role) : NULL;
    if (!r || (strcmp(r, "system") && strcmp(r, "developer") && strcmp(r, "user") && strcmp(r, "assistant") &&
               strcmp(r, "tool")))
        return srv_fail(err, 400, INVALID, NULL, param,
                        "'%s.role' must be one of system, developer, user, assistant, tool", param);
    bool assistant = !strcmp(r, "assistant");
    if (calls && !assistant)
        return srv_fail(err, 400, INVALID, NULL, param, "'%s': only assistant messages carry tool_calls", param);
    msg->role = !strcmp(r, "developer") ? "system" : r;
    snprintf(param, sizeof param, "messages[%zu].content", i);
    const char *text = "";
    if (content && !json_is_null(content)) {
        if (!message_content(content, param, &text, joined, err)) return false;
    } else if (!assistant)
        return srv_fail(err, 400, INVALID, NULL, param, "'%s' is required", param);
    if (!calls) {
        msg->content = text;
        return true;
    }
    srv_buf b = {0};
    if (!srv_buf_printf(&b, "%s", text)) return srv_fail(err, 500, "server_error", NULL, NULL, "out of memory");
    snprintf(param, sizeof param, "messages[%zu].tool_calls", i);
    if (!write_calls(tools, calls, param, &b, err)) {
        srv_buf_free(&b);
        return false;
    }
    free(*joined);
    *joined = b.data;
    msg->content = b.data;
    return true;
}

/* Renders `messages` with the chat template and tokenizes the result (BOS as the model wants, special markers
 * parsed). With tools, their description ends the system turn (one is opened where the conversation has none), or
 * opens the first user message, as the tool format has it. */
static bool chat_prompt(const srv_model_info *mi, const json_t *messages, const srv_tools *tools, int32_t **tokens,
                        int32_t *n_tokens, srv_error *err) {
    if (!mi->chat_template)
        return srv_fail(err, 400, INVALID, NULL, "messages",
                        "this model has no chat template tandem recognises; start the server with --chat-template "
                        "NAME, or use /v1/completions");
    if (!json_is_array(messages) || !json_array_size(messages))
        return srv_fail(err, 400, INVALID, NULL, "messages", "'messages' must be a non-empty array");
    size_t n_given = json_array_size(messages);
    if (n_given > SRV_MAX_MESSAGES)
        return srv_fail(err, 400, INVALID, NULL, "messages", "at most %d messages are accepted", SRV_MAX_MESSAGES);
    tnd_chat_message *msgs = calloc(n_given + 1, sizeof *msgs);
    char **joined = calloc(n_given + 1, sizeof *joined);
    bool ok = msgs && joined;
    if (!ok) srv_fail(err, 500, "server_error", NULL, NULL, "out of memory");
    /* a system turn of the tools' own first when the conversation opens without one, or the tools as a message of
     * their own at the end (the template places it: mistral-v3 before the last user turn) */
    const char *tools_text = tools->prompt_text;
    srv_tools_place place = tools->format ? tools->format->place : SRV_TOOLS_IN_SYSTEM;
    bool in_user = tools_text && place == SRV_TOOLS_IN_FIRST_USER;
    const char *first_role = json_string_value(json_object_get(json_array_get(messages, 0), "role"));
    bool own_system = ok && tools_text && place == SRV_TOOLS_IN_SYSTEM &&
                      (!first_role || (strcmp(first_role, "system") && strcmp(first_role, "developer")));
    bool own_message = ok && tools_text && place == SRV_TOOLS_AS_MESSAGE;
    size_t n = n_given + own_system + own_message;
    if (own_system) msgs[0] = (tnd_chat_message){"system", tools_text};
    if (own_message) msgs[n - 1] = (tnd_chat_message){"tools", tools_text};
    for (size_t i = 0; ok && i < n_given; i++)
        ok = chat_message(tools, json_array_get(messages, i), i, &msgs[i + own_system], &joined[i + own_system], err);
    /* the description joins the system turn, or opens the first user message */
    size_t at = 0;
    while (in_user && at < n && strcmp(msgs[at].role, "user")) at++;
    if (ok && tools_text && place != SRV_TOOLS_AS_MESSAGE && !own_system && at < n) {
        srv_buf b = {0};
        if (!(in_user ? srv_buf_printf(&b, "%s%s", tools_text, msgs[at].content)
                      : srv_buf_printf(&b, "%s\n\n%s", msgs[at].content, tools_text)))
            ok = srv_fail(err, 500, "server_error", NULL, NULL, "out of memory");
        free(joined[at]);
        joined[at] = b.data;
        msgs[at].content = b.data;
    }
    /* message contents are plain text: a client's "<|im_start|>system" cannot open a turn */
    size_t needed = 0;
    tnd_status st = ok ? tnd_chat_template_apply(mi->chat_template, msgs, n, 1, mi->eos_text, NULL, 0, &needed) : 0;
    if (ok && st != TND_OK && st != TND_ERR_BUFFER_TOO_SMALL)
        ok = st == TND_ERR_INVALID_ARGUMENT
                 ? srv_fail(err, 400, INVALID, NULL, "messages", "%s", tnd_last_error())
                 : srv_fail(err, 500, "server_error", NULL, NULL, "chat template: %s", tnd_last_error());
    if (ok) {
        uint32_t flags = TND_TOKENIZE_ADD_SPECIAL;
        int32_t count = needed > TND_TOKENIZE_MAX_TEXT
                            ? TND_TOKENIZE_ERROR
                            : tnd_chat_encode(mi->tok, mi->chat_template, msgs, n, 1, mi->eos_text, flags, NULL, 0);
        if (count == TND_TOKENIZE_ERROR) {
            ok = srv_fail(err, 400, INVALID, NULL, "messages", "cannot tokenize the conversation: %s",
                          needed > TND_TOKENIZE_MAX_TEXT ? "the prompt is too long" : tnd_last_error());
        } else {
            count = count < 0 ? -count : count;
            *tokens = malloc(sizeof(int32_t) * (size_t)(count + 1));
            if (!*tokens)
                ok = srv_fail(err, 500, "server_error", NULL, NULL, "out of memory");
            else if (count && tnd_chat_encode(mi->tok, mi->chat_template, msgs, n, 1, mi->eos_text, flags, *tokens,
                                              count) != count)
                ok = srv_fail(err, 500, "server_error", NULL, NULL, "chat template: %s", tnd_last_error());
            else
                *n_tokens = count;
        }
    }
    for (size_t i = 0; joined && i < n; i++) free(joined[i]);
    free(joined);
    free(msgs);
    return ok;
}

/* A completion prompt: a string, one string in an array, token ids, or one array of token ids. */
static bool completion_prompt(const srv_model_info *mi, const json_t *prompt, int32_t **tokens, int32_t *n_tokens,
                              srv_error *err) {
    if (json_is_array(prompt) && json_array_size(prompt) == 1 && !json_is_integer(json_array_get(prompt, 0)))
        prompt = json_array_get(prompt, 0); /* ["text"] or [[ids]] */
    if (json_is_string(prompt))
        return tokenize(mi, json_string_value(prompt), json_string_length(prompt),
                        TND_TOKENIZE_ADD_SPECIAL | TND_TOKENIZE_PARSE_SPECIAL, tokens, n_tokens, err);
    if (!json_is_array(prompt))
        return srv_fail(err, 400, INVALID, NULL, "prompt", "'prompt' must be a string or an array of token ids");
    size_t n = json_array_size(prompt), i;
    if (n > (size_t)INT32_MAX / 2) return srv_fail(err, 400, INVALID, NULL, "prompt", "'prompt' is too long");
    if (!(*tokens = malloc(sizeof(int32_t) * (n + 1))))
        return srv_fail(err, 500, "server_error", NULL, NULL, "out of memory");
    const json_t *v;
    json_array_foreach(prompt, i, v) {
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) >= mi->n_vocab)
            return srv_fail(err, 400, INVALID, NULL, "prompt",
                            "'prompt' must be one string or one array of token ids in [0, %d) (several prompts are "
                            "not supported)", mi->n_vocab);
        (*tokens)[i] = (int32_t)json_integer_value(v);
    }
    *n_tokens = (int32_t)n;
    return true;
}

/* ------------------------------------------------------------------------------------------------------------
 * Requests
 * ---------------------------------------------------------------------------------------------------------- */

static bool parse_stop(srv_request *r, const json_t *v, srv_error *err) {
    size_t n = json_is_array(v) ? json_array_size(v) : 1;
    if (!json_is_string(v) && !json_is_array(v))
        return srv_fail(err, 400, INVALID, NULL, "stop", "'stop' must be a string or an array of strings");
    if (n > SRV_MAX_STOPS)
        return srv_fail(err, 400, INVALID, NULL, "stop", "'stop' takes at most %d strings", SRV_MAX_STOPS);
    for (size_t i = 0; i < n; i++) {
        const json_t *s = json_is_array(v) ? json_array_get(v, i) : v;
        if (!json_is_string(s) || !json_string_length(s))
            return srv_fail(err, 400, INVALID, NULL, "stop", "'stop' entries must be non-empty strings");
        if (!(r->stops[r->n_stops] = strdup(json_string_value(s))))
            return srv_fail(err, 500, "server_error", NULL, NULL, "out of memory");
        r->n_stops++;
    }
    return true;
}

static bool parse_logit_bias(const srv_model_info *mi, srv_request *r, const json_t *v, srv_error *err) {
    if (!json_is_object(v))
        return srv_fail(err, 400, INVALID, NULL, "logit_bias", "'logit_bias' must be an object of token id: bias");
    size_t n = json_object_size(v);
    if (n > SRV_MAX_LOGIT_BIAS)
        return srv_fail(err, 400, INVALID, NULL, "logit_bias", "'logit_bias' takes at most %d entries",
                        SRV_MAX_LOGIT_BIAS);
    if (!(r->bias = calloc(n + 1, sizeof *r->bias)))
        return srv_fail(err, 500, "server_error", NULL, NULL, "out of memory");
    const char *key;
    const json_t *b;
    json_object_foreach((json_t *)v, key, b) {
        int32_t token = 0;
        double bias = 0;
        if (!parse_token_key(key, mi->n_vocab, &token))
            return srv_fail(err, 400, INVALID, NULL, "logit_bias",
                            "'logit_bias' keys must be token ids in [0, %d), got '%.32s'", mi->n_vocab, key);
        if (!get_number(b, "logit_bias", -100, 100, &bias, err)) return false;
        r->bias[r->sampling.n_logit_bias++] = (tnd_logit_bias){token, (float)bias};
    }
    r->sampling.logit_bias = r->bias;
    return true;
}

/* Checks the fields that take a few fixed values only: n, best_of, echo, suffix. */
static bool check_fixed(const body_fields *f, srv_error *err) {
    long long x = 0;
    bool flag = false;
    if (f->v[F_N] && (!get_int(f->v[F_N], "n", 1, 128, &x, err) || x != 1))
        return srv_fail(err, 400, INVALID, NULL, "n", "'n' must be 1: this server returns one choice per request");
    if (f->v[F_BEST_OF] && (!get_int(f->v[F_BEST_OF], "best_of", 1, 128, &x, err) || x != 1))
        return srv_fail(err, 400, INVALID, NULL, "best_of", "'best_of' must be 1");
    if (f->v[F_ECHO] && (!get_bool(f->v[F_ECHO], "echo", &flag, err) || flag))
        return srv_fail(err, 400, INVALID, NULL, "echo", "'echo' is not supported");
    if (f->v[F_SUFFIX] && (!json_is_string(f->v[F_SUFFIX]) || json_string_length(f->v[F_SUFFIX])))
        return srv_fail(err, 400, INVALID, NULL, "suffix", "'suffix' is not supported");
    if (f->v[F_MODEL] && !json_is_string(f->v[F_MODEL]))
        return srv_fail(err, 400, INVALID, NULL, "model", "'model' must be a string");
    return true;
}

/* response_format: {"type": "text"}, {"type": "json_object"} (a JSON object) or {"type": "json_schema",
 * "json_schema": {"name": ..., "schema": {...}, "strict": ...}} (JSON that validates against the schema: the output
 * is constrained by grammar whether strict is set or not). A schema that cannot be compiled is a 400 naming why. */
static bool parse_response_format(srv_request *r, const body_fields *f, srv_error *err) {
    const json_t *rf = f->v[F_RESPONSE_FORMAT];
    if (!rf) return true;
    const char *type = json_string_value(json_object_get(rf, "type"));
    if (!json_is_object(rf) || !type)
        return srv_fail(err, 400, INVALID, NULL, "response_format",
                        "'response_format' must be an object with a 'type'");
    if (!strcmp(type, "text")) return true;
    tnd_status st;
    if (!strcmp(type, "json_object")) {
        const char *json = tnd_grammar_json_text();
        st = tnd_grammar_parse(json, strlen(json), NULL, &r->grammar);
    } else if (!strcmp(type, "json_schema")) {
        const json_t *js = json_object_get(rf, "json_schema"), *schema = json_object_get(js, "schema");
        if (!json_is_object(js))
            return srv_fail(err, 400, INVALID, NULL, "response_format.json_schema",
                            "'response_format.json_schema' must be an object with the schema under 'schema'");
        if (!schema) schema = json_true(); /* no schema: any JSON value (the type says JSON) */
        char *text = json_dumps(schema, JSON_COMPACT | JSON_ENCODE_ANY);
        if (!text) return srv_fail(err, 500, "server_error", NULL, NULL, "out of memory");
        st = tnd_grammar_from_json_schema(text, strlen(text), &r->grammar);
        free(text);
        if (st == TND_ERR_INVALID_ARGUMENT)
            return srv_fail(err, 400, INVALID, NULL, "response_format.json_schema.schema",
                            "'response_format.json_schema.schema' cannot be used: %s", tnd_last_error());
    } else
        return srv_fail(err, 400, INVALID, NULL, "response_format.type",
                        "'response_format.type' must be 'text', 'json_object' or 'json_schema', not '%.32s'", type);
    if (st) return srv_fail(err, 500, "server_error", NULL, NULL, "out of memory");
    return true;
}

/* The sampling fields, with OpenAI's defaults (temperature 1, top_p 1, no top-k / min-p, penalties over all generated
 * tokens, a random seed). */
static bool parse_sampling(const srv_model_info *mi, srv_request *r, const body_fields *f, srv_error *err) {
    tnd_sampler_params *sp = &r->sampling;
    *sp = tnd_sampler_default_params();
    sp->temperature = 1;
    sp->top_k = 0;
    sp->top_p = 1;
    sp->min_p = 0;
    sp->penalty_last_n = -1;
    sp->seed = TND_SAMPLER_SEED_RANDOM;
    double x = 0;
    long long k = 0;
    if (f->v[F_TEMPERATURE] && !get_number(f->v[F_TEMPERATURE], "temperature", 0, 2, &x, err)) return false;
    if (f->v[F_TEMPERATURE]) sp->temperature = (float)x;
    if (f->v[F_TOP_P] && !get_number(f->v[F_TOP_P], "top_p", 0, 1, &x, err)) return false;
    if (f->v[F_TOP_P]) {
        if (x > 0) sp->top_p = (float)x;
        else sp->temperature = 0; /* the smallest nucleus is the most likely token */
    }
    if (f->v[F_TOP_K] && !get_int(f->v[F_TOP_K], "top_k", 0, INT32_MAX, &k, err)) return false;
    if (f->v[F_TOP_K]) sp->top_k = (int32_t)k;
    if (f->v[F_MIN_P] && !get_number(f->v[F_MIN_P], "min_p", 0, 1, &x, err)) return false;
    if (f->v[F_MIN_P]) sp->min_p = (float)x;
    if (f->v[F_PRESENCE_PENALTY] && !get_number(f->v[F_PRESENCE_PENALTY], "presence_penalty", -2, 2, &x, err))
        return false;
    if (f->v[F_PRESENCE_PENALTY]) sp->presence_penalty = (float)x;
    if (f->v[F_FREQUENCY_PENALTY] && !get_number(f->v[F_FREQUENCY_PENALTY], "frequency_penalty", -2, 2, &x, err))
        return false;
    if (f->v[F_FREQUENCY_PENALTY]) sp->frequency_penalty = (float)x;
    if (f->v[F_SEED]) {
        if (!json_is_integer(f->v[F_SEED]))
            return srv_fail(err, 400, INVALID, NULL, "seed", "'seed' must be an integer");
        sp->seed = (uint64_t)json_integer_value(f->v[F_SEED]);
    }
    return !f->v[F_LOGIT_BIAS] || parse_logit_bias(mi, r, f->v[F_LOGIT_BIAS], err);
}

/* The output fields: max_tokens, stop, logprobs, stream and its options. */
static bool parse_output(srv_request *r, const body_fields *f, srv_error *err) {
    long long k = 0;
    bool flag = false;
    if (f->v[F_MAX_TOKENS] && !get_int(f->v[F_MAX_TOKENS], "max_tokens", 1, INT32_MAX, &k, err)) return false;
    if (f->v[F_MAX_TOKENS]) r->max_tokens = (int32_t)k;
    if (f->v[F_STOP] && !parse_stop(r, f->v[F_STOP], err)) return false;
    const json_t *lp = f->v[F_LOGPROBS];
    if (lp && r->kind == SRV_KIND_CHAT) {
        if (!get_bool(lp, "logprobs", &r->logprobs, err)) return false;
    } else if (lp) { /* completions: the number of alternatives */
        if (!get_int(lp, "logprobs", 0, SRV_MAX_TOP_LOGPROBS, &k, err)) return false;
        r->logprobs = true;
        r->top_logprobs = (int32_t)k;
    }
    if (f->v[F_TOP_LOGPROBS]) {
        if (!get_int(f->v[F_TOP_LOGPROBS], "top_logprobs", 0, SRV_MAX_TOP_LOGPROBS, &k, err)) return false;
        if (!r->logprobs)
            return srv_fail(err, 400, INVALID, NULL, "top_logprobs", "'top_logprobs' needs 'logprobs' set to true");
        r->top_logprobs = (int32_t)k;
    }
    if (f->v[F_STREAM] && !get_bool(f->v[F_STREAM], "stream", &r->stream, err)) return false;
    const json_t *so = f->v[F_STREAM_OPTIONS];
    if (so) {
        if (!r->stream)
            return srv_fail(err, 400, INVALID, NULL, "stream_options",
                            "'stream_options' is only allowed when 'stream' is true");
        const char *key;
        const json_t *v;
        if (!json_is_object(so))
            return srv_fail(err, 400, INVALID, NULL, "stream_options", "'stream_options' must be an object");
        json_object_foreach((json_t *)so, key, v) {
            if (strcmp(key, "include_usage"))
                return srv_fail(err, 400, INVALID, NULL, "stream_options",
                                "'stream_options': unsupported field '%.64s'", key);
            if (!get_bool(v, "stream_options.include_usage", &flag, err)) return false;
            r->include_usage = flag;
        }
    }
    return true;
}

srv_request *srv_openai_parse(const srv_model_info *mi, srv_kind kind, const json_t *body, srv_error *err) {
    if (!json_is_object(body)) {
        srv_fail(err, 400, INVALID, NULL, NULL, "the request body must be a JSON object");
        return NULL;
    }
    body_fields f = {{0}};
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)body, key, v) {
        const struct field *fd = find_field(key, kind);
        if (!fd) {
            srv_fail(err, 400, INVALID, NULL, key, "Unrecognized request argument supplied: %.64s", key);
            return NULL;
        }
        if (fd->id == F_UNSUPPORTED && !json_is_null(v)) {
            srv_fail(err, 400, INVALID, "unsupported_parameter", key, "'%s' is not supported by this server", key);
            return NULL;
        }
        if (!json_is_null(v)) f.v[fd->id] = v;
    }
    srv_request *r = srv_request_new();
    if (!r) {
        srv_fail(err, 500, "server_error", NULL, NULL, "out of memory");
        return NULL;
    }
    r->kind = kind;
    const json_t *prompt = f.v[kind == SRV_KIND_CHAT ? F_MESSAGES : F_PROMPT];
    bool ok = check_fixed(&f, err) && parse_sampling(mi, r, &f, err) && parse_output(r, &f, err) &&
              parse_response_format(r, &f, err);
    tnd_grammar *calls_only = NULL;
    if (ok && kind == SRV_KIND_CHAT)
        ok = srv_tools_parse(mi->chat_template, f.v[F_TOOLS], f.v[F_TOOL_CHOICE], f.v[F_PARALLEL_TOOL_CALLS],
                             &r->tools, &calls_only, err);
    if (ok && calls_only && r->grammar) {
        tnd_grammar_free(calls_only);
        ok = srv_fail(err, 400, INVALID, NULL, "tool_choice",
                      "'tool_choice' that requires a call and 'response_format' cannot be used together");
    } else if (calls_only) r->grammar = calls_only;
    if (ok && !prompt)
        ok = srv_fail(err, 400, INVALID, NULL, kind == SRV_KIND_CHAT ? "messages" : "prompt", "'%s' is required",
                      kind == SRV_KIND_CHAT ? "messages" : "prompt");
    if (ok)
        ok = kind == SRV_KIND_CHAT ? chat_prompt(mi, prompt, &r->tools, &r->prompt, &r->n_prompt, err)
                                   : completion_prompt(mi, prompt, &r->prompt, &r->n_prompt, err);
    if (ok && !r->n_prompt) ok = srv_fail(err, 400, INVALID, NULL, "prompt", "the prompt is empty");
    if (ok && r->n_prompt >= mi->n_ctx)
        ok = srv_fail(err, 400, INVALID, "context_length_exceeded", kind == SRV_KIND_CHAT ? "messages" : "prompt",
                      "This model's maximum context length is %d tokens. However, your prompt has %d tokens.",
                      mi->n_ctx, r->n_prompt);
    if (!ok) {
        srv_request_release(r);
        return NULL;
    }
    srv_random_id(kind == SRV_KIND_CHAT ? "chatcmpl-" : "cmpl-", r->id, sizeof r->id);
    return r;
}

/* ------------------------------------------------------------------------------------------------------------
 * Responses
 * ---------------------------------------------------------------------------------------------------------- */

static const char *finish_name(srv_finish f) {
    return f == SRV_FINISH_STOP ? "stop" : f == SRV_FINISH_LENGTH ? "length" : NULL;
}

/* The fields every response object starts with. */
static json_t *response_head(const srv_model_info *mi, const srv_request *r, const char *object) {
    json_t *o = json_object();
    json_object_set_new(o, "id", json_string(r->id));
    json_object_set_new(o, "object", json_string(object));
    json_object_set_new(o, "created", json_integer(r->created));
    json_object_set_new(o, "model", json_text(mi->id, strlen(mi->id)));
    json_object_set_new(o, "system_fingerprint", json_sprintf("tandem-%s", tnd_version()));
    return o;
}

static json_t *usage_json(const srv_request *r) {
    json_t *u = json_object();
    json_object_set_new(u, "prompt_tokens", json_integer(r->n_prompt));
    json_object_set_new(u, "completion_tokens", json_integer(r->n_generated));
    json_object_set_new(u, "total_tokens", json_integer((json_int_t)r->n_prompt + r->n_generated));
    json_t *details = json_object();
    json_object_set_new(details, "cached_tokens", json_integer(r->n_cached));
    json_object_set_new(u, "prompt_tokens_details", details);
    return u;
}

/* {"token", "logprob", "bytes"} of one token (chat format). */
static json_t *token_entry(const srv_model_info *mi, int32_t token, float logprob) {
    size_t len = 0;
    const char *piece = tnd_tokenizer_piece(mi->tok, token, 0, &len);
    if (!piece) len = 0;
    json_t *bytes = json_array();
    for (size_t i = 0; i < len; i++) json_array_append_new(bytes, json_integer((unsigned char)piece[i]));
    json_t *o = json_object();
    json_object_set_new(o, "token", json_text(piece ? piece : "", len));
    json_object_set_new(o, "logprob", json_logprob(logprob));
    json_object_set_new(o, "bytes", bytes);
    return o;
}

/* Logprobs of `n` tokens: chat {"content": [...]} or the completions form {"tokens", "token_logprobs",
 * "top_logprobs", "text_offset"}; *offset advances by the pieces' lengths. */
static json_t *logprobs_json(const srv_model_info *mi, const srv_request *r, const srv_token_info *infos, int32_t n,
                             int32_t *offset) {
    if (r->kind == SRV_KIND_CHAT) {
        json_t *content = json_array();
        for (int32_t i = 0; i < n; i++) {
            json_t *e = token_entry(mi, infos[i].token, infos[i].logprob), *top = json_array();
            for (int32_t k = 0; k < infos[i].n_top; k++)
                json_array_append_new(top, token_entry(mi, infos[i].top[k].token, infos[i].top[k].logprob));
            json_object_set_new(e, "top_logprobs", top);
            json_array_append_new(content, e);
        }
        json_t *o = json_object();
        json_object_set_new(o, "content", content);
        return o;
    }
    json_t *tokens = json_array(), *lps = json_array(), *tops = json_array(), *offsets = json_array();
    for (int32_t i = 0; i < n; i++) {
        size_t len = 0;
        const char *piece = tnd_tokenizer_piece(mi->tok, infos[i].token, 0, &len);
        json_array_append_new(tokens, json_text(piece ? piece : "", piece ? len : 0));
        json_array_append_new(lps, json_logprob(infos[i].logprob));
        json_t *top = json_object();
        for (int32_t k = 0; k < infos[i].n_top; k++) {
            size_t tl = 0;
            const char *tp = tnd_tokenizer_piece(mi->tok, infos[i].top[k].token, 0, &tl);
            srv_buf key = {0};
            if (srv_utf8_sanitize(tp ? tp : "", tp ? tl : 0, &key) && srv_buf_reserve(&key, 0))
                json_object_set_new(top, key.data, json_logprob(infos[i].top[k].logprob));
            srv_buf_free(&key);
        }
        json_array_append_new(tops, top);
        json_array_append_new(offsets, json_integer(*offset));
        *offset += piece ? (int32_t)len : 0;
    }
    json_t *o = json_object();
    json_object_set_new(o, "tokens", tokens);
    json_object_set_new(o, "token_logprobs", lps);
    json_object_set_new(o, "top_logprobs", tops);
    json_object_set_new(o, "text_offset", offsets);
    return o;
}

bool srv_openai_chunk(const srv_model_info *mi, const srv_request *r, const char *text, size_t text_len,
                      const srv_token_info *infos, int32_t n_infos, int32_t *text_offset, srv_finish finish,
                      bool first, bool usage_only, srv_buf *out) {
    bool chat = r->kind == SRV_KIND_CHAT;
    json_t *o = response_head(mi, r, chat ? "chat.completion.chunk" : "text_completion");
    json_t *choices = json_array();
    if (!usage_only) {
        json_t *c = json_object();
        json_object_set_new(c, "index", json_integer(0));
        if (chat) {
            json_t *delta = json_object();
            if (first) json_object_set_new(delta, "role", json_string("assistant"));
            if (finish == SRV_FINISH_NONE) json_object_set_new(delta, "content", json_text(text, text_len));
            json_object_set_new(c, "delta", delta);
        } else {
            json_object_set_new(c, "text", json_text(text, text_len));
        }
        json_object_set_new(c, "logprobs",
                            r->logprobs && n_infos ? logprobs_json(mi, r, infos, n_infos, text_offset) : json_null());
        const char *fn = finish_name(finish);
        json_object_set_new(c, "finish_reason", fn ? json_string(fn) : json_null());
        json_array_append_new(choices, c);
    }
    json_object_set_new(o, "choices", choices);
    if (r->include_usage) json_object_set_new(o, "usage", usage_only ? usage_json(r) : json_null());
    char *s = dump(o);
    bool ok = s && srv_buf_printf(out, "data: %s\n\n", s);
    free(s);
    return ok;
}

/* The tool_calls array of a reply: ids made from the request's, types, names and arguments; with `indexed` each
 * carries its index (stream deltas). */
static json_t *tool_calls_json(const srv_request *r, const srv_tool_call *calls, int32_t n, bool indexed) {
    json_t *a = json_array();
    for (int32_t i = 0; i < n; i++) {
        json_t *c = json_object(), *fn = json_object();
        if (indexed) json_object_set_new(c, "index", json_integer(i));
        json_object_set_new(c, "id", json_sprintf("call_%s_%d", r->id, i));
        json_object_set_new(c, "type", json_string("function"));
        json_object_set_new(fn, "name", json_string(calls[i].name));
        json_object_set_new(fn, "arguments", json_string(calls[i].arguments));
        json_object_set_new(c, "function", fn);
        json_array_append_new(a, c);
    }
    return a;
}

/* The reply split into its text and calls where the request has tools; false when out of memory. */
static bool split_calls(const srv_request *r, const srv_output *out, srv_buf *content, srv_tool_call **calls,
                        int32_t *n_calls) {
    *calls = NULL;
    *n_calls = 0;
    if (r->tools.choice == SRV_TOOLS_NONE)
        return srv_buf_append(content, out->text.data ? out->text.data : "", out->text.len);
    return srv_tools_extract(&r->tools, out->text.data ? out->text.data : "", out->text.len, content, calls, n_calls);
}

char *srv_openai_response(const srv_model_info *mi, const srv_request *r, const srv_output *out) {
    bool chat = r->kind == SRV_KIND_CHAT;
    srv_buf content = {0};
    srv_tool_call *calls = NULL;
    int32_t n_calls = 0;
    if (!split_calls(r, out, &content, &calls, &n_calls)) {
        srv_buf_free(&content);
        return NULL;
    }
    json_t *o = response_head(mi, r, chat ? "chat.completion" : "text_completion");
    json_t *c = json_object();
    int32_t offset = 0;
    json_object_set_new(c, "index", json_integer(0));
    json_t *text = n_calls && !content.len ? json_null() : json_text(content.data ? content.data : "", content.len);
    if (chat) {
        json_t *msg = json_object();
        json_object_set_new(msg, "role", json_string("assistant"));
        json_object_set_new(msg, "content", text);
        json_object_set_new(msg, "refusal", json_null());
        if (n_calls) json_object_set_new(msg, "tool_calls", tool_calls_json(r, calls, n_calls, false));
        json_object_set_new(c, "message", msg);
    } else {
        json_object_set_new(c, "text", text);
    }
    json_object_set_new(c, "logprobs",
                        r->logprobs ? logprobs_json(mi, r, out->infos, out->n_infos, &offset) : json_null());
    const char *fn = n_calls && r->finish != SRV_FINISH_LENGTH ? "tool_calls" : finish_name(r->finish);
    json_object_set_new(c, "finish_reason", json_string(fn ? fn : "stop"));
    srv_buf_free(&content);
    srv_tool_calls_free(calls, n_calls);
    json_t *choices = json_array();
    json_array_append_new(choices, c);
    json_object_set_new(o, "choices", choices);
    json_object_set_new(o, "usage", usage_json(r));
    return dump(o);
}

bool srv_openai_tool_chunks(const srv_model_info *mi, const srv_request *r, const srv_output *whole, size_t sent,
                            bool first, srv_buf *out) {
    srv_buf content = {0};
    srv_tool_call *calls = NULL;
    int32_t n_calls = 0;
    bool ok = split_calls(r, whole, &content, &calls, &n_calls);
    size_t rest = content.len > sent ? content.len - sent : 0;
    for (int part = 0; ok && part < 3; part++) { /* the rest of the text, the calls, the finish */
        if ((part == 0 && !rest && !first) || (part == 1 && !n_calls)) continue;
        json_t *o = response_head(mi, r, "chat.completion.chunk"), *c = json_object(), *delta = json_object();
        json_object_set_new(c, "index", json_integer(0));
        if (part == 0) {
            if (first) json_object_set_new(delta, "role", json_string("assistant"));
            json_object_set_new(delta, "content", json_text(rest ? content.data + sent : "", rest));
        } else if (part == 1)
            json_object_set_new(delta, "tool_calls", tool_calls_json(r, calls, n_calls, true));
        json_object_set_new(c, "delta", delta);
        json_object_set_new(c, "logprobs", json_null());
        const char *fn = n_calls && r->finish != SRV_FINISH_LENGTH ? "tool_calls" : finish_name(r->finish);
        json_object_set_new(c, "finish_reason", part == 2 ? json_string(fn ? fn : "stop") : json_null());
        json_t *choices = json_array();
        json_array_append_new(choices, c);
        json_object_set_new(o, "choices", choices);
        if (r->include_usage) json_object_set_new(o, "usage", json_null());
        char *s = dump(o);
        ok = s && srv_buf_printf(out, "data: %s\n\n", s);
        free(s);
    }
    srv_buf_free(&content);
    srv_tool_calls_free(calls, n_calls);
    return ok;
}

/* ------------------------------------------------------------------------------------------------------------
 * Other endpoints
 * ---------------------------------------------------------------------------------------------------------- */

/* Refuses fields other than the `allowed` ones. */
static bool only_fields(const json_t *body, const char *const *allowed, size_t n_allowed, srv_error *err) {
    if (!json_is_object(body)) return srv_fail(err, 400, INVALID, NULL, NULL, "the request body must be a JSON object");
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)body, key, v) {
        size_t i = 0;
        while (i < n_allowed && strcmp(key, allowed[i])) i++;
        if (i == n_allowed)
            return srv_fail(err, 400, INVALID, NULL, key, "Unrecognized request argument supplied: %.64s", key);
    }
    return true;
}

char *srv_openai_tokenize(const srv_model_info *mi, const json_t *body, srv_error *err) {
    static const char *const allowed[] = {"content", "add_special", "parse_special", "with_pieces"};
    bool add_special = false, parse_special = false, with_pieces = false;
    const json_t *content = json_object_get(body, "content"), *v;
    if (!only_fields(body, allowed, 4, err)) return NULL;
    if (!json_is_string(content)) {
        srv_fail(err, 400, INVALID, NULL, "content", "'content' must be a string");
        return NULL;
    }
    if (((v = json_object_get(body, "add_special")) && !get_bool(v, "add_special", &add_special, err)) ||
        ((v = json_object_get(body, "parse_special")) && !get_bool(v, "parse_special", &parse_special, err)) ||
        ((v = json_object_get(body, "with_pieces")) && !get_bool(v, "with_pieces", &with_pieces, err)))
        return NULL;
    uint32_t flags = (add_special ? TND_TOKENIZE_ADD_SPECIAL : 0) | (parse_special ? TND_TOKENIZE_PARSE_SPECIAL : 0);
    int32_t *tokens = NULL, n = 0;
    if (!tokenize(mi, json_string_value(content), json_string_length(content), flags, &tokens, &n, err)) {
        free(tokens);
        return NULL;
    }
    json_t *arr = json_array();
    for (int32_t i = 0; i < n; i++) {
        if (!with_pieces) {
            json_array_append_new(arr, json_integer(tokens[i]));
            continue;
        }
        size_t len = 0;
        const char *piece = tnd_tokenizer_piece(mi->tok, tokens[i], TND_DETOKENIZE_SPECIAL, &len);
        json_t *e = json_object();
        json_object_set_new(e, "id", json_integer(tokens[i]));
        json_object_set_new(e, "piece", json_text(piece ? piece : "", piece ? len : 0));
        json_array_append_new(arr, e);
    }
    free(tokens);
    json_t *o = json_object();
    json_object_set_new(o, "tokens", arr);
    return dump(o);
}

char *srv_openai_detokenize(const srv_model_info *mi, const json_t *body, srv_error *err) {
    static const char *const allowed[] = {"tokens"};
    const json_t *arr = json_object_get(body, "tokens"), *v;
    if (!only_fields(body, allowed, 1, err)) return NULL;
    if (!json_is_array(arr)) {
        srv_fail(err, 400, INVALID, NULL, "tokens", "'tokens' must be an array of token ids");
        return NULL;
    }
    size_t n = json_array_size(arr), i;
    int32_t *ids = malloc(sizeof(int32_t) * (n + 1));
    if (!ids || n > (size_t)INT32_MAX / 8) {
        free(ids);
        srv_fail(err, n > (size_t)INT32_MAX / 8 ? 400 : 500, INVALID, NULL, "tokens", "too many tokens");
        return NULL;
    }
    json_array_foreach(arr, i, v) {
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) >= mi->n_vocab) {
            free(ids);
            srv_fail(err, 400, INVALID, NULL, "tokens", "'tokens[%zu]' must be a token id in [0, %d)", i, mi->n_vocab);
            return NULL;
        }
        ids[i] = (int32_t)json_integer_value(v);
    }
    int32_t len = tnd_tokenizer_decode(mi->tok, ids, (int32_t)n, 0, NULL, 0);
    char *text = len != TND_TOKENIZE_ERROR ? malloc((size_t)(len < 0 ? -len : len) + 1) : NULL;
    if (text) len = tnd_tokenizer_decode(mi->tok, ids, (int32_t)n, 0, text, len < 0 ? -len : len);
    free(ids);
    if (!text || len < 0) {
        free(text);
        srv_fail(err, 500, "server_error", NULL, NULL, "cannot decode the tokens: %s", tnd_last_error());
        return NULL;
    }
    json_t *o = json_object();
    json_object_set_new(o, "content", json_text(text, (size_t)len));
    free(text);
    return dump(o);
}

char *srv_openai_models(const srv_model_info *mi, int64_t created) {
    json_t *m = json_object();
    json_object_set_new(m, "id", json_text(mi->id, strlen(mi->id)));
    json_object_set_new(m, "object", json_string("model"));
    json_object_set_new(m, "created", json_integer(created));
    json_object_set_new(m, "owned_by", json_string("tandem"));
    json_t *data = json_array();
    json_array_append_new(data, m);
    json_t *o = json_object();
    json_object_set_new(o, "object", json_string("list"));
    json_object_set_new(o, "data", data);
    return dump(o);
}

bool srv_json_depth_ok(const json_t *v, int limit) {
    if (limit < 0) return false;
    if (json_is_object(v)) {
        const char *key;
        const json_t *x;
        json_object_foreach((json_t *)v, key, x) if (!srv_json_depth_ok(x, limit - 1)) return false;
    } else if (json_is_array(v)) {
        size_t i;
        const json_t *x;
        json_array_foreach(v, i, x) if (!srv_json_depth_ok(x, limit - 1)) return false;
    }
    return true;
}
