/* gguf.h: a validated, read-only view of a GGUF file held in memory (parser over a byte span, no I/O), and a
 * writer that builds GGUF files for tools and tests.
 *
 * File layout (all little-endian; v2 and v3 share it):
 *
 *   u32 magic "GGUF" | u32 version | u64 n_tensors | u64 n_kv
 *   n_kv x   { string key | u32 value_type | value }
 *   n_tensors x { string name | u32 n_dims | u64 ne[n_dims] | u32 type | u64 offset }
 *   padding to general.alignment (default 32)
 *   tensor data: each tensor at data_start + offset, offsets multiples of the alignment
 *
 *   string = u64 length | bytes (no NUL);  array = u32 elem_type | u64 count | elements
 */
#ifndef TND_GGUF_GGUF_H
#define TND_GGUF_GGUF_H

#include "tandem.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#define TND_GGUF_DEFAULT_ALIGNMENT 32
#define TND_GGUF_MAX_DIMS 4
#define TND_GGUF_MAX_ARRAY_DEPTH 8 /* arrays of arrays nest at most this deep */

/* A string inside the file: not NUL-terminated. */
typedef struct tnd_gguf_str {
    const char *ptr;
    uint64_t len;
} tnd_gguf_str;

typedef struct tnd_gguf_value {
    tnd_value_type type;
    /* scalars: the raw little-endian bytes inside the file (read them with the accessors below) */
    const uint8_t *raw;
    tnd_gguf_str str;               /* type STRING */
    tnd_value_type elem_type;       /* type ARRAY: type of the elements */
    uint64_t count;                 /* type ARRAY: number of elements */
    const tnd_gguf_str *strings;    /* ARRAY of STRING: count entries (parsed index) */
} tnd_gguf_value;

typedef struct tnd_gguf_kv {
    const char *key;      /* NUL-terminated copy */
    uint64_t file_offset; /* where the pair starts in the file, for messages */
    uint64_t end_offset;  /* one past its last byte (a value is copied verbatim from key end to here) */
    tnd_gguf_value value;
} tnd_gguf_kv;

typedef struct tnd_gguf_tensor {
    const char *name;        /* NUL-terminated copy */
    tnd_type type;
    uint32_t n_dims;
    int64_t ne[TND_GGUF_MAX_DIMS]; /* unused dims are 1 */
    uint64_t n_elements;
    uint64_t offset;         /* from the start of the file */
    uint64_t size;           /* bytes */
    const uint8_t *data;     /* view into the byte span */
} tnd_gguf_tensor;

typedef struct tnd_gguf tnd_gguf;

struct tnd_gguf {
    const uint8_t *bytes; /* the span given to the parser (borrowed) */
    uint64_t size;
    uint32_t version;
    uint64_t alignment;
    uint64_t data_start;  /* file offset of the tensor data section */
    uint64_t n_kv;
    tnd_gguf_kv *kv;
    uint64_t n_tensors;
    tnd_gguf_tensor *tensors;
    /* private: hash indices for lookup by name, and owned storage */
    uint64_t kv_index_cap, tensor_index_cap;
    uint64_t *kv_index, *tensor_index;
    tnd_gguf_str *string_pool;
    char *name_pool;
    tnd_allocator allocator;
};

/* Parses and validates `size` bytes at `bytes`. The span must outlive the result (values point into it).
 * Errors: TND_ERR_FORMAT (malformed: the message names the key or tensor and the byte offset), TND_ERR_UNSUPPORTED
 * (version 1, big-endian files, unknown tensor types), TND_ERR_OUT_OF_MEMORY. No allocation exceeds a small
 * multiple of `size`. */
tnd_status tnd_gguf_parse(const void *bytes, uint64_t size, const tnd_allocator *allocator, tnd_gguf **out);

/* Frees the view (not the bytes). Accepts NULL. */
void tnd_gguf_free(tnd_gguf *g);

/* Index of a key / tensor, or -1. */
int64_t tnd_gguf_find_key(const tnd_gguf *g, const char *key);
int64_t tnd_gguf_find_tensor(const tnd_gguf *g, const char *name);

/* The value of `key`, or NULL if absent. */
const tnd_gguf_value *tnd_gguf_get(const tnd_gguf *g, const char *key);

/* Scalar conversions of a value (also used for array elements via tnd_gguf_array_*). Return false when the value
 * is not of a convertible type (integer/bool for _int, any number for _float) or an u64 does not fit int64. */
bool tnd_gguf_value_int(const tnd_gguf_value *v, int64_t *out);
bool tnd_gguf_value_float(const tnd_gguf_value *v, double *out);

/* Element i of a numeric/bool array as int64 or double (false if not such an array, out of range, or not
 * convertible). */
bool tnd_gguf_array_int(const tnd_gguf_value *v, uint64_t i, int64_t *out);
bool tnd_gguf_array_float(const tnd_gguf_value *v, uint64_t i, double *out);

/* Size in bytes of one scalar of a value type (0 for string, array and unknown types). */
uint32_t tnd_gguf_scalar_size(tnd_value_type t);

/* Typed getters by key with error messages: TND_ERR_NOT_FOUND if absent, TND_ERR_TYPE if not convertible. */
tnd_status tnd_gguf_get_int(const tnd_gguf *g, const char *key, int64_t *out);
tnd_status tnd_gguf_get_float(const tnd_gguf *g, const char *key, double *out);
tnd_status tnd_gguf_get_str(const tnd_gguf *g, const char *key, tnd_gguf_str *out);
/* Array of the given element type (TND_VALUE_ARRAY elem check); count in v->count. */
tnd_status tnd_gguf_get_array(const tnd_gguf *g, const char *key, tnd_value_type elem_type,
                              const tnd_gguf_value **out);

/* ---------------------------------------------------------------------------------------------------------------
 * Writer
 * ------------------------------------------------------------------------------------------------------------- */

typedef struct tnd_gguf_writer tnd_gguf_writer;

/* A new empty file (version 3, alignment 32). NULL on allocation failure. */
tnd_gguf_writer *tnd_gguf_writer_init(const tnd_allocator *allocator);
void tnd_gguf_writer_free(tnd_gguf_writer *w);

/* Metadata setters. Keys are copied; setting a key twice replaces the value. Setting general.alignment (u32)
 * changes the alignment used for tensor data. */
tnd_status tnd_gguf_writer_set_scalar(tnd_gguf_writer *w, const char *key, tnd_value_type type, const void *value);
tnd_status tnd_gguf_writer_set_u32(tnd_gguf_writer *w, const char *key, uint32_t v);
tnd_status tnd_gguf_writer_set_i32(tnd_gguf_writer *w, const char *key, int32_t v);
tnd_status tnd_gguf_writer_set_f32(tnd_gguf_writer *w, const char *key, float v);
tnd_status tnd_gguf_writer_set_bool(tnd_gguf_writer *w, const char *key, bool v);
tnd_status tnd_gguf_writer_set_str(tnd_gguf_writer *w, const char *key, const char *s);
/* Array of `count` scalars of `elem_type` laid out contiguously at `data` (copied). */
tnd_status tnd_gguf_writer_set_array(tnd_gguf_writer *w, const char *key, tnd_value_type elem_type, const void *data,
                                     uint64_t count);
/* Array of strings; lens may be NULL for NUL-terminated strings. Copied. */
tnd_status tnd_gguf_writer_set_array_str(tnd_gguf_writer *w, const char *key, const char *const *strs,
                                         const uint64_t *lens, uint64_t count);
/* Copies all metadata of a parsed file (for tools that rewrite a file). */
tnd_status tnd_gguf_writer_copy_meta(tnd_gguf_writer *w, const tnd_gguf *src);

/* Adds a tensor; `data` (tnd_row_size(type, ne[0]) * rows bytes) is borrowed until the file is written. */
tnd_status tnd_gguf_writer_add_tensor(tnd_gguf_writer *w, const char *name, tnd_type type, uint32_t n_dims,
                                      const int64_t *ne, const void *data);

/* Produces a tensor's bytes at write time into dst (`size` bytes), so that large files are written one tensor at a
 * time. Returns TND_OK or an error status (with tnd_fail) that aborts the write. */
typedef tnd_status (*tnd_gguf_fill_fn)(void *user, void *dst, uint64_t size);

/* Adds a tensor whose data `fill(user, ...)` produces when the file is written. */
tnd_status tnd_gguf_writer_add_tensor_fill(tnd_gguf_writer *w, const char *name, tnd_type type, uint32_t n_dims,
                                           const int64_t *ne, tnd_gguf_fill_fn fill, void *user);

/* Writes the file to a stream / path / a new memory buffer (caller frees *out with tnd_free(allocator)). */
tnd_status tnd_gguf_writer_write(tnd_gguf_writer *w, FILE *f);
tnd_status tnd_gguf_writer_write_file(tnd_gguf_writer *w, const char *path);
tnd_status tnd_gguf_writer_write_mem(tnd_gguf_writer *w, uint8_t **out, uint64_t *size);

#endif
