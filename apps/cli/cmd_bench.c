/* cmd_bench.c: `tandem bench -m MODEL [-p 512] [-n 128] [-t T] [-r 3] [-d 0,1024,...] [--json]`: prompt (pp) and
 * generation (tg) tokens/s as medians of repetitions, after each context depth given by -d (tokens already in the
 * cache), the memory read bandwidth measured on the spot with the same thread count, and tg as a fraction of the
 * roofline bandwidth / bytes read per token (weights, plus the K and V cache at depth). */
#include "cli_util.h"
#include "commands.h"
#include "plan.h"
#include "speculate.h"

#include "core/thread_pool.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { BENCH_MAX_REPS = 100, BENCH_MAX_DEPTHS = 32 };

/* ------------------------------------------------------------------------------------------------------------
 * Runs
 * ---------------------------------------------------------------------------------------------------------- */

typedef struct stats {
    double median, min, max;
} stats;

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static stats summarize(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    stats s = {n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]), v[0], v[n - 1]};
    return s;
}

/* Each depth has a sequence of its own, filled once; the repetitions then go round the depths, so a change in the
 * machine's speed (another tenant, the clock) falls on every depth alike and their ratio stays meaningful. */

/* One batch of n tokens of sequence seq from position p0; false on failure. */
static bool decode_run(tnd_context *ctx, const int32_t *tokens, int32_t *pos, int32_t *seq_ids, int32_t seq,
                       int32_t p0, int32_t n) {
    for (int32_t i = 0; i < n; i++) {
        pos[i] = p0 + i;
        seq_ids[i] = seq;
    }
    tnd_batch b = {.n_tokens = n, .tokens = tokens + p0, .pos = pos, .seq_id = seq_ids};
    return tnd_context_decode(ctx, &b) == TND_OK;
}

/* Fills the cache of sequence seq with `depth` tokens (in batches of n_batch); false on failure. */
static bool fill_context(tnd_context *ctx, const int32_t *tokens, int32_t *pos, int32_t *seq_ids, int32_t seq,
                         int32_t depth, int32_t n_batch) {
    tnd_context_seq_truncate(ctx, seq, 0);
    for (int32_t done = 0; done < depth; done += n_batch)
        if (!decode_run(ctx, tokens, pos, seq_ids, seq, done, depth - done < n_batch ? depth - done : n_batch))
            return false;
    return true;
}

/* Prompt processing: n tokens in one batch after `depth` tokens of context; returns tokens/s or -1. */
static double run_pp(tnd_context *ctx, const int32_t *tokens, int32_t *pos, int32_t *seq_ids, int32_t seq,
                     int32_t depth, int32_t n) {
    tnd_context_seq_truncate(ctx, seq, depth);
    double t0 = cli_now();
    if (!decode_run(ctx, tokens, pos, seq_ids, seq, depth, n)) return -1;
    return n / (cli_now() - t0);
}

/* Generation: n single-token steps after `depth` tokens of context; returns tokens/s or -1. */
static double run_tg(tnd_context *ctx, const int32_t *tokens, int32_t *pos, int32_t *seq_ids, int32_t seq,
                     int32_t depth, int32_t n) {
    tnd_context_seq_truncate(ctx, seq, depth);
    double t0 = cli_now();
    for (int32_t i = 0; i < n; i++)
        if (!decode_run(ctx, tokens, pos, seq_ids, seq, depth + i, 1)) return -1;
    return n / (cli_now() - t0);
}

/* Parses "0,512,4096" into depths; false (with a message) on anything else. */
static bool parse_depths(const char *v, long long *depths, int *n) {
    *n = 0;
    const char *p = v;
    for (;;) {
        char *end = NULL;
        long long d = strtoll(p, &end, 10);
        if (end == p || d < 0 || d > (1 << 20) || *n == BENCH_MAX_DEPTHS || (*end && *end != ',')) {
            fprintf(stderr, "tandem: -d wants up to %d comma-separated depths in 0..%d, got '%s'\n", BENCH_MAX_DEPTHS,
                    1 << 20, v);
            return false;
        }
        depths[(*n)++] = d;
        if (!*end) return true;
        p = end + 1;
    }
}

/* Bytes of weights one generated token reads: every group's (a mixture of experts' layer reads only the experts a
 * token chooses; of the embedding table one row, counted 0, but all of it where it doubles as the output head). */
static uint64_t weight_bytes_per_token(tnd_model *m) {
    uint64_t total = 0;
    for (int32_t g = 0; g < tnd_model_n_groups(m); g++) {
        tnd_group_info gi;
        if (tnd_model_group(m, g, &gi) == TND_OK) total += gi.active_bytes;
    }
    return total;
}

/* Bytes of K and V that generating one token reads per position of context: every layer reads both rows of every
 * position, in the cache's K and V types; 0 if the model cannot be bound. */
static uint64_t kv_bytes_per_position(tnd_model *m, const cli_kv_types *kv) {
    double bytes = 0;
    for (int32_t g = 0; g < tnd_model_n_groups(m); g++) {
        tnd_group_info gi;
        if (tnd_model_group(m, g, &gi) == TND_OK)
            bytes += (double)gi.kv_values_per_token / 2 * (cli_kv_value_bytes(kv->k) + cli_kv_value_bytes(kv->v));
    }
    return (uint64_t)bytes;
}

static double per_token_ms(double seconds, long long tokens) { return tokens > 0 ? seconds * 1e3 / (double)tokens : 0; }

static double gbs(uint64_t bytes, double seconds) { return seconds > 0 ? (double)bytes / seconds / 1e9 : 0; }

static int usage(FILE *f) {
    fprintf(f, "usage: tandem bench -m MODEL [-p 512] [-n 128] [-t THREADS] [-r 3] [-d DEPTH[,DEPTH...]] [--json]\n"
               "  -d  context depths: tokens already in the cache before each pp and tg run (default 0)\n"
               "speculative decoding: tg with and without it, alternating (the options below, and\n"
               "  --spec-prompt TEXT / --spec-prompt-file FILE: the prompt, default \"Once upon a time\")\n");
    cli_kv_usage(f);
    cli_plan_usage(f);
    cli_spec_usage(f);
    return f == stdout ? 0 : 2;
}

int tnd_cmd_bench(int argc, char **argv) {
    const char *model_path = NULL;
    long long n_prompt = 512, n_gen = 128, threads = 0, reps = 3, depths[BENCH_MAX_DEPTHS] = {0};
    int n_depths = 1;
    bool json = false;
    cli_plan_options po;
    cli_plan_defaults(&po);
    cli_kv_types kv;
    cli_kv_defaults(&kv);
    int32_t *groups = NULL;
    cli_spec_options spec;
    cli_spec_defaults(&spec);
    const char *spec_prompt = "Once upon a time";
    char *spec_prompt_file = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) return usage(stdout);
        int placement = cli_plan_parse(&po, argc, argv, &i);
        if (placement == 0) placement = cli_kv_parse(&kv, argc, argv, &i);
        if (placement == 0) placement = cli_spec_parse(&spec, argc, argv, &i);
        if (placement < 0) return 2;
        if (placement) continue;
        if (!strcmp(a, "--json")) {
            json = true;
            continue;
        }
        if (strcmp(a, "-m") && strcmp(a, "-p") && strcmp(a, "-n") && strcmp(a, "-t") && strcmp(a, "-r") &&
            strcmp(a, "-d") && strcmp(a, "--spec-prompt") && strcmp(a, "--spec-prompt-file")) {
            fprintf(stderr, "tandem: unknown option '%s'\n", a);
            return usage(stderr);
        }
        if (!(v = cli_value(argc, argv, &i))) return 2;
        if (!strcmp(a, "-m"))
            model_path = v;
        else if (!strcmp(a, "-p") && !cli_int("-p", v, 0, 1 << 16, &n_prompt))
            return 2;
        else if (!strcmp(a, "-n") && !cli_int("-n", v, 0, 1 << 16, &n_gen))
            return 2;
        else if (!strcmp(a, "-t") && !cli_int("-t", v, 0, 1024, &threads))
            return 2;
        else if (!strcmp(a, "-r") && !cli_int("-r", v, 1, BENCH_MAX_REPS, &reps))
            return 2;
        else if (!strcmp(a, "-d") && !parse_depths(v, depths, &n_depths))
            return 2;
        else if (!strcmp(a, "--spec-prompt"))
            spec_prompt = v;
        else if (!strcmp(a, "--spec-prompt-file")) {
            free(spec_prompt_file);
            size_t len = 0;
            if (!(spec_prompt_file = cli_read_file(v, &len))) return 1;
            spec_prompt = spec_prompt_file;
        }
    }
    if (!model_path) return usage(stderr);
    int n_threads = threads ? (int)threads : tnd_physical_cores();
    if (spec.params.source != TND_DRAFT_NONE) {
        int spec_rc = cli_bench_speculation(model_path, &spec, spec_prompt, (int32_t)(n_gen ? n_gen : 128), n_threads,
                                            (int32_t)reps, json);
        free(spec_prompt_file);
        return spec_rc;
    }
    free(spec_prompt_file);
    int rc = 1;
    tnd_context *ctx = NULL;
    long long max_depth = 0, cache = 0;
    int32_t n_run = (int32_t)(n_prompt > n_gen ? n_prompt : n_gen), block = tnd_context_default_params().kv_block_size;
    for (int i = 0; i < n_depths; i++) {
        max_depth = depths[i] > max_depth ? depths[i] : max_depth;
        cache += (depths[i] + n_run + block) / block * block; /* each depth's sequence, in whole blocks */
    }
    int32_t longest = (int32_t)(n_run + max_depth);
    int32_t n_batch = (int32_t)(n_prompt > 0 ? n_prompt : 512);
    int32_t *tokens = malloc(sizeof(int32_t) * (size_t)(longest + 1)),
            *pos = malloc(sizeof(int32_t) * (size_t)(longest + 1)),
            *seq_ids = malloc(sizeof(int32_t) * (size_t)(longest + 1));
    double pp[BENCH_MAX_DEPTHS][BENCH_MAX_REPS], tg[BENCH_MAX_DEPTHS][BENCH_MAX_REPS];
    stats spp[BENCH_MAX_DEPTHS], stg[BENCH_MAX_DEPTHS];
    tnd_model *m = cli_open_model(model_path);
    if (!m || !tokens || !pos || !seq_ids) goto cleanup;
    tnd_context_params p = tnd_context_default_params();
    p.n_ctx = (int32_t)cache;
    p.n_seq_max = n_depths;
    p.n_batch = n_batch;
    p.n_threads = n_threads;
    cli_kv_apply(&kv, &p);
    if (!cli_plan_make(&po, m, &p, &groups)) goto cleanup;
    if (!json) cli_load_progress(&p);
    double t_load = cli_now();
    if (tnd_context_init(m, &p, &ctx) != TND_OK) {
        cli_error(model_path);
        goto cleanup;
    }
    t_load = cli_now() - t_load;
    int32_t n_vocab = tnd_model_n_vocab(m);
    uint64_t seed = 12345;
    for (int32_t i = 0; i <= longest; i++) { /* deterministic pseudo-random token ids */
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        tokens[i] = (int32_t)((seed >> 33) % (uint64_t)n_vocab);
    }
    double bandwidth = tnd_device_measure_bandwidth(0, n_threads) / 1e9; /* GB/s, with the context's threads */
    for (int di = 0; di < n_depths; di++) { /* each depth's context, then one warm-up of pp and of tg */
        int32_t depth = (int32_t)depths[di];
        if (depth > 0 && !json) fprintf(stderr, "tandem: filling %d tokens of context\n", depth);
        if (!fill_context(ctx, tokens, pos, seq_ids, di, depth, n_batch) ||
            (n_prompt && run_pp(ctx, tokens, pos, seq_ids, di, depth, (int32_t)n_prompt) < 0) ||
            (n_gen && run_tg(ctx, tokens, pos, seq_ids, di, depth, n_gen < 4 ? (int32_t)n_gen : 4) < 0)) {
            cli_error("decode");
            goto cleanup;
        }
    }
    tnd_context_profile prof[BENCH_MAX_DEPTHS] = {{0}}; /* of the tg runs at each depth */
    tnd_expert_cache_stats hot = {0}, step;             /* the hot-expert cache in all the tg runs */
    for (int r = 0; r < reps; r++) /* the repetitions go round the depths, alternating pp and tg */
        for (int di = 0; di < n_depths; di++) {
            int32_t depth = (int32_t)depths[di];
            pp[di][r] = n_prompt ? run_pp(ctx, tokens, pos, seq_ids, di, depth, (int32_t)n_prompt) : 0;
            tnd_context_profile before, after;
            tnd_context_profile_get(ctx, &before, 1);
            tnd_context_expert_cache_stats(ctx, &step, 1);
            tg[di][r] = n_gen ? run_tg(ctx, tokens, pos, seq_ids, di, depth, (int32_t)n_gen) : 0;
            tnd_context_profile_get(ctx, &after, 1);
            tnd_context_expert_cache_stats(ctx, &step, 1);
            hot.pairs += step.pairs;
            hot.hits += step.hits;
            hot.swaps += step.swaps;
            hot.bytes_moved += step.bytes_moved;
            prof[di].matmul_seconds += after.matmul_seconds;
            prof[di].attention_seconds += after.attention_seconds;
            prof[di].matmul_bytes += after.matmul_bytes;
            prof[di].attention_bytes += after.attention_bytes;
            prof[di].link_seconds += after.link_seconds;
            prof[di].link_compute_seconds += after.link_compute_seconds;
            prof[di].link_stages += after.link_stages;
            if (pp[di][r] < 0 || tg[di][r] < 0) {
                cli_error("decode");
                goto cleanup;
            }
        }
    for (int di = 0; di < n_depths; di++) {
        spp[di] = summarize(pp[di], (int)reps);
        stg[di] = summarize(tg[di], (int)reps);
    }
    uint64_t wbytes = weight_bytes_per_token(m), kv_pos = kv_bytes_per_position(m, &kv);
    double roof = bandwidth > 0 ? bandwidth * 1e9 / (double)wbytes : 0;
    /* at depth d the generated tokens also read the cache: d + n_gen / 2 positions on average */
    double roof_at[BENCH_MAX_DEPTHS];
    for (int di = 0; di < n_depths; di++)
        roof_at[di] = bandwidth > 0
                          ? bandwidth * 1e9 / ((double)wbytes + (double)kv_pos * ((double)depths[di] + n_gen / 2.0))
                          : 0;
    const char *name = "";
    size_t name_len = 0;
    tnd_model_meta_string(m, "general.name", &name, &name_len);
    if (json) {
        /* the first depth's figures at the top level; every depth in "runs" */
        double pct = roof_at[0] > 0 ? 100.0 * stg[0].median / roof_at[0] : 0;
        printf("{\"model\": \"%s\", \"file_bytes\": %llu, \"weight_bytes_per_token\": %llu, \"threads\": %d, "
               "\"repetitions\": %lld, \"bandwidth_gbs\": %.2f, "
               "\"pp\": {\"tokens\": %lld, \"tps_median\": %.2f, \"tps_min\": %.2f, \"tps_max\": %.2f}, "
               "\"tg\": {\"tokens\": %lld, \"tps_median\": %.2f, \"tps_min\": %.2f, \"tps_max\": %.2f}, "
               "\"kv_bytes_per_position\": %llu, \"tg_roofline_tps\": %.2f, \"tg_roofline_pct\": %.1f, ",
               model_path, (unsigned long long)tnd_model_file_size(m), (unsigned long long)wbytes, n_threads, reps,
               bandwidth, n_prompt, spp[0].median, spp[0].min, spp[0].max, n_gen, stg[0].median, stg[0].min, stg[0].max,
               (unsigned long long)kv_pos, roof_at[0], pct);
        if (p.expert_cache_slots)
            printf("\"expert_cache\": {\"slots\": %d, \"policy\": \"%s\", \"tg_pairs\": %llu, \"tg_hits\": %llu, "
                   "\"tg_swaps\": %llu, \"tg_bytes_moved\": %llu}, ", p.expert_cache_slots,
                   p.expert_cache_policy == TND_EXPERT_CACHE_LRU ? "lru" : "lfu", (unsigned long long)hot.pairs,
                   (unsigned long long)hot.hits, (unsigned long long)hot.swaps,
                   (unsigned long long)hot.bytes_moved);
        printf("\"runs\": [");
        for (int di = 0; di < n_depths; di++)
            printf("%s{\"depth\": %lld, \"pp\": {\"tps_median\": %.2f, \"tps_min\": %.2f, \"tps_max\": %.2f}, "
                   "\"tg\": {\"tps_median\": %.2f, \"tps_min\": %.2f, \"tps_max\": %.2f}, "
                   "\"tg_roofline_tps\": %.2f, \"tg_roofline_pct\": %.1f, \"tg_attention_ms_per_token\": %.3f, "
                   "\"tg_attention_gbs\": %.2f, \"tg_matmul_ms_per_token\": %.3f, \"tg_matmul_gbs\": %.2f}",
                   di ? ", " : "", depths[di], spp[di].median, spp[di].min, spp[di].max, stg[di].median, stg[di].min,
                   stg[di].max, roof_at[di], roof_at[di] > 0 ? 100.0 * stg[di].median / roof_at[di] : 0,
                   per_token_ms(prof[di].attention_seconds, n_gen * reps), gbs(prof[di].attention_bytes,
                   prof[di].attention_seconds), per_token_ms(prof[di].matmul_seconds, n_gen * reps),
                   gbs(prof[di].matmul_bytes, prof[di].matmul_seconds));
        printf("]}\n");
    } else {
        printf("model      %s (%.*s)\nweights    %.1f MiB read per token, %d threads, %lld repetitions, load %.2f s\n"
               "bandwidth  %.1f GB/s read (measured now) -> roofline %.1f tokens/s\n\n",
               model_path, (int)name_len, name, (double)wbytes / 1048576.0, n_threads, reps, t_load, bandwidth, roof);
        printf("%-14s %10s %10s %10s %10s\n", "test", "t/s", "min", "max", "roofline");
        for (int di = 0; di < n_depths; di++) {
            char at[32] = "";
            if (depths[di]) snprintf(at, sizeof at, " @ d%lld", depths[di]);
            char label[48];
            snprintf(label, sizeof label, "pp%lld%s", n_prompt, at);
            if (n_prompt)
                printf("%-14s %10.2f %10.2f %10.2f %10s\n", label, spp[di].median, spp[di].min, spp[di].max, "");
            snprintf(label, sizeof label, "tg%lld%s", n_gen, at);
            if (n_gen)
                printf("%-14s %10.2f %10.2f %10.2f %9.1f%%\n", label, stg[di].median, stg[di].min, stg[di].max,
                       roof_at[di] > 0 ? 100.0 * stg[di].median / roof_at[di] : 0);
        }
        if (n_gen) {
            printf("\nper generated token  matmul ms (GB/s of weights)   attention ms (GB/s of K and V)\n");
            for (int di = 0; di < n_depths; di++)
                printf("tg @ d%-13lld %9.3f (%6.1f)              %9.3f (%6.1f)\n", depths[di],
                       per_token_ms(prof[di].matmul_seconds, n_gen * reps),
                       gbs(prof[di].matmul_bytes, prof[di].matmul_seconds),
                       per_token_ms(prof[di].attention_seconds, n_gen * reps),
                       gbs(prof[di].attention_bytes, prof[di].attention_seconds));
            if (p.expert_cache_slots && hot.pairs) /* the hot-expert cache over the tg runs */
                printf("\nhot-expert cache   %d experts of each layer (%s): %.1f%% of the pairs hit, %.2f experts "
                       "copied in per token (%.2f MB)\n", p.expert_cache_slots,
                       p.expert_cache_policy == TND_EXPERT_CACHE_LRU ? "lru" : "lfu",
                       100.0 * (double)hot.hits / (double)hot.pairs, (double)hot.swaps / (double)(n_gen * reps),
                       (double)hot.bytes_moved / 1e6 / (double)(n_gen * reps));
            if (prof[0].link_stages) { /* a cloud's stages: what the device waited, the cloud's compute, the rest */
                printf("\nper generated token  cloud stage ms: waited   of it computing   the link (network, "
                       "protocol, crypto)\n");
                for (int di = 0; di < n_depths; di++) {
                    double wait = per_token_ms(prof[di].link_seconds, n_gen * reps),
                           compute = per_token_ms(prof[di].link_compute_seconds, n_gen * reps);
                    printf("tg @ d%-13lld %24.3f %17.3f %18.3f\n", depths[di], wait, compute, wait - compute);
                }
            }
        }
    }
    rc = 0;
cleanup:
    tnd_context_free(ctx);
    tnd_model_close(m);
    free(tokens);
    free(pos);
    free(seq_ids);
    free(groups);
    return rc;
}
