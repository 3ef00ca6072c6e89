/* gguf.c: the GGUF parser. Reads a byte span, checks every count, length, offset and product before use, and builds
 * an index of keys and tensors. Hostile input gets an error naming what is wrong and where; allocations are bounded
 * by the span's size because every count is first checked against the bytes that remain. */
#include "gguf/gguf.h"

#include "core/alloc.h"
#include "core/error.h"
#include "quant/quant.h"

#include <inttypes.h>
#include <string.h>

/* ------------------------------------------------------------------------------------------------------------
 * Cursor: bounds-checked little-endian reads
 * ---------------------------------------------------------------------------------------------------------- */

typedef struct cursor {
    const uint8_t *p;
    uint64_t size, pos;
} cursor;

static uint64_t remaining(const cursor *c) { return c->size - c->pos; }

static tnd_status read_bytes(cursor *c, void *dst, uint64_t n, const char *what) {
    if (n > remaining(c))
        return tnd_fail(TND_ERR_FORMAT, "truncated file: %s at byte offset %" PRIu64 " needs %" PRIu64
                        " bytes, %" PRIu64 " remain", what, c->pos, n, remaining(c));
    memcpy(dst, c->p + c->pos, n);
    c->pos += n;
    return TND_OK;
}

static tnd_status read_u32(cursor *c, uint32_t *v, const char *what) { return read_bytes(c, v, 4, what); }
static tnd_status read_u64(cursor *c, uint64_t *v, const char *what) { return read_bytes(c, v, 8, what); }

static tnd_status read_str(cursor *c, tnd_gguf_str *s, const char *what) {
    uint64_t at = c->pos, len = 0;
    tnd_status st = read_u64(c, &len, what);
    if (st) return st;
    if (len > remaining(c))
        return tnd_fail(TND_ERR_FORMAT, "%s at byte offset %" PRIu64 " has length %" PRIu64
                        " but only %" PRIu64 " bytes remain in the file", what, at, len, remaining(c));
    s->ptr = (const char *)c->p + c->pos;
    s->len = len;
    c->pos += len;
    return TND_OK;
}

uint32_t tnd_gguf_scalar_size(tnd_value_type t) {
    switch (t) {
    case TND_VALUE_U8: case TND_VALUE_I8: case TND_VALUE_BOOL: return 1;
    case TND_VALUE_U16: case TND_VALUE_I16: return 2;
    case TND_VALUE_U32: case TND_VALUE_I32: case TND_VALUE_F32: return 4;
    case TND_VALUE_U64: case TND_VALUE_I64: case TND_VALUE_F64: return 8;
    case TND_VALUE_STRING: case TND_VALUE_ARRAY: return 0;
    }
    return 0;
}

const char *tnd_value_type_name(tnd_value_type t) {
    static const char *const names[] = {"u8", "i8", "u16", "i16", "u32", "i32", "f32",
                                        "bool", "string", "array", "u64", "i64", "f64"};
    return (unsigned)t < sizeof names / sizeof names[0] ? names[t] : NULL;
}

/* ------------------------------------------------------------------------------------------------------------
 * Name index: open addressing over FNV-1a hashes; slot value = index + 1, 0 = empty
 * ---------------------------------------------------------------------------------------------------------- */

static uint64_t hash_name(const char *s, size_t len) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < len; i++) h = (h ^ (uint8_t)s[i]) * 1099511628211ull;
    return h;
}

static uint64_t index_capacity(uint64_t n) {
    uint64_t cap = 16;
    while (cap < 2 * n) cap *= 2;
    return cap;
}

/* Looks up `name` among `names` through `slots`; returns the index or -1, and the free slot for insertion. */
static int64_t index_lookup(const uint64_t *slots, uint64_t cap, const char *name, size_t len,
                            const char *(*name_of)(const void *, uint64_t), const void *items, uint64_t *free_slot) {
    uint64_t mask = cap - 1, s = hash_name(name, len) & mask;
    for (;;) {
        uint64_t v = slots[s];
        if (v == 0) {
            if (free_slot) *free_slot = s;
            return -1;
        }
        const char *other = name_of(items, v - 1);
        if (strlen(other) == len && memcmp(other, name, len) == 0) return (int64_t)(v - 1);
        s = (s + 1) & mask;
    }
}

static const char *kv_name(const void *items, uint64_t i) { return ((const tnd_gguf_kv *)items)[i].key; }
static const char *tensor_name(const void *items, uint64_t i) { return ((const tnd_gguf_tensor *)items)[i].name; }

int64_t tnd_gguf_find_key(const tnd_gguf *g, const char *key) {
    if (!g || !key || !g->kv_index) return -1;
    return index_lookup(g->kv_index, g->kv_index_cap, key, strlen(key), kv_name, g->kv, NULL);
}

int64_t tnd_gguf_find_tensor(const tnd_gguf *g, const char *name) {
    if (!g || !name || !g->tensor_index) return -1;
    return index_lookup(g->tensor_index, g->tensor_index_cap, name, strlen(name), tensor_name, g->tensors, NULL);
}

/* ------------------------------------------------------------------------------------------------------------
 * Parsing
 * ---------------------------------------------------------------------------------------------------------- */

typedef struct parser {
    cursor c;
    tnd_gguf *g;
    bool filling;       /* false: first pass, validate and count; true: second pass, fill the pools */
    char *names;        /* pass 2: bump pointer into g->name_pool */
    uint64_t name_bytes; /* pass 1: bytes the name pool needs */
    tnd_gguf_str *strs; /* pass 2: bump pointer into g->string_pool */
    uint64_t strs_left; /* pass 1: strings counted; pass 2: strings left in the pool */
} parser;

/* Names from the file in messages: at most 200 bytes of them. */
#define NAME_FMT "%.*s"
#define NAME_ARG(s) (int)((s).len > 200 ? 200 : (s).len), (s).ptr

/* Pass 1 counts a name (key or tensor); pass 2 copies it NUL-terminated into the pool. Names with NUL bytes are
 * rejected so that the copies mean what the file says. */
static tnd_status copy_name(parser *ps, tnd_gguf_str s, const char *what, uint64_t at, const char **out) {
    if (memchr(s.ptr, 0, s.len))
        return tnd_fail(TND_ERR_FORMAT, "%s at byte offset %" PRIu64 " contains a NUL byte", what, at);
    if (!ps->filling) {
        ps->name_bytes += s.len + 1;
        *out = "";
        return TND_OK;
    }
    memcpy(ps->names, s.ptr, s.len);
    ps->names[s.len] = 0;
    *out = ps->names;
    ps->names += s.len + 1;
    return TND_OK;
}

static tnd_status parse_value(parser *ps, tnd_gguf_value *v, tnd_gguf_str key, int depth);

/* Arrays: count is checked against the remaining bytes (each element takes at least one byte, a string at least
 * eight) before anything is allocated. Strings are indexed into the pool counted in the first pass. */
static tnd_status parse_array(parser *ps, tnd_gguf_value *v, tnd_gguf_str key, int depth) {
    cursor *c = &ps->c;
    uint64_t at = c->pos;
    uint32_t et = 0;
    tnd_status st = read_u32(c, &et, "array element type");
    if (st) return st;
    st = read_u64(c, &v->count, "array count");
    if (st) return st;
    v->elem_type = (tnd_value_type)et;
    if (!tnd_value_type_name(v->elem_type))
        return tnd_fail(TND_ERR_FORMAT, "key '" NAME_FMT "': array at byte offset %" PRIu64 " has unknown element type %u",
                        NAME_ARG(key), at, et);
    if (v->elem_type == TND_VALUE_ARRAY && depth + 1 >= TND_GGUF_MAX_ARRAY_DEPTH)
        return tnd_fail(TND_ERR_FORMAT, "key '" NAME_FMT "': arrays nested deeper than %d at byte offset %" PRIu64, NAME_ARG(key),
                        TND_GGUF_MAX_ARRAY_DEPTH, at);
    uint32_t es = tnd_gguf_scalar_size(v->elem_type);
    uint64_t min_bytes;
    uint64_t min_elem = es ? es : (v->elem_type == TND_VALUE_STRING ? 8 : 12);
    if (!tnd_mul_u64(v->count, min_elem, &min_bytes) || min_bytes > remaining(c))
        return tnd_fail(TND_ERR_FORMAT, "key '" NAME_FMT "': array at byte offset %" PRIu64 " claims %" PRIu64
                        " elements of type %s, more than the %" PRIu64 " bytes left in the file can hold", NAME_ARG(key), at,
                        v->count, tnd_value_type_name(v->elem_type), remaining(c));
    v->raw = c->p + c->pos;
    if (es) {
        c->pos += min_bytes;
        return TND_OK;
    }
    if (v->elem_type == TND_VALUE_STRING) {
        tnd_gguf_str *dst = NULL;
        if (ps->filling) {
            if (v->count > ps->strs_left) return tnd_fail(TND_ERR_INTERNAL, "string pool miscounted");
            dst = ps->strs;
            ps->strs += v->count;
            ps->strs_left -= v->count;
            v->strings = dst;
        } else {
            ps->strs_left += v->count;
        }
        for (uint64_t i = 0; i < v->count; i++) {
            tnd_gguf_str s;
            st = read_str(c, &s, "array string");
            if (st) {
                tnd_error_prefix("key '" NAME_FMT "' element %" PRIu64 ": ", NAME_ARG(key), i);
                return st;
            }
            if (dst) dst[i] = s;
        }
        return TND_OK;
    }
    for (uint64_t i = 0; i < v->count; i++) { /* arrays of arrays: validated, not indexed */
        tnd_gguf_value inner = {.type = v->elem_type};
        st = parse_value(ps, &inner, key, depth + 1);
        if (st) return st;
    }
    return TND_OK;
}

static tnd_status parse_value(parser *ps, tnd_gguf_value *v, tnd_gguf_str key, int depth) {
    cursor *c = &ps->c;
    if (v->type == TND_VALUE_STRING) {
        tnd_status st = read_str(c, &v->str, "string value");
        if (st) tnd_error_prefix("key '" NAME_FMT "': ", NAME_ARG(key));
        return st;
    }
    if (v->type == TND_VALUE_ARRAY) return parse_array(ps, v, key, depth);
    uint32_t es = tnd_gguf_scalar_size(v->type);
    if (es > remaining(c))
        return tnd_fail(TND_ERR_FORMAT, "truncated file: value of key '" NAME_FMT "' at byte offset %" PRIu64, NAME_ARG(key), c->pos);
    v->raw = c->p + c->pos;
    if (v->type == TND_VALUE_BOOL && *v->raw > 1)
        return tnd_fail(TND_ERR_FORMAT, "key '" NAME_FMT "': bool value %u at byte offset %" PRIu64 " is not 0 or 1", NAME_ARG(key),
                        *v->raw, c->pos);
    c->pos += es;
    return TND_OK;
}

static tnd_status parse_kvs(parser *ps) {
    tnd_gguf *g = ps->g;
    for (uint64_t i = 0; i < g->n_kv; i++) {
        tnd_gguf_kv *kv = &g->kv[i];
        kv->file_offset = ps->c.pos;
        tnd_gguf_str key;
        tnd_status st = read_str(&ps->c, &key, "metadata key");
        if (st) {
            tnd_error_prefix("metadata pair %" PRIu64 ": ", i);
            return st;
        }
        st = copy_name(ps, key, "metadata key", kv->file_offset, &kv->key);
        if (st) return st;
        uint32_t type = 0;
        st = read_u32(&ps->c, &type, "value type");
        if (st) return st;
        kv->value.type = (tnd_value_type)type;
        if (!tnd_value_type_name(kv->value.type))
            return tnd_fail(TND_ERR_FORMAT, "key '" NAME_FMT "' at byte offset %" PRIu64 " has unknown value type %u",
                            NAME_ARG(key), kv->file_offset, type);
        st = parse_value(ps, &kv->value, key, 0);
        if (st) return st;
        kv->end_offset = ps->c.pos;
    }
    return TND_OK;
}

static tnd_status index_kvs(tnd_gguf *g) {
    g->kv_index_cap = index_capacity(g->n_kv);
    g->kv_index = tnd_alloc_array(&g->allocator, g->kv_index_cap, sizeof(uint64_t));
    if (!g->kv_index) return tnd_fail(TND_ERR_OUT_OF_MEMORY, "out of memory indexing %" PRIu64 " keys", g->n_kv);
    for (uint64_t i = 0; i < g->n_kv; i++) {
        uint64_t slot = 0;
        const char *k = g->kv[i].key;
        int64_t dup = index_lookup(g->kv_index, g->kv_index_cap, k, strlen(k), kv_name, g->kv, &slot);
        if (dup >= 0)
            return tnd_fail(TND_ERR_FORMAT, "duplicate metadata key '%s' at byte offsets %" PRIu64 " and %" PRIu64,
                            k, g->kv[dup].file_offset, g->kv[i].file_offset);
        g->kv_index[slot] = i + 1;
    }
    return TND_OK;
}

static tnd_status read_alignment(tnd_gguf *g) {
    g->alignment = TND_GGUF_DEFAULT_ALIGNMENT;
    const tnd_gguf_value *v = tnd_gguf_get(g, "general.alignment");
    if (!v) return TND_OK;
    int64_t a;
    if (v->type != TND_VALUE_U32 || !tnd_gguf_value_int(v, &a))
        return tnd_fail(TND_ERR_FORMAT, "general.alignment must be a u32, found %s", tnd_value_type_name(v->type));
    if (a == 0 || (a & (a - 1)))
        return tnd_fail(TND_ERR_FORMAT, "general.alignment %" PRId64 " is not a power of two", a);
    g->alignment = (uint64_t)a;
    return TND_OK;
}

static tnd_status parse_tensor_infos(parser *ps) {
    tnd_gguf *g = ps->g;
    cursor *c = &ps->c;
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        tnd_gguf_tensor *t = &g->tensors[i];
        uint64_t at = c->pos;
        tnd_gguf_str name;
        tnd_status st = read_str(c, &name, "tensor name");
        if (st) {
            tnd_error_prefix("tensor %" PRIu64 ": ", i);
            return st;
        }
        st = copy_name(ps, name, "tensor name", at, &t->name);
        if (st) return st;
        st = read_u32(c, &t->n_dims, "tensor n_dims");
        if (st) return st;
        if (t->n_dims == 0 || t->n_dims > TND_GGUF_MAX_DIMS)
            return tnd_fail(TND_ERR_FORMAT, "tensor '" NAME_FMT "' at byte offset %" PRIu64 ": n_dims %u is not in 1..%d",
                            NAME_ARG(name), at, t->n_dims, TND_GGUF_MAX_DIMS);
        uint64_t n = 1;
        for (int d = 0; d < TND_GGUF_MAX_DIMS; d++) t->ne[d] = 1;
        for (uint32_t d = 0; d < t->n_dims; d++) {
            uint64_t ne = 0;
            st = read_u64(c, &ne, "tensor dimension");
            if (st) return st;
            if (ne == 0 || ne > INT64_MAX)
                return tnd_fail(TND_ERR_FORMAT, "tensor '" NAME_FMT "': dimension %u is %" PRIu64 " (must be 1..2^63-1)",
                                NAME_ARG(name), d, ne);
            if (!tnd_mul_u64(n, ne, &n) || n > INT64_MAX)
                return tnd_fail(TND_ERR_FORMAT, "tensor '" NAME_FMT "': element count overflows 64 bits", NAME_ARG(name));
            t->ne[d] = (int64_t)ne;
        }
        t->n_elements = n;
        uint32_t type = 0;
        st = read_u32(c, &type, "tensor type");
        if (st) return st;
        t->type = (tnd_type)type;
        const tnd_type_traits *tr = tnd_type_traits_of(t->type);
        if (!tr) return tnd_fail(TND_ERR_UNSUPPORTED, "tensor '" NAME_FMT "': unknown tensor type %u", NAME_ARG(name), type);
        if ((uint64_t)t->ne[0] % tr->block_size)
            return tnd_fail(TND_ERR_FORMAT, "tensor '" NAME_FMT "': row length %" PRId64 " is not a multiple of the %s block"
                            " size %u", NAME_ARG(name), t->ne[0], tr->name, tr->block_size);
        if (!tnd_mul_u64(n / tr->block_size, tr->type_size, &t->size))
            return tnd_fail(TND_ERR_FORMAT, "tensor '" NAME_FMT "': byte size overflows 64 bits", NAME_ARG(name));
        st = read_u64(c, &t->offset, "tensor data offset");
        if (st) return st;
    }
    return TND_OK;
}

static tnd_status index_tensors(tnd_gguf *g) {
    g->tensor_index_cap = index_capacity(g->n_tensors);
    g->tensor_index = tnd_alloc_array(&g->allocator, g->tensor_index_cap, sizeof(uint64_t));
    if (!g->tensor_index) return tnd_fail(TND_ERR_OUT_OF_MEMORY, "out of memory indexing tensors");
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        uint64_t slot = 0;
        const char *nm = g->tensors[i].name;
        if (index_lookup(g->tensor_index, g->tensor_index_cap, nm, strlen(nm), tensor_name, g->tensors, &slot) >= 0)
            return tnd_fail(TND_ERR_FORMAT, "duplicate tensor name '%s'", nm);
        g->tensor_index[slot] = i + 1;
    }
    return TND_OK;
}

/* Places the data section, then checks that every tensor lies inside the file and that no two overlap
 * (sorting a permutation by offset; tensors are few enough that an insertion-free merge sort is plenty). */
static int cmp_offset(const tnd_gguf_tensor *a, const tnd_gguf_tensor *b) {
    return a->offset < b->offset ? -1 : a->offset > b->offset;
}

static void sort_by_offset(tnd_gguf_tensor **v, tnd_gguf_tensor **tmp, uint64_t n) {
    if (n < 2) return;
    uint64_t h = n / 2;
    sort_by_offset(v, tmp, h);
    sort_by_offset(v + h, tmp, n - h);
    uint64_t i = 0, j = h, k = 0;
    while (i < h && j < n) tmp[k++] = cmp_offset(v[j], v[i]) < 0 ? v[j++] : v[i++];
    while (i < h) tmp[k++] = v[i++];
    while (j < n) tmp[k++] = v[j++];
    memcpy(v, tmp, n * sizeof *v);
}

static tnd_status place_tensors(tnd_gguf *g, uint64_t infos_end) {
    uint64_t pad = (g->alignment - infos_end % g->alignment) % g->alignment;
    if (!tnd_add_u64(infos_end, pad, &g->data_start))
        return tnd_fail(TND_ERR_FORMAT, "data section offset overflows");
    if (g->n_tensors == 0) return TND_OK;
    tnd_status st = TND_OK;
    tnd_gguf_tensor **order = tnd_alloc_array(&g->allocator, g->n_tensors, sizeof *order);
    tnd_gguf_tensor **tmp = tnd_alloc_array(&g->allocator, g->n_tensors, sizeof *tmp);
    if (!order || !tmp) {
        st = tnd_fail(TND_ERR_OUT_OF_MEMORY, "out of memory sorting %" PRIu64 " tensors", g->n_tensors);
        goto cleanup;
    }
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        tnd_gguf_tensor *t = &g->tensors[i];
        uint64_t begin, end;
        if (t->offset % g->alignment) {
            st = tnd_fail(TND_ERR_FORMAT, "tensor '%s': data offset %" PRIu64 " is not a multiple of the alignment %"
                          PRIu64, t->name, t->offset, g->alignment);
            goto cleanup;
        }
        if (!tnd_add_u64(g->data_start, t->offset, &begin) || !tnd_add_u64(begin, t->size, &end) || end > g->size) {
            st = tnd_fail(TND_ERR_FORMAT, "tensor '%s': data at offset %" PRIu64 " + %" PRIu64 " bytes runs past the"
                          " end of the file (%" PRIu64 " bytes, data section at %" PRIu64 ")", t->name, t->offset,
                          t->size, g->size, g->data_start);
            goto cleanup;
        }
        t->offset = begin; /* from here on: absolute */
        t->data = g->bytes + begin;
        order[i] = t;
    }
    sort_by_offset(order, tmp, g->n_tensors);
    for (uint64_t i = 1; i < g->n_tensors; i++) {
        const tnd_gguf_tensor *a = order[i - 1], *b = order[i];
        if (a->offset + a->size > b->offset) {
            st = tnd_fail(TND_ERR_FORMAT, "tensors '%s' and '%s' overlap: [%" PRIu64 ", %" PRIu64 ") and [%" PRIu64
                          ", %" PRIu64 ")", a->name, b->name, a->offset, a->offset + a->size, b->offset,
                          b->offset + b->size);
            goto cleanup;
        }
    }
cleanup:
    tnd_free(&g->allocator, order);
    tnd_free(&g->allocator, tmp);
    return st;
}

static tnd_status parse_header(cursor *c, tnd_gguf *g) {
    uint8_t magic[4];
    tnd_status st = read_bytes(c, magic, 4, "magic");
    if (st) return st;
    if (memcmp(magic, "GGUF", 4) != 0)
        return tnd_fail(TND_ERR_FORMAT, "not a GGUF file: magic is %02x %02x %02x %02x, expected 'GGUF'", magic[0],
                        magic[1], magic[2], magic[3]);
    st = read_u32(c, &g->version, "version");
    if (st) return st;
    if (g->version == 1) return tnd_fail(TND_ERR_UNSUPPORTED, "GGUF version 1 files are not supported (use v2 or v3)");
    if (g->version != 2 && g->version != 3) {
        if ((g->version & 0xffff) == 0 && (g->version >> 24) <= 3)
            return tnd_fail(TND_ERR_UNSUPPORTED, "big-endian GGUF files are not supported");
        return tnd_fail(TND_ERR_UNSUPPORTED, "unknown GGUF version %u (expected 2 or 3)", g->version);
    }
    st = read_u64(c, &g->n_tensors, "tensor count");
    if (st) return st;
    st = read_u64(c, &g->n_kv, "metadata count");
    if (st) return st;
    /* Each pair needs >= 13 bytes (key length, type, one byte of value), each tensor info >= 32. */
    uint64_t need_kv, need_t, need;
    if (!tnd_mul_u64(g->n_kv, 13, &need_kv) || !tnd_mul_u64(g->n_tensors, 32, &need_t) ||
        !tnd_add_u64(need_kv, need_t, &need) || need > remaining(c))
        return tnd_fail(TND_ERR_FORMAT, "header claims %" PRIu64 " metadata pairs and %" PRIu64 " tensors, more than"
                        " the %" PRIu64 " bytes of the file can hold", g->n_kv, g->n_tensors, c->size);
    return TND_OK;
}

/* Two passes over metadata and tensor infos: the first validates and counts string-array elements and name bytes,
 * so that the second fills pools of exactly the needed size (never more than the file itself holds). */
static tnd_status parse_pass(parser *ps, uint64_t start) {
    ps->c.pos = start;
    tnd_status st = parse_kvs(ps);
    return st ? st : parse_tensor_infos(ps);
}

tnd_status tnd_gguf_parse(const void *bytes, uint64_t size, const tnd_allocator *allocator, tnd_gguf **out) {
    if (!out || (!bytes && size)) return tnd_fail(TND_ERR_INVALID_ARGUMENT, "tnd_gguf_parse: NULL argument");
    *out = NULL;
    tnd_allocator a = allocator ? *allocator : (tnd_allocator){0};
    tnd_gguf *g = tnd_alloc(&a, sizeof *g);
    if (!g) return tnd_fail(TND_ERR_OUT_OF_MEMORY, "out of memory");
    g->allocator = a;
    g->bytes = bytes;
    g->size = size;
    parser ps = {.c = {.p = bytes, .size = size}, .g = g};
    tnd_status st = parse_header(&ps.c, g);
    if (st) goto fail;
    uint64_t start = ps.c.pos;
    g->kv = tnd_alloc_array(&a, g->n_kv ? g->n_kv : 1, sizeof *g->kv);
    g->tensors = tnd_alloc_array(&a, g->n_tensors ? g->n_tensors : 1, sizeof *g->tensors);
    if (!g->kv || !g->tensors) {
        st = tnd_fail(TND_ERR_OUT_OF_MEMORY, "out of memory for %" PRIu64 " pairs", g->n_kv);
        goto fail;
    }
    st = parse_pass(&ps, start);
    if (st) goto fail;
    uint64_t n_strs = ps.strs_left;
    g->name_pool = tnd_alloc(&a, ps.name_bytes + 1);
    g->string_pool = tnd_alloc_array(&a, n_strs ? n_strs : 1, sizeof(tnd_gguf_str));
    if (!g->name_pool || !g->string_pool) {
        st = tnd_fail(TND_ERR_OUT_OF_MEMORY, "out of memory for %" PRIu64 " strings", n_strs);
        goto fail;
    }
    ps.filling = true;
    ps.names = g->name_pool;
    ps.strs = g->string_pool;
    st = parse_pass(&ps, start);
    if (st) goto fail;
    uint64_t infos_end = ps.c.pos;
    st = index_kvs(g);
    if (st) goto fail;
    st = read_alignment(g);
    if (st) goto fail;
    st = index_tensors(g);
    if (st) goto fail;
    st = place_tensors(g, infos_end);
    if (st) goto fail;
    *out = g;
    return TND_OK;
fail:
    tnd_gguf_free(g);
    return st;
}

void tnd_gguf_free(tnd_gguf *g) {
    if (!g) return;
    tnd_allocator a = g->allocator;
    tnd_free(&a, g->kv);
    tnd_free(&a, g->tensors);
    tnd_free(&a, g->kv_index);
    tnd_free(&a, g->tensor_index);
    tnd_free(&a, g->string_pool);
    tnd_free(&a, g->name_pool);
    tnd_free(&a, g);
}

/* ------------------------------------------------------------------------------------------------------------
 * Value access
 * ---------------------------------------------------------------------------------------------------------- */

const tnd_gguf_value *tnd_gguf_get(const tnd_gguf *g, const char *key) {
    int64_t i = tnd_gguf_find_key(g, key);
    return i < 0 ? NULL : &g->kv[i].value;
}

/* Reads one scalar of type t at p as int64 / double. */
static bool scalar_int(tnd_value_type t, const uint8_t *p, int64_t *out) {
    union { uint8_t u8; int8_t i8; uint16_t u16; int16_t i16; uint32_t u32; int32_t i32; uint64_t u64; int64_t i64; } u;
    uint32_t n = tnd_gguf_scalar_size(t);
    if (!n || t == TND_VALUE_F32 || t == TND_VALUE_F64) return false;
    memcpy(&u, p, n);
    switch (t) {
    case TND_VALUE_U8: case TND_VALUE_BOOL: *out = u.u8; return true;
    case TND_VALUE_I8: *out = u.i8; return true;
    case TND_VALUE_U16: *out = u.u16; return true;
    case TND_VALUE_I16: *out = u.i16; return true;
    case TND_VALUE_U32: *out = u.u32; return true;
    case TND_VALUE_I32: *out = u.i32; return true;
    case TND_VALUE_I64: *out = u.i64; return true;
    case TND_VALUE_U64:
        if (u.u64 > INT64_MAX) return false;
        *out = (int64_t)u.u64;
        return true;
    default: return false;
    }
}

static bool scalar_float(tnd_value_type t, const uint8_t *p, double *out) {
    if (t == TND_VALUE_F32) {
        float f;
        memcpy(&f, p, 4);
        *out = f;
        return true;
    }
    if (t == TND_VALUE_F64) {
        memcpy(out, p, 8);
        return true;
    }
    if (t == TND_VALUE_U64) {
        uint64_t u;
        memcpy(&u, p, 8);
        *out = (double)u;
        return true;
    }
    int64_t i;
    if (!scalar_int(t, p, &i)) return false;
    *out = (double)i;
    return true;
}

bool tnd_gguf_value_int(const tnd_gguf_value *v, int64_t *out) { return v && scalar_int(v->type, v->raw, out); }
bool tnd_gguf_value_float(const tnd_gguf_value *v, double *out) { return v && scalar_float(v->type, v->raw, out); }

bool tnd_gguf_array_int(const tnd_gguf_value *v, uint64_t i, int64_t *out) {
    if (!v || v->type != TND_VALUE_ARRAY || i >= v->count) return false;
    uint32_t es = tnd_gguf_scalar_size(v->elem_type);
    return es && scalar_int(v->elem_type, v->raw + i * es, out);
}

bool tnd_gguf_array_float(const tnd_gguf_value *v, uint64_t i, double *out) {
    if (!v || v->type != TND_VALUE_ARRAY || i >= v->count) return false;
    uint32_t es = tnd_gguf_scalar_size(v->elem_type);
    return es && scalar_float(v->elem_type, v->raw + i * es, out);
}

tnd_status tnd_gguf_get_int(const tnd_gguf *g, const char *key, int64_t *out) {
    const tnd_gguf_value *v = tnd_gguf_get(g, key);
    if (!v) return tnd_fail(TND_ERR_NOT_FOUND, "metadata key '%s' not found", key);
    if (!tnd_gguf_value_int(v, out))
        return tnd_fail(TND_ERR_TYPE, "metadata key '%s' is a %s, expected an integer", key,
                        tnd_value_type_name(v->type));
    return TND_OK;
}

tnd_status tnd_gguf_get_float(const tnd_gguf *g, const char *key, double *out) {
    const tnd_gguf_value *v = tnd_gguf_get(g, key);
    if (!v) return tnd_fail(TND_ERR_NOT_FOUND, "metadata key '%s' not found", key);
    if (!tnd_gguf_value_float(v, out))
        return tnd_fail(TND_ERR_TYPE, "metadata key '%s' is a %s, expected a number", key,
                        tnd_value_type_name(v->type));
    return TND_OK;
}

tnd_status tnd_gguf_get_str(const tnd_gguf *g, const char *key, tnd_gguf_str *out) {
    const tnd_gguf_value *v = tnd_gguf_get(g, key);
    if (!v) return tnd_fail(TND_ERR_NOT_FOUND, "metadata key '%s' not found", key);
    if (v->type != TND_VALUE_STRING)
        return tnd_fail(TND_ERR_TYPE, "metadata key '%s' is a %s, expected a string", key,
                        tnd_value_type_name(v->type));
    *out = v->str;
    return TND_OK;
}

tnd_status tnd_gguf_get_array(const tnd_gguf *g, const char *key, tnd_value_type elem_type,
                              const tnd_gguf_value **out) {
    const tnd_gguf_value *v = tnd_gguf_get(g, key);
    if (!v) return tnd_fail(TND_ERR_NOT_FOUND, "metadata key '%s' not found", key);
    if (v->type != TND_VALUE_ARRAY || v->elem_type != elem_type)
        return tnd_fail(TND_ERR_TYPE, "metadata key '%s' is a %s%s%s, expected an array of %s", key,
                        tnd_value_type_name(v->type), v->type == TND_VALUE_ARRAY ? " of " : "",
                        v->type == TND_VALUE_ARRAY ? tnd_value_type_name(v->elem_type) : "",
                        tnd_value_type_name(elem_type));
    *out = v;
    return TND_OK;
}
