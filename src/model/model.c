/* model.c: public API for opening a model file and reading its metadata and tensor table. */
#include "model/model.h"

#include "model/arch.h"

#include "core/alloc.h"
#include "core/error.h"

#include <stdatomic.h>
#include <string.h>

tnd_model_params tnd_model_default_params(void) {
    return (tnd_model_params){.use_mmap = 1, .log_level = TND_LOG_WARN};
}

tnd_status tnd_model_open(const char *path, const tnd_model_params *params, tnd_model **out) {
    if (out) *out = NULL;
    if (!path || !out) return tnd_fail(TND_ERR_INVALID_ARGUMENT, "tnd_model_open: NULL path or out");
    tnd_model_params p = params ? *params : tnd_model_default_params();
    tnd_model *m = tnd_alloc(&p.allocator, sizeof *m);
    if (!m) return tnd_fail(TND_ERR_OUT_OF_MEMORY, "out of memory");
    m->allocator = p.allocator;
    m->log = (tnd_logger){.fn = p.log, .user = p.log_user, .min_level = p.log_level};
    if (pthread_mutex_init(&m->bind_lock, NULL) != 0) {
        tnd_allocator a = m->allocator;
        tnd_free(&a, m);
        return tnd_fail(TND_ERR_INTERNAL, "tnd_model_open: cannot create a lock");
    }
    tnd_status st = tnd_mapped_file_open(path, p.use_mmap != 0, &m->allocator, &m->file);
    if (st) goto fail;
    st = tnd_gguf_parse(m->file.data, m->file.size, &m->allocator, &m->gguf);
    if (st) {
        tnd_error_prefix("%s: ", path);
        goto fail;
    }
    tnd_log(&m->log, TND_LOG_INFO, "%s: GGUF v%u, %llu tensors, %llu metadata pairs", path, m->gguf->version,
            (unsigned long long)m->gguf->n_tensors, (unsigned long long)m->gguf->n_kv);
    *out = m;
    return TND_OK;
fail:
    tnd_model_close(m);
    return st;
}

void tnd_model_close(tnd_model *m) {
    if (!m) return;
    struct tnd_bound_model *bound = atomic_load(&m->bound);
    if (bound) {
        tnd_model_unbind(bound, &m->allocator);
        tnd_free(&m->allocator, bound);
    }
    pthread_mutex_destroy(&m->bind_lock);
    tnd_gguf_free(m->gguf);
    tnd_mapped_file_close(&m->file);
    tnd_allocator a = m->allocator;
    tnd_free(&a, m);
}

uint32_t tnd_model_gguf_version(const tnd_model *m) { return m ? m->gguf->version : 0; }
uint64_t tnd_model_file_size(const tnd_model *m) { return m ? m->file.size : 0; }
uint64_t tnd_model_alignment(const tnd_model *m) { return m ? m->gguf->alignment : 0; }
uint64_t tnd_model_data_offset(const tnd_model *m) { return m ? m->gguf->data_start : 0; }
int64_t tnd_model_meta_count(const tnd_model *m) { return m ? (int64_t)m->gguf->n_kv : 0; }
int64_t tnd_model_meta_find(const tnd_model *m, const char *key) { return m ? tnd_gguf_find_key(m->gguf, key) : -1; }

tnd_status tnd_model_meta_at(const tnd_model *m, int64_t index, const char **key, tnd_value_type *type) {
    if (!m || index < 0 || (uint64_t)index >= m->gguf->n_kv)
        return tnd_fail(TND_ERR_INVALID_ARGUMENT, "metadata index %lld out of range", (long long)index);
    if (key) *key = m->gguf->kv[index].key;
    if (type) *type = m->gguf->kv[index].value.type;
    return TND_OK;
}

tnd_status tnd_model_meta_int(const tnd_model *m, const char *key, int64_t *out) {
    if (!m || !key || !out) return tnd_fail(TND_ERR_INVALID_ARGUMENT, "tnd_model_meta_int: NULL argument");
    return tnd_gguf_get_int(m->gguf, key, out);
}

tnd_status tnd_model_meta_uint(const tnd_model *m, const char *key, uint64_t *out) {
    if (!m || !key || !out) return tnd_fail(TND_ERR_INVALID_ARGUMENT, "tnd_model_meta_uint: NULL argument");
    const tnd_gguf_value *v = tnd_gguf_get(m->gguf, key);
    if (v && v->type == TND_VALUE_U64) { /* the one type whose values may exceed INT64_MAX */
        uint64_t x = 0;
        for (int b = 7; b >= 0; b--) x = x << 8 | v->raw[b];
        *out = x;
        return TND_OK;
    }
    int64_t i = 0;
    tnd_status st = tnd_gguf_get_int(m->gguf, key, &i);
    if (st) return st;
    if (i < 0) return tnd_fail(TND_ERR_TYPE, "metadata key '%s' is negative (%lld)", key, (long long)i);
    *out = (uint64_t)i;
    return TND_OK;
}

tnd_status tnd_model_meta_float(const tnd_model *m, const char *key, double *out) {
    if (!m || !key || !out) return tnd_fail(TND_ERR_INVALID_ARGUMENT, "tnd_model_meta_float: NULL argument");
    return tnd_gguf_get_float(m->gguf, key, out);
}

tnd_status tnd_model_meta_string(const tnd_model *m, const char *key, const char **out, size_t *len) {
    if (!m || !key || !out || !len) return tnd_fail(TND_ERR_INVALID_ARGUMENT, "tnd_model_meta_string: NULL argument");
    tnd_gguf_str s;
    tnd_status st = tnd_gguf_get_str(m->gguf, key, &s);
    if (st) return st;
    *out = s.ptr;
    *len = (size_t)s.len;
    return TND_OK;
}

static tnd_status find_array(const tnd_model *m, const char *key, const tnd_gguf_value **out) {
    if (!m || !key) return tnd_fail(TND_ERR_INVALID_ARGUMENT, "NULL model or key");
    const tnd_gguf_value *v = tnd_gguf_get(m->gguf, key);
    if (!v) return tnd_fail(TND_ERR_NOT_FOUND, "metadata key '%s' not found", key);
    if (v->type != TND_VALUE_ARRAY)
        return tnd_fail(TND_ERR_TYPE, "metadata key '%s' is a %s, not an array", key, tnd_value_type_name(v->type));
    *out = v;
    return TND_OK;
}

tnd_status tnd_model_meta_array(const tnd_model *m, const char *key, tnd_value_type *elem_type, uint64_t *count) {
    const tnd_gguf_value *v = NULL;
    tnd_status st = find_array(m, key, &v);
    if (st) return st;
    if (elem_type) *elem_type = v->elem_type;
    if (count) *count = v->count;
    return TND_OK;
}

tnd_status tnd_model_meta_array_string(const tnd_model *m, const char *key, uint64_t index, const char **out,
                                       size_t *len) {
    const tnd_gguf_value *v = NULL;
    tnd_status st = find_array(m, key, &v);
    if (st) return st;
    if (v->elem_type != TND_VALUE_STRING)
        return tnd_fail(TND_ERR_TYPE, "metadata key '%s' is an array of %s, not of strings", key,
                        tnd_value_type_name(v->elem_type));
    if (index >= v->count || !out || !len)
        return tnd_fail(TND_ERR_INVALID_ARGUMENT, "index %llu out of range for '%s' (%llu elements)",
                        (unsigned long long)index, key, (unsigned long long)v->count);
    *out = v->strings[index].ptr;
    *len = (size_t)v->strings[index].len;
    return TND_OK;
}

tnd_status tnd_model_meta_array_number(const tnd_model *m, const char *key, uint64_t index, double *out) {
    const tnd_gguf_value *v = NULL;
    tnd_status st = find_array(m, key, &v);
    if (st) return st;
    if (!tnd_gguf_scalar_size(v->elem_type))
        return tnd_fail(TND_ERR_TYPE, "metadata key '%s' is an array of %s, not of numbers", key,
                        tnd_value_type_name(v->elem_type));
    if (index >= v->count || !out)
        return tnd_fail(TND_ERR_INVALID_ARGUMENT, "index %llu out of range for '%s' (%llu elements)",
                        (unsigned long long)index, key, (unsigned long long)v->count);
    tnd_gguf_array_float(v, index, out);
    return TND_OK;
}

int64_t tnd_model_tensor_count(const tnd_model *m) { return m ? (int64_t)m->gguf->n_tensors : 0; }

uint64_t tnd_model_n_params(const tnd_model *m) {
    uint64_t n = 0;
    tnd_tensor_info t;
    for (int64_t i = 0; i < tnd_model_tensor_count(m); i++)
        if (tnd_model_tensor_at(m, i, &t) == TND_OK) n += t.n_elements;
    return n;
}
int64_t tnd_model_tensor_find(const tnd_model *m, const char *name) {
    return m ? tnd_gguf_find_tensor(m->gguf, name) : -1;
}

tnd_status tnd_model_tensor_at(const tnd_model *m, int64_t index, tnd_tensor_info *out) {
    if (!m || !out || index < 0 || (uint64_t)index >= m->gguf->n_tensors)
        return tnd_fail(TND_ERR_INVALID_ARGUMENT, "tensor index %lld out of range", (long long)index);
    const tnd_gguf_tensor *t = &m->gguf->tensors[index];
    *out = (tnd_tensor_info){.name = t->name, .type = t->type, .n_dims = t->n_dims, .n_elements = t->n_elements,
                             .offset = t->offset, .size = t->size, .data = t->data};
    memcpy(out->ne, t->ne, sizeof out->ne);
    return TND_OK;
}
