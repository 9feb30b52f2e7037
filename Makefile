# Set-up beyond plain cargo: the guest (wasm) toolchain and the policy
# components. The README names these targets; `make test` is what CI runs.

SHELL := /bin/bash
EXAMPLES := canary-judge error-budget freeze-window change-risk thresholds
VERDICT := cargo run -q -p verdict --
REBUILT := target/policies-rebuilt

.PHONY: test toolchain test-tools policies check-policies test-policies test-host

## Everything CI checks: toolchain, rebuilt policies against their fixtures,
## the policies' native unit tests, then the host and end-to-end tests.
test: toolchain test-tools check-policies test-policies test-host

## Install a wasm32 toolchain if none is present (Debian fallback of
## toolchain.md; rustup users: `rustup target add wasm32-unknown-unknown`).
toolchain:
	@if rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then \
	  echo "toolchain: rustup wasm32-unknown-unknown"; \
	elif [ -x /usr/bin/rustc ] && [ -d /usr/lib/rustlib/src/rust/library ] && ls /usr/bin/wasm-ld* >/dev/null 2>&1; then \
	  echo "toolchain: Debian rustc-web with build-std"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "toolchain: installing Debian rustc-web, rust-web-src, lld-22"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    rustc-web cargo-web rust-web-src lld-22 >/dev/null; \
	else \
	  echo "no wasm toolchain: run 'rustup target add wasm32-unknown-unknown'" >&2; exit 1; \
	fi

## Debian's `prometheus` package: the end-to-end tests start a real
## Prometheus (pulled metrics) and run `promtool check metrics` on /metrics.
test-tools:
	@if command -v prometheus >/dev/null && command -v promtool >/dev/null; then \
	  echo "test tools: prometheus and promtool present"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "test tools: installing Debian prometheus (server and promtool)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    --no-install-recommends prometheus >/dev/null; \
	else \
	  echo "prometheus/promtool missing: 'sudo apt-get install prometheus' (or set VERDICT_SKIP_PROMETHEUS=1 to skip those tests)" >&2; \
	  [ -n "$$VERDICT_SKIP_PROMETHEUS" ]; \
	fi

## Rebuild the committed components in policies/dist/ (commit the result).
policies: toolchain
	@for p in $(EXAMPLES); do $(VERDICT) policy build policies/$$p -o policies/dist/$$p.wasm | tail -1; done
	@$(VERDICT) policy build policies/adversarial/misbehave -o policies/dist/test/misbehave.wasm | tail -1
	@$(VERDICT) policy build policies/adversarial/describe-loop -o policies/dist/test/describe-loop.wasm | tail -1

## Build every example from source (not the committed copies) and run its
## fixtures through the real sandbox: a stale policies/dist cannot hide.
check-policies: toolchain
	@set -e; for p in $(EXAMPLES); do \
	  echo "== $$p (rebuilt from source)"; \
	  $(VERDICT) policy build policies/$$p -o $(REBUILT)/$$p.wasm | tail -1; \
	  $(VERDICT) policy test $(REBUILT)/$$p.wasm policies/$$p/fixtures | tail -1; \
	  if ! cmp -s $(REBUILT)/$$p.wasm policies/dist/$$p.wasm; then \
	    echo "note: policies/dist/$$p.wasm differs from the rebuilt component; run 'make policies' and commit"; \
	  fi; \
	done

## The policies' native unit tests (host target, plain cargo).
test-policies:
	cd policies && cargo test --quiet

## Host unit tests and end-to-end tests (real binary, real sockets, real sled).
test-host:
	cargo test --workspace
