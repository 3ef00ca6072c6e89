#!/usr/bin/env bash
# netbed.sh MODEL [PROFILE...]: a device and a cloud on emulated links, measured. Two network namespaces (tnd-dev,
# tnd-cloud) joined by a veth pair whose rate tbf limits; the round trip comes from build/link_delay, a relay of the
# project's own on the device side (the kernel may have no netem). For each profile it runs, with one thread on each
# side and greedy decoding:
#   device   the whole model on the device, no network
#   split    `tandem run --device remote:...` with the default split over TLS 1.3 (a key made here)
#   cloud    the cloud's `tandem serve` streaming /v1/completions to a client on the device
# and prints time to first token, tokens/s, bytes up and down per token (counted by the veth's queues), and for the
# split the time of a decode step beyond the round trip and the bytes' transfer, twice: from the rates of two runs,
# and within one bench run (the device's wait for the cloud's stage less the compute the cloud reports). Profile
# `poor` also cuts the split link mid-answer and reports the longest silence of the stream. Profiles: lan (1 ms,
# 1 Gbit/s), 4g (40 ms, 20 Mbit/s), poor (150 ms, 2 Mbit/s). Needs root (namespaces); everything it makes is removed
# at exit.
# Settings from the environment: PROMPT_WORDS (48), GEN (64), CUT_AFTER (10 s), TANDEM_BIN (build/tandem), and
# DRAFT=FILE: the split once more with --draft-model FILE (device drafts, the split verifies a draft per round trip),
# DEVICES="1 2 4 8": that many devices at once on the one cloud (with and without DRAFT), tokens/s each.
set -euo pipefail
cd "$(dirname "$0")/.."
model=$(realpath "${1:?usage: scripts/netbed.sh MODEL [lan|4g|poor ...]}")
shift
profiles=("$@")
[ ${#profiles[@]} -eq 0 ] && profiles=(lan 4g poor)
bin=$(realpath "${TANDEM_BIN:-build/tandem}")
delay_bin=$(dirname "$bin")/link_delay
gen=${GEN:-64}
if [ "$(id -u)" -ne 0 ] || ! ip netns add tnd-probe 2>/dev/null; then
  echo "netbed: needs root and network namespaces (ip netns); skipped" >&2
  exit 0
fi
ip netns del tnd-probe
work=$(mktemp -d)
pids=()
stop_all() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  pids=()
}
cleanup() {
  stop_all
  ip netns del tnd-dev 2>/dev/null || true
  ip netns del tnd-cloud 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
prompt=$(for i in $(seq "${PROMPT_WORDS:-48}"); do printf 'Once upon a time '; done)
"$bin" cloud keygen "$work/key" >/dev/null 2>&1

# namespaces and the veth pair: device 10.77.0.1, cloud 10.77.0.2
ip netns add tnd-dev
ip netns add tnd-cloud
ip link add tnd-veth-dev type veth peer name tnd-veth-cloud
ip link set tnd-veth-dev netns tnd-dev
ip link set tnd-veth-cloud netns tnd-cloud
ip -n tnd-dev addr add 10.77.0.1/24 dev tnd-veth-dev
ip -n tnd-cloud addr add 10.77.0.2/24 dev tnd-veth-cloud
for ns in tnd-dev tnd-cloud; do
  ip -n $ns link set lo up
  ip -n $ns link set tnd-veth-${ns#tnd-} up
done

# bytes sent by each end's queue (up: device -> cloud, down: cloud -> device)
sent() { ip netns exec "$1" tc -s qdisc show dev "$2" | awk '/Sent/ {print $2; exit}'; }
counters() { echo "$(sent tnd-dev tnd-veth-dev) $(sent tnd-cloud tnd-veth-cloud)"; }

# waits until a log file holds a phrase (10 s at most)
wait_for() { for _ in $(seq 100); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done; return 1; }

# runs a command, timing each piece of its standard output; prints from the run's stats line the time to first
# token, tokens/s and the tokens (all, generated), then the longest silence between pieces after the first and
# whether the run went on without the cloud
timed() {
  python3 - "$@" <<'PY'
import os, re, subprocess, sys, time
p = subprocess.Popen(sys.argv[1:], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
times = []
while True:
    b = os.read(p.stdout.fileno(), 65536)
    if not b: break
    times.append(time.monotonic())
err = p.communicate()[1].decode()
m = re.search(r"first token ([0-9.]+) s \| generation (\d+) tokens, ([0-9.]+) t/s", err)
p_tok = re.search(r"prompt (\d+) tokens", err)
gap = max((b - a for a, b in zip(times[1:], times[2:])), default=0)
if not m or p.returncode != 0:
    sys.stderr.write(err); sys.exit(1)
switch = re.search(r"note: .*go(?:ing)? on here[^\n]*", err)
print(m.group(1), m.group(3), int(m.group(2)) + int(p_tok.group(1)), m.group(2), f"{gap:.3f}",
      f"{len(times) - 1} pieces", "|", switch.group(0) if switch else "-")
PY
}

# one streamed completion from the server at $1, asked on the device: time to first token, tokens/s after it,
# tokens (all, generated)
stream() {
  ip netns exec tnd-dev python3 - "$1" "$prompt" "$gen" <<'PY'
import http.client, json, sys, time
host, port = sys.argv[1].rsplit(":", 1)
c = http.client.HTTPConnection(host, int(port), timeout=600)
body = json.dumps({"prompt": sys.argv[2], "max_tokens": int(sys.argv[3]), "temperature": 0, "stream": True,
                   "stream_options": {"include_usage": True}})
t0 = time.monotonic()
c.request("POST", "/v1/completions", body, {"Content-Type": "application/json"})
r = c.getresponse()
stamps, n_prompt = [], 0
for line in r:
    if line.startswith(b"data: {"):
        event = json.loads(line[6:])
        if event.get("choices") and event["choices"][0].get("text"): stamps.append(time.monotonic())
        if event.get("usage"): n_prompt = event["usage"].get("prompt_tokens", 0)
ttft = stamps[0] - t0
rate = (len(stamps) - 1) / (stamps[-1] - stamps[0]) if len(stamps) > 1 else 0
print(f"{ttft:.3f}", f"{rate:.1f}", len(stamps) + n_prompt, len(stamps))
PY
}

calc() { awk "BEGIN { printf \"%.6f\", $1 }"; }

# runs a command, printing the bytes up and down the veth carried meanwhile, then the command's output
counted() {
  local before after r u0 d0 u1 d1
  before=$(counters)
  r=$("$@") || return 1
  after=$(counters)
  read -r u0 d0 <<< "$before"
  read -r u1 d1 <<< "$after"
  echo "$((u1 - u0)) $((d1 - d0)) $r"
}

# the delaying relay on the device's side, from 127.0.0.1:$1 to the cloud's port $2 (more options after)
relay() {
  local from=$1 to=$2
  shift 2
  ip netns exec tnd-dev "$delay_bin" --listen 127.0.0.1:"$from" --to 10.77.0.2:"$to" --delay-ms "$rtt" "$@" \
    2> "$work/delay.log" & pids+=($!)
  wait_for "$work/delay.log" "round trip"
}

# the device's run split with the cloud through the relay, on prompt $1 (more options after), timed
split_run() {
  local text=$1
  shift
  timed ip netns exec tnd-dev "$bin" run -m "$model" -p "$text" -n "$gen" --temp 0 --ignore-eos -t 1 \
    --device remote:127.0.0.1:7071 --remote-key "$work/key" "$@"
}


report() { # name ttft tps tokens bytes_up bytes_down [more]
  printf "  %-7s first token %6.3f s  %6.1f tokens/s  up %7.0f  down %7.0f bytes/token%s\n" "$1" "$2" "$3" \
    "$(calc "$5 / $4")" "$(calc "$6 / $4")" "${7:-}"
}

device=$(timed "$bin" run -m "$model" -p "$prompt" -n "$gen" --temp 0 --ignore-eos -t 1)
read -r d_ttft d_tps d_tok _ _ _ <<< "$device"
echo "model $(basename "$model"), prompt of ${PROMPT_WORDS:-48} words, $gen tokens, 1 thread each side"
printf "  %-7s first token %6.3f s  %6.1f tokens/s  (no network)\n" device "$d_ttft" "$d_tps"

for profile in "${profiles[@]}"; do
  case $profile in
    lan) rtt=1; rate=1gbit; bps=1000000000; burst=128kb ;;
    4g) rtt=40; rate=20mbit; bps=20000000; burst=8kb ;;
    poor) rtt=150; rate=2mbit; bps=2000000; burst=3kb ;;
    *) echo "netbed: unknown profile $profile (lan, 4g, poor)" >&2; exit 2 ;;
  esac
  for end in dev cloud; do
    # a small bucket, so that a message takes its time on the wire, and a queue of 2 s, so that no packet is
    # dropped (TCP over the veth sees no delay: the relay adds it, and a short queue would make it lose packets)
    ip netns exec tnd-$end tc qdisc replace dev tnd-veth-$end root tbf rate $rate burst $burst latency 2s
  done
  echo "profile $profile: round trip +$rtt ms, $rate each way"

  # split: the cloud's stages over TLS through the delaying relay
  ip netns exec tnd-cloud "$bin" cloud -m "$model" --listen 10.77.0.2:7070 --key "$work/key" -t 1 --parallel 8 \
    2> "$work/cloud.log" & pids+=($!)
  wait_for "$work/cloud.log" serving
  relay 7071 7070
  read -r up down s_ttft s_tps s_tok _ <<< "$(counted split_run "$prompt")"
  # a decode step beyond the round trip, the transfer of its bytes and the whole model's step on the device alone
  # (the two sides' compute together is about that): protocol, crypto and scheduling
  extra=$(calc "1000 / $s_tps - $rtt - ($up + $down) * 8 / $s_tok * 1000 / $bps - 1000 / $d_tps")
  report split "$s_ttft" "$s_tps" "$s_tok" "$up" "$down" \
    "$(printf '; a step beyond round trip, transfer and compute: %+.1f ms' "$extra")"
  # the link's own part of a decode step, measured within one run: what the device waited for the cloud's stage
  # less what the cloud says it computed (tandem bench's profile), then less the round trip and the transfer
  link=$(ip netns exec tnd-dev "$bin" bench -m "$model" -p 0 -n 32 -r 3 -t 1 --device remote:127.0.0.1:7071 \
    --remote-key "$work/key" 2>/dev/null | awk '/cloud stage ms/ { getline; print $(NF - 2), $NF }')
  read -r l_wait l_link <<< "$link"
  transfer=$(calc "($up + $down) * 8 / $s_tok * 1000 / $bps")
  printf "  link    a decode step waited %.3f ms for the cloud's stage, %.3f ms of it beyond its compute:\n" \
    "$l_wait" "$l_link"
  printf "          round trip %d ms, transfer %.3f ms, protocol, crypto and scheduling %+.3f ms\n" "$rtt" \
    "$transfer" "$(calc "$l_link - $rtt - $transfer")"
  if [ -n "${DRAFT:-}" ]; then # the device's draft model proposes, the split verifies several tokens a round trip
    read -r up down s_ttft s_tps s_tok _ <<< "$(counted split_run "$prompt" --draft-model "$DRAFT")"
    report drafted "$s_ttft" "$s_tps" "$s_tok" "$up" "$down"
  fi
  for n_dev in ${DEVICES:-}; do # several devices at once on the one cloud, which batches their steps
    for variant in plain ${DRAFT:+drafted}; do
      extra=()
      [ "$variant" = drafted ] && extra=(--draft-model "$DRAFT")
      for d in $(seq "$n_dev"); do split_run "$prompt" "${extra[@]}" > "$work/dev$d.out" & done
      wait $(jobs -p | tail -n "$n_dev")
      sort -k2 -n "$work"/dev*.out | awk -v n="$n_dev" -v v="$variant" '{ t[NR] = $2; sum += $2 }
        END { printf "  %d devices at once (%s): tokens/s each min %.1f median %.1f, all together %.1f\n",
              n, v, t[1], t[int((NR + 1) / 2)], sum }'
      rm -f "$work"/dev*.out
    done
  done

  if [ "$profile" = poor ]; then # the link is cut a few seconds into the answer (a short prompt, so that the
                                 # answer has begun): the device goes on alone, with the cloud's stand-in where
                                 # memory holds the model twice (else the whole model, made at the loss)
    kill "${pids[-1]}" 2>/dev/null || true
    relay 7071 7070 --cut-after "${CUT_AFTER:-10}"
    cutrun=$(split_run "Once upon a time")
    read -r _ c_tps _ _ c_gap c_pieces _ _ <<< "$cutrun"
    printf "  cut     link cut ${CUT_AFTER:-10} s after it opened: longest silence of the stream %.3f s (%s pieces), %.1f tokens/s\n    %s\n" \
      "$c_gap" "$c_pieces" "$c_tps" "${cutrun#*| }"
  fi
  stop_all

  # cloud only: the cloud's server streams the text over the same link
  ip netns exec tnd-cloud "$bin" serve -m "$model" --host 10.77.0.2 --port 8080 -t 1 --parallel 1 \
    2> "$work/serve.log" & pids+=($!)
  wait_for "$work/serve.log" listening
  relay 8081 8080
  read -r up down c_ttft c_tps c_tok _ <<< "$(counted stream 127.0.0.1:8081)"
  report cloud "$c_ttft" "$c_tps" "$c_tok" "$up" "$down"
  stop_all
done
