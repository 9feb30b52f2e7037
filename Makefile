# Set-up beyond plain cargo: the guest (wasm) toolchain and the policy
# components. The README names these targets; `make test` is what CI runs.

SHELL := /bin/bash
# Every recipe line fails as a whole: a failed build or fixture run inside a
# pipe or loop must fail `make test`, never scroll past.
.SHELLFLAGS := -eu -o pipefail -c
EXAMPLES := canary-judge error-budget freeze-window change-risk thresholds
ADVERSARIAL := misbehave describe-loop
VERDICT := cargo run -q -p verdict --
REBUILT := target/policies-rebuilt

# The digest of what a component is built from: its crate, the SDK, the WIT
# and the guest workspace's manifest and lock file (not fixtures or docs).
# `make policies` records it beside each committed component; a different
# digest later means the sources changed and the component was not rebuilt.
sources_digest = (cd policies && find $(1) sdk Cargo.toml Cargo.lock ../wit -type f \
	  -not -path '*/target/*' -not -path '*/fixtures/*' -not -name '*.md' \
	  | LC_ALL=C sort | xargs sha256sum | sha256sum | cut -c1-64)

# Python and JavaScript/TypeScript policies: pinned toolchains, installed
# project-locally (never system-wide) by `make toolchain`.
COMPONENTIZE_PY := 0.25.1
COMPONENTIZE_JS := 0.23.0
JCO := 1.35.0
TYPESCRIPT := 5.9.3
TOOLCHAIN := .toolchain
VENV := $(TOOLCHAIN)/venv
JS_MODULES := $(TOOLCHAIN)/js/node_modules
POLYGLOT := target/polyglot
# Python/JS policies built from source by `make polyglot`: the examples, and
# the hostile ones the sandbox tests upload (directory:component name).
POLYGLOT_POLICIES := sprt-canary:sprt-canary change-approval:change-approval \
	adversarial/hostile-py:hostile-py adversarial/hostile-js:hostile-js

.PHONY: test toolchain toolchain-wasm toolchain-polyglot test-tools browser policies check-policies \
	test-policies polyglot test-polyglot test-host package-sdks

## Everything CI checks: toolchains, rebuilt policies against their fixtures,
## the policies' native unit tests (Rust, Python, TypeScript), then the host
## and end-to-end tests (which upload the Python/JS components built once by
## `polyglot`).
test: toolchain test-tools check-policies test-policies polyglot test-polyglot package-sdks test-host

## Both guest toolchains: wasm32 Rust, and componentize-py/componentize-js.
toolchain: toolchain-wasm toolchain-polyglot

## Install a wasm32 toolchain if none is present (Debian's rustc-web with
## build-std; rustup users: `rustup target add wasm32-unknown-unknown`).
toolchain-wasm:
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

## componentize-py (pip, into $(VENV)) and componentize-js, jco and
## TypeScript (npm, into $(TOOLCHAIN)/js), at the pinned versions; Debian's
## python3-venv, nodejs and npm first when missing (as root).
toolchain-polyglot:
	@missing=""; \
	python3 -c 'import venv, ensurepip' 2>/dev/null || missing="$$missing python3-venv"; \
	command -v node >/dev/null || missing="$$missing nodejs"; \
	command -v npm >/dev/null || missing="$$missing npm"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "toolchain: installing Debian$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else \
	    echo "missing$$missing: 'sudo apt-get install$$missing'" >&2; exit 1; \
	  fi; \
	fi
	@if [ "$$($(VENV)/bin/componentize-py --version 2>/dev/null)" = "componentize-py $(COMPONENTIZE_PY)" ] \
	    && [ -x $(VENV)/bin/pytest ]; then \
	  echo "toolchain: componentize-py $(COMPONENTIZE_PY) in $(VENV)"; \
	else \
	  echo "toolchain: installing componentize-py $(COMPONENTIZE_PY) and pytest into $(VENV)"; \
	  python3 -m venv $(VENV) && $(VENV)/bin/pip install -q componentize-py==$(COMPONENTIZE_PY) pytest; \
	fi
	@want="$(COMPONENTIZE_JS) $(JCO) $(TYPESCRIPT)"; \
	have="$$(node -p 'const v = (p) => { try { return require("./$(JS_MODULES)/" + p + "/package.json").version } catch { return "-" } }; \
	  [v("@bytecodealliance/componentize-js"), v("@bytecodealliance/jco"), v("typescript")].join(" ")')"; \
	if [ "$$have" = "$$want" ]; then \
	  echo "toolchain: componentize-js $(COMPONENTIZE_JS), jco $(JCO), typescript $(TYPESCRIPT) in $(TOOLCHAIN)/js"; \
	else \
	  echo "toolchain: installing componentize-js $(COMPONENTIZE_JS), jco $(JCO), typescript $(TYPESCRIPT) into $(TOOLCHAIN)/js"; \
	  mkdir -p $(TOOLCHAIN)/js && echo '{"private": true}' > $(TOOLCHAIN)/js/package.json; \
	  npm install --prefix $(TOOLCHAIN)/js --no-audit --no-fund --silent \
	    @bytecodealliance/componentize-js@$(COMPONENTIZE_JS) @bytecodealliance/jco@$(JCO) typescript@$(TYPESCRIPT); \
	fi

## Debian's `prometheus` package: the end-to-end tests start a real
## Prometheus (pulled metrics, also over HTTPS) and run `promtool check
## metrics` on /metrics. `curl` sends Flagger's webhook URL with credentials
## in it (`http://user:token@…`) as Go's client does (Basic auth).
## `ca-certificates`: the system CA store that https clients trust by default.
## Debian's `chromium`: the console tests drive a real headless browser.
test-tools: browser
	@if ! command -v curl >/dev/null || [ ! -s /etc/ssl/certs/ca-certificates.crt ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "test tools: installing Debian curl and ca-certificates"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	      --no-install-recommends curl ca-certificates >/dev/null; \
	  else \
	    echo "curl or ca-certificates missing: 'sudo apt-get install curl ca-certificates'" >&2; exit 1; \
	  fi; \
	fi
	@if command -v prometheus >/dev/null && command -v promtool >/dev/null; then \
	  echo "test tools: prometheus and promtool present"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "test tools: installing Debian prometheus (server and promtool)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    --no-install-recommends prometheus >/dev/null; \
	else \
	  echo "prometheus/promtool missing: 'sudo apt-get install prometheus' (or set VERDICT_SKIP_PROMETHEUS=1 to report the tests that need them as ignored)" >&2; \
	  [ -n "$$VERDICT_SKIP_PROMETHEUS" ]; \
	fi

## Debian's `postgresql`: the replica tests start throw-away PostgreSQL
## clusters (initdb in a temp dir, a loopback port) from
## /usr/lib/postgresql/<major>/bin.
	@if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
	  echo "test tools: postgresql present"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "test tools: installing Debian postgresql (the replica tests start throw-away clusters)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    --no-install-recommends postgresql >/dev/null; \
	else \
	  echo "postgresql missing: 'sudo apt-get install postgresql' (or set VERDICT_SKIP_POSTGRES=1 to report the tests that need it as ignored)" >&2; \
	  [ -n "$$VERDICT_SKIP_POSTGRES" ]; \
	fi

browser:
	@if command -v chromium >/dev/null; then \
	  echo "test tools: chromium present"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "test tools: installing Debian chromium (headless browser for the console tests)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	else \
	  echo "chromium missing: 'sudo apt-get install chromium' (the console tests need a real browser)" >&2; exit 1; \
	fi

## Rebuild the committed components in policies/dist/ and record the digest
## of their sources beside them (commit both).
policies: toolchain
	@for p in $(EXAMPLES); do \
	  $(VERDICT) policy build policies/$$p -o policies/dist/$$p.wasm; \
	  $(call sources_digest,$$p) > policies/dist/$$p.sources; \
	done
	@for p in $(ADVERSARIAL); do \
	  $(VERDICT) policy build policies/adversarial/$$p -o policies/dist/test/$$p.wasm; \
	  $(call sources_digest,adversarial/$$p) > policies/dist/test/$$p.sources; \
	done

## Build every example from source and run its fixtures through the real
## sandbox, then run the same fixtures against the committed component (the
## one embedded in the binary). Any failed build or fixture fails the target.
## A committed component is stale when its recorded source digest no longer
## matches the sources: that fails too ("run make policies and commit").
## Identical sources can still give different bytes under another compiler
## release (Debian's rustc-web is updated in place), so a byte difference
## alone is reported, not failed: both components passed the fixtures.
check-policies: toolchain
	@for p in $(EXAMPLES); do \
	  echo "== $$p: rebuilt from source"; \
	  $(VERDICT) policy build policies/$$p -o $(REBUILT)/$$p.wasm; \
	  $(VERDICT) policy test $(REBUILT)/$$p.wasm policies/$$p/fixtures; \
	  echo "== $$p: committed policies/dist/$$p.wasm"; \
	  $(VERDICT) policy test policies/dist/$$p.wasm policies/$$p/fixtures; \
	  if ! cmp -s $(REBUILT)/$$p.wasm policies/dist/$$p.wasm; then \
	    echo "note: the rebuilt $$p differs in bytes from policies/dist/$$p.wasm (another compiler release); both pass the fixtures"; \
	  fi; \
	done
	@stale=0; for p in $(EXAMPLES) adversarial/misbehave adversarial/describe-loop; do \
	  case $$p in adversarial/*) rec=policies/dist/test/$${p#adversarial/}.sources;; *) rec=policies/dist/$$p.sources;; esac; \
	  if [ "$$(cat $$rec 2>/dev/null)" != "$$( $(call sources_digest,$$p) )" ]; then \
	    echo "policies/$$p changed since its committed component was built: run 'make policies' and commit policies/dist" >&2; \
	    stale=1; \
	  fi; \
	done; [ $$stale = 0 ]

## The policies' native unit tests: Rust (plain cargo), Python (pytest:
## the SDK and sprt-canary, whose fixtures run natively too) and TypeScript
## (node's test runner on tsc's output: the SDK and change-approval).
test-policies: toolchain-polyglot
	cd policies && cargo test --quiet
	cd policies/sdk-python && ../../$(VENV)/bin/pytest -q
	cd policies/sprt-canary && ../../$(VENV)/bin/pytest -q
	node policies/sdk-js/scripts/wit-types.mjs $(JS_MODULES) wit policies/sdk-js/generated
	$(JS_MODULES)/.bin/tsc -p policies/sdk-js
	node --test policies/sdk-js/dist/test/
	$(JS_MODULES)/.bin/tsc -p policies/change-approval
	node --test policies/change-approval/dist/change-approval/test/

## Build the Python and JavaScript policies from source, once each (20–50 s
## apiece), into $(POLYGLOT)/ for their fixtures and the end-to-end tests.
polyglot: toolchain-polyglot
	@for entry in $(POLYGLOT_POLICIES); do \
	  dir=$${entry%%:*}; name=$${entry##*:}; \
	  echo "== $$name: building policies/$$dir"; \
	  start=$$(date +%s); \
	  VERDICT_TOOLCHAIN=$(TOOLCHAIN) $(VERDICT) policy build policies/$$dir -o $(POLYGLOT)/$$name.wasm >/dev/null; \
	  echo "   $$(stat -c %s $(POLYGLOT)/$$name.wasm) bytes in $$(( $$(date +%s) - start )) s"; \
	done

## Every Python/JS policy's fixtures through the real sandbox (the hostile
## ones: each attempt contained or denied, with its error).
test-polyglot: polyglot
	@for entry in $(POLYGLOT_POLICIES); do \
	  dir=$${entry%%:*}; name=$${entry##*:}; \
	  echo "== $$name: fixtures"; \
	  $(VERDICT) policy test $(POLYGLOT)/$$name.wasm policies/$$dir/fixtures; \
	done

## The three SDKs as publishable packages, written by the binary itself
## (the files `verdict policy new` vendors): `cargo package` (which builds
## the packaged crate), a wheel with `pip wheel`, a tarball with `npm pack`,
## collected in $(PACKAGES)/. Each is written to a temporary directory
## first: cargo refuses to package a crate inside this repository's workspace.
PACKAGES := target/sdk-packages
package-sdks: toolchain-polyglot
	@rm -rf $(PACKAGES) && mkdir -p $(PACKAGES); \
	work=$$(mktemp -d); trap 'rm -rf "$$work"' EXIT; \
	for lang in rust python js; do $(VERDICT) policy sdk write --lang $$lang $$work/$$lang >/dev/null; done; \
	echo "== verdict-sdk (Rust): cargo package"; \
	(cd $$work/rust && cargo package --quiet --allow-dirty); \
	cp $$work/rust/target/package/verdict-sdk-*.crate $(PACKAGES)/; \
	echo "== verdict-sdk (Python): pip wheel"; \
	$(VENV)/bin/pip wheel --quiet --no-deps -w $(PACKAGES) $$work/python; \
	echo "== verdict-sdk (JS): npm pack"; \
	(cd $$work/js && npm pack --quiet --pack-destination $(CURDIR)/$(PACKAGES) >/dev/null); \
	ls -l $(PACKAGES)

## Host unit tests and end-to-end tests (real binary, real sockets, real sled).
test-host:
	cargo test --workspace
