#!/usr/bin/env bash
# RUSTC_WRAPPER for the fuzz build (`make fuzz-build`): adds libFuzzer's sanitizer coverage to
# the crates under test only. Instrumenting wasmtime and Cranelift too would make every input
# pay for walking their counters (the hosted target ran 10x slower) and the cold build longer,
# for coverage of code the targets do not aim at. Stable Rust has no per-crate RUSTFLAGS, so a
# wrapper it is: cargo runs `rustc-wrapper.sh rustc ARGS...`.
set -euo pipefail
rustc=$1
shift
name=
previous=
for arg in "$@"; do
	[ "$previous" = --crate-name ] && name=$arg
	previous=$arg
done
case $name in
# The core, the host, the targets (each bin is a crate; the cli parsers are included in
# theirs by path), and the parsers the cli's modules call into.
pacer | pacer_host | config | state_import | catalogue | ratelimit | retry_after | hosted | \
	httpdate | serde_json)
	# What cargo-fuzz passes (less its nightly-only AddressSanitizer): inline 8-bit counters
	# and the PC table feed libFuzzer's coverage; compare tracing lets it solve magic values.
	exec "$rustc" "$@" -Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
		-Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
		-Cllvm-args=-sanitizer-coverage-pc-table \
		-Cllvm-args=-sanitizer-coverage-trace-compares
	;;
*) exec "$rustc" "$@" ;;
esac
