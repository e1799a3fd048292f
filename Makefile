# Myelin developer commands. `make run` and `make test` are all a newcomer needs.
.PHONY: run test deps java-deps lint build axon-test

# Debian packages the build needs: RocksDB (linked, not compiled) and libclang for its bindings.
APT_PACKAGES := librocksdb-dev libclang-dev

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

deps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi

# The Axon Framework suite needs a JDK 17+ and Maven.
java-deps:
	@missing=""; command -v javac >/dev/null 2>&1 || missing="$$missing openjdk-17-jdk-headless"; \
	command -v mvn >/dev/null 2>&1 || missing="$$missing maven"; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi

# Build and run a single node: context `default`, gRPC 8124, HTTP 8024, data in ./data.
run: deps
	cargo run --release -p myelin-cli -- serve

build: deps
	cargo build --release

lint: deps
	cargo fmt --all -- --check
	cargo clippy --release --workspace --all-targets -- -D warnings

# The real-client suite: an Axon Framework 4 application against the release binary.
axon-test: deps java-deps
	cargo build --release -p myelin-cli
	cd tests/axon-app && mvn -B -ntp test -Dmyelin.binary=$(CURDIR)/target/release/myelin

# Everything CI checks: formatting, lints, every Rust test (release profile, so the RocksDB
# bindings and our crates are built once for the binary and the tests), then the Axon suite.
test: lint
	cargo test --release
	$(MAKE) axon-test
