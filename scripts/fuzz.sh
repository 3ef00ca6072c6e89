#!/usr/bin/env bash
# fuzz.sh TARGET SECONDS: builds the libFuzzer targets (clang, ASan+UBSan) and runs TARGET (gguf, tokenizer, ...)
# for SECONDS on one core with a seed corpus. Crashes land in fuzz/crashes/; the last lines give executions.
set -euo pipefail
cd "$(dirname "$0")/.."
target=${1:?usage: fuzz.sh TARGET SECONDS}
seconds=${2:-60}
bash scripts/setup.sh >/dev/null
# the library itself is instrumented too, so that coverage guides the fuzzer through the parser
cmake -S . -B build-fuzz -G Ninja -DTND_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_C_FLAGS="-fsanitize=fuzzer-no-link,address,undefined" \
  -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ >/dev/null
cmake --build build-fuzz -j2 --target "fuzz_$target" >/dev/null
corpus=fuzz/corpus-run/$target
mkdir -p "$corpus" fuzz/crashes
if [ "$target" = gguf ]; then
  cmake --build build-fuzz --target gguf_seeds >/dev/null
  ./build-fuzz/fuzz/gguf_seeds "$corpus"
fi
# the fixtures' own test vectors seed text-driven targets
if [ -d ../shared/fixtures/vocab ] && [ "$target" = tokenizer ]; then
  cp -n ../shared/fixtures/vocab/*.inp "$corpus"/ 2>/dev/null || true
fi
./build-fuzz/fuzz/"fuzz_$target" "$corpus" -max_total_time="$seconds" -max_len=65536 -rss_limit_mb=4096 \
  -artifact_prefix=fuzz/crashes/ -print_final_stats=1 2>&1 | tail -n 25
