/* llama2c.c: llama2.c checkpoint + tokenizer -> llama-architecture GGUF (layouts in llama2c.h). */
#include "model/llama2c.h"

#include "core/alloc.h"
#include "core/error.h"
#include "core/mapped_file.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

/* ------------------------------------------------------------------------------------------------------------
 * Checkpoint layout: one row per weight section, in file order
 * ---------------------------------------------------------------------------------------------------------- */

/* The sizes a section's shape is made of. */
typedef enum llama2c_dim {
    DIM_ONE,
    DIM_EMBD,      /* dim */
    DIM_KV,        /* dim * n_kv_heads / n_heads */
    DIM_HIDDEN,    /* hidden_dim */
    DIM_VOCAB,     /* |vocab_size| */
    DIM_SEQ,       /* seq_len */
    DIM_HALF_HEAD  /* head_size / 2 */
} llama2c_dim;

typedef struct llama2c_section {
    const char *gguf_name;  /* GGUF tensor name (after "blk.N." for per-layer sections); NULL = skipped */
    bool per_layer;         /* n_layers consecutive matrices */
    bool unshared_only;     /* present only when vocab_size < 0 */
    llama2c_dim ne0, ne1;   /* GGUF shape [ne0, ne1]: ne0 contiguous (the checkpoint's last index) */
} llama2c_section;

static const llama2c_section sections[] = {
    {"token_embd.weight", false, false, DIM_EMBD, DIM_VOCAB},     /* token_embedding [vocab][dim] */
    {"attn_norm.weight", true, false, DIM_EMBD, DIM_ONE},         /* rms_att [L][dim] */
    {"attn_q.weight", true, false, DIM_EMBD, DIM_EMBD},           /* wq [L][dim][dim] */
    {"attn_k.weight", true, false, DIM_EMBD, DIM_KV},             /* wk [L][kv_dim][dim] */
    {"attn_v.weight", true, false, DIM_EMBD, DIM_KV},             /* wv [L][kv_dim][dim] */
    {"attn_output.weight", true, false, DIM_EMBD, DIM_EMBD},      /* wo [L][dim][dim] */
    {"ffn_norm.weight", true, false, DIM_EMBD, DIM_ONE},          /* rms_ffn [L][dim] */
    {"ffn_gate.weight", true, false, DIM_EMBD, DIM_HIDDEN},       /* w1 [L][hidden][dim] */
    {"ffn_down.weight", true, false, DIM_HIDDEN, DIM_EMBD},       /* w2 [L][dim][hidden] */
    {"ffn_up.weight", true, false, DIM_EMBD, DIM_HIDDEN},         /* w3 [L][hidden][dim] */
    {"output_norm.weight", false, false, DIM_EMBD, DIM_ONE},      /* rms_final [dim] */
    {NULL, false, false, DIM_HALF_HEAD, DIM_SEQ},                 /* freq_cis_real [seq_len][head_size/2] */
    {NULL, false, false, DIM_HALF_HEAD, DIM_SEQ},                 /* freq_cis_imag [seq_len][head_size/2] */
    {"output.weight", false, true, DIM_EMBD, DIM_VOCAB},          /* wcls [vocab][dim] */
};

enum { N_SECTIONS = sizeof sections / sizeof sections[0] };

static int64_t dim_value(const tnd_llama2c_config *c, llama2c_dim d) {
    switch (d) {
    case DIM_ONE: return 1;
    case DIM_EMBD: return c->dim;
    case DIM_KV: return (int64_t)c->dim / c->n_heads * c->n_kv_heads;
    case DIM_HIDDEN: return c->hidden_dim;
    case DIM_VOCAB: return c->n_vocab;
    case DIM_SEQ: return c->seq_len;
    case DIM_HALF_HEAD: return c->dim / c->n_heads / 2;
    }
    return 0;
}

static bool section_present(const tnd_llama2c_config *c, const llama2c_section *s) {
    return !s->unshared_only || !c->shared_classifier;
}

/* Bytes of one matrix of the section (one layer's for per-layer sections), overflow-checked. */
static bool section_matrix_bytes(const tnd_llama2c_config *c, const llama2c_section *s, uint64_t *out) {
    return tnd_mul_u64((uint64_t)dim_value(c, s->ne0), (uint64_t)dim_value(c, s->ne1), out) &&
           tnd_mul_u64(*out, sizeof(float), out);
}

/* Byte offset of every section from the start of the file (absent sections take no bytes) and the total size the
 * header implies. False when a size overflows 64 bits. */
static bool section_offsets(const tnd_llama2c_config *c, uint64_t offsets[N_SECTIONS], uint64_t *total) {
    uint64_t at = TND_LLAMA2C_HEADER_BYTES;
    for (int i = 0; i < N_SECTIONS; i++) {
        offsets[i] = at;
        if (!section_present(c, &sections[i])) continue;
        uint64_t bytes = 0;
        if (!section_matrix_bytes(c, &sections[i], &bytes)) return false;
        if (sections[i].per_layer && !tnd_mul_u64(bytes, (uint64_t)c->n_layers, &bytes)) return false;
        if (!tnd_add_u64(at, bytes, &at)) return false;
    }
    *total = at;
    return true;
}

/* ------------------------------------------------------------------------------------------------------------
 * Header
 * ---------------------------------------------------------------------------------------------------------- */

static int32_t read_i32(const uint8_t *p) {
    uint32_t u = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    int32_t v;
    memcpy(&v, &u, sizeof v);
    return v;
}

static float read_f32(const uint8_t *p) {
    uint32_t u = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    float v;
    memcpy(&v, &u, sizeof v);
    return v;
}

#define LLAMA2C_MAGIC 0x616b3432u /* "ak42" read as a little-endian int32: the newer export versions */

tnd_status tnd_llama2c_read_config(const uint8_t *bytes, uint64_t size, tnd_llama2c_config *out) {
    if ((!bytes && size) || !out) return tnd_fail(TND_ERR_INVALID_ARGUMENT, "tnd_llama2c_read_config: NULL argument");
    memset(out, 0, sizeof *out);
    if (size < TND_LLAMA2C_HEADER_BYTES)
        return tnd_fail(TND_ERR_FORMAT, "truncated: %" PRIu64 " bytes, less than the %d-byte llama2.c header", size,
                        TND_LLAMA2C_HEADER_BYTES);
    if ((uint32_t)read_i32(bytes) == LLAMA2C_MAGIC)
        return tnd_fail(TND_ERR_UNSUPPORTED, "llama2.c export version %d (magic \"ak42\") is not supported: export "
                        "the checkpoint with the legacy version 0", read_i32(bytes + 4));
    static const char *const names[7] = {"dim", "hidden_dim", "n_layers", "n_heads", "n_kv_heads", "vocab_size",
                                         "seq_len"};
    int32_t h[7];
    for (int i = 0; i < 7; i++) {
        h[i] = read_i32(bytes + 4 * i);
        bool ok = i == 5 ? h[i] != 0 && h[i] != INT32_MIN : h[i] > 0;
        if (!ok) return tnd_fail(TND_ERR_FORMAT, "header field %s = %d is out of range", names[i], (int)h[i]);
    }
    tnd_llama2c_config c = {.dim = h[0], .hidden_dim = h[1], .n_layers = h[2], .n_heads = h[3], .n_kv_heads = h[4],
                            .n_vocab = h[5] < 0 ? -h[5] : h[5], .seq_len = h[6], .shared_classifier = h[5] > 0};
    if (c.dim % c.n_heads)
        return tnd_fail(TND_ERR_FORMAT, "header: n_heads %d does not divide dim %d", (int)c.n_heads, (int)c.dim);
    if (c.n_kv_heads > c.n_heads || c.n_heads % c.n_kv_heads)
        return tnd_fail(TND_ERR_FORMAT, "header: n_kv_heads %d does not divide n_heads %d", (int)c.n_kv_heads,
                        (int)c.n_heads);
    if ((c.dim / c.n_heads) % 2)
        return tnd_fail(TND_ERR_FORMAT, "header: head size %d (dim %d / n_heads %d) is odd; rope needs pairs",
                        (int)(c.dim / c.n_heads), (int)c.dim, (int)c.n_heads);
    if (c.n_vocab < 3)
        return tnd_fail(TND_ERR_FORMAT, "header: vocab_size %d leaves no room for the unknown, BOS and EOS tokens",
                        (int)h[5]);
    uint64_t offsets[N_SECTIONS], total = 0;
    if (!section_offsets(&c, offsets, &total))
        return tnd_fail(TND_ERR_FORMAT, "header: dim %d, hidden_dim %d, n_layers %d, vocab_size %d, seq_len %d give "
                        "a size beyond 64 bits", (int)c.dim, (int)c.hidden_dim, (int)c.n_layers, (int)h[5],
                        (int)c.seq_len);
    if (total != size)
        return tnd_fail(TND_ERR_FORMAT, "%s: the header (dim %d, hidden_dim %d, n_layers %d, n_heads %d, n_kv_heads "
                        "%d, vocab_size %d, seq_len %d) implies %" PRIu64 " bytes, the file has %" PRIu64,
                        total > size ? "truncated" : "sizes do not add up", (int)c.dim, (int)c.hidden_dim,
                        (int)c.n_layers, (int)c.n_heads, (int)c.n_kv_heads, (int)h[5], (int)c.seq_len, total, size);
    *out = c;
    return TND_OK;
}

/* ------------------------------------------------------------------------------------------------------------
 * Model: hyper-parameters and tensors
 * ---------------------------------------------------------------------------------------------------------- */

/* Adds the tensors of section `s` for layer `layer` (ignored for global sections), borrowing the bytes. */
static tnd_status add_section_tensor(tnd_gguf_writer *w, const tnd_llama2c_config *c, const uint8_t *bytes,
                                     const uint64_t offsets[N_SECTIONS], int s, uint32_t layer) {
    const llama2c_section *sec = &sections[s];
    uint64_t matrix_bytes = 0;
    section_matrix_bytes(c, sec, &matrix_bytes); /* cannot overflow: read_config checked the total */
    char name[64];
    if (sec->per_layer) snprintf(name, sizeof name, "blk.%u.%s", layer, sec->gguf_name);
    else snprintf(name, sizeof name, "%s", sec->gguf_name);
    int64_t ne[2] = {dim_value(c, sec->ne0), dim_value(c, sec->ne1)};
    uint32_t n_dims = sec->ne1 == DIM_ONE ? 1 : 2;
    const uint8_t *data = bytes + offsets[s] + (sec->per_layer ? matrix_bytes * layer : 0);
    return tnd_gguf_writer_add_tensor(w, name, TND_TYPE_F32, n_dims, ne, data);
}

/* The llama.* keys; string / u32 / f32 values by table so the list reads as the file's metadata. */
static tnd_status add_hparams(tnd_gguf_writer *w, const tnd_llama2c_config *c, const char *name) {
    const struct {
        const char *key;
        uint32_t value;
    } counts[] = {
        {"llama.context_length", (uint32_t)c->seq_len},
        {"llama.embedding_length", (uint32_t)c->dim},
        {"llama.block_count", (uint32_t)c->n_layers},
        {"llama.feed_forward_length", (uint32_t)c->hidden_dim},
        {"llama.rope.dimension_count", (uint32_t)(c->dim / c->n_heads)},
        {"llama.attention.head_count", (uint32_t)c->n_heads},
        {"llama.attention.head_count_kv", (uint32_t)c->n_kv_heads},
        {"general.file_type", 0}, /* all tensors F32 */
    };
    tnd_status st = tnd_gguf_writer_set_str(w, "general.architecture", "llama");
    if (!st) st = tnd_gguf_writer_set_str(w, "general.name", name);
    for (size_t i = 0; !st && i < sizeof counts / sizeof counts[0]; i++)
        st = tnd_gguf_writer_set_u32(w, counts[i].key, counts[i].value);
    /* llama2.c's fixed values: RMS norm epsilon 1e-5 and rope base 10000 (its freq_cis tables use that base) */
    if (!st) st = tnd_gguf_writer_set_f32(w, "llama.attention.layer_norm_rms_epsilon", 1e-5f);
    if (!st) st = tnd_gguf_writer_set_f32(w, "llama.rope.freq_base", 10000.0f);
    return st;
}

tnd_status tnd_llama2c_add_model(tnd_gguf_writer *w, const uint8_t *bytes, uint64_t size, const char *name,
                                 tnd_llama2c_config *config) {
    if (!w || !name || !config) return tnd_fail(TND_ERR_INVALID_ARGUMENT, "tnd_llama2c_add_model: NULL argument");
    tnd_status st = tnd_llama2c_read_config(bytes, size, config);
    if (st) return st;
    uint64_t offsets[N_SECTIONS], total = 0;
    section_offsets(config, offsets, &total);
    st = add_hparams(w, config, name);
    /* GGUF order: the sections before the first per-layer one, then layer by layer, then the rest */
    int first_layered = 0;
    while (!sections[first_layered].per_layer) first_layered++;
    for (int s = 0; !st && s < first_layered; s++)
        if (sections[s].gguf_name && section_present(config, &sections[s]))
            st = add_section_tensor(w, config, bytes, offsets, s, 0);
    for (uint32_t l = 0; !st && l < (uint32_t)config->n_layers; l++)
        for (int s = 0; !st && s < N_SECTIONS; s++)
            if (sections[s].per_layer) st = add_section_tensor(w, config, bytes, offsets, s, l);
    for (int s = first_layered; !st && s < N_SECTIONS; s++)
        if (!sections[s].per_layer && sections[s].gguf_name && section_present(config, &sections[s]))
            st = add_section_tensor(w, config, bytes, offsets, s, 0);
    return st;
}

/* ------------------------------------------------------------------------------------------------------------
 * Tokenizer
 * ---------------------------------------------------------------------------------------------------------- */

static bool is_hex_upper(uint8_t ch) { return (ch >= '0' && ch <= '9') || (ch >= 'A' && ch <= 'F'); }

/* The SentencePiece string and token type of llama2.c piece `p` (n bytes) into `dst` (3n bytes at least; NULL to
 * count only). Returns the length written. */
static uint64_t restore_piece(const uint8_t *p, uint64_t n, uint8_t *dst, tnd_token_type *type) {
    /* BOS and EOS are written as "\n<s>\n" and "\n</s>\n" */
    uint64_t lo = 0, hi = n;
    while (lo < hi && p[lo] == '\n') lo++;
    while (hi > lo && p[hi - 1] == '\n') hi--;
    bool bos = hi - lo == 3 && !memcmp(p + lo, "<s>", 3), eos = hi - lo == 4 && !memcmp(p + lo, "</s>", 4);
    if (bos || eos) {
        p += lo;
        n = hi - lo;
    }
    if (bos || eos || n == 0) *type = TND_TOKEN_TYPE_CONTROL;
    else if (n == 5 && !memcmp(p, "<unk>", 5)) *type = TND_TOKEN_TYPE_UNKNOWN;
    else if (n == 6 && !memcmp(p, "<0x", 3) && is_hex_upper(p[3]) && is_hex_upper(p[4]) && p[5] == '>')
        *type = TND_TOKEN_TYPE_BYTE;
    else *type = TND_TOKEN_TYPE_NORMAL;
    /* spaces become the SentencePiece space marker U+2581 */
    static const uint8_t marker[3] = {0xE2, 0x96, 0x81};
    uint64_t len = 0;
    for (uint64_t i = 0; i < n; i++) {
        bool space = p[i] == ' ' && *type == TND_TOKEN_TYPE_NORMAL;
        if (dst) {
            if (space) memcpy(dst + len, marker, 3);
            else dst[len] = p[i];
        }
        len += space ? 3 : 1;
    }
    return len;
}

/* Walks the token records: checks each and, when `pool` is given, fills the arrays. *pool_bytes receives the bytes
 * the restored strings need. */
static tnd_status walk_tokens(const uint8_t *bytes, uint64_t size, int32_t n_vocab, uint64_t *pool_bytes,
                              uint8_t *pool, const char **texts, uint64_t *lens, float *scores, int32_t *types) {
    int32_t max_len = read_i32(bytes);
    if (max_len <= 0) return tnd_fail(TND_ERR_FORMAT, "max_token_length %d is not positive", (int)max_len);
    uint64_t at = 4, used = 0;
    for (int32_t i = 0; i < n_vocab; i++) {
        if (size - at < 8)
            return tnd_fail(TND_ERR_FORMAT, "ends at byte %" PRIu64 " inside token %d: it holds fewer tokens than "
                            "the model's vocab_size %d", size, (int)i, (int)n_vocab);
        int32_t len = read_i32(bytes + at + 4);
        if (len < 0 || len > max_len)
            return tnd_fail(TND_ERR_FORMAT, "token %d at byte %" PRIu64 ": length %d outside [0, max_token_length "
                            "%d]", (int)i, at, (int)len, (int)max_len);
        if ((uint64_t)len > size - at - 8)
            return tnd_fail(TND_ERR_FORMAT, "token %d at byte %" PRIu64 ": length %d runs past the end of the file "
                            "(%" PRIu64 " bytes)", (int)i, at, (int)len, size);
        tnd_token_type type;
        uint64_t n = restore_piece(bytes + at + 8, (uint64_t)len, pool ? pool + used : NULL, &type);
        if (pool) {
            texts[i] = (const char *)pool + used;
            lens[i] = n;
            scores[i] = read_f32(bytes + at);
            types[i] = (int32_t)type;
        }
        used += n;
        at += 8 + (uint64_t)len;
    }
    if (at != size)
        return tnd_fail(TND_ERR_FORMAT, "%" PRIu64 " bytes follow token %d: it holds more tokens than the model's "
                        "vocab_size %d", size - at, (int)(n_vocab - 1), (int)n_vocab);
    *pool_bytes = used;
    return TND_OK;
}

tnd_status tnd_llama2c_add_vocab(tnd_gguf_writer *w, const uint8_t *bytes, uint64_t size, int32_t n_vocab) {
    if (!w || (!bytes && size) || n_vocab <= 0)
        return tnd_fail(TND_ERR_INVALID_ARGUMENT, "tnd_llama2c_add_vocab: NULL argument or vocab size %d",
                        (int)n_vocab);
    if (size < 4)
        return tnd_fail(TND_ERR_FORMAT, "truncated: %" PRIu64 " bytes, less than the 4-byte tokenizer header", size);
    /* first pass: validate and size; every token takes at least 8 bytes, so n_vocab is bounded by the file */
    uint64_t pool_bytes = 0;
    tnd_status st = walk_tokens(bytes, size, n_vocab, &pool_bytes, NULL, NULL, NULL, NULL, NULL);
    if (st) return st;
    const tnd_allocator *a = NULL;
    size_t n = (size_t)n_vocab;
    uint8_t *pool = tnd_alloc(a, (size_t)pool_bytes + 1);
    const char **texts = tnd_alloc_array(a, n, sizeof *texts);
    uint64_t *lens = tnd_alloc_array(a, n, sizeof *lens);
    float *scores = tnd_alloc_array(a, n, sizeof *scores);
    int32_t *types = tnd_alloc_array(a, n, sizeof *types);
    if (!pool || !texts || !lens || !scores || !types) {
        st = tnd_fail(TND_ERR_OUT_OF_MEMORY, "out of memory for a vocabulary of %d tokens", (int)n_vocab);
        goto cleanup;
    }
    st = walk_tokens(bytes, size, n_vocab, &pool_bytes, pool, texts, lens, scores, types);
    if (!st) st = tnd_gguf_writer_set_str(w, "tokenizer.ggml.model", "llama");
    if (!st) st = tnd_gguf_writer_set_array_str(w, "tokenizer.ggml.tokens", texts, lens, (uint64_t)n);
    if (!st) st = tnd_gguf_writer_set_array(w, "tokenizer.ggml.scores", TND_VALUE_F32, scores, (uint64_t)n);
    if (!st) st = tnd_gguf_writer_set_array(w, "tokenizer.ggml.token_type", TND_VALUE_I32, types, (uint64_t)n);
    if (!st) st = tnd_gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", TND_LLAMA2C_BOS_ID);
    if (!st) st = tnd_gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", TND_LLAMA2C_EOS_ID);
    if (!st) st = tnd_gguf_writer_set_u32(w, "tokenizer.ggml.unknown_token_id", TND_LLAMA2C_UNK_ID);
cleanup:
    tnd_free(a, pool);
    tnd_free(a, texts);
    tnd_free(a, lens);
    tnd_free(a, scores);
    tnd_free(a, types);
    return st;
}

/* ------------------------------------------------------------------------------------------------------------
 * Files
 * ---------------------------------------------------------------------------------------------------------- */

/* The file name of `path` without folders and without its last extension, into buf. */
static void base_name(const char *path, char *buf, size_t cap) {
    const char *slash = strrchr(path, '/');
    const char *start = slash ? slash + 1 : path;
    const char *dot = strrchr(start, '.');
    size_t n = dot && dot > start ? (size_t)(dot - start) : strlen(start);
    if (n >= cap) n = cap - 1;
    memcpy(buf, start, n);
    buf[n] = 0;
}

tnd_status tnd_llama2c_convert(const char *model_path, const char *vocab_path, const char *out_path, const char *name,
                               tnd_llama2c_config *config_out) {
    if (!model_path || !vocab_path || !out_path)
        return tnd_fail(TND_ERR_INVALID_ARGUMENT, "tnd_llama2c_convert: NULL path");
    tnd_mapped_file model = {0}, vocab = {0};
    tnd_gguf_writer *w = NULL;
    char derived[256];
    if (!name) {
        base_name(model_path, derived, sizeof derived);
        name = derived;
    }
    tnd_llama2c_config config = {0};
    tnd_status st = tnd_mapped_file_open(model_path, true, NULL, &model);
    if (st) goto cleanup;
    st = tnd_mapped_file_open(vocab_path, true, NULL, &vocab);
    if (st) goto cleanup;
    w = tnd_gguf_writer_init(NULL);
    if (!w) {
        st = tnd_fail(TND_ERR_OUT_OF_MEMORY, "out of memory");
        goto cleanup;
    }
    st = tnd_llama2c_add_model(w, model.data, model.size, name, &config);
    if (st) {
        tnd_error_prefix("%s: ", model_path);
        goto cleanup;
    }
    st = tnd_llama2c_add_vocab(w, vocab.data, vocab.size, config.n_vocab);
    if (st) {
        tnd_error_prefix("%s: ", vocab_path);
        goto cleanup;
    }
    st = tnd_gguf_writer_write_file(w, out_path); /* names the path and removes the file on failure */
    if (!st && config_out) *config_out = config;
cleanup:
    tnd_gguf_writer_free(w);
    tnd_mapped_file_close(&vocab);
    tnd_mapped_file_close(&model);
    return st;
}
