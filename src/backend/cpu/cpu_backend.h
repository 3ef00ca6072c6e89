/* cpu_backend.h: making a CPU device (the device interface is backend.h). */
#ifndef TND_BACKEND_CPU_CPU_BACKEND_H
#define TND_BACKEND_CPU_CPU_BACKEND_H

#include "backend/backend.h"

/* CPU device with its own thread pool of n_threads (< 1: physical cores). reference = true runs the scalar float
 * kernels only (weights dequantized to float, activations never quantized): the oracle of the tests. Otherwise each
 * weight type uses the best kernel for this processor. */
tnd_status tnd_backend_cpu_init(int n_threads, bool reference, const tnd_allocator *allocator, const char *name,
                                tnd_backend **out);

#endif
