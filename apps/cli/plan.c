/* plan.c: placement options and plans: parse --device / -ngl / --override-tensor / --plan, turn them into the
 * device of every tensor group (the automatic one from the devices' measured speeds), read and write plan files. */
#include "plan.h"

#include "cli_util.h"
#include "device_speeds.h"

#include "core/thread_pool.h"
#include "model/arch.h"
#include "runtime/devices.h"

#include <jansson.h>
#include <regex.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { PLAN_MAX_DEVICES = 16 };

void cli_plan_defaults(cli_plan_options *o) {
    memset(o, 0, sizeof *o);
    o->n_gpu_layers = -1;
}

void cli_plan_usage(FILE *f) {
    fprintf(f, "  --device LIST       devices to place the model on, split by layers: cpu (default), vulkan (the first\n"
               "                      Vulkan GPU; vulkan1 the second), cuda (the first CUDA GPU; cuda1 ...), cpu,cpu\n"
               "                      for two CPU instances; `tandem devices` lists them\n"
               "  -ngl N              the last N layers (N >= the layer count: the whole model) on the first GPU (CUDA\n"
               "                      before Vulkan); 0 keeps the CPU. Without placement options the GPU measured\n"
               "                      fastest at the model's weight types, where it beats the CPU, takes as many of\n"
               "                      the last layers as fit in its memory\n"
               "  --override-tensor REGEX=DEVICE   tensor groups whose name or tensors match REGEX go to DEVICE\n"
               "                      (cpu0, cpu1, vulkan0, cuda0, ...; repeatable; groups: token_embd, blk.N.attn,\n"
               "                      blk.N.ffn, output)\n"
               "  --plan FILE.json    the plan `tandem plan --json` wrote\n"
               "  --device cpu,remote:HOST:PORT,cpu   the middle layers on a cloud running `tandem cloud` with the same\n"
               "                      model (the embedding, first and last layers stay here; see docs/REMOTE.md)\n"
               "  --remote-key FILE   the key the cloud holds too (`tandem cloud keygen FILE`): TLS 1.3 both ways\n"
               "  --insecure          a plaintext link to the cloud instead (anyone on the path reads and alters it)\n"
               "  --fallback-model FILE  when the cloud link dies mid-answer, go on with this smaller model of the same\n"
               "                      vocabulary, made ready at start (default: a stand-in of the cloud's layers\n"
               "                      here, where memory holds the model and a quarter more; else the whole model,\n"
               "                      made in the background where memory holds it twice, or at the loss)\n"
               "  --no-follow         no stand-in: nothing follows the conversation here in spare CPU time (by\n"
               "                      default the stand-in replays the cloud's steps, so a loss leaves only the last\n"
               "                      ones to catch up, for some speed while the cloud serves: docs/REMOTE.md)\n"
               "  --cpu-moe           the feed-forward groups of mixture-of-experts layers (experts, router, shared\n"
               "                      expert) on the CPU device, cpu0\n"
               "  --n-cpu-moe N       the same for the first N layers only\n"
               "  --experts-on DEVICE the experts of mixture-of-experts layers live and are computed on DEVICE (cpu0,\n"
               "                      ...), while their router, shared expert and sum stay with the layer's group\n"
               "  --expert-cache N    with --experts-on: copies of N experts of each layer on the group's device, the\n"
               "                      pairs that chose them computed there, swapped in by use (docs/MOE.md)\n"
               "  --expert-cache-policy lfu|lru   how the cache picks (default lfu: decaying counts of use)\n");
}

int cli_plan_parse(cli_plan_options *o, int argc, char **argv, int *i) {
    const char *a = argv[*i];
    if (!strcmp(a, "--cpu-moe")) {
        o->n_cpu_moe = INT32_MAX;
        return 1;
    }
    if (!strcmp(a, "--insecure")) {
        o->insecure = true;
        return 1;
    }
    if (!strcmp(a, "--remote-key")) {
        o->remote_key = cli_value(argc, argv, i);
        return o->remote_key ? 1 : -1;
    }
    if (!strcmp(a, "--no-follow")) {
        o->no_follow = true;
        return 1;
    }
    if (!strcmp(a, "--fallback-model")) {
        o->fallback_model = cli_value(argc, argv, i);
        return o->fallback_model ? 1 : -1;
    }
    if (!strcmp(a, "--experts-on")) {
        o->experts_on = cli_value(argc, argv, i);
        return o->experts_on ? 1 : -1;
    }
    if (!strcmp(a, "--expert-cache-policy")) {
        const char *v = cli_value(argc, argv, i);
        if (!v) return -1;
        if (strcmp(v, "lfu") && strcmp(v, "lru")) {
            fprintf(stderr, "tandem: --expert-cache-policy takes lfu or lru, not '%s'\n", v);
            return -1;
        }
        o->expert_policy = strcmp(v, "lfu") ? TND_EXPERT_CACHE_LRU : TND_EXPERT_CACHE_LFU;
        return 1;
    }
    if (!strcmp(a, "--expert-cache")) {
        const char *v = cli_value(argc, argv, i);
        long long n = 0;
        if (!v || !cli_int(a, v, 0, 1 << 16, &n)) return -1;
        o->expert_cache = (int32_t)n;
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

/* The device kind of a name in a --device list or plan file: "cpu" 0, "vulkan" or "vulkan0" the first Vulkan device,
 * "vulkanN", "cuda", "cudaN" likewise, "remote:HOST:PORT" TND_DEVICE_REMOTE; -1 (after printing why) for a name this
 * build or machine does not have. */
static int32_t kind_of(const char *name, size_t len, const char *where) {
    if (len == 3 && (!strncmp(name, "cpu", 3) || !strncmp(name, "CPU", 3))) return 0;
    if (len > 7 && !strncmp(name, "remote:", 7)) return TND_DEVICE_REMOTE;
    static const char *const families[] = {"vulkan", "cuda"};
    for (size_t f = 0; f < sizeof families / sizeof families[0]; f++) {
        size_t n = strlen(families[f]);
        if (len < n || strncmp(name, families[f], n)) continue;
        long number = 0;
        for (size_t i = n; i < len && number >= 0; i++)
            number = name[i] >= '0' && name[i] <= '9' && number < 1000 ? number * 10 + (name[i] - '0') : -1;
        int32_t kind = number >= 0 ? tnd_device_kind_named(families[f], (int32_t)number) : -1; /* (opens drivers) */
        if (kind > 0) return kind;
    }
    fprintf(stderr, "tandem: %s: unknown device '%.*s' (this machine has: cpu", where, (int)len, name);
    for (int32_t k = 1; k < tnd_device_count(); k++) {
        char other[32];
        tnd_device_kind_name(k, other, sizeof other);
        fprintf(stderr, ", %s", other);
    }
    fprintf(stderr, ")\n");
    return -1;
}

static bool take_remote(const cli_plan_options *o, const char *entry, size_t len, tnd_context_params *p, char *address,
                        size_t cap);

/* The kinds of a --device list ("cpu,vulkan0", "cpu,remote:HOST:PORT,cpu"), the cloud's address into `address`. */
static bool parse_device_list(const cli_plan_options *o, const char *list, tnd_context_params *pp, int32_t *n_devices,
                              int32_t *kinds, char *address, size_t cap) {
    *n_devices = 0;
    for (const char *p = list; *p;) {
        size_t len = strcspn(p, ",");
        if (*n_devices == PLAN_MAX_DEVICES) {
            fprintf(stderr, "tandem: --device: at most %d devices\n", PLAN_MAX_DEVICES);
            return false;
        }
        if ((kinds[*n_devices] = kind_of(p, len, "--device")) < 0) return false;
        if (kinds[*n_devices] == TND_DEVICE_REMOTE && !take_remote(o, p, len, pp, address, cap)) return false;
        ++*n_devices;
        p += len + (p[len] == ',');
    }
    if (!*n_devices) fprintf(stderr, "tandem: --device: the list is empty\n");
    return *n_devices > 0;
}

void cli_device_name(const tnd_context_params *p, int32_t d, char *buf, size_t cap) {
    int32_t kind = p->device_kinds ? p->device_kinds[d] : 0, n_cpu = 0;
    for (int32_t e = 0; e < d; e++) n_cpu += !p->device_kinds || p->device_kinds[e] == 0;
    if (kind == 0) snprintf(buf, cap, "cpu%d", n_cpu);
    else tnd_device_kind_name(kind, buf, cap);
}

/* Takes the cloud's address from a device list entry "remote:HOST:PORT" into p->remote (room: `address`), and its
 * key from the options; false (after printing why) for a second cloud or a link neither keyed nor --insecure. */
static bool take_remote(const cli_plan_options *o, const char *entry, size_t len, tnd_context_params *p, char *address,
                        size_t cap) {
    if (p->remote) {
        fprintf(stderr, "tandem: --device: one cloud device at most\n");
        return false;
    }
    if (!o->remote_key && !o->insecure) {
        fprintf(stderr, "tandem: --device %.*s: give the cloud's key with --remote-key FILE (made by `tandem cloud "
                        "keygen`), or --insecure for a plaintext link\n", (int)len, entry);
        return false;
    }
    if (o->insecure && !o->remote_key)
        fprintf(stderr, "tandem: warning: the link to the cloud is plaintext (--insecure): anyone on the path can "
                        "read and alter the hidden states\n");
    snprintf(address, cap, "%.*s", (int)(len - 7), entry + 7);
    p->remote = address;
    p->remote_key_file = o->remote_key;
    return true;
}

/* The device of an instance name ("cpu1", "vulkan0"; "cpu" and "vulkan" for the first of their kind) in plan p;
 * -1 if the plan has none. */
static int32_t device_index(const char *name, const tnd_context_params *p) {
    for (int32_t d = 0; d < p->n_devices; d++) {
        char own[24];
        cli_device_name(p, d, own, sizeof own);
        size_t kind_len = strcspn(own, "0123456789");
        if (!strcmp(name, own) || (strlen(name) == kind_len && !strncmp(name, own, kind_len) && !strcmp(own + kind_len, "0")))
            return d;
    }
    return -1;
}

/* A list of the plan's device names, for messages. */
static void device_names(const tnd_context_params *p, char *buf, size_t cap) {
    buf[0] = 0;
    for (int32_t d = 0; d < p->n_devices; d++) {
        size_t n = strlen(buf);
        snprintf(buf + n, cap - n, "%s", d ? ", " : "");
        n = strlen(buf);
        cli_device_name(p, d, buf + n, cap - n);
    }
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

static bool apply_override(const char *spec, tnd_model *m, const tnd_context_params *p, int32_t *groups) {
    const char *eq = strrchr(spec, '=');
    char pattern[256];
    if ((size_t)(eq - spec) >= sizeof pattern) {
        fprintf(stderr, "tandem: --override-tensor: the pattern is too long\n");
        return false;
    }
    memcpy(pattern, spec, (size_t)(eq - spec));
    pattern[eq - spec] = 0;
    int32_t device = device_index(eq + 1, p);
    if (device < 0) {
        char names[256];
        device_names(p, names, sizeof names);
        fprintf(stderr, "tandem: --override-tensor %s: no device '%s' (the plan has %s)\n", spec, eq + 1, names);
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
    for (int32_t g = 0; g < p->n_groups; g++) {
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

/* --cpu-moe / --n-cpu-moe: the feed-forward group of each of the first n layers that has experts goes to the first
 * CPU device, cpu0 (the rest of the model stays where the plan put it, a GPU say); false when the plan has no CPU. */
static bool experts_on_cpu(tnd_model *m, int32_t n, const tnd_context_params *p, int32_t *groups) {
    int32_t cpu = device_index("cpu0", p), moved = 0, n_groups = p->n_groups;
    if (cpu < 0) {
        fprintf(stderr, "tandem: --cpu-moe / --n-cpu-moe: the plan has no CPU device (add cpu to --device)\n");
        return false;
    }
    for (int32_t g = 0; g < n_groups; g++) {
        tnd_group_info gi;
        char name[96];
        if (tnd_model_group(m, g, &gi) != TND_OK || gi.layer < 0 || gi.layer >= n || !strstr(gi.name, ".ffn"))
            continue;
        snprintf(name, sizeof name, "blk.%d.ffn_gate_exps.weight", gi.layer);
        if (tnd_model_tensor_find(m, name) < 0) continue;
        groups[g] = cpu;
        moved++;
    }
    if (!moved) fprintf(stderr, "tandem: note: --cpu-moe / --n-cpu-moe: the model has no experts to place\n");
    return true;
}

/* ------------------------------------------------------------------------------------------------------------
 * Plan files: {"devices": ["cpu", "vulkan0"], "groups": {"token_embd": "cpu0", "blk.0.attn": "vulkan0", ...}}
 * ---------------------------------------------------------------------------------------------------------- */

static bool read_plan_file(const cli_plan_options *o, const char *path, tnd_model *m, tnd_context_params *p,
                           int32_t *kinds, char *address, size_t cap, int32_t *groups) {
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
    char where[600];
    snprintf(where, sizeof where, "--plan %s", path);
    for (size_t i = 0; i < n_dev; i++) {
        const char *name = json_string_value(json_array_get(devices, i));
        if (!name) {
            fprintf(stderr, "tandem: --plan %s: device %zu is not a string\n", path, i);
            goto done;
        }
        if ((kinds[i] = kind_of(name, strlen(name), where)) < 0) goto done;
        if (kinds[i] == TND_DEVICE_REMOTE && !take_remote(o, name, strlen(name), p, address, cap)) goto done;
    }
    p->n_devices = (int32_t)n_dev;
    p->device_kinds = kinds;
    int32_t n_groups = p->n_groups;
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
        groups[g] = device ? device_index(device, p) : -1;
        if (groups[g] < 0) {
            fprintf(stderr, "tandem: --plan %s: group %s has %s%s\n", path, gi.name, device ? "no device " : "no entry",
                    device ? device : "");
            goto done;
        }
    }
    const json_t *experts_on = json_object_get(root, "experts_on"), *cache = json_object_get(root, "expert_cache");
    if (experts_on) {
        const char *device = json_string_value(experts_on);
        p->expert_device = device ? device_index(device, p) : -1;
        json_int_t slots = json_is_integer(cache) ? json_integer_value(cache) : cache ? -1 : 0;
        if (p->expert_device < 0 || slots < 0 || slots > INT32_MAX) {
            fprintf(stderr, "tandem: --plan %s: \"experts_on\" names no device of the plan, or \"expert_cache\" is no "
                    "count of slots\n", path);
            goto done;
        }
        p->expert_cache_slots = (int32_t)slots;
    }
    ok = true;
done:
    json_decref(root);
    return ok;
}

bool cli_plan_write(FILE *f, tnd_model *m, const tnd_context_params *p) {
    json_t *root = json_object(), *devices = json_array(), *map = json_object();
    for (int32_t d = 0; d < p->n_devices; d++) {
        char kind[160];
        cli_device_name(p, d, kind, sizeof kind);
        if (!strncmp(kind, "cpu", 3)) kind[3] = 0; /* CPU instances are all of kind cpu */
        if (!strcmp(kind, "remote0")) snprintf(kind, sizeof kind, "remote:%s", p->remote);
        json_array_append_new(devices, json_string(kind));
    }
    for (int32_t g = 0; g < p->n_groups; g++) {
        tnd_group_info gi;
        char device[24];
        if (tnd_model_group(m, g, &gi) != TND_OK) continue;
        cli_device_name(p, p->group_device[g], device, sizeof device);
        json_object_set_new(map, gi.name, json_string(device));
    }
    json_object_set_new(root, "devices", devices);
    json_object_set_new(root, "groups", map);
    if (p->expert_device >= 0) { /* experts apart (--experts-on), with a cache of hot experts */
        char device[24];
        cli_device_name(p, p->expert_device, device, sizeof device);
        json_object_set_new(root, "experts_on", json_string(device));
        json_object_set_new(root, "expert_cache", json_integer(p->expert_cache_slots));
    }
    bool ok = json_dumpf(root, f, JSON_INDENT(2) | JSON_PRESERVE_ORDER) == 0 && fputc('\n', f) != EOF;
    json_decref(root);
    return ok;
}

/* ------------------------------------------------------------------------------------------------------------
 * The plan
 * ---------------------------------------------------------------------------------------------------------- */

/* The last n_gpu_layers layers and the output head on device kind `gpu`, the rest on the CPU; the whole model on
 * the GPU when they are every layer. */
static void place_last_layers(int32_t gpu, int32_t n_gpu_layers, tnd_model *m, tnd_context_params *p, int32_t *kinds,
                              int32_t *g) {
    int32_t n_layer = (p->n_groups - 2) / 2, on_cpu = n_gpu_layers >= n_layer ? 0 : n_layer - n_gpu_layers;
    kinds[0] = gpu;
    kinds[1] = 0;
    p->n_devices = on_cpu ? 2 : 1;
    p->device_kinds = kinds;
    for (int32_t i = 0; i < p->n_groups; i++) {
        tnd_group_info gi;
        bool cpu = tnd_model_group(m, i, &gi) == TND_OK && (gi.layer >= 0 ? gi.layer < on_cpu : i == 0 && on_cpu);
        g[i] = cpu ? 1 : 0;
    }
}

/* -ngl N on the first GPU (a CUDA device, else a Vulkan one); false (after a note) when the machine has none:
 * everything stays on the CPU. */
static bool gpu_layers(int32_t n_gpu_layers, tnd_model *m, tnd_context_params *p, int32_t *kinds, int32_t *g) {
    int32_t gpu = tnd_device_kind_first_gpu();
    if (!gpu) {
        fprintf(stderr, "tandem: note: -ngl %d: this machine has no GPU device that tandem can use; every layer "
                        "stays on the CPU\n", n_gpu_layers);
        return false;
    }
    place_last_layers(gpu, n_gpu_layers, m, p, kinds, g);
    return true;
}

/* Whether the machine shows a GPU's device node (Linux: DRM render nodes, NVIDIA's; Android: Adreno's, Mali's):
 * only then does the automatic plan open the Vulkan driver (0.05 to 0.15 s), so that machines without a GPU start at
 * once. Elsewhere, and where a test stands a software driver in for a GPU, it always looks. */
static bool gpu_node_present(void) {
#ifdef __linux__
    static const char *const nodes[] = {"/dev/dri", "/dev/nvidia0", "/dev/kgsl-3d0", "/dev/mali0"};
    for (size_t i = 0; i < sizeof nodes / sizeof nodes[0]; i++)
        if (access(nodes[i], F_OK) == 0) return true;
    const char *pretend = getenv("TANDEM_VULKAN_SOFTWARE_IS_GPU");
    return pretend && *pretend && strcmp(pretend, "0");
#else
    return true;
#endif
}

/* Expected seconds per decoded token of the whole model on device kind `kind` (its weights, without KV), from its
 * measured speeds at the model's weight types; 0 when they cannot be had. */
static double model_decode_seconds(tnd_model *m, int32_t kind, int32_t threads) {
    bool want[TND_TYPE_COUNT] = {0};
    uint64_t bytes[TND_TYPE_COUNT] = {0};
    cli_device_speeds s;
    cli_model_weight_types(m, want);
    if (!cli_device_speeds_get(kind, threads, want, false, &s)) return 0;
    for (int32_t i = 0; i < tnd_model_n_groups(m); i++) {
        tnd_group_info gi;
        if (tnd_model_group(m, i, &gi) != TND_OK) return 0;
        for (int t = 0; t < TND_TYPE_COUNT; t++) bytes[t] += gi.active_bytes_by_type[t];
    }
    for (int t = 0; t < TND_TYPE_COUNT; t++)
        if (bytes[t] && s.matmul[t].decode_bytes_per_s < 0) return 0; /* a type the device lacks */
    return cli_decode_seconds(&s, bytes, 0);
}

uint64_t cli_layer_experts_bytes(tnd_model *m, int32_t il, int64_t *n_experts) {
    static const char *const names[] = {"ffn_gate_exps", "ffn_up_exps", "ffn_down_exps"};
    uint64_t bytes = 0;
    *n_experts = 0;
    for (int i = 0; i < 3; i++) {
        char name[64];
        tnd_tensor_info t;
        snprintf(name, sizeof name, "blk.%d.%s.weight", il, names[i]);
        int64_t at = tnd_model_tensor_find(m, name);
        if (at < 0 || tnd_model_tensor_at(m, at, &t) != TND_OK) {
            *n_experts = 0;
            return 0;
        }
        bytes += t.size;
        *n_experts = t.ne[2];
    }
    return bytes;
}

/* The automatic plan of a mixture of experts too large for the GPU: every group on it but the embedding (which a GPU
 * keeps in host memory anyway), the experts in the CPU's memory, and as many of each layer's experts cached on the GPU
 * as the rest of its budget holds, where the GPU keeps a cache. False where the dense part and the KV cache alone do
 * not fit (or a tensor of theirs passes the binding limit): then whole layers go as for a dense model. */
static bool experts_apart_plan(tnd_model *m, tnd_context_params *p, int32_t *kinds, int32_t *g, int32_t gpu,
                               const tnd_device_info *info, double budget, tnd_type kt, tnd_type vt, int32_t n_ctx) {
    double dense = 0, per_expert = 0, largest = 0;
    int32_t n_expert = 0;
    for (int32_t i = 1; i < p->n_groups; i++) {
        tnd_group_info gi;
        if (tnd_model_group(m, i, &gi) != TND_OK) return false;
        int64_t n = 0;
        uint64_t experts = gi.layer >= 0 && strstr(gi.name, ".ffn") ? cli_layer_experts_bytes(m, gi.layer, &n) : 0;
        double k_pool = (double)gi.kv_values_per_token / 2 * cli_kv_value_bytes(kt) * n_ctx,
               v_pool = (double)gi.kv_values_per_token / 2 * cli_kv_value_bytes(vt) * n_ctx;
        dense += (double)(gi.weight_bytes - experts) + k_pool + v_pool;
        if (n) { /* an expert's bytes summed over the layers: what one more slot in every layer takes */
            per_expert += (double)experts / (double)n;
            n_expert = (int32_t)n;
        }
        if (k_pool > largest) largest = k_pool;
        if (v_pool > largest) largest = v_pool;
    }
    double limit = (double)info->max_buffer_bytes;
    if (!n_expert || dense > budget || (limit > 0 && largest > limit)) return false;
    double slots = info->expert_cache ? (budget - dense) / per_expert : 0;
    kinds[0] = gpu;
    kinds[1] = 0;
    p->n_devices = 2;
    p->device_kinds = kinds;
    for (int32_t i = 0; i < p->n_groups; i++) g[i] = i == 0;
    p->expert_device = 1;
    p->expert_cache_slots = slots < n_expert - 1 ? (int32_t)slots : n_expert - 1;
    fprintf(stderr, "tandem: plan: every layer on %s, its experts in the CPU's memory (%d of each layer's %d cached on "
            "%s; --experts-on and --expert-cache choose otherwise, -ngl 0 keeps the CPU)\n", info->name,
            p->expert_cache_slots, n_expert, info->name);
    return true;
}

/* Without placement options: the GPU that would decode the model fastest, where that beats the CPU (by their speeds
 * measured at the model's weight types), takes as many of the last layers (and their KV cache), with the output
 * head, as fit in 90% of its free memory and under its binding limit; the whole model where everything fits. Drivers
 * that compute on the CPU (lavapipe) are never chosen. False when no GPU is worth it (the CPU keeps all). */
static bool auto_gpu(tnd_model *m, tnd_context_params *p, int32_t *kinds, int32_t *g) {
    if (!gpu_node_present()) return false;
    int32_t gpu = 0, threads = p->n_threads ? p->n_threads : tnd_physical_cores();
    double gpu_s = 0, cpu_s = 0;
    for (int32_t k = 1; k < tnd_device_count(); k++) { /* the fastest GPU (one card may be Vulkan and CUDA both) */
        double s = tnd_device_is_gpu(k) ? model_decode_seconds(m, k, threads) : 0;
        if (s > 0 && (!gpu || s < gpu_s)) gpu = k, gpu_s = s;
    }
    tnd_device_info info;
    if (!gpu || tnd_device_get_info(gpu, threads, &info) != TND_OK) return false;
    const char *cap = getenv("TANDEM_PLAN_GPU_MEMORY_MB"); /* a testing aid: plan as if the GPU had this much free */
    if (cap && atof(cap) > 0) info.memory_available = (uint64_t)(atof(cap) * 1048576.0);
    cpu_s = model_decode_seconds(m, 0, threads);
    if (cpu_s > 0 && gpu_s >= cpu_s) return false;
    tnd_type kt = p->k_type == TND_TYPE_COUNT ? p->kv_type : p->k_type;
    tnd_type vt = p->v_type == TND_TYPE_COUNT ? p->kv_type : p->v_type;
    int32_t n_ctx = p->n_ctx ? p->n_ctx : cli_default_context(m), n_layer = (p->n_groups - 2) / 2, fit = 0;
    double budget = 0.9 * (double)info.memory_available, used = 0, limit = (double)info.max_buffer_bytes;
    for (int32_t gi_index = p->n_groups - 1; gi_index >= 0; gi_index--) { /* from the output back */
        tnd_group_info gi;
        if (tnd_model_group(m, gi_index, &gi) != TND_OK) return false;
        double k_pool = (double)gi.kv_values_per_token / 2 * cli_kv_value_bytes(kt) * n_ctx,
               v_pool = (double)gi.kv_values_per_token / 2 * cli_kv_value_bytes(vt) * n_ctx;
        used += (double)gi.weight_bytes + k_pool + v_pool;
        if (used > budget) break;
        double largest = (double)gi.largest_tensor_bytes > k_pool ? (double)gi.largest_tensor_bytes : k_pool;
        if (v_pool > largest) largest = v_pool;
        if (limit > 0 && largest > limit) { /* the binding limit: what is before stays on the CPU */
            fprintf(stderr, "tandem: plan: %s needs a buffer of %.0f MB, more than %s binds at once (%.0f MB); it and "
                    "what comes before it stay on the CPU\n", gi.name, largest / 1e6, info.name, limit / 1e6);
            break;
        }
        if (gi.layer >= 0 && strstr(gi.name, ".attn")) fit = n_layer - gi.layer; /* a layer's first group */
        if (gi_index == 0) fit = n_layer + 1; /* the embedding too: everything */
    }
    if (fit < n_layer && experts_apart_plan(m, p, kinds, g, gpu, &info, budget, kt, vt, n_ctx)) return true;
    if (fit == 0) return false;
    place_last_layers(gpu, fit, m, p, kinds, g);
    char what[48];
    if (fit > n_layer) snprintf(what, sizeof what, "the whole model");
    else snprintf(what, sizeof what, "the last %d of %d layers", fit, n_layer);
    fprintf(stderr, "tandem: plan: %s on %s (%s: %.3g ms per token by its measured speeds, the CPU %.3g; -ngl 0 "
            "keeps the CPU)\n", what, info.name, info.description, gpu_s * 1e3, cpu_s * 1e3);
    return true;
}

/* --device remote:HOST:PORT alone: this machine keeps the embedding, the first and the last CLI_PRIVATE_LAYERS
 * layers (fewer where the model is shallow, leaving the cloud one) and the output head; the cloud runs the middle.
 * Hidden states after a couple of layers still give the words away to published inversion attacks, so the device
 * keeps more than that on each side (docs/REMOTE.md). */
static void keep_ends_here(tnd_model *m, tnd_context_params *p, int32_t *kinds, int32_t *g) {
    int32_t n_layer = (p->n_groups - 2) / 2, k = n_layer / 8 > CLI_PRIVATE_LAYERS ? n_layer / 8 : CLI_PRIVATE_LAYERS;
    if (k > (n_layer - 1) / 2) k = (n_layer - 1) / 2;
    kinds[0] = 0, kinds[1] = TND_DEVICE_REMOTE, kinds[2] = 0;
    p->n_devices = 3;
    for (int32_t i = 0; i < p->n_groups; i++) {
        tnd_group_info gi;
        int32_t layer = tnd_model_group(m, i, &gi) == TND_OK ? gi.layer : -1;
        g[i] = layer < 0 ? (i == 0 ? 0 : 2) : layer < k ? 0 : layer >= n_layer - k ? 2 : 1;
    }
}

bool cli_plan_make(const cli_plan_options *o, tnd_model *m, tnd_context_params *p, int32_t **groups) {
    *groups = NULL;
    int32_t n_groups = tnd_model_n_groups(m);
    if (!n_groups) {
        cli_error("the model's tensor groups");
        return false;
    }
    /* one allocation for the caller to free: the groups' devices, the devices' kinds, a cloud's address */
    enum { ADDRESS_BYTES = 256 };
    int32_t *g = malloc(sizeof *g * (size_t)(n_groups + PLAN_MAX_DEVICES) + ADDRESS_BYTES), *kinds = g + n_groups;
    if (!g) return false;
    char *address = (char *)(kinds + PLAN_MAX_DEVICES);
    p->n_groups = n_groups;
    p->n_devices = 1;
    p->device_kinds = NULL;
    p->remote = p->remote_key_file = NULL;
    if (o->plan_file) {
        if (o->devices || o->n_gpu_layers >= 0)
            fprintf(stderr, "tandem: note: --plan names the devices; --device and -ngl are not used\n");
        if (!read_plan_file(o, o->plan_file, m, p, kinds, address, ADDRESS_BYTES, g)) goto fail;
    } else if (o->devices || (o->n_gpu_layers > 0 ? !gpu_layers(o->n_gpu_layers, m, p, kinds, g)
                                                  : o->n_gpu_layers == 0 || !auto_gpu(m, p, kinds, g))) {
        if (o->devices) {
            if (o->n_gpu_layers >= 0) fprintf(stderr, "tandem: note: --device names the devices; -ngl is not used\n");
            if (!parse_device_list(o, o->devices, p, &p->n_devices, kinds, address, ADDRESS_BYTES)) goto fail;
            p->device_kinds = kinds;
        }
        if (p->n_devices == 1 && kinds[0] == TND_DEVICE_REMOTE) { /* the cloud alone: it gets the middle */
            keep_ends_here(m, p, kinds, g);
        } else { /* the library's default: the layers split evenly over the devices */
            tnd_context_params even = tnd_context_default_params();
            even.n_devices = p->n_devices;
            if (tnd_model_plan(m, &even, g, n_groups) != TND_OK) {
                cli_error("--device");
                goto fail;
            }
        }
    }
    if (o->n_cpu_moe > 0 && !experts_on_cpu(m, o->n_cpu_moe, p, g)) goto fail;
    for (int32_t i = 0; i < o->n_overrides; i++)
        if (!apply_override(o->overrides[i], m, p, g)) goto fail;
    if (o->experts_on && (p->expert_device = device_index(o->experts_on, p)) < 0) {
        char names[128];
        device_names(p, names, sizeof names);
        fprintf(stderr, "tandem: --experts-on %s: the plan has no such device (it has %s)\n", o->experts_on, names);
        goto fail;
    }
    if (o->expert_cache && !o->experts_on) {
        fprintf(stderr, "tandem: --expert-cache needs --experts-on DEVICE: the cache holds copies of experts that "
                        "live on another device\n");
        goto fail;
    }
    if (o->experts_on) p->expert_cache_slots = o->expert_cache; /* (else the automatic plan's, if it set any) */
    p->expert_cache_policy = o->expert_policy;
    p->group_device = g;
    *groups = g;
    return true;
fail:
    free(g);
    p->device_kinds = NULL;
    p->remote = p->remote_key_file = NULL;
    return false;
}

bool cli_plan_fell_back(const cli_plan_options *o, tnd_context_params *p) {
    bool automatic = !o->devices && !o->plan_file && o->n_gpu_layers < 0 && o->n_overrides == 0;
    if (p->remote) /* this machine holds the whole model file: it goes on alone */
        fprintf(stderr, "tandem: note: the cloud at %s cannot take its part (%s); running everything here\n",
                p->remote, tnd_last_error());
    else if (automatic && p->device_kinds)
        fprintf(stderr, "tandem: note: the GPU could not take its part of the model (%s); running on the CPU\n",
                tnd_last_error());
    else
        return false;
    p->remote = p->remote_key_file = NULL;
    p->n_devices = 1;
    p->device_kinds = NULL;
    p->group_device = NULL;
    p->expert_device = -1; /* the experts go with their groups on the one device left */
    p->expert_cache_slots = 0;
    p->n_groups = 0;
    return true;
}
