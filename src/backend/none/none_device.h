/* none_device.h: a device that holds nothing (TND_DEVICE_NONE; see none_device.c). */
#ifndef TND_BACKEND_NONE_DEVICE_H
#define TND_BACKEND_NONE_DEVICE_H

#include "backend/backend.h"

tnd_status tnd_none_device_init(const char *name, tnd_backend **out);

/* The storage of a device that stores nothing here, for its vtable (a cloud's remote device uses them too): buffers
 * are handles that remember their size, writes go nowhere, reads give zeros, weight views keep shapes without
 * data. */
tnd_buffer *tnd_none_alloc(tnd_backend *b, size_t bytes);
void tnd_none_free(tnd_backend *b, tnd_buffer *buf);
void tnd_none_write(tnd_backend *b, tnd_buffer *dst, size_t offset, const void *src, size_t bytes);
void tnd_none_read(tnd_backend *b, void *dst, const tnd_buffer *src, size_t offset, size_t bytes);
tnd_status tnd_none_prepare_weight(tnd_backend *b, const tnd_weight *host, tnd_weight *out);
void tnd_none_release_weight(tnd_backend *b, tnd_weight *w);

#endif
