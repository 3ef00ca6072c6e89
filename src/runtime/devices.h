/* devices.h: making a device instance of a kind (0 the CPU, 1 + i Vulkan device i, then the CUDA devices), as
 * contexts and the public device queries do. */
#ifndef TND_RUNTIME_DEVICES_H
#define TND_RUNTIME_DEVICES_H

#include "backend/backend.h"

#include <stdbool.h>

/* An instance of device kind `kind` named `name`; n_threads and reference apply to the CPU. */
tnd_status tnd_device_make(int32_t kind, int32_t n_threads, bool reference, const tnd_allocator *allocator,
                           const char *name, tnd_backend **out);

/* The kind's name: "cpu", "vulkan0", "vulkan1", ..., "cuda0", ..., "remote0" (the name of its one instance but for
 * the CPU's, which a plan numbers cpu0, cpu1, ...). */
void tnd_device_kind_name(int32_t kind, char *buf, size_t cap);

/* The kind of `family` ("cpu", "vulkan", "cuda") number `number` on this machine, or -1 where it has none. */
int32_t tnd_device_kind_named(const char *family, int32_t number);

/* The GPU that -ngl means: the first CUDA device, else the first Vulkan GPU, else the first Vulkan device (a software
 * driver); 0 (the CPU) where there is none. */
int32_t tnd_device_kind_first_gpu(void);

#endif
