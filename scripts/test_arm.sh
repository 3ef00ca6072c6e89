#!/usr/bin/env bash
# test_arm.sh: cross-compiles the CPU kernel test and the device conformance suite for AArch64 (NEON + dot product)
# with Debian's toolchain and runs them under qemu-user, which emulates a processor with those extensions. Only the
# parts they need are built: the tensor formats, the kernel table and its ISA files, the CPU device, the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
cc=aarch64-linux-gnu-gcc
if ! command -v "$cc" >/dev/null || ! command -v qemu-aarch64 >/dev/null; then
  echo "test_arm: $cc or qemu-aarch64 missing (scripts/setup.sh installs them)" >&2
  exit 1
fi
out=build-arm
mkdir -p "$out"
flags=(-std=c11 -O2 -Wall -Wextra -Werror -Wno-unused-parameter -D_DEFAULT_SOURCE -D_POSIX_C_SOURCE=200809L
       -Iinclude -Isrc -DTND_SHARED_DIR=\"../shared\" -DTND_TANDEM_BIN=\"\")
objs=()
for src in src/core/alloc.c src/core/error.c src/core/log.c src/core/thread_pool.c src/quant/*.c \
           src/backend/cpu/cpu_features.c src/backend/cpu/groups8.c src/backend/cpu/cpu_backend.c \
           src/backend/cpu/cpu_experts.c src/runtime/devices.c tests/harness.c; do
  obj="$out/$(echo "$src" | tr / _).o"
  "$cc" "${flags[@]}" -c "$src" -o "$obj"
  objs+=("$obj")
done
"$cc" "${flags[@]}" -DTND_HAVE_ARM_FILES -c src/backend/cpu/cpu_kernels.c -o "$out/cpu_kernels.o"
"$cc" "${flags[@]}" -march=armv8.2-a+dotprod+fp16 -c src/backend/cpu/arch/arm_neon.c -o "$out/arm_neon.o"
for test in test_cpu_kernels test_backend_ops; do
  "$cc" "${flags[@]}" -c "tests/$test.c" -o "$out/$test.o"
  "$cc" -static -o "$out/$test" "$out/$test.o" "${objs[@]}" "$out/cpu_kernels.o" "$out/arm_neon.o" -lm -lpthread
  # a processor model with NEON, dotprod and fp16 arithmetic
  TANDEM_REQUIRE_VULKAN=0 qemu-aarch64 -cpu max "$out/$test" # the cross build has no Vulkan device
done
