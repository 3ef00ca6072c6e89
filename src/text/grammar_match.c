/* grammar_match.c: the matcher's state (the parse stacks the text so far allows) and how one byte advances it,
 * UTF-8 decoded on the way; tnd_grammar_check on top. */
#include "text/grammar.h"

#include "core/alloc.h"
#include "core/error.h"

#include <string.h>

enum { G_MAX_DEPTH = 256 }; /* a stack deeper than this is dropped: nesting no real output reaches */

/* ------------------------------------------------------------------------------------------------------------
 * Stacks
 * ---------------------------------------------------------------------------------------------------------- */

static bool reserve(g_state *s, int32_t stacks, int32_t data) {
    if (stacks + 1 > s->stack_cap) {
        int32_t cap = s->stack_cap ? s->stack_cap * 2 : 16;
        while (cap < stacks + 1) cap *= 2;
        int32_t *start = tnd_alloc_array(s->alloc, (size_t)cap, sizeof *start);
        if (!start) return false;
        if (s->start) memcpy(start, s->start, sizeof *start * (size_t)(s->n_stacks + 1));
        tnd_free(s->alloc, s->start);
        s->start = start;
        s->stack_cap = cap;
    }
    if (data > s->data_cap) {
        int32_t cap = s->data_cap ? s->data_cap * 2 : 64;
        while (cap < data) cap *= 2;
        uint32_t *d = tnd_alloc_array(s->alloc, (size_t)cap, sizeof *d);
        if (!d) return false;
        if (s->n_stacks && s->start[s->n_stacks]) memcpy(d, s->data, sizeof *d * (size_t)s->start[s->n_stacks]);
        tnd_free(s->alloc, s->data);
        s->data = d;
        s->data_cap = cap;
    }
    return true;
}

static void clear(g_state *s) {
    s->n_stacks = 0;
    if (s->start) s->start[0] = 0;
    s->n_partial = s->need = 0;
    s->skip_space = false;
}

static int32_t stack_len(const g_state *s, int32_t i) { return s->start[i + 1] - s->start[i]; }

/* Appends a stack unless the state has it already (states stay small, so a scan is enough). */
static bool add_stack(g_state *s, const uint32_t *pos, int32_t n) {
    for (int32_t i = 0; i < s->n_stacks; i++)
        if (stack_len(s, i) == n && (!n || !memcmp(s->data + s->start[i], pos, sizeof *pos * (size_t)n))) return true;
    int32_t used = s->n_stacks ? s->start[s->n_stacks] : 0;
    if (!reserve(s, s->n_stacks + 1, used + n)) return false;
    if (!s->n_stacks) s->start[0] = 0;
    if (n) memcpy(s->data + used, pos, sizeof *pos * (size_t)n);
    s->start[++s->n_stacks] = used + n;
    return true;
}

/* Expands the stacks of `work` (taken from its end) until each has a character class on top or is empty, into
 * out: a rule on top becomes each of its alternatives, the end of an alternative returns to the rule's caller.
 * A rule whose reference ends its alternative returns straight to the caller's caller (so that right recursion,
 * which repetition compiles to, does not deepen the stack). Returns false when out of memory. */
static bool expand(const tnd_grammar *g, g_state *work, g_state *out) {
    uint32_t cur[G_MAX_DEPTH + 1];
    while (work->n_stacks > 0) {
        int32_t i = work->n_stacks - 1, n = stack_len(work, i);
        memcpy(cur, work->data + work->start[i], sizeof *cur * (size_t)n);
        work->n_stacks--;
        for (;;) {
            if (n == 0) {
                if (!add_stack(out, cur, 0)) return false;
                break;
            }
            const g_elem *e = &g->elems[cur[n - 1]];
            if (e->kind == G_CLASS) {
                if (!add_stack(out, cur, n)) return false;
                break;
            }
            if (e->kind == G_END) {
                n--;
                continue;
            }
            /* a rule: return past it, or straight up when it ends the alternative */
            uint32_t ret = cur[n - 1] + 1;
            if (g->elems[ret].kind == G_END) n--;
            else cur[n - 1] = ret;
            if (n >= G_MAX_DEPTH) break;
            int32_t first = g->rule_alts[e->arg], last = g->rule_alts[e->arg + 1];
            for (int32_t a = last - 1; a >= first; a--) { /* the first alternative is expanded first */
                cur[n] = (uint32_t)g->alts[a];
                int32_t used = work->n_stacks ? work->start[work->n_stacks] : 0;
                if (!reserve(work, work->n_stacks + 1, used + n + 1)) return false;
                if (!work->n_stacks) work->start[0] = 0;
                memcpy(work->data + used, cur, sizeof *cur * (size_t)(n + 1));
                work->start[++work->n_stacks] = used + n + 1;
            }
            break;
        }
    }
    return true;
}

bool g_state_start(const tnd_grammar *g, g_state *s) {
    g_state work = {.alloc = s->alloc};
    clear(s);
    uint32_t root[1];
    bool ok = true;
    /* the start: each alternative of the root rule, expanded */
    for (int32_t a = g->rule_alts[g->root + 1] - 1; ok && a >= g->rule_alts[g->root]; a--) {
        root[0] = (uint32_t)g->alts[a];
        ok = add_stack(&work, root, 1);
    }
    ok = ok && expand(g, &work, s);
    g_state_free(&work);
    return ok;
}

void g_state_free(g_state *s) {
    const tnd_allocator *alloc = s->alloc;
    tnd_free(alloc, s->data);
    tnd_free(alloc, s->start);
    memset(s, 0, sizeof *s);
    s->alloc = alloc;
}

bool g_state_copy(g_state *dst, const g_state *src) {
    clear(dst);
    int32_t used = src->n_stacks ? src->start[src->n_stacks] : 0;
    if (!reserve(dst, src->n_stacks, used)) return false;
    if (src->n_stacks) {
        memcpy(dst->start, src->start, sizeof *dst->start * (size_t)(src->n_stacks + 1));
        if (used) memcpy(dst->data, src->data, sizeof *dst->data * (size_t)used);
    }
    dst->n_stacks = src->n_stacks;
    memcpy(dst->partial, src->partial, sizeof dst->partial);
    dst->n_partial = src->n_partial;
    dst->need = src->need;
    dst->skip_space = src->skip_space;
    return true;
}

/* ------------------------------------------------------------------------------------------------------------
 * Characters
 * ---------------------------------------------------------------------------------------------------------- */

static bool class_has(const tnd_grammar *g, const g_elem *e, uint32_t cp) {
    const g_range *r = g->ranges + e->arg;
    bool in = false;
    for (int32_t i = 0; i < e->n_ranges && !in; i++) in = cp >= r[i].lo && cp <= r[i].hi;
    return in != (e->negated != 0);
}

/* Whether the class has some code point in [lo, hi] (for a character whose first bytes are known). */
static bool class_meets(const tnd_grammar *g, const g_elem *e, uint32_t lo, uint32_t hi) {
    const g_range *r = g->ranges + e->arg;
    for (int32_t i = 0; i < e->n_ranges; i++) {
        bool overlaps = r[i].lo <= hi && r[i].hi >= lo;
        if (!e->negated && overlaps) return true;
        if (e->negated && r[i].lo <= lo && r[i].hi >= hi) return false; /* one range covers it all */
    }
    return e->negated != 0;
}

/* The stacks whose class takes cp, moved past it and expanded, into dst. */
static bool advance(const tnd_grammar *g, const g_state *src, uint32_t cp, g_state *dst, g_state *work,
                    bool *oom) {
    clear(work);
    for (int32_t i = 0; i < src->n_stacks; i++) {
        int32_t n = stack_len(src, i);
        if (!n) continue;
        const uint32_t *st = src->data + src->start[i];
        if (!class_has(g, &g->elems[st[n - 1]], cp)) continue;
        int32_t used = work->n_stacks ? work->start[work->n_stacks] : 0;
        if (!reserve(work, work->n_stacks + 1, used + n)) return !(*oom = true);
        if (!work->n_stacks) work->start[0] = 0;
        memcpy(work->data + used, st, sizeof *st * (size_t)n);
        work->data[used + n - 1]++;
        work->start[++work->n_stacks] = used + n;
    }
    if (!expand(g, work, dst)) return !(*oom = true);
    return dst->n_stacks > 0;
}

/* The code points a character that starts with these bytes can be. */
static void utf8_span(const uint8_t *bytes, int n, int need, uint32_t *lo, uint32_t *hi) {
    uint32_t a = need == 1 ? bytes[0] : bytes[0] & (0x7Fu >> need), b = a;
    for (int i = 1; i < need; i++) {
        a = (a << 6) | (i < n ? bytes[i] & 0x3Fu : 0x00u);
        b = (b << 6) | (i < n ? bytes[i] & 0x3Fu : 0x3Fu);
    }
    *lo = a;
    *hi = b;
}

bool g_state_byte(const tnd_grammar *g, const g_state *src, uint8_t byte, g_state *dst, g_state *work, bool *oom) {
    *oom = false;
    clear(dst);
    if (src->skip_space && byte == ' ') {
        if (!g_state_copy(dst, src)) return !(*oom = true);
        dst->skip_space = false;
        return true;
    }
    uint8_t bytes[4];
    int n = src->n_partial, need = src->need;
    memcpy(bytes, src->partial, (size_t)n);
    if (n) {
        if ((byte & 0xC0) != 0x80) return false;
    } else if (byte < 0x80) need = 1;
    else if (byte >= 0xC2 && byte <= 0xDF) need = 2;
    else if (byte >= 0xE0 && byte <= 0xEF) need = 3;
    else if (byte >= 0xF0 && byte <= 0xF4) need = 4;
    else return false;
    bytes[n++] = byte;
    uint32_t lo, hi;
    utf8_span(bytes, n, need, &lo, &hi);
    if (n == need) {
        if (lo > 0x10FFFF || (lo >= 0xD800 && lo <= 0xDFFF) || (need == 3 && lo < 0x800) || (need == 4 && lo < 0x10000))
            return false;
        return advance(g, src, lo, dst, work, oom);
    }
    /* a character begun: some stack must take one of the code points it can still become (not an overlong form,
     * not beyond U+10FFFF) */
    static const uint32_t least[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (lo < least[need]) lo = least[need];
    if (hi > 0x10FFFF) hi = 0x10FFFF;
    if (lo > hi) return false;
    bool possible = false;
    for (int32_t i = 0; i < src->n_stacks && !possible; i++) {
        int32_t len = stack_len(src, i);
        possible = len && class_meets(g, &g->elems[src->data[src->start[i] + len - 1]], lo, hi);
    }
    if (!possible) return false;
    if (!g_state_copy(dst, src)) return !(*oom = true);
    memcpy(dst->partial, bytes, (size_t)n);
    dst->n_partial = (int8_t)n;
    dst->need = (int8_t)need;
    dst->skip_space = false;
    return true;
}

bool g_state_can_end(const g_state *s) {
    if (s->n_partial) return false;
    for (int32_t i = 0; i < s->n_stacks; i++)
        if (!stack_len(s, i)) return true;
    return false;
}

bool g_state_can_go_on(const g_state *s) {
    for (int32_t i = 0; i < s->n_stacks; i++)
        if (stack_len(s, i)) return true;
    return false;
}

tnd_grammar_match tnd_grammar_check(const tnd_grammar *g, const char *text, size_t len) {
    if (!g || (!text && len)) return TND_GRAMMAR_REJECTED;
    g_state a = {0}, b = {0}, work = {0};
    bool ok = g_state_start(g, &a), oom = false;
    for (size_t i = 0; ok && i < len; i++) {
        ok = g_state_byte(g, &a, (uint8_t)text[i], &b, &work, &oom);
        g_state t = a;
        a = b;
        b = t;
    }
    tnd_grammar_match m = !ok ? TND_GRAMMAR_REJECTED : g_state_can_end(&a) ? TND_GRAMMAR_COMPLETE : TND_GRAMMAR_PREFIX;
    g_state_free(&a);
    g_state_free(&b);
    g_state_free(&work);
    return m;
}
