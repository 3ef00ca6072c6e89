/* device_speeds.c: a device kind's bandwidth and matmul speeds, kept per machine in one small text file:
 *   bandwidth <bytes/s>
 *   <type> <decode bytes/s> <prefill operations/s>     (or "<type> unsupported")
 * Measuring every type takes a few seconds on a CPU, so each is measured when first asked for and kept. */
#include "device_speeds.h"

#include "quant/quant.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* The cache file's path; false when neither XDG_CACHE_HOME nor HOME is set. Makes its folders. */
static bool cache_path(int32_t index, int32_t n_threads, char *path, size_t cap) {
    const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    char dir[512];
    if (xdg && *xdg) snprintf(dir, sizeof dir, "%s", xdg);
    else if (home && *home) snprintf(dir, sizeof dir, "%s/.cache", home);
    else return false;
    mkdir(dir, 0755);
    size_t n = strlen(dir);
    snprintf(dir + n, sizeof dir - n, "/tandem");
    if (mkdir(dir, 0755) && errno != EEXIST) return false;
    tnd_device_info info;
    if (tnd_device_get_info(index, n_threads, &info) != TND_OK) return false;
    snprintf(path, cap, "%s/speeds-%s-%dt", dir, info.name, n_threads);
    return true;
}

/* The type named `name` ("q4_K"), or TND_TYPE_COUNT. */
static tnd_type type_named(const char *name) {
    for (int t = 0; t < TND_TYPE_COUNT; t++) {
        const tnd_type_traits *tr = tnd_type_traits_of((tnd_type)t);
        if (tr && tr->name && !strcmp(tr->name, name)) return (tnd_type)t;
    }
    return TND_TYPE_COUNT;
}

/* Whether tandem multiplies by weights of type t (Q8_1 and Q8_K only hold converted activations). */
static bool weight_type(tnd_type t) {
    const tnd_type_traits *tr = tnd_type_traits_of(t);
    return tr && tr->from_float && tr->to_float && t != TND_TYPE_Q8_1 && t != TND_TYPE_Q8_K;
}

static void read_cache(const char *path, cli_device_speeds *s) {
    FILE *f = fopen(path, "r");
    char line[160], name[32];
    double a, b;
    while (f && fgets(line, sizeof line, f)) {
        if (sscanf(line, "bandwidth %lf", &a) == 1 && a > 0) {
            s->bandwidth = a;
        } else if (sscanf(line, "%31s %lf %lf", name, &a, &b) == 3 && a > 0 && b > 0) {
            tnd_type t = type_named(name);
            if (t != TND_TYPE_COUNT) s->matmul[t] = (tnd_matmul_speed){a, b};
        } else if (sscanf(line, "%31s", name) == 1 && strstr(line, " unsupported") && type_named(name) != TND_TYPE_COUNT) {
            s->matmul[type_named(name)] = (tnd_matmul_speed){-1, -1};
        }
    }
    if (f) fclose(f);
}

static void write_cache(const char *path, const cli_device_speeds *s) {
    FILE *f = fopen(path, "w");
    if (!f) return;
    fprintf(f, "bandwidth %.0f\n", s->bandwidth);
    for (int t = 0; t < TND_TYPE_COUNT; t++) {
        const tnd_matmul_speed *m = &s->matmul[t];
        if (m->decode_bytes_per_s < 0) fprintf(f, "%s unsupported\n", tnd_type_name((tnd_type)t));
        else if (m->decode_bytes_per_s > 0)
            fprintf(f, "%s %.0f %.0f\n", tnd_type_name((tnd_type)t), m->decode_bytes_per_s, m->prefill_flops);
    }
    fclose(f);
}

bool cli_device_speeds_get(int32_t index, int32_t n_threads, const bool *want, bool measure_again,
                           cli_device_speeds *out) {
    memset(out, 0, sizeof *out);
    char path[600];
    bool cached = cache_path(index, n_threads, path, sizeof path), changed = false;
    if (cached && !measure_again) read_cache(path, out);
    if (out->bandwidth <= 0) {
        fprintf(stderr, "tandem: measuring the memory bandwidth of device %d (once for this machine)\n", index);
        out->bandwidth = tnd_device_measure_bandwidth(index, n_threads);
        if (out->bandwidth <= 0) return false;
        changed = true;
    }
    for (int t = 0; t < TND_TYPE_COUNT; t++) {
        if ((want && !want[t]) || !weight_type((tnd_type)t) || out->matmul[t].decode_bytes_per_s != 0) continue;
        fprintf(stderr, "tandem: measuring device %d's matmuls of %s weights (once for this machine)\n", index,
                tnd_type_name((tnd_type)t));
        tnd_status st = tnd_device_measure_matmul(index, n_threads, (tnd_type)t, &out->matmul[t]);
        if (st == TND_ERR_UNSUPPORTED) out->matmul[t] = (tnd_matmul_speed){-1, -1};
        changed |= st == TND_OK || st == TND_ERR_UNSUPPORTED;
    }
    if (cached && changed) write_cache(path, out);
    return true;
}

void cli_model_weight_types(tnd_model *m, bool *want) {
    for (int32_t g = 0; g < tnd_model_n_groups(m); g++) {
        tnd_group_info gi;
        if (tnd_model_group(m, g, &gi) != TND_OK) continue;
        for (int t = 0; t < TND_TYPE_COUNT; t++) want[t] |= gi.active_bytes_by_type[t] > 0;
    }
}

double cli_decode_seconds(const cli_device_speeds *s, const uint64_t *bytes_by_type, uint64_t other_bytes) {
    double seconds = s->bandwidth > 0 ? (double)other_bytes / s->bandwidth : 0;
    for (int t = 0; t < TND_TYPE_COUNT; t++) {
        double speed = s->matmul[t].decode_bytes_per_s > 0 ? s->matmul[t].decode_bytes_per_s : s->bandwidth;
        if (bytes_by_type[t] && speed > 0) seconds += (double)bytes_by_type[t] / speed;
    }
    return seconds;
}

double cli_prefill_seconds(const cli_device_speeds *s, const uint64_t *bytes_by_type) {
    double seconds = 0;
    for (int t = 0; t < TND_TYPE_COUNT; t++) {
        if (!bytes_by_type[t]) continue;
        const tnd_type_traits *tr = tnd_type_traits_of((tnd_type)t);
        if (s->matmul[t].prefill_flops <= 0 || !tr) return 0;
        double weights = (double)bytes_by_type[t] / tr->type_size * tr->block_size;
        seconds += 2 * weights / s->matmul[t].prefill_flops;
    }
    return seconds;
}
