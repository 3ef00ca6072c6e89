/* detokenize.c: token ids back to bytes: the decoded piece of every token (built once), whole-sequence decoding,
 * and the streaming decoder that holds back a piece ending inside a UTF-8 character. */
#include "text/tokenizer.h"

#include "core/alloc.h"
#include "core/error.h"

#include <string.h>

/* ---------------------------------------------------------------------------------------------------------------
 * Pieces
 * ------------------------------------------------------------------------------------------------------------- */

static int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

/* Writes the decoded piece of token `id` at dst; returns its length, or -1 for a byte token that is not <0xNN>. */
static int64_t decode_piece(const tnd_tokenizer *t, int32_t id, char *dst) {
    const char *s = t->text[id].ptr;
    size_t n = (size_t)t->text[id].len;
    uint8_t type = t->type[id];
    if (type == TND_TOKEN_TYPE_BYTE) {
        if (n != 6 || memcmp(s, "<0x", 3) != 0 || s[5] != '>' || hex_value(s[3]) < 0 || hex_value(s[4]) < 0)
            return -1;
        dst[0] = (char)(hex_value(s[3]) * 16 + hex_value(s[4]));
        return 1;
    }
    bool plain = type == TND_TOKEN_TYPE_NORMAL || type == TND_TOKEN_TYPE_UNDEFINED;
    if (!plain) { /* user-defined tokens as written; hidden ones keep their text for TND_DETOKENIZE_SPECIAL */
        memcpy(dst, s, n);
        return (int64_t)n;
    }
    size_t k = 0;
    if (t->kind == TND_VOCAB_SPM) {
        for (size_t i = 0; i < n;) {
            if (i + 3 <= n && memcmp(s + i, "\xE2\x96\x81", 3) == 0) {
                dst[k++] = ' ';
                i += 3;
            } else {
                dst[k++] = s[i++];
            }
        }
        return (int64_t)k;
    }
    /* byte-level: each character stands for one byte; a character outside the table is kept as written */
    for (size_t i = 0; i < n;) {
        size_t len = tnd_utf8_seq_len((const uint8_t *)s + i, n - i);
        uint32_t cp = 0x7FFFFFFF;
        if (len == 1) cp = (uint8_t)s[i];
        else if (len == 2) cp = ((uint32_t)(s[i] & 0x1F) << 6) | (uint32_t)(s[i + 1] & 0x3F);
        if (cp < sizeof t->char_byte / sizeof t->char_byte[0] && t->char_byte[cp] >= 0) {
            dst[k++] = (char)t->char_byte[cp];
            i += len;
        } else {
            size_t copy = len ? len : 1;
            memcpy(dst + k, s + i, copy);
            k += copy;
            i += copy;
        }
    }
    return (int64_t)k;
}

tnd_status tnd_detok_build_pieces(tnd_tokenizer *t) {
    uint64_t bound = 0;
    for (int32_t i = 0; i < t->n_vocab; i++) bound += t->text[i].len + 1;
    if (bound > UINT32_MAX) return tnd_fail(TND_ERR_FORMAT, "tokenizer: vocabulary strings exceed 4 GiB");
    t->piece_off = tnd_alloc_array(&t->allocator, (size_t)t->n_vocab + 1, sizeof *t->piece_off);
    t->piece_bytes = tnd_alloc(&t->allocator, (size_t)bound + 1);
    if (!t->piece_off || !t->piece_bytes) return tnd_fail(TND_ERR_OUT_OF_MEMORY, "tokenizer: out of memory for pieces");
    uint32_t used = 0;
    for (int32_t i = 0; i < t->n_vocab; i++) {
        t->piece_off[i] = used;
        int64_t n = decode_piece(t, i, t->piece_bytes + used);
        if (n < 0)
            return tnd_fail(TND_ERR_FORMAT, "tokenizer: token %d is a byte token but its text '%.*s' is not <0xNN>", i,
                            (int)(t->text[i].len > 32 ? 32 : t->text[i].len), t->text[i].ptr);
        used += (uint32_t)n;
    }
    t->piece_off[t->n_vocab] = used;
    return TND_OK;
}

/* The piece shown for a token under `flags` (empty for a hidden token without TND_DETOKENIZE_SPECIAL). */
static const char *piece_of(const tnd_tokenizer *t, int32_t token, uint32_t flags, size_t *len) {
    if ((t->flags[token] & TND_TOKF_HIDDEN) && !(flags & TND_DETOKENIZE_SPECIAL)) {
        *len = 0;
        return t->piece_bytes;
    }
    *len = t->piece_off[token + 1] - t->piece_off[token];
    return t->piece_bytes + t->piece_off[token];
}

const char *tnd_tokenizer_piece(const tnd_tokenizer *t, int32_t token, uint32_t flags, size_t *len) {
    if (!t || token < 0 || token >= t->n_vocab) return NULL;
    size_t n = 0;
    const char *p = piece_of(t, token, flags, &n);
    if (len) *len = n;
    return p;
}

bool tnd_detok_strips_space(const tnd_tokenizer *t, uint32_t flags) {
    return t->kind == TND_VOCAB_SPM && t->add_space_prefix && !(flags & TND_DETOKENIZE_KEEP_SPACE);
}

/* Applies the pending space-prefix removal to a piece: drops its first byte if it is a space. The removal is
 * settled by the first non-empty piece, whether or not it starts with a space. */
static void apply_strip(bool *strip, const char **p, size_t *n) {
    if (!*strip || *n == 0) return;
    if (**p == ' ') {
        (*p)++;
        (*n)--;
    }
    *strip = false;
}

/* ---------------------------------------------------------------------------------------------------------------
 * Whole sequences
 * ------------------------------------------------------------------------------------------------------------- */

int32_t tnd_tokenizer_decode(const tnd_tokenizer *t, const int32_t *tokens, int32_t n_tokens, uint32_t flags,
                             char *buf, int32_t cap) {
    if (!t || n_tokens < 0 || (!tokens && n_tokens > 0) || cap < 0 || (!buf && cap > 0)) {
        tnd_fail(TND_ERR_INVALID_ARGUMENT, "tnd_tokenizer_decode: NULL tokenizer or tokens, or a bad buffer");
        return TND_TOKENIZE_ERROR;
    }
    if (flags & ~(TND_DETOKENIZE_SPECIAL | TND_DETOKENIZE_KEEP_SPACE)) {
        tnd_fail(TND_ERR_INVALID_ARGUMENT, "tnd_tokenizer_decode: unknown flags 0x%x", flags);
        return TND_TOKENIZE_ERROR;
    }
    bool strip = tnd_detok_strips_space(t, flags);
    int64_t total = 0;
    for (int32_t i = 0; i < n_tokens; i++) {
        if (tokens[i] < 0 || tokens[i] >= t->n_vocab) {
            tnd_fail(TND_ERR_INVALID_ARGUMENT, "tnd_tokenizer_decode: token %d at position %d is outside the "
                                               "vocabulary of %d tokens", tokens[i], i, t->n_vocab);
            return TND_TOKENIZE_ERROR;
        }
        size_t n = 0;
        const char *p = piece_of(t, tokens[i], flags, &n);
        apply_strip(&strip, &p, &n);
        if (total < cap) memcpy(buf + total, p, (size_t)(cap - total) < n ? (size_t)(cap - total) : n);
        total += (int64_t)n;
        if (total > INT32_MAX) {
            tnd_fail(TND_ERR_INVALID_ARGUMENT, "tnd_tokenizer_decode: the text exceeds INT32_MAX bytes");
            return TND_TOKENIZE_ERROR;
        }
    }
    return total > cap ? -(int32_t)total : (int32_t)total;
}

/* ---------------------------------------------------------------------------------------------------------------
 * Streaming
 * ------------------------------------------------------------------------------------------------------------- */

struct tnd_detokenizer {
    const tnd_tokenizer *tok;
    uint32_t flags;
    bool strip;         /* the space-prefix removal is still pending */
    uint8_t pending[3]; /* the start of a UTF-8 character that has not completed */
    uint8_t n_pending;
};

tnd_status tnd_detokenizer_init(const tnd_tokenizer *tok, uint32_t flags, tnd_detokenizer **out) {
    if (out) *out = NULL;
    if (!tok || !out || (flags & ~(TND_DETOKENIZE_SPECIAL | TND_DETOKENIZE_KEEP_SPACE)))
        return tnd_fail(TND_ERR_INVALID_ARGUMENT, "tnd_detokenizer_init: NULL tokenizer or out, or unknown flags");
    tnd_detokenizer *d = tnd_alloc(&tok->allocator, sizeof *d);
    if (!d) return tnd_fail(TND_ERR_OUT_OF_MEMORY, "tnd_detokenizer_init: out of memory");
    d->tok = tok;
    d->flags = flags;
    d->strip = tnd_detok_strips_space(tok, flags);
    *out = d;
    return TND_OK;
}

void tnd_detokenizer_free(tnd_detokenizer *d) {
    if (!d) return;
    tnd_free(&d->tok->allocator, d);
}

tnd_status tnd_detokenizer_clone(const tnd_detokenizer *src, tnd_detokenizer **out) {
    if (out) *out = NULL;
    if (!src || !out) return tnd_fail(TND_ERR_INVALID_ARGUMENT, "tnd_detokenizer_clone: NULL stream or out");
    tnd_detokenizer *d = tnd_alloc(&src->tok->allocator, sizeof *d);
    if (!d) return tnd_fail(TND_ERR_OUT_OF_MEMORY, "tnd_detokenizer_clone: out of memory");
    *d = *src;
    *out = d;
    return TND_OK;
}

/* Whether the n (< expected length) bytes at s can still become a well-formed character. */
static bool valid_utf8_prefix(const uint8_t *s, size_t n) {
    if (n < 2) return true;
    uint8_t b = s[0], c = s[1];
    if ((b == 0xE0 && c < 0xA0) || (b == 0xED && c >= 0xA0)) return false;
    if ((b == 0xF0 && c < 0x90) || (b == 0xF4 && c >= 0x90)) return false;
    return true;
}

/* Length of the tail of s[0..n) to hold back: the start of a character that is well-formed so far but short. */
static size_t incomplete_tail(const uint8_t *s, size_t n) {
    for (size_t k = 1; k <= 3 && k <= n; k++) {
        uint8_t b = s[n - k];
        if ((b & 0xC0) == 0x80) continue; /* continuation byte: look further back */
        size_t want = tnd_utf8_expected_len(b);
        return (want > k && valid_utf8_prefix(s + n - k, k)) ? k : 0;
    }
    return 0;
}

int32_t tnd_detokenizer_push(tnd_detokenizer *d, int32_t token, char *buf, int32_t cap) {
    if (!d || cap < 0 || (!buf && cap > 0) || token < 0 || token >= d->tok->n_vocab) {
        tnd_fail(TND_ERR_INVALID_ARGUMENT, "tnd_detokenizer_push: NULL stream, a bad buffer or token %d out of range",
                 token);
        return TND_TOKENIZE_ERROR;
    }
    size_t n = 0;
    const char *p = piece_of(d->tok, token, d->flags, &n);
    bool strip = d->strip;
    apply_strip(&strip, &p, &n);
    size_t total = d->n_pending + n;
    uint8_t tail[3];
    size_t hold = 0;
    /* the held-back tail lies within the last 3 bytes of pending + piece */
    if (n >= 3) {
        hold = incomplete_tail((const uint8_t *)p + n - 3, 3);
        memcpy(tail, p + n - hold, hold);
    } else {
        uint8_t last[6];
        memcpy(last, d->pending, d->n_pending);
        memcpy(last + d->n_pending, p, n);
        hold = incomplete_tail(last, total);
        memcpy(tail, last + total - hold, hold);
    }
    size_t emit = total - hold;
    if (emit > (size_t)cap) return -(int32_t)emit;
    size_t from_pending = d->n_pending < emit ? d->n_pending : emit;
    if (from_pending) memcpy(buf, d->pending, from_pending);
    if (emit > from_pending) memcpy(buf + from_pending, p, emit - from_pending);
    memcpy(d->pending, tail, hold);
    d->n_pending = (uint8_t)hold;
    d->strip = strip;
    return (int32_t)emit;
}

int32_t tnd_detokenizer_finish(tnd_detokenizer *d, char *buf, int32_t cap) {
    if (!d || cap < 0 || (!buf && cap > 0)) {
        tnd_fail(TND_ERR_INVALID_ARGUMENT, "tnd_detokenizer_finish: NULL stream or a bad buffer");
        return TND_TOKENIZE_ERROR;
    }
    int32_t n = d->n_pending;
    if (n > cap) return -n;
    if (n) memcpy(buf, d->pending, (size_t)n);
    d->n_pending = 0;
    d->strip = tnd_detok_strips_space(d->tok, d->flags);
    return n;
}
