#!/usr/bin/env bash
# prefetch_in_tiles.sh LIBRARY: every copy of the K types' x86 weight tiles (one per kernel set) in the built
# library requests its weights ahead. GCC takes a prefetch for an instruction without effects and drops calls to a
# helper that only prefetches unless it is inlined: the AVX2 tiles once lost theirs silently (Q6_K streamed at half
# speed), which no output check can see.
set -euo pipefail
lib=$1
if ! command -v objdump >/dev/null; then
  echo "prefetch_in_tiles: objdump missing, skipped"
  exit 77
fi
objdump -d --no-show-raw-insn "$lib" | awk '
  /^[0-9a-f]+ <[^>]*>:$/ { name = $2; gsub(/[<>:]/, "", name); tile = name ~ /^tile_group_q[2-6]_K$/
                           if (tile) { copies[name]++; id = name "#" copies[name]; seen[id] = 0 } next }
  tile && /prefetch/     { seen[id] = 1 }
  END {
    bad = 0
    for (t = 2; t <= 6; t++) {
      name = "tile_group_q" t "_K"
      if (!copies[name]) { printf "%s: not in the library (stripped?), nothing to check\n", name; bad = 1 }
    }
    for (id in seen) if (!seen[id]) { printf "%s has no prefetch instruction\n", id; bad = 1 }
    n = 0; for (id in seen) n++
    if (!bad) printf "prefetch_in_tiles: %d K-type tiles, each with its prefetches\n", n
    exit bad
  }'
