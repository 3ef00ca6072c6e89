/* test_tokenizer.c: every fixture vocabulary against its expected token ids (100% exact), decode(encode(x)) == x on
 * the vectors, on random valid UTF-8 and on random bytes, streaming decoding, special tokens, the size and error
 * conventions of the public API, metadata the tokenizer must refuse, and thread safety. */
#include "harness.h"

#include "gguf/gguf.h"
#include "tandem.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <utf8proc.h>

static const char *const vocab_names[] = {"llama-spm", "gpt-2", "deepseek-llm", "falcon", "starcoder"};
enum { N_VOCABS = sizeof vocab_names / sizeof vocab_names[0] };

/* ------------------------------------------------------------------------------------------------------------
 * Helpers
 * ---------------------------------------------------------------------------------------------------------- */

typedef struct loaded {
    tnd_model *model;
    tnd_tokenizer *tok;
} loaded;

static loaded load_vocab(const char *name) {
    char rel[256];
    snprintf(rel, sizeof rel, "vocab/ggml-vocab-%s.gguf", name);
    loaded l = {0};
    if (!CHECK_OK(tnd_model_open(tnd_fixture(rel), NULL, &l.model))) return l;
    if (!CHECK_OK(tnd_tokenizer_init(l.model, &l.tok))) {
        tnd_model_close(l.model);
        l.model = NULL;
    }
    return l;
}

static void unload(loaded *l) {
    tnd_tokenizer_free(l->tok);
    tnd_model_close(l->model);
}

/* Encodes into a malloc'ed array (*n tokens); NULL on error. Uses the size query first, checking it. */
static int32_t *encode(const tnd_tokenizer *tok, const char *text, size_t len, uint32_t flags, int32_t *n) {
    int32_t need = tnd_tokenizer_encode(tok, text, len, flags, NULL, 0);
    if (need == TND_TOKENIZE_ERROR) return NULL;
    int32_t cap = need < 0 ? -need : need;
    int32_t *ids = malloc(sizeof *ids * (size_t)(cap + 1));
    int32_t got = tnd_tokenizer_encode(tok, text, len, flags, ids, cap);
    if (got != cap) {
        fprintf(stderr, "encode: size query said %d, encode gave %d\n", cap, got);
        free(ids);
        return NULL;
    }
    *n = got;
    return ids;
}

/* Decodes into a malloc'ed buffer (*len bytes); NULL on error. */
static char *decode(const tnd_tokenizer *tok, const int32_t *ids, int32_t n, uint32_t flags, int32_t *len) {
    int32_t need = tnd_tokenizer_decode(tok, ids, n, flags, NULL, 0);
    if (need == TND_TOKENIZE_ERROR) return NULL;
    int32_t cap = need < 0 ? -need : need;
    char *buf = malloc((size_t)cap + 1);
    int32_t got = tnd_tokenizer_decode(tok, ids, n, flags, buf, cap);
    if (got != cap) {
        free(buf);
        return NULL;
    }
    *len = got;
    return buf;
}

static void print_ids(const char *what, const int32_t *ids, int32_t n) {
    fprintf(stderr, "  %s:", what);
    for (int32_t i = 0; i < n; i++) fprintf(stderr, " %d", ids[i]);
    fprintf(stderr, "\n");
}

/* Deterministic generator (xorshift64*). */
static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint32_t rnd(uint32_t bound) {
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (uint32_t)((rng_state * 0x2545F4914F6CDD1Dull) >> 33) % bound;
}

/* Appends the UTF-8 form of cp (utf8proc's encoder, independent of the code under test). */
static size_t put_cp(char *dst, int32_t cp) { return (size_t)utf8proc_encode_char(cp, (utf8proc_uint8_t *)dst); }

/* A random well-formed UTF-8 string of up to max_chars characters drawn from scripts real text has, plus any
 * Unicode scalar value now and then. U+2581 is left out when `no_marker` (SPM decodes it as a space). */
static size_t random_utf8(char *dst, int max_chars, bool no_marker) {
    static const int32_t ranges[][2] = {
        {0x20, 0x7E}, {0x20, 0x20}, {0x0A, 0x0A}, {0x09, 0x09}, {0x30, 0x39}, {0xA0, 0x17F}, {0x300, 0x36F},
        {0x391, 0x3C9}, {0x410, 0x44F}, {0x5D0, 0x5EA}, {0x900, 0x97F}, {0x1780, 0x17FF}, {0x2000, 0x206F},
        {0x3040, 0x30FF}, {0x4E00, 0x9FFF}, {0xAC00, 0xD7A3}, {0xFF01, 0xFF5E}, {0x1F300, 0x1F6FF},
        {0x1F900, 0x1F9FF}, {0x0, 0x10FFFF},
    };
    int n = 1 + (int)rnd((uint32_t)max_chars);
    size_t len = 0;
    for (int i = 0; i < n; i++) {
        const int32_t *r = ranges[rnd(sizeof ranges / sizeof ranges[0])];
        int32_t cp = r[0] + (int32_t)rnd((uint32_t)(r[1] - r[0] + 1));
        if ((cp >= 0xD800 && cp <= 0xDFFF) || (no_marker && cp == 0x2581)) cp = 'x';
        len += put_cp(dst + len, cp);
    }
    return len;
}

/* GPT-2's byte-to-character table, written out from its definition: bytes printable in Latin-1 stand for
 * themselves, the others in order for U+0100 onwards. */
static int byte_level_cp(int b) {
#define PRINTABLE(c) (((c) >= '!' && (c) <= '~') || ((c) >= 0xA1 && (c) <= 0xAC) || (c) >= 0xAE)
    if (PRINTABLE(b)) return b;
    int off = 0;
    for (int c = 0; c < b; c++) off += !PRINTABLE(c);
    return 256 + off;
#undef PRINTABLE
}

/* What decode(encode(x)) must give for a vocabulary, found through vocabulary queries rather than the encoder:
 * in a byte-level vocabulary, a byte without a token is lost, and a byte whose character is a user-defined token
 * (DeepSeek reuses the slots of bytes that never occur in UTF-8, 0xC0, 0xC1, 0xF5..0xFF, for "\xc3\xbf" and
 * the like) decodes as that token's text. The SPM vocabulary here has byte fallback for every byte. */
static size_t representable(const tnd_tokenizer *tok, bool byte_level, const char *x, size_t n, char *dst) {
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (!byte_level) {
            dst[k++] = x[i];
            continue;
        }
        char u[4];
        size_t ul = put_cp(u, byte_level_cp((uint8_t)x[i]));
        int32_t id = tnd_tokenizer_find(tok, u, ul);
        if (id >= 0 && tnd_tokenizer_token_type(tok, id) == TND_TOKEN_TYPE_USER_DEFINED) {
            memcpy(dst + k, u, ul);
            k += ul;
        } else if (id >= 0) {
            dst[k++] = x[i];
        }
    }
    return k;
}

/* ------------------------------------------------------------------------------------------------------------
 * Fixture vectors
 * ---------------------------------------------------------------------------------------------------------- */

typedef struct vectors {
    char *inp, *out; /* file contents (inputs are cut in place) */
    const char *text[128];
    size_t len[128];
    const char *expected[128]; /* one line of ids each */
    int n;
} vectors;

static bool load_vectors(const char *name, vectors *v) {
    memset(v, 0, sizeof *v);
    char rel[256];
    size_t n_inp = 0, n_out = 0;
    snprintf(rel, sizeof rel, "vocab/ggml-vocab-%s.gguf.inp", name);
    v->inp = (char *)tnd_test_read_file(tnd_fixture(rel), &n_inp);
    snprintf(rel, sizeof rel, "vocab/ggml-vocab-%s.gguf.out", name);
    v->out = (char *)tnd_test_read_file(tnd_fixture(rel), &n_out);
    if (!CHECK(v->inp && v->out)) return false;
    v->inp = realloc(v->inp, n_inp + 1);
    v->inp[n_inp] = 0;
    v->out = realloc(v->out, n_out + 1);
    v->out[n_out] = 0;
    /* inputs: each followed by "\n__ggml_vocab_test__\n" */
    static const char sep[] = "\n__ggml_vocab_test__\n";
    char *p = v->inp;
    for (char *s; (s = strstr(p, sep)) && v->n < 128; p = s + sizeof sep - 1) {
        v->text[v->n] = p;
        v->len[v->n] = (size_t)(s - p);
        v->n++;
    }
    /* outputs: one line each */
    int lines = 0;
    for (char *q = v->out; *q && lines < 128; lines++) {
        v->expected[lines] = q;
        char *nl = strchr(q, '\n');
        if (!nl) break;
        *nl = 0;
        q = nl + 1;
    }
    return CHECK(v->n > 0 && lines == v->n);
}

static int32_t parse_ids(const char *line, int32_t *ids) {
    int32_t n = 0;
    for (char *end; *line; line = end) {
        long x = strtol(line, &end, 10);
        if (end == line) break;
        ids[n++] = (int32_t)x;
    }
    return n;
}

static void test_vectors(const char *name, const tnd_tokenizer *tok) {
    vectors v;
    if (!load_vectors(name, &v)) return;
    int pass = 0, roundtrip = 0;
    bool byte_level = tnd_tokenizer_find(tok, "\xc4\xa0", 2) >= 0 && tnd_tokenizer_find(tok, "<0x0A>", 6) < 0;
    for (int i = 0; i < v.n; i++) {
        int32_t want[4096], n_want = parse_ids(v.expected[i], want), n = 0;
        int32_t *got = encode(tok, v.text[i], v.len[i], 0, &n);
        if (!CHECK(got != NULL)) continue;
        if (n == n_want && memcmp(got, want, sizeof *got * (size_t)n) == 0) {
            pass++;
        } else {
            fprintf(stderr, "%s: vector %d '%.*s' differs\n", name, i, (int)v.len[i], v.text[i]);
            print_ids("expected", want, n_want);
            print_ids("got     ", got, n);
        }
        int32_t dn = 0;
        char *back = decode(tok, got, n, 0, &dn);
        char want_text[8192];
        size_t wn = representable(tok, byte_level, v.text[i], v.len[i], want_text);
        if (back && (size_t)dn == wn && memcmp(back, want_text, wn) == 0) roundtrip++;
        else fprintf(stderr, "%s: vector %d does not decode back to its text\n", name, i);
        free(back);
        free(got);
    }
    printf("%-13s %d/%d vectors exact, %d/%d decode back to the input\n", name, pass, v.n, roundtrip, v.n);
    CHECK(pass == v.n);
    CHECK(roundtrip == v.n);
    free(v.inp);
    free(v.out);
}

/* ------------------------------------------------------------------------------------------------------------
 * Round trips on random text, streaming
 * ---------------------------------------------------------------------------------------------------------- */

/* Decodes ids through a detokenizer one token at a time; checks every chunk is well-formed UTF-8 when the whole
 * text is, and that the chunks add up to the sequence decode. */
static void check_stream(const tnd_tokenizer *tok, const int32_t *ids, int32_t n, const char *whole, int32_t whole_len,
                         bool valid_text) {
    tnd_detokenizer *det = NULL;
    if (!CHECK_OK(tnd_detokenizer_init(tok, 0, &det))) return;
    char *acc = malloc((size_t)whole_len + 16);
    int32_t acc_n = 0;
    bool chunks_valid = true, fits = true;
    for (int32_t i = 0; i < n; i++) {
        char chunk[1024];
        int32_t k = tnd_detokenizer_push(det, ids[i], chunk, sizeof chunk);
        if (k < 0 || acc_n + k > whole_len) {
            fits = false;
            break;
        }
        if (valid_text && utf8proc_decompose((const utf8proc_uint8_t *)chunk, k, NULL, 0, 0) < 0) chunks_valid = false;
        memcpy(acc + acc_n, chunk, (size_t)k);
        acc_n += k;
    }
    char tail[8];
    int32_t k = tnd_detokenizer_finish(det, tail, sizeof tail);
    if (k >= 0 && acc_n + k <= whole_len) {
        memcpy(acc + acc_n, tail, (size_t)k);
        acc_n += k;
    } else {
        fits = false;
    }
    CHECK(fits && acc_n == whole_len && memcmp(acc, whole, (size_t)acc_n) == 0);
    CHECK(chunks_valid);
    free(acc);
    tnd_detokenizer_free(det);
}

static void test_random_roundtrip(const char *name, const tnd_tokenizer *tok) {
    bool spm = tnd_tokenizer_find(tok, "<0x0A>", 6) >= 0;
    bool byte_level = !spm;
    int ok_utf8 = 0, ok_bytes = 0, ok_stream = 0;
    enum { N = 300 };
    for (int iter = 0; iter < 2 * N; iter++) {
        bool bytes = iter >= N;
        char x[1024], want[2048];
        size_t xn;
        if (bytes) {
            xn = 1 + rnd(200);
            for (size_t i = 0; i < xn; i++) x[i] = (char)rnd(256);
            /* SPM turns a literal U+2581 into a space; keep random bytes from forming one */
            if (spm)
                for (size_t i = 0; i + 2 < xn; i++)
                    if (!memcmp(x + i, "\xE2\x96\x81", 3)) x[i] = 'x';
        } else {
            xn = random_utf8(x, 60, spm);
        }
        size_t wn = representable(tok, byte_level, x, xn, want);
        int32_t n = 0, dn = 0;
        int32_t *ids = encode(tok, x, xn, 0, &n);
        if (!CHECK(ids != NULL)) continue;
        char *back = decode(tok, ids, n, 0, &dn);
        bool ok = back && (size_t)dn == wn && memcmp(back, want, wn) == 0;
        if (!ok) {
            fprintf(stderr, "%s: random %s input %d does not decode back (%zu bytes in, %d out)\n", name,
                    bytes ? "byte" : "UTF-8", iter, wn, dn);
        }
        if (bytes) ok_bytes += ok;
        else ok_utf8 += ok;
        if (back) {
            int before = tnd_test_failures;
            bool valid = utf8proc_decompose((const utf8proc_uint8_t *)back, dn, NULL, 0, 0) >= 0;
            check_stream(tok, ids, n, back, dn, valid);
            ok_stream += tnd_test_failures == before;
        }
        free(back);
        free(ids);
    }
    printf("%-13s round trip: %d/%d random UTF-8, %d/%d random bytes; streaming %d/%d\n", name, ok_utf8, N,
           ok_bytes, N, ok_stream, 2 * N);
    CHECK(ok_utf8 == N && ok_bytes == N);
}

/* Long runs of one kind of character must neither fail nor take quadratic time, and must decode back. */
static void test_long_runs(const char *name, const tnd_tokenizer *tok) {
    static const char *const units[] = {" ", "a", "7", "\n", "\xe4\xb8\x80", "!", " a", "\t\n"};
    enum { LEN = 200000 };
    char *x = malloc(LEN + 8);
    for (size_t u = 0; u < sizeof units / sizeof units[0]; u++) {
        size_t ul = strlen(units[u]), n = 0;
        while (n + ul <= LEN) {
            memcpy(x + n, units[u], ul);
            n += ul;
        }
        int32_t count = 0, dn = 0;
        int32_t *ids = encode(tok, x, n, 0, &count);
        if (!CHECK(ids != NULL)) continue;
        char *back = decode(tok, ids, count, 0, &dn);
        if (!CHECK(back && (size_t)dn == n && memcmp(back, x, n) == 0))
            fprintf(stderr, "%s: a long run of '%s' does not decode back\n", name, units[u]);
        free(back);
        free(ids);
    }
    free(x);
}

/* ------------------------------------------------------------------------------------------------------------
 * Special tokens, flags, conventions
 * ---------------------------------------------------------------------------------------------------------- */

static bool ids_equal(const int32_t *a, int32_t na, const int32_t *b, int32_t nb) {
    return na == nb && (na == 0 || memcmp(a, b, sizeof *a * (size_t)na) == 0);
}

static bool contains(const int32_t *ids, int32_t n, int32_t id) {
    for (int32_t i = 0; i < n; i++)
        if (ids[i] == id) return true;
    return false;
}

static void test_special_spm(const tnd_tokenizer *tok) {
    int32_t bos = tnd_tokenizer_special(tok, TND_TOKEN_BOS), eos = tnd_tokenizer_special(tok, TND_TOKEN_EOS);
    CHECK(bos == 1 && eos == 2 && tnd_tokenizer_special(tok, TND_TOKEN_UNK) == 0);
    CHECK(tnd_tokenizer_adds_bos(tok) == 1 && tnd_tokenizer_adds_eos(tok) == 0);
    CHECK(tnd_tokenizer_is_eog(tok, eos) && !tnd_tokenizer_is_eog(tok, bos));
    CHECK(tnd_tokenizer_token_type(tok, bos) == TND_TOKEN_TYPE_CONTROL);
    CHECK(tnd_tokenizer_token_type(tok, 3) == TND_TOKEN_TYPE_BYTE);

    int32_t n = 0, n_hello = 0, n_world = 0;
    int32_t *ids = encode(tok, "<s>", 3, TND_TOKENIZE_PARSE_SPECIAL, &n);
    CHECK(ids && n == 1 && ids[0] == bos);
    free(ids);
    ids = encode(tok, "<s>", 3, 0, &n);
    CHECK(ids && n > 1 && !contains(ids, n, bos));
    free(ids);
    /* text after a special token gets the space prefix again, as at the start */
    int32_t *hello = encode(tok, "Hello", 5, 0, &n_hello), *world = encode(tok, "world", 5, 0, &n_world);
    ids = encode(tok, "Hello<s>world", 13, TND_TOKENIZE_PARSE_SPECIAL, &n);
    int32_t want[64], nw = 0;
    for (int32_t i = 0; hello && i < n_hello; i++) want[nw++] = hello[i];
    want[nw++] = bos;
    for (int32_t i = 0; world && i < n_world; i++) want[nw++] = world[i];
    CHECK(ids && ids_equal(ids, n, want, nw));
    free(ids);
    /* BOS is added with ADD_SPECIAL; EOS is not (add_eos_token false) */
    ids = encode(tok, "Hello", 5, TND_TOKENIZE_ADD_SPECIAL, &n);
    CHECK(ids && n == n_hello + 1 && ids[0] == bos && ids_equal(ids + 1, n - 1, hello, n_hello));
    free(ids);
    ids = encode(tok, "", 0, TND_TOKENIZE_ADD_SPECIAL, &n);
    CHECK(ids && n == 1 && ids[0] == bos);
    free(ids);
    /* decoding hides control tokens unless asked, and removes the space prefix once */
    int32_t seq[] = {bos, hello ? hello[0] : 0, eos};
    int32_t dn = 0;
    char *text = decode(tok, seq, 3, 0, &dn);
    CHECK(text && dn == 5 && !memcmp(text, "Hello", 5));
    free(text);
    text = decode(tok, seq, 3, TND_DETOKENIZE_SPECIAL, &dn);
    CHECK(text && dn == 13 && !memcmp(text, "<s> Hello</s>", 13));
    free(text);
    text = decode(tok, seq, 3, TND_DETOKENIZE_KEEP_SPACE, &dn);
    CHECK(text && dn == 6 && !memcmp(text, " Hello", 6));
    free(text);
    size_t pl = 0;
    const char *piece = tnd_tokenizer_piece(tok, hello ? hello[0] : 0, 0, &pl);
    CHECK(piece && pl == 6 && !memcmp(piece, " Hello", 6));
    piece = tnd_tokenizer_piece(tok, 3 + 0x0A, 0, &pl); /* <0x0A> */
    CHECK(piece && pl == 1 && piece[0] == '\n');
    piece = tnd_tokenizer_piece(tok, bos, 0, &pl);
    CHECK(piece && pl == 0);
    size_t tl = 0;
    const char *raw = tnd_tokenizer_token_text(tok, hello ? hello[0] : 0, &tl);
    CHECK(raw && tl == 8 && !memcmp(raw, "\xe2\x96\x81Hello", 8));
    CHECK(tnd_tokenizer_find(tok, "\xe2\x96\x81Hello", 8) == (hello ? hello[0] : -2));
    free(hello);
    free(world);
}

static void test_special_bpe(const tnd_tokenizer *gpt2, const tnd_tokenizer *deepseek) {
    int32_t n = 0;
    int32_t *ids = encode(gpt2, "a<|endoftext|>b", 15, TND_TOKENIZE_PARSE_SPECIAL, &n);
    CHECK(ids && n == 3 && ids[1] == 50256);
    free(ids);
    ids = encode(gpt2, "a<|endoftext|>b", 15, 0, &n);
    CHECK(ids && n > 3 && !contains(ids, n, 50256));
    free(ids);
    CHECK(tnd_tokenizer_adds_bos(gpt2) == 0);
    ids = encode(gpt2, "Hi", 2, TND_TOKENIZE_ADD_SPECIAL, &n);
    CHECK(ids && n == 1);
    free(ids);
    CHECK(tnd_tokenizer_is_eog(gpt2, 50256));

    /* user-defined tokens are matched whole even without PARSE_SPECIAL; the longest one at the leftmost place */
    ids = encode(deepseek, "x[PAD100015]y", 13, 0, &n);
    CHECK(ids && n == 3 && ids[1] == 100015);
    free(ids);
    CHECK(tnd_tokenizer_token_type(deepseek, 100015) == TND_TOKEN_TYPE_USER_DEFINED);
    ids = encode(deepseek, "Hello", 5, TND_TOKENIZE_ADD_SPECIAL, &n);
    CHECK(ids && n >= 2 && ids[0] == 100000 && ids[0] == tnd_tokenizer_special(deepseek, TND_TOKEN_BOS));
    free(ids);
    /* DeepSeek's end of sentence is found as EOS and ends generation */
    CHECK(tnd_tokenizer_is_eog(deepseek, 100001));
}

static void test_conventions(const tnd_tokenizer *tok) {
    const char *text = "Hello world, this is a test.";
    size_t len = strlen(text);
    int32_t full = tnd_tokenizer_encode(tok, text, len, 0, NULL, 0);
    CHECK(full < 0 && full != TND_TOKENIZE_ERROR);
    int32_t need = -full, buf[64] = {0};
    CHECK(tnd_tokenizer_encode(tok, text, len, 0, buf, 1) == full); /* too small: -required again */
    int32_t first = buf[0];
    CHECK(tnd_tokenizer_encode(tok, text, len, 0, buf, need) == need);
    CHECK(buf[0] == first);
    CHECK(tnd_tokenizer_encode(tok, "", 0, 0, NULL, 0) == 0);
    CHECK(tnd_tokenizer_encode(NULL, text, len, 0, buf, 64) == TND_TOKENIZE_ERROR);
    CHECK(tnd_tokenizer_encode(tok, NULL, 3, 0, buf, 64) == TND_TOKENIZE_ERROR);
    CHECK(tnd_tokenizer_encode(tok, text, len, 0, NULL, 4) == TND_TOKENIZE_ERROR);
    CHECK(tnd_tokenizer_encode(tok, text, len, 0, buf, -1) == TND_TOKENIZE_ERROR);
    CHECK(tnd_tokenizer_encode(tok, text, len, 0x100, buf, 64) == TND_TOKENIZE_ERROR);
    CHECK(strstr(tnd_last_error(), "flags") != NULL);

    char out[256];
    int32_t dn = tnd_tokenizer_decode(tok, buf, need, 0, NULL, 0);
    CHECK(dn == -(int32_t)len);
    CHECK(tnd_tokenizer_decode(tok, buf, need, 0, out, 3) == dn);
    CHECK(tnd_tokenizer_decode(tok, buf, need, 0, out, sizeof out) == (int32_t)len && !memcmp(out, text, len));
    int32_t bad[2] = {buf[0], tnd_tokenizer_n_vocab(tok)};
    CHECK(tnd_tokenizer_decode(tok, bad, 2, 0, out, sizeof out) == TND_TOKENIZE_ERROR);
    CHECK(strstr(tnd_last_error(), "position 1") != NULL);
    bad[1] = -1;
    CHECK(tnd_tokenizer_decode(tok, bad, 2, 0, out, sizeof out) == TND_TOKENIZE_ERROR);
    CHECK(tnd_tokenizer_piece(tok, -1, 0, NULL) == NULL);
    CHECK(tnd_tokenizer_piece(tok, tnd_tokenizer_n_vocab(tok), 0, NULL) == NULL);
    CHECK(tnd_tokenizer_token_text(tok, -5, NULL) == NULL);
    CHECK(tnd_tokenizer_token_type(tok, 1 << 30) == TND_TOKEN_TYPE_UNDEFINED);
    CHECK(tnd_tokenizer_special(tok, TND_TOKEN_SPECIAL_COUNT) == -1);
    CHECK(tnd_tokenizer_find(tok, "no such token at all", 20) == -1);

    /* a stream holds back an incomplete character and reports a too-small buffer without consuming */
    tnd_detokenizer *det = NULL;
    CHECK(tnd_detokenizer_init(tok, 0, &det) == TND_OK);
    CHECK(tnd_detokenizer_push(det, -3, out, sizeof out) == TND_TOKENIZE_ERROR);
    CHECK(tnd_detokenizer_push(det, buf[0], out, 0) < 0);
    CHECK(tnd_detokenizer_push(det, buf[0], out, sizeof out) > 0);
    tnd_detokenizer_free(det);
    CHECK(tnd_detokenizer_init(tok, 0x80, &det) == TND_ERR_INVALID_ARGUMENT && det == NULL);
}

/* A character split over byte tokens comes out of a stream only once complete. */
static void test_stream_holds_back(const tnd_tokenizer *spm) {
    /* U+1F999 (4 bytes) has no token in the llama vocabulary: it is encoded as 4 byte tokens */
    int32_t n = 0;
    int32_t *ids = encode(spm, "\xf0\x9f\xa6\x99", 4, 0, &n);
    if (!CHECK(ids && n == 5)) { /* the space marker, then the 4 bytes */
        free(ids);
        return;
    }
    tnd_detokenizer *det = NULL;
    CHECK_OK(tnd_detokenizer_init(spm, 0, &det));
    char out[16];
    CHECK(tnd_detokenizer_push(det, ids[0], out, sizeof out) == 0); /* the removed prefix space */
    CHECK(tnd_detokenizer_push(det, ids[1], out, sizeof out) == 0);
    CHECK(tnd_detokenizer_push(det, ids[2], out, sizeof out) == 0);
    CHECK(tnd_detokenizer_push(det, ids[3], out, sizeof out) == 0);
    CHECK(tnd_detokenizer_push(det, ids[4], out, 3) == -4); /* too small: nothing consumed */
    CHECK(tnd_detokenizer_push(det, ids[4], out, sizeof out) == 4 && !memcmp(out, "\xf0\x9f\xa6\x99", 4));
    /* an incomplete character at the end comes out of finish as is */
    CHECK(tnd_detokenizer_push(det, ids[1], out, sizeof out) == 0);
    CHECK(tnd_detokenizer_finish(det, out, sizeof out) == 1 && (uint8_t)out[0] == 0xF0);
    CHECK(tnd_detokenizer_finish(det, out, sizeof out) == 0);
    tnd_detokenizer_free(det);
    free(ids);
}

/* ------------------------------------------------------------------------------------------------------------
 * Metadata the tokenizer must refuse
 * ---------------------------------------------------------------------------------------------------------- */

/* Builds a small byte-level vocabulary file (256 byte tokens, "ab", "abc", the merge "a b") with the given model/pre and
 * optional breakage, opens it, and returns tnd_tokenizer_init's status. */
static tnd_status init_synthetic(const char *model_name, const char *pre, int breakage, tnd_tokenizer **out_tok,
                                 tnd_model **out_model) {
    tnd_gguf_writer *w = tnd_gguf_writer_init(NULL);
    const char *strs[260];
    char store[256][4];
    int n = 0;
    for (int b = 0; b < 256; b++) {
        size_t k = put_cp(store[n], byte_level_cp(b));
        store[n][k] = 0;
        strs[n] = store[n];
        n++;
    }
    strs[n++] = breakage == 1 ? "a" : "ab"; /* 1: a duplicate token */
    strs[n++] = "abc";                      /* a token no merge makes */
    const char *merges[] = {"a b"};
    tnd_gguf_writer_set_str(w, "tokenizer.ggml.model", model_name);
    if (pre) tnd_gguf_writer_set_str(w, "tokenizer.ggml.pre", pre);
    tnd_gguf_writer_set_array_str(w, "tokenizer.ggml.tokens", strs, NULL, (uint64_t)n);
    tnd_gguf_writer_set_array_str(w, "tokenizer.ggml.merges", merges, NULL, 1);
    if (breakage == 2) tnd_gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", true); /* no BOS id */
    else tnd_gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", 0);
    if (breakage == 3) {                                                                  /* a bad byte token */
        int32_t types[260];
        for (int i = 0; i < n; i++) types[i] = 1;
        types[5] = 6;
        tnd_gguf_writer_set_array(w, "tokenizer.ggml.token_type", TND_VALUE_I32, types, (uint64_t)n);
    }
    if (breakage == 4) tnd_gguf_writer_set_array(w, "tokenizer.ggml.token_type", TND_VALUE_I32, (int32_t[]){1}, 1);
    char path[] = "/tmp/tnd_tok_XXXXXX";
    int fd = mkstemp(path);
    if (fd >= 0) close(fd);
    tnd_status st = tnd_gguf_writer_write_file(w, path);
    tnd_gguf_writer_free(w);
    *out_tok = NULL;
    *out_model = NULL;
    if (st == TND_OK) st = tnd_model_open(path, NULL, out_model);
    if (st == TND_OK) st = tnd_tokenizer_init(*out_model, out_tok);
    unlink(path);
    return st;
}

static void expect_refusal(const char *model_name, const char *pre, int breakage, tnd_status want, const char *says) {
    tnd_tokenizer *tok = NULL;
    tnd_model *m = NULL;
    tnd_status st = init_synthetic(model_name, pre, breakage, &tok, &m);
    if (!CHECK(st == want && tok == NULL && strstr(tnd_last_error(), says) != NULL))
        fprintf(stderr, "  model %s pre %s breakage %d: %s, '%s'\n", model_name, pre ? pre : "(none)", breakage,
                tnd_status_name(st), tnd_last_error());
    tnd_tokenizer_free(tok);
    tnd_model_close(m);
}

static void test_refusals(void) {
    expect_refusal("gpt2", "no-such-pre", 0, TND_ERR_UNSUPPORTED, "no-such-pre");
    expect_refusal("wordpiece-x", "gpt-2", 0, TND_ERR_UNSUPPORTED, "wordpiece-x");
    expect_refusal("gpt2", NULL, 0, TND_ERR_NOT_FOUND, "tokenizer.ggml.pre");
    expect_refusal("gpt2", "gpt-2", 1, TND_ERR_FORMAT, "same string");
    expect_refusal("gpt2", "gpt-2", 2, TND_ERR_FORMAT, "bos_token_id");
    expect_refusal("gpt2", "gpt-2", 3, TND_ERR_FORMAT, "<0xNN>");
    expect_refusal("gpt2", "gpt-2", 4, TND_ERR_FORMAT, "token_type");

    /* the synthetic vocabulary itself works: "ab" merges, every byte has its token */
    tnd_tokenizer *tok = NULL;
    tnd_model *m = NULL;
    if (CHECK_OK(init_synthetic("gpt2", "gpt-2", 0, &tok, &m))) {
        int32_t n = 0;
        int32_t *ids = encode(tok, "ab a", 4, 0, &n);
        /* token i is byte i; "ab" is token 256; no merge joins the space to "a" */
        CHECK(ids && n == 3 && ids[0] == 256 && ids[1] == ' ' && ids[2] == 'a');
        free(ids);
    }
    tnd_tokenizer_free(tok);
    tnd_model_close(m);
    /* Llama 3 style: a piece that is a whole token is taken as is, without merges; gpt-2 style merges */
    if (CHECK_OK(init_synthetic("gpt2", "llama-bpe", 0, &tok, &m))) {
        int32_t ids[8];
        CHECK(tnd_tokenizer_encode(tok, "abc", 3, 0, ids, 8) == 1 && ids[0] == 257);
        CHECK(tnd_tokenizer_encode(tok, "abc", 3, TND_TOKENIZE_ADD_SPECIAL, ids, 8) == 2 && ids[0] == 0);
    }
    tnd_tokenizer_free(tok);
    tnd_model_close(m);
    if (CHECK_OK(init_synthetic("gpt2", "gpt-2", 0, &tok, &m))) {
        int32_t ids[8];
        CHECK(tnd_tokenizer_encode(tok, "abc", 3, 0, ids, 8) == 2 && ids[0] == 256 && ids[1] == 'c');
    }
    tnd_tokenizer_free(tok);
    tnd_model_close(m);
    /* NFC: with qwen2's pre-tokenizer a decomposed e + combining acute becomes the precomposed character */
    if (CHECK_OK(init_synthetic("gpt2", "qwen2", 0, &tok, &m))) {
        int32_t n = 0, dn = 0;
        int32_t *ids = encode(tok, "e\xcc\x81", 3, 0, &n);
        char *back = ids ? decode(tok, ids, n, 0, &dn) : NULL;
        CHECK(back && dn == 2 && !memcmp(back, "\xc3\xa9", 2));
        free(back);
        free(ids);
        /* a byte that is not UTF-8 stays as it is, around it normalization still applies */
        ids = encode(tok, "\xff" "e\xcc\x81", 4, 0, &n);
        back = ids ? decode(tok, ids, n, 0, &dn) : NULL;
        CHECK(back && dn == 3 && !memcmp(back, "\xff\xc3\xa9", 3));
        free(back);
        free(ids);
    }
    tnd_tokenizer_free(tok);
    tnd_model_close(m);
}

/* ------------------------------------------------------------------------------------------------------------
 * Threads
 * ---------------------------------------------------------------------------------------------------------- */

typedef struct thread_job {
    const tnd_tokenizer *tok;
    const char *text;
    size_t len;
    int32_t *ids;
    int32_t n;
} thread_job;

static void *thread_encode(void *arg) {
    thread_job *j = arg;
    for (int rep = 0; rep < 20; rep++) {
        free(j->ids);
        j->ids = encode(j->tok, j->text, j->len, 0, &j->n);
    }
    return NULL;
}

static void test_threads(const tnd_tokenizer *tok) {
    char text[4096];
    size_t len = 0;
    while (len < sizeof text - 300) len += random_utf8(text + len, 40, true);
    int32_t n_ref = 0;
    int32_t *ref = encode(tok, text, len, 0, &n_ref);
    thread_job jobs[4] = {{0}};
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        jobs[i] = (thread_job){.tok = tok, .text = text, .len = len};
        pthread_create(&th[i], NULL, thread_encode, &jobs[i]);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        CHECK(ref && jobs[i].ids && ids_equal(ref, n_ref, jobs[i].ids, jobs[i].n));
        free(jobs[i].ids);
    }
    free(ref);
}

int main(void) {
    loaded vocabs[N_VOCABS];
    for (int i = 0; i < N_VOCABS; i++) {
        vocabs[i] = load_vocab(vocab_names[i]);
        if (!vocabs[i].tok) continue;
        test_vectors(vocab_names[i], vocabs[i].tok);
        test_random_roundtrip(vocab_names[i], vocabs[i].tok);
        test_long_runs(vocab_names[i], vocabs[i].tok);
        test_conventions(vocabs[i].tok);
    }
    if (vocabs[0].tok) {
        test_special_spm(vocabs[0].tok);
        test_stream_holds_back(vocabs[0].tok);
        test_threads(vocabs[0].tok);
    }
    if (vocabs[1].tok && vocabs[2].tok) {
        test_special_bpe(vocabs[1].tok, vocabs[2].tok);
        test_threads(vocabs[2].tok);
    }
    test_refusals();
    for (int i = 0; i < N_VOCABS; i++) unload(&vocabs[i]);
    return tnd_test_finish("test_tokenizer");
}
