/* test_plan_cli.c: placement from the command line: `tandem plan` prints the plan and writes the file `--plan`
 * reads; a run placed on two devices, by the file, by --device or by --override-tensor, prints the same greedy text
 * as one device, on the CPU and on a Vulkan GPU; the automatic plan picks a GPU only where it is measured faster;
 * bad devices, patterns and files are refused with a message naming them. */
#include "harness.h"

#include "tandem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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

/* Keeps figures for device kind `device` with 1 thread in the test's cache, as if measured: the bandwidth, and
 * for every weight type `decode` bytes/s at decode and twice that in operations/s at prefill. */
static void write_speeds(const char *cache_dir, const char *device, double bandwidth, double decode) {
    static const char *const types[] = {"f32", "f16", "bf16", "q4_0", "q4_1", "q5_0", "q5_1", "q8_0",
                                        "q2_K", "q3_K", "q4_K", "q5_K", "q6_K"};
    char path[512];
    snprintf(path, sizeof path, "%s/tandem", cache_dir);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/tandem/speeds-%s-1t", cache_dir, device);
    FILE *f = fopen(path, "w");
    if (!CHECK(f != NULL)) return;
    fprintf(f, "bandwidth %.0f\n", bandwidth);
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) fprintf(f, "%s %.0f %.0f\n", types[i], decode, 2 * decode);
    fclose(f);
}

int main(void) {
    snprintf(model, sizeof model, "%s", tnd_fixture("real/stories260K.gguf"));
    if (!CHECK(mkdtemp(dir) != NULL)) return tnd_test_finish("plan_cli");
    setenv("XDG_CACHE_HOME", dir, 1); /* the measured speeds are kept here, not in the user's cache */
    char cmd[2048], out[16384], want[4096], got[4096];

    /* the table: every group, both devices, a time per token */
    snprintf(cmd, sizeof cmd, "%s plan -m '%s' --device cpu,cpu -t 1", TND_TANDEM_BIN, model);
    CHECK(capture(cmd, out, sizeof out) == 0);
    CHECK(strstr(out, "token_embd") && strstr(out, "blk.4.ffn") && strstr(out, "output") && strstr(out, "cpu1") &&
          strstr(out, "ms/token"));

    /* a device's matmul speed at a weight type, measured; a type tandem does not compute with is refused */
    tnd_matmul_speed speed;
    CHECK_OK(tnd_device_measure_matmul(0, 1, TND_TYPE_Q4_K, &speed));
    CHECK(speed.decode_bytes_per_s > 1e8 && speed.decode_bytes_per_s < 1e13 && speed.prefill_flops > 1e8 &&
          speed.prefill_flops < 1e14);
    CHECK(tnd_device_measure_matmul(0, 1, TND_TYPE_I32, &speed) == TND_ERR_UNSUPPORTED &&
          strstr(tnd_last_error(), "weight type 26"));

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

    /* --experts-on: the experts apart from their group, a cache of some on the group's device; its figures in the
     * bench; what the options refuse */
    snprintf(cmd, sizeof cmd, "%s plan -m '%s' --device cpu,cpu -ot 'blk=cpu1' --experts-on cpu0 --expert-cache 2 -t 1",
             TND_TANDEM_BIN, moe);
    CHECK(capture(cmd, out, sizeof out) == 0 && strstr(out, "blk.1.ffn        cpu1") &&
          strstr(out, "blk.1.experts    cpu0") && strstr(out, "a cache on cpu1: 2 slots") &&
          strstr(out, "holding experts 0 to 1"));
    snprintf(cmd, sizeof cmd, "%s bench -m '%s' -p 8 -n 16 -r 1 -t 1 --device cpu,cpu -ot 'blk=cpu1' --experts-on cpu0 "
             "--expert-cache 1 --expert-cache-policy lru", TND_TANDEM_BIN, moe);
    CHECK(capture(cmd, out, sizeof out) == 0 && strstr(out, "hot-expert cache   1 experts of each layer (lru)"));
    snprintf(cmd, sizeof cmd, "%s bench -m '%s' -p 8 -n 16 -r 1 -t 1 --expert-cache 2", TND_TANDEM_BIN, moe);
    CHECK(capture(cmd, out, sizeof out) != 0 && strstr(out, "--experts-on"));
    snprintf(cmd, sizeof cmd, "%s plan -m '%s' --device cpu,cpu --experts-on vulkan3", TND_TANDEM_BIN, moe);
    CHECK(capture(cmd, out, sizeof out) != 0 && strstr(out, "no such device"));
    snprintf(cmd, sizeof cmd, "%s bench -m '%s' -p 8 -n 16 -r 1 -t 1 --device cpu,cpu -ot 'blk=cpu1' --experts-on cpu0 "
             "--expert-cache 4", TND_TANDEM_BIN, moe);
    CHECK(capture(cmd, out, sizeof out) != 0 && strstr(out, "holds 0 to 3"));

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
        write_speeds(dir, "vulkan0", 500e9, 400e9);
        write_speeds(dir, "cpu", 50e9, 40e9);
        setenv("TANDEM_VULKAN_SOFTWARE_IS_GPU", "1", 1);
        snprintf(cmd, sizeof cmd, "%s plan -m '%s' -t 1", TND_TANDEM_BIN, model);
        CHECK(capture(cmd, out, sizeof out) == 0 && strstr(out, "the whole model on vulkan0") &&
              strstr(out, "blk.4.ffn        vulkan0") && !strstr(out, "cpu0"));
        /* the matmul speeds decide, not the bandwidth: a GPU that reads its memory faster but multiplies by this
         * model's (F32) weights slower keeps the CPU */
        write_speeds(dir, "vulkan0", 500e9, 20e9);
        CHECK(capture(cmd, out, sizeof out) == 0 && !strstr(out, "vulkan0") && strstr(out, "blk.4.ffn        cpu0"));
        write_speeds(dir, "vulkan0", 500e9, 400e9);
        /* `tandem devices` shows the kept figures: the bandwidth and each type's decode GB/s / prompt GFLOP/s */
        snprintf(cmd, sizeof cmd, "%s devices -t 1", TND_TANDEM_BIN);
        CHECK(capture(cmd, out, sizeof out) == 0 && strstr(out, "500.0") && strstr(out, "400.0 / 800") &&
              strstr(out, "40.0 / 80") && strstr(out, "q4_K") && !strstr(out, "measuring"));
        snprintf(cmd, sizeof cmd, "%s plan -m '%s' -t 1 -ngl 0", TND_TANDEM_BIN, model);
        CHECK(capture(cmd, out, sizeof out) == 0 && !strstr(out, "vulkan0") && strstr(out, "blk.4.ffn        cpu0"));
        /* a KV pool of 141 MB per layer, above the 128 MiB lavapipe binds at once: the automatic plan keeps those
         * layers on the CPU, with a note; the same text */
        snprintf(cmd, sizeof cmd, "%s run -m '%s' -p 'Once upon a time' -n 48 --temp 0 -t 1 -c 2200000", TND_TANDEM_BIN,
                 model);
        if (!tnd_device_is_gpu(1)) /* (this process counted before the pretence: the software driver's limit) */
            CHECK(capture(cmd, out, sizeof out) == 0 && strstr(out, "binds at once") && !strstr(out, "running on") &&
                  strstr(out, want));
        /* a mixture of experts larger than the GPU's memory: the dense part and the KV cache there, the experts in
         * the CPU's memory, as many of them cached on the GPU as the rest holds; the plan file keeps it */
        setenv("TANDEM_PLAN_GPU_MEMORY_MB", "2.0", 1);
        snprintf(cmd, sizeof cmd, "%s plan -m '%s' -t 1 -c 64", TND_TANDEM_BIN, moe);
        CHECK(capture(cmd, out, sizeof out) == 0 &&
              strstr(out, "every layer on vulkan0, its experts in the CPU's memory (2 of each layer's 4 cached") &&
              strstr(out, "blk.1.ffn        vulkan0") && strstr(out, "blk.1.experts    cpu0"));
        snprintf(cmd, sizeof cmd, "%s plan -m '%s' -t 1 -c 64 --json > '%s'", TND_TANDEM_BIN, moe, plan_file);
        CHECK(system(cmd) == 0);
        snprintf(cmd, sizeof cmd, "%s run -m '%s' -t 1 -c 64 --plan '%s' -p 'Once upon a time' -n 8 --temp 0",
                 TND_TANDEM_BIN, moe, plan_file);
        CHECK(capture(cmd, out, sizeof out) == 0 && strstr(out, "generation 8 tokens"));
        json = (char *)tnd_test_read_file(plan_file, &len);
        CHECK(json && strstr(json, "\"experts_on\": \"cpu0\"") && strstr(json, "\"expert_cache\": 2"));
        free(json);
        setenv("TANDEM_PLAN_GPU_MEMORY_MB", "1.0", 1); /* not even the dense part: the CPU keeps it all */
        snprintf(cmd, sizeof cmd, "%s plan -m '%s' -t 1 -c 64", TND_TANDEM_BIN, moe);
        CHECK(capture(cmd, out, sizeof out) == 0 && !strstr(out, "vulkan0"));
        unsetenv("TANDEM_PLAN_GPU_MEMORY_MB");
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
