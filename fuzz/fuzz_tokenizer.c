/* fuzz_tokenizer.c: libFuzzer target for encoding and decoding: any bytes, with any flags, must encode without
 * crashing, give ids in range and the same count for the size query and the real call, decode back to the text
 * where the vocabulary can represent it, and stream-decode to what the sequence decoder gives.
 *
 * Vocabulary: the file named by TND_FUZZ_VOCAB, else the five fixture vocabularies (the first input byte picks
 * one); fixtures are found through TND_SHARED_DIR (environment, else the build's default).
 *
 * The library must be instrumented too, or the fuzzer sees no coverage of the tokenizer:
 *   cmake -S . -B build-fuzz -G Ninja -DTND_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang \
 *         -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_C_FLAGS=-fsanitize=fuzzer-no-link,address,undefined
 *   cmake --build build-fuzz --target fuzz_tokenizer
 *   mkdir -p corpus && cp ../shared/fixtures/vocab/ggml-vocab-*.gguf.inp corpus/
 *   build-fuzz/fuzz/fuzz_tokenizer corpus -max_total_time=1800 -max_len=65536 -rss_limit_mb=4096 */
#include "tandem.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum { MAX_VOCABS = 5 };

typedef struct vocab {
    tnd_model *model;
    tnd_tokenizer *tok;
    bool exact_bytes; /* every byte has its own token and decodes to itself (gpt-2, llama-spm) */
    bool spm;
} vocab;

static vocab vocabs[MAX_VOCABS];
static int n_vocabs = -1;

static void load(const char *path, bool exact_bytes, bool spm) {
    vocab *v = &vocabs[n_vocabs];
    if (tnd_model_open(path, NULL, &v->model) != TND_OK || tnd_tokenizer_init(v->model, &v->tok) != TND_OK) {
        fprintf(stderr, "fuzz_tokenizer: %s: %s\n", path, tnd_last_error());
        abort();
    }
    v->exact_bytes = exact_bytes;
    v->spm = spm;
    n_vocabs++;
}

static void load_all(void) {
    n_vocabs = 0;
    const char *one = getenv("TND_FUZZ_VOCAB");
    if (one) {
        load(one, false, false);
        return;
    }
    static const struct {
        const char *name;
        bool exact_bytes, spm;
    } fixtures[MAX_VOCABS] = {{"llama-spm", true, true},
                              {"gpt-2", true, false},
                              {"deepseek-llm", false, false},
                              {"falcon", false, false},
                              {"starcoder", false, false}};
    const char *dir = getenv("TND_SHARED_DIR");
    for (int i = 0; i < MAX_VOCABS; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/fixtures/vocab/ggml-vocab-%s.gguf", dir ? dir : TND_SHARED_DIR,
                 fixtures[i].name);
        load(path, fixtures[i].exact_bytes, fixtures[i].spm);
    }
}

static bool has_space_marker(const uint8_t *s, size_t n) {
    for (size_t i = 0; i + 2 < n; i++)
        if (s[i] == 0xE2 && s[i + 1] == 0x96 && s[i + 2] == 0x81) return true;
    return false;
}

/* Decodes ids one token at a time and checks the chunks add up to the sequence decode `whole`. */
static void check_stream(const tnd_tokenizer *tok, const int32_t *ids, int32_t n, uint32_t flags, const char *whole,
                         int32_t whole_len) {
    tnd_detokenizer *det = NULL;
    if (tnd_detokenizer_init(tok, flags, &det) != TND_OK) abort();
    char chunk[4096];
    int32_t at = 0;
    for (int32_t i = 0; i < n; i++) {
        int32_t k = tnd_detokenizer_push(det, ids[i], chunk, sizeof chunk);
        if (k < 0 || at + k > whole_len || memcmp(whole + at, chunk, (size_t)k) != 0) abort();
        at += k;
    }
    int32_t k = tnd_detokenizer_finish(det, chunk, sizeof chunk);
    if (k < 0 || at + k != whole_len || memcmp(whole + at, chunk, (size_t)k) != 0) abort();
    tnd_detokenizer_free(det);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (n_vocabs < 0) load_all();
    if (size < 1) return 0;
    const vocab *v = &vocabs[data[0] % n_vocabs];
    uint32_t flags = (data[0] >> 4) & 3; /* TND_TOKENIZE_ADD_SPECIAL, TND_TOKENIZE_PARSE_SPECIAL */
    uint32_t dflags = (data[0] >> 6) & 1 ? TND_DETOKENIZE_SPECIAL : 0;
    const char *text = (const char *)data + 1;
    size_t len = size - 1;

    int32_t need = tnd_tokenizer_encode(v->tok, text, len, flags, NULL, 0);
    if (need == TND_TOKENIZE_ERROR) abort(); /* any text must encode */
    int32_t n = need < 0 ? -need : need;
    int32_t *ids = malloc(sizeof *ids * ((size_t)n + 1));
    if (tnd_tokenizer_encode(v->tok, text, len, flags, ids, n) != n) abort();
    int32_t n_vocab = tnd_tokenizer_n_vocab(v->tok);
    for (int32_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= n_vocab) abort();
        size_t pl = 0;
        if (!tnd_tokenizer_piece(v->tok, ids[i], dflags, &pl)) abort();
    }

    int32_t dneed = tnd_tokenizer_decode(v->tok, ids, n, dflags, NULL, 0);
    if (dneed == TND_TOKENIZE_ERROR) abort();
    int32_t dn = dneed < 0 ? -dneed : dneed;
    char *back = malloc((size_t)dn + 1);
    if (tnd_tokenizer_decode(v->tok, ids, n, dflags, back, dn) != dn) abort();
    check_stream(v->tok, ids, n, dflags, back, dn);

    /* decode(encode(x)) == x where the vocabulary represents every byte as itself: plain encoding, or special
     * tokens shown again in byte-level BPE (SPM re-adds its space prefix after a special token) */
    bool plain = flags == 0 && !(v->spm && has_space_marker(data + 1, len));
    bool specials_back = flags == TND_TOKENIZE_PARSE_SPECIAL && dflags && !v->spm;
    if (v->exact_bytes && (plain || specials_back) && ((size_t)dn != len || memcmp(back, text, len) != 0)) abort();

    free(back);
    free(ids);
    return 0;
}
