/* bench_tokenizer.c: encoding and decoding speed of each vocabulary over about 1 MB of generated mixed text
 * (English prose, source code, CJK), single-threaded; reports the median of several runs in MB/s.
 *
 * usage: bench_tokenizer [--runs N] [--bytes N] [VOCAB.gguf ...]   (default: the fixture vocabularies) */
#include "tandem.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static uint64_t rng = 0x2545F4914F6CDD1Dull;
static uint32_t rnd(uint32_t bound) {
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return (uint32_t)((rng * 0x2545F4914F6CDD1Dull) >> 33) % bound;
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ------------------------------------------------------------------------------------------------------------
 * Text generation: paragraphs of the three kinds in turn, until the size is reached
 * ---------------------------------------------------------------------------------------------------------- */

typedef struct text {
    char *p;
    size_t n, cap;
} text;

static void put(text *t, const char *s, size_t n) {
    if (t->n + n > t->cap) return;
    memcpy(t->p + t->n, s, n);
    t->n += n;
}
static void puts_(text *t, const char *s) { put(t, s, strlen(s)); }

static void put_cp(text *t, uint32_t cp) {
    char b[4];
    size_t n;
    if (cp < 0x80) {
        b[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        b[0] = (char)(0xC0 | (cp >> 6));
        b[1] = (char)(0x80 | (cp & 0x3F));
        n = 2;
    } else {
        b[0] = (char)(0xE0 | (cp >> 12));
        b[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        b[2] = (char)(0x80 | (cp & 0x3F));
        n = 3;
    }
    put(t, b, n);
}

static const char *const words[] = {
    "the", "of", "and", "to", "in", "a", "is", "that", "for", "it", "as", "was", "with", "be", "by", "on", "not",
    "he", "this", "are", "or", "his", "from", "at", "which", "but", "have", "an", "had", "they", "you", "were",
    "their", "one", "all", "we", "can", "her", "has", "there", "been", "if", "more", "when", "will", "would", "who",
    "so", "no", "model", "memory", "bandwidth", "token", "language", "processor", "engine", "quickly", "between",
    "understanding", "tokenizer", "generation", "through", "several", "different", "however", "because", "people",
    "little", "important", "example", "government", "information", "development", "something", "children",
    "don't", "it's", "we're", "they've", "I'll", "1984", "2024", "3.14159", "42", "100,000", "e-mail", "U.S.",
};
static const char *const punct[] = {".", ",", ";", ":", "!", "?", " -", "\"", "'", ")"};

static void english(text *t) {
    int sentences = 3 + (int)rnd(6);
    for (int s = 0; s < sentences; s++) {
        int n = 6 + (int)rnd(14);
        for (int w = 0; w < n; w++) {
            const char *word = words[rnd(sizeof words / sizeof words[0])];
            if (w == 0) {
                char cap[64];
                snprintf(cap, sizeof cap, "%s", word);
                if (cap[0] >= 'a' && cap[0] <= 'z') cap[0] = (char)(cap[0] - 32);
                puts_(t, cap);
            } else {
                puts_(t, " ");
                puts_(t, word);
            }
            if (w + 1 < n && rnd(8) == 0) puts_(t, punct[1 + rnd(2)]);
        }
        puts_(t, punct[rnd(2) ? 0 : rnd(5)]);
        puts_(t, " ");
    }
    puts_(t, "\n\n");
}

static const char *const code_lines[] = {
    "static int compute_sum(const int *values, size_t count) {\n",
    "    for (size_t i = 0; i < count; i++) total += values[i] * weights[i];\n",
    "    if (ptr == NULL) return TND_ERR_OUT_OF_MEMORY;\n",
    "}\n",
    "def tokenize(text: str) -> list[int]:\n",
    "        return [vocab.get(piece, unk_id) for piece in pieces]\n",
    "    # TODO: handle the empty case\n",
    "import numpy as np\n",
    "const result = await fetch(`${baseUrl}/v1/chat/completions`, { method: 'POST' });\n",
    "\tprintf(\"%d tokens in %.3f s\\n\", n_tokens, seconds);\n",
    "x = np.linspace(0.0, 1.0, 1024) ** 2 + 0x1F;\n",
    "        self.cache[key] = value  # keep it\n",
    "<div class=\"container\"><span id=\"main\">Hello &amp; welcome</span></div>\n",
    "    }\n    else {\n        goto cleanup;\n    }\n",
};

static void code(text *t) {
    int n = 4 + (int)rnd(12);
    for (int i = 0; i < n; i++) puts_(t, code_lines[rnd(sizeof code_lines / sizeof code_lines[0])]);
    puts_(t, "\n");
}

static void cjk(text *t) {
    int n = 20 + (int)rnd(120);
    for (int i = 0; i < n; i++) {
        uint32_t r = rnd(100);
        if (r < 70) put_cp(t, 0x4E00 + rnd(0x5000)); /* CJK ideographs */
        else if (r < 85) put_cp(t, 0x3041 + rnd(0x56)); /* hiragana */
        else if (r < 90) put_cp(t, 0x30A1 + rnd(0x5A)); /* katakana */
        else if (r < 95) put_cp(t, 0xAC00 + rnd(0x2BA4)); /* hangul */
        else put_cp(t, rnd(2) ? 0x3002 : 0xFF0C);        /* 。 ， */
    }
    puts_(t, "\n");
}

static text generate(size_t bytes) {
    text t = {.p = malloc(bytes + 4096), .cap = bytes};
    while (t.n + 2048 < bytes) {
        uint32_t kind = rnd(10);
        if (kind < 5) english(&t);
        else if (kind < 8) code(&t);
        else cjk(&t);
    }
    return t;
}

/* ------------------------------------------------------------------------------------------------------------
 * Measurement
 * ---------------------------------------------------------------------------------------------------------- */

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static int bench_one(const char *path, const text *t, int runs) {
    tnd_model *m = NULL;
    tnd_tokenizer *tok = NULL;
    if (tnd_model_open(path, NULL, &m) != TND_OK || tnd_tokenizer_init(m, &tok) != TND_OK) {
        fprintf(stderr, "%s: %s\n", path, tnd_last_error());
        tnd_model_close(m);
        return 1;
    }
    int32_t cap = (int32_t)t->n + 16;
    int32_t *ids = malloc(sizeof *ids * (size_t)cap);
    char *back = malloc(t->n + 16);
    double enc[64], dec[64];
    int32_t n = 0, dn = 0;
    n = tnd_tokenizer_encode(tok, t->p, t->n, 0, ids, cap); /* warm-up */
    for (int r = 0; r < runs; r++) {
        double t0 = now();
        n = tnd_tokenizer_encode(tok, t->p, t->n, 0, ids, cap);
        double t1 = now();
        dn = tnd_tokenizer_decode(tok, ids, n, 0, back, (int32_t)t->n + 16);
        double t2 = now();
        enc[r] = t1 - t0;
        dec[r] = t2 - t1;
    }
    const char *name = strrchr(path, '/');
    name = name ? name + 1 : path;
    bool same = dn >= 0 && (size_t)dn == t->n && memcmp(back, t->p, t->n) == 0;
    printf("%-32s %8d tokens  %5.2f bytes/token  encode %7.2f MB/s  decode %8.1f MB/s%s\n", name, n,
           (double)t->n / n, (double)t->n / 1e6 / median(enc, runs), (double)t->n / 1e6 / median(dec, runs),
           same ? "" : "  (decode differs from the text)");
    free(ids);
    free(back);
    tnd_tokenizer_free(tok);
    tnd_model_close(m);
    return n < 0;
}

int main(int argc, char **argv) {
    int runs = 5;
    size_t bytes = 1000000;
    const char *paths[32];
    int n_paths = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--runs") && i + 1 < argc) runs = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--bytes") && i + 1 < argc) bytes = (size_t)atol(argv[++i]);
        else if (n_paths < 32) paths[n_paths++] = argv[i];
    }
    if (runs < 1 || runs > 64 || bytes < 4096) {
        fprintf(stderr, "usage: bench_tokenizer [--runs 1..64] [--bytes N>=4096] [VOCAB.gguf ...]\n");
        return 2;
    }
    static const char *const fixtures[] = {"llama-spm", "gpt-2", "deepseek-llm", "falcon", "starcoder"};
    static char fixture_paths[5][1024];
    if (n_paths == 0) {
        const char *dir = getenv("TND_SHARED_DIR");
        for (int i = 0; i < 5; i++) {
            snprintf(fixture_paths[i], sizeof fixture_paths[i], "%s/fixtures/vocab/ggml-vocab-%s.gguf",
                     dir ? dir : TND_SHARED_DIR, fixtures[i]);
            paths[n_paths++] = fixture_paths[i];
        }
    }
    text t = generate(bytes);
    printf("text: %zu bytes of mixed English, code and CJK; median of %d runs, one thread\n", t.n, runs);
    int rc = 0;
    for (int i = 0; i < n_paths; i++) rc |= bench_one(paths[i], &t, runs);
    free(t.p);
    return rc;
}
