/* cmd_quantize.c: `tandem quantize IN.gguf OUT.gguf TYPE [-t THREADS]`: rewrites a model with a file type's recipe
 * (Q4_0, Q4_K_M, Q8_0, ...). */
#include "cli_util.h"
#include "commands.h"

#include "model/model_writer.h"

#include <stdio.h>
#include <string.h>

static int usage(FILE *f) {
    fprintf(f, "usage: tandem quantize IN.gguf OUT.gguf TYPE [-t THREADS]\n"
               "TYPE: F32 F16 BF16 Q8_0 Q4_0 Q4_1 Q5_0 Q5_1 Q2_K Q3_K_S Q3_K_M Q3_K_L Q4_K_S Q4_K_M Q5_K_S Q5_K_M Q6_K\n");
    return f == stdout ? 0 : 2;
}

int tnd_cmd_quantize(int argc, char **argv) {
    const char *pos[3] = {0};
    int n_pos = 0;
    long long threads = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) return usage(stdout);
        if (!strcmp(argv[i], "-t")) {
            const char *v = cli_value(argc, argv, &i);
            if (!v || !cli_int("-t", v, 0, 1024, &threads)) return 2;
        } else if (n_pos < 3 && argv[i][0] != '-') {
            pos[n_pos++] = argv[i];
        } else {
            fprintf(stderr, "tandem: unexpected argument '%s'\n", argv[i]);
            return usage(stderr);
        }
    }
    if (n_pos != 3) return usage(stderr);
    tnd_ftype ftype;
    if (tnd_ftype_parse(pos[2], &ftype) != TND_OK) {
        fprintf(stderr, "tandem: %s\n", tnd_last_error());
        return 2;
    }
    double t0 = cli_now();
    if (tnd_quantize_file(pos[0], pos[1], ftype, (int)threads, cli_progress, NULL) != TND_OK) {
        fprintf(stderr, "\ntandem: quantize: %s\n", tnd_last_error());
        return 1;
    }
    fprintf(stderr, "tandem: wrote %s (%s) in %.1f s\n", pos[1], tnd_ftype_name(ftype), cli_now() - t0);
    return 0;
}
