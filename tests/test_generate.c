/* test_generate.c: the real trained stories260K model reproduces its published greedy text byte for byte through
 * `tandem run` (from the GGUF file, and from the llama2.c checkpoint imported with `tandem convert`; on a GPU, split,
 * and on a GPU lost mid-answer), and run's option errors are clear. */
#include "harness.h"

#include "tandem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The text with leading whitespace removed (llama2.c strips the first piece's space). */
static const char *trim_left(const char *s) {
    while (*s == ' ' || *s == '\n') s++;
    return s;
}

/* llama2.c's 256 steps print one token per forward from BOS: 256 tokens after BOS make the published text. `flags`
 * place the model (a GPU, or a split of layers). */
static void check_greedy_text(const char *model, const char *flags) {
    size_t ref_len = 0;
    char *ref = (char *)tnd_test_read_file(tnd_fixture("real/stories260K.greedy256.txt"), &ref_len);
    if (!CHECK(ref != NULL)) return;
    ref = realloc(ref, ref_len + 1);
    ref[ref_len] = 0;
    char cmd[2048], out[8192];
    snprintf(cmd, sizeof cmd, "%s run -m '%s' -p '' -n 256 --temp 0 -t 2 %s 2>/dev/null", TND_TANDEM_BIN, model, flags);
    CHECK(tnd_test_run(cmd, out, sizeof out) == 0);
    bool same = strcmp(trim_left(out), ref) == 0;
    if (!CHECK(same)) fprintf(stderr, "%s: got:\n%s\nexpected:\n%s\n", model, out, ref);
    printf("%s %s: published greedy text %s\n", model, flags, same ? "reproduced byte for byte" : "DIFFERS");
    free(ref);
}

/* A GPU lost mid-answer (TANDEM_FAULT: its 150th step fails as a lost device would): `tandem run` goes on with the
 * whole model on the CPU, the published text whole, the switch noted. */
static void check_gpu_lost(const char *model) {
    size_t ref_len = 0;
    char *ref = (char *)tnd_test_read_file(tnd_fixture("real/stories260K.greedy256.txt"), &ref_len);
    char note[] = "/tmp/tnd_takeover_XXXXXX";
    int fd = mkstemp(note);
    if (!CHECK(ref != NULL) || !CHECK(fd >= 0)) {
        free(ref);
        return;
    }
    close(fd);
    ref = realloc(ref, ref_len + 1);
    ref[ref_len] = 0;
    char cmd[2048], out[8192], err[4096];
    snprintf(cmd, sizeof cmd, "TANDEM_FAULT=step:150 %s run -m '%s' -p '' -n 256 --temp 0 -t 2 --device vulkan "
             "2>'%s'", TND_TANDEM_BIN, model, note);
    CHECK(tnd_test_run(cmd, out, sizeof out) == 0);
    snprintf(cmd, sizeof cmd, "cat '%s'", note);
    bool same = strcmp(trim_left(out), ref) == 0,
         noted = tnd_test_run(cmd, err, sizeof err) == 0 && strstr(err, "going on here with the whole model");
    if (!CHECK(same && noted)) fprintf(stderr, "got:\n%s\nstderr:\n%s\n", out, err);
    printf("the GPU lost at step 150: %s, %s\n", same ? "the published text whole" : "TEXT DIFFERS",
           noted ? "the switch to the CPU noted" : "NO NOTE");
    remove(note);
    free(ref);
}

int main(void) {
    char gguf[1024];
    snprintf(gguf, sizeof gguf, "%s", tnd_fixture("real/stories260K.gguf"));
    check_greedy_text(gguf, "");
    if (tnd_device_count() > 1) { /* on the GPU alone, and split: layer 0 and the embedding on the CPU */
        check_greedy_text(gguf, "--device vulkan");
        check_greedy_text(gguf, "-ngl 4");
        check_gpu_lost(gguf);
    }

    /* the llama2.c checkpoint, imported by tandem itself */
    char imported[] = "/tmp/tnd_stories_XXXXXX";
    int fd = mkstemp(imported);
    if (CHECK(fd >= 0)) {
        close(fd);
        char cmd[8192], out[4096], bin[1024], tok[1024];
        snprintf(bin, sizeof bin, "%s", tnd_fixture("real/stories260K.bin"));
        snprintf(tok, sizeof tok, "%s", tnd_fixture("real/tok512.bin"));
        snprintf(cmd, sizeof cmd, "%s convert --llama2c '%s' --vocab '%s' -o '%s' 2>&1", TND_TANDEM_BIN, bin, tok,
                 imported);
        if (CHECK(tnd_test_run(cmd, out, sizeof out) == 0)) check_greedy_text(imported, "");
        remove(imported);
    }

    char cmd[8192], out[4096];
    /* perplexity: the model's own greedy text is nearly certain to it; the fixtures' multilingual tokenizer test text
     * is far from TinyStories */
    char own[1024], other[1024];
    snprintf(own, sizeof own, "%s", tnd_fixture("real/stories260K.greedy256.txt"));
    snprintf(other, sizeof other, "%s", tnd_fixture("vocab/ggml-vocab-llama-spm.gguf.inp"));
    double ppl_own = 0, ppl_other = 0;
    snprintf(cmd, sizeof cmd, "%s perplexity -m '%s' -f '%s' -c 64 2>/dev/null", TND_TANDEM_BIN, gguf, own);
    CHECK(tnd_test_run(cmd, out, sizeof out) == 0 && sscanf(out, "perplexity %lf", &ppl_own) == 1);
    snprintf(cmd, sizeof cmd, "%s perplexity -m '%s' -f '%s' -c 64 2>/dev/null", TND_TANDEM_BIN, gguf, other);
    CHECK(tnd_test_run(cmd, out, sizeof out) == 0 && sscanf(out, "perplexity %lf", &ppl_other) == 1);
    printf("perplexity: own greedy text %.3f, unrelated text %.1f\n", ppl_own, ppl_other);
    CHECK(ppl_own > 1.0 && ppl_own < 3.0 && ppl_other > 50 * ppl_own);

    snprintf(cmd, sizeof cmd, "%s run -m '%s' --temp -1 2>&1", TND_TANDEM_BIN, gguf);
    CHECK(tnd_test_run(cmd, out, sizeof out) == 2 && strstr(out, "--temp"));
    snprintf(cmd, sizeof cmd, "%s run -m /nonexistent.gguf 2>&1", TND_TANDEM_BIN);
    CHECK(tnd_test_run(cmd, out, sizeof out) == 1 && strstr(out, "/nonexistent.gguf"));

    /* the command line's structured output: the text after the prompt is JSON the schema allows, greedy and
     * sampled, with speculation too; a schema or grammar that cannot be used is a clear error */
    char schema_path[] = "/tmp/tnd_schema_XXXXXX", grammar_path[] = "/tmp/tnd_grammar_XXXXXX";
    int fs = mkstemp(schema_path), fg = mkstemp(grammar_path);
    static const char schema[] = "{\"type\": \"object\", \"properties\": {\"name\": {\"type\": \"string\", "
                                 "\"maxLength\": 10}, \"age\": {\"type\": \"integer\", \"minimum\": 1, "
                                 "\"maximum\": 99}}, \"required\": [\"name\", \"age\"], \"additionalProperties\": false}";
    static const char bad_grammar[] = "root ::= item\n";
    if (CHECK(fs >= 0 && fg >= 0) && CHECK(write(fs, schema, strlen(schema)) == (ssize_t)strlen(schema)) &&
        CHECK(write(fg, bad_grammar, strlen(bad_grammar)) == (ssize_t)strlen(bad_grammar))) {
        tnd_grammar *g = NULL;
        CHECK_OK(tnd_grammar_from_json_schema(schema, strlen(schema), &g));
        static const char *const modes[] = {"--temp 0", "--seed 7", "--seed 8 --spec ngram --spec-fixed"};
        for (int i = 0; g && i < 3; i++) {
            snprintf(cmd, sizeof cmd, "%s run -m '%s' -p 'Lily' -n 200 %s --json-schema '%s' 2>/dev/null", TND_TANDEM_BIN,
                     gguf, modes[i], schema_path);
            bool ran = CHECK(tnd_test_run(cmd, out, sizeof out) == 0) && CHECK(!strncmp(out, "Lily", 4));
            size_t len = strlen(out);
            if (len && out[len - 1] == '\n') out[--len] = 0; /* the line the program ends its output with */
            if (ran && !CHECK(tnd_grammar_check(g, out + 4, strlen(out + 4)) == TND_GRAMMAR_COMPLETE))
                fprintf(stderr, "  %s: '%s'\n", modes[i], out);
            if (i == 0) printf("run --json-schema: %s\n", out + 4);
        }
        tnd_grammar_free(g);
        snprintf(cmd, sizeof cmd, "%s run -m '%s' -p x --grammar '%s' 2>&1", TND_TANDEM_BIN, gguf, grammar_path);
        CHECK(tnd_test_run(cmd, out, sizeof out) == 1 && strstr(out, "rule 'item' is used on line 1"));
        snprintf(cmd, sizeof cmd, "%s run -m '%s' -p x --json --grammar '%s' 2>&1", TND_TANDEM_BIN, gguf, grammar_path);
        CHECK(tnd_test_run(cmd, out, sizeof out) == 1 && strstr(out, "exclude each other"));
    }
    if (fs >= 0) close(fs), remove(schema_path);
    if (fg >= 0) close(fg), remove(grammar_path);
    return tnd_test_finish("test_generate");
}
