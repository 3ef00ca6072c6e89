/* vk_backend.h: making a Vulkan device (the device interface is backend.h). In a build without the Vulkan device
 * (no headers or glslc at build time) there are no Vulkan devices and making one fails with TND_ERR_UNSUPPORTED. */
#ifndef TND_BACKEND_VULKAN_VK_BACKEND_H
#define TND_BACKEND_VULKAN_VK_BACKEND_H

#include "backend/backend.h"

#ifdef TND_HAVE_VULKAN
/* The number of Vulkan devices of this machine that tandem can compute on (Vulkan 1.1, a compute queue, subgroup
 * arithmetic); 0 without a loader or driver. is_gpu[i] (up to cap entries, may be NULL) says whether device i is a
 * GPU, not a driver that computes on the CPU (lavapipe). */
int32_t tnd_vulkan_devices(int32_t *is_gpu, int32_t cap);

/* The Vulkan device `index` (0 .. tnd_vulkan_devices() - 1), named `name`. TND_ERR_UNSUPPORTED when there is
 * no such device (the message says why), TND_ERR_OUT_OF_MEMORY. */
tnd_status tnd_backend_vulkan_init(int32_t index, const tnd_allocator *allocator, const char *name, tnd_backend **out);
#else
#include "core/error.h"

static inline int32_t tnd_vulkan_devices(int32_t *is_gpu, int32_t cap) {
    (void)is_gpu, (void)cap;
    return 0;
}

static inline tnd_status tnd_backend_vulkan_init(int32_t index, const tnd_allocator *allocator, const char *name,
                                                 tnd_backend **out) {
    (void)index, (void)allocator, (void)name;
    *out = NULL;
    return tnd_fail(TND_ERR_UNSUPPORTED, "this build of tandem has no Vulkan device (it was built without the "
                                         "Vulkan headers and glslc)");
}
#endif

#endif
