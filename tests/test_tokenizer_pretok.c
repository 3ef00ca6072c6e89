/* test_tokenizer_pretok.c: the pre-tokenizer splits of each family on texts whose pieces follow by hand from the
 * published regexes, every table entry compiling, NFC normalization, and the SPM shortcut (merging independent
 * stretches apart) against merging the whole text at once. */
#include "harness.h"

#include "text/pretokenize.h"
#include "text/tokenizer.h"
#include "tandem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------------------------------------------
 * Splits
 * ---------------------------------------------------------------------------------------------------------- */

typedef struct pieces {
    char text[64][64];
    int n;
} pieces;

static tnd_status collect(void *user, const char *piece, size_t len) {
    pieces *p = user;
    if (p->n < 64 && len < 64) {
        memcpy(p->text[p->n], piece, len);
        p->text[p->n][len] = 0;
    }
    p->n++;
    return TND_OK;
}

/* Splits `text` with pre-tokenizer `name` and compares with the NULL-terminated list of expected pieces. */
static void expect_split(const char *name, const char *text, const char *const *want) {
    const tnd_pretok_def *def = tnd_pretok_find(name, strlen(name));
    if (!CHECK(def != NULL)) return;
    tnd_pretok pre;
    tnd_pretok_state st;
    if (!CHECK_OK(tnd_pretok_compile(def, NULL, &pre))) return;
    if (CHECK_OK(tnd_pretok_state_init(&pre, NULL, &st))) {
        pieces got = {.n = 0};
        CHECK_OK(tnd_pretok_split(&pre, &st, text, strlen(text), collect, &got));
        int n_want = 0;
        while (want[n_want]) n_want++;
        bool same = got.n == n_want;
        for (int i = 0; same && i < n_want; i++) same = strcmp(got.text[i], want[i]) == 0;
        if (!CHECK(same)) {
            fprintf(stderr, "  %s on '%s':\n   got ", name, text);
            for (int i = 0; i < got.n && i < 64; i++) fprintf(stderr, "[%s]", got.text[i]);
            fprintf(stderr, "\n  want ");
            for (int i = 0; i < n_want; i++) fprintf(stderr, "[%s]", want[i]);
            fprintf(stderr, "\n");
        }
        tnd_pretok_state_release(&st);
    }
    tnd_pretok_release(&pre);
}

#define SPLIT(name, text, ...) expect_split(name, text, (const char *const[]){__VA_ARGS__, NULL})

static const char *const mixed = "Hello world's 12345 !!!\n\n  x";
static const char *const cased = "I'M here. HelloWorld ABCdef don't";

static void test_splits(void) {
    SPLIT("gpt-2", mixed, "Hello", " world", "'s", " 12345", " !!!", "\n\n ", " x");
    SPLIT("mpt", mixed, "Hello", " world", "'s", " 12345", " !!!", "\n\n ", " x");
    SPLIT("llama-bpe", mixed, "Hello", " world", "'s", " ", "123", "45", " !!!\n\n", " ", " x");
    SPLIT("qwen2", mixed, "Hello", " world", "'s", " ", "1", "2", "3", "4", "5", " !!!\n\n", " ", " x");
    SPLIT("starcoder", mixed, "Hello", " world", "'s", " ", "1", "2", "3", "4", "5", " !!!", "\n\n ", " x");
    SPLIT("deepseek-coder", mixed, "Hello", " world", "'", "s", " ", "1", "2", "3", "4", "5", " !!!", "\n", "\n",
          " ", " x");
    SPLIT("deepseek-llm", mixed, "Hello", " world", "'", "s", " ", "12345", " !!!", "\n", "\n", " ", " x");
    /* case-insensitive contractions, upper/lower runs */
    SPLIT("llama-bpe", "I'M here", "I", "'M", " here");
    SPLIT("gpt-4o", cased, "I'M", " here", ".", " Hello", "World", " ABCdef", " don't");
    SPLIT("tekken", cased, "I", "'M", " here", ".", " Hello", "World", " ABCdef", " don", "'t");
    /* digits in threes, punctuation runs */
    SPLIT("deepseek-v3", "abc123456 def x(hello", "abc", "123", "456", " def", " x", "(hello");
    SPLIT("falcon", "Hello, world!! 1234567", "Hello", ",", " world", "!!", " ", "123", "456", "7");
    SPLIT("default", "Hello, world!! 1234567", "Hello", ",", " world", "!!", " ", "123", "456", "7");
    SPLIT("bloom", "Hello, world!", "Hello", ",", " world", "!");
    /* CJK runs are pieces of their own in the DeepSeek tokenizers */
    SPLIT("deepseek-coder", "ab\xe4\xbd\xa0\xe5\xa5\xbd" "cd", "ab", "\xe4\xbd\xa0\xe5\xa5\xbd", "cd");
    /* bytes that are not UTF-8 match nothing and stand between matches */
    SPLIT("gpt-2", "ab\xff" "cd \xc3", "ab", "\xff", "cd", " ", "\xc3");
}

static void test_table(void) {
    static const char *const names[] = {
        "gpt-2", "phi-2", "jais", "mpt", "olmo", "default", "llama-bpe", "llama3", "llama-v3", "falcon3",
        "pixtral", "dbrx", "smaug-bpe", "qwen2", "deepseek-r1-qwen", "stablelm2", "deepseek-llm", "deepseek-coder",
        "deepseek-v3", "falcon", "starcoder", "refact", "command-r", "smollm", "codeshell", "exaone", "minerva-7b",
        "tekken", "gpt-4o", "llama4", "bloom", "poro-chat", "gpt3-finnish", "viking",
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        const tnd_pretok_def *def = tnd_pretok_find(names[i], strlen(names[i]));
        if (!CHECK(def && !strcmp(def->name, names[i]))) continue;
        tnd_pretok pre;
        if (CHECK_OK(tnd_pretok_compile(def, NULL, &pre))) tnd_pretok_release(&pre);
    }
    CHECK(tnd_pretok_find("GPT-2", 5) == NULL);
    CHECK(tnd_pretok_find("gpt-2x", 6) == NULL);
    CHECK(tnd_pretok_find("gpt-", 4) == NULL);
    /* the Llama 3 family takes whole-token pieces and adds BOS; Qwen normalizes */
    CHECK(tnd_pretok_find("llama-bpe", 9)->ignore_merges && tnd_pretok_find("llama-bpe", 9)->add_bos);
    CHECK(tnd_pretok_find("qwen2", 5)->nfc && !tnd_pretok_find("gpt-2", 5)->nfc);
}

static void expect_nfc(const char *in, size_t in_len, const char *want, size_t want_len) {
    tnd_pretok_state st;
    tnd_pretok none = {0};
    if (!CHECK_OK(tnd_pretok_state_init(&none, NULL, &st))) return;
    const char *out = NULL;
    size_t n = 0;
    CHECK_OK(tnd_text_nfc(&st, in, in_len, &out, &n));
    CHECK(out && n == want_len && !memcmp(out, want, n));
    tnd_pretok_state_release(&st);
}

static void test_nfc(void) {
    expect_nfc("plain ascii", 11, "plain ascii", 11);
    expect_nfc("e\xcc\x81", 3, "\xc3\xa9", 2);                              /* e + U+0301 -> U+00E9 */
    expect_nfc("\xe1\x84\x80\xe1\x85\xa1", 6, "\xea\xb0\x80", 3);           /* Hangul jamo -> U+AC00 */
    expect_nfc("\xe2\x84\xab", 3, "\xc3\x85", 2);                           /* U+212B ANGSTROM -> U+00C5 */
    expect_nfc("a\xff" "e\xcc\x81\xc3", 6, "a\xff\xc3\xa9\xc3", 5);         /* bytes that are not UTF-8 stay */
    expect_nfc("\xef\xac\x81", 3, "\xef\xac\x81", 3);                       /* U+FB01 is NFC already (not NFKC) */
}

/* ------------------------------------------------------------------------------------------------------------
 * SPM: merging stretches apart must equal merging the whole text
 * ---------------------------------------------------------------------------------------------------------- */

static uint64_t rng = 0x853C49E6748FEA9Bull;
static uint32_t rnd(uint32_t bound) {
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(rng >> 33) % bound;
}

static void test_spm_stretches(void) {
    tnd_model *m = NULL;
    tnd_tokenizer *tok = NULL;
    if (!CHECK_OK(tnd_model_open(tnd_fixture("vocab/ggml-vocab-llama-spm.gguf"), NULL, &m))) return;
    if (!CHECK_OK(tnd_tokenizer_init(m, &tok))) {
        tnd_model_close(m);
        return;
    }
    static const char *const parts[] = {"the", " ", "  ", "ing", "tion", "\n", "\t", "Hello", "world", ",", ".",
                                        "'s", "1", "23", "\xe4\xb8\xad", "\xe6\x96\x87", "\xc3\xa9", "(", ")",
                                        "{", "}", "==", "->", "\xf0\x9f\xa6\x99", "\xe2\x96\x81", "x", "Q"};
    uint64_t saved[1024];
    memcpy(saved, tok->spm_joins, sizeof saved);
    int same = 0, joinable = 0;
    for (int i = 0; i < 1024; i++) joinable += __builtin_popcountll(saved[i]);
    enum { N = 300 };
    for (int iter = 0; iter < N; iter++) {
        char text[2048];
        size_t n = 0;
        int k = 1 + (int)rnd(60);
        for (int i = 0; i < k; i++) {
            const char *p = parts[rnd(sizeof parts / sizeof parts[0])];
            memcpy(text + n, p, strlen(p));
            n += strlen(p);
        }
        int32_t a[2048], b[2048];
        int32_t na = tnd_tokenizer_encode(tok, text, n, 0, a, 2048);
        memset(tok->spm_joins, 0xFF, sizeof saved); /* every pair may join: one stretch, the plain algorithm */
        int32_t nb = tnd_tokenizer_encode(tok, text, n, 0, b, 2048);
        memcpy(tok->spm_joins, saved, sizeof saved);
        same += na >= 0 && na == nb && !memcmp(a, b, sizeof *a * (size_t)na);
    }
    printf("SPM stretches: %d of 65536 byte pairs can be joined; %d/%d texts give the same tokens as one whole "
           "merge\n", joinable, same, N);
    CHECK(same == N);
    CHECK(joinable < 65536 / 2); /* the shortcut cuts somewhere, or this test would compare a thing to itself */
    tnd_tokenizer_free(tok);
    tnd_model_close(m);
}

int main(void) {
    test_splits();
    test_table();
    test_nfc();
    test_spm_stretches();
    return tnd_test_finish("test_tokenizer_pretok");
}
