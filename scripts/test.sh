#!/usr/bin/env bash
# test.sh: set up, build and run the whole test suite. `--sanitize` builds and runs it under ASan + UBSan instead;
# `--tsan` builds with ThreadSanitizer and runs the tests whose threads share a pool, a model, a server or a cloud link.
# The release build compiles the CUDA device where nvcc is (it runs only on a GPU: scripts/gpu_check.sh); the
# sanitizer builds leave it out, as nothing here runs it.
set -euo pipefail
cd "$(dirname "$0")/.."

mode=release
[ "${1:-}" = "--sanitize" ] && mode=sanitize
[ "${1:-}" = "--tsan" ] && mode=tsan

bash scripts/setup.sh
jobs=$(nproc)
# setup.sh installs a software Vulkan driver (lavapipe): the Vulkan device's tests must run, not skip
export TANDEM_REQUIRE_VULKAN=1
if [ "$mode" = sanitize ]; then
  dir=build-asan
  cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTND_SANITIZE=ON -DTND_WERROR=ON -DTND_CUDA=OFF \
    -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ >/dev/null
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
elif [ "$mode" = tsan ]; then
  dir=build-tsan
  cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTND_SANITIZE_THREAD=ON -DTND_WERROR=ON -DTND_CUDA=OFF \
    -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ >/dev/null
  export TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1
else
  dir=build
  cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=Release -DTND_WERROR=ON >/dev/null
fi
cmake --build "$dir" -j "$jobs"
if [ "$mode" = tsan ]; then
  ctest --test-dir "$dir" --output-on-failure -j "$jobs" -R 'test_thread_pool|test_concurrency|test_server_batching|test_remote$'
  exit 0
fi
ctest --test-dir "$dir" --output-on-failure -j "$jobs"
# the AArch64 kernels (NEON + dot product), cross-compiled and run under qemu-user
if [ "$mode" = release ]; then bash scripts/test_arm.sh; fi
