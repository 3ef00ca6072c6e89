/* tokenizer.c: building a tokenizer from GGUF metadata (vocabulary, types, special tokens, flags), matching
 * special tokens in text, the public encode entry point, and the vocabulary queries. */
#include "text/tokenizer.h"

#include "core/alloc.h"
#include "core/error.h"
#include "model/model.h"

#include <string.h>

/* ---------------------------------------------------------------------------------------------------------------
 * Metadata helpers
 * ------------------------------------------------------------------------------------------------------------- */

/* *out = the boolean at `key` if present (left unchanged when absent). TND_ERR_TYPE if it is not a bool/int. */
static tnd_status meta_bool(const tnd_gguf *g, const char *key, bool *out) {
    if (!tnd_gguf_get(g, key)) return TND_OK;
    int64_t v = 0;
    tnd_status st = tnd_gguf_get_int(g, key, &v);
    if (st) return st;
    *out = v != 0;
    return TND_OK;
}

/* Optional string at `key`: *found = false when absent. TND_ERR_TYPE if it is not a string. */
static tnd_status meta_str(const tnd_gguf *g, const char *key, tnd_gguf_str *out, bool *found) {
    *found = tnd_gguf_get(g, key) != NULL;
    if (!*found) return TND_OK;
    return tnd_gguf_get_str(g, key, out);
}

/* ---------------------------------------------------------------------------------------------------------------
 * Vocabulary map
 * ------------------------------------------------------------------------------------------------------------- */

/* Fills the text -> id map. Empty strings are left out (no text can match them); a string present twice is a
 * format error, as no encoder could tell which id it means. */
static tnd_status build_vocab_map(tnd_tokenizer *t) {
    uint64_t cap = 16;
    while (cap < (uint64_t)t->n_vocab * 2) cap *= 2;
    t->map.slots = tnd_alloc_array(&t->allocator, cap, sizeof *t->map.slots);
    if (!t->map.slots) return tnd_fail(TND_ERR_OUT_OF_MEMORY, "tokenizer: out of memory for the vocabulary map");
    t->map.mask = cap - 1;
    for (int32_t id = 0; id < t->n_vocab; id++) {
        const tnd_gguf_str *s = &t->text[id];
        if (s->len == 0) continue;
        int32_t dup = tnd_vocab_find(t, s->ptr, s->len);
        if (dup >= 0)
            return tnd_fail(TND_ERR_FORMAT, "tokenizer.ggml.tokens: tokens %d and %d are the same string '%.*s'",
                            dup, id, (int)(s->len > 64 ? 64 : s->len), s->ptr);
        uint64_t h = tnd_hash_bytes(s->ptr, s->len);
        uint64_t i = h & t->map.mask;
        while (t->map.slots[i]) i = (i + 1) & t->map.mask;
        t->map.slots[i] = (h & 0xFFFFFFFF00000000ull) | (uint64_t)(uint32_t)(id + 1);
    }
    return TND_OK;
}

/* ---------------------------------------------------------------------------------------------------------------
 * Special tokens: ids from metadata, end-of-generation set
 * ------------------------------------------------------------------------------------------------------------- */

static const char *const special_keys[TND_TOKEN_SPECIAL_COUNT] = {
    [TND_TOKEN_BOS] = "tokenizer.ggml.bos_token_id",         [TND_TOKEN_EOS] = "tokenizer.ggml.eos_token_id",
    [TND_TOKEN_EOT] = "tokenizer.ggml.eot_token_id",         [TND_TOKEN_EOM] = "tokenizer.ggml.eom_token_id",
    [TND_TOKEN_UNK] = "tokenizer.ggml.unknown_token_id",     [TND_TOKEN_SEP] = "tokenizer.ggml.seperator_token_id",
    [TND_TOKEN_PAD] = "tokenizer.ggml.padding_token_id",     [TND_TOKEN_MASK] = "tokenizer.ggml.mask_token_id",
    [TND_TOKEN_FIM_PRE] = "tokenizer.ggml.fim_pre_token_id", [TND_TOKEN_FIM_SUF] = "tokenizer.ggml.fim_suf_token_id",
    [TND_TOKEN_FIM_MID] = "tokenizer.ggml.fim_mid_token_id", [TND_TOKEN_FIM_PAD] = "tokenizer.ggml.fim_pad_token_id",
    [TND_TOKEN_FIM_REP] = "tokenizer.ggml.fim_rep_token_id", [TND_TOKEN_FIM_SEP] = "tokenizer.ggml.fim_sep_token_id",
};

/* Older files name the first three fill-in-the-middle tokens differently. */
static const struct {
    tnd_special_token which;
    const char *key;
} special_legacy_keys[] = {
    {TND_TOKEN_FIM_PRE, "tokenizer.ggml.prefix_token_id"},
    {TND_TOKEN_FIM_SUF, "tokenizer.ggml.suffix_token_id"},
    {TND_TOKEN_FIM_MID, "tokenizer.ggml.middle_token_id"},
};

/* Reads one special id if present. An id outside the vocabulary is logged and ignored (the default stays). */
static tnd_status read_special_id(tnd_tokenizer *t, const tnd_gguf *g, tnd_special_token which, const char *key) {
    if (!tnd_gguf_get(g, key)) return TND_OK;
    int64_t v = 0;
    tnd_status st = tnd_gguf_get_int(g, key, &v);
    if (st) return st;
    if (v < 0 || v >= t->n_vocab) {
        tnd_log(&t->log, TND_LOG_WARN, "tokenizer: %s = %lld is outside the vocabulary (%d tokens); ignored", key,
                (long long)v, t->n_vocab);
        return TND_OK;
    }
    t->special[which] = (int32_t)v;
    return TND_OK;
}

/* "<｜end▁of▁sentence｜>" (full-width bars, U+2581 between the words): DeepSeek's end of a reply. */
#define DEEPSEEK_END_OF_SENTENCE ("<\xef\xbd\x9c" "end\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>")

/* Vocabulary strings that mark the end of a turn, in order of preference when the file names no EOT id. */
static const char *const eot_texts[] = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|end_of_text|>", "<EOT>", "_<EOT>",
    DEEPSEEK_END_OF_SENTENCE, "<end_of_utterance>",
};

/* Vocabulary strings whose token ends generation, besides EOS/EOT/EOM. */
static const char *const eog_texts[] = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<end_of_turn>", "<|endoftext|>",
    "<|eom_id|>", "<EOT>", "_<EOT>", "<|end_of_text|>", "<end_of_utterance>",
    DEEPSEEK_END_OF_SENTENCE,
};

static int32_t find_cstr(const tnd_tokenizer *t, const char *s) { return tnd_vocab_find(t, s, strlen(s)); }

static void mark_eog(tnd_tokenizer *t) {
    if (t->special[TND_TOKEN_EOT] < 0) {
        for (size_t i = 0; i < sizeof eot_texts / sizeof eot_texts[0] && t->special[TND_TOKEN_EOT] < 0; i++)
            t->special[TND_TOKEN_EOT] = find_cstr(t, eot_texts[i]);
    }
    if (t->special[TND_TOKEN_EOM] < 0) t->special[TND_TOKEN_EOM] = find_cstr(t, "<|eom_id|>");
    for (size_t i = 0; i < sizeof eog_texts / sizeof eog_texts[0]; i++) {
        int32_t id = find_cstr(t, eog_texts[i]);
        if (id >= 0) t->flags[id] |= TND_TOKF_EOG;
    }
    static const tnd_special_token always[] = {TND_TOKEN_EOS, TND_TOKEN_EOT, TND_TOKEN_EOM, TND_TOKEN_FIM_PAD,
                                               TND_TOKEN_FIM_REP, TND_TOKEN_FIM_SEP};
    for (size_t i = 0; i < sizeof always / sizeof always[0]; i++)
        if (t->special[always[i]] >= 0) t->flags[t->special[always[i]]] |= TND_TOKF_EOG;
    /* harmony-style vocabularies (<|return|> and <|call|>) use <|end|> between messages, not at the end */
    int32_t end = find_cstr(t, "<|end|>");
    if (end >= 0 && find_cstr(t, "<|return|>") >= 0 && find_cstr(t, "<|call|>") >= 0 &&
        end != t->special[TND_TOKEN_EOS])
        t->flags[end] &= (uint8_t)~TND_TOKF_EOG;
}

/* ---------------------------------------------------------------------------------------------------------------
 * Trie of the tokens matched whole in text
 * ------------------------------------------------------------------------------------------------------------- */

static tnd_status trie_insert(tnd_tokenizer *t, size_t *cap, int32_t id) {
    const uint8_t *s = (const uint8_t *)t->text[id].ptr;
    size_t n = t->text[id].len;
    int32_t node = -1; /* -1: the root, whose children are special_root[] */
    for (size_t i = 0; i < n; i++) {
        int32_t child = node < 0 ? t->special_root[s[i]] : t->trie[node].first_child;
        if (node >= 0)
            while (child >= 0 && t->trie[child].byte != s[i]) child = t->trie[child].next_sibling;
        if (child < 0) {
            if (!tnd_text_reserve(&t->allocator, (void **)&t->trie, cap, (size_t)t->trie_count + 1, sizeof *t->trie))
                return tnd_fail(TND_ERR_OUT_OF_MEMORY, "tokenizer: out of memory for the special-token trie");
            child = t->trie_count++;
            t->trie[child] = (tnd_trie_node){.first_child = -1, .next_sibling = -1, .token = -1, .byte = s[i]};
            if (node < 0) {
                t->special_root[s[i]] = child;
            } else {
                t->trie[child].next_sibling = t->trie[node].first_child;
                t->trie[node].first_child = child;
            }
        }
        node = child;
    }
    t->trie[node].token = id;
    return TND_OK;
}

static tnd_status build_special_trie(tnd_tokenizer *t) {
    size_t cap = 0;
    for (int b = 0; b < 256; b++) t->special_root[b] = -1;
    for (int32_t id = 0; id < t->n_vocab; id++) {
        uint8_t type = t->type[id];
        uint8_t bit = type == TND_TOKEN_TYPE_USER_DEFINED ? 1
                      : (type == TND_TOKEN_TYPE_CONTROL || type == TND_TOKEN_TYPE_UNKNOWN) ? 2 : 0;
        if (!bit || t->text[id].len == 0) continue;
        tnd_status st = trie_insert(t, &cap, id);
        if (st) return st;
        t->special_first[(uint8_t)t->text[id].ptr[0]] |= bit;
    }
    return TND_OK;
}

/* The longest token allowed here that starts at s[0] (user-defined always, control/unknown with parse_special):
 * its id and *match_len, or -1. */
static int32_t match_special(const tnd_tokenizer *t, const uint8_t *s, size_t n, bool parse_special,
                             size_t *match_len) {
    int32_t node = t->special_root[s[0]], best = -1;
    for (size_t i = 1; node >= 0; i++) {
        int32_t id = t->trie[node].token;
        if (id >= 0 && (parse_special || t->type[id] == TND_TOKEN_TYPE_USER_DEFINED)) {
            best = id;
            *match_len = i;
        }
        if (i == n) break;
        int32_t child = t->trie[node].first_child;
        while (child >= 0 && t->trie[child].byte != s[i]) child = t->trie[child].next_sibling;
        node = child;
    }
    return best;
}

/* ---------------------------------------------------------------------------------------------------------------
 * Scratch
 * ------------------------------------------------------------------------------------------------------------- */

/* Above this many bytes a scratch gives its buffers back after the call instead of keeping them. */
enum { SCRATCH_KEEP_BYTES = 8 * 1024 * 1024 };

static void scratch_free(tnd_tokenizer *t, tnd_tok_scratch *sc) {
    if (!sc) return;
    tnd_pretok_state_release(&sc->pre);
    tnd_free(&t->allocator, sc->text);
    tnd_free(&t->allocator, sc->symbols);
    tnd_free(&t->allocator, sc->heap.items);
    tnd_free(&t->allocator, sc);
}

static tnd_tok_scratch *scratch_new(tnd_tokenizer *t) {
    tnd_tok_scratch *sc = tnd_alloc(&t->allocator, sizeof *sc);
    if (!sc) return NULL;
    if (tnd_pretok_state_init(&t->pre, &t->allocator, &sc->pre) != TND_OK) {
        tnd_free(&t->allocator, sc);
        return NULL;
    }
    return sc;
}

/* Drops buffers that grew large on a long text, so that one long call does not pin its memory. */
static void scratch_trim(tnd_tokenizer *t, tnd_tok_scratch *sc) {
    if (sc->text_cap > SCRATCH_KEEP_BYTES) {
        tnd_free(&t->allocator, sc->text);
        sc->text = NULL;
        sc->text_cap = 0;
    }
    if (sc->symbols_cap * sizeof *sc->symbols > SCRATCH_KEEP_BYTES) {
        tnd_free(&t->allocator, sc->symbols);
        sc->symbols = NULL;
        sc->symbols_cap = 0;
    }
    if (sc->heap.cap * sizeof *sc->heap.items > SCRATCH_KEEP_BYTES) {
        tnd_free(&t->allocator, sc->heap.items);
        sc->heap = (tnd_merge_heap){0};
    }
    if (sc->pre.text_cap > SCRATCH_KEEP_BYTES || sc->pre.codepoints_cap * 4 > SCRATCH_KEEP_BYTES) {
        tnd_free(&t->allocator, sc->pre.text);
        tnd_free(&t->allocator, sc->pre.codepoints);
        sc->pre.text = NULL;
        sc->pre.codepoints = NULL;
        sc->pre.text_cap = sc->pre.codepoints_cap = 0;
    }
}

bool tnd_tok_scratch_symbols(tnd_tokenizer *t, tnd_tok_scratch *sc, size_t n) {
    return tnd_text_reserve(&t->allocator, (void **)&sc->symbols, &sc->symbols_cap, n, sizeof *sc->symbols);
}

/* ---------------------------------------------------------------------------------------------------------------
 * Construction
 * ------------------------------------------------------------------------------------------------------------- */

/* Token types and scores. Without a type array every token is normal; without scores all are 0. */
static tnd_status read_types_and_scores(tnd_tokenizer *t, const tnd_gguf *g) {
    t->type = tnd_alloc(&t->allocator, (size_t)t->n_vocab);
    t->flags = tnd_alloc(&t->allocator, (size_t)t->n_vocab);
    if (!t->type || !t->flags) return tnd_fail(TND_ERR_OUT_OF_MEMORY, "tokenizer: out of memory");
    memset(t->type, TND_TOKEN_TYPE_NORMAL, (size_t)t->n_vocab);
    const tnd_gguf_value *v = tnd_gguf_get(g, "tokenizer.ggml.token_type");
    if (v) {
        tnd_status st = tnd_gguf_get_array(g, "tokenizer.ggml.token_type", TND_VALUE_I32, &v);
        if (st) return st;
        if (v->count < (uint64_t)t->n_vocab)
            return tnd_fail(TND_ERR_FORMAT, "tokenizer.ggml.token_type has %llu entries for %d tokens",
                            (unsigned long long)v->count, t->n_vocab);
        for (int32_t i = 0; i < t->n_vocab; i++) {
            int64_t ty = 0;
            tnd_gguf_array_int(v, (uint64_t)i, &ty);
            t->type[i] = (ty >= TND_TOKEN_TYPE_NORMAL && ty <= TND_TOKEN_TYPE_BYTE) ? (uint8_t)ty
                                                                                   : TND_TOKEN_TYPE_UNDEFINED;
        }
    }
    /* an undefined type (0, or a value GGUF does not define) is read as normal: it says nothing special */
    for (int32_t i = 0; i < t->n_vocab; i++) {
        uint8_t ty = t->type[i];
        bool normal = ty == TND_TOKEN_TYPE_NORMAL || ty == TND_TOKEN_TYPE_UNDEFINED;
        if (normal || ty == TND_TOKEN_TYPE_USER_DEFINED) t->flags[i] |= TND_TOKF_MERGEABLE;
        if (ty == TND_TOKEN_TYPE_CONTROL || ty == TND_TOKEN_TYPE_UNKNOWN || ty == TND_TOKEN_TYPE_UNUSED)
            t->flags[i] |= TND_TOKF_HIDDEN;
    }
    if (t->kind != TND_VOCAB_SPM) return TND_OK;
    t->scores = tnd_alloc_array(&t->allocator, (size_t)t->n_vocab, sizeof *t->scores);
    if (!t->scores) return tnd_fail(TND_ERR_OUT_OF_MEMORY, "tokenizer: out of memory");
    v = tnd_gguf_get(g, "tokenizer.ggml.scores");
    if (!v) return TND_OK;
    if (v->type != TND_VALUE_ARRAY || (v->elem_type != TND_VALUE_F32 && v->elem_type != TND_VALUE_I32))
        return tnd_fail(TND_ERR_TYPE, "tokenizer.ggml.scores is not an array of f32 or i32");
    if (v->count < (uint64_t)t->n_vocab)
        return tnd_fail(TND_ERR_FORMAT, "tokenizer.ggml.scores has %llu entries for %d tokens",
                        (unsigned long long)v->count, t->n_vocab);
    for (int32_t i = 0; i < t->n_vocab; i++) {
        double s = 0;
        tnd_gguf_array_float(v, (uint64_t)i, &s);
        t->scores[i] = (float)s;
    }
    return TND_OK;
}

/* Kind, pre-tokenizer and the defaults that depend on them, then what the file overrides. */
static tnd_status read_kind_and_flags(tnd_tokenizer *t, const tnd_gguf *g) {
    tnd_gguf_str model, pre;
    bool has_pre = false;
    tnd_status st = tnd_gguf_get_str(g, "tokenizer.ggml.model", &model);
    if (st) return st;
    if ((st = meta_str(g, "tokenizer.ggml.pre", &pre, &has_pre))) return st;
    if (model.len == 5 && !memcmp(model.ptr, "llama", 5)) {
        t->kind = TND_VOCAB_SPM;
        t->add_bos = true;
        t->add_space_prefix = true;
        t->special[TND_TOKEN_UNK] = 0;
        t->special[TND_TOKEN_BOS] = 1;
        t->special[TND_TOKEN_EOS] = 2;
    } else if (model.len == 4 && !memcmp(model.ptr, "gpt2", 4)) {
        t->kind = TND_VOCAB_BPE;
        if (!has_pre)
            return tnd_fail(TND_ERR_NOT_FOUND, "tokenizer.ggml.pre is missing: tandem does not guess the "
                                               "pre-tokenizer of a gpt2 vocabulary");
        t->pre_def = tnd_pretok_find(pre.ptr, (size_t)pre.len);
        if (!t->pre_def)
            return tnd_fail(TND_ERR_UNSUPPORTED, "tokenizer.ggml.pre '%.*s' is not a pre-tokenizer tandem knows",
                            (int)(pre.len > 64 ? 64 : pre.len), pre.ptr);
        t->add_bos = t->pre_def->add_bos;
    } else {
        return tnd_fail(TND_ERR_UNSUPPORTED, "tokenizer.ggml.model '%.*s' is not a tokenizer tandem knows "
                                             "(it knows llama and gpt2)",
                        (int)(model.len > 64 ? 64 : model.len), model.ptr);
    }
    for (int i = 0; i < TND_TOKEN_SPECIAL_COUNT; i++) {
        if (t->special[i] >= t->n_vocab) t->special[i] = -1; /* a default the vocabulary is too small for */
        if ((st = read_special_id(t, g, (tnd_special_token)i, special_keys[i]))) return st;
    }
    for (size_t i = 0; i < sizeof special_legacy_keys / sizeof special_legacy_keys[0]; i++)
        if (t->special[special_legacy_keys[i].which] < 0 &&
            (st = read_special_id(t, g, special_legacy_keys[i].which, special_legacy_keys[i].key)))
            return st;
    if ((st = meta_bool(g, "tokenizer.ggml.add_bos_token", &t->add_bos))) return st;
    if ((st = meta_bool(g, "tokenizer.ggml.add_eos_token", &t->add_eos))) return st;
    if ((st = meta_bool(g, "tokenizer.ggml.add_space_prefix", &t->add_space_prefix))) return st;
    bool remove_extra_ws = false;
    if ((st = meta_bool(g, "tokenizer.ggml.remove_extra_whitespaces", &remove_extra_ws))) return st;
    if (remove_extra_ws)
        return tnd_fail(TND_ERR_UNSUPPORTED, "tokenizer.ggml.remove_extra_whitespaces is set: tandem does not "
                                             "implement that normalization");
    if (t->add_bos && t->special[TND_TOKEN_BOS] < 0)
        return tnd_fail(TND_ERR_FORMAT, "the vocabulary adds BOS (tokenizer.ggml.add_bos_token, or its default for "
                                        "this tokenizer) but has no valid tokenizer.ggml.bos_token_id");
    if (t->add_eos && t->special[TND_TOKEN_EOS] < 0)
        return tnd_fail(TND_ERR_FORMAT, "the vocabulary adds EOS (tokenizer.ggml.add_eos_token) but has no valid "
                                        "tokenizer.ggml.eos_token_id");
    return TND_OK;
}

/* Logs the bytes that this vocabulary cannot encode (dropped, or the unknown token for SPM). */
static void warn_missing_bytes(const tnd_tokenizer *t) {
    int missing = 0, first = -1;
    for (int b = 0; b < 256; b++) {
        if (t->byte_token[b] < 0) {
            if (first < 0) first = b;
            missing++;
        }
    }
    if (missing)
        tnd_log(&t->log, TND_LOG_WARN,
                "tokenizer: %d byte values have no token (first: 0x%02X); text containing them loses those bytes%s",
                missing, first, t->kind == TND_VOCAB_SPM ? " (they become the unknown token)" : "");
}

tnd_status tnd_tokenizer_init(const tnd_model *model, tnd_tokenizer **out) {
    if (out) *out = NULL;
    if (!model || !out) return tnd_fail(TND_ERR_INVALID_ARGUMENT, "tnd_tokenizer_init: NULL model or out");
    const tnd_gguf *g = model->gguf;
    tnd_tokenizer *t = tnd_alloc(&model->allocator, sizeof *t);
    if (!t) return tnd_fail(TND_ERR_OUT_OF_MEMORY, "tokenizer: out of memory");
    t->allocator = model->allocator;
    t->log = model->log;
    atomic_flag_clear(&t->scratch_busy);
    for (int i = 0; i < TND_TOKEN_SPECIAL_COUNT; i++) t->special[i] = -1;
    for (int b = 0; b < 256; b++) t->byte_token[b] = -1;

    const tnd_gguf_value *tokens = NULL;
    tnd_status st = tnd_gguf_get_array(g, "tokenizer.ggml.tokens", TND_VALUE_STRING, &tokens);
    if (st) goto cleanup;
    if (tokens->count == 0 || tokens->count >= (uint64_t)INT32_MAX) {
        st = tnd_fail(TND_ERR_FORMAT, "tokenizer.ggml.tokens has %llu entries",
                      (unsigned long long)tokens->count);
        goto cleanup;
    }
    t->n_vocab = (int32_t)tokens->count;
    t->text = tokens->strings;
    if ((st = read_kind_and_flags(t, g))) goto cleanup;
    if ((st = read_types_and_scores(t, g))) goto cleanup;
    if ((st = build_vocab_map(t))) goto cleanup;
    mark_eog(t);
    if (t->kind == TND_VOCAB_BPE) {
        if ((st = tnd_pretok_compile(t->pre_def, &t->allocator, &t->pre))) goto cleanup;
        if ((st = tnd_bpe_init(t, g))) goto cleanup;
    } else if ((st = tnd_spm_init(t))) {
        goto cleanup;
    }
    warn_missing_bytes(t);
    if ((st = build_special_trie(t))) goto cleanup;
    if ((st = tnd_detok_build_pieces(t))) goto cleanup;
    t->scratch = scratch_new(t);
    if (!t->scratch) st = tnd_fail(TND_ERR_OUT_OF_MEMORY, "tokenizer: out of memory for the work buffers");
cleanup:
    if (st) {
        tnd_tokenizer_free(t);
        return st;
    }
    *out = t;
    return TND_OK;
}

void tnd_tokenizer_free(tnd_tokenizer *t) {
    if (!t) return;
    tnd_allocator a = t->allocator;
    scratch_free(t, t->scratch);
    tnd_bpe_release(t);
    tnd_pretok_release(&t->pre);
    tnd_free(&a, t->scores);
    tnd_free(&a, t->spm_joins);
    tnd_free(&a, t->type);
    tnd_free(&a, t->flags);
    tnd_free(&a, t->map.slots);
    tnd_free(&a, t->trie);
    tnd_free(&a, t->piece_off);
    tnd_free(&a, t->piece_bytes);
    tnd_free(&a, t);
}

/* ---------------------------------------------------------------------------------------------------------------
 * Encoding
 * ------------------------------------------------------------------------------------------------------------- */

/* Encodes one stretch of text between special tokens. */
static tnd_status encode_text(tnd_tokenizer *t, tnd_tok_scratch *sc, const char *text, size_t len, bool after_special,
                              tnd_tok_out *out) {
    if (t->kind == TND_VOCAB_SPM) return tnd_spm_encode(t, sc, text, len, t->add_space_prefix && after_special, out);
    return tnd_bpe_encode(t, sc, text, len, out);
}

/* How many bytes from `at` are marked, at most `n`. */
static size_t marked_run(const uint8_t *marks, size_t at, size_t n) {
    size_t k = 0;
    while (k < n && marks[at + k]) k++;
    return k;
}

/* Splits the text at special tokens (leftmost match first, then the longest) and encodes the stretches between.
 * marks (or NULL): control and unknown tokens match only where every byte of theirs is marked (text a chat format
 * wrote, not a message's content); user-defined tokens match anywhere, as in plain text. */
static tnd_status encode_all(tnd_tokenizer *t, tnd_tok_scratch *sc, const char *text, size_t len, bool parse_special,
                             const uint8_t *marks, tnd_tok_out *out) {
    const uint8_t *s = (const uint8_t *)text;
    bool after_special = true; /* the start of the text counts as following a special token */
    size_t stretch = 0;
    tnd_status st = TND_OK;
    if (t->trie_count > 0) {
        for (size_t i = 0; i < len;) {
            size_t match_len = 0;
            int32_t id = -1;
            if (!marks || !parse_special) {
                if (t->special_first[s[i]] & (parse_special ? 3 : 1))
                    id = match_special(t, s + i, len - i, parse_special, &match_len);
            } else if (t->special_first[s[i]]) { /* control tokens within the marked run, user-defined anywhere */
                size_t run = marked_run(marks, i, len - i), user_len = 0;
                int32_t user = match_special(t, s + i, len - i, false, &user_len);
                id = run ? match_special(t, s + i, run, true, &match_len) : -1;
                if (user >= 0 && (id < 0 || user_len > match_len)) id = user, match_len = user_len;
            }
            if (id < 0) {
                i++;
                continue;
            }
            if (i > stretch && (st = encode_text(t, sc, text + stretch, i - stretch, after_special, out))) return st;
            tnd_tok_emit(out, id);
            after_special = true;
            i += match_len;
            stretch = i;
        }
    }
    if (len > stretch) st = encode_text(t, sc, text + stretch, len - stretch, after_special, out);
    return st;
}

int32_t tnd_tokenizer_encode(const tnd_tokenizer *tok, const char *text, size_t len, uint32_t flags, int32_t *tokens,
                             int32_t cap) {
    return tnd_tokenizer_encode_marked(tok, text, len, NULL, flags, tokens, cap);
}

int32_t tnd_tokenizer_encode_marked(const tnd_tokenizer *tok, const char *text, size_t len, const uint8_t *marks,
                                    uint32_t flags, int32_t *tokens, int32_t cap) {
    if (!tok || (!text && len) || cap < 0 || (!tokens && cap > 0)) {
        tnd_fail(TND_ERR_INVALID_ARGUMENT, "tnd_tokenizer_encode: NULL tokenizer or text, or a bad buffer");
        return TND_TOKENIZE_ERROR;
    }
    if (flags & ~(TND_TOKENIZE_ADD_SPECIAL | TND_TOKENIZE_PARSE_SPECIAL)) {
        tnd_fail(TND_ERR_INVALID_ARGUMENT, "tnd_tokenizer_encode: unknown flags 0x%x", flags);
        return TND_TOKENIZE_ERROR;
    }
    if (len > TND_TOKENIZE_MAX_TEXT) {
        tnd_fail(TND_ERR_INVALID_ARGUMENT, "tnd_tokenizer_encode: text of %zu bytes is longer than the limit of %zu",
                 len, TND_TOKENIZE_MAX_TEXT);
        return TND_TOKENIZE_ERROR;
    }
    /* the tokenizer is logically const: only its scratch changes, and concurrent calls each get their own */
    tnd_tokenizer *t = (tnd_tokenizer *)tok;
    tnd_tok_scratch *sc = NULL;
    bool own_scratch = atomic_flag_test_and_set_explicit(&t->scratch_busy, memory_order_acquire);
    sc = own_scratch ? scratch_new(t) : t->scratch;
    if (!sc) {
        tnd_fail(TND_ERR_OUT_OF_MEMORY, "tnd_tokenizer_encode: out of memory");
        return TND_TOKENIZE_ERROR;
    }
    tnd_tok_out out = {.tokens = tokens, .cap = cap, .n = 0};
    bool add = (flags & TND_TOKENIZE_ADD_SPECIAL) != 0;
    if (add && t->add_bos) tnd_tok_emit(&out, t->special[TND_TOKEN_BOS]);
    tnd_status st = encode_all(t, sc, text, len, (flags & TND_TOKENIZE_PARSE_SPECIAL) != 0, marks, &out);
    if (add && t->add_eos) tnd_tok_emit(&out, t->special[TND_TOKEN_EOS]);
    if (own_scratch) {
        scratch_free(t, sc);
    } else {
        scratch_trim(t, sc);
        atomic_flag_clear_explicit(&t->scratch_busy, memory_order_release);
    }
    if (st) return TND_TOKENIZE_ERROR;
    if (out.n > INT32_MAX) {
        tnd_fail(TND_ERR_INTERNAL, "tnd_tokenizer_encode: %lld tokens do not fit an int32", (long long)out.n);
        return TND_TOKENIZE_ERROR;
    }
    return out.n > cap ? -(int32_t)out.n : (int32_t)out.n;
}

/* ---------------------------------------------------------------------------------------------------------------
 * Queries
 * ------------------------------------------------------------------------------------------------------------- */

static bool valid_token(const tnd_tokenizer *t, int32_t token) { return t && token >= 0 && token < t->n_vocab; }

int32_t tnd_tokenizer_n_vocab(const tnd_tokenizer *t) { return t ? t->n_vocab : 0; }

int32_t tnd_tokenizer_special(const tnd_tokenizer *t, tnd_special_token which) {
    if (!t || (int)which < 0 || which >= TND_TOKEN_SPECIAL_COUNT) return -1;
    return t->special[which];
}

int tnd_tokenizer_adds_bos(const tnd_tokenizer *t) { return t && t->add_bos; }
int tnd_tokenizer_adds_eos(const tnd_tokenizer *t) { return t && t->add_eos; }

int tnd_tokenizer_is_eog(const tnd_tokenizer *t, int32_t token) {
    return valid_token(t, token) && (t->flags[token] & TND_TOKF_EOG);
}

tnd_token_type tnd_tokenizer_token_type(const tnd_tokenizer *t, int32_t token) {
    return valid_token(t, token) ? (tnd_token_type)t->type[token] : TND_TOKEN_TYPE_UNDEFINED;
}

const char *tnd_tokenizer_token_text(const tnd_tokenizer *t, int32_t token, size_t *len) {
    if (!valid_token(t, token)) return NULL;
    if (len) *len = (size_t)t->text[token].len;
    return t->text[token].ptr;
}

int32_t tnd_tokenizer_find(const tnd_tokenizer *t, const char *text, size_t len) {
    if (!t || (!text && len) || len == 0) return -1;
    return tnd_vocab_find(t, text, len);
}
