#!/usr/bin/env bash
# Load against the real server: decisions/s and latency at a few client
# counts, then the policy errors the run recorded (a healthy burst records
# none: a host shortage is a 503, never a policy's vote).
#
#   bench/load.sh [clients...]       default: 16 128
#
# Builds the release binary, starts it on a free loopback port with a fresh
# data dir (durable group commit on, the five built-ins bound), runs
# `wrk -t2 -d10s` (Debian: apt-get install wrk) per client count with the
# request of the criterion bench (bench/decide.lua), and reports the server's
# CPU time per request. Set VERDICT_NICE=10 to run the server at a lower
# priority, as on a busy node; VERDICT_BIN to load an already built binary
# (e.g. another commit's) instead of building.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || { echo "wrk is not installed: apt-get install wrk" >&2; exit 1; }
bin=${VERDICT_BIN:-./target/release/verdict}
[ -n "${VERDICT_BIN:-}" ] || cargo build --release -q -p verdict
if [ $# -eq 0 ]; then clients=(16 128); else clients=("$@"); fi
dir=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$dir"' EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
nice -n "${VERDICT_NICE:-0}" "$bin" serve \
  --listen "127.0.0.1:$port" --data-dir "$dir/data" >"$dir/server.log" 2>&1 &
pid=$!
for _ in $(seq 200); do
  curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break
  sleep 0.1
done
# Warm up, then idle a few seconds: the server builds each binding's
# pre-initialised snapshot in the background once it is in use, and that
# compile must not land inside the measurement.
wrk -t1 -c4 -d3s -s bench/decide.lua "http://127.0.0.1:$port/v1/decisions" >/dev/null
sleep "${VERDICT_WARMUP_IDLE:-5}"
# The server's CPU time so far, in clock ticks (user + system, all threads).
cpu_ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
hz=$(getconf CLK_TCK)
for c in "${clients[@]}"; do
  echo "== $c clients, 10 s"
  before=$(cpu_ticks)
  out=$(wrk -t2 -c"$c" -d10s --latency -s bench/decide.lua "http://127.0.0.1:$port/v1/decisions")
  after=$(cpu_ticks)
  echo "$out" | grep -E 'Requests/sec|Non-2xx|Socket errors|^ +(50|99)%'
  # Server CPU per answered request: what bounds throughput once the cores
  # are saturated (wrk itself takes far less).
  echo "$out" | awk -v t=$((after - before)) -v hz="$hz" \
    '/requests in/ {n = $1} END {if (n > 0) printf "server CPU per request: %.0f us\n", t / hz * 1e6 / n}'
done
echo "== policy errors recorded"
curl -s "http://127.0.0.1:$port/metrics" | grep -E '^verdict_policy_errors_total' || echo "none"
