/* none_device.c: a device that holds nothing (TND_DEVICE_NONE). The groups a plan gives it are not loaded (its
 * weight views carry shapes only, its buffers, KV pools included, are empty handles) and never run: a forward pass
 * that reaches one of its stages fails, naming it. A context that runs some layers for another (the cloud's stand-in,
 * which runs only the cloud's layers of a device's model) places the rest here. */
#include "backend/none/none_device.h"

#include "core/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct tnd_buffer {
    size_t bytes; /* a handle: nothing is stored */
};

static void none_destroy(tnd_backend *b) { free(b); }
static bool none_supports(tnd_backend *b, const tnd_op_query *q) { return true; /* it is never asked to run one */ }
static void none_memory(tnd_backend *b, uint64_t *total, uint64_t *available) { *total = *available = 0; }
static double none_measure_bandwidth(tnd_backend *b) { return 0; }
static void none_describe(tnd_backend *b, char *buf, size_t cap) { snprintf(buf, cap, "holds nothing"); }

tnd_buffer *tnd_none_alloc(tnd_backend *b, size_t bytes) {
    tnd_buffer *buf = calloc(1, sizeof *buf);
    if (buf) buf->bytes = bytes;
    return buf;
}

void tnd_none_free(tnd_backend *b, tnd_buffer *buf) { free(buf); }
void tnd_none_write(tnd_backend *b, tnd_buffer *dst, size_t offset, const void *src, size_t bytes) {}
void tnd_none_read(tnd_backend *b, void *dst, const tnd_buffer *src, size_t offset, size_t bytes) {
    memset(dst, 0, bytes);
}

tnd_status tnd_none_prepare_weight(tnd_backend *b, const tnd_weight *host, tnd_weight *out) {
    *out = *host;
    out->data = NULL;
    out->buf = NULL;
    return TND_OK;
}

void tnd_none_release_weight(tnd_backend *b, tnd_weight *w) { memset(w, 0, sizeof *w); }
static tnd_status none_reserve(tnd_backend *b, int64_t max_cols, int64_t max_tokens) { return TND_OK; }
static void none_begin_step(tnd_backend *b, const tnd_step *step) {}
static tnd_status none_synchronize(tnd_backend *b) { return TND_OK; }
static void none_kv_copy_blocks(tnd_backend *b, tnd_buffer *pool, size_t block_bytes, const int32_t *src,
                                const int32_t *dst, int32_t n) {}

/* The compute ops stay NULL: tnd_backend_holds_nothing. */
static const tnd_backend_vtable none_vtable = {
    .destroy = none_destroy,
    .supports = none_supports,
    .memory = none_memory,
    .measure_bandwidth = none_measure_bandwidth,
    .describe = none_describe,
    .alloc = tnd_none_alloc,
    .free = tnd_none_free,
    .write = tnd_none_write,
    .read = tnd_none_read,
    .prepare_weight = tnd_none_prepare_weight,
    .release_weight = tnd_none_release_weight,
    .reserve = none_reserve,
    .begin_step = none_begin_step,
    .synchronize = none_synchronize,
    .kv_copy_blocks = none_kv_copy_blocks,
};

tnd_status tnd_none_device_init(const char *name, tnd_backend **out) {
    tnd_backend *b = calloc(1, sizeof *b);
    if (!b) return tnd_fail(TND_ERR_OUT_OF_MEMORY, "out of memory for device %s", name);
    b->vt = &none_vtable;
    snprintf(b->name, sizeof b->name, "%s", name);
    *out = b;
    return TND_OK;
}
