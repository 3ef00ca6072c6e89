/* fuzz_gguf.c: libFuzzer target for the GGUF parser: any byte string must parse or fail with a message, never
 * crash, hang or over-allocate; a file that parses must survive every accessor and a rewrite/reparse round trip. */
#include "core/alloc.h"
#include "gguf/gguf.h"

#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Touches every value and tensor of a parsed file the way the loader and `tandem info` do. */
static void walk(const tnd_gguf *g) {
    for (uint64_t i = 0; i < g->n_kv; i++) {
        const tnd_gguf_kv *kv = &g->kv[i];
        int64_t iv;
        double dv;
        (void)tnd_gguf_value_int(&kv->value, &iv);
        (void)tnd_gguf_value_float(&kv->value, &dv);
        if (tnd_gguf_find_key(g, kv->key) != (int64_t)i) __builtin_trap();
        if (kv->value.type == TND_VALUE_ARRAY) {
            for (uint64_t j = 0; j < kv->value.count && j < 64; j++) {
                (void)tnd_gguf_array_int(&kv->value, j, &iv);
                (void)tnd_gguf_array_float(&kv->value, j, &dv);
                if (kv->value.elem_type == TND_VALUE_STRING && kv->value.strings[j].len > g->size) __builtin_trap();
            }
        }
    }
    uint8_t sum = 0;
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const tnd_gguf_tensor *t = &g->tensors[i];
        if (tnd_gguf_find_tensor(g, t->name) != (int64_t)i) __builtin_trap();
        if (t->size) sum ^= t->data[0] ^ t->data[t->size - 1]; /* the ends of every tensor are readable */
    }
    (void)sum;
}

/* A file that parsed is rewritten with copy_meta and its tensors; the rewrite must parse to the same tables. */
static void round_trip(const tnd_gguf *g) {
    tnd_gguf_writer *w = tnd_gguf_writer_init(NULL);
    if (!w) return;
    uint8_t *out = NULL;
    uint64_t size = 0;
    bool ok = tnd_gguf_writer_copy_meta(w, g) == TND_OK;
    for (uint64_t i = 0; ok && i < g->n_tensors; i++) {
        const tnd_gguf_tensor *t = &g->tensors[i];
        ok = tnd_gguf_writer_add_tensor(w, t->name, t->type, t->n_dims, t->ne, t->data) == TND_OK;
    }
    if (ok && tnd_gguf_writer_write_mem(w, &out, &size) == TND_OK) {
        tnd_gguf *h = NULL;
        if (tnd_gguf_parse(out, size, NULL, &h) != TND_OK) __builtin_trap();
        if (h->n_kv != g->n_kv || h->n_tensors != g->n_tensors) __builtin_trap();
        for (uint64_t i = 0; i < g->n_tensors; i++)
            if (memcmp(h->tensors[i].data, g->tensors[i].data, g->tensors[i].size) != 0) __builtin_trap();
        tnd_gguf_free(h);
    }
    tnd_free(NULL, out);
    tnd_gguf_writer_free(w);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    tnd_gguf *g = NULL;
    if (tnd_gguf_parse(data, size, NULL, &g) == TND_OK) {
        walk(g);
        round_trip(g);
    }
    tnd_gguf_free(g);
    return 0;
}
