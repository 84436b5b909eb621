# The commands that matter; see README.md.
CARGO_TARGET_DIR ?= /var/tmp/strata-target
export CARGO_TARGET_DIR
SECONDS ?= 60
# The project's Python environment (maturin, pytest, numpy, moto's server): requirements-dev.txt.
VENV ?= /var/tmp/strata-venv
export VENV
PROPTEST_CASES ?= 1000
export PROPTEST_CASES

.PHONY: setup venv python demo test bench fuzz-smoke lint lambdas

# librocksdb-sys needs libclang (bindgen); install it on Debian when missing.
setup:
	@if ! ls /usr/lib/llvm-*/lib/libclang.so* /usr/lib/llvm-*/lib/libclang-[0-9]*.so* >/dev/null 2>&1 \
		&& ! ldconfig -p | grep -qE 'libclang(-[0-9.]+)?\.so'; then \
		echo "installing libclang-dev (needed to build RocksDB bindings)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libclang-dev; \
	fi
	@command -v cargo >/dev/null || { echo "cargo not found: install Rust (rustup) first"; exit 1; }
	@$(MAKE) --no-print-directory venv

# The Python environment in $(VENV), (re)installed when requirements-dev.txt changes.
venv: $(VENV)/.installed
$(VENV)/.installed: requirements-dev.txt
	@test -x $(VENV)/bin/python || python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check -r requirements-dev.txt
	@touch $@

# The Python package (python/: Chroma's client API on strata) built by maturin into a wheel
# in $(CARGO_TARGET_DIR)/wheels (the release profile, the shared target directory: RocksDB
# is not compiled again) and installed into $(VENV).
WHEELS := $(CARGO_TARGET_DIR)/wheels
python: venv
	rm -f $(WHEELS)/strata-*.whl
	cd python && $(VENV)/bin/maturin build --release --quiet -i $(VENV)/bin/python --out $(WHEELS)
	$(VENV)/bin/pip install -q --disable-pip-version-check --force-reinstall --no-deps $(WHEELS)/strata-*.whl

# The main job on the embedded default: a local directory.
demo: setup
	cargo run --release -p strata-cli --bin strata -- --store ./strata-data demo

# Deployable Lambda packages in dist/, debug info stripped (the release profile keeps line
# tables for backtraces, and RocksDB's C++ debug info would make a 500 MB binary):
#   dist/strata-stream-lambda.zip  the stream Lambda: `bootstrap` for the provided.al2023 runtime,
#                                  built without the default `compactor` feature (no RocksDB,
#                                  no engine, no clap)
#   dist/compactor/                the compactor Lambda: a container image context (Dockerfile + binary)
lambdas: setup
	cargo build --release -p strata-pipeline --no-default-features --bin strata-stream-lambda
	mkdir -p dist/stream dist/compactor
	strip -o dist/stream/bootstrap $(CARGO_TARGET_DIR)/release/strata-stream-lambda
	cargo build --release -p strata-pipeline --bin strata-compactor-lambda
	strip -o dist/compactor/strata-compactor-lambda $(CARGO_TARGET_DIR)/release/strata-compactor-lambda
	cp tools/pipeline/deploy/compactor.Dockerfile dist/compactor/Dockerfile
	rm -f dist/strata-stream-lambda.zip
	cd dist/stream && python3 -m zipfile -c ../strata-stream-lambda.zip bootstrap
	@for f in dist/stream/bootstrap dist/compactor/strata-compactor-lambda dist/strata-stream-lambda.zip; do \
		printf '%-42s %10s bytes\n' $$f $$(stat -c %s $$f); \
	done
	@printf 'newest glibc symbol needed: %s (Amazon Linux 2023 has 2.34)\n' \
		$$(objdump -T dist/stream/bootstrap dist/compactor/strata-compactor-lambda | grep -o 'GLIBC_[0-9.]*' | sort -V | tail -1)

# The tests (what CI runs).
# S3 and DynamoDB integration tests run against moto's server on 127.0.0.1, started here
# and stopped after (by its PID), whatever the tests' outcome. Then the Python package is
# built and its pytest suite (python/tests) runs against it.
test: setup
	@eval "$$(bash .ci/moto.sh start)"; status=0; \
	cargo test --release --workspace || status=$$?; \
	[ $$status -ne 0 ] || cargo test --release -p strata-pipeline --no-default-features || status=$$?; \
	bash .ci/moto.sh stop; exit $$status
	@$(MAKE) --no-print-directory python
	$(VENV)/bin/python -m pytest -q -rs -p no:cacheprovider python/tests

bench: setup
	cargo bench --bench formats

# What CI checks besides the tests (.ci/run runs the same).
lint:
	cargo fmt --all -- --check
	python3 .ci/invariants.py
	cargo clippy --release --workspace --all-targets -- -D warnings
	cargo clippy --release -p strata-pipeline --no-default-features --all-targets -- -D warnings
	RUSTDOCFLAGS="-D warnings" cargo doc --release --workspace --no-deps --quiet

fuzz-smoke:
	@if [ -f fuzz/run-smoke.sh ]; then bash fuzz/run-smoke.sh $(SECONDS); else echo "skipping fuzz smoke: fuzz/run-smoke.sh not present"; fi
