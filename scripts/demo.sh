#!/usr/bin/env bash
# demo.sh: the main job: install what is needed, build, make a model with tandem's own tools, and run it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j "$(nproc)"
mkdir -p out
shared=${TND_SHARED_DIR:-../shared}
real=$shared/fixtures/real

echo "== import the llama2.c stories260K checkpoint into GGUF"
./build/tandem convert --llama2c "$real/stories260K.bin" --vocab "$real/tok512.bin" -o out/stories260K.gguf
echo "== describe it"
./build/tandem info out/stories260K.gguf
