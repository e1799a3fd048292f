# Myelin developer commands. `make run` and `make test` are all a newcomer needs.
.PHONY: run test deps lint build

# Debian packages the build needs: RocksDB (linked, not compiled) and libclang for its bindings.
APT_PACKAGES := librocksdb-dev libclang-dev

deps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi

# Build and run a single node: context `default`, gRPC 8124, HTTP 8024, data in ./data.
run: deps
	cargo run --release -p myelin-cli -- serve

build: deps
	cargo build --release

lint: deps
	cargo fmt --all -- --check
	cargo clippy --release --workspace --all-targets -- -D warnings

# Everything CI checks: formatting, lints, and every test (release profile, so RocksDB bindings
# and our crates are built once for the binary and the tests alike).
test: lint
	cargo test --release
