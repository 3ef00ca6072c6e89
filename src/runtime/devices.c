/* devices.c: the device kinds a context can make (kind 0 the CPU, kinds 1.. the Vulkan devices), their public
 * description, memory and measured bandwidth (the inputs of a placement plan), and making one instance of a kind. */
#include "runtime/devices.h"

#include "backend/cpu/cpu_backend.h"
#include "backend/vulkan/vk_backend.h"
#include "core/error.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The Vulkan devices, counted once per process (it opens the driver: 0.05 to 0.15 s). */
enum { MAX_VULKAN = 16 };
static int32_t n_vulkan, vulkan_is_gpu[MAX_VULKAN];
static pthread_once_t vulkan_counted = PTHREAD_ONCE_INIT;
static void count_vulkan(void) {
    n_vulkan = tnd_vulkan_devices(vulkan_is_gpu, MAX_VULKAN);
    /* testing aid: the automatic plan's choice of a GPU, exercised on a software driver */
    const char *pretend = getenv("TANDEM_VULKAN_SOFTWARE_IS_GPU");
    for (int32_t i = 0; i < n_vulkan && i < MAX_VULKAN && pretend && *pretend && strcmp(pretend, "0"); i++)
        vulkan_is_gpu[i] = 1;
}

int32_t tnd_device_count(void) {
    pthread_once(&vulkan_counted, count_vulkan);
    return 1 + n_vulkan;
}

int32_t tnd_device_is_gpu(int32_t index) {
    return index > 0 && index < tnd_device_count() && index <= MAX_VULKAN && vulkan_is_gpu[index - 1];
}

tnd_status tnd_device_make(int32_t kind, int32_t n_threads, bool reference, const tnd_allocator *allocator,
                           const char *name, tnd_backend **out) {
    *out = NULL;
    if (kind < 0 || kind >= tnd_device_count())
        return tnd_fail(TND_ERR_INVALID_ARGUMENT, "device kind %d: this machine has %d (the CPU and %d Vulkan)", kind,
                        tnd_device_count(), tnd_device_count() - 1);
    if (kind == 0) return tnd_backend_cpu_init(n_threads, reference, allocator, name, out);
    return tnd_backend_vulkan_init(kind - 1, allocator, name, out);
}

void tnd_device_kind_name(int32_t kind, char *buf, size_t cap) {
    if (kind == 0) snprintf(buf, cap, "cpu");
    else if (kind == TND_DEVICE_REMOTE) snprintf(buf, cap, "remote0"); /* one cloud per plan */
    else snprintf(buf, cap, "vulkan%d", kind - 1);
}

tnd_status tnd_device_get_info(int32_t index, int32_t n_threads, tnd_device_info *out) {
    if (!out) return tnd_fail(TND_ERR_INVALID_ARGUMENT, "tnd_device_get_info: out is NULL");
    memset(out, 0, sizeof *out);
    tnd_backend *d = NULL;
    tnd_status st = tnd_device_make(index, n_threads, false, NULL, "info", &d);
    if (st) return st;
    tnd_device_kind_name(index, out->name, sizeof out->name);
    out->is_gpu = tnd_device_is_gpu(index);
    d->vt->describe(d, out->description, sizeof out->description);
    d->vt->memory(d, &out->memory_total, &out->memory_available);
    d->vt->destroy(d);
    return TND_OK;
}

double tnd_device_measure_bandwidth(int32_t index, int32_t n_threads) {
    tnd_backend *d = NULL;
    if (tnd_device_make(index, n_threads, false, NULL, "bandwidth", &d)) return 0;
    double bw = d->vt->measure_bandwidth(d);
    d->vt->destroy(d);
    if (bw <= 0) tnd_fail(TND_ERR_OUT_OF_MEMORY, "no memory for the bandwidth measurement");
    return bw;
}
