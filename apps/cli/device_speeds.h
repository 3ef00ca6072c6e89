/* device_speeds.h: each device's measured figures (memory bandwidth, and matmul speed per weight type), measured once
 * and kept for the machine, and the time per token that a planner expects from them. */
#ifndef TND_CLI_DEVICE_SPEEDS_H
#define TND_CLI_DEVICE_SPEEDS_H

#include "tandem.h"

#include <stdbool.h>

/* A device kind's figures with a thread count. A matmul speed of 0 is not known; -1 is a type the device does not
 * compute with. */
typedef struct cli_device_speeds {
    double bandwidth; /* bytes per second read */
    tnd_matmul_speed matmul[TND_TYPE_COUNT];
} cli_device_speeds;

/* The figures of device kind `index` with n_threads threads: the bandwidth, and the matmul speed of each type where
 * want[type] (want NULL: every type tandem computes with). They come from the machine's cache ($XDG_CACHE_HOME or
 * ~/.cache, tandem/speeds-<device>-<threads>t); what it lacks is measured now, with a note on stderr, and kept
 * there. measure_again measures everything asked for again. False (with tnd_last_error) when the bandwidth cannot
 * be had. */
bool cli_device_speeds_get(int32_t index, int32_t n_threads, const bool *want, bool measure_again,
                           cli_device_speeds *out);

/* The weight types a model's groups read, into want[TND_TYPE_COUNT] (or'ed in). */
void cli_model_weight_types(tnd_model *m, bool *want);

/* Expected seconds of one decoded token on a device that holds groups with these active bytes by type and reads
 * other_bytes (KV cache) besides: each type's bytes over its measured speed (the bandwidth where that is unknown). */
double cli_decode_seconds(const cli_device_speeds *s, const uint64_t *bytes_by_type, uint64_t other_bytes);

/* Expected seconds per token of a long prompt on that device: 2 operations per weight over each type's measured
 * prefill speed; 0 where a type's speed is unknown. */
double cli_prefill_seconds(const cli_device_speeds *s, const uint64_t *bytes_by_type);

#endif
