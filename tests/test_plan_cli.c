/* test_plan_cli.c: placement from the command line: `tandem plan` prints the plan and writes the file `--plan`
 * reads; a run placed on two devices, by the file, by --device or by --override-tensor, prints the same greedy text
 * as one device, on the CPU and on a Vulkan GPU; the automatic plan picks a GPU only where it is measured faster;
 * bad devices, patterns and files are refused with a message naming them. */
#include "harness.h"

#include "tandem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Runs a shell command with stderr joined to stdout; returns the exit status. */
static int capture(const char *cmd, char *out, size_t cap) {
    char full[4096];
    snprintf(full, sizeof full, "%s 2>&1", cmd);
    return tnd_test_run(full, out, cap);
}

static char model[1024], dir[] = "/tmp/tnd_plan_XXXXXX";

/* The greedy continuation of "Once upon a time" with extra options. */
static int run_with(const char *options, char *out, size_t cap) {
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "%s run -m '%s' -p 'Once upon a time' -n 48 --temp 0 -t 1 %s 2>/dev/null",
             TND_TANDEM_BIN, model, options);
    return tnd_test_run(cmd, out, cap);
}

int main(void) {
    snprintf(model, sizeof model, "%s", tnd_fixture("real/stories260K.gguf"));
    if (!CHECK(mkdtemp(dir) != NULL)) return tnd_test_finish("plan_cli");
    setenv("XDG_CACHE_HOME", dir, 1); /* the measured bandwidth is kept here, not in the user's cache */
    char cmd[2048], out[16384], want[4096], got[4096];

    /* the table: every group, both devices, a time per token */
    snprintf(cmd, sizeof cmd, "%s plan -m '%s' --device cpu,cpu -t 1", TND_TANDEM_BIN, model);
    CHECK(capture(cmd, out, sizeof out) == 0);
    CHECK(strstr(out, "token_embd") && strstr(out, "blk.4.ffn") && strstr(out, "output") && strstr(out, "cpu1") &&
          strstr(out, "ms/token"));

    /* the file, with the feed-forward of every layer moved to the second device */
    char plan_file[256];
    snprintf(plan_file, sizeof plan_file, "%s/plan.json", dir);
    snprintf(cmd, sizeof cmd, "%s plan -m '%s' --device cpu,cpu -ot 'ffn_up=cpu1' --json > '%s'", TND_TANDEM_BIN, model,
             plan_file);
    CHECK(system(cmd) == 0);
    size_t len = 0;
    char *json = (char *)tnd_test_read_file(plan_file, &len);
    CHECK(json && strstr(json, "\"blk.0.ffn\": \"cpu1\"") && strstr(json, "\"blk.0.attn\": \"cpu0\""));
    free(json);

    /* --cpu-moe and --n-cpu-moe: the feed-forward groups of expert layers (all, or the first N) on cpu0, whatever
     * the split; a model without experts is left as it was, with a note */
    char moe[1024];
    snprintf(moe, sizeof moe, "%s", tnd_fixture("models/qwen2moe-tiny-q8_0.gguf"));
    snprintf(cmd, sizeof cmd, "%s plan -m '%s' --device cpu,cpu --cpu-moe --json", TND_TANDEM_BIN, moe);
    CHECK(capture(cmd, out, sizeof out) == 0 && strstr(out, "\"blk.0.ffn\": \"cpu0\"") &&
          strstr(out, "\"blk.1.ffn\": \"cpu0\"") && strstr(out, "\"blk.1.attn\": \"cpu1\""));
    snprintf(cmd, sizeof cmd, "%s plan -m '%s' --device cpu,cpu --n-cpu-moe 1 -ot 'blk.0.attn=cpu1' --json",
             TND_TANDEM_BIN, moe);
    CHECK(capture(cmd, out, sizeof out) == 0 && strstr(out, "\"blk.0.ffn\": \"cpu0\"") &&
          strstr(out, "\"blk.1.ffn\": \"cpu1\"") && strstr(out, "\"blk.0.attn\": \"cpu1\""));
    snprintf(cmd, sizeof cmd, "%s plan -m '%s' --device cpu,cpu --cpu-moe", TND_TANDEM_BIN, model);
    CHECK(capture(cmd, out, sizeof out) == 0 && strstr(out, "no experts") && strstr(out, "blk.4.ffn        cpu1"));

    /* a cloud alone in --device gets the middle: the embedding, the first and last layers (2 of this model's 5 at
     * each end, as it leaves the cloud one) and the output head stay here */
    snprintf(cmd, sizeof cmd, "%s plan -m '%s' --device remote:127.0.0.1:1 --insecure --json", TND_TANDEM_BIN, model);
    CHECK(capture(cmd, out, sizeof out) == 0 && strstr(out, "\"remote:127.0.0.1:1\"") &&
          strstr(out, "\"token_embd\": \"cpu0\"") && strstr(out, "\"blk.1.ffn\": \"cpu0\"") &&
          strstr(out, "\"blk.2.attn\": \"remote0\"") && strstr(out, "\"blk.2.ffn\": \"remote0\"") &&
          strstr(out, "\"blk.3.attn\": \"cpu1\"") && strstr(out, "\"output\": \"cpu1\""));
    snprintf(cmd, sizeof cmd, "%s plan -m '%s' --device remote:127.0.0.1:1", TND_TANDEM_BIN, model);
    CHECK(capture(cmd, out, sizeof out) != 0 && strstr(out, "--remote-key"));

    /* the same text on one device and on every placement */
    CHECK(run_with("", want, sizeof want) == 0 && strlen(want) > 40);
    char options[512];
    snprintf(options, sizeof options, "--plan '%s'", plan_file);
    const char *placements[] = {options, "--device cpu,cpu", "--device cpu,cpu,cpu -ot 'attn=cpu2' -ot 'token_embd=cpu1'",
                                "-ngl 99"};
    for (size_t i = 0; i < sizeof placements / sizeof placements[0]; i++) {
        bool same = run_with(placements[i], got, sizeof got) == 0 && !strcmp(got, want);
        if (!CHECK(same)) fprintf(stderr, "  %s: got \"%s\", want \"%s\"\n", placements[i], got, want);
    }

    if (tnd_device_count() > 1) { /* a Vulkan device (lavapipe in CI) */
        const char *gpu_placements[] = {"--device vulkan", "--device cpu,vulkan -ot 'ffn=cpu0'", "-ngl 2"};
        for (size_t i = 0; i < sizeof gpu_placements / sizeof gpu_placements[0]; i++) {
            bool same = run_with(gpu_placements[i], got, sizeof got) == 0 && !strcmp(got, want);
            if (!CHECK(same)) fprintf(stderr, "  %s: got \"%s\", want \"%s\"\n", gpu_placements[i], got, want);
        }
        snprintf(cmd, sizeof cmd, "%s plan -m '%s' --device vulkan,cpu -ot 'blk.0=cpu0' --json", TND_TANDEM_BIN, model);
        CHECK(capture(cmd, out, sizeof out) == 0 && strstr(out, "\"vulkan0\",") && strstr(out, "\"cpu\"") &&
              strstr(out, "\"blk.0.ffn\": \"cpu0\"") && strstr(out, "\"blk.1.ffn\": \"vulkan0\""));
        /* the automatic plan: a GPU measured faster than the CPU takes the model (the software driver stands in
         * for a GPU, and the kept measurements say it is ten times faster); -ngl 0 keeps the CPU */
        char cache[1100];
        snprintf(cache, sizeof cache, "mkdir -p '%s/tandem' && echo 500000000000 > '%s/tandem/bandwidth-vulkan0-1t' && "
                 "echo 50000000000 > '%s/tandem/bandwidth-cpu-1t'", dir, dir, dir);
        CHECK(system(cache) == 0);
        setenv("TANDEM_VULKAN_SOFTWARE_IS_GPU", "1", 1);
        snprintf(cmd, sizeof cmd, "%s plan -m '%s' -t 1", TND_TANDEM_BIN, model);
        CHECK(capture(cmd, out, sizeof out) == 0 && strstr(out, "the whole model on vulkan0") &&
              strstr(out, "blk.4.ffn        vulkan0") && !strstr(out, "cpu0"));
        snprintf(cmd, sizeof cmd, "%s plan -m '%s' -t 1 -ngl 0", TND_TANDEM_BIN, model);
        CHECK(capture(cmd, out, sizeof out) == 0 && !strstr(out, "vulkan0") && strstr(out, "blk.4.ffn        cpu0"));
        /* a GPU that cannot take the automatic plan (a KV pool of 141 MB per layer, above the 128 MiB lavapipe
         * binds at once): the CPU takes over, with a note; the same text */
        snprintf(cmd, sizeof cmd, "%s run -m '%s' -p 'Once upon a time' -n 48 --temp 0 -t 1 -c 2200000", TND_TANDEM_BIN,
                 model);
        if (!tnd_device_is_gpu(1)) /* (this process counted before the pretence: the software driver's limit) */
            CHECK(capture(cmd, out, sizeof out) == 0 && strstr(out, "running on the CPU") && strstr(out, want));
        unsetenv("TANDEM_VULKAN_SOFTWARE_IS_GPU");
        snprintf(cmd, sizeof cmd, "%s plan -m '%s' -t 1", TND_TANDEM_BIN, model); /* lavapipe itself: never chosen */
        CHECK(capture(cmd, out, sizeof out) == 0 && !strstr(out, "vulkan0"));
    }

    /* refusals that name the problem */
    static const struct {
        const char *options, *message;
    } bad[] = {{"--device gpu", "unknown device 'gpu'"},
               {"--device vulkan7", "unknown device 'vulkan7'"},
               {"--device cpu,cpu -ot 'ffn=cpu5'", "no device 'cpu5'"},
               {"-ot '(=cpu0'", "bad pattern"},
               {"--plan /nonexistent/plan.json", "--plan /nonexistent/plan.json"},
               {"--device cpu,cpu -ot '.*=cpu0'", "no tensor group"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(cmd, sizeof cmd, "%s run -m '%s' -p 'Hi' -n 2 -t 1 %s", TND_TANDEM_BIN, model, bad[i].options);
        int rc = capture(cmd, out, sizeof out);
        if (!CHECK(rc != 0 && strstr(out, bad[i].message))) fprintf(stderr, "  %s: %d \"%s\"\n", bad[i].options, rc, out);
    }
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0);
    return tnd_test_finish("plan_cli");
}
