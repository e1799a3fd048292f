#!/usr/bin/env bash
# docker/smoke.sh: builds Myelin's image and runs it for real, on a machine with no Docker engine
# and no registry access (nothing is pulled), then tears everything down.
#
#   sudo docker/smoke.sh     (root: rootful podman. About 20-60 s once the binary is built and the
#                             tools are installed; it installs podman & co. with apt and its
#                             Python packages, docker/smoke-requirements.txt, in a venv if missing.
#                             Node logs are left in /tmp/myelin-smoke-logs.)
#
# 1. Builds the release binary (cargo) unless MYELIN_BINARY names one.
# 2. Assembles the image with buildah, without pulling:
#    - a stand-in for gcr.io/distroless/cc-debian12:nonroot, from the Debian packages distroless
#      itself is made of (libc6, libgcc-s1, libstdc++6, libgomp1, libssl3, base-files, netbase),
#      plus its nonroot user (65532) and /tmp;
#    - a stand-in for the builder stage: docker/stage-runtime.sh lays out the binary, the shared
#      libraries distroless lacks and /axonserver, exactly as the Dockerfile's builder does;
#    - then the runtime stage of docker/Dockerfile itself, as written (ENV, WORKDIR, USER,
#      EXPOSE, VOLUME, HEALTHCHECK, ENTRYPOINT), with those two images in place of the pulled ones.
# 3. With podman (runc, vfs storage, cgroupfs, bridge network; all state in a private directory)
#    and podman-compose, it runs docker/docker-compose.yml (one node: append, read, down) and then
#    docker/docker-compose.cluster.yml with access control on: waits until the three nodes are
#    healthy (the image's HEALTHCHECK, i.e. `myelin healthcheck`) with three voters, appends
#    through one node and reads through the two others, checks that a call without a token and a
#    duplicate sequence number are refused, stops a node (SIGTERM to PID 1: it must exit 0 at
#    once), starts it again and reads everything back from it.
# 4. Removes what it started: containers, volumes, networks, images, its private directory, and
#    the host state that netavark changed (iptables chains, ip_forward) when it was not there before.
#
# Clients reach the nodes through ports published on 127.0.0.1 only; the nodes talk to each other
# on the Compose bridge network inside this machine. Everything is bounded: the whole run by
# SMOKE_TIMEOUT_S (default 900 s), and each wait by its own deadline.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
SMOKE_TIMEOUT_S=${SMOKE_TIMEOUT_S:-900}
if [[ -z "${MYELIN_SMOKE_BOUNDED:-}" ]]; then
    export MYELIN_SMOKE_BOUNDED=1
    # timeout(1) signals the whole run with TERM (the trap below tears down), then KILL.
    exec timeout --kill-after=60 "$SMOKE_TIMEOUT_S" bash "$0" "$@"
fi

IMAGE=localhost/myelin:smoke
BASE_IMAGE=localhost/myelin-smoke-distroless-cc:latest
STAGE_IMAGE=localhost/myelin-smoke-builder-out:latest
PROJECT_SINGLE=myelin-smoke-single
PROJECT_CLUSTER=myelin-smoke-cluster
VENV=${MYELIN_SMOKE_VENV:-/tmp/myelin-smoke-venv}
LOG_DIR=${MYELIN_SMOKE_LOGS:-/tmp/myelin-smoke-logs}
HOST_PORTS=(8024 8124 8025 8125 8026 8126)

started=$(date +%s)
step() { echo "== [$(($(date +%s) - started)) s] $*"; }
fail() {
    echo "SMOKE FAILED: $*" >&2
    exit 1
}

[[ $(id -u) == 0 ]] || fail "run as root (rootful podman and buildah)"
[[ $(uname -m) == x86_64 ]] || fail "x86_64 only (the Debian library paths)"

# ---- what the host had before, so that teardown removes only what this run created ----
had_ip_forward=$(cat /proc/sys/net/ipv4/ip_forward)
had_netavark_chains=no
had_run_containers=no
had_var_lib_containers=no
[[ -e /run/containers ]] && had_run_containers=yes
[[ -e /var/lib/containers ]] && had_var_lib_containers=yes

WORK=""
compose_files=()
cleanup() {
    local rc=$?
    set +e
    trap - EXIT INT TERM
    step "teardown"
    if [[ -n "$WORK" && -f "$WORK/containers.conf" ]]; then
        # Keep the nodes' logs for a look afterwards.
        mkdir -p "$LOG_DIR"
        for c in $(podman ps -a --format '{{.Names}}'); do
            podman logs "$c" 2>&1 | sed 's/\x1b\[[0-9;]*m//g' >"$LOG_DIR/$c.log"
        done
        for project in "${compose_files[@]}"; do
            timeout 120 "$VENV/bin/podman-compose" -p "${project%%=*}" -f "${project#*=}" down -v -t 10 \
                >>"$WORK/compose.log" 2>&1
        done
        cp "$WORK/compose.log" "$LOG_DIR/" 2>/dev/null
        echo "node logs: $LOG_DIR"
        # Whatever the compose runs left (the store is private: everything in it is this run's).
        timeout 60 podman rm -a -f -t 5 >/dev/null 2>&1
        for net in $(podman network ls --format '{{.Name}}'); do
            [[ "$net" == podman ]] || podman network rm -f "$net" >/dev/null 2>&1
        done
        podman volume prune -f >/dev/null 2>&1
        podman rmi -a -f >/dev/null 2>&1
        buildah rm --all >/dev/null 2>&1
        local remaining
        remaining=$(podman ps -aq | wc -l)
        echo "containers left: $remaining"
        findmnt -rn -o TARGET | grep "^$WORK/" | sort -r | while read -r m; do umount -l "$m"; done
        rm -rf --one-file-system "$WORK"
    fi
    # Host state netavark created for this run's networks.
    if [[ $had_netavark_chains == no ]] && command -v iptables >/dev/null; then
        for table in filter nat; do
            iptables -t "$table" -S 2>/dev/null | grep -E '^-A (INPUT|FORWARD|OUTPUT|PREROUTING|POSTROUTING) .*-j NETAVARK' |
                while read -r rule; do eval "iptables -t $table ${rule/#-A/-D}"; done
            for chain in $(iptables -t "$table" -S 2>/dev/null | awk '/^-N NETAVARK/ {print $2}'); do
                iptables -t "$table" -F "$chain"
            done
            for chain in $(iptables -t "$table" -S 2>/dev/null | awk '/^-N NETAVARK/ {print $2}'); do
                iptables -t "$table" -X "$chain"
            done
        done
    fi
    [[ $had_run_containers == no ]] && rm -rf --one-file-system /run/containers
    [[ $had_var_lib_containers == no ]] && rm -rf --one-file-system /var/lib/containers
    if [[ $(cat /proc/sys/net/ipv4/ip_forward) != "$had_ip_forward" ]]; then
        echo "$had_ip_forward" >/proc/sys/net/ipv4/ip_forward
    fi
    if [[ $rc == 0 ]]; then
        echo "SMOKE OK in $(($(date +%s) - started)) s"
    else
        echo "SMOKE FAILED (exit $rc) after $(($(date +%s) - started)) s" >&2
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

# ---- tools ----
step "tools"
missing=()
for tool in podman:podman buildah:buildah runc:runc netavark:/usr/lib/podman/netavark \
    aardvark-dns:/usr/lib/podman/aardvark-dns conmon:conmon iptables:iptables; do
    command -v "${tool#*:}" >/dev/null 2>&1 || missing+=("${tool%%:*}")
done
if ((${#missing[@]})); then
    echo "installing: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
iptables -S 2>/dev/null | grep -q -- '-N NETAVARK' && had_netavark_chains=yes
for port in "${HOST_PORTS[@]}"; do
    if [[ -n $(ss -Hltn "sport = :$port") ]]; then
        fail "port $port is in use on this machine; the Compose files publish 8024-8026 and 8124-8126"
    fi
done
if [[ ! -x "$VENV/bin/podman-compose" ]] || ! cmp -s "$ROOT/docker/smoke-requirements.txt" "$VENV/smoke-requirements.txt"; then
    rm -rf "$VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check -r "$ROOT/docker/smoke-requirements.txt"
    cp "$ROOT/docker/smoke-requirements.txt" "$VENV/smoke-requirements.txt"
fi
podman --version
buildah --version
"$VENV/bin/podman-compose" --version 2>/dev/null | grep podman-compose

# ---- a private podman/buildah environment: storage, run state, networks, events ----
WORK=$(mktemp -d /tmp/myelin-smoke.XXXXXX)
cat >"$WORK/containers.conf" <<EOF
[containers]
# The default rlimits cannot be set in this sandbox (setrlimit RLIMIT_NPROC: Operation not permitted).
default_ulimits = []
[network]
network_backend = "netavark"
network_config_dir = "$WORK/networks"
[engine]
# crun 1.8 refuses this machine's hybrid cgroup v1; runc works. No systemd: cgroupfs, file events.
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$WORK/events.log"
tmp_dir = "$WORK/libpod-tmp"
EOF
cat >"$WORK/storage.conf" <<EOF
[storage]
driver = "vfs"
runroot = "$WORK/run"
graphroot = "$WORK/storage"
EOF
export CONTAINERS_CONF="$WORK/containers.conf" CONTAINERS_STORAGE_CONF="$WORK/storage.conf"
export BUILDAH_ISOLATION=chroot

# ---- 1. the binary ----
if [[ -n "${MYELIN_BINARY:-}" ]]; then
    binary=$MYELIN_BINARY
else
    step "cargo build --release -p myelin-cli"
    make -C "$ROOT" -s deps
    (cd "$ROOT" && cargo build --release --locked -p myelin-cli)
    binary=$ROOT/target/release/myelin
fi
[[ -x "$binary" ]] || fail "no binary at $binary"

# ---- 2. the image ----
step "image: distroless/cc-debian12 stand-in from Debian packages"
mkdir -p "$WORK/debs" "$WORK/base"
base_debs=(libc6 libgcc-s1 libstdc++6 libgomp1 libssl3 base-files netbase)
if ! (cd "$WORK/debs" && apt-get download -q -o APT::Sandbox::User=root "${base_debs[@]}" >/dev/null 2>&1); then
    apt-get update -qq # no package lists yet, or they name versions the mirror no longer has
    (cd "$WORK/debs" && apt-get download -q -o APT::Sandbox::User=root "${base_debs[@]}" >/dev/null)
fi
for deb in "$WORK"/debs/*.deb; do
    dpkg-deb -x "$deb" "$WORK/base"
    echo "  $(basename "$deb")"
done
mkdir -p "$WORK/base/tmp" "$WORK/base/home/nonroot" "$WORK/base/etc"
chmod 1777 "$WORK/base/tmp"
chown 65532:65532 "$WORK/base/home/nonroot"
chmod 0700 "$WORK/base/home/nonroot"
# distroless's users and groups: root, nobody and nonroot (65532).
printf '%s\n' 'root:x:0:0:root:/root:/sbin/nologin' 'nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin' \
    'nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin' >"$WORK/base/etc/passwd"
printf '%s\n' 'root:x:0:' 'nobody:x:65534:' 'nonroot:x:65532:' >"$WORK/base/etc/group"

step "image: the builder stage's output (docker/stage-runtime.sh)"
sh "$ROOT/docker/stage-runtime.sh" "$binary" "$WORK/stage/out"

commit_dir() { # DIR IMAGE [buildah config args...]: an image whose root filesystem is DIR
    local dir=$1 image=$2 ctr mnt
    shift 2
    ctr=$(buildah from scratch)
    mnt=$(buildah mount "$ctr")
    cp -a "$dir/." "$mnt/"
    buildah umount "$ctr" >/dev/null
    if (($#)); then buildah config "$@" "$ctr"; fi
    buildah commit -q --format docker "$ctr" "$image" >/dev/null
    buildah rm "$ctr" >/dev/null
}
commit_dir "$WORK/base" "$BASE_IMAGE" --user 65532:65532 --workingdir /home/nonroot
commit_dir "$WORK/stage" "$STAGE_IMAGE"

step "image: docker/Dockerfile's runtime stage, built by buildah"
# The global ARGs, then everything from the runtime stage's FROM on, taking the builder's /out
# from the stand-in image.
awk '/^FROM /{n++} n==0 && /^ARG /{print; next} /^FROM \$\{RUNTIME_IMAGE\}/{p=1} p' "$ROOT/docker/Dockerfile" |
    sed "s#--from=builder#--from=$STAGE_IMAGE#" >"$WORK/Containerfile.runtime"
# shellcheck disable=SC2016 # the literal ${RUNTIME_IMAGE} of the Dockerfile
grep -q '^FROM ${RUNTIME_IMAGE}' "$WORK/Containerfile.runtime" || fail "docker/Dockerfile has no 'FROM \${RUNTIME_IMAGE}' stage"
grep -q -- '--from=builder' "$WORK/Containerfile.runtime" && fail "the runtime stage refers to the builder in a way this script does not replace"
mkdir -p "$WORK/context"
buildah bud -q --format docker --pull=never --build-arg "RUNTIME_IMAGE=$BASE_IMAGE" \
    -t "$IMAGE" -f "$WORK/Containerfile.runtime" "$WORK/context" >/dev/null
podman image inspect "$IMAGE" --format '{{json .Config}}' >"$WORK/image-config.json"
podman image inspect "$IMAGE" --format '{{json .HealthCheck}}' >"$WORK/image-healthcheck.json"
"$VENV/bin/python" - "$WORK/image-config.json" "$WORK/image-healthcheck.json" <<'EOF'
import json, sys
config = json.load(open(sys.argv[1]))
health = json.load(open(sys.argv[2]))
checks = {
    "User": (config.get("User"), "65532:65532"),
    "Entrypoint": (config.get("Entrypoint"), ["/usr/local/bin/myelin", "serve"]),
    "WorkingDir": (config.get("WorkingDir"), "/axonserver"),
    "ExposedPorts": (sorted(config.get("ExposedPorts", {})), ["8024/tcp", "8124/tcp", "8224/tcp"]),
    "Volumes": (sorted(config.get("Volumes", {})), ["/axonserver/config", "/axonserver/data", "/axonserver/log"]),
    "Healthcheck": ((health or {}).get("Test"), ["CMD", "/usr/local/bin/myelin", "healthcheck"]),
}
bad = {k: v for k, v in checks.items() if v[0] != v[1]}
for k, (got, want) in checks.items():
    print(f"  {k}: {got}")
if bad:
    sys.exit(f"image config differs: {bad}")
EOF
podman image ls --format '  {{.Repository}}:{{.Tag}} {{.Size}}' "$IMAGE"

step "image: the binary loads its libraries; there is no shell"
podman run --rm --network none --no-healthcheck --entrypoint /usr/local/bin/myelin "$IMAGE" --version
if podman run --rm --network none --no-healthcheck --entrypoint /bin/sh "$IMAGE" -c true >/dev/null 2>&1; then
    fail "the image has a shell"
fi
echo "  /bin/sh: absent"

# ---- 3. the Compose files with podman ----
compose() { # PROJECT FILE args...
    local project=$1 file=$2
    shift 2
    timeout 180 "$VENV/bin/podman-compose" -p "$project" -f "$file" "$@" >>"$WORK/compose.log" 2>&1 ||
        {
            tail -40 "$WORK/compose.log" >&2
            fail "podman-compose $* ($file)"
        }
}
ctr_name() { echo "${1}_${2}_1"; } # podman-compose 1.x names: <project>_<service>_1
wait_healthy() {                   # DEADLINE_S CONTAINER...
    local start deadline c
    start=$(date +%s)
    deadline=$((start + $1))
    shift
    for c in "$@"; do
        until podman healthcheck run "$c" >/dev/null 2>&1; do
            if (($(date +%s) > deadline)); then
                podman logs --tail 30 "$c" 2>&1 | sed 's/\x1b\[[0-9;]*m//g' >&2
                fail "$c is not healthy"
            fi
            sleep 1
        done
        echo "  $c: healthy after $(($(date +%s) - start)) s"
    done
}
client() { "$VENV/bin/python" "$ROOT/docker/smoke_client.py" --proto "$ROOT/proto" "$@"; }
export MYELIN_IMAGE=$IMAGE MYELIN_PUBLISH_ADDRESS=127.0.0.1

step "docker-compose.yml: one node (service axonserver)"
compose_files+=("$PROJECT_SINGLE=$ROOT/docker/docker-compose.yml")
compose "$PROJECT_SINGLE" "$ROOT/docker/docker-compose.yml" up -d --no-build
wait_healthy 60 "$(ctr_name "$PROJECT_SINGLE" axonserver)"
client health --http 127.0.0.1:8024 --voters 1
aggregate=single-$RANDOM$RANDOM
client append --endpoint 127.0.0.1:8124 --aggregate "$aggregate" --count 5
client read --endpoint 127.0.0.1:8124 --aggregate "$aggregate" --count 5
rm -f "$LOG_DIR"/*.log
mkdir -p "$LOG_DIR"
podman logs "$(ctr_name "$PROJECT_SINGLE" axonserver)" 2>&1 | sed 's/\x1b\[[0-9;]*m//g' >"$LOG_DIR/single.log"
compose "$PROJECT_SINGLE" "$ROOT/docker/docker-compose.yml" down -v -t 10
compose_files=()

step "docker-compose.cluster.yml: three nodes, autocluster, access control on"
token=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
export MYELIN_ACCESS_CONTROL=true MYELIN_ADMIN_TOKEN="admin-$token" MYELIN_INTERNAL_TOKEN="internal-$token"
cluster_file=$ROOT/docker/docker-compose.cluster.yml
compose_files+=("$PROJECT_CLUSTER=$cluster_file")
compose "$PROJECT_CLUSTER" "$cluster_file" up -d --no-build
echo "  podman-compose up: done at $(($(date +%s) - started)) s"
node1=$(ctr_name "$PROJECT_CLUSTER" axonserver-1)
node2=$(ctr_name "$PROJECT_CLUSTER" axonserver-2)
node3=$(ctr_name "$PROJECT_CLUSTER" axonserver-3)
wait_healthy 120 "$node1" "$node2" "$node3"
for http in 8024 8025 8026; do
    client health --http "127.0.0.1:$http" --voters 3
done
client --token "$MYELIN_ADMIN_TOKEN" members --http 127.0.0.1:8025 --voters 3

step "append through axonserver-1, read through axonserver-2 and axonserver-3"
first=cluster-a-$RANDOM$RANDOM
client --token "$MYELIN_ADMIN_TOKEN" append --endpoint 127.0.0.1:8124 --aggregate "$first" --count 5
client --token "$MYELIN_ADMIN_TOKEN" read --endpoint 127.0.0.1:8125 --aggregate "$first" --count 5
client --token "$MYELIN_ADMIN_TOKEN" read --endpoint 127.0.0.1:8126 --aggregate "$first" --count 5
client denied --endpoint 127.0.0.1:8125
client --token "$MYELIN_ADMIN_TOKEN" conflict --endpoint 127.0.0.1:8126 --aggregate "$first"

step "append through axonserver-3, read through axonserver-1"
second=cluster-b-$RANDOM$RANDOM
client --token "$MYELIN_ADMIN_TOKEN" append --endpoint 127.0.0.1:8126 --aggregate "$second" --count 3
client --token "$MYELIN_ADMIN_TOKEN" read --endpoint 127.0.0.1:8124 --aggregate "$second" --count 3

step "SIGTERM: stop axonserver-2 (PID 1 in its container)"
t0=$(date +%s%N)
timeout 60 podman stop -t 30 "$node2" >/dev/null
stop_ms=$((($(date +%s%N) - t0) / 1000000))
exit_code=$(podman inspect "$node2" --format '{{.State.ExitCode}}')
podman logs "$node2" 2>&1 | sed 's/\x1b\[[0-9;]*m//g' | grep -E 'SIGTERM received|node stopped' | sed 's/^/  /'
echo "  stopped in $stop_ms ms, exit code $exit_code"
[[ $exit_code == 0 ]] || fail "axonserver-2 exited with $exit_code on SIGTERM"
((stop_ms < 10000)) || fail "axonserver-2 took $stop_ms ms to stop: SIGTERM was not handled"
client --token "$MYELIN_ADMIN_TOKEN" read --endpoint 127.0.0.1:8124 --aggregate "$first" --count 5

step "start axonserver-2 again: it rejoins with its volume's data"
timeout 60 podman start "$node2" >/dev/null
wait_healthy 120 "$node2"
client health --http 127.0.0.1:8025 --voters 3
client --token "$MYELIN_ADMIN_TOKEN" read --endpoint 127.0.0.1:8125 --aggregate "$first" --count 5
client --token "$MYELIN_ADMIN_TOKEN" read --endpoint 127.0.0.1:8125 --aggregate "$second" --count 3

step "all checks passed"
