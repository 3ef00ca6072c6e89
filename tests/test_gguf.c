/* test_gguf.c: the GGUF parser and writer: round trips of every value type, every fixture file, and handcrafted
 * broken files that must each give a clear error (right status, message naming the problem). */
#include "harness.h"

#include "core/alloc.h"
#include "gguf/gguf.h"
#include "tandem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------------------------------------------
 * A byte builder for handcrafted files
 * ---------------------------------------------------------------------------------------------------------- */

typedef struct bytes {
    uint8_t p[4096];
    size_t n;
} bytes;

static void put(bytes *b, const void *src, size_t n) {
    memcpy(b->p + b->n, src, n);
    b->n += n;
}
static void u32(bytes *b, uint32_t v) { put(b, &v, 4); }
static void u64(bytes *b, uint64_t v) { put(b, &v, 8); }
static void str(bytes *b, const char *s) {
    u64(b, strlen(s));
    put(b, s, strlen(s));
}
static void header(bytes *b, uint32_t version, uint64_t n_tensors, uint64_t n_kv) {
    b->n = 0;
    put(b, "GGUF", 4);
    u32(b, version);
    u64(b, n_tensors);
    u64(b, n_kv);
}
static void kv_u32(bytes *b, const char *key, uint32_t v) {
    str(b, key);
    u32(b, TND_VALUE_U32);
    u32(b, v);
}
/* One tensor info: 1-D or 2-D. */
static void tensor_info(bytes *b, const char *name, uint32_t n_dims, const uint64_t *ne, uint32_t type,
                        uint64_t offset) {
    str(b, name);
    u32(b, n_dims);
    for (uint32_t d = 0; d < n_dims; d++) u64(b, ne[d]);
    u32(b, type);
    u64(b, offset);
}
static void pad_data(bytes *b, size_t data_bytes) {
    while (b->n % 32) b->p[b->n++] = 0;
    memset(b->p + b->n, 0x3c, data_bytes);
    b->n += data_bytes;
}

/* Parses b and checks the status and that the message contains `needle`. */
static void expect_error(const char *what, const bytes *b, tnd_status want, const char *needle) {
    tnd_gguf *g = NULL;
    tnd_status st = tnd_gguf_parse(b->p, b->n, NULL, &g);
    bool ok = st == want && g == NULL && strstr(tnd_last_error(), needle) != NULL;
    if (!CHECK(ok))
        fprintf(stderr, "  case '%s': got %s \"%s\", want %s containing \"%s\"\n", what, tnd_status_name(st),
                tnd_last_error(), tnd_status_name(want), needle);
    tnd_gguf_free(g);
}

/* ------------------------------------------------------------------------------------------------------------
 * Broken files
 * ---------------------------------------------------------------------------------------------------------- */

static void test_broken_headers(void) {
    bytes b;
    header(&b, 3, 0, 0);
    b.p[0] = 'X';
    expect_error("bad magic", &b, TND_ERR_FORMAT, "magic");
    header(&b, 99, 0, 0);
    expect_error("bad version", &b, TND_ERR_UNSUPPORTED, "version 99");
    header(&b, 1, 0, 0);
    expect_error("version 1", &b, TND_ERR_UNSUPPORTED, "version 1");
    header(&b, 0x03000000u, 0, 0);
    expect_error("big-endian", &b, TND_ERR_UNSUPPORTED, "big-endian");
    header(&b, 3, 0, 1ull << 60);
    expect_error("absurd kv count", &b, TND_ERR_FORMAT, "more than");
    header(&b, 3, UINT64_MAX / 2, 0);
    expect_error("absurd tensor count", &b, TND_ERR_FORMAT, "more than");
    bytes t = {.n = 6};
    memcpy(t.p, "GGUF\3\0", 6);
    expect_error("truncated header", &t, TND_ERR_FORMAT, "truncated");
}

static void test_broken_metadata(void) {
    bytes b;
    header(&b, 3, 0, 2);
    kv_u32(&b, "a.key", 1);
    kv_u32(&b, "a.key", 2);
    expect_error("duplicate key", &b, TND_ERR_FORMAT, "duplicate metadata key 'a.key'");

    header(&b, 3, 0, 1);
    str(&b, "weird");
    u32(&b, 13);
    u32(&b, 0);
    expect_error("unknown value type", &b, TND_ERR_FORMAT, "unknown value type 13");

    header(&b, 3, 0, 1);
    str(&b, "s");
    u32(&b, TND_VALUE_STRING);
    u64(&b, 1000);
    put(&b, "abc", 3);
    expect_error("string past the end", &b, TND_ERR_FORMAT, "has length 1000");

    header(&b, 3, 0, 1);
    u64(&b, 1ull << 40); /* key length */
    put(&b, "filler..", 8);
    expect_error("key past the end", &b, TND_ERR_FORMAT, "metadata key");

    header(&b, 3, 0, 1);
    str(&b, "arr");
    u32(&b, TND_VALUE_ARRAY);
    u32(&b, TND_VALUE_U32);
    u64(&b, 1ull << 62); /* count * 4 overflows 64 bits */
    u32(&b, 0);
    expect_error("array count overflow", &b, TND_ERR_FORMAT, "claims");

    header(&b, 3, 0, 1);
    str(&b, "arr");
    u32(&b, TND_VALUE_ARRAY);
    u32(&b, TND_VALUE_STRING);
    u64(&b, 3);
    str(&b, "one");
    u64(&b, 500);
    put(&b, "not five hundred bytes of text", 30);
    expect_error("array string past the end", &b, TND_ERR_FORMAT, "element 1");

    header(&b, 3, 0, 1);
    str(&b, "arr");
    u32(&b, TND_VALUE_ARRAY);
    u32(&b, 77);
    u64(&b, 0);
    expect_error("unknown array element type", &b, TND_ERR_FORMAT, "unknown element type 77");

    header(&b, 3, 0, 1);
    str(&b, "deep");
    u32(&b, TND_VALUE_ARRAY);
    for (int i = 0; i < 20; i++) {
        u32(&b, TND_VALUE_ARRAY);
        u64(&b, 1);
    }
    expect_error("arrays nested too deep", &b, TND_ERR_FORMAT, "nested deeper");

    header(&b, 3, 0, 1);
    str(&b, "flag");
    u32(&b, TND_VALUE_BOOL);
    b.p[b.n++] = 2;
    expect_error("bool out of range", &b, TND_ERR_FORMAT, "not 0 or 1");

    header(&b, 3, 0, 1);
    u64(&b, 3);
    put(&b, "a\0b", 3);
    u32(&b, TND_VALUE_U8);
    b.p[b.n++] = 0;
    expect_error("NUL in key", &b, TND_ERR_FORMAT, "NUL byte");

    header(&b, 3, 0, 1);
    kv_u32(&b, "general.alignment", 3);
    expect_error("alignment not a power of two", &b, TND_ERR_FORMAT, "power of two");
}

static void test_broken_tensors(void) {
    bytes b;
    uint64_t ne2[2] = {32, 2}, ne5[5] = {1, 1, 1, 1, 1}, zero[2] = {32, 0}, huge[2] = {1ull << 40, 1ull << 40};
    uint64_t one[1] = {32};

    header(&b, 3, 1, 0);
    tensor_info(&b, "t5", 5, ne5, TND_TYPE_F32, 0);
    pad_data(&b, 64);
    expect_error("n_dims > 4", &b, TND_ERR_FORMAT, "n_dims 5");

    header(&b, 3, 1, 0);
    tensor_info(&b, "z", 2, zero, TND_TYPE_F32, 0);
    pad_data(&b, 64);
    expect_error("zero dim", &b, TND_ERR_FORMAT, "'z': dimension 1 is 0");

    header(&b, 3, 1, 0);
    tensor_info(&b, "big", 2, huge, TND_TYPE_F32, 0);
    pad_data(&b, 64);
    expect_error("element count overflow", &b, TND_ERR_FORMAT, "'big'");

    header(&b, 3, 1, 0);
    tensor_info(&b, "odd", 1, (uint64_t[]){33}, TND_TYPE_Q4_0, 0);
    pad_data(&b, 64);
    expect_error("row not a multiple of the block", &b, TND_ERR_FORMAT, "multiple of the q4_0 block");

    header(&b, 3, 1, 0);
    tensor_info(&b, "ty", 2, ne2, 5, 0); /* 5 is a retired type number */
    pad_data(&b, 256);
    expect_error("unknown tensor type", &b, TND_ERR_UNSUPPORTED, "unknown tensor type 5");

    header(&b, 3, 1, 0);
    tensor_info(&b, "long", 2, ne2, TND_TYPE_F32, 0);
    pad_data(&b, 100); /* needs 256 */
    expect_error("data past the end", &b, TND_ERR_FORMAT, "'long': data at offset 0 + 256 bytes runs past");

    header(&b, 3, 1, 0);
    tensor_info(&b, "mis", 1, one, TND_TYPE_F32, 8);
    pad_data(&b, 256);
    expect_error("misaligned offset", &b, TND_ERR_FORMAT, "'mis': data offset 8 is not a multiple");

    header(&b, 3, 2, 0);
    tensor_info(&b, "a", 1, one, TND_TYPE_F32, 0);   /* bytes [0, 128) */
    tensor_info(&b, "b", 1, one, TND_TYPE_F32, 96);  /* bytes [96, 224) */
    pad_data(&b, 256);
    expect_error("overlapping tensors", &b, TND_ERR_FORMAT, "'a' and 'b' overlap");

    header(&b, 3, 2, 0);
    tensor_info(&b, "same", 1, one, TND_TYPE_F32, 0);
    tensor_info(&b, "same", 1, one, TND_TYPE_F32, 128);
    pad_data(&b, 256);
    expect_error("duplicate tensor", &b, TND_ERR_FORMAT, "duplicate tensor name 'same'");

    header(&b, 3, 1, 0);
    tensor_info(&b, "far", 1, one, TND_TYPE_F32, UINT64_MAX - 31);
    pad_data(&b, 128);
    expect_error("offset overflow", &b, TND_ERR_FORMAT, "'far'");
}

/* ------------------------------------------------------------------------------------------------------------
 * Round trips through the writer
 * ---------------------------------------------------------------------------------------------------------- */

static uint8_t *write_sample(uint64_t *size, const float *data) {
    tnd_gguf_writer *w = tnd_gguf_writer_init(NULL);
    uint8_t u8v = 200;
    int8_t i8v = -100;
    uint16_t u16v = 60000;
    int16_t i16v = -30000;
    uint64_t u64v = 1ull << 50;
    int64_t i64v = -(1ll << 50);
    double f64v = 3.25;
    CHECK_OK(tnd_gguf_writer_set_scalar(w, "t.u8", TND_VALUE_U8, &u8v));
    CHECK_OK(tnd_gguf_writer_set_scalar(w, "t.i8", TND_VALUE_I8, &i8v));
    CHECK_OK(tnd_gguf_writer_set_scalar(w, "t.u16", TND_VALUE_U16, &u16v));
    CHECK_OK(tnd_gguf_writer_set_scalar(w, "t.i16", TND_VALUE_I16, &i16v));
    CHECK_OK(tnd_gguf_writer_set_u32(w, "t.u32", 4000000000u));
    CHECK_OK(tnd_gguf_writer_set_i32(w, "t.i32", -7));
    CHECK_OK(tnd_gguf_writer_set_f32(w, "t.f32", 0.5f));
    CHECK_OK(tnd_gguf_writer_set_bool(w, "t.bool", true));
    CHECK_OK(tnd_gguf_writer_set_scalar(w, "t.u64", TND_VALUE_U64, &u64v));
    CHECK_OK(tnd_gguf_writer_set_scalar(w, "t.i64", TND_VALUE_I64, &i64v));
    CHECK_OK(tnd_gguf_writer_set_scalar(w, "t.f64", TND_VALUE_F64, &f64v));
    CHECK_OK(tnd_gguf_writer_set_str(w, "t.str", "héllo"));
    CHECK_OK(tnd_gguf_writer_set_str(w, "t.replaced", "first"));
    CHECK_OK(tnd_gguf_writer_set_str(w, "t.replaced", "second"));
    const char *strs[3] = {"a", "", "ccc"};
    CHECK_OK(tnd_gguf_writer_set_array_str(w, "t.strs", strs, NULL, 3));
    float fl[4] = {1, -2, 3.5f, 1e30f};
    CHECK_OK(tnd_gguf_writer_set_array(w, "t.floats", TND_VALUE_F32, fl, 4));
    CHECK_OK(tnd_gguf_writer_set_array(w, "t.empty", TND_VALUE_I32, NULL, 0));
    int64_t ne[2] = {64, 3};
    CHECK_OK(tnd_gguf_writer_add_tensor(w, "weight", TND_TYPE_F32, 2, ne, data));
    CHECK_OK(tnd_gguf_writer_add_tensor(w, "bias", TND_TYPE_F32, 1, ne, data));
    uint8_t *out = NULL;
    CHECK_OK(tnd_gguf_writer_write_mem(w, &out, size));
    tnd_gguf_writer_free(w);
    return out;
}

static void check_sample(const tnd_gguf *g, const float *data) {
    int64_t i = 0;
    double d = 0;
    tnd_gguf_str s = {0};
    CHECK(g->version == 3 && g->n_kv == 16 && g->n_tensors == 2);
    CHECK(tnd_gguf_get_int(g, "t.u8", &i) == TND_OK && i == 200);
    CHECK(tnd_gguf_get_int(g, "t.i8", &i) == TND_OK && i == -100);
    CHECK(tnd_gguf_get_int(g, "t.u16", &i) == TND_OK && i == 60000);
    CHECK(tnd_gguf_get_int(g, "t.i16", &i) == TND_OK && i == -30000);
    CHECK(tnd_gguf_get_int(g, "t.u32", &i) == TND_OK && i == 4000000000ll);
    CHECK(tnd_gguf_get_int(g, "t.i32", &i) == TND_OK && i == -7);
    CHECK(tnd_gguf_get_float(g, "t.f32", &d) == TND_OK && d == 0.5);
    CHECK(tnd_gguf_get_int(g, "t.bool", &i) == TND_OK && i == 1);
    CHECK(tnd_gguf_get_int(g, "t.u64", &i) == TND_OK && i == (1ll << 50));
    CHECK(tnd_gguf_get_int(g, "t.i64", &i) == TND_OK && i == -(1ll << 50));
    CHECK(tnd_gguf_get_float(g, "t.f64", &d) == TND_OK && d == 3.25);
    CHECK(tnd_gguf_get_str(g, "t.str", &s) == TND_OK && s.len == 6 && memcmp(s.ptr, "héllo", 6) == 0);
    CHECK(tnd_gguf_get_str(g, "t.replaced", &s) == TND_OK && s.len == 6 && memcmp(s.ptr, "second", 6) == 0);
    CHECK(tnd_gguf_get_int(g, "t.str", &i) == TND_ERR_TYPE && strstr(tnd_last_error(), "'t.str' is a string"));
    CHECK(tnd_gguf_get_int(g, "t.missing", &i) == TND_ERR_NOT_FOUND && strstr(tnd_last_error(), "t.missing"));
    const tnd_gguf_value *v = NULL;
    CHECK(tnd_gguf_get_array(g, "t.strs", TND_VALUE_STRING, &v) == TND_OK && v->count == 3 &&
          v->strings[0].len == 1 && v->strings[1].len == 0 && memcmp(v->strings[2].ptr, "ccc", 3) == 0);
    CHECK(tnd_gguf_get_array(g, "t.floats", TND_VALUE_F32, &v) == TND_OK && v->count == 4);
    CHECK(tnd_gguf_array_float(v, 3, &d) && d == (double)1e30f);
    CHECK(!tnd_gguf_array_float(v, 4, &d));
    CHECK(tnd_gguf_get_array(g, "t.floats", TND_VALUE_I32, &v) == TND_ERR_TYPE);
    CHECK(tnd_gguf_get_array(g, "t.empty", TND_VALUE_I32, &v) == TND_OK && v->count == 0);
    int64_t w = tnd_gguf_find_tensor(g, "weight"), b = tnd_gguf_find_tensor(g, "bias");
    CHECK(w == 0 && b == 1 && tnd_gguf_find_tensor(g, "nope") == -1);
    const tnd_gguf_tensor *tw = &g->tensors[0], *tb = &g->tensors[1];
    CHECK(tw->n_dims == 2 && tw->ne[0] == 64 && tw->ne[1] == 3 && tw->ne[2] == 1 && tw->size == 64 * 3 * 4);
    CHECK(tw->offset % 32 == 0 && memcmp(tw->data, data, tw->size) == 0);
    CHECK(tb->n_dims == 1 && tb->size == 256 && memcmp(tb->data, data, 256) == 0);
}

static void test_round_trip(void) {
    float data[192];
    for (int i = 0; i < 192; i++) data[i] = (float)i * 0.25f - 7;
    uint64_t size = 0;
    uint8_t *file = write_sample(&size, data);
    tnd_gguf *g = NULL;
    if (!CHECK_OK(tnd_gguf_parse(file, size, NULL, &g))) {
        free(file);
        return;
    }
    check_sample(g, data);

    /* copy_meta + the same tensors reproduce the file byte for byte */
    tnd_gguf_writer *w = tnd_gguf_writer_init(NULL);
    CHECK_OK(tnd_gguf_writer_copy_meta(w, g));
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const tnd_gguf_tensor *t = &g->tensors[i];
        CHECK_OK(tnd_gguf_writer_add_tensor(w, t->name, t->type, t->n_dims, t->ne, t->data));
    }
    uint8_t *copy = NULL;
    uint64_t copy_size = 0;
    CHECK_OK(tnd_gguf_writer_write_mem(w, &copy, &copy_size));
    CHECK(copy_size == size && memcmp(copy, file, size) == 0);
    tnd_gguf_writer_free(w);
    tnd_free(NULL, copy);

    /* every proper prefix of the file is rejected cleanly */
    int clean = 0;
    for (uint64_t n = 0; n < size; n++) {
        tnd_gguf *p = NULL;
        tnd_status st = tnd_gguf_parse(file, n, NULL, &p);
        clean += st == TND_ERR_FORMAT && p == NULL && tnd_last_error()[0];
        tnd_gguf_free(p);
    }
    CHECK(clean == (int)size);
    tnd_gguf_free(g);
    tnd_free(NULL, file);
}

/* ------------------------------------------------------------------------------------------------------------
 * Fixtures and the public API
 * ---------------------------------------------------------------------------------------------------------- */

static void test_fixtures(void) {
    static const struct {
        const char *file;
        const char *arch;
        int64_t n_tensors;
    } cases[] = {
        {"models/llama-tiny-f32.gguf", "llama", 21},      {"models/llama-tiny-q4_k_m.gguf", "llama", 21},
        {"models/llama3-tiny-q8_0.gguf", "llama", 22},    {"models/qwen2-tiny-f32.gguf", "qwen2", 26},
        {"models/qwen3-tiny-q4_k_m.gguf", "qwen3", 24},   {"models/qwen2moe-tiny-q8_0.gguf", "qwen2moe", 37},
        {"real/stories260K.gguf", "llama", 48},           {"vocab/ggml-vocab-gpt-2.gguf", "gpt2", 0},
        {"vocab/ggml-vocab-llama-spm.gguf", "llama", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tnd_model_params params = tnd_model_default_params();
        params.use_mmap = (int)(i % 2); /* both the mapping and the read fallback */
        tnd_model *m = NULL;
        if (!CHECK_OK(tnd_model_open(tnd_fixture(cases[i].file), &params, &m))) continue;
        const char *arch = NULL;
        size_t len = 0;
        CHECK(tnd_model_meta_string(m, "general.architecture", &arch, &len) == TND_OK &&
              len == strlen(cases[i].arch) && memcmp(arch, cases[i].arch, len) == 0);
        CHECK(tnd_model_tensor_count(m) == cases[i].n_tensors);
        uint64_t n_tok = 0;
        tnd_value_type et;
        CHECK(tnd_model_meta_array(m, "tokenizer.ggml.tokens", &et, &n_tok) == TND_OK && et == TND_VALUE_STRING &&
              n_tok > 0);
        const char *piece = NULL;
        CHECK(tnd_model_meta_array_string(m, "tokenizer.ggml.tokens", n_tok - 1, &piece, &len) == TND_OK);
        CHECK(tnd_model_meta_array_string(m, "tokenizer.ggml.tokens", n_tok, &piece, &len) ==
              TND_ERR_INVALID_ARGUMENT);
        uint64_t total = 0;
        for (int64_t t = 0; t < tnd_model_tensor_count(m); t++) {
            tnd_tensor_info info;
            CHECK_OK(tnd_model_tensor_at(m, t, &info));
            CHECK(tnd_model_tensor_find(m, info.name) == t);
            CHECK(info.offset + info.size <= tnd_model_file_size(m) && info.data != NULL);
            total += info.size;
        }
        CHECK(total <= tnd_model_file_size(m));
        tnd_model_close(m);
    }
    tnd_model *m = NULL;
    CHECK(tnd_model_open(tnd_fixture("models/does-not-exist.gguf"), NULL, &m) == TND_ERR_IO && m == NULL &&
          strstr(tnd_last_error(), "does-not-exist.gguf"));
    CHECK(tnd_model_open(tnd_fixture("models/llama-tiny-f32.ref-exact.logits.f32"), NULL, &m) == TND_ERR_FORMAT &&
          strstr(tnd_last_error(), "magic"));
    CHECK(tnd_model_open(NULL, NULL, &m) == TND_ERR_INVALID_ARGUMENT);
}

int main(void) {
    test_broken_headers();
    test_broken_metadata();
    test_broken_tensors();
    test_round_trip();
    test_fixtures();
    return tnd_test_finish("test_gguf");
}
