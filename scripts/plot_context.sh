#!/usr/bin/env bash
# plot_context.sh MODEL [OUT.png]: prompt (pp) and generation (tg) tokens/s against context length, measured with
# `tandem bench -d` and drawn with gnuplot. Settings from the environment: DEPTHS (default 0,512,1024,2048,4096),
# THREADS (2), PROMPT (128), GEN (32), REPS (3), TANDEM_BIN (build/tandem). The measured JSON is kept beside the PNG.
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:?usage: scripts/plot_context.sh MODEL [OUT.png]}
out=${2:-docs/context.png}
bin=${TANDEM_BIN:-build/tandem}
json="${out%.png}.json"
"$bin" bench -m "$model" -p "${PROMPT:-128}" -n "${GEN:-32}" -r "${REPS:-3}" -t "${THREADS:-2}" \
  -d "${DEPTHS:-0,512,1024,2048,4096}" --json > "$json"
data=$(mktemp)
trap 'rm -f "$data"' EXIT
python3 - "$json" > "$data" <<'PY'
import json, os, sys
r = json.load(open(sys.argv[1]))
r["model"] = os.path.basename(r["model"])  # the kept JSON names the file, not where it was on this machine
json.dump(r, open(sys.argv[1], "w"))
for run in r["runs"]:
    pp, tg = run["pp"], run["tg"]
    print(run["depth"], pp["tps_median"], pp["tps_min"], pp["tps_max"], tg["tps_median"], tg["tps_min"], tg["tps_max"])
PY
name=$(basename "$model")
gnuplot <<GP
set terminal pngcairo size 900,500 font "sans,11" noenhanced
set output "$out"
set title "tandem bench: $name, ${THREADS:-2} threads (median, bars min-max)"
set xlabel "context length (tokens already in the cache)"
set ylabel "generation tg${GEN:-32} (tokens/s)"
set y2label "prompt pp${PROMPT:-128} (tokens/s)"
set y2tics
set ytics nomirror
set yrange [0:*]
set y2range [0:*]
set key bottom left
set grid
plot "$data" using 1:5:6:7 with yerrorlines lw 2 title "tg${GEN:-32}" axes x1y1, \
     "$data" using 1:2:3:4 with yerrorlines lw 2 title "pp${PROMPT:-128}" axes x1y2
GP
echo "wrote $out and $json"
