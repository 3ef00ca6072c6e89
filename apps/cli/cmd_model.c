/* cmd_model.c: `tandem model make --shape NAME --type TYPE -o FILE [--seed N] [-t THREADS]`: writes a model of a
 * known architecture shape with random weights, for benchmarks and demos without downloads. */
#include "cli_util.h"
#include "commands.h"

#include "model/model_writer.h"

#include <stdio.h>
#include <string.h>

static int usage(FILE *f) {
    fprintf(f, "usage: tandem model make --shape NAME --type TYPE -o FILE [--seed N] [-t THREADS]\nshapes:\n");
    for (const tnd_model_shape *s = tnd_model_shapes(); s->name; s++) {
        fprintf(f, "  %-18s %s, embd %d, %d layers, %d/%d heads, vocab %d, ", s->name, s->arch, s->n_embd,
                s->n_layer, s->n_head, s->n_head_kv, s->n_vocab);
        if (s->n_expert)
            fprintf(f, "%d experts of ff %d, %d used%s\n", s->n_expert, s->n_ff_exp, s->n_expert_used,
                    s->n_ff_shexp ? ", a shared expert" : "");
        else
            fprintf(f, "ff %d\n", s->n_ff);
    }
    return f == stdout ? 0 : 2;
}

int tnd_cmd_model(int argc, char **argv) {
    if (argc < 2 || strcmp(argv[1], "make")) {
        if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) return usage(stdout);
        fprintf(stderr, "tandem: 'model' needs the action 'make'\n");
        return usage(stderr);
    }
    const char *shape = NULL, *type = "Q4_K_M", *out = NULL;
    long long seed = 1234, threads = 0;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) return usage(stdout);
        if (strcmp(a, "--shape") && strcmp(a, "--type") && strcmp(a, "-o") && strcmp(a, "--seed") && strcmp(a, "-t")) {
            fprintf(stderr, "tandem: unknown option '%s'\n", a);
            return usage(stderr);
        }
        const char *v = cli_value(argc, argv, &i);
        if (!v) return 2;
        if (!strcmp(a, "--shape")) shape = v;
        else if (!strcmp(a, "--type")) type = v;
        else if (!strcmp(a, "-o")) out = v;
        else if (!strcmp(a, "--seed") && !cli_int("--seed", v, 0, INT64_MAX, &seed)) return 2;
        else if (!strcmp(a, "-t") && !cli_int("-t", v, 0, 1024, &threads)) return 2;
    }
    if (!shape || !out) return usage(stderr);
    tnd_ftype ftype;
    if (tnd_ftype_parse(type, &ftype) != TND_OK) {
        fprintf(stderr, "tandem: %s\n", tnd_last_error());
        return 2;
    }
    double t0 = cli_now();
    if (tnd_model_make(shape, ftype, (uint64_t)seed, out, (int)threads, cli_progress, NULL) != TND_OK) {
        fprintf(stderr, "\ntandem: model make: %s\n", tnd_last_error());
        return 1;
    }
    fprintf(stderr, "tandem: wrote %s (%s, %s) in %.1f s\n", out, shape, tnd_ftype_name(ftype), cli_now() - t0);
    return 0;
}
