/* cuda_backend.h: making a CUDA device (the device interface is backend.h). In a build without the CUDA device (no
 * nvcc at build time, or TND_CUDA=OFF) there are no CUDA devices and making one fails with TND_ERR_UNSUPPORTED. A
 * build with it still runs where there is no NVIDIA driver or GPU: the device is then simply absent. */
#ifndef TND_BACKEND_CUDA_CUDA_BACKEND_H
#define TND_BACKEND_CUDA_CUDA_BACKEND_H

#include "backend/backend.h"

#ifdef TND_HAVE_CUDA
/* The number of CUDA GPUs of this machine that tandem can compute on (compute capability 7.5 or newer); 0 without a
 * driver or GPU. */
int32_t tnd_cuda_devices(void);

/* CUDA device `index` (0 .. tnd_cuda_devices() - 1), named `name`. TND_ERR_UNSUPPORTED when there is no such device
 * or its driver is too old (the message says which), TND_ERR_OUT_OF_MEMORY. */
tnd_status tnd_backend_cuda_init(int32_t index, const tnd_allocator *allocator, const char *name, tnd_backend **out);
#else
#include "core/error.h"

static inline int32_t tnd_cuda_devices(void) { return 0; }

static inline tnd_status tnd_backend_cuda_init(int32_t index, const tnd_allocator *allocator, const char *name,
                                               tnd_backend **out) {
    (void)index, (void)allocator, (void)name;
    *out = NULL;
    return tnd_fail(TND_ERR_UNSUPPORTED, "this build of tandem has no CUDA device (it was built without nvcc)");
}
#endif

#endif
