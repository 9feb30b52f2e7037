#!/usr/bin/env bash
# Build every policy in policies/, run its own unit tests and its fixtures in
# the real sandbox, and (with PUSH=1) upload each to the Verdict server.
#
# Needs: the `verdict` binary on PATH (or VERDICT=/path/to/verdict), and the
# toolchain of each language present: a wasm32 Rust toolchain, Python 3 with
# componentize-py and pytest, Node.js with componentize-js, jco and
# TypeScript (VERDICT_TOOLCHAIN may name a directory holding `venv/` and
# `js/node_modules/` with them). To push: VERDICT_SERVER and VERDICT_TOKEN
# (an admin token).
set -euo pipefail
cd "$(dirname "$0")"
verdict=${VERDICT:-verdict}
mkdir -p build
for dir in policies/*/; do
  dir=${dir%/}
  name=$(basename "$dir")
  echo "== $name"
  # The policy's own unit tests, natively (no Wasm needed).
  if [ -f "$dir/Cargo.toml" ]; then
    (cd "$dir" && cargo test --quiet)
  elif [ -f "$dir/pyproject.toml" ]; then
    (cd "$dir" && "${PYTEST:-pytest}" -q)
  fi
  "$verdict" policy build "$dir" -o "build/$name.wasm" >/dev/null
  # TypeScript tests run on tsc's output, which the build just wrote.
  if [ -f "$dir/package.json" ]; then
    node --test "$dir/dist/test/"
  fi
  "$verdict" policy test "build/$name.wasm" "$dir/fixtures"
  if [ "${PUSH:-0}" = 1 ]; then
    "$verdict" policy push "$name" "build/$name.wasm"
  fi
done
