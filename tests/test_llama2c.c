/* test_llama2c.c: llama2.c import: stories260K converted by tandem against the same model converted by llama.cpp
 * (tensor by tensor, byte-exact, and the tokenizer arrays), small handcrafted checkpoints whose every weight is its
 * own position (so each tensor's slice of the file is checked), and malformed checkpoints and tokenizers, each
 * refused with a message that names the file and the problem. */
#include "harness.h"

#include "model/llama2c.h"

#include "tandem.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char tmp_dir[] = "/tmp/tnd_llama2c_XXXXXX";

/* Path of a scratch file in the test's temporary folder (static buffer per slot). */
static const char *tmp_path(int slot, const char *name) {
    static char paths[4][512];
    snprintf(paths[slot], sizeof paths[slot], "%s/%s", tmp_dir, name);
    return paths[slot];
}

static bool write_bytes(const char *path, const void *bytes, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return false;
    bool ok = fwrite(bytes, 1, n, f) == n;
    return fclose(f) == 0 && ok;
}

static bool file_exists(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0;
}

/* ------------------------------------------------------------------------------------------------------------
 * stories260K: tandem's import against llama.cpp's
 * ---------------------------------------------------------------------------------------------------------- */

static bool same_tensor(const tnd_tensor_info *a, const tnd_tensor_info *b) {
    return a->type == b->type && a->n_dims == b->n_dims && !memcmp(a->ne, b->ne, sizeof a->ne) && a->size == b->size &&
           !memcmp(a->data, b->data, (size_t)a->size);
}

static void compare_tensors(const tnd_model *ours, const tnd_model *ref) {
    int64_t n_ours = tnd_model_tensor_count(ours), n_ref = tnd_model_tensor_count(ref), n_same = 0;
    for (int64_t i = 0; i < n_ours; i++) {
        tnd_tensor_info a, b;
        CHECK_OK(tnd_model_tensor_at(ours, i, &a));
        int64_t j = tnd_model_tensor_find(ref, a.name);
        if (!CHECK(j >= 0)) {
            fprintf(stderr, "tensor %s is not in the reference\n", a.name);
            continue;
        }
        CHECK_OK(tnd_model_tensor_at(ref, j, &b));
        bool same = same_tensor(&a, &b);
        if (!CHECK(same)) fprintf(stderr, "tensor %s differs from the reference\n", a.name);
        n_same += same;
    }
    /* the reference also stores the shared classifier as output.weight: a copy of the embedding */
    int64_t out_ref = tnd_model_tensor_find(ref, "output.weight");
    CHECK(tnd_model_tensor_find(ours, "output.weight") < 0);
    CHECK(n_ref == n_ours + 1 && out_ref >= 0);
    tnd_tensor_info ref_out, our_embd;
    if (out_ref >= 0 && CHECK_OK(tnd_model_tensor_at(ref, out_ref, &ref_out)) &&
        CHECK_OK(tnd_model_tensor_at(ours, tnd_model_tensor_find(ours, "token_embd.weight"), &our_embd)))
        CHECK(same_tensor(&ref_out, &our_embd));
    printf("stories260K: %lld of %lld tensors byte-identical to llama.cpp's conversion (attn_q/attn_k unpermuted); "
           "its output.weight (%lld tensors in all) equals our token_embd.weight\n", (long long)n_same,
           (long long)n_ours, (long long)n_ref);
}

static void compare_vocab(const tnd_model *ours, const tnd_model *ref) {
    static const char *const arrays[3] = {"tokenizer.ggml.tokens", "tokenizer.ggml.scores",
                                          "tokenizer.ggml.token_type"};
    uint64_t counts[2][3] = {{0}};
    for (int k = 0; k < 3; k++) {
        CHECK_OK(tnd_model_meta_array(ours, arrays[k], NULL, &counts[0][k]));
        CHECK_OK(tnd_model_meta_array(ref, arrays[k], NULL, &counts[1][k]));
        CHECK(counts[0][k] == 512 && counts[1][k] == 512);
    }
    int bad_text = 0, bad_score = 0, bad_type = 0;
    for (uint64_t i = 0; i < counts[0][0] && i < counts[1][0]; i++) {
        const char *a, *b;
        size_t la, lb;
        bad_text += tnd_model_meta_array_string(ours, arrays[0], i, &a, &la) ||
                    tnd_model_meta_array_string(ref, arrays[0], i, &b, &lb) || la != lb || memcmp(a, b, la);
        double sa, sb, ta, tb;
        /* f32 -> double is exact: equal values with equal sign bits are equal bit patterns */
        bad_score += tnd_model_meta_array_number(ours, arrays[1], i, &sa) ||
                     tnd_model_meta_array_number(ref, arrays[1], i, &sb) || sa != sb || !signbit(sa) != !signbit(sb);
        bad_type += tnd_model_meta_array_number(ours, arrays[2], i, &ta) ||
                    tnd_model_meta_array_number(ref, arrays[2], i, &tb) || ta != tb;
    }
    CHECK(bad_text == 0 && bad_score == 0 && bad_type == 0);
    printf("stories260K: tokenizer arrays: %d token strings, %d scores, %d types differ of 512\n", bad_text, bad_score,
           bad_type);
}

/* Keys both files must hold with equal values. */
static void compare_meta(const tnd_model *ours, const tnd_model *ref) {
    static const char *const ints[] = {"llama.embedding_length", "llama.block_count", "llama.feed_forward_length",
                                       "llama.rope.dimension_count", "llama.attention.head_count",
                                       "llama.attention.head_count_kv", "tokenizer.ggml.bos_token_id",
                                       "tokenizer.ggml.eos_token_id", "tokenizer.ggml.unknown_token_id"};
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        int64_t a = -1, b = -2;
        CHECK_OK(tnd_model_meta_int(ours, ints[i], &a));
        CHECK_OK(tnd_model_meta_int(ref, ints[i], &b));
        if (!CHECK(a == b)) fprintf(stderr, "%s: %lld vs reference %lld\n", ints[i], (long long)a, (long long)b);
    }
    double ea = 0, eb = 1;
    CHECK_OK(tnd_model_meta_float(ours, "llama.attention.layer_norm_rms_epsilon", &ea));
    CHECK_OK(tnd_model_meta_float(ref, "llama.attention.layer_norm_rms_epsilon", &eb));
    CHECK(ea == eb);
    static const char *const strings[] = {"general.architecture", "tokenizer.ggml.model"};
    for (size_t i = 0; i < 2; i++) {
        const char *a, *b;
        size_t la, lb;
        CHECK(!tnd_model_meta_string(ours, strings[i], &a, &la) && !tnd_model_meta_string(ref, strings[i], &b, &lb) &&
              la == lb && !memcmp(a, b, la));
    }
}

/* The context length is the checkpoint's seq_len (header field 7, read here directly from the file). */
static void check_context(const tnd_model *ours, const tnd_model *ref, const char *bin) {
    FILE *f = fopen(bin, "rb");
    int32_t header[7] = {0};
    CHECK(f && fread(header, 4, 7, f) == 7);
    if (f) fclose(f);
    int64_t ctx = 0, ref_ctx = 0;
    CHECK_OK(tnd_model_meta_int(ours, "llama.context_length", &ctx));
    CHECK_OK(tnd_model_meta_int(ref, "llama.context_length", &ref_ctx));
    CHECK(ctx == header[6]);
    printf("stories260K: context_length %lld (the checkpoint's seq_len; llama.cpp's converter wrote %lld)\n",
           (long long)ctx, (long long)ref_ctx);
}

/* Both files tokenize a text the same way. */
static void check_tokenizer(const tnd_model *ours, const tnd_model *ref) {
    tnd_tokenizer *ta = NULL, *tb = NULL;
    if (CHECK_OK(tnd_tokenizer_init(ours, &ta)) && CHECK_OK(tnd_tokenizer_init(ref, &tb))) {
        static const char text[] = "Once upon a time, Lily saw a big red ball.\nShe said: \"Hi!\" \xe2\x9c\x93";
        int32_t a[256], b[256];
        int32_t na = tnd_tokenizer_encode(ta, text, sizeof text - 1, TND_TOKENIZE_ADD_SPECIAL, a, 256);
        int32_t nb = tnd_tokenizer_encode(tb, text, sizeof text - 1, TND_TOKENIZE_ADD_SPECIAL, b, 256);
        CHECK(na > 10 && na == nb && !memcmp(a, b, (size_t)na * sizeof a[0]) && a[0] == 1);
    }
    tnd_tokenizer_free(ta);
    tnd_tokenizer_free(tb);
}

static void test_stories(void) {
    char bin[4096], tok[4096], ref_path[4096];
    snprintf(bin, sizeof bin, "%s", tnd_fixture("real/stories260K.bin"));
    snprintf(tok, sizeof tok, "%s", tnd_fixture("real/tok512.bin"));
    snprintf(ref_path, sizeof ref_path, "%s", tnd_fixture("real/stories260K.gguf"));
    const char *out = tmp_path(0, "stories260K.gguf");
    tnd_llama2c_config c;
    if (!CHECK_OK(tnd_llama2c_convert(bin, tok, out, NULL, &c))) return;
    CHECK(c.dim == 64 && c.hidden_dim == 172 && c.n_layers == 5 && c.n_heads == 8 && c.n_kv_heads == 4 &&
          c.n_vocab == 512 && c.seq_len == 512 && c.shared_classifier);
    tnd_model *ours = NULL, *ref = NULL;
    if (CHECK_OK(tnd_model_open(out, NULL, &ours)) && CHECK_OK(tnd_model_open(ref_path, NULL, &ref))) {
        compare_tensors(ours, ref);
        compare_vocab(ours, ref);
        compare_meta(ours, ref);
        check_context(ours, ref, bin);
        check_tokenizer(ours, ref);
        const char *name;
        size_t len;
        CHECK(!tnd_model_meta_string(ours, "general.name", &name, &len) && len == 11 &&
              !memcmp(name, "stories260K", 11)); /* the checkpoint's file name */
    }
    tnd_model_close(ours);
    tnd_model_close(ref);
    remove(out);
}

/* ------------------------------------------------------------------------------------------------------------
 * Handcrafted checkpoints: each weight's value is its index among the file's floats
 * ---------------------------------------------------------------------------------------------------------- */

typedef struct header {
    int32_t dim, hidden, layers, heads, kv_heads, vocab, seq_len;
} header;

/* Floats a well-formed checkpoint with this header holds (llama2.c run.c's memory map, written out again here). */
static size_t float_count(const header *h) {
    size_t d = (size_t)h->dim, hid = (size_t)h->hidden, l = (size_t)h->layers, v = (size_t)abs(h->vocab);
    size_t kv = d / (size_t)h->heads * (size_t)h->kv_heads, half_head = d / (size_t)h->heads / 2;
    size_t n = v * d + l * (d + d * d + 2 * kv * d + d * d + d + 3 * hid * d) + d + 2 * (size_t)h->seq_len * half_head;
    return n + (h->vocab < 0 ? v * d : 0);
}

/* Writes the header and `n_floats` floats 0, 1, 2, ...; extra_bytes > 0 appends zero bytes, < 0 cuts bytes. */
static bool write_checkpoint(const char *path, const header *h, size_t n_floats, long extra_bytes) {
    size_t n = 28 + n_floats * 4;
    uint8_t *buf = calloc(1, n + 64);
    if (!buf) return false;
    memcpy(buf, h, 28);
    for (size_t i = 0; i < n_floats; i++) {
        float x = (float)i;
        memcpy(buf + 28 + 4 * i, &x, 4);
    }
    bool ok = write_bytes(path, buf, (size_t)((long)n + extra_bytes));
    free(buf);
    return ok;
}

typedef struct token {
    float score;
    const char *text;  /* NULL ends a list */
    int32_t len_override; /* 0: strlen(text); else the length written */
} token;

/* Writes a llama2.c tokenizer file; `cut` bytes are removed from the end. */
static bool write_tokenizer(const char *path, int32_t max_len, const token *tokens, size_t cut) {
    uint8_t buf[4096];
    size_t n = 0;
    memcpy(buf, &max_len, 4);
    n = 4;
    for (const token *t = tokens; t->text; t++) {
        int32_t len = (int32_t)strlen(t->text), stored = t->len_override ? t->len_override : len;
        memcpy(buf + n, &t->score, 4);
        memcpy(buf + n + 4, &stored, 4);
        memcpy(buf + n + 8, t->text, (size_t)len);
        n += 8 + (size_t)len;
    }
    return write_bytes(path, buf, n - cut);
}

static const token tiny_tokens[] = {
    {0.0f, "<unk>", 0}, {0.0f, "\n<s>\n", 0}, {-0.0f, "\n</s>\n", 0}, {0.0f, "<0x0A>", 0},
    {-1.5f, " hello", 0}, {-2.25f, "a b", 0}, {0, NULL, 0}};

/* The imported strings and types of tiny_tokens. */
static const char *const tiny_texts[] = {"<unk>", "<s>", "</s>", "<0x0A>", "\xe2\x96\x81hello", "a\xe2\x96\x81\x62"};
static const int tiny_types[] = {2, 3, 3, 6, 1, 1};

/* Every tensor of the converted file holds the floats start, start+1, ... where start is its offset among the
 * checkpoint's floats; walks the checkpoint's sections in file order. */
static void check_tiny_tensors(const tnd_model *m, const header *h) {
    int64_t d = h->dim, hid = h->hidden, kv = d / h->heads * h->kv_heads, v = abs(h->vocab);
    struct {
        const char *name;
        bool per_layer;
        int64_t ne0, ne1;
    } layout[] = {
        {"token_embd.weight", false, d, v}, {"attn_norm.weight", true, d, 1}, {"attn_q.weight", true, d, d},
        {"attn_k.weight", true, d, kv},     {"attn_v.weight", true, d, kv},   {"attn_output.weight", true, d, d},
        {"ffn_norm.weight", true, d, 1},    {"ffn_gate.weight", true, d, hid}, {"ffn_down.weight", true, hid, d},
        {"ffn_up.weight", true, d, hid},    {"output_norm.weight", false, d, 1},
        {NULL, false, d / h->heads / 2, 2 * h->seq_len}, /* freq_cis_real + imag */
        {"output.weight", false, d, h->vocab < 0 ? v : 0}};
    int64_t start = 0, n_found = 0;
    for (size_t s = 0; s < sizeof layout / sizeof layout[0]; s++) {
        int64_t layers = layout[s].per_layer ? h->layers : 1;
        for (int64_t l = 0; l < layers; l++) {
            int64_t n = layout[s].ne0 * layout[s].ne1;
            char name[64];
            if (layout[s].per_layer) snprintf(name, sizeof name, "blk.%lld.%s", (long long)l, layout[s].name);
            else snprintf(name, sizeof name, "%s", layout[s].name ? layout[s].name : "");
            int64_t idx = layout[s].name && n ? tnd_model_tensor_find(m, name) : -1;
            tnd_tensor_info t;
            if (layout[s].name && n && CHECK(idx >= 0) && CHECK_OK(tnd_model_tensor_at(m, idx, &t))) {
                n_found++;
                CHECK(t.type == TND_TYPE_F32 && t.ne[0] == layout[s].ne0 && t.ne[1] == layout[s].ne1 &&
                      t.n_dims == (layout[s].ne1 == 1 ? 1u : 2u) && t.n_elements == (uint64_t)n);
                int bad = 0;
                for (int64_t i = 0; i < n; i++) {
                    float x;
                    memcpy(&x, (const uint8_t *)t.data + 4 * i, 4);
                    bad += x != (float)(start + i);
                }
                if (!CHECK(bad == 0)) fprintf(stderr, "%s: %d floats out of place\n", name, bad);
            }
            start += n;
        }
    }
    CHECK(tnd_model_tensor_count(m) == n_found);
    CHECK(start == (int64_t)float_count(h));
}

static void check_tiny_vocab(const tnd_model *m) {
    uint64_t count = 0;
    CHECK_OK(tnd_model_meta_array(m, "tokenizer.ggml.tokens", NULL, &count));
    if (!CHECK(count == 6)) return;
    for (uint64_t i = 0; i < 6; i++) {
        const char *s;
        size_t len;
        double score, type;
        CHECK(!tnd_model_meta_array_string(m, "tokenizer.ggml.tokens", i, &s, &len) && len == strlen(tiny_texts[i]) &&
              !memcmp(s, tiny_texts[i], len));
        CHECK(!tnd_model_meta_array_number(m, "tokenizer.ggml.scores", i, &score) &&
              score == (double)tiny_tokens[i].score && !signbit(score) == !signbit(tiny_tokens[i].score));
        CHECK(!tnd_model_meta_array_number(m, "tokenizer.ggml.token_type", i, &type) && type == tiny_types[i]);
    }
    int64_t bos = -1, eos = -1, unk = -1;
    CHECK(!tnd_model_meta_int(m, "tokenizer.ggml.bos_token_id", &bos) && bos == 1);
    CHECK(!tnd_model_meta_int(m, "tokenizer.ggml.eos_token_id", &eos) && eos == 2);
    CHECK(!tnd_model_meta_int(m, "tokenizer.ggml.unknown_token_id", &unk) && unk == 0);
}

static const header tiny = {8, 12, 2, 4, 2, 6, 3};

static void test_tiny(bool shared) {
    header h = tiny;
    if (!shared) h.vocab = -h.vocab;
    const char *bin = tmp_path(0, "tiny.bin"), *tok = tmp_path(1, "tiny_tok.bin"), *out = tmp_path(2, "tiny.gguf");
    if (!CHECK(write_checkpoint(bin, &h, float_count(&h), 0) && write_tokenizer(tok, 7, tiny_tokens, 0))) return;
    tnd_llama2c_config c;
    tnd_model *m = NULL;
    if (CHECK_OK(tnd_llama2c_convert(bin, tok, out, "tiny", &c)) && CHECK_OK(tnd_model_open(out, NULL, &m))) {
        CHECK(c.dim == 8 && c.hidden_dim == 12 && c.n_layers == 2 && c.n_heads == 4 && c.n_kv_heads == 2 &&
              c.n_vocab == 6 && c.seq_len == 3 && c.shared_classifier == shared);
        check_tiny_tensors(m, &h);
        check_tiny_vocab(m);
        static const struct {
            const char *key;
            int64_t value;
        } keys[] = {{"llama.context_length", 3},       {"llama.embedding_length", 8},
                    {"llama.block_count", 2},          {"llama.feed_forward_length", 12},
                    {"llama.rope.dimension_count", 2}, {"llama.attention.head_count", 4},
                    {"llama.attention.head_count_kv", 2}};
        for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
            int64_t v = -1;
            CHECK(!tnd_model_meta_int(m, keys[i].key, &v) && v == keys[i].value);
        }
        double eps = 0;
        CHECK(!tnd_model_meta_float(m, "llama.attention.layer_norm_rms_epsilon", &eps) && eps == (double)1e-5f);
        const char *s;
        size_t len;
        CHECK(!tnd_model_meta_string(m, "general.name", &s, &len) && len == 4 && !memcmp(s, "tiny", 4));
        CHECK(!tnd_model_meta_string(m, "general.architecture", &s, &len) && len == 5 && !memcmp(s, "llama", 5));
    }
    tnd_model_close(m);
    remove(out);
}

/* ------------------------------------------------------------------------------------------------------------
 * Malformed inputs
 * ---------------------------------------------------------------------------------------------------------- */

/* Converts and expects `status`, a message that starts with the path of `culprit` and contains `needle`, and no
 * output file. */
static void expect_failure(const char *bin, const char *tok, tnd_status status, const char *culprit,
                           const char *needle, const char *what) {
    const char *out = tmp_path(2, "bad.gguf");
    remove(out);
    tnd_status st = tnd_llama2c_convert(bin, tok, out, NULL, NULL);
    const char *msg = tnd_last_error();
    bool ok = st == status && !strncmp(msg, culprit, strlen(culprit)) && strstr(msg, needle) && !file_exists(out);
    if (!CHECK(ok)) fprintf(stderr, "%s: status %s, message: %s\n", what, tnd_status_name(st), msg);
}

static void bad_header(header h, long extra_bytes, tnd_status status, const char *needle, const char *what) {
    const char *bin = tmp_path(0, "bad.bin"), *tok = tmp_path(1, "tok.bin");
    /* the float count of a header that does not describe a model: keep the file small */
    size_t n = (h.dim > 0 && h.heads > 0 && h.kv_heads > 0 && h.dim <= 64 && h.hidden > 0 && h.hidden <= 64 &&
                h.layers > 0 && h.layers <= 8 && h.seq_len > 0 && h.seq_len <= 64 && h.vocab != 0 &&
                h.vocab >= -64 && h.vocab <= 64 && h.dim % h.heads == 0)
                   ? float_count(&h)
                   : 16;
    if (CHECK(write_checkpoint(bin, &h, n, extra_bytes) && write_tokenizer(tok, 7, tiny_tokens, 0)))
        expect_failure(bin, tok, status, bin, needle, what);
}

static void test_bad_checkpoints(void) {
    bad_header(tiny, -4, TND_ERR_FORMAT, "truncated", "4 bytes missing");
    bad_header(tiny, -(long)(float_count(&tiny) * 4), TND_ERR_FORMAT, "truncated", "header only");
    bad_header(tiny, -(long)(float_count(&tiny) * 4) - 8, TND_ERR_FORMAT, "truncated", "short header");
    bad_header(tiny, 4, TND_ERR_FORMAT, "do not add up", "4 extra bytes");
    header h = tiny;
    h.dim = 0;
    bad_header(h, 0, TND_ERR_FORMAT, "dim = 0", "zero dim");
    h = tiny;
    h.layers = -1;
    bad_header(h, 0, TND_ERR_FORMAT, "n_layers = -1", "negative layers");
    h = tiny;
    h.vocab = 0;
    bad_header(h, 0, TND_ERR_FORMAT, "vocab_size = 0", "zero vocab");
    h = tiny;
    h.vocab = INT32_MIN;
    bad_header(h, 0, TND_ERR_FORMAT, "vocab_size", "vocab INT32_MIN");
    h = tiny;
    h.seq_len = -3;
    bad_header(h, 0, TND_ERR_FORMAT, "seq_len = -3", "negative seq_len");
    h = tiny;
    h.heads = 3;
    bad_header(h, 0, TND_ERR_FORMAT, "does not divide dim", "heads not dividing dim");
    h = tiny;
    h.kv_heads = 3;
    bad_header(h, 0, TND_ERR_FORMAT, "does not divide n_heads", "kv heads not dividing heads");
    h = tiny;
    h.kv_heads = 8;
    bad_header(h, 0, TND_ERR_FORMAT, "does not divide n_heads", "more kv heads than heads");
    h = (header){6, 12, 2, 2, 2, 6, 3};
    bad_header(h, 0, TND_ERR_FORMAT, "odd", "odd head size");
    h = tiny;
    h.vocab = 2;
    bad_header(h, 0, TND_ERR_FORMAT, "no room", "vocab of 2");
    /* absurd sizes: refused from the header alone, before anything is allocated */
    h = (header){1 << 16, 1 << 16, 1 << 10, 1 << 4, 1 << 4, 1 << 20, 1 << 20};
    bad_header(h, 0, TND_ERR_FORMAT, "truncated", "absurd dims");
    h = (header){1 << 30, INT32_MAX, INT32_MAX, 2, 2, INT32_MAX, INT32_MAX};
    bad_header(h, 0, TND_ERR_FORMAT, "beyond 64 bits", "overflowing dims");
    /* a newer export version */
    int32_t v1[8] = {0x616b3432, 1, 8, 12, 2, 4, 2, 6};
    const char *bin = tmp_path(0, "v1.bin"), *tok = tmp_path(1, "tok.bin");
    if (CHECK(write_bytes(bin, v1, sizeof v1) && write_tokenizer(tok, 7, tiny_tokens, 0)))
        expect_failure(bin, tok, TND_ERR_UNSUPPORTED, bin, "version 1", "ak42 magic");
    const char *missing = tmp_path(0, "missing.bin");
    remove(missing);
    expect_failure(missing, tok, TND_ERR_IO, missing, "cannot open", "missing checkpoint");
}

static void bad_tokenizer(int32_t max_len, const token *tokens, size_t cut, const char *needle, const char *what) {
    const char *bin = tmp_path(0, "ok.bin"), *tok = tmp_path(1, "bad_tok.bin");
    if (CHECK(write_checkpoint(bin, &tiny, float_count(&tiny), 0) && write_tokenizer(tok, max_len, tokens, cut)))
        expect_failure(bin, tok, TND_ERR_FORMAT, tok, needle, what);
}

static void test_bad_tokenizers(void) {
    token t[8];
    memcpy(t, tiny_tokens, sizeof tiny_tokens);
    t[5] = (token){0, NULL, 0}; /* 5 tokens for a vocab of 6 */
    bad_tokenizer(7, t, 0, "fewer tokens", "5 tokens");
    memcpy(t, tiny_tokens, sizeof tiny_tokens);
    t[6] = (token){0.5f, "x", 0};
    t[7] = (token){0, NULL, 0}; /* 7 tokens */
    bad_tokenizer(7, t, 0, "more tokens", "7 tokens");
    memcpy(t, tiny_tokens, sizeof tiny_tokens);
    t[5].len_override = 7; /* "a b" claims 7 bytes, 3 remain */
    bad_tokenizer(7, t, 0, "past the end", "length past the end");
    memcpy(t, tiny_tokens, sizeof tiny_tokens);
    t[2].len_override = -1;
    bad_tokenizer(7, t, 0, "length -1", "negative length");
    bad_tokenizer(5, tiny_tokens, 0, "max_token_length 5", "token longer than max_token_length");
    bad_tokenizer(0, tiny_tokens, 0, "max_token_length 0", "zero max_token_length");
    bad_tokenizer(7, tiny_tokens, 2, "past the end", "cut inside the last token");
    bad_tokenizer(7, tiny_tokens, 10, "fewer tokens", "cut inside a record header");
    const char *bin = tmp_path(0, "ok.bin"), *tok = tmp_path(1, "short_tok.bin");
    if (CHECK(write_bytes(tok, "\x07\x00", 2))) expect_failure(bin, tok, TND_ERR_FORMAT, tok, "truncated", "2 bytes");
}

/* ------------------------------------------------------------------------------------------------------------
 * The command line
 * ---------------------------------------------------------------------------------------------------------- */

static int run_cli(const char *args, char *out, size_t cap) {
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "'%s' convert %s 2>&1", TND_TANDEM_BIN, args);
    return tnd_test_run(cmd, out, cap);
}

static void test_cli(void) {
    char out[8192], args[3000];
    const char *bin = tmp_path(0, "cli.bin"), *tok = tmp_path(1, "cli_tok.bin"), *gguf = tmp_path(2, "cli.gguf");
    if (!CHECK(write_checkpoint(bin, &tiny, float_count(&tiny), 0) && write_tokenizer(tok, 7, tiny_tokens, 0))) return;
    snprintf(args, sizeof args, "--llama2c '%s' --vocab '%s' -o '%s'", bin, tok, gguf);
    CHECK(run_cli(args, out, sizeof out) == 0 && file_exists(gguf));
    remove(gguf);
    snprintf(args, sizeof args, "-o '%s' --vocab '%s' --llama2c '%s' --name x", gguf, tok, bin);
    CHECK(run_cli(args, out, sizeof out) == 0 && file_exists(gguf));
    remove(gguf);
    CHECK(run_cli("--help", out, sizeof out) == 0 && strstr(out, "--llama2c"));
    snprintf(args, sizeof args, "--llama2c '%s' -o '%s'", bin, gguf);
    CHECK(run_cli(args, out, sizeof out) == 2 && strstr(out, "usage"));
    CHECK(run_cli("--llama2c", out, sizeof out) == 2);
    CHECK(run_cli("--bogus x", out, sizeof out) == 2);
    snprintf(args, sizeof args, "--llama2c '%s' --vocab '%s' -o '%s'", tok, tok, gguf);
    int rc = run_cli(args, out, sizeof out);
    const char *newline = strchr(out, '\n'); /* one line */
    CHECK(rc == 1 && strstr(out, tok) && newline && !newline[1] && !file_exists(gguf));
    remove(bin);
    remove(tok);
}

int main(void) {
    if (!CHECK(mkdtemp(tmp_dir) != NULL)) return tnd_test_finish("test_llama2c");
    test_stories();
    test_tiny(true);
    test_tiny(false);
    test_bad_checkpoints();
    test_bad_tokenizers();
    test_cli();
    static const char *const names[] = {"tiny.bin", "tiny_tok.bin", "bad.bin", "tok.bin", "v1.bin", "ok.bin",
                                        "bad_tok.bin", "short_tok.bin"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) remove(tmp_path(0, names[i]));
    CHECK(rmdir(tmp_dir) == 0);
    return tnd_test_finish("test_llama2c");
}
