#!/usr/bin/env bash
# Restart time with many uploaded policies: how long `verdict serve` takes,
# from exec to a 200 on /readyz, to come back with N policies it compiled
# before (their compiled artifacts in the data dir's cache).
#
#   bench/restart.sh [N]       default: 100
#
# Uploads N distinct components (the `thresholds` built-in, each with its own
# custom section so every digest differs), stops the server, then starts it
# three times on the same data dir and prints each start-up time. Set
# VERDICT_BIN to use an already built binary instead of building.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-100}
bin=${VERDICT_BIN:-./target/release/verdict}
[ -n "${VERDICT_BIN:-}" ] || cargo build --release -q -p verdict
dir=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$dir"' EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
url="http://127.0.0.1:$port"

start() {
  "$bin" serve --listen "127.0.0.1:$port" --data-dir "$dir/data" >>"$dir/server.log" 2>&1 &
  pid=$!
  for _ in $(seq 3000); do
    curl -sf "$url/readyz" >/dev/null && return 0
    sleep 0.005
  done
  echo "server did not become ready; log:" >&2
  cat "$dir/server.log" >&2
  exit 1
}
stop() { kill "$pid"; wait "$pid" 2>/dev/null || true; pid=; }

start
python3 - "$dir" "$n" <<'PY'
import sys
out, n = sys.argv[1], int(sys.argv[2])
base = open("policies/dist/thresholds.wasm", "rb").read()
def leb(x):
    b = bytearray()
    while True:
        byte, x = x & 0x7F, x >> 7
        b.append(byte | (0x80 if x else 0))
        if not x:
            return bytes(b)
for i in range(n):
    name, payload = b"restart-bench", str(i).encode()
    body = leb(len(name)) + name + payload
    open(f"{out}/p{i}.wasm", "wb").write(base + b"\x00" + leb(len(body)) + body)
PY
t0=$(date +%s%N)
for i in $(seq 0 $((n - 1))); do
  curl -sf -X PUT --data-binary "@$dir/p$i.wasm" -H 'Content-Type: application/wasm' \
    "$url/v1/policies/restart-$i" >/dev/null
done
echo "uploaded $n policies in $(( ($(date +%s%N) - t0) / 1000000 )) ms"
stop
for run in 1 2 3; do
  t0=$(date +%s%N)
  start
  echo "restart $run: ready with $n uploaded policies in $(( ($(date +%s%N) - t0) / 1000000 )) ms"
  # Ready means every stored policy is loaded: probe the last one uploaded.
  curl -sf "$url/v1/policies/restart-$((n - 1))" >/dev/null && echo "   restart-$((n - 1)) is loaded"
  stop
done
