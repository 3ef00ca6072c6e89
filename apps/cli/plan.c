/* plan.c: placement options and plans: parse --device / -ngl / --override-tensor / --plan, turn them into the
 * device of every tensor group, read and write plan files, and keep each device's measured bandwidth. */
#include "plan.h"

#include "cli_util.h"

#include "model/arch.h"

#include <errno.h>
#include <jansson.h>
#include <regex.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

enum { PLAN_MAX_DEVICES = 16 };

void cli_plan_defaults(cli_plan_options *o) {
    memset(o, 0, sizeof *o);
    o->n_gpu_layers = -1;
}

void cli_plan_usage(FILE *f) {
    fprintf(f, "  --device LIST       devices to place the model on: cpu (default), cpu,cpu for two instances\n"
               "  -ngl N              layers on the first GPU (this build has none: everything stays on the CPU)\n"
               "  --override-tensor REGEX=DEVICE   tensor groups whose name or tensors match REGEX go to DEVICE\n"
               "                      (cpu0, cpu1, ...; repeatable; groups: token_embd, blk.N.attn, blk.N.ffn, output)\n"
               "  --plan FILE.json    the plan `tandem plan --json` wrote\n"
               "  --cpu-moe           the feed-forward groups of mixture-of-experts layers (experts, router, shared\n"
               "                      expert) on the CPU device, cpu0\n"
               "  --n-cpu-moe N       the same for the first N layers only\n");
}

int cli_plan_parse(cli_plan_options *o, int argc, char **argv, int *i) {
    const char *a = argv[*i];
    if (!strcmp(a, "--cpu-moe")) {
        o->n_cpu_moe = INT32_MAX;
        return 1;
    }
    bool ngl = !strcmp(a, "-ngl") || !strcmp(a, "--n-gpu-layers");
    bool ot = !strcmp(a, "--override-tensor") || !strcmp(a, "-ot"), n_cpu_moe = !strcmp(a, "--n-cpu-moe");
    if (strcmp(a, "--device") && strcmp(a, "--plan") && !ngl && !ot && !n_cpu_moe) return 0;
    const char *v = cli_value(argc, argv, i);
    if (!v) return -1;
    long long n = 0;
    if (ngl || n_cpu_moe) {
        if (!cli_int(a, v, 0, 1 << 20, &n)) return -1;
        if (ngl) o->n_gpu_layers = (int32_t)n;
        else o->n_cpu_moe = (int32_t)n;
    } else if (ot) {
        if (o->n_overrides == CLI_MAX_OVERRIDES || !strchr(v, '=')) {
            fprintf(stderr, "tandem: %s takes REGEX=DEVICE, at most %d times\n", a, CLI_MAX_OVERRIDES);
            return -1;
        }
        o->overrides[o->n_overrides++] = v;
    } else if (!strcmp(a, "--device")) {
        o->devices = v;
    } else {
        o->plan_file = v;
    }
    return 1;
}

/* ------------------------------------------------------------------------------------------------------------
 * Devices by name
 * ---------------------------------------------------------------------------------------------------------- */

/* Counts the devices of a --device list ("cpu,cpu"); every entry must be a kind this build has. */
static bool parse_device_list(const char *list, int32_t *n_devices) {
    *n_devices = 0;
    for (const char *p = list; *p;) {
        size_t len = strcspn(p, ",");
        if (len != 3 || strncmp(p, "cpu", 3)) {
            fprintf(stderr, "tandem: --device: unknown device '%.*s' (this build has: cpu)\n", (int)len, p);
            return false;
        }
        if (++*n_devices > PLAN_MAX_DEVICES) {
            fprintf(stderr, "tandem: --device: at most %d devices\n", PLAN_MAX_DEVICES);
            return false;
        }
        p += len + (p[len] == ',');
    }
    if (!*n_devices) fprintf(stderr, "tandem: --device: the list is empty\n");
    return *n_devices > 0;
}

/* The index of a device instance name: "cpu0", "cpu1", ..., or "cpu" for the first; -1 if unknown. */
static int32_t device_index(const char *name, int32_t n_devices) {
    if (!strcmp(name, "cpu") || !strcmp(name, "CPU")) return 0;
    char *end = NULL;
    if (strncmp(name, "cpu", 3) || !name[3]) return -1;
    long i = strtol(name + 3, &end, 10);
    return *end || i < 0 || i >= n_devices ? -1 : (int32_t)i;
}

/* ------------------------------------------------------------------------------------------------------------
 * Overrides
 * ---------------------------------------------------------------------------------------------------------- */

/* Whether `re` matches a group's name or the GGUF name of one of its tensors in the file (tnd_layer_tensors for the
 * layers). */
static bool group_matches(const regex_t *re, const tnd_model *m, const tnd_group_info *gi) {
    if (!regexec(re, gi->name, 0, NULL, 0)) return true;
    if (gi->layer < 0) {
        bool embd = !strcmp(gi->name, "token_embd");
        return !regexec(re, embd ? "token_embd.weight" : "output.weight", 0, NULL, 0) ||
               (!embd && !regexec(re, "output_norm.weight", 0, NULL, 0));
    }
    bool ffn = strstr(gi->name, ".ffn") != NULL;
    char name[96];
    for (size_t i = 0; i < tnd_layer_tensor_count; i++) {
        if (tnd_layer_tensors[i].ffn != ffn) continue;
        snprintf(name, sizeof name, "blk.%d.%s", gi->layer, tnd_layer_tensors[i].name);
        if (tnd_model_tensor_find(m, name) >= 0 && !regexec(re, name, 0, NULL, 0)) return true;
    }
    return false;
}

static bool apply_override(const char *spec, tnd_model *m, int32_t n_groups, int32_t n_devices, int32_t *groups) {
    const char *eq = strrchr(spec, '=');
    char pattern[256];
    if ((size_t)(eq - spec) >= sizeof pattern) {
        fprintf(stderr, "tandem: --override-tensor: the pattern is too long\n");
        return false;
    }
    memcpy(pattern, spec, (size_t)(eq - spec));
    pattern[eq - spec] = 0;
    int32_t device = device_index(eq + 1, n_devices);
    if (device < 0) {
        fprintf(stderr, "tandem: --override-tensor %s: no device '%s' (the plan has cpu0..cpu%d)\n", spec, eq + 1,
                n_devices - 1);
        return false;
    }
    regex_t re;
    int rc = regcomp(&re, pattern, REG_EXTENDED | REG_NOSUB);
    if (rc) {
        char why[128];
        regerror(rc, &re, why, sizeof why);
        fprintf(stderr, "tandem: --override-tensor: bad pattern '%s': %s\n", pattern, why);
        return false;
    }
    int32_t moved = 0;
    for (int32_t g = 0; g < n_groups; g++) {
        tnd_group_info gi;
        if (tnd_model_group(m, g, &gi) == TND_OK && group_matches(&re, m, &gi)) {
            groups[g] = device;
            moved++;
        }
    }
    regfree(&re);
    if (!moved) fprintf(stderr, "tandem: note: --override-tensor %s matches no tensor group\n", spec);
    return true;
}

/* --cpu-moe / --n-cpu-moe: the feed-forward group of each of the first n layers that has experts goes to the CPU
 * device (cpu0: in this build every device is a CPU instance; with a GPU, the rest of the model stays on it). */
static void experts_on_cpu(tnd_model *m, int32_t n, int32_t n_groups, int32_t *groups) {
    int32_t moved = 0;
    for (int32_t g = 0; g < n_groups; g++) {
        tnd_group_info gi;
        char name[96];
        if (tnd_model_group(m, g, &gi) != TND_OK || gi.layer < 0 || gi.layer >= n || !strstr(gi.name, ".ffn"))
            continue;
        snprintf(name, sizeof name, "blk.%d.ffn_gate_exps.weight", gi.layer);
        if (tnd_model_tensor_find(m, name) < 0) continue;
        groups[g] = 0;
        moved++;
    }
    if (!moved) fprintf(stderr, "tandem: note: --cpu-moe / --n-cpu-moe: the model has no experts to place\n");
}

/* ------------------------------------------------------------------------------------------------------------
 * Plan files: {"devices": ["cpu", "cpu"], "groups": {"token_embd": "cpu0", "blk.0.attn": "cpu1", ...}}
 * ---------------------------------------------------------------------------------------------------------- */

static bool read_plan_file(const char *path, tnd_model *m, int32_t n_groups, int32_t *n_devices, int32_t *groups) {
    json_error_t err;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &err);
    if (!root) {
        fprintf(stderr, "tandem: --plan %s: %s (line %d)\n", path, err.text, err.line);
        return false;
    }
    bool ok = false;
    const json_t *devices = json_object_get(root, "devices"), *map = json_object_get(root, "groups");
    size_t n_dev = json_array_size(devices);
    if (!json_is_array(devices) || n_dev < 1 || n_dev > PLAN_MAX_DEVICES || !json_is_object(map)) {
        fprintf(stderr, "tandem: --plan %s: needs \"devices\" (1 to %d names) and \"groups\" (an object)\n", path,
                PLAN_MAX_DEVICES);
        goto done;
    }
    for (size_t i = 0; i < n_dev; i++) {
        const char *name = json_string_value(json_array_get(devices, i));
        if (!name || strcmp(name, "cpu")) {
            fprintf(stderr, "tandem: --plan %s: device %zu is '%s' (this build has: cpu)\n", path, i,
                    name ? name : "not a string");
            goto done;
        }
    }
    *n_devices = (int32_t)n_dev;
    if ((int32_t)json_object_size(map) != n_groups) {
        fprintf(stderr, "tandem: --plan %s: it places %zu tensor groups; this model has %d\n", path,
                json_object_size(map), n_groups);
        goto done;
    }
    for (int32_t g = 0; g < n_groups; g++) {
        tnd_group_info gi;
        if (tnd_model_group(m, g, &gi) != TND_OK) {
            cli_error(path);
            goto done;
        }
        const char *device = json_string_value(json_object_get(map, gi.name));
        groups[g] = device ? device_index(device, *n_devices) : -1;
        if (groups[g] < 0) {
            fprintf(stderr, "tandem: --plan %s: group %s has %s%s\n", path, gi.name, device ? "no device " : "no entry",
                    device ? device : "");
            goto done;
        }
    }
    ok = true;
done:
    json_decref(root);
    return ok;
}

bool cli_plan_write(FILE *f, tnd_model *m, const tnd_context_params *p) {
    json_t *root = json_object(), *devices = json_array(), *map = json_object();
    for (int32_t d = 0; d < p->n_devices; d++) json_array_append_new(devices, json_string("cpu"));
    for (int32_t g = 0; g < p->n_groups; g++) {
        tnd_group_info gi;
        char device[16];
        if (tnd_model_group(m, g, &gi) != TND_OK) continue;
        snprintf(device, sizeof device, "cpu%d", p->group_device[g]);
        json_object_set_new(map, gi.name, json_string(device));
    }
    json_object_set_new(root, "devices", devices);
    json_object_set_new(root, "groups", map);
    bool ok = json_dumpf(root, f, JSON_INDENT(2) | JSON_PRESERVE_ORDER) == 0 && fputc('\n', f) != EOF;
    json_decref(root);
    return ok;
}

/* ------------------------------------------------------------------------------------------------------------
 * The plan
 * ---------------------------------------------------------------------------------------------------------- */

bool cli_plan_make(const cli_plan_options *o, tnd_model *m, tnd_context_params *p, int32_t **groups) {
    *groups = NULL;
    if (o->n_gpu_layers > 0)
        fprintf(stderr, "tandem: note: -ngl %d: this build has no GPU device; every layer stays on the CPU\n",
                o->n_gpu_layers);
    int32_t n_groups = tnd_model_n_groups(m);
    if (!n_groups) {
        cli_error("the model's tensor groups");
        return false;
    }
    int32_t n_devices = 1;
    if (o->devices && !parse_device_list(o->devices, &n_devices)) return false;
    int32_t *g = malloc(sizeof *g * (size_t)n_groups);
    if (!g) return false;
    if (o->plan_file) {
        if (o->devices) fprintf(stderr, "tandem: note: --plan names the devices; --device is not used\n");
        if (!read_plan_file(o->plan_file, m, n_groups, &n_devices, g)) goto fail;
    } else { /* the library's default: the layers split evenly over the devices */
        tnd_context_params even = tnd_context_default_params();
        even.n_devices = n_devices;
        if (tnd_model_plan(m, &even, g, n_groups) != TND_OK) {
            cli_error("--device");
            goto fail;
        }
    }
    if (o->n_cpu_moe > 0) experts_on_cpu(m, o->n_cpu_moe, n_groups, g);
    for (int32_t i = 0; i < o->n_overrides; i++)
        if (!apply_override(o->overrides[i], m, n_groups, n_devices, g)) goto fail;
    p->n_devices = n_devices;
    p->group_device = g;
    p->n_groups = n_groups;
    *groups = g;
    return true;
fail:
    free(g);
    return false;
}

/* ------------------------------------------------------------------------------------------------------------
 * Measured bandwidth, kept per machine
 * ---------------------------------------------------------------------------------------------------------- */

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
    snprintf(path, cap, "%s/bandwidth-%s-%dt", dir, info.name, n_threads);
    return true;
}

double cli_device_bandwidth(int32_t index, int32_t n_threads, bool measure_again) {
    char path[600];
    bool cached = cache_path(index, n_threads, path, sizeof path);
    double bw = 0;
    FILE *f = cached && !measure_again ? fopen(path, "r") : NULL;
    if (f) {
        if (fscanf(f, "%lf", &bw) != 1 || bw <= 0) bw = 0;
        fclose(f);
    }
    if (bw > 0) return bw;
    fprintf(stderr, "tandem: measuring the memory bandwidth of device %d (once for this machine)\n", index);
    bw = tnd_device_measure_bandwidth(index, n_threads);
    if (bw > 0 && cached && (f = fopen(path, "w"))) {
        fprintf(f, "%.0f\n", bw);
        fclose(f);
    }
    return bw;
}
