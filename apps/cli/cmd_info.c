/* cmd_info.c: `tandem info MODEL.gguf [--json] [--tensors] [--kernels]`: what a GGUF file holds (architecture, size, parameter
 * count, tensor types, hyper-parameters, tokenizer, special tokens, chat template, layout), as aligned text or as one
 * JSON object. Written against the public API in tandem.h only.
 *
 * JSON output: one object with these keys, always present and in this order (null where the file has no value):
 *   "file"            the path given                     "file_size"       bytes
 *   "gguf_version"    2 or 3                             "alignment"       bytes (general.alignment or 32)
 *   "data_offset"     byte where tensor data starts     "metadata_count"  number of key/value pairs
 *   "architecture"    general.architecture               "name"            general.name
 *   "parameters"      sum of the tensors' element counts "tensor_count"
 *   "tensor_types"    {"<type>": {"count": n, "bytes": n}} for each tensor type present ("f32", "q4_K", ...)
 *   "context_length"  <arch>.context_length
 *   "hparams"         {"<key without '<arch>.'>": value} for every <arch>.* key
 *   "general"         {"<key without 'general.'>": value} for the other general.* keys
 *   "tokenizer"       {"model", "pre": string or null, "vocab_size", "merges": counts (0 when absent),
 *                      "special": {"<x>": {"id": n, "text": token string or null}} for tokenizer.ggml.<x>_token_id,
 *                      "options": {"<x>": value} for the other scalar tokenizer.ggml.<x> keys,
 *                      "arrays": {"<x>": element count} for the tokenizer.ggml.<x> arrays}
 *   "chat_template"   {"present": bool, "bytes": n, "format": built-in format name or null,
 *                      "named": [names of the tokenizer.chat_template.<name> templates]}
 *   "other"           {"<full key>": value} for every remaining key
 *   "tensors"         only with --tensors: [{"name", "type", "shape": [ne0, ...], "offset": file byte, "size"}]
 * Values: integers and floats as JSON numbers (a non-finite float as null; f32 with 9 significant digits, f64 with
 * 17, so they read back exactly), bools, strings (escaped; bytes that are not UTF-8 become U+FFFD), arrays of up to
 * 256 numbers or strings as JSON arrays (64-bit integer elements beyond 2^53 are rounded); longer arrays and arrays
 * of arrays as {"array": "<element type>", "count": n}.
 */
#include "cli_util.h"
#include "commands.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { ARRAY_SHOWN_MAX = 256, TEXT_VALUE_MAX = 96 };

#if defined(__GNUC__)
#define INFO_PRINTF(fmt_index, first_arg) __attribute__((format(printf, fmt_index, first_arg)))
#else
#define INFO_PRINTF(fmt_index, first_arg)
#endif

/* ------------------------------------------------------------------------------------------------------------
 * Metadata access helpers
 * ---------------------------------------------------------------------------------------------------------- */

/* A borrowed string, possibly absent. */
typedef struct span {
    const char *ptr;
    size_t len;
} span;

static span meta_str(const tnd_model *m, const char *key) {
    span s = {NULL, 0};
    if (tnd_model_meta_string(m, key, &s.ptr, &s.len) != TND_OK) s.ptr = NULL;
    return s;
}

static uint64_t array_count(const tnd_model *m, const char *key) {
    uint64_t n = 0;
    return tnd_model_meta_array(m, key, NULL, &n) == TND_OK ? n : 0;
}

static bool starts_with(const char *s, const char *prefix) { return !strncmp(s, prefix, strlen(prefix)); }

static bool ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

static bool is_integer_type(tnd_value_type t) {
    return t <= TND_VALUE_I32 || t == TND_VALUE_U64 || t == TND_VALUE_I64;
}

/* Length of the well-formed UTF-8 sequence at s (n bytes available), or 0 when it is not one (overlong forms,
 * surrogates and code points above U+10FFFF are not well-formed). */
static size_t utf8_sequence(const unsigned char *s, size_t n) {
    unsigned c = s[0];
    size_t len = c < 0x80 ? 1 : c < 0xC2 ? 0 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : c < 0xF5 ? 4 : 0;
    if (!len || len > n) return 0;
    for (size_t k = 1; k < len; k++)
        if ((s[k] & 0xC0) != 0x80) return 0;
    if ((c == 0xE0 && s[1] < 0xA0) || (c == 0xED && s[1] > 0x9F) || (c == 0xF0 && s[1] < 0x90) ||
        (c == 0xF4 && s[1] > 0x8F))
        return 0;
    return len;
}

/* ------------------------------------------------------------------------------------------------------------
 * JSON writer
 * ---------------------------------------------------------------------------------------------------------- */

/* Writes s[0..n) as a JSON string: quotes, backslashes and control characters escaped, well-formed UTF-8 as is,
 * any other byte as \ufffd. */
static void json_string(FILE *f, const char *s, size_t n) {
    fputc('"', f);
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        size_t len = utf8_sequence((const unsigned char *)s + i, n - i);
        if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
        else if (c == '\n') fputs("\\n", f);
        else if (c == '\t') fputs("\\t", f);
        else if (c == '\r') fputs("\\r", f);
        else if (c == '\b') fputs("\\b", f);
        else if (c == '\f') fputs("\\f", f);
        else if (c < 0x20) fprintf(f, "\\u%04x", c);
        else if (len) fwrite(s + i, 1, len, f);
        else fputs("\\ufffd", f);
        i += len ? len : 1;
    }
    fputc('"', f);
}

static void json_cstr(FILE *f, const char *s) { json_string(f, s, strlen(s)); }

static void json_span(FILE *f, span s) {
    if (s.ptr) json_string(f, s.ptr, s.len);
    else fputs("null", f);
}

static void json_double(FILE *f, double x, tnd_value_type t) {
    if (!isfinite(x)) fputs("null", f);
    else if (is_integer_type(t)) fprintf(f, "%.0f", x);
    else fprintf(f, t == TND_VALUE_F64 ? "%.17g" : "%.9g", x);
}

/* Writes the value of `key` (of type t) as JSON, per the conventions in the file comment. */
static void json_value(FILE *f, const tnd_model *m, const char *key, tnd_value_type t) {
    int64_t i = 0;
    double x = 0;
    if (t == TND_VALUE_STRING) {
        json_span(f, meta_str(m, key));
    } else if (t == TND_VALUE_BOOL) {
        fputs(tnd_model_meta_int(m, key, &i) == TND_OK && i ? "true" : "false", f);
    } else if (is_integer_type(t)) {
        uint64_t u = 0;
        if (tnd_model_meta_int(m, key, &i) == TND_OK) fprintf(f, "%lld", (long long)i);
        else if (tnd_model_meta_uint(m, key, &u) == TND_OK) fprintf(f, "%llu", (unsigned long long)u);
        else fputs("null", f);
    } else if (t != TND_VALUE_ARRAY) {
        if (tnd_model_meta_float(m, key, &x) == TND_OK) json_double(f, x, t);
        else fputs("null", f);
    } else {
        tnd_value_type et = TND_VALUE_ARRAY;
        uint64_t n = 0;
        tnd_model_meta_array(m, key, &et, &n);
        if (et == TND_VALUE_ARRAY || n > ARRAY_SHOWN_MAX) {
            fputs("{\"array\": ", f);
            json_cstr(f, tnd_value_type_name(et) ? tnd_value_type_name(et) : "unknown");
            fprintf(f, ", \"count\": %llu}", (unsigned long long)n);
            return;
        }
        fputc('[', f);
        for (uint64_t k = 0; k < n; k++) {
            if (k) fputs(", ", f);
            span s = {NULL, 0};
            if (et == TND_VALUE_STRING) {
                if (tnd_model_meta_array_string(m, key, k, &s.ptr, &s.len) != TND_OK) s.ptr = NULL;
                json_span(f, s);
            } else if (tnd_model_meta_array_number(m, key, k, &x) == TND_OK) {
                if (et == TND_VALUE_BOOL) fputs(x != 0 ? "true" : "false", f);
                else json_double(f, x, et);
            } else {
                fputs("null", f);
            }
        }
        fputc(']', f);
    }
}

/* ------------------------------------------------------------------------------------------------------------
 * Text rendering: bounded string builder and aligned sections
 * ---------------------------------------------------------------------------------------------------------- */

typedef struct text {
    char buf[512];
    size_t len;
} text;

static void text_add(text *t, const char *fmt, ...) INFO_PRINTF(2, 3);

static void text_add(text *t, const char *fmt, ...) {
    if (t->len >= sizeof t->buf - 1) return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(t->buf + t->len, sizeof t->buf - t->len, fmt, ap);
    va_end(ap);
    if (n > 0) t->len = t->len + (size_t)n < sizeof t->buf ? t->len + (size_t)n : sizeof t->buf - 1;
}

/* Appends s[0..n) with control characters and bytes that are not UTF-8 escaped, at most `max` bytes of it. */
static void text_escaped(text *t, const char *s, size_t n, size_t max) {
    size_t shown = 0;
    for (size_t i = 0; i < n && shown < max;) {
        unsigned char c = (unsigned char)s[i];
        size_t len = utf8_sequence((const unsigned char *)s + i, n - i);
        if (c == '\n') text_add(t, "\\n");
        else if (c == '\t') text_add(t, "\\t");
        else if (c == '\\') text_add(t, "\\\\");
        else if (c < 0x20 || c == 0x7F || !len) text_add(t, "\\x%02x", c);
        else text_add(t, "%.*s", (int)len, s + i);
        i += len ? len : 1;
        shown = i;
    }
    if (shown < n) text_add(t, "... (%zu bytes)", n);
}

static void text_double(text *t, double x, tnd_value_type type) {
    if (is_integer_type(type)) text_add(t, "%.0f", x);
    else text_add(t, "%g", x);
}

/* The value of `key` (of type type) in a line of text: long strings and arrays shortened. */
static void text_value(text *t, const tnd_model *m, const char *key, tnd_value_type type) {
    int64_t i = 0;
    double x = 0;
    if (type == TND_VALUE_STRING) {
        span s = meta_str(m, key);
        text_escaped(t, s.ptr ? s.ptr : "", s.len, TEXT_VALUE_MAX);
    } else if (type == TND_VALUE_BOOL) {
        text_add(t, "%s", tnd_model_meta_int(m, key, &i) == TND_OK && i ? "true" : "false");
    } else if (is_integer_type(type)) {
        uint64_t u = 0;
        if (tnd_model_meta_int(m, key, &i) == TND_OK) text_add(t, "%lld", (long long)i);
        else if (tnd_model_meta_uint(m, key, &u) == TND_OK) text_add(t, "%llu", (unsigned long long)u);
    } else if (type != TND_VALUE_ARRAY) {
        if (tnd_model_meta_float(m, key, &x) == TND_OK) text_double(t, x, type);
    } else {
        tnd_value_type et = TND_VALUE_ARRAY;
        uint64_t n = 0;
        tnd_model_meta_array(m, key, &et, &n);
        text_add(t, "[%llu x %s]", (unsigned long long)n, tnd_value_type_name(et) ? tnd_value_type_name(et) : "?");
        for (uint64_t k = 0; k < n && et != TND_VALUE_ARRAY && t->len < TEXT_VALUE_MAX; k++) {
            span s = {NULL, 0};
            text_add(t, k ? ", " : " ");
            if (et == TND_VALUE_STRING && tnd_model_meta_array_string(m, key, k, &s.ptr, &s.len) == TND_OK)
                text_escaped(t, s.ptr, s.len, 32);
            else if (et != TND_VALUE_STRING && tnd_model_meta_array_number(m, key, k, &x) == TND_OK)
                text_double(t, x, et);
            if (k + 1 < n && t->len >= TEXT_VALUE_MAX) text_add(t, ", ...");
        }
    }
}

/* A titled block of "label  value" rows, printed with the labels padded to the widest. */
typedef struct row {
    char *label, *value;
} row;

typedef struct section {
    row *rows;
    size_t n, cap;
    bool failed;  /* out of memory: rows were dropped */
    bool started; /* a section was printed already (the next one starts with a blank line) */
} section;

static void section_add(section *s, const char *label, const text *value) {
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 16;
        row *rows = realloc(s->rows, cap * sizeof *rows);
        if (!rows) {
            s->failed = true;
            return;
        }
        s->rows = rows;
        s->cap = cap;
    }
    row r = {strdup(label), strdup(value->buf)};
    if (!r.label || !r.value) {
        free(r.label);
        free(r.value);
        s->failed = true;
        return;
    }
    s->rows[s->n++] = r;
}

/* Adds a row whose value is printf-formatted. */
static void section_addf(section *s, const char *label, const char *fmt, ...) INFO_PRINTF(3, 4);

static void section_addf(section *s, const char *label, const char *fmt, ...) {
    text t = {.len = 0};
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t.buf, sizeof t.buf, fmt, ap);
    va_end(ap);
    section_add(s, label, &t);
}

/* Prints the section (nothing when it has no rows) and empties it. */
static void section_flush(section *s, const char *title) {
    size_t width = 0;
    for (size_t i = 0; i < s->n; i++)
        if (strlen(s->rows[i].label) > width) width = strlen(s->rows[i].label);
    if (s->n) printf("%s%s\n", s->started ? "\n" : "", title);
    s->started |= s->n > 0;
    for (size_t i = 0; i < s->n; i++) {
        printf("  %-*s  %s\n", (int)width, s->rows[i].label, s->rows[i].value);
        free(s->rows[i].label);
        free(s->rows[i].value);
    }
    s->n = 0;
}

/* Adds a row with a metadata string, escaped; "-" when the file has none. */
static void section_add_span(section *s, const char *label, span value) {
    text t = {.len = 0};
    text_escaped(&t, value.ptr ? value.ptr : "-", value.ptr ? value.len : 1, TEXT_VALUE_MAX);
    section_add(s, label, &t);
}

static void format_bytes(text *t, uint64_t bytes) {
    static const char *const units[] = {"bytes", "KiB", "MiB", "GiB", "TiB"};
    double x = (double)bytes;
    int u = 0;
    while (x >= 1024 && u < 4) {
        x /= 1024;
        u++;
    }
    if (u == 0) text_add(t, "%llu bytes", (unsigned long long)bytes);
    else text_add(t, "%.2f %s (%llu bytes)", x, units[u], (unsigned long long)bytes);
}

static void format_count(text *t, uint64_t n) {
    static const char *const units[] = {"", "K", "M", "B", "T"};
    double x = (double)n;
    int u = 0;
    while (x >= 1000 && u < 4) {
        x /= 1000;
        u++;
    }
    if (u == 0) text_add(t, "%llu", (unsigned long long)n);
    else text_add(t, "%.2f%s (%llu)", x, units[u], (unsigned long long)n);
}

/* ------------------------------------------------------------------------------------------------------------
 * What the file holds
 * ---------------------------------------------------------------------------------------------------------- */

/* Facts gathered once, shared by both renderings. */
typedef struct summary {
    span arch, name, tok_model, tok_pre;
    char arch_prefix[80];          /* "<arch>." or "" without an architecture */
    uint64_t params, n_vocab, n_merges;
    bool has_ctx;
    int64_t ctx;
    uint64_t type_count[TND_TYPE_COUNT], type_bytes[TND_TYPE_COUNT];
    bool has_template;
    size_t template_len;
    const char *template_format;   /* built-in name, or NULL when not recognised */
} summary;

static void summarize(const tnd_model *m, summary *s) {
    memset(s, 0, sizeof *s);
    s->arch = meta_str(m, "general.architecture");
    s->name = meta_str(m, "general.name");
    s->tok_model = meta_str(m, "tokenizer.ggml.model");
    s->tok_pre = meta_str(m, "tokenizer.ggml.pre");
    if (s->arch.ptr && s->arch.len < sizeof s->arch_prefix - 1) {
        memcpy(s->arch_prefix, s->arch.ptr, s->arch.len);
        memcpy(s->arch_prefix + s->arch.len, ".", 2);
        char key[128];
        snprintf(key, sizeof key, "%scontext_length", s->arch_prefix);
        s->has_ctx = tnd_model_meta_int(m, key, &s->ctx) == TND_OK;
    }
    for (int64_t i = 0; i < tnd_model_tensor_count(m); i++) {
        tnd_tensor_info t;
        if (tnd_model_tensor_at(m, i, &t) != TND_OK) continue;
        s->params += t.n_elements;
        if ((unsigned)t.type < TND_TYPE_COUNT) {
            s->type_count[t.type]++;
            s->type_bytes[t.type] += t.size;
        }
    }
    s->n_vocab = array_count(m, "tokenizer.ggml.tokens");
    s->n_merges = array_count(m, "tokenizer.ggml.merges");
    span tmpl = meta_str(m, "tokenizer.chat_template");
    s->has_template = tmpl.ptr != NULL;
    s->template_len = tmpl.len;
    if (s->has_template && tnd_model_chat_template(m, &s->template_format) != TND_OK) s->template_format = NULL;
}

/* Where a metadata key is shown. */
typedef enum key_group {
    GROUP_SHOWN,        /* already part of the summary */
    GROUP_HPARAM,       /* <arch>.* */
    GROUP_GENERAL,      /* other general.* */
    GROUP_SPECIAL,      /* tokenizer.ggml.<x>_token_id */
    GROUP_TOK_OPTION,   /* other scalar tokenizer.ggml.* */
    GROUP_TOK_ARRAY,    /* tokenizer.ggml.* arrays */
    GROUP_TEMPLATE,     /* tokenizer.chat_template.<name> */
    GROUP_OTHER
} key_group;

static key_group group_of(const summary *s, const char *key, tnd_value_type type) {
    static const char *const shown[] = {"general.architecture", "general.name", "general.alignment",
                                        "tokenizer.ggml.model", "tokenizer.ggml.pre", "tokenizer.chat_template"};
    for (size_t i = 0; i < sizeof shown / sizeof shown[0]; i++)
        if (!strcmp(key, shown[i])) return GROUP_SHOWN;
    if (s->arch_prefix[0] && starts_with(key, s->arch_prefix)) return GROUP_HPARAM;
    if (starts_with(key, "general.")) return GROUP_GENERAL;
    if (starts_with(key, "tokenizer.chat_template.")) return GROUP_TEMPLATE;
    if (starts_with(key, "tokenizer.ggml.")) {
        if (type == TND_VALUE_ARRAY) return GROUP_TOK_ARRAY;
        return ends_with(key, "_token_id") ? GROUP_SPECIAL : GROUP_TOK_OPTION;
    }
    return GROUP_OTHER;
}

/* The part of `key` shown as its label in a group. */
static const char *label_of(const summary *s, const char *key, key_group g) {
    switch (g) {
    case GROUP_HPARAM: return key + strlen(s->arch_prefix);
    case GROUP_GENERAL: return key + strlen("general.");
    case GROUP_SPECIAL: case GROUP_TOK_OPTION: case GROUP_TOK_ARRAY: return key + strlen("tokenizer.ggml.");
    case GROUP_TEMPLATE: return key + strlen("tokenizer.chat_template.");
    default: return key;
    }
}

/* Text of token `id` when it is in the vocabulary. */
static span token_text(const tnd_model *m, int64_t id, uint64_t n_vocab) {
    span s = {NULL, 0};
    if (id >= 0 && (uint64_t)id < n_vocab &&
        tnd_model_meta_array_string(m, "tokenizer.ggml.tokens", (uint64_t)id, &s.ptr, &s.len) != TND_OK)
        s.ptr = NULL;
    return s;
}

/* ------------------------------------------------------------------------------------------------------------
 * Text output
 * ---------------------------------------------------------------------------------------------------------- */

static void print_tensor_table(const tnd_model *m) {
    int64_t n = tnd_model_tensor_count(m);
    int name_w = 4;
    for (int64_t i = 0; i < n; i++) {
        tnd_tensor_info t;
        if (tnd_model_tensor_at(m, i, &t) == TND_OK && (int)strlen(t.name) > name_w) name_w = (int)strlen(t.name);
    }
    printf("\ntensors\n  %5s  %-*s  %-7s  %-22s  %12s  %12s\n", "#", name_w, "name", "type", "shape", "offset",
           "bytes");
    for (int64_t i = 0; i < n; i++) {
        tnd_tensor_info t;
        if (tnd_model_tensor_at(m, i, &t) != TND_OK) continue;
        text shape = {.len = 0};
        for (uint32_t d = 0; d < t.n_dims; d++) text_add(&shape, d ? ", %lld" : "[%lld", (long long)t.ne[d]);
        text_add(&shape, "]");
        const char *type = tnd_type_name(t.type);
        printf("  %5lld  %-*s  %-7s  %-22s  %12llu  %12llu\n", (long long)i, name_w, t.name, type ? type : "?",
               shape.buf, (unsigned long long)t.offset, (unsigned long long)t.size);
    }
}

/* The CPU kernel of each group of weight matrices (tensors of one name in every block, and one type). */
static void print_kernel_table(const tnd_model *m) {
    enum { GROUPS_MAX = 64 };
    struct {
        char role[64];
        tnd_type type;
        int count;
    } g[GROUPS_MAX];
    int n_groups = 0, dropped = 0;
    bool tied = true;
    for (int64_t i = 0; i < tnd_model_tensor_count(m); i++) {
        tnd_tensor_info t;
        if (tnd_model_tensor_at(m, i, &t) != TND_OK) continue;
        if (!strcmp(t.name, "output.weight")) tied = false;
        if (t.n_dims < 2) continue;
        const char *role = t.name;
        if (starts_with(role, "blk.")) { /* blk.N.<role> */
            const char *dot = strchr(role + 4, '.');
            role = dot ? dot + 1 : role;
        }
        int k = 0;
        while (k < n_groups && (g[k].type != t.type || strcmp(g[k].role, role))) k++;
        if (k == n_groups) {
            if (n_groups == GROUPS_MAX) {
                dropped++;
                continue;
            }
            snprintf(g[k].role, sizeof g[k].role, "%s", role);
            g[k].type = t.type;
            g[k].count = 0;
            n_groups++;
        }
        g[k].count++;
    }
    printf("\nkernels (CPU device on this processor)\n  %-22s  %5s  %-7s  %s\n", "tensors", "count", "type", "kernel");
    for (int k = 0; k < n_groups; k++) {
        char desc[160];
        const char *type = tnd_type_name(g[k].type);
        if (!strcmp(g[k].role, "token_embd.weight") && !tied)
            snprintf(desc, sizeof desc, "row lookup (rows decoded as tokens need them)");
        else if (!tnd_cpu_kernel_describe(g[k].type, desc, sizeof desc))
            snprintf(desc, sizeof desc, "none: the CPU device cannot multiply by this type");
        printf("  %-22s  %5d  %-7s  %s%s\n", g[k].role, g[k].count, type ? type : "?", desc,
               !strcmp(g[k].role, "token_embd.weight") && tied ? " (tied: also the output head)" : "");
    }
    if (dropped) printf("  (%d more matrices in groups beyond the first %d, not listed)\n", dropped, GROUPS_MAX);
}

/* Prints the text description; false when memory ran out (rows would be missing). */
static bool print_text(const char *path, const tnd_model *m, const summary *s, bool tensors, bool kernels) {
    section sec = {0};
    text t = {.len = 0};
    format_bytes(&t, tnd_model_file_size(m));
    section_add(&sec, "size", &t);
    section_addf(&sec, "GGUF", "version %u, alignment %llu, tensor data at byte %llu, %lld metadata pairs",
                 tnd_model_gguf_version(m), (unsigned long long)tnd_model_alignment(m),
                 (unsigned long long)tnd_model_data_offset(m), (long long)tnd_model_meta_count(m));
    section_flush(&sec, path);

    section_add_span(&sec, "architecture", s->arch);
    section_add_span(&sec, "name", s->name);
    t.len = 0;
    format_count(&t, s->params);
    section_add(&sec, "parameters", &t);
    section_addf(&sec, "tensors", "%lld", (long long)tnd_model_tensor_count(m));
    if (s->has_ctx) section_addf(&sec, "context length", "%lld", (long long)s->ctx);
    else section_addf(&sec, "context length", "-");
    section_flush(&sec, "model");

    for (int ty = 0; ty < TND_TYPE_COUNT; ty++) {
        if (!s->type_count[ty]) continue;
        t.len = 0;
        text_add(&t, "%4llu tensors  ", (unsigned long long)s->type_count[ty]);
        format_bytes(&t, s->type_bytes[ty]);
        section_add(&sec, tnd_type_name((tnd_type)ty), &t);
    }
    section_flush(&sec, "tensor types");

    /* metadata groups, each in file order */
    static const struct {
        key_group group;
        const char *title;
    } blocks[] = {{GROUP_HPARAM, "hyper-parameters"}, {GROUP_GENERAL, "general"}};
    for (size_t b = 0; b < sizeof blocks / sizeof blocks[0]; b++) {
        for (int64_t i = 0; i < tnd_model_meta_count(m); i++) {
            const char *key;
            tnd_value_type type;
            if (tnd_model_meta_at(m, i, &key, &type) != TND_OK || group_of(s, key, type) != blocks[b].group) continue;
            t.len = 0;
            text_value(&t, m, key, type);
            section_add(&sec, label_of(s, key, blocks[b].group), &t);
        }
        char title[128];
        if (blocks[b].group == GROUP_HPARAM) snprintf(title, sizeof title, "%s (%s*)", blocks[b].title, s->arch_prefix);
        else snprintf(title, sizeof title, "%s", blocks[b].title);
        section_flush(&sec, title);
    }

    section_add_span(&sec, "model", s->tok_model);
    section_add_span(&sec, "pre-tokenizer", s->tok_pre);
    section_addf(&sec, "vocabulary", "%llu tokens", (unsigned long long)s->n_vocab);
    if (!s->has_template) section_addf(&sec, "chat template", "none");
    else section_addf(&sec, "chat template", "%zu bytes, format %s", s->template_len,
                      s->template_format ? s->template_format : "not recognised");
    for (int64_t i = 0; i < tnd_model_meta_count(m); i++) {
        const char *key;
        tnd_value_type type;
        if (tnd_model_meta_at(m, i, &key, &type) != TND_OK) continue;
        key_group g = group_of(s, key, type);
        if (g != GROUP_TOK_OPTION && g != GROUP_TOK_ARRAY && g != GROUP_TEMPLATE) continue;
        t.len = 0;
        if (g == GROUP_TOK_ARRAY) text_add(&t, "array of %llu", (unsigned long long)array_count(m, key));
        else if (g == GROUP_TEMPLATE) text_add(&t, "named chat template, %zu bytes", meta_str(m, key).len);
        else text_value(&t, m, key, type);
        section_add(&sec, label_of(s, key, g), &t);
    }
    section_flush(&sec, "tokenizer");

    for (int64_t i = 0; i < tnd_model_meta_count(m); i++) {
        const char *key;
        tnd_value_type type;
        int64_t id = 0;
        if (tnd_model_meta_at(m, i, &key, &type) != TND_OK || group_of(s, key, type) != GROUP_SPECIAL) continue;
        t.len = 0;
        if (tnd_model_meta_int(m, key, &id) != TND_OK) {
            text_value(&t, m, key, type);
        } else {
            span tok = token_text(m, id, s->n_vocab);
            text_add(&t, "%-10lld ", (long long)id);
            if (tok.ptr) text_escaped(&t, tok.ptr, tok.len, 48);
            else text_add(&t, "(not in the vocabulary)");
        }
        char label[128];
        snprintf(label, sizeof label, "%.*s", (int)(strlen(label_of(s, key, GROUP_SPECIAL)) - strlen("_token_id")),
                 label_of(s, key, GROUP_SPECIAL));
        section_add(&sec, label, &t);
    }
    section_flush(&sec, "special tokens");

    for (int64_t i = 0; i < tnd_model_meta_count(m); i++) {
        const char *key;
        tnd_value_type type;
        if (tnd_model_meta_at(m, i, &key, &type) != TND_OK || group_of(s, key, type) != GROUP_OTHER) continue;
        t.len = 0;
        text_value(&t, m, key, type);
        section_add(&sec, key, &t);
    }
    section_flush(&sec, "other metadata");
    free(sec.rows);
    if (tensors) print_tensor_table(m);
    if (kernels) print_kernel_table(m);
    return !sec.failed;
}

/* ------------------------------------------------------------------------------------------------------------
 * JSON output
 * ---------------------------------------------------------------------------------------------------------- */

/* Writes {"label": value, ...} for the keys of group g (labels as label_of; special tokens as {"id", "text"}). */
static void json_group(FILE *f, const tnd_model *m, const summary *s, key_group g) {
    fputc('{', f);
    int n = 0;
    for (int64_t i = 0; i < tnd_model_meta_count(m); i++) {
        const char *key;
        tnd_value_type type;
        if (tnd_model_meta_at(m, i, &key, &type) != TND_OK || group_of(s, key, type) != g) continue;
        const char *label = label_of(s, key, g);
        fputs(n++ ? ", " : "", f);
        int64_t id = 0;
        if (g == GROUP_SPECIAL) {
            json_string(f, label, strlen(label) - strlen("_token_id"));
            if (tnd_model_meta_int(m, key, &id) == TND_OK) {
                fprintf(f, ": {\"id\": %lld, \"text\": ", (long long)id);
                json_span(f, token_text(m, id, s->n_vocab));
                fputc('}', f);
            } else {
                fputs(": null", f);
            }
        } else if (g == GROUP_TOK_ARRAY) {
            json_cstr(f, label);
            fprintf(f, ": %llu", (unsigned long long)array_count(m, key));
        } else {
            json_cstr(f, label);
            fputs(": ", f);
            json_value(f, m, key, type);
        }
    }
    fputc('}', f);
}

static void print_json(const char *path, const tnd_model *m, const summary *s, bool tensors) {
    FILE *f = stdout;
    fputs("{\"file\": ", f);
    json_cstr(f, path);
    fprintf(f, ", \"file_size\": %llu, \"gguf_version\": %u, \"alignment\": %llu, \"data_offset\": %llu, "
               "\"metadata_count\": %lld, \"architecture\": ",
            (unsigned long long)tnd_model_file_size(m), tnd_model_gguf_version(m),
            (unsigned long long)tnd_model_alignment(m), (unsigned long long)tnd_model_data_offset(m),
            (long long)tnd_model_meta_count(m));
    json_span(f, s->arch);
    fputs(", \"name\": ", f);
    json_span(f, s->name);
    fprintf(f, ", \"parameters\": %llu, \"tensor_count\": %lld, \"tensor_types\": {", (unsigned long long)s->params,
            (long long)tnd_model_tensor_count(m));
    int n = 0;
    for (int ty = 0; ty < TND_TYPE_COUNT; ty++) {
        if (!s->type_count[ty]) continue;
        fputs(n++ ? ", " : "", f);
        json_cstr(f, tnd_type_name((tnd_type)ty));
        fprintf(f, ": {\"count\": %llu, \"bytes\": %llu}", (unsigned long long)s->type_count[ty],
                (unsigned long long)s->type_bytes[ty]);
    }
    fputs("}, \"context_length\": ", f);
    if (s->has_ctx) fprintf(f, "%lld", (long long)s->ctx);
    else fputs("null", f);
    fputs(", \"hparams\": ", f);
    json_group(f, m, s, GROUP_HPARAM);
    fputs(", \"general\": ", f);
    json_group(f, m, s, GROUP_GENERAL);
    fputs(", \"tokenizer\": {\"model\": ", f);
    json_span(f, s->tok_model);
    fputs(", \"pre\": ", f);
    json_span(f, s->tok_pre);
    fprintf(f, ", \"vocab_size\": %llu, \"merges\": %llu, \"special\": ", (unsigned long long)s->n_vocab,
            (unsigned long long)s->n_merges);
    json_group(f, m, s, GROUP_SPECIAL);
    fputs(", \"options\": ", f);
    json_group(f, m, s, GROUP_TOK_OPTION);
    fputs(", \"arrays\": ", f);
    json_group(f, m, s, GROUP_TOK_ARRAY);
    fprintf(f, "}, \"chat_template\": {\"present\": %s, \"bytes\": %zu, \"format\": ",
            s->has_template ? "true" : "false", s->template_len);
    if (s->template_format) json_cstr(f, s->template_format);
    else fputs("null", f);
    fputs(", \"named\": [", f);
    n = 0;
    for (int64_t i = 0; i < tnd_model_meta_count(m); i++) {
        const char *key;
        tnd_value_type type;
        if (tnd_model_meta_at(m, i, &key, &type) != TND_OK || group_of(s, key, type) != GROUP_TEMPLATE) continue;
        fputs(n++ ? ", " : "", f);
        json_cstr(f, label_of(s, key, GROUP_TEMPLATE));
    }
    fputs("]}, \"other\": ", f);
    json_group(f, m, s, GROUP_OTHER);
    if (tensors) {
        fputs(", \"tensors\": [", f);
        for (int64_t i = 0; i < tnd_model_tensor_count(m); i++) {
            tnd_tensor_info t;
            if (tnd_model_tensor_at(m, i, &t) != TND_OK) continue;
            fputs(i ? ", {\"name\": " : "{\"name\": ", f);
            json_cstr(f, t.name);
            fputs(", \"type\": ", f);
            json_cstr(f, tnd_type_name(t.type) ? tnd_type_name(t.type) : "unknown");
            fputs(", \"shape\": [", f);
            for (uint32_t d = 0; d < t.n_dims; d++) fprintf(f, d ? ", %lld" : "%lld", (long long)t.ne[d]);
            fprintf(f, "], \"offset\": %llu, \"size\": %llu}", (unsigned long long)t.offset,
                    (unsigned long long)t.size);
        }
        fputc(']', f);
    }
    fputs("}\n", f);
}

/* ------------------------------------------------------------------------------------------------------------
 * Command
 * ---------------------------------------------------------------------------------------------------------- */

static int usage(FILE *f) {
    fprintf(f, "usage: tandem info MODEL.gguf [--json] [--tensors] [--kernels]\n"
               "  describes a GGUF file: architecture, size, parameters, tensor types, hyper-parameters,\n"
               "  tokenizer, special tokens, chat template and layout\n"
               "  --json     one JSON object instead of text, with stable keys\n"
               "  --tensors  also list every tensor: name, type, shape, byte offset, size\n"
               "  --kernels  also say which CPU kernel each group of weight matrices runs on this processor\n"
               "             (text only; TANDEM_CPU_ISA=avx2 shows what a capped run uses)\n");
    return f == stdout ? 0 : 2;
}

int tnd_cmd_info(int argc, char **argv) {
    const char *path = NULL;
    bool json = false, tensors = false, kernels = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) return usage(stdout);
        if (!strcmp(argv[i], "--json")) json = true;
        else if (!strcmp(argv[i], "--tensors")) tensors = true;
        else if (!strcmp(argv[i], "--kernels"))
            kernels = true;
        else if (argv[i][0] != '-' && !path) path = argv[i];
        else {
            fprintf(stderr, "tandem: info: unexpected argument '%s'\n", argv[i]);
            return usage(stderr);
        }
    }
    if (!path) return usage(stderr);
    tnd_model *m = NULL;
    if (tnd_model_open(path, NULL, &m) != TND_OK) {
        const char *msg = tnd_last_error();
        if (strstr(msg, path)) fprintf(stderr, "tandem: info: %s\n", msg);
        else fprintf(stderr, "tandem: info: %s: %s\n", path, msg);
        return 1;
    }
    summary s;
    summarize(m, &s);
    bool complete = true;
    if (json) print_json(path, m, &s, tensors);
    else
        complete = print_text(path, m, &s, tensors, kernels);
    tnd_model_close(m);
    if (!complete || fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "tandem: info: %s\n", complete ? "cannot write the output" : "out of memory");
        return 1;
    }
    return 0;
}
