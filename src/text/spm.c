/* spm.c: SentencePiece-style BPE (tokenizer.ggml.model "llama"): spaces become the marker U+2581, the text is
 * cut into characters, and adjacent symbols are merged best-score-first while their concatenation is a token;
 * characters no token covers fall back to <0xNN> byte tokens. */
#include "text/tokenizer.h"

#include "core/alloc.h"
#include "core/error.h"

#include <stdio.h>
#include <string.h>

static const char space_marker[3] = {'\xE2', '\x96', '\x81'}; /* U+2581 LOWER ONE EIGHTH BLOCK */

tnd_status tnd_spm_init(tnd_tokenizer *t) {
    for (int b = 0; b < 256; b++) {
        char name[8];
        snprintf(name, sizeof name, "<0x%02X>", b);
        int32_t id = tnd_vocab_find(t, name, 6);
        if (id < 0 && b < 0x80) {
            char one = (char)b;
            id = tnd_vocab_find(t, &one, 1);
        }
        t->byte_token[b] = id;
    }
    /* every adjacent byte pair inside a token a merge may produce (at every byte, a superset of the character
     * boundaries: splitting less often than possible is always safe) */
    t->spm_joins = tnd_alloc(&t->allocator, 65536 / 8);
    if (!t->spm_joins) return tnd_fail(TND_ERR_OUT_OF_MEMORY, "SPM tokenizer: out of memory");
    for (int32_t id = 0; id < t->n_vocab; id++) {
        if (!(t->flags[id] & TND_TOKF_MERGEABLE)) continue;
        const uint8_t *s = (const uint8_t *)t->text[id].ptr;
        for (uint64_t i = 1; i < t->text[id].len; i++) {
            unsigned pair = (unsigned)s[i - 1] << 8 | s[i];
            t->spm_joins[pair >> 6] |= 1ull << (pair & 63);
        }
    }
    return TND_OK;
}

/* Whether a merge could join the symbol ending with byte a to the one starting with byte b. */
static bool may_join(const tnd_tokenizer *t, uint8_t a, uint8_t b) {
    unsigned pair = (unsigned)a << 8 | b;
    return (t->spm_joins[pair >> 6] >> (pair & 63)) & 1;
}

/* Maps a float score to an unsigned key that sorts the same way (larger score, larger key). */
static uint32_t score_order(float score) {
    uint32_t u;
    memcpy(&u, &score, sizeof u);
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

/* Queues the merge of symbols left and right when their concatenation is a token a merge may produce. Highest
 * score first; among equal scores the leftmost pair. check_a holds the merged length, check_b the token. */
static bool queue_pair(tnd_tokenizer *t, tnd_tok_scratch *sc, const char *text, int32_t left, int32_t right) {
    if (left < 0 || right < 0) return true;
    const tnd_symbol *l = &sc->symbols[left], *r = &sc->symbols[right];
    uint32_t len = l->len + r->len;
    int32_t id = tnd_vocab_find(t, text + l->start, len);
    if (id < 0 || !(t->flags[id] & TND_TOKF_MERGEABLE)) return true;
    tnd_merge_entry e = {.key = ((uint64_t)~score_order(t->scores[id]) << 32) | (uint32_t)left,
                         .left = left,
                         .right = right,
                         .check_a = (int32_t)len,
                         .check_b = id};
    return tnd_merge_heap_push(&sc->heap, &t->allocator, e);
}

/* Writes the escaped text ("\xE2\x96\x81" for each space, and one in front when `prefix`) to the scratch. */
static tnd_status escape_text(tnd_tokenizer *t, tnd_tok_scratch *sc, const char *text, size_t len, bool prefix,
                              size_t *out_len) {
    size_t spaces = 0;
    for (size_t i = 0; i < len; i++) spaces += text[i] == ' ';
    size_t need = len + 2 * spaces + (prefix ? 3 : 0);
    if (!tnd_text_reserve(&t->allocator, (void **)&sc->text, &sc->text_cap, need, 1))
        return tnd_fail(TND_ERR_OUT_OF_MEMORY, "SPM tokenizer: out of memory");
    char *dst = sc->text;
    if (prefix) {
        memcpy(dst, space_marker, 3);
        dst += 3;
    }
    for (size_t i = 0; i < len; i++) {
        if (text[i] == ' ') {
            memcpy(dst, space_marker, 3);
            dst += 3;
        } else {
            *dst++ = text[i];
        }
    }
    *out_len = need;
    return TND_OK;
}

/* Emits a final symbol that is not a token: its bytes as byte tokens when the vocabulary has byte fallback, else
 * the unknown token once (bytes without a token are dropped). */
static void emit_fallback(const tnd_tokenizer *t, const uint8_t *s, size_t n, tnd_tok_out *out) {
    if (t->byte_token[s[0]] < 0) {
        if (t->special[TND_TOKEN_UNK] >= 0) tnd_tok_emit(out, t->special[TND_TOKEN_UNK]);
        return;
    }
    for (size_t i = 0; i < n; i++)
        if (t->byte_token[s[i]] >= 0) tnd_tok_emit(out, t->byte_token[s[i]]);
}

/* Runs the merge loop over symbols first..last (linked to each other and to nothing outside). */
static tnd_status merge_stretch(tnd_tokenizer *t, tnd_tok_scratch *sc, const char *s, int32_t first, int32_t last) {
    sc->heap.n = 0;
    for (int32_t i = first + 1; i <= last; i++)
        if (!queue_pair(t, sc, s, i - 1, i)) return tnd_fail(TND_ERR_OUT_OF_MEMORY, "SPM tokenizer: out of memory");
    tnd_merge_entry e;
    while (tnd_merge_heap_pop(&sc->heap, &e)) {
        tnd_symbol *l = &sc->symbols[e.left], *r = &sc->symbols[e.right];
        /* stale: one side was merged into something else since the pair was queued */
        if (l->len == 0 || r->len == 0 || l->next != e.right || (int32_t)(l->len + r->len) != e.check_a) continue;
        l->len += r->len;
        l->id = e.check_b;
        r->len = 0;
        l->next = r->next;
        if (r->next >= 0) sc->symbols[r->next].prev = e.left;
        if (!queue_pair(t, sc, s, l->prev, e.left) || !queue_pair(t, sc, s, e.left, l->next))
            return tnd_fail(TND_ERR_OUT_OF_MEMORY, "SPM tokenizer: out of memory");
    }
    return TND_OK;
}

tnd_status tnd_spm_encode(tnd_tokenizer *t, tnd_tok_scratch *sc, const char *text, size_t len, bool prefix,
                          tnd_tok_out *out) {
    size_t n = 0;
    tnd_status st = escape_text(t, sc, text, len, prefix, &n);
    if (st) return st;
    if (n == 0) return TND_OK;
    const char *s = sc->text;
    if (!tnd_tok_scratch_symbols(t, sc, n)) return tnd_fail(TND_ERR_OUT_OF_MEMORY, "SPM tokenizer: out of memory");

    /* one symbol per character (a byte that is not well-formed UTF-8 stands alone) */
    int32_t count = 0;
    for (size_t i = 0; i < n;) {
        size_t k = tnd_utf8_char_len((const uint8_t *)s + i, n - i);
        int32_t id = tnd_vocab_find(t, s + i, k);
        sc->symbols[count] = (tnd_symbol){.prev = count - 1,
                                          .next = count + 1,
                                          .start = (uint32_t)i,
                                          .len = (uint32_t)k,
                                          .id = (id >= 0 && (t->flags[id] & TND_TOKF_MERGEABLE)) ? id : -1};
        count++;
        i += k;
    }
    sc->symbols[count - 1].next = -1;

    /* merge each stretch between two symbols that no token can join on its own: the result is the same as
     * merging the whole text at once (merges on different sides never interact), with small heaps */
    for (int32_t first = 0; first < count;) {
        int32_t last = first;
        while (last + 1 < count &&
               may_join(t, (uint8_t)s[sc->symbols[last + 1].start - 1], (uint8_t)s[sc->symbols[last + 1].start]))
            last++;
        sc->symbols[first].prev = -1;
        sc->symbols[last].next = -1;
        if ((st = merge_stretch(t, sc, s, first, last))) return st;
        /* the symbols left (merged ones have length 0) are the output, in text order */
        for (int32_t i = first; i <= last; i++) {
            const tnd_symbol *sym = &sc->symbols[i];
            if (sym->len == 0) continue;
            if (sym->id >= 0) tnd_tok_emit(out, sym->id);
            else emit_fallback(t, (const uint8_t *)s + sym->start, sym->len, out);
        }
        first = last + 1;
    }
    return TND_OK;
}
