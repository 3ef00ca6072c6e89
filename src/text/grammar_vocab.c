/* grammar_vocab.c: which tokens a grammar allows next. Every token's piece goes into a trie once per vocabulary;
 * the mask walks the trie with the grammar's state, so a subtree whose prefix the grammar rejects is never
 * entered: where the grammar allows a few characters (a quote, a colon, a digit) the walk is short. One token is
 * checked by walking its piece.
 *
 * The states a walk meets are few (inside a JSON string, a plain character leads back to the same state), so the
 * matcher keeps the states it has seen and, for each, the state every byte leads to: after the first steps a walk
 * over the whole trie is a table lookup per node. The table lives as long as the matcher (the grammar does not
 * change) and starts over when it fills. */
#include "text/grammar.h"

#include "core/alloc.h"
#include "core/error.h"

#include <string.h>

struct g_vocab {
    tnd_allocator allocator;
    int32_t refs;
    int32_t n_vocab;
    const char **piece;          /* [n_vocab] borrowed from the tokenizer */
    int32_t *piece_len;          /* [n_vocab]; 0 for tokens that show no text (they are never allowed) */
    /* the trie: node 0 is the root; children as linked lists, the root's also by byte */
    int32_t *first_child, *next_sibling, *token_head; /* [n_nodes] */
    uint8_t *byte;               /* [n_nodes] the edge into the node */
    int32_t *token_next;         /* [n_vocab] tokens with the same piece */
    int32_t root_child[256];
    int32_t n_nodes, max_len;
    int32_t *eog, n_eog;         /* the end-of-generation tokens */
};

/* The transition table: entries of `next` are a state's index or one of these. */
enum { CACHE_STATES = 512, TR_UNKNOWN = -1, TR_REJECTED = -2, TR_FULL = -3, TR_OOM = -4 };

struct g_matcher {
    tnd_allocator allocator;
    const tnd_grammar *g;
    const g_vocab *v;
    bool skip_first_space;
    g_state state, a, b, work;
    g_state *levels;             /* [v->max_len] the uncached trie walk's state at each depth */
    int32_t n_levels;
    g_state *cached;             /* [CACHE_STATES] the states seen */
    uint64_t *cached_hash;       /* [CACHE_STATES] */
    int16_t (*next)[256];        /* [CACHE_STATES][256]: where each byte leads from each state */
    int32_t n_cached;
};

/* ------------------------------------------------------------------------------------------------------------
 * The vocabulary
 * ---------------------------------------------------------------------------------------------------------- */

g_vocab *g_vocab_retain(g_vocab *v) {
    v->refs++;
    return v;
}

void g_vocab_free(g_vocab *v) {
    if (!v || --v->refs > 0) return;
    tnd_allocator a = v->allocator;
    tnd_free(&a, v->piece);
    tnd_free(&a, v->piece_len);
    tnd_free(&a, v->first_child);
    tnd_free(&a, v->next_sibling);
    tnd_free(&a, v->token_head);
    tnd_free(&a, v->byte);
    tnd_free(&a, v->token_next);
    tnd_free(&a, v->eog);
    tnd_free(&a, v);
}

static int32_t child(const g_vocab *v, int32_t node, uint8_t b) {
    if (node == 0) return v->root_child[b];
    for (int32_t c = v->first_child[node]; c >= 0; c = v->next_sibling[c])
        if (v->byte[c] == b) return c;
    return -1;
}

tnd_status g_vocab_init(const tnd_tokenizer *tok, const tnd_allocator *allocator, g_vocab **out) {
    *out = NULL;
    g_vocab *v = tnd_alloc(allocator, sizeof *v);
    if (!v) return tnd_fail(TND_ERR_OUT_OF_MEMORY, "grammar: out of memory for the vocabulary");
    v->allocator = *allocator;
    v->refs = 1;
    int32_t n = v->n_vocab = tnd_tokenizer_n_vocab(tok);
    int64_t total = 1;
    v->piece = tnd_alloc_array(allocator, (size_t)n, sizeof *v->piece);
    v->piece_len = tnd_alloc_array(allocator, (size_t)n, sizeof *v->piece_len);
    v->token_next = tnd_alloc_array(allocator, (size_t)n, sizeof *v->token_next);
    v->eog = tnd_alloc_array(allocator, (size_t)n, sizeof *v->eog);
    bool ok = v->piece && v->piece_len && v->token_next && v->eog;
    for (int32_t t = 0; ok && t < n; t++) {
        size_t len = 0;
        v->piece[t] = tnd_tokenizer_piece(tok, t, 0, &len);
        v->piece_len[t] = v->piece[t] ? (int32_t)len : 0;
        total += v->piece_len[t];
        if (tnd_tokenizer_is_eog(tok, t)) v->eog[v->n_eog++] = t;
        if (v->piece_len[t] > v->max_len) v->max_len = v->piece_len[t];
    }
    /* at most one node per byte of every piece */
    if (ok && total > INT32_MAX / 2) ok = false;
    if (ok) {
        v->first_child = tnd_alloc_array(allocator, (size_t)total, sizeof *v->first_child);
        v->next_sibling = tnd_alloc_array(allocator, (size_t)total, sizeof *v->next_sibling);
        v->token_head = tnd_alloc_array(allocator, (size_t)total, sizeof *v->token_head);
        v->byte = tnd_alloc_array(allocator, (size_t)total, 1);
        ok = v->first_child && v->next_sibling && v->token_head && v->byte;
    }
    if (!ok) {
        g_vocab_free(v);
        return tnd_fail(TND_ERR_OUT_OF_MEMORY, "grammar: out of memory for the vocabulary's trie");
    }
    memset(v->root_child, 0xff, sizeof v->root_child);
    v->first_child[0] = v->next_sibling[0] = v->token_head[0] = -1;
    v->n_nodes = 1;
    for (int32_t t = 0; t < n; t++) {
        int32_t node = 0;
        for (int32_t i = 0; i < v->piece_len[t]; i++) {
            uint8_t b = (uint8_t)v->piece[t][i];
            int32_t c = child(v, node, b);
            if (c < 0) {
                c = v->n_nodes++;
                v->byte[c] = b;
                v->first_child[c] = v->token_head[c] = -1;
                if (node == 0) {
                    v->root_child[b] = c;
                    v->next_sibling[c] = -1;
                } else {
                    v->next_sibling[c] = v->first_child[node];
                    v->first_child[node] = c;
                }
            }
            node = c;
        }
        v->token_next[t] = -1;
        if (node) {
            v->token_next[t] = v->token_head[node];
            v->token_head[node] = t;
        }
    }
    *out = v;
    return TND_OK;
}

/* ------------------------------------------------------------------------------------------------------------
 * The matcher
 * ---------------------------------------------------------------------------------------------------------- */

void g_matcher_free(g_matcher *m) {
    if (!m) return;
    g_state_free(&m->state);
    g_state_free(&m->a);
    g_state_free(&m->b);
    g_state_free(&m->work);
    for (int32_t i = 0; m->levels && i < m->n_levels; i++) g_state_free(&m->levels[i]);
    for (int32_t i = 0; m->cached && i < CACHE_STATES; i++) g_state_free(&m->cached[i]);
    tnd_allocator a = m->allocator;
    tnd_free(&a, m->levels);
    tnd_free(&a, m->cached);
    tnd_free(&a, m->cached_hash);
    tnd_free(&a, m->next);
    tnd_free(&a, m);
}

tnd_status g_matcher_clone(const g_matcher *src, g_matcher **out) {
    tnd_status st = g_matcher_init(src->g, src->v, src->skip_first_space, &src->allocator, out);
    if (!st && !g_state_copy(&(*out)->state, &src->state)) {
        g_matcher_free(*out);
        *out = NULL;
        st = tnd_fail(TND_ERR_OUT_OF_MEMORY, "grammar: out of memory");
    }
    return st;
}

bool g_matcher_reset(g_matcher *m) {
    if (!g_state_start(m->g, &m->state)) return false;
    m->state.skip_space = m->skip_first_space;
    return true;
}

tnd_status g_matcher_init(const tnd_grammar *g, const g_vocab *v, bool skip_first_space, const tnd_allocator *a,
                          g_matcher **out) {
    *out = NULL;
    g_matcher *m = tnd_alloc(a, sizeof *m);
    if (!m) return tnd_fail(TND_ERR_OUT_OF_MEMORY, "grammar: out of memory");
    m->allocator = *a;
    m->g = g;
    m->v = v;
    m->skip_first_space = skip_first_space;
    m->n_levels = v->max_len + 1;
    m->levels = tnd_alloc_array(a, (size_t)m->n_levels, sizeof *m->levels);
    m->cached = tnd_alloc_array(a, CACHE_STATES, sizeof *m->cached);
    m->cached_hash = tnd_alloc_array(a, CACHE_STATES, sizeof *m->cached_hash);
    m->next = tnd_alloc_array(a, CACHE_STATES, sizeof *m->next);
    /* every state's buffers through the session's allocator */
    g_state *own[] = {&m->state, &m->a, &m->b, &m->work};
    for (size_t i = 0; i < sizeof own / sizeof *own; i++) own[i]->alloc = &m->allocator;
    for (int32_t i = 0; m->levels && i < m->n_levels; i++) m->levels[i].alloc = &m->allocator;
    for (int32_t i = 0; m->cached && i < CACHE_STATES; i++) m->cached[i].alloc = &m->allocator;
    if (!m->levels || !m->cached || !m->cached_hash || !m->next || !g_matcher_reset(m)) {
        g_matcher_free(m);
        return tnd_fail(TND_ERR_OUT_OF_MEMORY, "grammar: out of memory");
    }
    *out = m;
    return TND_OK;
}

/* ------------------------------------------------------------------------------------------------------------
 * The transition table
 * ---------------------------------------------------------------------------------------------------------- */

static uint64_t mix(uint64_t h, uint64_t v) { return (h ^ v) * 0x100000001b3ull; }

static uint64_t state_hash(const g_state *s) {
    uint64_t h = mix(mix(0xcbf29ce484222325ull, (uint64_t)s->n_stacks), (uint64_t)(s->n_partial * 8 + s->need));
    h = mix(h, s->skip_space);
    for (int8_t i = 0; i < s->n_partial; i++) h = mix(h, s->partial[i]);
    for (int32_t i = 0; i < s->n_stacks; i++) h = mix(h, (uint64_t)s->start[i + 1]);
    int32_t used = s->n_stacks ? s->start[s->n_stacks] : 0;
    for (int32_t i = 0; i < used; i++) h = mix(h, s->data[i]);
    return h;
}

static bool state_equal(const g_state *a, const g_state *b) {
    if (a->n_stacks != b->n_stacks || a->n_partial != b->n_partial || a->need != b->need ||
        a->skip_space != b->skip_space || memcmp(a->partial, b->partial, (size_t)a->n_partial))
        return false;
    if (!a->n_stacks) return true;
    int32_t used = a->start[a->n_stacks];
    return !memcmp(a->start, b->start, sizeof *a->start * (size_t)(a->n_stacks + 1)) &&
           (!used || !memcmp(a->data, b->data, sizeof *a->data * (size_t)used));
}

/* The index of state s in the table, added if new; TR_FULL or TR_OOM. */
static int32_t intern(g_matcher *m, const g_state *s) {
    uint64_t h = state_hash(s);
    for (int32_t i = 0; i < m->n_cached; i++)
        if (m->cached_hash[i] == h && state_equal(&m->cached[i], s)) return i;
    if (m->n_cached == CACHE_STATES) return TR_FULL;
    if (!g_state_copy(&m->cached[m->n_cached], s)) return TR_OOM;
    m->cached_hash[m->n_cached] = h;
    memset(m->next[m->n_cached], 0xff, sizeof m->next[0]); /* TR_UNKNOWN */
    return m->n_cached++;
}

/* Where byte b leads from state si: an index, TR_REJECTED, TR_FULL or TR_OOM. */
static int32_t transition(g_matcher *m, int32_t si, uint8_t b) {
    int32_t t = m->next[si][b];
    if (t != TR_UNKNOWN) return t;
    bool oom = false;
    if (!g_state_byte(m->g, &m->cached[si], b, &m->a, &m->work, &oom)) {
        if (oom) return TR_OOM;
        m->next[si][b] = TR_REJECTED;
        return TR_REJECTED;
    }
    t = intern(m, &m->a);
    if (t >= 0) m->next[si][b] = (int16_t)t;
    return t;
}

/* The current state's index, the table started over when it is more than half full (so that a walk rarely fills
 * it); negative when out of memory. */
static int32_t current(g_matcher *m) {
    if (m->n_cached > CACHE_STATES / 2) m->n_cached = 0;
    return intern(m, &m->state);
}

/* Walks a piece from the current state; the state it reaches is left in *end (m->a or m->b). */
static bool walk(g_matcher *m, const char *piece, int32_t len, g_state **end, bool *oom) {
    const g_state *from = &m->state;
    g_state *to = &m->a;
    *oom = false;
    for (int32_t i = 0; i < len; i++) {
        if (!g_state_byte(m->g, from, (uint8_t)piece[i], to, &m->work, oom)) return false;
        from = to;
        to = to == &m->a ? &m->b : &m->a;
    }
    *end = (g_state *)from;
    return len > 0;
}

bool g_matcher_allows(g_matcher *m, int32_t token, bool eog) {
    if (eog) return g_state_can_end(&m->state);
    if (token < 0 || token >= m->v->n_vocab || !m->v->piece_len[token]) return false;
    const char *piece = m->v->piece[token];
    int32_t si = current(m);
    for (int32_t i = 0; si >= 0 && i < m->v->piece_len[token]; i++) si = transition(m, si, (uint8_t)piece[i]);
    if (si >= 0 || si == TR_REJECTED) return si >= 0;
    g_state *end; /* the table is full: walk the piece on its own */
    bool oom;
    return walk(m, piece, m->v->piece_len[token], &end, &oom);
}

bool g_matcher_accept(g_matcher *m, int32_t token) {
    if (token < 0 || token >= m->v->n_vocab) return false;
    g_state *end;
    bool oom;
    if (!walk(m, m->v->piece[token], m->v->piece_len[token], &end, &oom)) return false;
    g_state t = m->state;
    m->state = *end;
    *end = t;
    return true;
}

static bool mask_walk(g_matcher *m, int32_t node, int32_t depth, const g_state *st, uint8_t *allowed);

/* Node c (at `depth`, reached from state st): if the grammar takes its byte, its tokens are allowed and its
 * children are visited. */
static bool mask_visit(g_matcher *m, int32_t c, int32_t depth, const g_state *st, uint8_t *allowed) {
    const g_vocab *v = m->v;
    g_state *next = &m->levels[depth];
    bool oom = false;
    if (!g_state_byte(m->g, st, v->byte[c], next, &m->work, &oom)) return !oom;
    for (int32_t t = v->token_head[c]; t >= 0; t = v->token_next[t]) allowed[t] = 1;
    return v->first_child[c] < 0 || mask_walk(m, c, depth + 1, next, allowed);
}

/* Marks the tokens under `node` whose pieces the grammar takes from `st` (the state after the node's prefix). */
static bool mask_walk(g_matcher *m, int32_t node, int32_t depth, const g_state *st, uint8_t *allowed) {
    const g_vocab *v = m->v;
    if (node == 0) {
        for (int32_t b = 0; b < 256; b++)
            if (v->root_child[b] >= 0 && !mask_visit(m, v->root_child[b], depth, st, allowed)) return false;
        return true;
    }
    for (int32_t c = v->first_child[node]; c >= 0; c = v->next_sibling[c])
        if (!mask_visit(m, c, depth, st, allowed)) return false;
    return true;
}

/* mask_walk over the transition table: node's children from state si. Returns 0, TR_FULL or TR_OOM. */
static int32_t cached_walk(g_matcher *m, int32_t node, int32_t si, uint8_t *allowed) {
    const g_vocab *v = m->v;
    int32_t b = 0, c = node ? v->first_child[node] : -1;
    for (;;) {
        if (!node) { /* the root's children by byte */
            while (b < 256 && v->root_child[b] < 0) b++;
            if (b == 256) return 0;
            c = v->root_child[b++];
        } else if (c < 0) return 0;
        int32_t ni = transition(m, si, v->byte[c]);
        if (ni == TR_FULL || ni == TR_OOM) return ni;
        if (ni >= 0) {
            for (int32_t t = v->token_head[c]; t >= 0; t = v->token_next[t]) allowed[t] = 1;
            if (v->first_child[c] >= 0) {
                int32_t r = cached_walk(m, c, ni, allowed);
                if (r) return r;
            }
        }
        if (node) c = v->next_sibling[c];
    }
}

bool g_matcher_mask(g_matcher *m, bool allow_eog, uint8_t *allowed) {
    memset(allowed, 0, (size_t)m->v->n_vocab);
    int32_t si = current(m), r = si >= 0 ? cached_walk(m, 0, si, allowed) : si;
    if (r == TR_OOM) return false;
    if (r == TR_FULL) { /* more states than the table holds: the walk with states of its own */
        memset(allowed, 0, (size_t)m->v->n_vocab);
        if (!mask_walk(m, 0, 0, &m->state, allowed)) return false;
    }
    /* an end-of-generation token ends the text: allowed exactly when the text is complete */
    bool can_end = allow_eog && g_state_can_end(&m->state);
    for (int32_t i = 0; i < m->v->n_eog; i++) allowed[m->v->eog[i]] = can_end;
    return true;
}

bool g_matcher_can_end(const g_matcher *m) { return g_state_can_end(&m->state); }

bool g_matcher_can_go_on(const g_matcher *m) { return g_state_can_go_on(&m->state) || m->state.n_partial > 0; }
