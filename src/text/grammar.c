/* grammar.c: the grammar language (GBNF, as llama.cpp's grammars are written) parsed and compiled to the element
 * array of grammar.h, with the checks that make matching safe: every rule defined, no left recursion.
 *
 *   rule    ::= name "::=" alternatives          one per line; a rule goes on over newlines inside ( ) and after |
 *   alternatives ::= sequence ("|" sequence)*
 *   item    ::= primary ("*" | "+" | "?" | "{" m "}" | "{" m ",}" | "{" m "," n "}")?
 *   primary ::= "\"" chars "\"" | "[" "^"? ranges "]" | "." | name | "(" alternatives ")"
 * Escapes in strings and classes: \n \r \t \\ \" \' \[ \] \- \^ \/ \xHH \uHHHH \UHHHHHHHH. # starts a comment. */
#include "text/grammar.h"

#include "core/alloc.h"
#include "core/error.h"

#include <stdio.h>
#include <string.h>

enum {
    MAX_REPEAT = 1000,          /* the largest m or n of {m,n} */
    MAX_ELEMS = 1 << 22,        /* elements of a compiled grammar */
    MAX_NAME = 64
};

/* ------------------------------------------------------------------------------------------------------------
 * The builder: rules as growing element arrays while the text is parsed
 * ---------------------------------------------------------------------------------------------------------- */

typedef struct build_rule {
    char name[MAX_NAME + 16];
    g_elem *e;
    int32_t n, cap;
    int32_t defined_at, used_at; /* lines; 0 = not yet */
} build_rule;

typedef struct builder {
    const char *src;
    size_t len, pos;
    int32_t line;
    size_t line_start;
    build_rule *rules;
    int32_t n_rules, cap_rules;
    g_range *ranges;
    int32_t n_ranges, cap_ranges;
    int64_t total;               /* elements in all rules */
    tnd_allocator a;
    tnd_status st;               /* the first failure */
} builder;

static bool out_of_memory(builder *b) {
    if (!b->st) b->st = tnd_fail(TND_ERR_OUT_OF_MEMORY, "grammar: out of memory");
    return false;
}

/* Grows *p (elements of `size` bytes, *cap of them) to hold `need`. */
static bool grow(builder *b, void **p, int32_t *cap, int32_t need, size_t size) {
    if (need <= *cap) return true;
    int32_t cap2 = *cap ? *cap : 8;
    while (cap2 < need) cap2 *= 2;
    void *q = tnd_alloc_array(&b->a, (size_t)cap2, size);
    if (!q) return out_of_memory(b);
    if (*p) memcpy(q, *p, (size_t)*cap * size);
    tnd_free(&b->a, *p);
    *p = q;
    *cap = cap2;
    return true;
}

static bool fail_at(builder *b, const char *what) {
    if (!b->st)
        b->st = tnd_fail(TND_ERR_INVALID_ARGUMENT, "grammar: line %d, column %d: %s", b->line,
                         (int)(b->pos - b->line_start) + 1, what);
    return false;
}

static int32_t new_rule(builder *b, const char *name, size_t len) {
    if (!grow(b, (void **)&b->rules, &b->cap_rules, b->n_rules + 1, sizeof *b->rules)) return -1;
    build_rule *r = &b->rules[b->n_rules];
    memset(r, 0, sizeof *r);
    snprintf(r->name, sizeof r->name, "%.*s", (int)len, name);
    return b->n_rules++;
}

/* An anonymous rule for a group or a repetition, named after the rule it comes from. */
static int32_t new_sub_rule(builder *b, int32_t parent) {
    char name[MAX_NAME + 16];
    snprintf(name, sizeof name, "%.*s_%d", MAX_NAME, b->rules[parent].name, b->n_rules);
    int32_t r = new_rule(b, name, strlen(name));
    if (r >= 0) b->rules[r].defined_at = b->line;
    return r;
}

static int32_t find_rule(builder *b, const char *name, size_t len) {
    for (int32_t i = 0; i < b->n_rules; i++)
        if (strlen(b->rules[i].name) == len && !memcmp(b->rules[i].name, name, len)) return i;
    return new_rule(b, name, len);
}

static bool emit(builder *b, int32_t rule, g_elem e) {
    build_rule *r = &b->rules[rule];
    if (++b->total > MAX_ELEMS) return fail_at(b, "the grammar is too large");
    if (!grow(b, (void **)&r->e, &r->cap, r->n + 1, sizeof *r->e)) return false;
    r->e[r->n++] = e;
    return true;
}

static bool emit_span(builder *b, int32_t rule, const g_elem *span, int32_t n) {
    for (int32_t i = 0; i < n; i++)
        if (!emit(b, rule, span[i])) return false;
    return true;
}

static g_elem rule_ref(int32_t r) { return (g_elem){.kind = G_RULE, .arg = (uint32_t)r}; }
static const g_elem end_elem = {.kind = G_END};

/* ------------------------------------------------------------------------------------------------------------
 * Characters
 * ---------------------------------------------------------------------------------------------------------- */

static int peek(const builder *b) { return b->pos < b->len ? (unsigned char)b->src[b->pos] : -1; }

/* Skips blanks and comments; newlines only when newline_ok. */
static void skip_space(builder *b, bool newline_ok) {
    while (b->pos < b->len) {
        char c = b->src[b->pos];
        if (c == ' ' || c == '\t') b->pos++;
        else if (c == '#') {
            while (b->pos < b->len && b->src[b->pos] != '\n') b->pos++;
        } else if ((c == '\n' || c == '\r') && newline_ok) {
            if (c == '\n') {
                b->line++;
                b->line_start = b->pos + 1;
            }
            b->pos++;
        } else break;
    }
}

static int hex_digit(int c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* One UTF-8 character of the grammar text into *cp. */
static bool utf8_char(builder *b, uint32_t *cp) {
    const unsigned char *s = (const unsigned char *)b->src + b->pos;
    size_t left = b->len - b->pos;
    int n = s[0] < 0x80 ? 1 : (s[0] >> 5) == 6 ? 2 : (s[0] >> 4) == 14 ? 3 : (s[0] >> 3) == 30 ? 4 : 0;
    if (!n || (size_t)n > left) return fail_at(b, "invalid UTF-8");
    uint32_t v = n == 1 ? s[0] : s[0] & (0x7F >> n);
    for (int i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80) return fail_at(b, "invalid UTF-8");
        v = (v << 6) | (s[i] & 0x3F);
    }
    b->pos += (size_t)n;
    *cp = v;
    return true;
}

/* A character of a string or class, escapes decoded. */
static bool literal_char(builder *b, uint32_t *cp) {
    if (peek(b) != '\\') return utf8_char(b, cp);
    b->pos++;
    int c = peek(b);
    int digits = c == 'x' ? 2 : c == 'u' ? 4 : c == 'U' ? 8 : 0;
    if (digits) {
        b->pos++;
        uint32_t v = 0;
        for (int i = 0; i < digits; i++) {
            int h = hex_digit(peek(b));
            if (h < 0) return fail_at(b, "bad hexadecimal escape");
            v = v * 16 + (uint32_t)h;
            b->pos++;
        }
        if (v > 0x10FFFF) return fail_at(b, "escape beyond U+10FFFF");
        *cp = v;
        return true;
    }
    static const char from[] = "nrt\\\"'[]-^/", to[] = "\n\r\t\\\"'[]-^/";
    const char *at = c > 0 ? strchr(from, c) : NULL;
    if (!at) return fail_at(b, "unknown escape");
    b->pos++;
    *cp = (unsigned char)to[at - from];
    return true;
}

static bool add_range(builder *b, uint32_t lo, uint32_t hi) {
    if (!grow(b, (void **)&b->ranges, &b->cap_ranges, b->n_ranges + 1, sizeof *b->ranges)) return false;
    b->ranges[b->n_ranges++] = (g_range){lo, hi};
    return true;
}

static bool emit_char(builder *b, int32_t rule, uint32_t cp) {
    g_elem e = {.kind = G_CLASS, .n_ranges = 1, .arg = (uint32_t)b->n_ranges};
    return add_range(b, cp, cp) && emit(b, rule, e);
}

/* ------------------------------------------------------------------------------------------------------------
 * Rules
 * ---------------------------------------------------------------------------------------------------------- */

static bool parse_alternatives(builder *b, int32_t rule, bool nested);

static bool is_name_char(int c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

static bool parse_class(builder *b, int32_t rule) {
    b->pos++; /* [ */
    g_elem e = {.kind = G_CLASS, .arg = (uint32_t)b->n_ranges};
    if (peek(b) == '^') {
        e.negated = 1;
        b->pos++;
    }
    while (peek(b) != ']') {
        if (peek(b) < 0 || peek(b) == '\n') return fail_at(b, "unterminated character class");
        uint32_t lo, hi;
        if (!literal_char(b, &lo)) return false;
        hi = lo;
        if (peek(b) == '-' && b->pos + 1 < b->len && b->src[b->pos + 1] != ']') {
            b->pos++;
            if (peek(b) == '\n') return fail_at(b, "unterminated character class");
            if (!literal_char(b, &hi)) return false;
            if (hi < lo) return fail_at(b, "a character range that runs backwards");
        }
        if (e.n_ranges == UINT16_MAX) return fail_at(b, "too many ranges in one class");
        if (!add_range(b, lo, hi)) return false;
        e.n_ranges++;
    }
    b->pos++; /* ] */
    return emit(b, rule, e);
}

static bool parse_count(builder *b, int32_t *out) {
    int32_t v = 0, digits = 0;
    while (peek(b) >= '0' && peek(b) <= '9') {
        v = v * 10 + (peek(b) - '0');
        if (v > MAX_REPEAT) return fail_at(b, "a repetition count above 1000");
        b->pos++;
        digits++;
    }
    if (!digits) return fail_at(b, "expected a number");
    *out = v;
    return true;
}

/* x* as a rule of its own: star ::= x star | (nothing). */
static int32_t star_rule(builder *b, int32_t parent, const g_elem *span, int32_t n) {
    int32_t s = new_sub_rule(b, parent);
    if (s < 0 || !emit_span(b, s, span, n) || !emit(b, s, rule_ref(s)) || !emit(b, s, end_elem) ||
        !emit(b, s, end_elem))
        return -1;
    return s;
}

/* Applies a repetition operator to the item the rule ends with (its elements from `from`). */
static bool parse_postfix(builder *b, int32_t rule, int32_t from) {
    int c = peek(b);
    if (c != '*' && c != '+' && c != '?' && c != '{') return true;
    b->pos++;
    int32_t lo = 0, hi = -1; /* hi -1: no bound */
    if (c == '+') lo = 1;
    else if (c == '?') hi = 1;
    else if (c == '{') {
        skip_space(b, false);
        if (!parse_count(b, &lo)) return false;
        skip_space(b, false);
        hi = lo;
        if (peek(b) == ',') {
            b->pos++;
            skip_space(b, false);
            hi = -1;
            if (peek(b) != '}' && !parse_count(b, &hi)) return false;
            skip_space(b, false);
            if (hi >= 0 && hi < lo) return fail_at(b, "a repetition {m,n} with n < m");
        }
        if (peek(b) != '}') return fail_at(b, "expected '}'");
        b->pos++;
    }
    /* the item's elements move out of the rule and come back as many times as asked */
    build_rule *r = &b->rules[rule];
    int32_t n = r->n - from;
    g_elem *span = tnd_alloc_array(&b->a, (size_t)(n ? n : 1), sizeof *span);
    if (!span) return out_of_memory(b);
    memcpy(span, r->e + from, sizeof *span * (size_t)n);
    r->n = from;
    b->total -= n;
    bool ok = true;
    for (int32_t i = 0; ok && i < lo; i++) ok = emit_span(b, rule, span, n);
    if (ok && hi < 0) { /* any more: x* */
        int32_t s = star_rule(b, rule, span, n);
        ok = s >= 0 && emit(b, rule, rule_ref(s));
    } else if (ok && hi > lo) { /* up to hi - lo more: opt_k ::= x opt_(k-1) | (nothing) */
        int32_t inner = -1;
        for (int32_t k = 0; ok && k < hi - lo; k++) {
            int32_t o = new_sub_rule(b, rule);
            ok = o >= 0 && emit_span(b, o, span, n) && (inner < 0 || emit(b, o, rule_ref(inner))) &&
                 emit(b, o, end_elem) && emit(b, o, end_elem);
            inner = o;
        }
        ok = ok && emit(b, rule, rule_ref(inner));
    }
    tnd_free(&b->a, span);
    return ok;
}

static bool parse_primary(builder *b, int32_t rule, bool nested) {
    int c = peek(b);
    if (c == '"') {
        b->pos++;
        while (peek(b) != '"') {
            if (peek(b) < 0 || peek(b) == '\n') return fail_at(b, "unterminated string");
            uint32_t cp;
            if (!literal_char(b, &cp) || !emit_char(b, rule, cp)) return false;
        }
        b->pos++;
        return true;
    }
    if (c == '[') return parse_class(b, rule);
    if (c == '.') {
        b->pos++;
        return emit(b, rule, (g_elem){.kind = G_CLASS, .negated = 1, .arg = (uint32_t)b->n_ranges});
    }
    if (c == '(') {
        b->pos++;
        int32_t g = new_sub_rule(b, rule);
        if (g < 0) return false;
        skip_space(b, true);
        if (!parse_alternatives(b, g, true)) return false;
        skip_space(b, true);
        if (peek(b) != ')') return fail_at(b, "expected ')'");
        b->pos++;
        return emit(b, rule, rule_ref(g));
    }
    if (is_name_char(c)) {
        size_t start = b->pos;
        while (is_name_char(peek(b))) b->pos++;
        if (b->pos - start > MAX_NAME) return fail_at(b, "a rule name longer than 64 characters");
        int32_t r = find_rule(b, b->src + start, b->pos - start);
        if (r < 0) return false;
        if (!b->rules[r].used_at) b->rules[r].used_at = b->line;
        return emit(b, rule, rule_ref(r));
    }
    (void)nested;
    return fail_at(b, "expected a string, a character class, a rule name or '('");
}

static bool parse_sequence(builder *b, int32_t rule, bool nested) {
    for (;;) {
        skip_space(b, nested);
        int c = peek(b);
        if (c < 0 || c == '|' || c == ')' || c == '\n' || c == '\r') return true;
        int32_t from = b->rules[rule].n;
        if (!parse_primary(b, rule, nested)) return false;
        skip_space(b, nested);
        if (!parse_postfix(b, rule, from)) return false;
    }
}

static bool parse_alternatives(builder *b, int32_t rule, bool nested) {
    if (!parse_sequence(b, rule, nested)) return false;
    while (peek(b) == '|') {
        b->pos++;
        skip_space(b, true);
        if (!emit(b, rule, end_elem) || !parse_sequence(b, rule, nested)) return false;
    }
    return emit(b, rule, end_elem);
}

static bool parse_rule(builder *b) {
    size_t start = b->pos;
    while (is_name_char(peek(b))) b->pos++;
    if (b->pos == start) return fail_at(b, "expected a rule name");
    if (b->pos - start > MAX_NAME) return fail_at(b, "a rule name longer than 64 characters");
    int32_t r = find_rule(b, b->src + start, b->pos - start);
    if (r < 0) return false;
    if (b->rules[r].defined_at) {
        char what[160];
        snprintf(what, sizeof what, "rule '%s' is defined twice (first on line %d)", b->rules[r].name,
                 b->rules[r].defined_at);
        return fail_at(b, what);
    }
    b->rules[r].defined_at = b->line;
    skip_space(b, false);
    if (b->len - b->pos < 3 || memcmp(b->src + b->pos, "::=", 3)) return fail_at(b, "expected '::='");
    b->pos += 3;
    skip_space(b, true);
    if (!parse_alternatives(b, r, false)) return false;
    skip_space(b, false);
    if (peek(b) >= 0 && peek(b) != '\n' && peek(b) != '\r') return fail_at(b, "expected the end of the line");
    return true;
}

/* ------------------------------------------------------------------------------------------------------------
 * Checks and the flat form
 * ---------------------------------------------------------------------------------------------------------- */

/* Rules that can match nothing at all, to a fixed point. */
static void find_nullable(const builder *b, bool *nullable) {
    for (bool changed = true; changed;) {
        changed = false;
        for (int32_t r = 0; r < b->n_rules; r++) {
            if (nullable[r]) continue;
            const build_rule *br = &b->rules[r];
            bool alt_ok = true;
            for (int32_t i = 0; i < br->n && !nullable[r]; i++) {
                const g_elem *e = &br->e[i];
                if (e->kind == G_END) {
                    if (alt_ok) nullable[r] = changed = true;
                    alt_ok = true;
                } else if (e->kind == G_CLASS || !nullable[e->arg]) alt_ok = false;
            }
        }
    }
}

/* Depth-first search for a rule that can come back to itself before matching a character. state: 0 unvisited,
 * 1 on the path, 2 done. */
static bool left_recursive(const builder *b, const bool *nullable, int32_t r, uint8_t *state, int32_t *cycle) {
    state[r] = 1;
    const build_rule *br = &b->rules[r];
    bool at_left = true;
    for (int32_t i = 0; i < br->n; i++) {
        const g_elem *e = &br->e[i];
        if (e->kind == G_END) {
            at_left = true;
            continue;
        }
        if (!at_left) continue;
        if (e->kind == G_CLASS) {
            at_left = false;
            continue;
        }
        int32_t x = (int32_t)e->arg;
        if (state[x] == 1 || (state[x] == 0 && left_recursive(b, nullable, x, state, cycle))) {
            if (*cycle < 0) *cycle = x;
            return true;
        }
        at_left = nullable[x];
    }
    state[r] = 2;
    return false;
}

static tnd_status check(builder *b) {
    for (int32_t r = 0; r < b->n_rules; r++)
        if (!b->rules[r].defined_at)
            return tnd_fail(TND_ERR_INVALID_ARGUMENT, "grammar: rule '%s' is used on line %d but never defined",
                            b->rules[r].name, b->rules[r].used_at);
    bool *nullable = tnd_alloc_array(&b->a, (size_t)b->n_rules, sizeof *nullable);
    uint8_t *state = tnd_alloc_array(&b->a, (size_t)b->n_rules, 1);
    tnd_status st = TND_OK;
    if (!nullable || !state) st = tnd_fail(TND_ERR_OUT_OF_MEMORY, "grammar: out of memory");
    else {
        find_nullable(b, nullable);
        for (int32_t r = 0; r < b->n_rules && !st; r++) {
            int32_t cycle = -1;
            if (!state[r] && left_recursive(b, nullable, r, state, &cycle))
                st = tnd_fail(TND_ERR_INVALID_ARGUMENT, "grammar: rule '%s' is left-recursive (it can reach itself "
                              "before any character); rewrite it with repetition", b->rules[cycle].name);
        }
    }
    tnd_free(&b->a, nullable);
    tnd_free(&b->a, state);
    return st;
}

static tnd_status flatten(builder *b, int32_t root, tnd_grammar **out) {
    tnd_grammar *g = tnd_alloc(&b->a, sizeof *g);
    int32_t n_alts = 0, n_elems = 0;
    for (int32_t r = 0; r < b->n_rules; r++) {
        n_elems += b->rules[r].n;
        for (int32_t i = 0; i < b->rules[r].n; i++) n_alts += b->rules[r].e[i].kind == G_END;
    }
    if (g) {
        g->allocator = b->a;
        g->elems = tnd_alloc_array(&b->a, (size_t)n_elems + 1, sizeof *g->elems);
        g->ranges = tnd_alloc_array(&b->a, (size_t)b->n_ranges + 1, sizeof *g->ranges);
        g->alts = tnd_alloc_array(&b->a, (size_t)n_alts + 1, sizeof *g->alts);
        g->rule_alts = tnd_alloc_array(&b->a, (size_t)b->n_rules + 1, sizeof *g->rule_alts);
    }
    if (!g || !g->elems || !g->ranges || !g->alts || !g->rule_alts) {
        tnd_grammar_free(g);
        return tnd_fail(TND_ERR_OUT_OF_MEMORY, "grammar: out of memory");
    }
    if (b->n_ranges) memcpy(g->ranges, b->ranges, sizeof *g->ranges * (size_t)b->n_ranges);
    g->n_ranges = b->n_ranges;
    for (int32_t r = 0; r < b->n_rules; r++) {
        const build_rule *br = &b->rules[r];
        int32_t first = g->n_elems;
        memcpy(g->elems + first, br->e, sizeof *br->e * (size_t)br->n);
        g->n_elems += br->n;
        int32_t alt_begin = first, k = g->rule_alts[r]; /* rule_alts[0] is 0 */
        for (int32_t i = 0; i < br->n; i++)
            if (br->e[i].kind == G_END) {
                g->alts[k++] = alt_begin;
                alt_begin = first + i + 1;
            }
        g->rule_alts[r + 1] = k;
    }
    g->n_rules = b->n_rules;
    g->root = root;
    *out = g;
    return TND_OK;
}

tnd_status tnd_grammar_parse(const char *text, size_t len, const char *root, tnd_grammar **out) {
    if (out) *out = NULL;
    if (!text || !out) return tnd_fail(TND_ERR_INVALID_ARGUMENT, "tnd_grammar_parse: NULL text or out");
    if (!root) root = "root";
    builder b = {.src = text, .len = len, .line = 1};
    skip_space(&b, true);
    while (!b.st && b.pos < b.len) {
        if (!parse_rule(&b)) break;
        skip_space(&b, true);
    }
    tnd_status st = b.st;
    int32_t root_rule = -1;
    for (int32_t r = 0; !st && r < b.n_rules; r++)
        if (!strcmp(b.rules[r].name, root)) root_rule = r;
    if (!st && root_rule < 0)
        st = tnd_fail(TND_ERR_INVALID_ARGUMENT, "grammar: no rule named '%s' (the start of the grammar)", root);
    if (!st) st = check(&b);
    if (!st) st = flatten(&b, root_rule, out);
    for (int32_t r = 0; r < b.n_rules; r++) tnd_free(&b.a, b.rules[r].e);
    tnd_free(&b.a, b.rules);
    tnd_free(&b.a, b.ranges);
    return st;
}

void tnd_grammar_free(tnd_grammar *g) {
    if (!g) return;
    tnd_allocator a = g->allocator;
    tnd_free(&a, g->elems);
    tnd_free(&a, g->ranges);
    tnd_free(&a, g->alts);
    tnd_free(&a, g->rule_alts);
    tnd_free(&a, g);
}
