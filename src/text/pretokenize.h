/* pretokenize.h: the pre-tokenizers of byte-level BPE vocabularies: which regular expressions split the text
 * (chosen by tokenizer.ggml.pre), compiled once with PCRE2 (JIT), and the per-call state that runs them. */
#ifndef TND_TEXT_PRETOKENIZE_H
#define TND_TEXT_PRETOKENIZE_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "tandem.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum { TND_PRETOK_MAX_REGEX = 6 };

/* One pre-tokenizer as its original tokenizer defines it. The regexes run in order; each one splits every piece
 * the previous ones produced into its matches and the text between them (both kept, empty ones dropped). */
typedef struct tnd_pretok_def {
    const char *name;                            /* the canonical tokenizer.ggml.pre value */
    const char *regexes[TND_PRETOK_MAX_REGEX];   /* PCRE2 syntax (UTF + UCP); unused slots NULL */
    bool nfc;           /* the original tokenizer normalizes text to NFC before splitting */
    bool ignore_merges; /* a piece that is one whole token is taken as that token without merging */
    bool add_bos;       /* default for tokenizer.ggml.add_bos_token when the file does not say */
} tnd_pretok_def;

/* The definition for a tokenizer.ggml.pre value (exact, case-sensitive), or NULL if tandem does not know it. */
const tnd_pretok_def *tnd_pretok_find(const char *name, size_t len);

/* Compiled regexes of one definition. */
typedef struct tnd_pretok {
    const tnd_pretok_def *def;
    int n_regex;
    pcre2_code *code[TND_PRETOK_MAX_REGEX];
    uint32_t ovector_pairs; /* enough for the regex with the most capture groups */
    pcre2_general_context *gctx;
} tnd_pretok;

/* Compiles every regex of `def` (UTF, UCP, invalid UTF-8 allowed) and JIT-compiles it when the platform can.
 * TND_ERR_INTERNAL if a regex does not compile (the message quotes PCRE2's error and the offset),
 * TND_ERR_OUT_OF_MEMORY. On failure *out holds nothing that needs releasing. */
tnd_status tnd_pretok_compile(const tnd_pretok_def *def, const tnd_allocator *allocator, tnd_pretok *out);

/* Releases the compiled regexes. Accepts a zeroed struct. */
void tnd_pretok_release(tnd_pretok *p);

/* Per-call state: PCRE2 match data and JIT stack, and the buffers of NFC normalization. One state serves one
 * call at a time; the tokenizer keeps one and makes more when calls overlap. */
typedef struct tnd_pretok_state {
    pcre2_match_data *match;
    pcre2_match_context *mctx;
    pcre2_jit_stack *jit_stack;
    int32_t *codepoints; /* NFC work buffer */
    size_t codepoints_cap;
    char *text;          /* NFC output */
    size_t text_cap;
    const tnd_allocator *allocator;
} tnd_pretok_state;

tnd_status tnd_pretok_state_init(const tnd_pretok *p, const tnd_allocator *allocator, tnd_pretok_state *s);
void tnd_pretok_state_release(tnd_pretok_state *s);

/* Receives one piece of the split text (len >= 1). A status other than TND_OK stops the split and is returned. */
typedef tnd_status (*tnd_piece_fn)(void *user, const char *piece, size_t len);

/* Splits `len` bytes of text into pieces with every regex of p in order, calling fn for each final piece from
 * left to right; the pieces concatenate to the text. Bytes that are not well-formed UTF-8 never match a regex
 * item, so they end up in pieces between matches. TND_ERR_UNSUPPORTED if PCRE2 gives up on the text (a match or
 * JIT stack limit; the message says which), or the status fn returned. */
tnd_status tnd_pretok_split(const tnd_pretok *p, tnd_pretok_state *s, const char *text, size_t len,
                            tnd_piece_fn fn, void *user);

/* NFC normalization of text: sets *out and *out_len to the normalized bytes, which are either `text` itself (nothing
 * to change: pure ASCII) or s->text. Bytes that are not well-formed UTF-8 are kept as they are and normalization
 * runs on the well-formed stretches between them. TND_ERR_OUT_OF_MEMORY, TND_ERR_INTERNAL (utf8proc failure). */
tnd_status tnd_text_nfc(tnd_pretok_state *s, const char *text, size_t len, const char **out, size_t *out_len);

#endif
