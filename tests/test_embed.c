/* test_embed.c: embeddings of the real stories260K model. The last-token embedding is the direction of the model's
 * final hidden state: the output head (the F32 embedding matrix, tied) applied to it gives the logits the model
 * computes for that token, up to a positive scale. Every pooling gives unit vectors, the same whether the text
 * goes through in one micro-batch or many, and the same again; different texts differ; the sequence is left empty
 * and the others untouched; bad arguments are refused. */
#include "harness.h"

#include "tandem.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static tnd_context *make(tnd_model *m, int32_t n_batch) {
    tnd_context_params p = tnd_context_default_params();
    p.n_ctx = 256;
    p.n_batch = n_batch;
    p.n_seq_max = 2;
    p.n_threads = 2;
    tnd_context *ctx = NULL;
    CHECK_OK(tnd_context_init(m, &p, &ctx));
    return ctx;
}

static double dot(const float *a, const float *b, int32_t n) {
    double s = 0;
    for (int32_t i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}

int main(void) {
    tnd_model *m = NULL;
    tnd_tokenizer *tok = NULL;
    if (!CHECK_OK(tnd_model_open(tnd_fixture("real/stories260K.gguf"), NULL, &m)) ||
        !CHECK_OK(tnd_tokenizer_init(m, &tok)))
        return tnd_test_finish("test_embed");
    tnd_context *big = make(m, 64), *small = make(m, 3);
    int32_t e = tnd_context_n_embd(big), nv = tnd_model_n_vocab(m);
    CHECK(e == 64 && tnd_model_pooling(m) == TND_POOLING_LAST);
    static const char *const texts[] = {"Once upon a time, there was a little girl named Lily.",
                                        "The dog ran to the park and played with a ball.", "Lily"};
    float *a = malloc(sizeof(float) * (size_t)e * 3), *b = malloc(sizeof(float) * (size_t)e);
    int32_t tokens[3][64], n[3];
    for (int t = 0; t < 3; t++)
        n[t] = tnd_tokenizer_encode(tok, texts[t], strlen(texts[t]), TND_TOKENIZE_ADD_SPECIAL, tokens[t], 64);
    /* a sequence 1 in use stays as it is */
    int32_t pos[4] = {0, 1, 2, 3}, seq1[4] = {1, 1, 1, 1};
    tnd_batch other = {.n_tokens = 4, .tokens = tokens[0], .pos = pos, .seq_id = seq1};
    CHECK_OK(tnd_context_decode(big, &other));
    static const tnd_pooling poolings[] = {TND_POOLING_LAST, TND_POOLING_MEAN, TND_POOLING_FIRST};
    for (int p = 0; p < 3; p++) {
        for (int t = 0; t < 3; t++) {
            float *v = a + (size_t)t * (size_t)e;
            if (!CHECK(n[t] > 0) || !CHECK_OK(tnd_context_embed(big, 0, tokens[t], n[t], poolings[p], v))) continue;
            CHECK(fabs(dot(v, v, e) - 1.0) < 1e-5);
            /* in micro-batches of 3: the same vector (float sums in another order: within 1e-6) */
            if (CHECK_OK(tnd_context_embed(small, 0, tokens[t], n[t], poolings[p], b)))
                CHECK(dot(v, b, e) > 1 - 1e-6);
            CHECK_OK(tnd_context_embed(big, 0, tokens[t], n[t], poolings[p], b));
            CHECK(!memcmp(v, b, sizeof(float) * (size_t)e));
        }
        /* the two sentences differ; the first token (BOS) is the same for all */
        double cos01 = dot(a, a + e, e);
        if (poolings[p] == TND_POOLING_FIRST) CHECK(cos01 > 1 - 1e-6);
        else CHECK(cos01 < 0.999);
        printf("pooling %d: cosine of the two sentences %.4f\n", (int)poolings[p], cos01);
    }
    CHECK(tnd_context_seq_length(big, 0) == 0 && tnd_context_seq_length(big, 1) == 4);

    /* the last-token embedding through the tied output head is the model's logits, up to a positive scale */
    int64_t ti = tnd_model_tensor_find(m, "token_embd.weight");
    tnd_tensor_info info;
    if (CHECK(ti >= 0) && CHECK_OK(tnd_model_tensor_at(m, ti, &info)) && CHECK(info.type == TND_TYPE_F32)) {
        const float *w = info.data;
        float *v = a;
        CHECK_OK(tnd_context_embed(big, 0, tokens[0], n[0], TND_POOLING_LAST, v));
        int32_t pos0[64], seq0[64];
        for (int32_t i = 0; i < n[0]; i++) pos0[i] = i, seq0[i] = 0;
        tnd_batch whole = {.n_tokens = n[0], .tokens = tokens[0], .pos = pos0, .seq_id = seq0};
        if (CHECK_OK(tnd_context_decode(big, &whole))) {
            const float *logits = tnd_context_logits(big, 0);
            float *mine = malloc(sizeof(float) * (size_t)nv);
            for (int32_t t = 0; t < nv; t++) mine[t] = (float)dot(w + (size_t)t * (size_t)e, v, e);
            double cos = dot(mine, logits, nv) / sqrt(dot(mine, mine, nv) * dot(logits, logits, nv));
            CHECK(cos > 1 - 1e-5);
            printf("last-token embedding through the output head: cosine with the logits %.7f\n", cos);
            free(mine);
        }
        tnd_context_seq_truncate(big, 0, 0);
    }

    CHECK(tnd_context_embed(big, 0, tokens[0], 0, TND_POOLING_LAST, a) == TND_ERR_INVALID_ARGUMENT);
    CHECK(tnd_context_embed(big, 2, tokens[0], n[0], TND_POOLING_LAST, a) == TND_ERR_INVALID_ARGUMENT);
    CHECK(tnd_context_embed(big, 0, tokens[0], n[0], (tnd_pooling)7, a) == TND_ERR_INVALID_ARGUMENT);
    int32_t bad = nv;
    CHECK(tnd_context_embed(big, 0, &bad, 1, TND_POOLING_LAST, a) == TND_ERR_INVALID_ARGUMENT);
    CHECK(tnd_context_seq_length(big, 0) == 0);
    free(a);
    free(b);
    tnd_context_free(big);
    tnd_context_free(small);
    tnd_tokenizer_free(tok);
    tnd_model_close(m);
    return tnd_test_finish("test_embed");
}
