/* cmd_plan.c: `tandem plan -m MODEL [-c CTX] [-t T] [--kv-type T | -ctk T -ctv T] [placement options] [--json]`: where each tensor
 * group of the model goes (the plan a context with the same options makes), the bytes of weights and KV cache per
 * device, and the time a token takes on each device estimated from its measured speeds. --json writes the plan
 * file that --plan reads. `tandem devices` lists the devices and their measured speeds. */
#include "cli_util.h"
#include "commands.h"
#include "device_speeds.h"
#include "plan.h"

#include "core/thread_pool.h"
#include "runtime/devices.h"

#include <stdlib.h>
#include <string.h>

static int usage(FILE *f) {
    fprintf(f, "usage: tandem plan -m MODEL [-c CTX] [-t THREADS] [KV types] [placement options] [--json]\n");
    cli_kv_usage(f);
    cli_plan_usage(f);
    fprintf(f, "  --json              write the plan file (for --plan) instead of the table\n"
               "  --measure           measure the devices' speeds again (they are kept per machine)\n");
    return f == stdout ? 0 : 2;
}

static double mb(uint64_t bytes) { return (double)bytes / 1e6; }

int tnd_cmd_plan(int argc, char **argv) {
    const char *model_path = NULL;
    long long n_ctx = 0, threads = 0;
    bool json = false, measure = false;
    cli_kv_types kv;
    cli_kv_defaults(&kv);
    cli_plan_options po;
    cli_plan_defaults(&po);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) return usage(stdout);
        int r = cli_plan_parse(&po, argc, argv, &i);
        if (r == 0) r = cli_kv_parse(&kv, argc, argv, &i);
        if (r < 0) return 2;
        if (r) continue;
        if (!strcmp(a, "--json")) {
            json = true;
            continue;
        }
        if (!strcmp(a, "--measure")) {
            measure = true;
            continue;
        }
        const char *v = cli_value(argc, argv, &i);
        if (!v) return 2;
        bool ok = true;
        if (!strcmp(a, "-m")) model_path = v;
        else if (!strcmp(a, "-c")) ok = cli_int(a, v, 1, 1 << 24, &n_ctx);
        else if (!strcmp(a, "-t")) ok = cli_int(a, v, 0, 1024, &threads);
        else return fprintf(stderr, "tandem: unknown option '%s'\n", a), usage(stderr);
        if (!ok) return 2;
    }
    if (!model_path) return usage(stderr);
    tnd_model *m = cli_open_model(model_path);
    if (!m) return 1;
    int rc = 1;
    int32_t *groups = NULL;
    tnd_context_params p = tnd_context_default_params();
    p.n_ctx = (int32_t)n_ctx; /* what the automatic plan fits */
    p.n_threads = (int32_t)threads;
    cli_kv_apply(&kv, &p);
    if (!cli_plan_make(&po, m, &p, &groups)) goto done;
    if (json) {
        rc = cli_plan_write(stdout, m, &p) ? 0 : 1;
        goto done;
    }
    int32_t ctx = n_ctx ? (int32_t)n_ctx : cli_default_context(m), n_threads = threads ? (int32_t)threads : tnd_physical_cores();
    enum { MAX_DEV = 16 };
    uint64_t weights[MAX_DEV] = {0}, kv_dev[MAX_DEV] = {0}, read[MAX_DEV][TND_TYPE_COUNT] = {{0}};
    int32_t count[MAX_DEV] = {0};
    bool want[MAX_DEV][TND_TYPE_COUNT] = {{0}};
    printf("plan for %s: %d devices, context %d tokens, KV cache %s K, %s V\n\n", model_path, p.n_devices, ctx,
           tnd_type_name(kv.k), tnd_type_name(kv.v));
    printf("%-16s %-7s %12s %12s\n", "group", "device", "weights MB", "KV MB");
    for (int32_t g = 0; g < p.n_groups; g++) {
        tnd_group_info gi;
        if (tnd_model_group(m, g, &gi) != TND_OK) {
            cli_error("tensor group");
            goto done;
        }
        int32_t d = p.group_device[g];
        uint64_t kv_bytes = (uint64_t)((double)gi.kv_values_per_token / 2 *
                                       (cli_kv_value_bytes(kv.k) + cli_kv_value_bytes(kv.v)) * ctx);
        char name[24];
        cli_device_name(&p, d, name, sizeof name);
        uint64_t experts = 0, slots = 0; /* --experts-on: the stacked experts live apart, copies of some here */
        int32_t home = p.expert_device;
        if (home >= 0 && home != d && gi.layer >= 0 && strstr(gi.name, ".ffn")) {
            int64_t n_experts = 0;
            experts = cli_layer_experts_bytes(m, gi.layer, &n_experts);
            if (n_experts) slots = experts / (uint64_t)n_experts * (uint64_t)p.expert_cache_slots;
        }
        printf("%-16s %-7s %12.2f %12.2f\n", gi.name, name, mb(gi.weight_bytes - experts + slots), mb(kv_bytes));
        if (experts) {
            char where[24], label[32];
            cli_device_name(&p, home, where, sizeof where);
            snprintf(label, sizeof label, "blk.%d.experts", gi.layer);
            if (p.expert_cache_slots)
                printf("%-16s %-7s %12.2f %12s  (a cache on %s: %d slots, %.2f MB in that group, holding experts 0 to "
                       "%d until use swaps others in)\n", label, where, mb(experts), "", name, p.expert_cache_slots,
                       mb(slots), p.expert_cache_slots - 1);
            else
                printf("%-16s %-7s %12.2f\n", label, where, mb(experts));
            weights[home] += experts;
        }
        weights[d] += gi.weight_bytes - experts + slots;
        kv_dev[d] += kv_bytes;
        count[d]++;
        for (int t = 0; t < TND_TYPE_COUNT; t++) {
            read[d][t] += gi.active_bytes_by_type[t];
            want[d][t] |= gi.active_bytes_by_type[t] > 0;
        }
    }
    printf("\n%-7s %6s %12s %12s %14s %10s %18s %16s\n", "device", "groups", "weights MB", "KV MB", "available MB",
           "GB/s", "ms/token at full", "prompt ms/token");
    for (int32_t d = 0; d < p.n_devices; d++) {
        tnd_device_info info;
        int32_t kind = p.device_kinds ? p.device_kinds[d] : 0;
        char name[24];
        cli_device_name(&p, d, name, sizeof name);
        if (kind == TND_DEVICE_REMOTE) { /* the cloud's memory and speed are its own */
            printf("%-7s %6d %12.1f %12.1f %14s %10s %18s %16s  (the cloud at %s)\n", name, count[d], mb(weights[d]),
                   mb(kv_dev[d]), "-", "-", "-", "-", p.remote);
            continue;
        }
        bool first_of_kind = true; /* measured again once per kind */
        for (int32_t e = 0; e < d; e++) first_of_kind &= (p.device_kinds ? p.device_kinds[e] : 0) != kind;
        cli_device_speeds sp;
        if (!cli_device_speeds_get(kind, n_threads, want[d], measure && first_of_kind, &sp) ||
            tnd_device_get_info(kind, n_threads, &info) != TND_OK) {
            cli_error("device");
            goto done;
        }
        double prompt = cli_prefill_seconds(&sp, read[d]);
        char prompt_ms[24] = "-";
        if (prompt > 0) snprintf(prompt_ms, sizeof prompt_ms, "%.3f", prompt * 1e3);
        printf("%-7s %6d %12.1f %12.1f %14.0f %10.1f %18.2f %16s\n", name, count[d], mb(weights[d]), mb(kv_dev[d]),
               mb(info.memory_available), sp.bandwidth / 1e9, cli_decode_seconds(&sp, read[d], kv_dev[d]) * 1e3,
               prompt_ms);
    }
    printf("\n(ms/token: a generated token's reads on the device, weights (of a mixture of experts, the experts it "
           "chooses) at the device's measured matmul speed for each weight type and a full context of KV at its "
           "bandwidth; prompt ms/token: 2 operations per weight at its measured prefill speed, attention left out; "
           "devices in one step run one after the other. `tandem devices` shows the figures.)\n");
    rc = 0;
done:
    free(groups);
    tnd_model_close(m);
    return rc;
}

int tnd_cmd_devices(int argc, char **argv) {
    long long threads = 0;
    bool measure = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--measure")) {
            measure = true;
            continue;
        }
        const char *v = !strcmp(argv[i], "-t") ? cli_value(argc, argv, &i) : NULL;
        if (!v || !cli_int("-t", v, 0, 1024, &threads)) {
            fprintf(stderr, "usage: tandem devices [-t THREADS] [--measure]\n");
            return 2;
        }
    }
    int32_t n_threads = threads ? (int32_t)threads : tnd_physical_cores(), n = tnd_device_count();
    cli_device_speeds *sp = calloc((size_t)n, sizeof *sp);
    if (!sp) {
        cli_error("devices");
        return 1;
    }
    int rc = 1;
    printf("%-8s %-44s %12s %14s %10s\n", "device", "computes with", "memory MB", "available MB", "GB/s");
    for (int32_t i = 0; i < n; i++) {
        tnd_device_info info;
        if (tnd_device_get_info(i, n_threads, &info) != TND_OK ||
            !cli_device_speeds_get(i, n_threads, NULL, measure, &sp[i])) {
            cli_error("device");
            goto done;
        }
        printf("%-8s %-44s %12.0f %14.0f %10.1f\n", info.name, info.description, mb(info.memory_total),
               mb(info.memory_available), sp[i].bandwidth / 1e9);
    }
    /* the matmul speeds: a decode step's weights read (GB/s) and a prompt's operations (GFLOP/s), per type */
    printf("\nmatmul speed by weight type, measured: decode GB/s of weights read / prompt GFLOP/s (%d tokens)\n%-8s",
           TND_SPEED_PREFILL_TOKENS, "type");
    for (int32_t i = 0; i < n; i++) {
        char name[32];
        tnd_device_kind_name(i, name, sizeof name);
        printf(" %20s", name);
    }
    printf("\n");
    for (int t = 0; t < TND_TYPE_COUNT; t++) {
        bool any = false;
        for (int32_t i = 0; i < n; i++) any |= sp[i].matmul[t].decode_bytes_per_s != 0;
        if (!any) continue;
        printf("%-8s", tnd_type_name((tnd_type)t));
        for (int32_t i = 0; i < n; i++) {
            const tnd_matmul_speed *s = &sp[i].matmul[t];
            char cell[40] = "-";
            if (s->decode_bytes_per_s < 0) snprintf(cell, sizeof cell, "not supported");
            else if (s->decode_bytes_per_s > 0)
                snprintf(cell, sizeof cell, "%.1f / %.0f", s->decode_bytes_per_s / 1e9, s->prefill_flops / 1e9);
            printf(" %20s", cell);
        }
        printf("\n");
    }
    rc = 0;
done:
    free(sp);
    return rc;
}
