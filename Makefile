# pacer: `make run` shows the policy at work, `make test` is what CI runs.
# Every setup step is here, idempotent, so a fresh clone on a new machine passes.

SHELL := /bin/bash
export PATH := $(HOME)/.cargo/bin:$(PATH)
CARGO ?= cargo
WASM_TARGET := wasm32-unknown-unknown

.PHONY: run schedule test bench setup npm fmt-check clippy wasm-check unit-tests node-tests doc wasm

WASM_RAW := target/$(WASM_TARGET)/wasm/pacer.wasm
WASM_OPT := node_modules/.bin/wasm-opt
# Features rustc 1.95 emits for wasm32 by default; wasm-opt refuses the module without them.
WASM_FEATURES := --enable-bulk-memory --enable-sign-ext --enable-mutable-globals \
	--enable-nontrapping-float-to-int --enable-multivalue --enable-reference-types

## run: the main job: download the embedded origin's catalogue, paced by the wasm policy
## (about a minute; files land in ./pacer-downloads, and a second run skips them)
run: wasm
	$(CARGO) run --quiet --release --locked -p pacer-host -- run

## schedule: the core alone: a paced schedule on a virtual clock
schedule:
	$(CARGO) run --quiet --release --example schedule

## test: formatting, clippy (native + wasm32), the module, all Rust tests and doctests (the
## host's replay dist/pacer.wasm in wasmtime), the Node conformance runner, docs
test: setup fmt-check clippy wasm-check wasm unit-tests node-tests doc

## setup: the wasm32 target (asks rustup only when it is missing)
setup:
	@rustup target list --installed | grep -qx '$(WASM_TARGET)' || rustup target add $(WASM_TARGET)

## npm: the pinned JS tools (binaryen's wasm-opt), from package-lock.json
npm: node_modules/.installed
node_modules/.installed: package.json package-lock.json
	@command -v node >/dev/null && command -v npm >/dev/null || \
		{ apt-get update && apt-get install -y nodejs npm; }
	npm ci --no-audit --no-fund
	@touch $@

## wasm: the ABI v1 policy module, dist/pacer.wasm (core only: `-p pacer` alone keeps the
## host's and the browser crate's dependencies out of it)
wasm: dist/pacer.wasm
dist/pacer.wasm: setup node_modules/.installed $(shell find src -name '*.rs') Cargo.toml Cargo.lock
	$(CARGO) build -p pacer --profile wasm --target $(WASM_TARGET) --locked
	@mkdir -p dist
	$(WASM_OPT) -Os $(WASM_FEATURES) --strip-debug --strip-producers $(WASM_RAW) -o $@.tmp
	@mv $@.tmp $@
	@echo "dist/pacer.wasm: $$(stat -c %s $@) bytes"

fmt-check:
	$(CARGO) fmt --all -- --check

clippy: setup
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings
	$(CARGO) clippy -p pacer --target $(WASM_TARGET) --locked -- -D warnings

wasm-check: setup
	$(CARGO) build -p pacer --target $(WASM_TARGET) --locked

unit-tests: wasm
	$(CARGO) test --workspace --locked

## node-tests: the shared vectors and hostile inputs on Node's own WebAssembly engine
node-tests: wasm
	node --test tests/node/

doc:
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --workspace --no-deps --locked

## bench: criterion benchmarks, pacer side by side with governor (see BENCHMARKS.md)
bench: wasm
	$(CARGO) bench --bench decisions --locked
	$(CARGO) bench -p pacer-host --bench hosted --locked
	$(CARGO) bench -p pacer-host --bench pool --locked
