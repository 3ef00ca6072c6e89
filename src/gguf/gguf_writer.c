/* gguf_writer.c: builds a GGUF v3 file from metadata pairs and tensors (used by convert, quantize, model make and
 * tests). Values are serialized into per-pair byte buffers as they are set, so writing is a plain concatenation. */
#include "gguf/gguf.h"

#include "core/alloc.h"
#include "core/error.h"
#include "quant/quant.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

typedef struct wbuf {
    uint8_t *p;
    uint64_t len, cap;
} wbuf;

typedef struct wpair {
    char *key;
    wbuf value; /* u32 type followed by the serialized value */
} wpair;

typedef struct wtensor {
    char *name;
    tnd_type type;
    uint32_t n_dims;
    int64_t ne[TND_GGUF_MAX_DIMS];
    uint64_t size;
    const void *data;       /* borrowed bytes, or NULL when `fill` produces them */
    tnd_gguf_fill_fn fill;
    void *fill_user;
} wtensor;

struct tnd_gguf_writer {
    tnd_allocator allocator;
    wpair *pairs;
    uint64_t n_pairs, cap_pairs;
    wtensor *tensors;
    uint64_t n_tensors, cap_tensors;
    uint64_t alignment;
};

/* ------------------------------------------------------------------------------------------------------------
 * Small growable buffers through the caller's allocator
 * ---------------------------------------------------------------------------------------------------------- */

static bool grow(const tnd_allocator *a, void **p, uint64_t *cap, uint64_t need, size_t elem) {
    if (need <= *cap) return true;
    uint64_t nc = *cap ? *cap : 8;
    while (nc < need) nc *= 2;
    void *np = tnd_alloc_array(a, (size_t)nc, elem);
    if (!np) return false;
    if (*p) memcpy(np, *p, (size_t)(*cap * elem));
    tnd_free(a, *p);
    *p = np;
    *cap = nc;
    return true;
}

static bool buf_put(const tnd_allocator *a, wbuf *b, const void *src, uint64_t n) {
    if (!grow(a, (void **)&b->p, &b->cap, b->len + n, 1)) return false;
    if (n) memcpy(b->p + b->len, src, (size_t)n);
    b->len += n;
    return true;
}

static bool buf_u32(const tnd_allocator *a, wbuf *b, uint32_t v) { return buf_put(a, b, &v, 4); }
static bool buf_u64(const tnd_allocator *a, wbuf *b, uint64_t v) { return buf_put(a, b, &v, 8); }
static bool buf_str(const tnd_allocator *a, wbuf *b, const char *s, uint64_t len) {
    return buf_u64(a, b, len) && buf_put(a, b, s, len);
}

static char *dup_str(const tnd_allocator *a, const char *s) {
    size_t n = strlen(s);
    char *d = tnd_alloc(a, n + 1);
    if (d) memcpy(d, s, n + 1);
    return d;
}

/* ------------------------------------------------------------------------------------------------------------
 * Construction
 * ---------------------------------------------------------------------------------------------------------- */

tnd_gguf_writer *tnd_gguf_writer_init(const tnd_allocator *allocator) {
    tnd_allocator a = allocator ? *allocator : (tnd_allocator){0};
    tnd_gguf_writer *w = tnd_alloc(&a, sizeof *w);
    if (!w) return NULL;
    w->allocator = a;
    w->alignment = TND_GGUF_DEFAULT_ALIGNMENT;
    return w;
}

void tnd_gguf_writer_free(tnd_gguf_writer *w) {
    if (!w) return;
    tnd_allocator a = w->allocator;
    for (uint64_t i = 0; i < w->n_pairs; i++) {
        tnd_free(&a, w->pairs[i].key);
        tnd_free(&a, w->pairs[i].value.p);
    }
    for (uint64_t i = 0; i < w->n_tensors; i++) tnd_free(&a, w->tensors[i].name);
    tnd_free(&a, w->pairs);
    tnd_free(&a, w->tensors);
    tnd_free(&a, w);
}

/* The pair for `key`, emptied if it existed, appended otherwise. */
static wpair *pair_for(tnd_gguf_writer *w, const char *key) {
    for (uint64_t i = 0; i < w->n_pairs; i++) {
        if (strcmp(w->pairs[i].key, key) == 0) {
            w->pairs[i].value.len = 0;
            return &w->pairs[i];
        }
    }
    if (!grow(&w->allocator, (void **)&w->pairs, &w->cap_pairs, w->n_pairs + 1, sizeof *w->pairs)) return NULL;
    wpair *p = &w->pairs[w->n_pairs];
    memset(p, 0, sizeof *p);
    p->key = dup_str(&w->allocator, key);
    if (!p->key) return NULL;
    w->n_pairs++;
    return p;
}

static tnd_status oom(const char *key) { return tnd_fail(TND_ERR_OUT_OF_MEMORY, "out of memory writing '%s'", key); }

tnd_status tnd_gguf_writer_set_scalar(tnd_gguf_writer *w, const char *key, tnd_value_type type, const void *value) {
    uint32_t n = tnd_gguf_scalar_size(type);
    if (!w || !key || !value || !n) return tnd_fail(TND_ERR_INVALID_ARGUMENT, "set_scalar: bad argument");
    wpair *p = pair_for(w, key);
    if (!p || !buf_u32(&w->allocator, &p->value, (uint32_t)type) || !buf_put(&w->allocator, &p->value, value, n))
        return oom(key);
    if (strcmp(key, "general.alignment") == 0 && type == TND_VALUE_U32) {
        uint32_t al;
        memcpy(&al, value, 4);
        if (al == 0 || (al & (al - 1)))
            return tnd_fail(TND_ERR_INVALID_ARGUMENT, "general.alignment %u is not a power of two", al);
        w->alignment = al;
    }
    return TND_OK;
}

tnd_status tnd_gguf_writer_set_u32(tnd_gguf_writer *w, const char *key, uint32_t v) {
    return tnd_gguf_writer_set_scalar(w, key, TND_VALUE_U32, &v);
}
tnd_status tnd_gguf_writer_set_i32(tnd_gguf_writer *w, const char *key, int32_t v) {
    return tnd_gguf_writer_set_scalar(w, key, TND_VALUE_I32, &v);
}
tnd_status tnd_gguf_writer_set_f32(tnd_gguf_writer *w, const char *key, float v) {
    return tnd_gguf_writer_set_scalar(w, key, TND_VALUE_F32, &v);
}
tnd_status tnd_gguf_writer_set_bool(tnd_gguf_writer *w, const char *key, bool v) {
    uint8_t b = v ? 1 : 0;
    return tnd_gguf_writer_set_scalar(w, key, TND_VALUE_BOOL, &b);
}

tnd_status tnd_gguf_writer_set_str(tnd_gguf_writer *w, const char *key, const char *s) {
    if (!w || !key || !s) return tnd_fail(TND_ERR_INVALID_ARGUMENT, "set_str: NULL argument");
    wpair *p = pair_for(w, key);
    if (!p || !buf_u32(&w->allocator, &p->value, TND_VALUE_STRING) || !buf_str(&w->allocator, &p->value, s, strlen(s)))
        return oom(key);
    return TND_OK;
}

tnd_status tnd_gguf_writer_set_array(tnd_gguf_writer *w, const char *key, tnd_value_type elem_type, const void *data,
                                     uint64_t count) {
    uint32_t n = tnd_gguf_scalar_size(elem_type);
    uint64_t bytes;
    if (!w || !key || (!data && count) || !n || !tnd_mul_u64(count, n, &bytes))
        return tnd_fail(TND_ERR_INVALID_ARGUMENT, "set_array '%s': bad argument", key ? key : "(null)");
    wpair *p = pair_for(w, key);
    if (!p || !buf_u32(&w->allocator, &p->value, TND_VALUE_ARRAY) ||
        !buf_u32(&w->allocator, &p->value, (uint32_t)elem_type) || !buf_u64(&w->allocator, &p->value, count) ||
        !buf_put(&w->allocator, &p->value, data, bytes))
        return oom(key);
    return TND_OK;
}

tnd_status tnd_gguf_writer_set_array_str(tnd_gguf_writer *w, const char *key, const char *const *strs,
                                         const uint64_t *lens, uint64_t count) {
    if (!w || !key || (!strs && count)) return tnd_fail(TND_ERR_INVALID_ARGUMENT, "set_array_str: NULL argument");
    wpair *p = pair_for(w, key);
    if (!p || !buf_u32(&w->allocator, &p->value, TND_VALUE_ARRAY) ||
        !buf_u32(&w->allocator, &p->value, TND_VALUE_STRING) || !buf_u64(&w->allocator, &p->value, count))
        return oom(key);
    for (uint64_t i = 0; i < count; i++) {
        if (!buf_str(&w->allocator, &p->value, strs[i], lens ? lens[i] : strlen(strs[i]))) return oom(key);
    }
    return TND_OK;
}

/* A parsed value is copied byte for byte, from its type word to the end of its serialized form. */
tnd_status tnd_gguf_writer_copy_meta(tnd_gguf_writer *w, const tnd_gguf *src) {
    if (!w || !src) return tnd_fail(TND_ERR_INVALID_ARGUMENT, "copy_meta: NULL argument");
    for (uint64_t i = 0; i < src->n_kv; i++) {
        const tnd_gguf_kv *kv = &src->kv[i];
        uint64_t begin = kv->file_offset + 8 + strlen(kv->key);
        wpair *p = pair_for(w, kv->key);
        if (!p || !buf_put(&w->allocator, &p->value, src->bytes + begin, kv->end_offset - begin)) return oom(kv->key);
        if (strcmp(kv->key, "general.alignment") == 0) w->alignment = src->alignment;
    }
    return TND_OK;
}

tnd_status tnd_gguf_writer_add_tensor(tnd_gguf_writer *w, const char *name, tnd_type type, uint32_t n_dims,
                                      const int64_t *ne, const void *data) {
    tnd_status st = tnd_gguf_writer_add_tensor_fill(w, name, type, n_dims, ne, NULL, NULL);
    if (!st) w->tensors[w->n_tensors - 1].data = data;
    return st;
}

tnd_status tnd_gguf_writer_add_tensor_fill(tnd_gguf_writer *w, const char *name, tnd_type type, uint32_t n_dims,
                                           const int64_t *ne, tnd_gguf_fill_fn fill, void *user) {
    if (!w || !name || !ne || n_dims == 0 || n_dims > TND_GGUF_MAX_DIMS)
        return tnd_fail(TND_ERR_INVALID_ARGUMENT, "add_tensor '%s': bad argument", name ? name : "(null)");
    const tnd_type_traits *tr = tnd_type_traits_of(type);
    if (!tr) return tnd_fail(TND_ERR_INVALID_ARGUMENT, "add_tensor '%s': unknown type %d", name, (int)type);
    uint64_t n = 1;
    for (uint32_t d = 0; d < n_dims; d++) {
        if (ne[d] <= 0 || !tnd_mul_u64(n, (uint64_t)ne[d], &n))
            return tnd_fail(TND_ERR_INVALID_ARGUMENT, "add_tensor '%s': bad dimension %u", name, d);
    }
    if (ne[0] % tr->block_size)
        return tnd_fail(TND_ERR_INVALID_ARGUMENT, "add_tensor '%s': row of %lld is not a multiple of %u", name,
                        (long long)ne[0], tr->block_size);
    if (!grow(&w->allocator, (void **)&w->tensors, &w->cap_tensors, w->n_tensors + 1, sizeof *w->tensors))
        return oom(name);
    wtensor *t = &w->tensors[w->n_tensors];
    memset(t, 0, sizeof *t);
    t->name = dup_str(&w->allocator, name);
    if (!t->name) return oom(name);
    t->type = type;
    t->n_dims = n_dims;
    for (int d = 0; d < TND_GGUF_MAX_DIMS; d++) t->ne[d] = d < (int)n_dims ? ne[d] : 1;
    t->size = n / tr->block_size * tr->type_size;
    t->fill = fill;
    t->fill_user = user;
    w->n_tensors++;
    return TND_OK;
}

/* ------------------------------------------------------------------------------------------------------------
 * Output
 * ---------------------------------------------------------------------------------------------------------- */

static uint64_t pad_to(uint64_t x, uint64_t a) { return (a - x % a) % a; }

/* Serializes the header, pairs and tensor infos into one buffer (the data follows separately). */
static tnd_status build_head(tnd_gguf_writer *w, wbuf *h) {
    const tnd_allocator *a = &w->allocator;
    bool ok = buf_put(a, h, "GGUF", 4) && buf_u32(a, h, 3) && buf_u64(a, h, w->n_tensors) && buf_u64(a, h, w->n_pairs);
    for (uint64_t i = 0; ok && i < w->n_pairs; i++)
        ok = buf_str(a, h, w->pairs[i].key, strlen(w->pairs[i].key)) &&
             buf_put(a, h, w->pairs[i].value.p, w->pairs[i].value.len);
    uint64_t offset = 0;
    for (uint64_t i = 0; ok && i < w->n_tensors; i++) {
        const wtensor *t = &w->tensors[i];
        ok = buf_str(a, h, t->name, strlen(t->name)) && buf_u32(a, h, t->n_dims);
        for (uint32_t d = 0; ok && d < t->n_dims; d++) ok = buf_u64(a, h, (uint64_t)t->ne[d]);
        ok = ok && buf_u32(a, h, (uint32_t)t->type) && buf_u64(a, h, offset);
        offset += t->size + pad_to(t->size, w->alignment);
    }
    static const uint8_t zeros[256];
    uint64_t pad = pad_to(h->len, w->alignment);
    while (ok && pad) {
        uint64_t n = pad < sizeof zeros ? pad : sizeof zeros;
        ok = buf_put(a, h, zeros, n);
        pad -= n;
    }
    if (!ok) {
        tnd_free(a, h->p);
        return tnd_fail(TND_ERR_OUT_OF_MEMORY, "out of memory serializing GGUF header");
    }
    return TND_OK;
}

static bool write_all(FILE *f, const void *p, uint64_t n) { return n == 0 || fwrite(p, 1, (size_t)n, f) == n; }

tnd_status tnd_gguf_writer_write(tnd_gguf_writer *w, FILE *f) {
    if (!w || !f) return tnd_fail(TND_ERR_INVALID_ARGUMENT, "write: NULL argument");
    wbuf h = {0};
    tnd_status st = build_head(w, &h);
    if (st) return st;
    static const uint8_t zeros[256];
    bool ok = write_all(f, h.p, h.len);
    for (uint64_t i = 0; ok && !st && i < w->n_tensors; i++) {
        const wtensor *t = &w->tensors[i];
        const void *data = t->data;
        void *filled = NULL;
        if (!data && t->fill) {
            data = filled = tnd_alloc(&w->allocator, (size_t)t->size);
            if (!filled) st = tnd_fail(TND_ERR_OUT_OF_MEMORY, "out of memory for tensor '%s'", t->name);
            else st = t->fill(t->fill_user, filled, t->size);
        } else if (!data) {
            st = tnd_fail(TND_ERR_INVALID_ARGUMENT, "tensor '%s' has no data", t->name);
        }
        if (!st) ok = write_all(f, data, t->size) && write_all(f, zeros, pad_to(t->size, w->alignment));
        tnd_free(&w->allocator, filled);
    }
    tnd_free(&w->allocator, h.p);
    if (st) return st;
    if (!ok) return tnd_fail(TND_ERR_IO, "write failed: %s", strerror(errno));
    return TND_OK;
}

tnd_status tnd_gguf_writer_write_file(tnd_gguf_writer *w, const char *path) {
    if (!w || !path) return tnd_fail(TND_ERR_INVALID_ARGUMENT, "write_file: NULL argument");
    FILE *f = fopen(path, "wb");
    if (!f) return tnd_fail(TND_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    tnd_status st = tnd_gguf_writer_write(w, f);
    if (fclose(f) != 0 && !st) st = tnd_fail(TND_ERR_IO, "%s: close failed: %s", path, strerror(errno));
    if (st) {
        tnd_error_prefix("%s: ", path);
        remove(path);
    }
    return st;
}

tnd_status tnd_gguf_writer_write_mem(tnd_gguf_writer *w, uint8_t **out, uint64_t *size) {
    if (!w || !out || !size) return tnd_fail(TND_ERR_INVALID_ARGUMENT, "write_mem: NULL argument");
    *out = NULL;
    *size = 0;
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) return tnd_fail(TND_ERR_OUT_OF_MEMORY, "open_memstream failed");
    tnd_status st = tnd_gguf_writer_write(w, f);
    fclose(f);
    if (!st) {
        *out = tnd_alloc(&w->allocator, len ? len : 1);
        if (!*out) st = tnd_fail(TND_ERR_OUT_OF_MEMORY, "out of memory");
        else {
            memcpy(*out, buf, len);
            *size = len;
        }
    }
    free(buf);
    return st;
}
