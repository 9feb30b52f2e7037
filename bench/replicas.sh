#!/usr/bin/env bash
# Decisions/s and latency of one replica on the embedded store against one
# and two replicas on PostgreSQL, with the same request (bench/decide.lua)
# and the same total client count, on this machine.
#
#   bench/replicas.sh [clients] [seconds]      default: 16 10
#
# Builds the release binary, starts a throw-away PostgreSQL cluster (Debian's
# postgresql package: initdb in a temp dir on a free loopback port, as the
# `postgres` user when run as root; fsync and synchronous commit on, the
# defaults), then for each set-up starts fresh servers and runs `wrk -t2`
# (two replicas: one wrk per replica, each with half the clients, at the
# same time). Prints, per set-up: decisions/s, p50/p99 per wrk, and the
# commit latency (the writer's time per group-committed batch, from
# /metrics: on sled the fsync, on PostgreSQL the whole transaction: head
# lock, inserts, COMMIT) with the mean batch size.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || { echo "wrk is not installed: apt-get install wrk" >&2; exit 1; }
pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -x "$pgbin/initdb" ] || { echo "PostgreSQL is not installed: apt-get install postgresql" >&2; exit 1; }
clients=${1:-16}
seconds=${2:-10}
verdict=${VERDICT_BIN:-./target/release/verdict}
[ -n "${VERDICT_BIN:-}" ] || cargo build --release -q -p verdict

work=$(mktemp -d)
chmod 755 "$work"   # the postgres user reaches its cluster inside
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
as_pg() { if [ "$(id -u)" = 0 ]; then setpriv --reuid=postgres --regid=postgres --init-groups -- "$@"; else "$@"; fi; }

# The cluster.
mkdir -p "$work/pg" && chmod 700 "$work/pg"
echo secret > "$work/pg/pw"
[ "$(id -u)" = 0 ] && chown -R postgres:postgres "$work/pg"
(cd / && as_pg "$pgbin/initdb" -D "$work/pg/data" -U postgres -E UTF8 --locale=C \
  --auth-local=trust --auth-host=scram-sha-256 --pwfile="$work/pg/pw" >/dev/null)
pgport=$(free_port)
(cd / && as_pg "$pgbin/postgres" -D "$work/pg/data" -p "$pgport" -c listen_addresses=127.0.0.1 \
  -c unix_socket_directories="$work/pg" >"$work/pg.log" 2>&1) &
pids+=($!)
for _ in $(seq 200); do grep -q "ready to accept connections" "$work/pg.log" 2>/dev/null && break; sleep 0.1; done
psql() { PGPASSWORD=secret "$pgbin/psql" -h 127.0.0.1 -p "$pgport" -U postgres -X -q -A -t "$@"; }

# start_server NAME [VERDICT_STORE]: sets $base once the server is ready.
start_server() {
  local port; port=$(free_port)
  env ${2:+VERDICT_STORE="$2"} "$verdict" serve --listen "127.0.0.1:$port" --data-dir "$work/$1" \
    >"$work/$1.log" 2>&1 &
  pids+=($!)
  base="http://127.0.0.1:$port"
  for _ in $(seq 1200); do
    curl -sf "$base/readyz" >/dev/null && return 0
    sleep 0.1
  done
  echo "server $1 did not become ready:" >&2
  cat "$work/$1.log" >&2
  exit 1
}

# run_wrk BASE CLIENTS OUT: wrk in the background, its summary to OUT.
run_wrk() {
  wrk -t2 -c"$2" -d"${seconds}s" --latency -s bench/decide.lua "$1/v1/decisions" >"$3" &
}

report() {
  local name=$1; shift
  local total=0
  for out in "$@"; do
    total=$(python3 -c "print($total + $(awk '/Requests\/sec/ {print $2}' "$out"))")
  done
  printf '== %s: %.0f decisions/s\n' "$name" "$total"
  for out in "$@"; do
    printf '   wrk: p50 %s, p99 %s, %s\n' \
      "$(awk '$1=="50%" {print $2}' "$out")" "$(awk '$1=="99%" {print $2}' "$out")" \
      "$(grep -E 'Non-2xx|Socket errors' "$out" | tr -s ' ' | paste -sd';' || true)"
  done
}

commit_latency() {
  local base=$1
  curl -s "$base/metrics" | python3 -c '
import sys
s = c = 0.0
for line in sys.stdin:
    if line.startswith("verdict_store_flush_duration_seconds_sum"): s = float(line.split()[-1])
    if line.startswith("verdict_store_flush_duration_seconds_count"): c = float(line.split()[-1])
print(f"   commit: {c:.0f} batches, mean {1000*s/max(c,1):.2f} ms per batch")'
}

warm() { for _ in $(seq 20); do curl -s -o /dev/null -XPOST -H 'content-type: application/json' \
  -d '{"deployment":{"service":"api","environment":"prod","version":"v2"},"metrics":[{"name":"error_rate","canary":[0.001]}]}' "$1/v1/decisions"; done; }

echo "clients: $clients in total, ${seconds} s per run, $(nproc) cores"

start_server sled; s=$base
warm "$s"
run_wrk "$s" "$clients" "$work/sled.out"; wait $!
report "1 replica, sled" "$work/sled.out"
commit_latency "$s"

psql -c "CREATE DATABASE one" -c "CREATE DATABASE two"
start_server pg1 "postgres://postgres:secret@127.0.0.1:$pgport/one"; a=$base
warm "$a"
run_wrk "$a" "$clients" "$work/pg1.out"; wait $!
report "1 replica, PostgreSQL" "$work/pg1.out"
commit_latency "$a"
echo "   records: $(psql -d one -c 'SELECT count(*) FROM verdict_decisions')"

start_server pg2a "postgres://postgres:secret@127.0.0.1:$pgport/two"; a=$base
start_server pg2b "postgres://postgres:secret@127.0.0.1:$pgport/two"; b=$base
warm "$a"; warm "$b"
run_wrk "$a" $((clients / 2)) "$work/pg2a.out"; wa=$!
run_wrk "$b" $((clients / 2)) "$work/pg2b.out"; wb=$!
wait "$wa" "$wb"
report "2 replicas, PostgreSQL" "$work/pg2a.out" "$work/pg2b.out"
commit_latency "$a"
commit_latency "$b"
echo "   records: $(psql -d two -c 'SELECT count(*) FROM verdict_decisions'), verify: $(curl -s "$a/v1/audit/verify")"
