/* devices.c: the public view of the device kinds a context can make: their description, memory and measured
 * bandwidth (the inputs of a placement plan). */
#include "backend/cpu/cpu_backend.h"
#include "core/error.h"

#include <stdio.h>
#include <string.h>

int32_t tnd_device_count(void) { return 1; }

/* A temporary instance of device kind `index`. */
static tnd_status make_device(int32_t index, int32_t n_threads, tnd_backend **out) {
    *out = NULL;
    if (index != 0) return tnd_fail(TND_ERR_INVALID_ARGUMENT, "device %d: this build has 1 device kind (the CPU)", index);
    return tnd_backend_cpu_init(n_threads, false, NULL, "cpu", out);
}

tnd_status tnd_device_get_info(int32_t index, int32_t n_threads, tnd_device_info *out) {
    if (!out) return tnd_fail(TND_ERR_INVALID_ARGUMENT, "tnd_device_get_info: out is NULL");
    memset(out, 0, sizeof *out);
    tnd_backend *d = NULL;
    tnd_status st = make_device(index, n_threads, &d);
    if (st) return st;
    snprintf(out->name, sizeof out->name, "%s", d->name);
    d->vt->describe(d, out->description, sizeof out->description);
    d->vt->memory(d, &out->memory_total, &out->memory_available);
    d->vt->destroy(d);
    return TND_OK;
}

double tnd_device_measure_bandwidth(int32_t index, int32_t n_threads) {
    tnd_backend *d = NULL;
    if (make_device(index, n_threads, &d)) return 0;
    double bw = d->vt->measure_bandwidth(d);
    d->vt->destroy(d);
    if (bw <= 0) tnd_fail(TND_ERR_OUT_OF_MEMORY, "no memory for the 1 GiB bandwidth measurement");
    return bw;
}
