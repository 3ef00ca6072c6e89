#!/usr/bin/env bash
# demo.sh: the main job: install what is needed, build, make models with tandem's own tools, generate text and
# print speed.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j "$(nproc)"
mkdir -p out
shared=${TND_SHARED_DIR:-../shared}
real=$shared/fixtures/real

echo "== import the trained llama2.c stories260K checkpoint into GGUF"
./build/tandem convert --llama2c "$real/stories260K.bin" --vocab "$real/tok512.bin" -o out/stories260K.gguf
./build/tandem info out/stories260K.gguf | head -n 12

echo "== generate a story (greedy), speed on stderr"
./build/tandem run -m out/stories260K.gguf -p "Once upon a time" -n 120 --temp 0

echo "== make a random-weight model of a real shape, quantize it, measure speed against the memory roofline"
./build/tandem model make --shape stories-15m --type F32 -o out/stories-15m-f32.gguf
./build/tandem quantize out/stories-15m-f32.gguf out/stories-15m-q4_k_m.gguf Q4_K_M
./build/tandem bench -m out/stories-15m-q4_k_m.gguf -p 128 -n 64 -r 3
