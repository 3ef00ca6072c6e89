/* json_schema.c: JSON Schema compiled to a grammar (GBNF text, then tnd_grammar_parse), so that generated JSON
 * validates against the schema. Every schema gets a rule; objects list their properties in the schema's order,
 * required ones always, optional ones possibly left out; $ref becomes a rule reference (recursion works).
 * Keywords that constrain in a way this compiler cannot express are refused with their path, never ignored;
 * annotations (title, description, default, examples, ...) are ignored, as the specification has them. */
#include "text/json_schema.h"

#include "core/alloc.h"
#include "core/error.h"

#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

enum { MAX_REFS = 256, MAX_DEPTH = 64, MAX_ITEMS = 1000 }; /* MAX_ITEMS: counts of items and lengths (the grammar repeats up to 1000 times) */

/* The JSON text every schema builds on. */
static const char primitives[] =
    "j-ws ::= ( \" \" | \"\\n\" [ \\t]{0,20} )?\n"
    "j-char ::= [^\"\\\\\\x00-\\x1f] | \"\\\\\" ( [\"\\\\/bfnrt] | \"u\" [0-9a-fA-F]{4} )\n"
    "j-string ::= \"\\\"\" j-char* \"\\\"\"\n"
    "j-digits ::= \"0\" | [1-9] [0-9]{0,15}\n"
    "j-integer ::= \"-\"? j-digits\n"
    "j-number ::= j-integer ( \".\" [0-9]{1,16} )? ( [eE] [-+]? [0-9]{1,3} )?\n"
    "j-boolean ::= \"true\" | \"false\"\n"
    "j-null ::= \"null\"\n"
    "j-value ::= j-object | j-array | j-string | j-number | j-boolean | j-null\n"
    "j-member ::= j-string j-ws \":\" j-ws j-value\n"
    "j-object ::= \"{\" j-ws ( j-member ( j-ws \",\" j-ws j-member )* j-ws )? \"}\"\n"
    "j-array ::= \"[\" j-ws ( j-value ( j-ws \",\" j-ws j-value )* j-ws )? \"]\"\n"
    "j-date ::= [0-9]{4} \"-\" ( \"0\" [1-9] | \"1\" [0-2] ) \"-\" ( \"0\" [1-9] | [12] [0-9] | \"3\" [01] )\n"
    "j-time ::= ( [01] [0-9] | \"2\" [0-3] ) \":\" [0-5] [0-9] \":\" [0-5] [0-9] ( \".\" [0-9]{1,9} )? "
    "( \"Z\" | [+-] ( [01] [0-9] | \"2\" [0-3] ) \":\" [0-5] [0-9] )\n"
    "j-hex ::= [0-9a-fA-F]\n"
    "j-uuid ::= j-hex{8} \"-\" j-hex{4} \"-\" j-hex{4} \"-\" j-hex{4} \"-\" j-hex{12}\n";

/* Keywords that constrain values in ways the grammar does not express. */
static const char *const unsupported[] = {
    "pattern", "patternProperties", "propertyNames", "minProperties", "maxProperties", "dependentRequired",
    "dependentSchemas", "dependencies", "uniqueItems", "contains", "minContains", "maxContains", "prefixItems",
    "not", "if", "then", "else", "multipleOf",
    "unevaluatedProperties", "unevaluatedItems", "additionalItems"};

typedef struct text {
    char *p;
    size_t n, cap;
    bool oom;
} text;

typedef struct compiler {
    json_t *root;
    text rules;
    int32_t next_rule;
    struct {
        char *ref;
        char name[24];
    } refs[MAX_REFS];
    int32_t n_refs;
    tnd_status st;
} compiler;

static void put(text *t, const char *s, size_t n) {
    if (t->oom) return;
    if (t->n + n + 1 > t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 1024;
        while (cap < t->n + n + 1) cap *= 2;
        char *q = tnd_alloc(NULL, cap);
        if (!q) {
            t->oom = true;
            return;
        }
        if (t->p) memcpy(q, t->p, t->n);
        tnd_free(NULL, t->p);
        t->p = q;
        t->cap = cap;
    }
    memcpy(t->p + t->n, s, n);
    t->n += n;
    t->p[t->n] = 0;
}

static void puts_(text *t, const char *s) { put(t, s, strlen(s)); }

static void printf_(text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void printf_(text *t, const char *fmt, ...) {
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n > 0) put(t, buf, (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1);
}

/* A grammar string literal of the bytes: quotes, backslashes and control bytes escaped. */
static void literal(text *t, const char *s, size_t n) {
    puts_(t, "\"");
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            put(t, e, 2);
        } else if (c < 0x20) printf_(t, "\\x%02x", c);
        else put(t, (const char *)&c, 1);
    }
    puts_(t, "\"");
}

/* The literal of a JSON value as JSON text (compact, as a model is asked to write it). */
static bool json_literal(compiler *c, text *t, const json_t *v) {
    char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    if (!s) {
        c->st = tnd_fail(TND_ERR_OUT_OF_MEMORY, "json schema: out of memory");
        return false;
    }
    literal(t, s, strlen(s));
    free(s);
    return true;
}

static bool refuse(compiler *c, const char *path, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static bool refuse(compiler *c, const char *path, const char *fmt, ...) {
    char message[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    c->st = tnd_fail(TND_ERR_INVALID_ARGUMENT, "json schema: at %s: %s", *path ? path : "/", message);
    return false;
}

static bool rule_for(compiler *c, const json_t *s, const char *path, int depth, char name[24]);

/* Appends "name ::= expr\n" under a new name. */
static bool add_rule(compiler *c, const text *expr, char name[24]) {
    snprintf(name, 24, "s%d", c->next_rule++);
    printf_(&c->rules, "%s ::= ", name);
    put(&c->rules, expr->p ? expr->p : "", expr->n);
    puts_(&c->rules, "\n");
    return true;
}

/* ------------------------------------------------------------------------------------------------------------
 * Objects
 * ---------------------------------------------------------------------------------------------------------- */

/* The object's members in the schema's order: required ones always, optional ones possibly left out, extra members
 * (additionalProperties) after them. rest_j is the members from j on, each after its comma; the first member
 * present is some k whose predecessors are all optional. */
static bool object_expr(compiler *c, const json_t *s, const char *path, int depth, text *e) {
    const json_t *props = json_object_get(s, "properties"), *req = json_object_get(s, "required"),
                 *extra = json_object_get(s, "additionalProperties");
    if (props && !json_is_object(props)) return refuse(c, path, "'%s' must be an object", "properties");
    if (req && !json_is_array(req)) return refuse(c, path, "'%s' must be an array", "required");
    size_t n = props ? json_object_size(props) : 0;
    const char **keys = tnd_alloc_array(NULL, n + 1, sizeof *keys);
    char (*member)[24] = tnd_alloc_array(NULL, n + 2, sizeof *member);
    char (*rest)[24] = tnd_alloc_array(NULL, n + 2, sizeof *rest);
    bool *required = tnd_alloc_array(NULL, n + 1, sizeof *required);
    bool ok = keys && member && rest && required;
    if (!ok) c->st = tnd_fail(TND_ERR_OUT_OF_MEMORY, "json schema: out of memory");
    size_t i = 0;
    const char *key;
    json_t *sub;
    if (ok && props) json_object_foreach((json_t *)props, key, sub) {
        char sub_path[512], value[24];
        snprintf(sub_path, sizeof sub_path, "%s/properties/%s", path, key);
        keys[i] = key;
        if (!(ok = rule_for(c, sub, sub_path, depth + 1, value))) break;
        text m = {0};
        json_t *k = json_string(key);
        ok = k && json_literal(c, &m, k);
        json_decref(k);
        printf_(&m, " j-ws \":\" j-ws %s", value);
        ok = ok && !m.oom && add_rule(c, &m, member[i]);
        tnd_free(NULL, m.p);
        if (!ok) break;
        i++;
    }
    for (size_t r = 0; ok && req && r < json_array_size(req); r++) {
        const char *name = json_string_value(json_array_get(req, r));
        size_t k = 0;
        while (k < n && (!name || strcmp(keys[k], name))) k++;
        if (k == n) ok = refuse(c, path, "required property '%s' is not among the properties", name ? name : "?");
        else required[k] = true;
    }
    char extra_value[24] = "";
    if (ok && (!extra || json_is_true(extra))) snprintf(extra_value, sizeof extra_value, "j-value");
    else if (ok && json_is_object(extra)) {
        char sub_path[512];
        snprintf(sub_path, sizeof sub_path, "%s/additionalProperties", path);
        ok = rule_for(c, extra, sub_path, depth + 1, extra_value);
    } else if (ok && !json_is_false(extra))
        ok = refuse(c, path, "'%s' must be a boolean or a schema", "additionalProperties");
    if (ok) { /* rest_n: the extra members; then rest_j for j = n - 1 .. 0 */
        text r = {0};
        if (*extra_value) {
            text m = {0};
            printf_(&m, "j-string j-ws \":\" j-ws %s", extra_value);
            add_rule(c, &m, member[n]);
            tnd_free(NULL, m.p);
            printf_(&r, "( j-ws \",\" j-ws %s )*", member[n]);
        } else puts_(&r, "\"\"");
        add_rule(c, &r, rest[n]);
        for (size_t j = n; j-- > 0;) {
            r.n = 0;
            printf_(&r, "( j-ws \",\" j-ws %s )%s %s", member[j], required[j] ? "" : "?", rest[j + 1]);
            add_rule(c, &r, rest[j]);
        }
        tnd_free(NULL, r.p);
        /* the first member present: named k (all before it optional), or an extra one when none is required */
        bool any_required = false;
        puts_(e, "\"{\" j-ws ( ");
        for (size_t k = 0; k < n && !any_required; k++) {
            printf_(e, "%s%s %s", k ? " | " : "", member[k], rest[k + 1]);
            any_required = required[k];
        }
        if (!any_required && *extra_value) printf_(e, "%s%s %s", n ? " | " : "", member[n], rest[n]);
        if (!n && !*extra_value) puts_(e, "\"\"");
        printf_(e, " )%s j-ws \"}\"", any_required ? "" : "?");
    }
    tnd_free(NULL, keys);
    tnd_free(NULL, member);
    tnd_free(NULL, rest);
    tnd_free(NULL, required);
    return ok;
}

/* ------------------------------------------------------------------------------------------------------------
 * The other types
 * ---------------------------------------------------------------------------------------------------------- */

static bool count_of(compiler *c, const json_t *s, const char *key, const char *path, int64_t dflt, int64_t *out) {
    const json_t *v = json_object_get(s, key);
    *out = dflt;
    if (!v) return true;
    if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > MAX_ITEMS)
        return refuse(c, path, "'%s' must be a whole number from 0 to 1000", key);
    *out = json_integer_value(v);
    return true;
}

static bool array_expr(compiler *c, const json_t *s, const char *path, int depth, text *e) {
    const json_t *items = json_object_get(s, "items");
    char item[24] = "j-value", sub_path[512];
    snprintf(sub_path, sizeof sub_path, "%s/items", path);
    if (items && !rule_for(c, items, sub_path, depth + 1, item)) return false;
    int64_t lo, hi;
    if (!count_of(c, s, "minItems", path, 0, &lo) || !count_of(c, s, "maxItems", path, -1, &hi)) return false;
    if (hi >= 0 && hi < lo) return refuse(c, path, "'%s' is below minItems", "maxItems");
    if (hi == 0) {
        puts_(e, "\"[\" j-ws \"]\"");
        return true;
    }
    /* the first item, then the others with their commas */
    printf_(e, "\"[\" j-ws ( %s ( j-ws \",\" j-ws %s )", item, item);
    if (hi < 0) printf_(e, "{%lld,}", (long long)(lo > 1 ? lo - 1 : 0));
    else printf_(e, "{%lld,%lld}", (long long)(lo > 1 ? lo - 1 : 0), (long long)(hi - 1));
    printf_(e, " j-ws )%s \"]\"", lo > 0 ? "" : "?");
    return true;
}

static bool string_expr(compiler *c, const json_t *s, const char *path, text *e) {
    const char *format = json_string_value(json_object_get(s, "format"));
    static const struct {
        const char *format, *expr;
    } formats[] = {{"date", "j-date"}, {"time", "j-time"}, {"date-time", "j-date \"T\" j-time"}, {"uuid", "j-uuid"}};
    for (size_t i = 0; format && i < sizeof formats / sizeof *formats; i++)
        if (!strcmp(format, formats[i].format)) {
            printf_(e, "\"\\\"\" %s \"\\\"\"", formats[i].expr);
            return true;
        }
    int64_t lo, hi;
    if (!count_of(c, s, "minLength", path, 0, &lo) || !count_of(c, s, "maxLength", path, -1, &hi)) return false;
    if (hi >= 0 && hi < lo) return refuse(c, path, "'%s' is below minLength", "maxLength");
    if (!lo && hi < 0) puts_(e, "j-string");
    else if (hi < 0) printf_(e, "\"\\\"\" j-char{%lld,} \"\\\"\"", (long long)lo);
    else printf_(e, "\"\\\"\" j-char{%lld,%lld} \"\\\"\"", (long long)lo, (long long)hi);
    return true;
}

/* Same-length digit strings lo <= hi: the numbers between them, digit by digit (a common prefix, then the first
 * digit's low end with the rest from lo up, the digits between with anything after, the high end with the rest up to
 * hi). */
static void digit_range(text *e, const char *lo, const char *hi, size_t n) {
    size_t k = 0;
    while (k < n && lo[k] == hi[k]) k++;
    if (k) literal(e, lo, k);
    if (k == n) return;
    size_t rest = n - k - 1;
    bool low_floor = true, high_ceiling = true; /* lo's rest all 0, hi's rest all 9 */
    for (size_t i = k + 1; i < n; i++) {
        low_floor = low_floor && lo[i] == '0';
        high_ceiling = high_ceiling && hi[i] == '9';
    }
    char tail[32] = "";
    if (rest) snprintf(tail, sizeof tail, " [0-9]{%zu}", rest);
    puts_(e, k ? " ( " : "( ");
    if (low_floor && high_ceiling) {
        printf_(e, "[%c-%c]%s )", lo[k], hi[k], tail);
        return;
    }
    char nines[24], zeros[24];
    memset(nines, '9', rest);
    memset(zeros, '0', rest);
    printf_(e, "\"%c\" ", lo[k]);
    if (low_floor) printf_(e, "%s", rest ? tail + 1 : "\"\"");
    else digit_range(e, lo + k + 1, nines, rest);
    if (hi[k] - lo[k] >= 2) printf_(e, " | [%c-%c]%s", lo[k] + 1, hi[k] - 1, tail);
    printf_(e, " | \"%c\" ", hi[k]);
    if (high_ceiling) printf_(e, "%s", rest ? tail + 1 : "\"\"");
    else digit_range(e, zeros, hi + k + 1, rest);
    puts_(e, " )");
}

/* The integers in [lo, hi] (0 <= lo <= hi): one alternative per number of digits. */
static void natural_range(text *e, int64_t lo, int64_t hi) {
    char a[24], b[24];
    int la = snprintf(a, sizeof a, "%lld", (long long)lo), lb = snprintf(b, sizeof b, "%lld", (long long)hi);
    puts_(e, "( ");
    for (int len = la; len <= lb; len++) {
        char from[24], to[24];
        if (len == la) memcpy(from, a, (size_t)la + 1);
        else snprintf(from, sizeof from, "1%0*d", len - 1, 0);
        if (len == lb) memcpy(to, b, (size_t)lb + 1);
        else {
            memset(to, '9', (size_t)len);
            to[len] = 0;
        }
        if (len > la) puts_(e, " | ");
        digit_range(e, from, to, (size_t)len);
    }
    puts_(e, " )");
}

/* The largest magnitude a bound may have: integers of up to 16 digits, as the JSON grammar writes them. */
#define BOUND_LIMIT 9999999999999999.0

/* Integers: minimum, maximum, exclusiveMinimum and exclusiveMaximum become the digits of the range. Numbers: bounds
 * beyond "not negative" (minimum 0 or 1) are refused, never ignored. */
static bool number_expr(compiler *c, const json_t *s, const char *path, bool integer, text *e) {
    static const char *const bounds[] = {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"};
    double lo = -BOUND_LIMIT, hi = BOUND_LIMIT;
    bool bounded = false;
    for (int i = 0; i < 4; i++) {
        const json_t *v = json_object_get(s, bounds[i]);
        if (!v) continue;
        if (!json_is_number(v) || fabs(json_number_value(v)) > BOUND_LIMIT)
            return refuse(c, path, "'%s' must be a number of at most 16 digits", bounds[i]);
        double x = json_number_value(v);
        bounded = true;
        if (i == 0) lo = fmax(lo, ceil(x));
        else if (i == 1) hi = fmin(hi, floor(x));
        else if (i == 2) lo = fmax(lo, floor(x) + 1);
        else hi = fmin(hi, ceil(x) - 1);
        if (!integer && i > 0) return refuse(c, path, "'%s' is supported for integers only", bounds[i]);
        if (!integer && x != 0 && x != 1) return refuse(c, path, "'%s' of a number other than 0 or 1 is not supported",
                                                        bounds[i]);
    }
    if (!integer) { /* a number: free, or not below 0 or 1 */
        if (bounded && lo == 1) puts_(e, "[1-9] [0-9]{0,15} ( \".\" [0-9]{1,16} )?");
        else printf_(e, "%s ( \".\" [0-9]{1,16} )? ( [eE] [-+]? [0-9]{1,3} )?", bounded ? "j-digits" : "j-integer");
        return true;
    }
    if (!bounded) return puts_(e, "j-integer"), true;
    if (lo > hi) return refuse(c, path, "no integer lies between its bounds (%s)", "minimum and maximum");
    bool both = lo < 0 && hi >= 0;
    if (both) puts_(e, "( ");
    if (lo < 0) {
        puts_(e, "\"-\" ");
        natural_range(e, hi < 0 ? (int64_t)-hi : 1, (int64_t)-lo);
    }
    if (both) puts_(e, " | ");
    if (hi >= 0) natural_range(e, lo > 0 ? (int64_t)lo : 0, (int64_t)hi);
    if (both) puts_(e, " )");
    return true;
}

/* The expression of one type name with the schema's other keywords. */
static bool type_expr(compiler *c, const json_t *s, const char *type, const char *path, int depth, text *e) {
    if (!strcmp(type, "object")) return object_expr(c, s, path, depth, e);
    if (!strcmp(type, "array")) return array_expr(c, s, path, depth, e);
    if (!strcmp(type, "string")) return string_expr(c, s, path, e);
    if (!strcmp(type, "integer")) return number_expr(c, s, path, true, e);
    if (!strcmp(type, "number")) return number_expr(c, s, path, false, e);
    if (!strcmp(type, "boolean")) return puts_(e, "j-boolean"), true;
    if (!strcmp(type, "null")) return puts_(e, "j-null"), true;
    return refuse(c, path, "unknown type '%s'", type);
}

/* ------------------------------------------------------------------------------------------------------------
 * Schemas
 * ---------------------------------------------------------------------------------------------------------- */

/* The schema a local reference ("#", "#/$defs/name", any JSON pointer into the document) points at. */
static const json_t *resolve(compiler *c, const char *ref) {
    if (ref[0] != '#') return NULL;
    const json_t *at = c->root;
    const char *p = ref + 1;
    while (at && *p == '/') {
        p++;
        char token[256];
        size_t n = 0;
        for (; *p && *p != '/' && n < sizeof token - 1; p++) {
            if (*p == '~' && (p[1] == '0' || p[1] == '1')) token[n++] = *++p == '0' ? '~' : '/';
            else token[n++] = *p;
        }
        token[n] = 0;
        at = json_is_object(at) ? json_object_get(at, token) : NULL;
    }
    return *p ? NULL : at;
}

static bool schema_expr(compiler *c, const json_t *s, const char *path, int depth, text *e) {
    if (json_is_true(s)) return puts_(e, "j-value"), true;
    if (!json_is_object(s)) return refuse(c, path, "a schema must be an object or true, not %s",
                                          json_is_false(s) ? "false (it allows nothing)" : "this");
    for (size_t i = 0; i < sizeof unsupported / sizeof *unsupported; i++)
        if (json_object_get(s, unsupported[i])) return refuse(c, path, "'%s' is not supported", unsupported[i]);
    const json_t *v;
    if ((v = json_object_get(s, "$ref"))) {
        const char *ref = json_string_value(v);
        if (!ref) return refuse(c, path, "'%s' must be a string", "$ref");
        for (int32_t i = 0; i < c->n_refs; i++)
            if (!strcmp(c->refs[i].ref, ref)) return puts_(e, c->refs[i].name), true;
        const json_t *target = resolve(c, ref);
        if (!target) return refuse(c, path, "'$ref' %s does not point into this schema", ref);
        if (c->n_refs == MAX_REFS) return refuse(c, path, "more than %s different '$ref's", "256");
        /* the name is known before the target is compiled, so that it may refer to itself */
        int32_t slot = c->n_refs++;
        size_t len = strlen(ref);
        if (!(c->refs[slot].ref = tnd_alloc(NULL, len + 1))) {
            c->st = tnd_fail(TND_ERR_OUT_OF_MEMORY, "json schema: out of memory");
            return false;
        }
        memcpy(c->refs[slot].ref, ref, len + 1);
        snprintf(c->refs[slot].name, sizeof c->refs[slot].name, "r%d", slot);
        text body = {0};
        bool ok = schema_expr(c, target, ref + 1, depth + 1, &body);
        if (ok) {
            printf_(&c->rules, "%s ::= ", c->refs[slot].name);
            put(&c->rules, body.p ? body.p : "", body.n);
            puts_(&c->rules, "\n");
        }
        tnd_free(NULL, body.p);
        puts_(e, c->refs[slot].name);
        return ok;
    }
    if ((v = json_object_get(s, "const"))) return json_literal(c, e, v);
    if ((v = json_object_get(s, "enum"))) {
        if (!json_is_array(v) || !json_array_size(v)) return refuse(c, path, "'%s' must be a non-empty array", "enum");
        puts_(e, "( ");
        for (size_t i = 0; i < json_array_size(v); i++) {
            if (i) puts_(e, " | ");
            if (!json_literal(c, e, json_array_get(v, i))) return false;
        }
        puts_(e, " )");
        return true;
    }
    const char *any = json_object_get(s, "anyOf") ? "anyOf" : json_object_get(s, "oneOf") ? "oneOf" : NULL;
    if (!any && (v = json_object_get(s, "allOf"))) {
        if (!json_is_array(v) || json_array_size(v) != 1)
            return refuse(c, path, "'%s' with other than one schema is not supported", "allOf");
        any = "allOf";
    }
    if (any) {
        v = json_object_get(s, any);
        if (!json_is_array(v) || !json_array_size(v)) return refuse(c, path, "'%s' must be a non-empty array", any);
        puts_(e, "( ");
        for (size_t i = 0; i < json_array_size(v); i++) {
            char sub_path[512], name[24];
            snprintf(sub_path, sizeof sub_path, "%s/%s/%zu", path, any, i);
            if (!rule_for(c, json_array_get(v, i), sub_path, depth + 1, name)) return false;
            printf_(e, "%s%s", i ? " | " : "", name);
        }
        puts_(e, " )");
        return true;
    }
    v = json_object_get(s, "type");
    if (json_is_string(v)) return type_expr(c, s, json_string_value(v), path, depth, e);
    if (json_is_array(v) && json_array_size(v)) {
        puts_(e, "( ");
        for (size_t i = 0; i < json_array_size(v); i++) {
            const char *type = json_string_value(json_array_get(v, i));
            if (!type) return refuse(c, path, "'%s' must list type names", "type");
            text one = {0};
            char name[24];
            bool ok = type_expr(c, s, type, path, depth, &one) && add_rule(c, &one, name);
            tnd_free(NULL, one.p);
            if (!ok) return false;
            printf_(e, "%s%s", i ? " | " : "", name);
        }
        puts_(e, " )");
        return true;
    }
    if (v) return refuse(c, path, "'%s' must be a type name or a list of them", "type");
    /* no type: what the keywords imply, else any value */
    if (json_object_get(s, "properties") || json_object_get(s, "required")) return object_expr(c, s, path, depth, e);
    if (json_object_get(s, "items")) return array_expr(c, s, path, depth, e);
    puts_(e, "j-value");
    return true;
}

static bool rule_for(compiler *c, const json_t *s, const char *path, int depth, char name[24]) {
    if (depth > MAX_DEPTH) return refuse(c, path, "schemas nested deeper than %s", "64");
    text e = {0};
    bool ok = schema_expr(c, s, path, depth, &e) && !e.oom;
    if (ok) ok = add_rule(c, &e, name);
    if (e.oom && !c->st) c->st = tnd_fail(TND_ERR_OUT_OF_MEMORY, "json schema: out of memory");
    tnd_free(NULL, e.p);
    return ok;
}

tnd_status tnd_json_schema_gbnf(const char *schema, size_t len, const char *name, char **out) {
    *out = NULL;
    json_error_t jerr;
    compiler c = {0};
    c.root = json_loadb(schema, len, JSON_DECODE_ANY, &jerr);
    if (!c.root)
        return tnd_fail(TND_ERR_INVALID_ARGUMENT, "json schema: not JSON: %s (line %d, column %d)", jerr.text,
                        jerr.line, jerr.column);
    char top[24];
    tnd_status st = TND_OK;
    if (rule_for(&c, c.root, "", 0, top)) {
        printf_(&c.rules, "%s ::= %s\n", name, top);
        puts_(&c.rules, primitives);
        if (c.rules.oom) st = tnd_fail(TND_ERR_OUT_OF_MEMORY, "json schema: out of memory");
        else {
            *out = c.rules.p;
            c.rules.p = NULL;
        }
    } else st = c.st ? c.st : tnd_fail(TND_ERR_OUT_OF_MEMORY, "json schema: out of memory");
    for (int32_t i = 0; i < c.n_refs; i++) tnd_free(NULL, c.refs[i].ref);
    tnd_free(NULL, c.rules.p);
    json_decref(c.root);
    return st;
}

tnd_status tnd_grammar_from_json_schema(const char *schema, size_t len, tnd_grammar **out) {
    if (out) *out = NULL;
    if (!schema || !out) return tnd_fail(TND_ERR_INVALID_ARGUMENT, "tnd_grammar_from_json_schema: NULL schema or out");
    char *rules = NULL;
    tnd_status st = tnd_json_schema_gbnf(schema, len, "value", &rules);
    text t = {0};
    if (!st) {
        puts_(&t, "root ::= j-ws value j-ws\n");
        puts_(&t, rules);
        st = t.oom ? tnd_fail(TND_ERR_OUT_OF_MEMORY, "json schema: out of memory")
                   : tnd_grammar_parse(t.p, t.n, "root", out);
    }
    tnd_free(NULL, rules);
    tnd_free(NULL, t.p);
    return st;
}
