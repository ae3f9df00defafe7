# pacer: `make run` shows the policy at work, `make test` is what CI runs.
# Every setup step is here, idempotent, so a fresh clone on a new machine passes.

SHELL := /bin/bash
export PATH := $(HOME)/.cargo/bin:$(PATH)
CARGO ?= cargo
WASM_TARGET := wasm32-unknown-unknown

.PHONY: run schedule serve test bench bench-www setup npm fmt-check clippy wasm-check unit-tests node-tests \
	browser-tests doc wasm www wasm-bindgen-cli chromium nginx redis ca-certificates examples \
	ci-switches budgets fuzz fuzz-build fuzz-check fuzz-merge cxx

WASM_RAW := target/$(WASM_TARGET)/wasm/pacer.wasm
WASM_OPT := node_modules/.bin/wasm-opt
# Features rustc 1.95 emits for wasm32 by default; wasm-opt refuses the module without them.
WASM_FEATURES := --enable-bulk-memory --enable-sign-ext --enable-mutable-globals \
	--enable-nontrapping-float-to-int --enable-multivalue --enable-reference-types

## run: the main job: download the embedded origin's catalogue, paced by the wasm policy
## (about a minute; files land in ./pacer-downloads, and a second run skips them). A dev build,
## the one `make test` makes: it compiles in about 4 min instead of 6.5 on 2 cores, and paces
## the same (the policy runs as code Cranelift compiled, at any build setting; sha2 is
## optimised even here). `cargo run --release -p pacer-cli -- run` for the optimised binary.
run: wasm
	$(CARGO) run --quiet --locked -p pacer-cli -- run

## serve: the browser simulator at http://127.0.0.1:8000/ (pacer serve)
serve: www
	$(CARGO) run --quiet --release --locked -p pacer-cli -- serve

## schedule: the core alone: a paced schedule on a virtual clock
schedule:
	$(CARGO) run --quiet --release --example schedule

## test: formatting, clippy (native + wasm32), the modules, all Rust tests and doctests (the
## host's replay dist/pacer.wasm in wasmtime), the Node conformance runner, the page in
## headless Chromium, docs, the fuzz targets over their corpora and for a short run, the two wasm
## byte budgets
test: ci-switches setup fmt-check clippy wasm-check wasm unit-tests node-tests examples www browser-tests doc \
	fuzz-check budgets

## ci-switches: under CI (`CI` set, as CI services and .ci/run set it) no switch may shrink a
## check: PACER_BLESS (rewrites expected files) is refused, and so is a count or time budget
## below its default. The tests refuse them too; this also covers proptest blocks outside
## tests/ (PROPTEST_CASES, default 256) and says so before anything builds.
CI_FLOORS := PROPTEST_CASES:256 PACER_BUCKET_SECONDS:60 PACER_GROUP_CASES:200
ci-switches:
	@case "$${CI:-}" in ""|0|false) exit 0;; esac; \
	refused=; \
	[ -z "$${PACER_BLESS+set}" ] || refused="$$refused PACER_BLESS (rewrites expected files);"; \
	for floor in $(CI_FLOORS); do \
		name=$${floor%%:*}; least=$${floor##*:}; value=$$(printenv "$$name") || continue; \
		[[ "$$value" =~ ^[0-9]+$$ ]] && (( 10#$$value >= least )) || \
			refused="$$refused $$name=$$value (must be a whole number of at least $$least);"; \
	done; \
	[ -z "$$refused" ] || { echo "refused because CI is set (CI runs every check in full):$$refused unset them" >&2; exit 1; }

## budgets: the policy module and the page's wasm within their byte budgets (BENCHMARKS.md)
MODULE_WASM_BUDGET := 98304
PAGE_WASM_BUDGET := 102400
budgets: wasm www
	@within() { size=$$(stat -c %s "$$1") || exit 1; \
		if (( size > $$2 )); then \
			echo "$$1: $$size bytes, over its budget of $$2 bytes by $$(( size - $$2 ))" >&2; exit 1; fi; \
		echo "$$1: $$size bytes, budget $$2 ($$(( $$2 - size )) to spare)"; }; \
	within dist/pacer.wasm $(MODULE_WASM_BUDGET) && within www/pkg/pacer_www_bg.wasm $(PAGE_WASM_BUDGET)

## setup: the wasm32 target (asks rustup only when it is missing)
setup:
	@rustup target list --installed | grep -qx '$(WASM_TARGET)' || rustup target add $(WASM_TARGET)

## npm: the pinned JS tools (binaryen's wasm-opt, uPlot, playwright-core), from package-lock.json
npm: node_modules/.installed
node_modules/.installed: package.json package-lock.json
	@command -v node >/dev/null && command -v npm >/dev/null || \
		{ apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y nodejs npm; }
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

## www: the browser crate behind wasm-bindgen, into www/pkg/, and uPlot into www/vendor/.
## Its own target dir and RUSTFLAGS: getrandom uses `wasm_js` there (crypto.getRandomValues),
## not the ABI module's no-backend setting from .cargo/config.toml.
WASM_BINDGEN_VERSION := $(shell sed -n '/^name = "wasm-bindgen"$$/{n;s/^version = "\(.*\)"/\1/p;}' Cargo.lock)
WWW_RAW := target/www/$(WASM_TARGET)/www/pacer_www.wasm
# -Oz to a fixed point, and no data below 1 KiB (Rust's stack starts at 1 MiB and grows
# down; its data sits above): 0.9 KB smaller than -Os, the same speed (BENCHMARKS.md).
WWW_OPT := --flatten --rereloop -Oz --merge-similar-functions --monomorphize --converge --low-memory-unused \
	--strip-target-features
www: www/pkg/pacer_www_bg.wasm www/vendor/uPlot.esm.js
www/pkg/pacer_www_bg.wasm: node_modules/.installed $(shell find src sim/src www/src -name '*.rs') \
		Cargo.toml Cargo.lock sim/Cargo.toml www/Cargo.toml scripts/short-imports.mjs \
		| setup wasm-bindgen-cli
	RUSTFLAGS= CARGO_TARGET_DIR=target/www $(CARGO) build -p pacer-www --profile www \
		--target $(WASM_TARGET) --locked
	@rm -rf www/pkg.tmp
	wasm-bindgen --target web --no-typescript --out-dir www/pkg.tmp $(WWW_RAW)
	node scripts/short-imports.mjs www/pkg.tmp pacer_www
	$(WASM_OPT) $(WWW_OPT) $(WASM_FEATURES) --strip-debug --strip-producers \
		www/pkg.tmp/pacer_www_bg.wasm -o www/pkg.tmp/pacer_www_bg.opt.wasm
	@mv www/pkg.tmp/pacer_www_bg.opt.wasm www/pkg.tmp/pacer_www_bg.wasm
	@rm -rf www/pkg && mv www/pkg.tmp www/pkg
	@echo "www/pkg/pacer_www_bg.wasm: $$(stat -c %s $@) bytes"
www/vendor/uPlot.esm.js: node_modules/.installed
	@mkdir -p www/vendor
	cp node_modules/uplot/dist/uPlot.esm.js node_modules/uplot/dist/uPlot.min.css www/vendor/
	@touch $@

## wasm-bindgen-cli: exactly the wasm-bindgen version in Cargo.lock (installed once, ~2 min)
wasm-bindgen-cli:
	@[ "$$(wasm-bindgen --version 2>/dev/null)" = "wasm-bindgen $(WASM_BINDGEN_VERSION)" ] || \
		$(CARGO) install wasm-bindgen-cli --version $(WASM_BINDGEN_VERSION)

## nginx: Debian's, the real origin nobody here wrote (cli/tests/nginx.rs starts its own on a
## free port; the package's own service is not used)
nginx:
	@[ -x /usr/sbin/nginx ] || { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends nginx-light; }

## redis: Debian's redis-server, for the shared-limit tests (cli/tests/shared.rs and
## shared_trust.rs start their own on a free port in a temporary directory; the package's own
## service is not used). Debian builds it with TLS, which shared_trust.rs uses (--tls-port).
redis:
	@[ -x /usr/bin/redis-server ] || { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends redis-server; }

## ca-certificates: the platform's root certificates, which `pacer run` checks an https origin
## against (cli/tests/https.rs expects an untrusted test CA to be refused by them, not to find
## no roots at all)
ca-certificates:
	@[ -s /etc/ssl/certs/ca-certificates.crt ] || { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ca-certificates; }

## chromium: Debian's, for the browser tests (playwright-core drives it; it downloads no browser)
chromium:
	@[ -x /usr/bin/chromium ] || { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium fonts-liberation; }

## browser-tests: the page in headless Chromium, served by `pacer serve`, checked against the
## native simulator (`pacer simulate`)
browser-tests: www wasm chromium node_modules/.installed
	@# target/debug/pacer as the Rust tests build it (the same features: no second build)
	$(CARGO) test --workspace --locked --no-run --quiet
	node --test tests/browser/

fmt-check:
	$(CARGO) fmt --all -- --check
	$(CARGO) fmt --manifest-path fuzz/Cargo.toml -- --check

clippy: setup
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings
	$(CARGO) clippy -p pacer --target $(WASM_TARGET) --locked -- -D warnings
	RUSTFLAGS= CARGO_TARGET_DIR=target/www $(CARGO) clippy -p pacer-www --target $(WASM_TARGET) \
		--locked -- -D warnings

wasm-check: setup
	$(CARGO) build -p pacer --target $(WASM_TARGET) --locked

unit-tests: wasm nginx redis ca-certificates
	$(CARGO) test --workspace --locked
	@# The bucket rule's property test: as many random sequences as fit in 60 s and never fewer
	@# than 100,000, with the count. The count must be printed: a test filtered away or renamed
	@# would pass having run nothing.
	set -o pipefail; $(CARGO) test -p pacer --test bucket_rule --locked -- --ignored --nocapture \
		--exact the_bucket_rule_holds_in_every_window_across_everything | tee target/bucket-rule.log
	@grep -q 'bucket rule: 0 violations in [0-9]' target/bucket-rule.log || \
		{ echo "the bucket rule printed no count: it did not run" >&2; exit 1; }

## examples: the three embedding examples, each against dist/pacer.wasm: Rust (pacer-host,
## 16 tokio tasks), Node's WebAssembly (the example in ABI.md), Python (PyPI's wasmtime)
examples: wasm target/py/.installed
	$(CARGO) run --quiet --locked -p pacer-host --features tokio --example embed
	node examples/node/embed.mjs dist/pacer.wasm
	target/py/bin/python examples/python/embed.py dist/pacer.wasm

## python: a venv with PyPI's wasmtime (pinned in examples/python/requirements.txt), once
target/py/.installed: examples/python/requirements.txt
	@command -v python3 >/dev/null || { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y python3; }
	python3 -m venv target/py || { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y python3-venv \
		&& python3 -m venv target/py; }
	target/py/bin/pip install --quiet -r examples/python/requirements.txt
	@touch $@

## node-tests: the shared vectors and hostile inputs on Node's own WebAssembly engine
node-tests: wasm
	node --test tests/node/

doc:
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --workspace --no-deps --locked

## bench-www: the simulator's speed in headless Chromium and the page's weight (BENCHMARKS.md)
bench-www: www wasm chromium node_modules/.installed
	$(CARGO) test --workspace --locked --no-run --quiet
	node scripts/browser-bench.mjs

## bench: criterion benchmarks, pacer side by side with governor (see BENCHMARKS.md)
bench: wasm redis
	$(CARGO) bench --bench decisions --locked
	$(CARGO) bench -p pacer-host --bench hosted --locked
	$(CARGO) bench -p pacer-host --bench pool --locked
	$(CARGO) bench -p pacer-cli --bench group --locked

## fuzz: coverage-guided fuzzing (libFuzzer, through the libfuzzer-sys crate on stable Rust) of
## the config reader, state_import, the index reader, the RateLimit / X-RateLimit headers,
## Retry-After and a hosted policy driven by random calls: each target for FUZZ_RUNS
## executions (10 million) or FUZZ_SECONDS (15 min; the hosted one FUZZ_HOSTED_SECONDS, 90 min),
## whichever comes first, one after another. New inputs go to target/fuzz/corpus/<target>/
## (see fuzz-merge); a crash, timeout or leak stops it, its input in target/fuzz/artifacts/.
## Figures: BENCHMARKS.md, "Fuzzing".
FUZZ_TARGETS := config state_import catalogue ratelimit retry_after hosted
FUZZ_RUNS ?= 10000000
FUZZ_SECONDS ?= 900
FUZZ_HOSTED_SECONDS ?= 5400
FUZZ_CHECK_SECONDS ?= 10
FUZZ_HOST := $(shell rustc -vV 2>/dev/null | sed -n 's/^host: //p')
FUZZ_BIN := target/fuzz/$(FUZZ_HOST)/release
# Sanitizer coverage by hand, on stable: fuzz/rustc-wrapper.sh adds it to the crates under
# test only (not wasmtime, not Cranelift). `--cfg fuzzing` for libfuzzer-sys; `--target` keeps
# the flags off build scripts and proc-macros.
FUZZ_RUSTFLAGS := --cfg fuzzing
# Per input: 10 s; per process: 2 GiB (the hosted target reserves wasmtime's pool, not RSS).
FUZZ_FLAGS := -timeout=10 -rss_limit_mb=2048 -max_len=4096 -print_final_stats=1
# $(1) is the shell's target variable: the dictionary is looked up when the recipe runs.
fuzz_flags = $(FUZZ_FLAGS) -artifact_prefix=target/fuzz/artifacts/$(1)/ \
	$$([ -f fuzz/dict/$(1).dict ] && echo -dict=fuzz/dict/$(1).dict)

fuzz: fuzz-build
	@for t in $(FUZZ_TARGETS); do \
		mkdir -p target/fuzz/corpus/$$t target/fuzz/artifacts/$$t; \
		seconds=$(FUZZ_SECONDS); [ $$t = hosted ] && seconds=$(FUZZ_HOSTED_SECONDS); \
		echo "== fuzz $$t: $(FUZZ_RUNS) runs or $$seconds s (log: target/fuzz/$$t.log)"; \
		$(FUZZ_BIN)/$$t $(call fuzz_flags,$$t) -runs=$(FUZZ_RUNS) -max_total_time=$$seconds \
			target/fuzz/corpus/$$t fuzz/corpus/$$t > target/fuzz/$$t.log 2>&1 \
			|| { tail -40 target/fuzz/$$t.log; echo "fuzz $$t: FAILED"; exit 1; }; \
		grep -E '^(stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb)|#[0-9]+ +DONE)' \
			target/fuzz/$$t.log; \
	done

## fuzz-check (in `make test`): each target over its committed corpus (every seed and every
## crash found so far, as a regression), then a short run from it; any crash, timeout or
## out-of-memory fails the build.
fuzz-check: fuzz-build
	@for t in $(FUZZ_TARGETS); do \
		rm -rf target/fuzz/check/$$t; mkdir -p target/fuzz/check/$$t target/fuzz/artifacts/$$t; \
		n=$$(ls fuzz/corpus/$$t | wc -l); \
		[ "$$n" -gt 0 ] || { echo "fuzz/corpus/$$t is empty"; exit 1; }; \
		$(FUZZ_BIN)/$$t $(call fuzz_flags,$$t) -runs=0 fuzz/corpus/$$t > target/fuzz/$$t.check.log 2>&1 \
			|| { tail -30 target/fuzz/$$t.check.log; echo "fuzz-check $$t: the corpus fails"; exit 1; }; \
		$(FUZZ_BIN)/$$t $(call fuzz_flags,$$t) -max_total_time=$(FUZZ_CHECK_SECONDS) \
			target/fuzz/check/$$t fuzz/corpus/$$t >> target/fuzz/$$t.check.log 2>&1 \
			|| { tail -30 target/fuzz/$$t.check.log; echo "fuzz-check $$t: failed"; exit 1; }; \
		echo "fuzz-check $$t: $$n corpus inputs ok; $$(sed -n 's/^stat::number_of_executed_units: *//p' \
			target/fuzz/$$t.check.log | tail -1) runs in $(FUZZ_CHECK_SECONDS) s, no crash"; \
	done

## fuzz-merge: what `make fuzz` found that adds coverage, minimised into fuzz/corpus/ (commit it)
fuzz-merge: fuzz-build
	@for t in $(FUZZ_TARGETS); do \
		$(FUZZ_BIN)/$$t $(call fuzz_flags,$$t) -merge=1 fuzz/corpus/$$t target/fuzz/corpus/$$t \
			> target/fuzz/$$t.merge.log 2>&1 || { tail -20 target/fuzz/$$t.merge.log; exit 1; }; \
		echo "fuzz/corpus/$$t: $$(ls fuzz/corpus/$$t | wc -l) inputs"; \
	done

## fuzz-build: the targets, in their own crate and target dir (target/fuzz), so their flags
## never touch the workspace's build; the hosted target runs dist/pacer.wasm
fuzz-build: wasm cxx
	RUSTFLAGS="$(FUZZ_RUSTFLAGS)" RUSTC_WRAPPER=$(CURDIR)/fuzz/rustc-wrapper.sh $(CARGO) build --release --locked \
		--manifest-path fuzz/Cargo.toml \
		--target $(FUZZ_HOST) --target-dir target/fuzz

## cxx: a C++ compiler, for libFuzzer's own sources (libfuzzer-sys builds them)
cxx:
	@command -v c++ >/dev/null || { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends g++; }
