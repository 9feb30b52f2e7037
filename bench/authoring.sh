#!/usr/bin/env bash
# Time from `verdict policy new` to a bound policy, per language, outside the
# repository with only a copy of the verdict binary: new, build, test, push,
# bind (shadow). The last "rust2" row is a second Rust policy with the cargo
# target already warm.
#
# Usage: bench/authoring.sh <verdict binary>
# Needs the language toolchains (VERDICT_TOOLCHAIN, default ./.toolchain from
# `make toolchain`), curl and bc; uses port 18099.
set -euo pipefail
bin=$(realpath "$1")
export VERDICT_TOOLCHAIN=${VERDICT_TOOLCHAIN:-$(realpath .toolchain)}
T=$(mktemp -d); cp "$bin" "$T/verdict"; V=$T/verdict
export CARGO_TARGET_DIR=$T/cargo-target VERDICT_SERVER=http://127.0.0.1:18099
"$V" serve --listen 127.0.0.1:18099 --data-dir "$T/data" > "$T/server.log" 2>&1 &
server=$!; trap 'kill $server; rm -rf "$T"' EXIT
until curl -sf "$VERDICT_SERVER/readyz" >/dev/null; do sleep 0.2; done
cd "$T"
for lang in rust python js rust2; do
  name=gate-$lang; start=$(date +%s.%N)
  "$V" policy new --lang "${lang%2}" "$name" >/dev/null
  "$V" policy build "$name" -o "$T/$name.wasm" >/dev/null 2>&1
  "$V" policy test "$T/$name.wasm" "$name/fixtures" | tail -1
  "$V" policy push "$name" "$T/$name.wasm" 2>/dev/null
  curl -sf -X PUT "$VERDICT_SERVER/v1/bindings/$name" \
    --json "{\"policy\": \"$name\", \"selector\": {\"environment\": \"production\"}, \"mode\": \"shadow\"}" >/dev/null
  printf '%s: %.1f s from policy new to bound\n' "$lang" "$(echo "$(date +%s.%N) - $start" | bc)"
done
