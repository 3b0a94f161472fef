# wasm-host: the two commands of the README, plus build and benchmarks.
#   make run    build everything (release) and serve examples/routes on 127.0.0.1:8080
#   make test   run the whole test suite (what CI runs)
#   make build  build the host and the example handlers without serving
#   make examples-polyglot  build the Python and JavaScript example handlers (installs their
#               toolchains under target/polyglot); WASM_HOST_SKIP_POLYGLOT=1 skips them

CARGO ?= cargo
TARGET_DIR := $(or $(CARGO_TARGET_DIR),$(CURDIR)/target)
HOST_BIN := $(TARGET_DIR)/release/wasm-host
LISTEN ?= 127.0.0.1:8080

.PHONY: build run test wasm-target host examples examples-polyglot run-polyglot lint tools

wasm-target:
	@rustup target list --installed | grep -qx wasm32-wasip2 || rustup target add wasm32-wasip2

host:
	$(CARGO) build --release -p wasm-host

examples: wasm-target
	sh examples/build.sh examples/routes

build: host examples

run: build
	$(HOST_BIN) run examples/routes --static examples/assets --listen $(LISTEN)

# Handlers written in Python and JavaScript (examples/polyglot), laid out in target/polyglot/routes.
# `make test` runs their tests; with WASM_HOST_SKIP_POLYGLOT=1 it says it skips them instead.
examples-polyglot:
ifeq ($(WASM_HOST_SKIP_POLYGLOT),1)
	@echo "examples-polyglot: SKIPPED (WASM_HOST_SKIP_POLYGLOT=1): the Python and JavaScript handlers are neither built nor tested"
else
	sh examples/polyglot/build.sh
endif

run-polyglot: host examples-polyglot
	$(HOST_BIN) run $(TARGET_DIR)/polyglot/routes --listen $(LISTEN)

# state: the state tests start their own redis-server and a headless chromium (Debian packages).
tools:
	sh scripts/ensure-tools.sh redis chromium

test: wasm-target tools examples-polyglot fuzz-tools
	WASM_HOST_H11_PYTHON=$(H11_PYTHON) $(CARGO) test --release --workspace

lint: wasm-target
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --release --workspace --all-targets -- -D warnings

.PHONY: bench bench-native bench-reload bench-static bench-state test-guests wasmtime-cli
GUESTS := $(TARGET_DIR)/guests/wasm32-wasip2/release
NATIVE_BIN := $(TARGET_DIR)/bench/release/bench-native

test-guests: wasm-target
	CARGO_TARGET_DIR=$(TARGET_DIR)/guests $(CARGO) build --release --target wasm32-wasip2 --manifest-path tests/guests/Cargo.toml

bench-reload: host test-guests
	@command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)"; exit 1; }
	python3 bench/reload.py $(HOST_BIN) $(GUESTS)/version.wasm $(GUESTS)/version2.wasm

# The native baseline of `make bench` (bench/native, a standalone cargo project).
bench-native:
	CARGO_TARGET_DIR=$(TARGET_DIR)/bench $(CARGO) build --release --manifest-path bench/native/Cargo.toml

# `wasmtime serve` for ARGS=--vs-wasmtime: the CLI of the wasmtime the host is built on, installed
# under the target dir when no `wasmtime` is on PATH (a long build, once).
WASMTIME_CLI := $(TARGET_DIR)/wasmtime-cli/bin/wasmtime
wasmtime-cli:
	@command -v wasmtime >/dev/null || [ -x $(WASMTIME_CLI) ] || \
		$(CARGO) install wasmtime-cli --version 48.0.8 --locked --root $(TARGET_DIR)/wasmtime-cli

# Benchmarks print figures; they assert nothing about speed.
# bench: the host next to bench/native (hello world, 1 GiB streams, idle RSS, start-up, 10,000
# suspended requests, 16,000 instances), each target of the performance issue beside its figure.
# Options go in ARGS, e.g. make bench ARGS="--only streams --rounds 3" or ARGS=--vs-wasmtime;
# python3 bench/run.py --help lists them.
bench: build test-guests bench-native $(if $(findstring --vs-wasmtime,$(ARGS)),wasmtime-cli)
	python3 bench/run.py --host $(HOST_BIN) --native $(NATIVE_BIN) --guests $(GUESTS) \
		--examples examples/routes --target-dir $(TARGET_DIR) $(ARGS)

bench-static: build
	@command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)"; exit 1; }
	sh bench/static.sh $(HOST_BIN) examples/routes

# state: kv req/s (embedded, Redis) beside hello world; 10,000 parked long polls woken by one POST.
bench-state: build
	sh scripts/ensure-tools.sh redis wrk
	python3 bench/state.py $(HOST_BIN) examples/routes

# bench-slow: Debian's slowhttptest (installed if missing) against the host: slowloris, slow
# body, slow read and a range attack, 75 s and 3,000 connections each (200 for slow read), each
# on a fresh host, while probe clients measure that GET /hello-world is still served (req/s,
# success ratio, p50/p99, host RSS and open files), a table per attack. Figures only; options in ARGS, e.g.
# make bench-slow ARGS="--only slowloris --secs 30"; python3 bench/slow.py --help lists them.
# bench-faults: GET /hello-world under wrk while one client (ARGS=--fault-clients N: more) requests
# a handler failing in each way (loop, trap, panic, memory growth, one huge allocation, recursion)
# in each hook and pull, at most 50 times a second (ARGS=--fault-rate 0: as fast as it can), a row
# per case: req/s alone and with it, their ratio, whether every failing request got what the host
# promises, peak RSS. Figures only; python3 bench/faults.py --help.
.PHONY: bench-faults
bench-faults: build test-guests
	sh scripts/ensure-tools.sh wrk
	python3 bench/faults.py --host $(HOST_BIN) --guests $(GUESTS) --examples examples/routes $(ARGS)

.PHONY: bench-slow soak
bench-slow: build test-guests
	sh scripts/ensure-tools.sh slowhttptest
	python3 bench/slow.py --host $(HOST_BIN) --guests $(GUESTS) --examples examples/routes $(ARGS)

# soak: DURATION minutes (default 10) of mixed load on one host (wrk and Python clients: hello,
# JSON params, uploads sized and chunked, streams, SSE clients that come and go, slow clients, a
# hot reload every 5 s, traps and other faults), checking every answer; a line a minute (requests,
# expected and unexpected errors, p99, host RSS) and a verdict: unexpected errors, RSS flat after
# warm-up. e.g. make soak DURATION=2; ARGS=--strict exits 1 on a bad verdict.
DURATION ?= 10
soak: build test-guests
	sh scripts/ensure-tools.sh wrk
	python3 bench/soak.py --host $(HOST_BIN) --guests $(GUESTS) --examples examples/routes --minutes $(DURATION) $(ARGS)

# Fuzzing of the HTTP/1.1 codec (host/src/http/fuzz.rs); `make test` runs a short round of it.
# fuzz-tools: h11 (PyPI, pinned) in a venv under target/fuzz, the differential test's oracle.
# fuzz: every property for CASES cases each, or SECONDS in all (one minute without either), e.g.
# make fuzz CASES=10000000 or make fuzz SECONDS=600; SEED=n replays a run. Prints what it covered.
.PHONY: fuzz fuzz-tools
H11_PYTHON := $(TARGET_DIR)/fuzz/venv/bin/python3

fuzz-tools:
	sh scripts/ensure-fuzz.sh >/dev/null

fuzz: fuzz-tools
	WASM_HOST_H11_PYTHON=$(H11_PYTHON) WASM_HOST_FUZZ_CASES=$(CASES) \
		WASM_HOST_FUZZ_SECONDS=$(if $(CASES)$(SECONDS),$(SECONDS),60) WASM_HOST_FUZZ_SEED=$(SEED) \
		$(CARGO) test --release --workspace --lib http::fuzz -- --nocapture --test-threads=1
