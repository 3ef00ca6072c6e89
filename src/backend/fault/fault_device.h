/* fault_device.h: fault injection for tests. TANDEM_FAULT=alloc:N, op:N or step:N makes every device of a context
 * created while it is set fail once: its N-th device allocation returns nothing, its N-th op fails (reported at the
 * step's synchronize), or its N-th step ends as if the device was lost (TND_ERR_DEVICE_LOST). Counts run over the
 * device's life, from 1. A spec ending in @NAME (op:3@cpu0) is for the device named NAME alone. TANDEM_FAULT=
 * slow:F@NAME throttles that device instead: after each of its ops it waits F - 1 times what the op took, as a device
 * F times slower would (a slow device beside a fast one on a machine that has only one kind, for the hot-expert
 * cache). */
#ifndef TND_BACKEND_FAULT_FAULT_DEVICE_H
#define TND_BACKEND_FAULT_FAULT_DEVICE_H

#include "backend/backend.h"

/* Wraps `inner` (which the wrapper then owns and destroys) in a device that fails as `spec` says; *out = inner
 * itself where the spec names another device. TND_ERR_INVALID_ARGUMENT for a spec that is not alloc:N, op:N, step:N
 * (each optionally @NAME) or slow:F@NAME (F from 1 to 1000); TND_ERR_OUT_OF_MEMORY. On failure the caller still owns
 * inner. */
tnd_status tnd_backend_fault_wrap(tnd_backend *inner, const char *spec, const tnd_allocator *allocator,
                                  tnd_backend **out);

#endif
