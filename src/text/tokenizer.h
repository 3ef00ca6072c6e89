/* tokenizer.h: the tokenizer object shared by its parts: vocabulary tables (tokenizer.c), SentencePiece-style
 * merges (spm.c), byte-level BPE (bpe.c), the pre-tokenizers (pretokenize.c) and decoding (detokenize.c). */
#ifndef TND_TEXT_TOKENIZER_H
#define TND_TEXT_TOKENIZER_H

#include "tandem.h"

#include "core/log.h"
#include "gguf/gguf.h"
#include "text/pretokenize.h"
#include "text/text_util.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

typedef enum tnd_vocab_kind {
    TND_VOCAB_SPM, /* tokenizer.ggml.model "llama": merges driven by token scores, <0xNN> byte fallback */
    TND_VOCAB_BPE  /* tokenizer.ggml.model "gpt2": byte-level BPE with merge ranks and a regex pre-tokenizer */
} tnd_vocab_kind;

/* Per-token flags (tnd_tokenizer.flags). */
enum {
    TND_TOKF_EOG = 1,        /* ends generation */
    TND_TOKF_MERGEABLE = 2,  /* SPM: a merge may produce it (normal, user-defined or undefined type) */
    TND_TOKF_HIDDEN = 4,     /* decoding shows it only with TND_DETOKENIZE_SPECIAL (control, unknown, unused) */
};

/* Text -> id: open addressing; a slot is (upper 32 bits of the hash) << 32 | (id + 1), 0 = empty. */
typedef struct tnd_vocab_map {
    uint64_t *slots;
    uint64_t mask;
} tnd_vocab_map;

/* (left id, right id) -> merge rank and merged id: open addressing, key UINT64_MAX = empty. */
typedef struct tnd_merge_slot {
    uint64_t key;
    int32_t rank;
    int32_t merged;
} tnd_merge_slot;

typedef struct tnd_merge_map {
    tnd_merge_slot *slots;
    uint64_t mask;
    int64_t count;
} tnd_merge_map;

/* A byte trie of the tokens matched whole in text (control, unknown, user-defined). Children of a node are a
 * sibling list; the root's children are indexed by byte in special_root. */
typedef struct tnd_trie_node {
    int32_t first_child;
    int32_t next_sibling;
    int32_t token; /* token ending here, or -1 */
    uint8_t byte;
} tnd_trie_node;

/* One symbol of a merge loop: a stretch of the text, linked to its neighbours. */
typedef struct tnd_symbol {
    int32_t prev, next; /* -1 at the ends */
    uint32_t start, len;
    int32_t id; /* BPE: its token (-1: a byte without a token, -2: merged away) */
} tnd_symbol;

/* Working memory of one encode call. */
typedef struct tnd_tok_scratch {
    tnd_pretok_state pre;
    char *text; /* SPM: the escaped text; BPE: the byte-level form of a piece */
    size_t text_cap;
    tnd_symbol *symbols;
    size_t symbols_cap;
    tnd_merge_heap heap;
} tnd_tok_scratch;

struct tnd_tokenizer {
    tnd_allocator allocator;
    tnd_logger log;
    tnd_vocab_kind kind;
    int32_t n_vocab;
    const tnd_gguf_str *text; /* n_vocab token strings, borrowed from the model's metadata */
    float *scores;            /* SPM: n_vocab merge scores */
    uint8_t *type;            /* n_vocab GGUF token types (tnd_token_type values) */
    uint8_t *flags;           /* n_vocab TND_TOKF_* */
    tnd_vocab_map map;
    int32_t special[TND_TOKEN_SPECIAL_COUNT]; /* -1 = none */
    bool add_bos, add_eos, add_space_prefix;
    int32_t byte_token[256]; /* token of each byte value (SPM <0xNN>, BPE byte-level character), -1 = none */
    /* SPM: bit a * 256 + b is set when bytes a, b stand next to each other inside a token a merge may produce;
     * where the text has a pair without its bit, no merge can cross, and the two sides are merged separately */
    uint64_t *spm_joins;

    /* byte-level BPE */
    tnd_merge_map merges;
    const tnd_pretok_def *pre_def;
    tnd_pretok pre;
    uint8_t byte_char[256][2]; /* UTF-8 of the character standing for each byte (1 or 2 bytes) */
    uint8_t byte_char_len[256];
    int16_t char_byte[324];    /* inverse: code point -> byte, -1 for code points that stand for none */

    /* tokens matched whole in text */
    tnd_trie_node *trie;
    int32_t trie_count;
    int32_t special_root[256]; /* first-level trie node per byte, -1 = none */
    uint8_t special_first[256]; /* bit 1: a user-defined token starts with the byte; bit 2: a control one */

    /* decoded pieces: token i is piece_bytes[piece_off[i] .. piece_off[i + 1]) */
    uint32_t *piece_off;
    char *piece_bytes;

    /* one reusable scratch; overlapping calls allocate their own */
    atomic_flag scratch_busy;
    tnd_tok_scratch *scratch;
};

/* Output of an encode: tokens beyond cap are counted, not stored. */
typedef struct tnd_tok_out {
    int32_t *tokens;
    int64_t cap;
    int64_t n;
} tnd_tok_out;

static inline void tnd_tok_emit(tnd_tok_out *out, int32_t id) {
    if (out->n < out->cap) out->tokens[out->n] = id;
    out->n++;
}

/* Id of the token whose text is exactly s[0..n), or -1. */
static inline int32_t tnd_vocab_find(const tnd_tokenizer *t, const char *s, size_t n) {
    if (!t->map.slots) return -1;
    uint64_t h = tnd_hash_bytes(s, n);
    uint32_t tag = (uint32_t)(h >> 32);
    for (uint64_t i = h & t->map.mask;; i = (i + 1) & t->map.mask) {
        uint64_t v = t->map.slots[i];
        if (!v) return -1;
        if ((uint32_t)(v >> 32) == tag) {
            int32_t id = (int32_t)((uint32_t)v - 1);
            if (t->text[id].len == n && memcmp(t->text[id].ptr, s, n) == 0) return id;
        }
    }
}

/* Symbol storage of at least n entries in the scratch; false when memory runs out. */
bool tnd_tok_scratch_symbols(tnd_tokenizer *t, tnd_tok_scratch *sc, size_t n);

/* spm.c: encodes one stretch of text (no special tokens inside) with SentencePiece-style merges; `prefix` puts
 * the space marker in front (add_space_prefix at the start of the text or after a special token). */
tnd_status tnd_spm_encode(tnd_tokenizer *t, tnd_tok_scratch *sc, const char *text, size_t len, bool prefix,
                          tnd_tok_out *out);

/* spm.c: byte tokens of an SPM vocabulary (<0xNN>, else the one-byte token) and the table of byte pairs merges
 * can join. TND_ERR_OUT_OF_MEMORY. */
tnd_status tnd_spm_init(tnd_tokenizer *t);

/* tnd_tokenizer_encode where control and unknown tokens (with TND_TOKENIZE_PARSE_SPECIAL) match only in text whose
 * bytes are all marked in marks[0..len) (NULL: everywhere): a chat format's own markers, never a message's content. */
int32_t tnd_tokenizer_encode_marked(const tnd_tokenizer *tok, const char *text, size_t len, const uint8_t *marks,
                                    uint32_t flags, int32_t *tokens, int32_t cap);

/* bpe.c: byte-level tables and the merge table from tokenizer.ggml.merges. TND_ERR_TYPE/FORMAT, OOM. */
tnd_status tnd_bpe_init(tnd_tokenizer *t, const tnd_gguf *g);
void tnd_bpe_release(tnd_tokenizer *t);

/* bpe.c: encodes one stretch of text (no special tokens inside): NFC if the pre-tokenizer asks, split, merge. */
tnd_status tnd_bpe_encode(tnd_tokenizer *t, tnd_tok_scratch *sc, const char *text, size_t len, tnd_tok_out *out);

/* detokenize.c: builds the decoded piece of every token. TND_ERR_FORMAT (a byte token that is not <0xNN>), OOM. */
tnd_status tnd_detok_build_pieces(tnd_tokenizer *t);

/* Whether decoding with these TND_DETOKENIZE_* flags removes one leading space from the first non-empty piece
 * (the SPM space prefix). */
bool tnd_detok_strips_space(const tnd_tokenizer *t, uint32_t flags);

#endif
