# pacer: `make run` shows the policy at work, `make test` is what CI runs.
# Every setup step is here, idempotent, so a fresh clone on a new machine passes.

SHELL := /bin/bash
export PATH := $(HOME)/.cargo/bin:$(PATH)
CARGO ?= cargo
WASM_TARGET := wasm32-unknown-unknown

.PHONY: run test bench setup fmt-check clippy wasm-check unit-tests doc

## run: print a paced download schedule from the guide's defaults
run:
	$(CARGO) run --quiet --release --example schedule

## test: formatting, clippy (native + wasm32), all tests and doctests, docs
test: setup fmt-check clippy wasm-check unit-tests doc

## setup: the wasm32 target (asks rustup only when it is missing)
setup:
	@rustup target list --installed | grep -qx '$(WASM_TARGET)' || rustup target add $(WASM_TARGET)

fmt-check:
	$(CARGO) fmt --all -- --check

clippy: setup
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings
	$(CARGO) clippy -p pacer --target $(WASM_TARGET) --locked -- -D warnings

wasm-check: setup
	$(CARGO) build -p pacer --target $(WASM_TARGET) --locked

unit-tests:
	$(CARGO) test --workspace --locked

doc:
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --workspace --no-deps --locked

## bench: criterion benchmarks, pacer side by side with governor (see BENCHMARKS.md)
bench:
	$(CARGO) bench --bench decisions --locked
