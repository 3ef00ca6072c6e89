/* grammar.h: compiled grammars (grammar.c), the matcher that follows the text generated so far (grammar_match.c),
 * and the vocabulary side: which tokens may come next (grammar_vocab.c).
 *
 * A grammar compiles to one array of elements. A rule is a list of alternatives; an alternative is a run of
 * elements ended by G_END: a character class (ranges of code points, possibly negated) or a reference to a rule.
 * Repetitions and groups become rules of their own, so nothing else is needed.
 *
 * The matcher keeps the set of parse stacks the text so far allows (an Earley-style breadth of a recursive-descent
 * parser without left recursion, which the compiler rejects). A stack lists element positions: its top is the
 * character class the next code point must match, the entries below it where to go on when each rule ends. An
 * empty stack means the text so far is a complete match. */
#ifndef TND_TEXT_GRAMMAR_H
#define TND_TEXT_GRAMMAR_H

#include "tandem.h"

#include <stdbool.h>
#include <stdint.h>

enum { G_END = 0, G_CLASS, G_RULE };

typedef struct g_elem {
    uint8_t kind;       /* G_END, G_CLASS, G_RULE */
    uint8_t negated;    /* G_CLASS: matches the code points outside its ranges */
    uint16_t n_ranges;  /* G_CLASS */
    uint32_t arg;       /* G_CLASS: first range; G_RULE: the rule */
} g_elem;

typedef struct g_range {
    uint32_t lo, hi;    /* inclusive */
} g_range;

struct tnd_grammar {
    g_elem *elems;
    int32_t n_elems;
    g_range *ranges;
    int32_t n_ranges;
    int32_t *alts;       /* start positions of every alternative, rule by rule */
    int32_t *rule_alts;  /* [n_rules + 1]: rule r's alternatives are alts[rule_alts[r] .. rule_alts[r + 1]) */
    int32_t n_rules, root;
    tnd_allocator allocator;
};

/* ---- The matcher ---- */

typedef struct g_state {
    uint32_t *data;      /* the stacks' positions, one after another */
    int32_t *start;      /* [n_stacks + 1]: stack i is data[start[i] .. start[i + 1]) */
    int32_t n_stacks, data_cap, stack_cap;
    uint8_t partial[4];  /* the bytes of a UTF-8 character not complete yet */
    int8_t n_partial, need;
    bool skip_space;     /* one leading space is not text (the first piece of a generation that drops it) */
    const tnd_allocator *alloc; /* where its buffers come from (NULL: the C library); kept by g_state_copy */
} g_state;

/* The state at the start of the grammar's root rule. false when out of memory. */
bool g_state_start(const tnd_grammar *g, g_state *s);
void g_state_free(g_state *s);
bool g_state_copy(g_state *dst, const g_state *src);

/* Advances src by one byte into dst (dst, src and the scratch `work` all different). Returns false (dst then
 * undefined) when the byte cannot follow the text so far, or when out of memory (*oom set). */
bool g_state_byte(const tnd_grammar *g, const g_state *src, uint8_t byte, g_state *dst, g_state *work, bool *oom);

/* Whether the text so far is a complete match (and no character is half done). */
bool g_state_can_end(const g_state *s);

/* Whether any character may follow. */
bool g_state_can_go_on(const g_state *s);

/* ---- Tokens ---- */

/* The vocabulary as the mask needs it: every token's piece, and a trie of the pieces. */
typedef struct g_vocab g_vocab;

tnd_status g_vocab_init(const tnd_tokenizer *tok, const tnd_allocator *allocator, g_vocab **out);

/* Another owner of v (the sessions of one context share it from one thread at a time); returns v. */
g_vocab *g_vocab_retain(g_vocab *v);

/* Gives up one ownership; the last frees it. Accepts NULL. */
void g_vocab_free(g_vocab *v);

/* The matcher of one generation: a grammar state and scratch to look ahead. */
typedef struct g_matcher g_matcher;

tnd_status g_matcher_init(const tnd_grammar *g, const g_vocab *v, bool skip_first_space, const tnd_allocator *a,
                          g_matcher **out);
void g_matcher_free(g_matcher *m);

/* A matcher in src's state. */
tnd_status g_matcher_clone(const g_matcher *src, g_matcher **out);

/* Back to the start of the grammar. */
bool g_matcher_reset(g_matcher *m);

/* Whether `token` may come next (an end-of-generation token: whether the text is complete). */
bool g_matcher_allows(g_matcher *m, int32_t token, bool eog);

/* Marks in allowed[n_vocab] (1 / 0) every token that may come next (end-of-generation tokens where the text is
 * complete, if allow_eog). Walks the trie of the pieces, so a state that allows few characters costs little. Returns false when
 * out of memory. */
bool g_matcher_mask(g_matcher *m, bool allow_eog, uint8_t *allowed);

/* Takes `token` into the state; false when it may not come next (the state is unchanged) or out of memory. */
bool g_matcher_accept(g_matcher *m, int32_t token);

/* Whether the text so far is complete / may go on. */
bool g_matcher_can_end(const g_matcher *m);
bool g_matcher_can_go_on(const g_matcher *m);

#endif
