#!/usr/bin/env bash
# gpu_check.sh: the CUDA device's checks on a machine with an NVIDIA GPU, in one go (a few minutes):
#   1. the conformance suite (test_backend_ops) with cuda0 as the device under test;
#   2. fixture models' logits on cuda0 alone and split with the CPU, against the exact references (gpu_models);
#   3. the real stories260K model's published greedy text on cuda0 and split with the CPU;
#   4. `tandem bench` on TinyLlama-1.1B- and Qwen2.5-0.5B-shaped Q4_0 and Q4_K_M files it makes itself;
# 1 to 4 twice: as built ("plain"), and with the speed work that is off until shown here ("fast": decode steps as
# CUDA graphs, TANDEM_CUDA_GRAPHS=1, and int8 matmuls, TANDEM_CUDA_INT8=1).
#
#   scripts/gpu_check.sh bundle   on a build machine (nvcc and the packages of scripts/setup.sh): builds the programs
#                                 for the GPU (TND_CUDA_ARCHITECTURES, default 90-real: H100, H200) into .gpu/ with
#                                 the shared libraries they need beyond the C library and the fixtures the checks
#                                 read, so that a bare GPU machine needs nothing else (about 60 MB)
#   scripts/gpu_check.sh [OUT]    on the GPU machine: the checks, with the bundle, or building here where there is
#                                 none; logs and a summary go to OUT (default gpu-check/)
# Every check runs under a time limit; the script goes on after a failed one and exits non-zero if any failed.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

# Fixtures of the checks: every weight type through a whole model, the three architectures, a mixture of experts,
# and the two models of the KV-type checks (llama-tiny-f32, qwen3-tiny-f32).
models="llama-tiny-f32 llama-tiny-f16 llama-tiny-bf16 llama-tiny-q8_0 llama-tiny-q4_0 llama-tiny-q4_1 llama-tiny-q5_0
        llama-tiny-q5_1 llama-tiny-q2_k llama-tiny-q3_k_m llama-tiny-q4_k_m llama-tiny-q5_k_m llama-tiny-q6_k
        llama3-tiny-q4_k_m qwen2-tiny-q4_k_m qwen3-tiny-f32 qwen2moe-tiny-f32"

if [ "${1:-}" = bundle ]; then
  set -e
  shared=${TND_SHARED_DIR:-$root/../shared}
  archs=${TND_CUDA_ARCHITECTURES:-90-real}
  cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DTND_CUDA=ON -DTND_CUDA_ARCHITECTURES="$archs" >/dev/null
  cmake --build build-gpu -j "$(nproc)" --target tandem test_backend_ops gpu_models
  [ -d build-gpu/CMakeFiles/tandem_objs.dir/src/backend/cuda ] || { echo "gpu_check: no nvcc here" >&2; exit 1; }
  rm -rf .gpu
  mkdir -p .gpu/bin .gpu/lib .gpu/shared/fixtures/models .gpu/shared/fixtures/real
  cp build-gpu/tandem build-gpu/tests/test_backend_ops build-gpu/tests/gpu_models .gpu/bin/
  # the libraries beyond the C and C++ runtimes, which the GPU machine has in versions at least as new
  ldd .gpu/bin/tandem | awk '/=> \// {print $3}' |
    { grep -Ev '/(libc|libm|libdl|libpthread|librt|libstdc\+\+|libgcc_s)\.so' || true; } | xargs -r cp -L -t .gpu/lib/
  for m in $models; do cp "$shared/fixtures/models/$m.gguf" "$shared/fixtures/models/$m.ref-exact.logits.f32" \
                          .gpu/shared/fixtures/models/; done
  cp "$shared/fixtures/real/stories260K.gguf" "$shared/fixtures/real/stories260K.greedy256.txt" .gpu/shared/fixtures/real/
  echo "gpu_check: bundle in .gpu/ ($(du -sh .gpu | cut -f1)), for CUDA architectures $archs"
  exit 0
fi

out=${1:-gpu-check}
mkdir -p "$out"
out=$(cd "$out" && pwd)
summary="$out/summary.txt"
: >"$summary"
failures=0

# Runs a named check under a time limit, its output into OUT/NAME.log; notes the result in the summary.
check() {
  local name=$1 limit=$2
  shift 2
  local t0=$(date +%s)
  timeout "$limit" "$@" >"$out/$name.log" 2>&1
  local rc=$?
  local result="passed"
  [ $rc -eq 0 ] || { result="FAILED (exit $rc)"; failures=$((failures + 1)); }
  echo "$name: $result in $(( $(date +%s) - t0 )) s" | tee -a "$summary"
}

if [ -x .gpu/bin/tandem ]; then
  bin=.gpu/bin
  test_bin=.gpu/bin
  export LD_LIBRARY_PATH="$root/.gpu/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  export TND_SHARED_DIR="$root/.gpu/shared"
else
  check build 900 bash -c "cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DTND_CUDA=ON \
    -DTND_CUDA_ARCHITECTURES=native && cmake --build build-gpu -j $(nproc) --target tandem test_backend_ops gpu_models"
  bin=build-gpu
  test_bin=build-gpu/tests
fi
shared=${TND_SHARED_DIR:-$root/../shared}
export TANDEM_REQUIRE_CUDA=1 XDG_CACHE_HOME="$out/cache"

{ nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.max.mem --format=csv 2>&1 || true; } \
  >"$out/gpu.txt"
cat "$out/gpu.txt" | tee -a "$summary"
TANDEM_CUDA_GRAPHS=0 TANDEM_CUDA_INT8=0 check devices 120 "$bin/tandem" devices
published="$shared/fixtures/real/stories260K.greedy256.txt"
# Sets the speed switches of a configuration: plain or fast.
configure() {
  local on=0
  [ "$1" = fast ] && on=1
  export TANDEM_CUDA_GRAPHS=$on TANDEM_CUDA_INT8=$on
}

for config in plain fast; do
  configure $config
  check "conformance-$config" 600 "$test_bin/test_backend_ops"
  # shellcheck disable=SC2086
  check "models-$config" 300 "$test_bin/gpu_models" cuda $models
  for place in "--device cuda0" "--device cpu,cuda0"; do # (tandem's errors go to the log; its exit status counts)
    name="greedy$(echo "$place" | tr -d ' -')-$config"
    check "$name" 120 bash -c "set -o pipefail; '$bin/tandem' run -m '$shared/fixtures/real/stories260K.gguf' -p '' \
      -n 256 --temp 0 $place | perl -0777 -pe 's/\\A[ \\n]+//' | cmp - '$published'"
  done
done

# speed: files of the common shapes, made here (random weights of the real shapes; the type mix of llama.cpp's
# quantizer, Q5_0 where a width is not a multiple of 256)
files=/tmp/tandem-gpu-check
mkdir -p $files
for shape in tinyllama-1.1b qwen2.5-0.5b; do
  for type in q4_0 q4_k_m; do
    f="$files/$shape-$type.gguf"
    [ -f "$f" ] || check "make-$shape-$type" 300 "$bin/tandem" model make --shape "$shape" --type "$type" -o "$f"
    for config in plain fast; do
      configure $config
      name="bench-$shape-$type-$config"
      check "$name" 300 "$bin/tandem" bench -m "$f" -p 512 -n 128 -r 3 --device cuda0
      grep -E '^(pp|tg)[0-9]' "$out/$name.log" | sed "s/^/  $shape $type $config: /" | tee -a "$summary"
    done
  done
done
echo "gpu_check: $failures failed; logs in $out/" | tee -a "$summary"
[ $failures -eq 0 ]
