/* bpe.c: byte-level BPE (tokenizer.ggml.model "gpt2"): every byte of a pre-tokenized piece starts as the token of
 * its byte-level character, and adjacent tokens are merged lowest-rank-first by the merge table. */
#include "text/tokenizer.h"

#include "core/alloc.h"
#include "core/error.h"

#include <string.h>

/* ---------------------------------------------------------------------------------------------------------------
 * Byte-level characters: GPT-2 shows each byte as a printable character. Bytes that are printable in Latin-1
 * ('!'..'~', 0xA1..0xAC, 0xAE..0xFF) stand for themselves; the others, in increasing order, for U+0100 onwards.
 * ------------------------------------------------------------------------------------------------------------- */

static void build_byte_chars(tnd_tokenizer *t) {
    for (size_t i = 0; i < sizeof t->char_byte / sizeof t->char_byte[0]; i++) t->char_byte[i] = -1;
    uint32_t next = 256;
    for (int b = 0; b < 256; b++) {
        bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
        uint32_t cp = printable ? (uint32_t)b : next++;
        t->byte_char_len[b] = (uint8_t)tnd_utf8_encode(cp, t->byte_char[b]);
        t->char_byte[cp] = (int16_t)b;
        t->byte_token[b] = tnd_vocab_find(t, (const char *)t->byte_char[b], t->byte_char_len[b]);
    }
}

/* ---------------------------------------------------------------------------------------------------------------
 * Merge table
 * ------------------------------------------------------------------------------------------------------------- */

static uint64_t pair_key(int32_t left, int32_t right) { return ((uint64_t)(uint32_t)left << 32) | (uint32_t)right; }

/* The merge of tokens left and right, or NULL. */
static const tnd_merge_slot *merge_find(const tnd_merge_map *m, int32_t left, int32_t right) {
    uint64_t key = pair_key(left, right);
    for (uint64_t i = tnd_hash_u64(key) & m->mask;; i = (i + 1) & m->mask) {
        const tnd_merge_slot *s = &m->slots[i];
        if (s->key == key) return s;
        if (s->key == UINT64_MAX) return NULL;
    }
}

/* Reads tokenizer.ggml.merges ("left right" per entry, rank = position). A merge whose parts or result are not
 * tokens can never apply to token ids and is skipped (counted in the log); a repeated pair keeps its first rank. */
static tnd_status build_merges(tnd_tokenizer *t, const tnd_gguf *g) {
    const tnd_gguf_value *v = NULL;
    tnd_status st = tnd_gguf_get_array(g, "tokenizer.ggml.merges", TND_VALUE_STRING, &v);
    if (st) return st;
    if (v->count > INT32_MAX) return tnd_fail(TND_ERR_FORMAT, "tokenizer.ggml.merges has too many entries");
    uint64_t cap = 16;
    while (cap < v->count * 2) cap *= 2;
    tnd_merge_map *m = &t->merges;
    m->slots = tnd_alloc_array(&t->allocator, cap, sizeof *m->slots);
    if (!m->slots) return tnd_fail(TND_ERR_OUT_OF_MEMORY, "tokenizer: out of memory for the merge table");
    memset(m->slots, 0xFF, cap * sizeof *m->slots);
    m->mask = cap - 1;
    char *joined = NULL;
    size_t joined_cap = 0;
    int64_t skipped = 0;
    for (uint64_t r = 0; r < v->count; r++) {
        const char *s = v->strings[r].ptr;
        size_t n = (size_t)v->strings[r].len;
        /* the separator is the first space after the first character (a part never starts with a space) */
        const char *sep = n > 1 ? memchr(s + 1, ' ', n - 1) : NULL;
        if (!sep) {
            skipped++;
            continue;
        }
        size_t ln = (size_t)(sep - s), rn = n - ln - 1;
        if (!tnd_text_reserve(&t->allocator, (void **)&joined, &joined_cap, ln + rn + 1, 1)) {
            tnd_free(&t->allocator, joined);
            return tnd_fail(TND_ERR_OUT_OF_MEMORY, "tokenizer: out of memory reading merges");
        }
        memcpy(joined, s, ln);
        memcpy(joined + ln, sep + 1, rn);
        int32_t left = tnd_vocab_find(t, s, ln), right = tnd_vocab_find(t, sep + 1, rn);
        int32_t merged = tnd_vocab_find(t, joined, ln + rn);
        if (left < 0 || right < 0 || merged < 0) {
            skipped++;
            continue;
        }
        uint64_t key = pair_key(left, right);
        uint64_t i = tnd_hash_u64(key) & m->mask;
        while (m->slots[i].key != UINT64_MAX && m->slots[i].key != key) i = (i + 1) & m->mask;
        if (m->slots[i].key == key) continue;
        m->slots[i] = (tnd_merge_slot){.key = key, .rank = (int32_t)r, .merged = merged};
        m->count++;
    }
    tnd_free(&t->allocator, joined);
    if (skipped)
        tnd_log(&t->log, TND_LOG_WARN, "tokenizer: %lld of %llu merges do not join two tokens into a token; skipped",
                (long long)skipped, (unsigned long long)v->count);
    return TND_OK;
}

tnd_status tnd_bpe_init(tnd_tokenizer *t, const tnd_gguf *g) {
    build_byte_chars(t);
    return build_merges(t, g);
}

void tnd_bpe_release(tnd_tokenizer *t) {
    tnd_free(&t->allocator, t->merges.slots);
    t->merges = (tnd_merge_map){0};
}

/* ---------------------------------------------------------------------------------------------------------------
 * Encoding one piece
 * ------------------------------------------------------------------------------------------------------------- */

typedef struct bpe_ctx {
    tnd_tokenizer *t;
    tnd_tok_scratch *sc;
    tnd_tok_out *out;
} bpe_ctx;

/* Queues the merge of symbols left and right if the merge table has their pair. Lowest rank first, then the
 * leftmost pair. check_a/check_b keep both tokens to recognise a stale entry. */
static bool queue_pair(const tnd_tokenizer *t, tnd_tok_scratch *sc, int32_t left, int32_t right) {
    if (left < 0 || right < 0) return true;
    int32_t a = sc->symbols[left].id, b = sc->symbols[right].id;
    if (a < 0 || b < 0) return true;
    const tnd_merge_slot *m = merge_find(&t->merges, a, b);
    if (!m) return true;
    tnd_merge_entry e = {.key = ((uint64_t)(uint32_t)m->rank << 32) | (uint32_t)left,
                         .left = left,
                         .right = right,
                         .check_a = a,
                         .check_b = b};
    return tnd_merge_heap_push(&sc->heap, &t->allocator, e);
}

/* The whole piece as one token, when the pre-tokenizer takes whole-token pieces without merging: -1 if the
 * piece's byte-level form is not a token. */
static int32_t whole_piece_token(tnd_tokenizer *t, tnd_tok_scratch *sc, const uint8_t *w, size_t n) {
    if (!tnd_text_reserve(&t->allocator, (void **)&sc->text, &sc->text_cap, 2 * n, 1)) return -1;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        memcpy(sc->text + k, t->byte_char[w[i]], t->byte_char_len[w[i]]);
        k += t->byte_char_len[w[i]];
    }
    return tnd_vocab_find(t, sc->text, k);
}

static tnd_status bpe_piece(void *user, const char *piece, size_t n) {
    bpe_ctx *c = user;
    tnd_tokenizer *t = c->t;
    tnd_tok_scratch *sc = c->sc;
    const uint8_t *w = (const uint8_t *)piece;
    if (n == 1) {
        if (t->byte_token[w[0]] >= 0) tnd_tok_emit(c->out, t->byte_token[w[0]]);
        return TND_OK;
    }
    if (t->pre_def->ignore_merges) {
        int32_t id = whole_piece_token(t, sc, w, n);
        if (id >= 0) {
            tnd_tok_emit(c->out, id);
            return TND_OK;
        }
    }
    if (!tnd_tok_scratch_symbols(t, sc, n)) return tnd_fail(TND_ERR_OUT_OF_MEMORY, "BPE tokenizer: out of memory");
    tnd_symbol *sym = sc->symbols;
    for (size_t i = 0; i < n; i++)
        sym[i] = (tnd_symbol){.prev = (int32_t)i - 1, .next = (int32_t)i + 1, .id = t->byte_token[w[i]]};
    sym[n - 1].next = -1;
    sc->heap.n = 0;
    for (size_t i = 1; i < n; i++)
        if (!queue_pair(t, sc, (int32_t)i - 1, (int32_t)i))
            return tnd_fail(TND_ERR_OUT_OF_MEMORY, "BPE tokenizer: out of memory");
    tnd_merge_entry e;
    while (tnd_merge_heap_pop(&sc->heap, &e)) {
        tnd_symbol *l = &sym[e.left], *r = &sym[e.right];
        if (l->id != e.check_a || l->next != e.right || r->id != e.check_b) continue; /* stale */
        l->id = merge_find(&t->merges, e.check_a, e.check_b)->merged;
        r->id = -2;
        l->next = r->next;
        if (r->next >= 0) sym[r->next].prev = e.left;
        if (!queue_pair(t, sc, l->prev, e.left) || !queue_pair(t, sc, e.left, l->next))
            return tnd_fail(TND_ERR_OUT_OF_MEMORY, "BPE tokenizer: out of memory");
    }
    for (int32_t i = 0; i >= 0; i = sym[i].next)
        if (sym[i].id >= 0) tnd_tok_emit(c->out, sym[i].id);
    return TND_OK;
}

tnd_status tnd_bpe_encode(tnd_tokenizer *t, tnd_tok_scratch *sc, const char *text, size_t len, tnd_tok_out *out) {
    if (t->pre_def->nfc) {
        tnd_status st = tnd_text_nfc(&sc->pre, text, len, &text, &len);
        if (st) return st;
    }
    bpe_ctx c = {.t = t, .sc = sc, .out = out};
    return tnd_pretok_split(&t->pre, &sc->pre, text, len, bpe_piece, &c);
}
