/* tools.c: function calling in the formats the model families were trained on:
 * - Hermes and Qwen 2.5 / 3, which also serves every template without a format of its own: the tools described at
 *   the end of the system turn, each call written as
 *     <tool_call>
 *     {"name": "get_weather", "arguments": {"city": "Paris"}}
 *     </tool_call>
 *   and results fed back as user turns holding <tool_response>...</tool_response> (the chat template's tool role);
 * - Llama 3.x: the tools described before the first user message, the reply one JSON object
 *   {"name": "get_weather", "parameters": {...}}, results in ipython turns.
 * With tool_choice "required" or a named function the reply is held to calls by grammar (the arguments to each
 * function's parameters schema); with "auto" the calls are found in the reply. */
#include "server.h"

#include "core/alloc.h"
#include "text/json_schema.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#define INVALID "invalid_request_error"

const srv_tool_format srv_tool_format_hermes = {
    "hermes", SRV_TOOLS_IN_SYSTEM, "arguments", "<tool_call>\n", "\n</tool_call>\n<tool_call>\n", "\n</tool_call>",
    "<tool_call>", false, true};
const srv_tool_format srv_tool_format_llama3 = {"llama3", SRV_TOOLS_IN_FIRST_USER, "parameters", "", "", "", NULL,
                                                false, false};
const srv_tool_format srv_tool_format_mistral = {"mistral", SRV_TOOLS_AS_MESSAGE, "arguments", "[TOOL_CALLS] [", ", ",
                                                 "]", "[TOOL_CALLS]", true, true};

/* The format of a chat template (Llama 3.x's and Mistral v3's own; Hermes for every other). */
static const srv_tool_format *format_of(const char *chat_template) {
    if (chat_template && !strcmp(chat_template, "llama3")) return &srv_tool_format_llama3;
    if (chat_template && !strcmp(chat_template, "mistral-v3")) return &srv_tool_format_mistral;
    return &srv_tool_format_hermes;
}

void srv_tools_free(srv_tools *t) {
    for (int32_t i = 0; i < t->n; i++) free(t->names[i]);
    free(t->names);
    free(t->named);
    free(t->prompt_text);
    memset(t, 0, sizeof *t);
}

/* The tools described for the prompt, in the wording the family was trained on (Qwen 2.5's template for Hermes;
 * Llama 3.1's with the tools in the user message; Mistral's JSON list, which its template wraps). */
static bool describe(srv_tools *t, const json_t *tools) {
    if (t->format == &srv_tool_format_mistral) return (t->prompt_text = json_dumps(tools, 0)) != NULL;
    bool llama = t->format == &srv_tool_format_llama3;
    srv_buf b = {0};
    bool ok = llama ? srv_buf_printf(&b, "Given the following functions, please respond with a JSON for a function "
                                         "call with its proper arguments that best answers the given prompt.\n\n"
                                         "Respond in the format {\"name\": function name, \"parameters\": dictionary "
                                         "of argument name and its value}.Do not use variables.\n\n")
                    : srv_buf_printf(&b, "# Tools\n\nYou may call one or more functions to assist with the user "
                                         "query.\n\nYou are provided with function signatures within <tools></tools> "
                                         "XML tags:\n<tools>");
    size_t i;
    const json_t *tool;
    json_array_foreach(tools, i, tool) {
        char *s = json_dumps(tool, llama ? JSON_INDENT(4) : JSON_COMPACT);
        ok = ok && s && srv_buf_printf(&b, llama ? "%s\n\n" : "\n%s", s);
        free(s);
    }
    if (!llama)
        ok = ok && srv_buf_printf(&b, "\n</tools>\n\nFor each function call, return a json object with function name "
                                      "and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": "
                                      "<function-name>, \"arguments\": <args-json-object>}\n</tool_call>");
    if (!ok) {
        srv_buf_free(&b);
        return false;
    }
    t->prompt_text = b.data;
    return true;
}

bool srv_tools_write_call(const srv_tools *t, const char *name, const char *arguments, size_t index, size_t count,
                          srv_buf *b) {
    json_t *quoted = json_string(name);
    char *q = quoted ? json_dumps(quoted, JSON_ENCODE_ANY) : NULL;
    json_decref(quoted);
    const srv_tool_format *f = t->format;
    bool ok = q && srv_buf_printf(b, "%s%s{\"name\": %s, \"%s\": %s}%s", index ? "" : b->len ? "\n" : "",
                                  index ? f->sep : f->open, q, f->args_key, arguments,
                                  index + 1 == count ? f->close : "");
    free(q);
    return ok;
}

/* A grammar string literal of s. */
static bool gbnf_literal(srv_buf *b, const char *s) {
    bool ok = srv_buf_append(b, "\"", 1);
    for (; ok && *s; s++)
        ok = *s == '\n' ? srv_buf_append(b, "\\n", 2)
             : *s == '"' || *s == '\\' ? srv_buf_printf(b, "\\%c", *s)
                                      : srv_buf_append(b, s, 1);
    return ok && srv_buf_append(b, "\"", 1);
}

/* Objects of a parameters schema that do not say whether they take more members take none: a call carries the
 * arguments its function declares (what OpenAI's strict mode asks of schemas anyway). Works on a copy. */
static void close_objects(json_t *s) {
    if (!json_is_object(s)) return;
    const char *type = json_string_value(json_object_get(s, "type"));
    if ((json_object_get(s, "properties") || (type && !strcmp(type, "object"))) &&
        !json_object_get(s, "additionalProperties"))
        json_object_set_new(s, "additionalProperties", json_false());
    static const char *const maps[] = {"properties", "$defs", "definitions"};
    static const char *const lists[] = {"anyOf", "oneOf", "allOf"};
    for (size_t i = 0; i < sizeof maps / sizeof *maps; i++) {
        const char *key;
        json_t *v;
        json_object_foreach(json_object_get(s, maps[i]), key, v) close_objects(v);
    }
    for (size_t i = 0; i < sizeof lists / sizeof *lists; i++) {
        size_t k;
        json_t *v;
        json_array_foreach(json_object_get(s, lists[i]), k, v) close_objects(v);
    }
    close_objects(json_object_get(s, "items"));
    close_objects(json_object_get(s, "additionalProperties"));
}

/* The grammar of replies that are only calls: each a <tool_call> block whose JSON names one of the allowed
 * functions with arguments that fit its parameters; one call, or several when parallel calls are allowed. */
static bool call_grammar(const srv_tools *t, const json_t *tools, tnd_grammar **out, srv_error *err) {
    json_t *any = json_array();
    size_t i;
    const json_t *tool;
    json_array_foreach(tools, i, tool) {
        const json_t *fn = json_object_get(tool, "function");
        const char *name = json_string_value(json_object_get(fn, "name"));
        if (t->named && strcmp(name, t->named)) continue;
        json_t *params = json_object_get(fn, "parameters");
        json_t *args = params ? json_deep_copy(params) : json_pack("{s:s}", "type", "object");
        close_objects(args);
        const char *key = t->format->args_key;
        json_t *call = json_pack("{s:s, s:{s:{s:s}, s:o}, s:[s,s], s:b}", "type", "object", "properties", "name",
                                 "const", name, key, args, "required", "name", key, "additionalProperties", 0);
        if (!call || json_array_append_new(any, call)) {
            json_decref(any);
            return srv_fail(err, 500, "server_error", NULL, NULL, "out of memory");
        }
    }
    json_t *schema = json_pack("{s:o}", "anyOf", any);
    char *text = schema ? json_dumps(schema, JSON_COMPACT) : NULL, *rules = NULL;
    json_decref(schema);
    if (!text) return srv_fail(err, 500, "server_error", NULL, NULL, "out of memory");
    tnd_status st = tnd_json_schema_gbnf(text, strlen(text), "call", &rules);
    free(text);
    if (st) return srv_fail(err, 400, INVALID, NULL, "tools", "a tool's parameters cannot be used: %s", tnd_last_error());
    /* root ::= open call ( sep call )* close, the repetition only for parallel calls */
    srv_buf g = {0};
    bool ok = srv_buf_printf(&g, "root ::= ") && gbnf_literal(&g, t->format->open) && srv_buf_printf(&g, " call ");
    if (ok && t->parallel)
        ok = srv_buf_printf(&g, "( ") && gbnf_literal(&g, t->format->sep) && srv_buf_printf(&g, " call )* ");
    ok = ok && gbnf_literal(&g, t->format->close) && srv_buf_printf(&g, "\n%s", rules);
    tnd_free(NULL, rules);
    st = ok ? tnd_grammar_parse(g.data, g.len, NULL, out) : TND_ERR_OUT_OF_MEMORY;
    srv_buf_free(&g);
    if (st == TND_ERR_INVALID_ARGUMENT)
        return srv_fail(err, 400, INVALID, NULL, "tools", "the tools' grammar cannot be built: %s", tnd_last_error());
    return st ? srv_fail(err, 500, "server_error", NULL, NULL, "out of memory") : true;
}

bool srv_tools_parse(const char *chat_template, const json_t *tools, const json_t *choice, const json_t *parallel,
                     srv_tools *t, tnd_grammar **grammar, srv_error *err) {
    memset(t, 0, sizeof *t);
    t->format = format_of(chat_template);
    if (!tools) {
        if (choice && !(json_is_string(choice) && !strcmp(json_string_value(choice), "none")))
            return srv_fail(err, 400, INVALID, NULL, "tool_choice", "'tool_choice' needs 'tools'");
        return true;
    }
    if (!json_is_array(tools) || !json_array_size(tools) || json_array_size(tools) > 128)
        return srv_fail(err, 400, INVALID, NULL, "tools", "'tools' must be an array of 1 to 128 tools");
    t->names = calloc(json_array_size(tools), sizeof *t->names);
    if (!t->names) return srv_fail(err, 500, "server_error", NULL, NULL, "out of memory");
    size_t i;
    const json_t *tool;
    json_array_foreach(tools, i, tool) {
        const json_t *fn = json_object_get(tool, "function"), *params = json_object_get(fn, "parameters");
        const char *type = json_string_value(json_object_get(tool, "type")),
                   *name = json_string_value(json_object_get(fn, "name"));
        char param[48];
        snprintf(param, sizeof param, "tools[%zu]", i);
        if (!type || strcmp(type, "function") || !json_is_object(fn))
            return srv_fail(err, 400, INVALID, NULL, param, "'%s' must be {\"type\": \"function\", \"function\": {...}}",
                            param);
        size_t len = name ? strlen(name) : 0, k = 0;
        while (k < len && (isalnum((unsigned char)name[k]) || name[k] == '_' || name[k] == '-')) k++;
        if (!len || len > 64 || k < len)
            return srv_fail(err, 400, INVALID, NULL, param, "'%s.function.name' must be 1 to 64 letters, digits, _ or -",
                            param);
        if (params && !json_is_object(params))
            return srv_fail(err, 400, INVALID, NULL, param, "'%s.function.parameters' must be a JSON Schema object",
                            param);
        for (int32_t j = 0; j < t->n; j++)
            if (!strcmp(t->names[j], name))
                return srv_fail(err, 400, INVALID, NULL, param, "two tools are named '%s'", name);
        if (!(t->names[t->n] = strdup(name))) return srv_fail(err, 500, "server_error", NULL, NULL, "out of memory");
        t->n++;
    }
    t->choice = SRV_TOOLS_AUTO;
    t->parallel = t->format->parallel && (!parallel || json_is_true(parallel));
    if (parallel && !json_is_boolean(parallel))
        return srv_fail(err, 400, INVALID, NULL, "parallel_tool_calls", "'parallel_tool_calls' must be a boolean");
    if (choice) {
        const char *c = json_string_value(choice);
        const char *named = json_string_value(json_object_get(json_object_get(choice, "function"), "name"));
        if (c && !strcmp(c, "none")) t->choice = SRV_TOOLS_NONE;
        else if (c && !strcmp(c, "required")) t->choice = SRV_TOOLS_REQUIRED;
        else if (c && !strcmp(c, "auto")) t->choice = SRV_TOOLS_AUTO;
        else if (named) {
            int32_t j = 0;
            while (j < t->n && strcmp(t->names[j], named)) j++;
            if (j == t->n) return srv_fail(err, 400, INVALID, NULL, "tool_choice", "no tool is named '%.64s'", named);
            if (!(t->named = strdup(named))) return srv_fail(err, 500, "server_error", NULL, NULL, "out of memory");
            t->choice = SRV_TOOLS_REQUIRED;
            t->parallel = false;
        } else
            return srv_fail(err, 400, INVALID, NULL, "tool_choice",
                            "'tool_choice' must be none, auto, required or {\"type\": \"function\", \"function\": "
                            "{\"name\": ...}}");
    }
    if (t->choice == SRV_TOOLS_NONE) return true;
    if (!describe(t, tools)) return srv_fail(err, 500, "server_error", NULL, NULL, "out of memory");
    return t->choice != SRV_TOOLS_REQUIRED || call_grammar(t, tools, grammar, err);
}

/* ------------------------------------------------------------------------------------------------------------
 * Calls in a reply
 * ---------------------------------------------------------------------------------------------------------- */

void srv_tool_calls_free(srv_tool_call *calls, int32_t n) {
    for (int32_t i = 0; i < n; i++) {
        free(calls[i].name);
        free(calls[i].arguments);
    }
    free(calls);
}

/* A call from its JSON: an object with the name of a tool and its arguments (an object; "parameters" is taken
 * too, as some models write it). */
static bool call_from_json(const srv_tools *t, const json_t *v, srv_tool_call *call) {
    const char *name = json_string_value(json_object_get(v, "name"));
    json_t *args = json_object_get(v, "arguments");
    if (!args) args = json_object_get(v, "parameters");
    bool known = false;
    for (int32_t i = 0; name && i < t->n; i++) known = known || !strcmp(name, t->names[i]);
    if (!known || !json_is_object(args)) return false;
    call->name = strdup(name);
    call->arguments = json_dumps(args, JSON_COMPACT);
    if (call->name && call->arguments) return true;
    free(call->name);
    free(call->arguments);
    return false;
}

/* The call a block's JSON text holds. */
static bool read_call(const srv_tools *t, const char *inner, size_t len, srv_tool_call *call) {
    json_t *v = json_loadb(inner, len, 0, NULL);
    bool ok = call_from_json(t, v, call);
    json_decref(v);
    return ok;
}

static bool is_space(char c) { return c == ' ' || c == '\n' || c == '\t' || c == '\r'; }

/* A format without markers (Llama 3.x): the whole reply, trimmed (and after a <|python_tag|>), is one call or text. */
static bool extract_whole(const srv_tools *t, const char *text, size_t len, srv_buf *content, srv_tool_call **calls,
                          int32_t *n_calls) {
    static const char tag[] = "<|python_tag|>";
    size_t a = 0, b = len;
    while (a < b && is_space(text[a])) a++;
    while (b > a && is_space(text[b - 1])) b--;
    size_t inner = b - a >= sizeof tag - 1 && !memcmp(text + a, tag, sizeof tag - 1) ? a + sizeof tag - 1 : a;
    srv_tool_call call = {0};
    if (read_call(t, text + inner, b - inner, &call)) {
        if (!(*calls = malloc(sizeof **calls))) {
            free(call.name);
            free(call.arguments);
            return false;
        }
        (*calls)[0] = call;
        *n_calls = 1;
        return true;
    }
    return srv_buf_append(content, text + a, b - a);
}

void srv_tools_streamable(const srv_tools *t, const char *text, size_t len, size_t *from, size_t *to) {
    static const char python_tag[] = "<|python_tag|>";
    const char *call_open = t->format->marker;
    size_t a = 0, b = len;
    while (a < b && is_space(text[a])) a++;
    *from = *to = a;
    if (t->choice == SRV_TOOLS_REQUIRED) return; /* calls only */
    if (!call_open) {
        /* the whole reply is one call if it is a JSON object: only text that cannot start one is content */
        size_t k = 0, n = b - a;
        while (k < n && k < sizeof python_tag - 1 && text[a + k] == python_tag[k]) k++;
        if (n == 0 || text[a] == '{' || k == n || k == sizeof python_tag - 1) return;
    } else {
        /* up to the first call, less an end that may still become one */
        const char *open = strstr(text + a, call_open);
        if (open) b = (size_t)(open - text);
        else
            for (size_t k = strlen(call_open) - 1; k > 0; k--)
                if (b - a >= k && !memcmp(text + b - k, call_open, k)) {
                    b -= k;
                    break;
                }
    }
    while (b > a && is_space(text[b - 1])) b--; /* whitespace waits for what follows it */
    *to = b;
}

/* Mistral: the calls are one JSON array after the marker, each element a call; the text around it is content. */
static bool extract_list(const srv_tools *t, const char *text, size_t len, srv_buf *content, srv_tool_call **calls,
                         int32_t *n_calls) {
    const char *marker = strstr(text, t->format->marker);
    size_t before = marker ? (size_t)(marker - text) : len, after = len;
    json_t *list = NULL;
    if (marker) {
        const char *p = marker + strlen(t->format->marker);
        json_error_t e;
        list = json_loadb(p, len - (size_t)(p - text), JSON_DISABLE_EOF_CHECK, &e);
        if (list) after = (size_t)(p - text) + (size_t)e.position; /* what the array took */
    }
    size_t n = json_array_size(list);
    bool all = n > 0 && (*calls = calloc(n, sizeof **calls)) != NULL;
    for (size_t i = 0; all && i < n; i++) {
        all = call_from_json(t, json_array_get(list, i), &(*calls)[i]);
        if (all) *n_calls = (int32_t)i + 1;
    }
    json_decref(list);
    if (!all) { /* not a list of calls: all of it is text */
        srv_tool_calls_free(*calls, *n_calls);
        *calls = NULL;
        *n_calls = 0;
        before = after = len;
    }
    size_t a = 0, b = 0;
    bool ok = srv_buf_append(content, text, before) && srv_buf_append(content, text + after, len - after);
    while (ok && a < content->len && is_space(content->data[a])) a++;
    for (b = content->len; ok && b > a && is_space(content->data[b - 1]); b--) {}
    if (ok && content->data) {
        memmove(content->data, content->data + a, b - a);
        content->len = b - a;
        content->data[content->len] = 0;
    }
    return ok;
}

bool srv_tools_extract(const srv_tools *t, const char *text, size_t len, srv_buf *content, srv_tool_call **calls,
                       int32_t *n_calls) {
    *calls = NULL;
    *n_calls = 0;
    if (!t->format->marker) return extract_whole(t, text, len, content, calls, n_calls);
    if (t->format->list) return extract_list(t, text, len, content, calls, n_calls);
    static const char call_open[] = "<tool_call>", call_close[] = "</tool_call>";
    size_t cap = 0, at = 0;
    for (;;) {
        const char *open = len > at ? strstr(text + at, call_open) : NULL;
        const char *close = open ? strstr(open, call_close) : NULL;
        size_t end = open ? (size_t)(open - text) : len;
        if (!srv_buf_append(content, text + at, end - at)) return false;
        if (!open || !close) { /* no more calls: an unfinished block stays in the text */
            if (open && !srv_buf_append(content, open, len - end)) return false;
            break;
        }
        const char *inner = open + strlen(call_open);
        srv_tool_call call = {0};
        if ((size_t)*n_calls == cap) {
            cap = cap ? cap * 2 : 4;
            srv_tool_call *grown = realloc(*calls, cap * sizeof *grown);
            if (!grown) return false;
            *calls = grown;
        }
        if (read_call(t, inner, (size_t)(close - inner), &call)) (*calls)[(*n_calls)++] = call;
        else if (!srv_buf_append(content, open, (size_t)(close - open) + strlen(call_close))) return false;
        at = (size_t)(close - text) + strlen(call_close);
    }
    /* the text around calls is what the model said besides them */
    size_t a = 0, b = content->len;
    while (a < b && is_space(content->data[a])) a++;
    while (b > a && is_space(content->data[b - 1])) b--;
    if (content->data) {
        memmove(content->data, content->data + a, b - a);
        content->len = b - a;
        content->data[content->len] = 0;
    }
    return true;
}
