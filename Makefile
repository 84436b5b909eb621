# The commands that matter; see README.md.
CARGO_TARGET_DIR ?= /var/tmp/strata-target
export CARGO_TARGET_DIR
SECONDS ?= 60
PROPTEST_CASES ?= 1000
export PROPTEST_CASES

.PHONY: setup demo test bench fuzz-smoke lint lambdas

# librocksdb-sys needs libclang (bindgen); install it on Debian when missing.
setup:
	@if ! ls /usr/lib/llvm-*/lib/libclang.so* /usr/lib/llvm-*/lib/libclang-[0-9]*.so* >/dev/null 2>&1 \
		&& ! ldconfig -p | grep -qE 'libclang(-[0-9.]+)?\.so'; then \
		echo "installing libclang-dev (needed to build RocksDB bindings)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libclang-dev; \
	fi
	@command -v cargo >/dev/null || { echo "cargo not found: install Rust (rustup) first"; exit 1; }

# The main job on the embedded default: a local directory.
demo: setup
	cargo run --release -p strata-cli --bin strata -- --store ./strata-data demo

# The two Lambda runtime binaries (README, "The receipt pipeline"): the stream one without
# the default `compactor` feature, so it links neither RocksDB nor the engine nor clap.
lambdas: setup
	cargo build --release -p strata-pipeline --no-default-features --bin strata-stream-lambda
	cargo build --release -p strata-pipeline --bin strata-compactor-lambda

# The tests (what CI runs).
test: setup
	cargo test --release --workspace

bench: setup
	cargo bench --bench formats

lint:
	cargo fmt --all -- --check
	cargo clippy --release --all-targets -- -D warnings

fuzz-smoke:
	@if [ -f fuzz/run-smoke.sh ]; then bash fuzz/run-smoke.sh $(SECONDS); else echo "skipping fuzz smoke: fuzz/run-smoke.sh not present"; fi
