#!/usr/bin/env bash
# The one test command for minibuild (CI runs it through .ci/run).
#
#   bash scripts/test.sh [PYTEST ARGS...]   set up everything, then ruff + mypy + pytest
#   bash scripts/test.sh --setup-only       set up (packages, venv, services) and stop there
#   bash scripts/test.sh --stop-services    stop the dockerd/registries this script started
#
# Set-up is idempotent and fast when already done:
#   1. Debian packages (only when some are missing)
#   2. .venv with `pip install -e '.[test]'` (only when pyproject.toml changed)
#   3. a Docker Engine (started in the background only when `docker info` fails)
#   4. two local registries: 127.0.0.1:5000 (no auth), 127.0.0.1:5001 (htpasswd auth)
# The services are left running on exit; their state and logs live in $STATE_DIR.
#
# Extra pytest arguments are passed through, e.g. `bash scripts/test.sh -k oci -x`
# or `bash scripts/test.sh -n 2 --dist loadgroup` for parallel runs.
set -euo pipefail

# ---------------------------------------------------------------- settings --
# Debian packages the tests need (the one list; python3-venv is added only when needed).
APT_PACKAGES=(
    docker.io docker-registry skopeo chromium
    apache2-utils pax-utils musl-tools
    gcc libc6-dev gcc-aarch64-linux-gnu libc6-arm64-cross libc6-dev-arm64-cross
    patchelf strace ca-certificates curl openssl xz-utils bzip2 zstd jq sqlite3 locales
    nginx-light
    # examples/servers (tests/servers): the real clients of its servers, and ps for `docker top`
    postgresql-client-15 redis-tools procps
    # package sysroots (tests/packages): a signed Debian repository on loopback, apt and debootstrap to compare
    dpkg-dev apt-utils gpg gpgv debian-archive-keyring git
)
# The REAPI v2 server the remote cache tests start (tests/remote/servers.py), in a venv of its own: its
# dependencies (SQLAlchemy, boto3, ...) are the server's, not minibuild's. 0.4.4 is the last for Python 3.11.
BUILDGRID_VERSION=0.4.4

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$REPO_ROOT/.venv"
# Services are machine-wide (fixed ports, one dockerd), so their state is too.
STATE_DIR="${MINIBUILD_TEST_STATE_DIR:-${XDG_RUNTIME_DIR:-/tmp}/minibuild-test}"

REGISTRY_PORT=5000
AUTH_REGISTRY_PORT=5001
REGISTRY_USER=minibuild
REGISTRY_PASSWORD=minibuild-test

DOCKERD_TIMEOUT=60
REGISTRY_TIMEOUT=30

# ----------------------------------------------------------------- helpers --
log() { printf '[test.sh] %s\n' "$*" >&2; }
die() { printf '[test.sh] ERROR: %s\n' "$*" >&2; exit 1; }

now_ms() { local t=${EPOCHREALTIME/./}; echo $((t / 1000)); }
TIMINGS=()
PHASE=""
PHASE_T0=0
phase() {  # phase NAME: close the previous phase (if any) and open a new one
    phase_end
    PHASE="$1"
    PHASE_T0=$(now_ms)
    log "== $PHASE"
}
phase_end() {
    if [[ -n "$PHASE" ]]; then
        local ms=$(($(now_ms) - PHASE_T0))
        TIMINGS+=("$(printf '%-10s %4d.%01ds' "$PHASE" $((ms / 1000)) $((ms % 1000 / 100)))")
        PHASE=""
    fi
}
print_timings() {
    phase_end
    local t
    log "timings:"
    for t in "${TIMINGS[@]}"; do log "  $t"; done
}

# shellcheck source=scripts/lib.sh
source "$REPO_ROOT/scripts/lib.sh"

retry() {  # retry N CMD...: run CMD up to N times
    local n=$1 i
    shift
    for ((i = 1; i <= n; i++)); do
        "$@" && return 0
        ((i < n)) && { log "failed (try $i/$n): $*; retrying"; sleep 5; }
    done
    return 1
}

pid_alive() {  # pid_alive PIDFILE NAME: the pid in PIDFILE runs a program called NAME
    local pid cmd
    [[ -s "$1" ]] || return 1
    pid=$(<"$1")
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
    [[ "$cmd" == *"$2"* ]]
}

start_bg() {  # start_bg PIDFILE LOGFILE CMD...: detached from this shell, its tty and stdio
    local pidfile=$1 logfile=$2
    shift 2
    setsid "$@" >>"$logfile" 2>&1 </dev/null &
    echo $! >"$pidfile"
}

stop_pidfile() {  # stop_pidfile PIDFILE NAME
    local pidfile=$1 name=$2 pid i
    if pid_alive "$pidfile" "$name"; then
        pid=$(<"$pidfile")
        log "stopping $name (pid $pid)"
        kill -TERM "$pid" 2>/dev/null || true
        for ((i = 0; i < 300; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            log "$name (pid $pid) did not stop in 30s; sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    rm -f "$pidfile"
}

http_code() { curl -s -o /dev/null -m 5 -w '%{http_code}' "$1" || true; }

# ----------------------------------------------------------------- phases ---
install_packages() {
    local pkgs=("${APT_PACKAGES[@]}") missing=() p
    # pyenv/python.org pythons ship venv+ensurepip; Debian's python3 needs python3-venv.
    if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
        pkgs+=(python3-venv)
    fi
    # docker.io only recommends apparmor; dockerd needs its parser where the kernel enforces it.
    if [[ "$(cat /sys/module/apparmor/parameters/enabled 2>/dev/null || true)" == Y ]]; then
        pkgs+=(apparmor)
    fi
    for p in "${pkgs[@]}"; do
        if [[ "$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)" != installed ]]; then
            missing+=("$p")
        fi
    done
    if ((${#missing[@]} == 0)); then
        log "all ${#pkgs[@]} Debian packages present"
        return
    fi
    log "installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    retry 3 as_root apt-get -q update -o DPkg::Lock::Timeout=120 ||
        die "apt-get update failed"
    retry 3 as_root env DEBIAN_FRONTEND=noninteractive apt-get -q install -y \
        --no-install-recommends -o DPkg::Lock::Timeout=120 "${missing[@]}" ||
        die "apt-get install failed: ${missing[*]}"
}

setup_venv() {
    local stamp="$VENV/.minibuild-install-stamp" want
    if [[ -x "$VENV/bin/python" ]] && ! "$VENV/bin/python" -c 'pass' >/dev/null 2>&1; then
        log "$VENV is broken (its python no longer runs); recreating it"
        rm -rf "$VENV"
    fi
    if [[ ! -x "$VENV/bin/python" ]]; then
        log "creating $VENV with $(command -v python3) ($(python3 --version 2>&1))"
        python3 -m venv "$VENV"
    fi
    want="$(sha256sum "$REPO_ROOT/pyproject.toml" | cut -d' ' -f1) $("$VENV/bin/python" --version 2>&1)"
    if [[ -f "$stamp" && "$(<"$stamp")" == "$want" ]]; then
        log "venv up to date (pyproject.toml unchanged)"
        return
    fi
    log "pip install -e '.[test]'"
    rm -f "$stamp"
    (cd "$REPO_ROOT" && retry 2 "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e '.[test]') ||
        die "pip install -e '.[test]' failed"
    printf '%s' "$want" >"$stamp"
}

setup_buildgrid() {
    local venv="$STATE_DIR/buildgrid-venv" want
    want="buildgrid==$BUILDGRID_VERSION $(python3 --version 2>&1)"
    if [[ -x "$venv/bin/bgd" && -f "$venv/.stamp" && "$(<"$venv/.stamp")" == "$want" ]]; then
        log "BuildGrid $BUILDGRID_VERSION present ($venv)"
        return
    fi
    log "installing buildgrid==$BUILDGRID_VERSION into $venv"
    rm -rf "$venv"
    python3 -m venv "$venv"
    retry 2 "$venv/bin/python" -m pip install -q --disable-pip-version-check "buildgrid==$BUILDGRID_VERSION" ||
        die "pip install buildgrid==$BUILDGRID_VERSION failed"
    printf '%s' "$want" >"$venv/.stamp"
}

docker_ok() { timeout 20 docker info >/dev/null 2>&1; }

start_docker() {
    local pidfile="$STATE_DIR/dockerd.pid" logfile="$STATE_DIR/dockerd.log" i
    if docker_ok; then
        log "Docker Engine already answers ($(docker version -f '{{.Server.Version}}' 2>/dev/null || echo '?'))"
        return
    fi
    if [[ -n "${DOCKER_HOST:-}" ]]; then
        die "DOCKER_HOST=$DOCKER_HOST is set but 'docker info' fails; unset it or start that engine"
    fi
    [[ $(id -u) -eq 0 ]] ||
        die "no Docker Engine answers and only root can start one here: start Docker (e.g. 'sudo systemctl start docker') and make sure your user may use it"
    command -v dockerd >/dev/null 2>&1 || die "dockerd not found (package docker.io)"
    if pid_alive "$pidfile" dockerd; then
        log "dockerd (pid $(<"$pidfile")) is running but not answering; restarting it"
        stop_pidfile "$pidfile" dockerd
    fi
    # dockerd refuses to start while its own pid file names a live process; after a reboot that pid may
    # belong to anything, so a file whose pid is not a dockerd goes.
    pid_alive "$STATE_DIR/dockerd.own.pid" dockerd || rm -f "$STATE_DIR/dockerd.own.pid"
    log "starting dockerd (log: $logfile)"
    # Default socket (/var/run/docker.sock) and data root, so every client (docker CLI,
    # docker-py, skopeo's docker-daemon: transport) finds it without DOCKER_HOST.
    printf '\n==== %s dockerd starting\n' "$(date -Is)" >>"$logfile"
    start_bg "$pidfile" "$logfile" dockerd --pidfile "$STATE_DIR/dockerd.own.pid"
    for ((i = 0; i < DOCKERD_TIMEOUT * 4; i++)); do
        docker_ok && break
        if ! kill -0 "$(<"$pidfile")" 2>/dev/null; then
            tail -n 30 "$logfile" >&2 || true
            die "dockerd exited during start-up (log above, full log: $logfile)"
        fi
        sleep 0.25
    done
    if ! docker_ok; then
        tail -n 30 "$logfile" >&2 || true
        die "dockerd did not answer within ${DOCKERD_TIMEOUT}s (log above, full log: $logfile)"
    fi
    log "dockerd up ($(docker version -f '{{.Server.Version}}' 2>/dev/null || echo '?'), storage $(docker info -f '{{.Driver}}' 2>/dev/null || echo '?'))"
}

write_registry_config() {  # write_registry_config PORT DATA_DIR CONFIG [HTPASSWD]
    local port=$1 data=$2 config=$3 htpasswd=${4:-}
    cat >"$config" <<EOF
# written by scripts/test.sh; served by: docker-registry serve $config
version: 0.1
log:
  level: info
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $data
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:$port
  secret: minibuild-test-not-a-secret
  headers:
    X-Content-Type-Options: [nosniff]
EOF
    if [[ -n "$htpasswd" ]]; then
        cat >>"$config" <<EOF
auth:
  htpasswd:
    realm: minibuild-test
    path: $htpasswd
EOF
    fi
}

start_registry() {  # start_registry PORT EXPECTED_HTTP_CODE [auth]
    local port=$1 want=$2 auth=${3:-} dir="$STATE_DIR/registry-$1" code i htpasswd=""
    local pidfile="$dir/registry.pid" logfile="$dir/registry.log"
    if pid_alive "$pidfile" docker-registry; then
        code=$(http_code "http://127.0.0.1:$port/v2/")
        if [[ "$code" == "$want" ]]; then
            log "registry on 127.0.0.1:$port already running (pid $(<"$pidfile"))"
            return
        fi
        log "registry on 127.0.0.1:$port (pid $(<"$pidfile")) answers $code, not $want; restarting it"
        stop_pidfile "$pidfile" docker-registry
    fi
    code=$(http_code "http://127.0.0.1:$port/v2/")
    if [[ "$code" != 000 ]]; then
        die "something not started by this script already listens on 127.0.0.1:$port (GET /v2/ -> $code); stop it (Debian's service: 'systemctl stop docker-registry')"
    fi
    mkdir -p "$dir"
    rm -rf "$dir/data"  # a fresh, empty registry each time the service starts
    mkdir -p "$dir/data"
    if [[ -n "$auth" ]]; then
        htpasswd="$dir/htpasswd"
        htpasswd -Bbn "$REGISTRY_USER" "$REGISTRY_PASSWORD" >"$htpasswd"
    fi
    write_registry_config "$port" "$dir/data" "$dir/config.yml" "$htpasswd"
    log "starting docker-registry on 127.0.0.1:$port${auth:+ (htpasswd auth)} (log: $logfile)"
    printf '\n==== %s docker-registry starting\n' "$(date -Is)" >>"$logfile"
    start_bg "$pidfile" "$logfile" docker-registry serve "$dir/config.yml"
    for ((i = 0; i < REGISTRY_TIMEOUT * 10; i++)); do
        code=$(http_code "http://127.0.0.1:$port/v2/")
        [[ "$code" == "$want" ]] && return
        if ! kill -0 "$(<"$pidfile")" 2>/dev/null; then
            tail -n 20 "$logfile" >&2 || true
            die "docker-registry on port $port exited during start-up (full log: $logfile)"
        fi
        sleep 0.1
    done
    tail -n 20 "$logfile" >&2 || true
    die "docker-registry on 127.0.0.1:$port: GET /v2/ gave $code, want $want after ${REGISTRY_TIMEOUT}s (full log: $logfile)"
}

smoke_test() {
    # Proves the whole chain once per service start: a FROM-scratch image made with no
    # Docker Hub access, run by the engine, pushed to both registries, pulled back.
    local dir="$STATE_DIR/smoke" tag="minibuild-smoke:latest"
    local reg="127.0.0.1:$REGISTRY_PORT" areg="127.0.0.1:$AUTH_REGISTRY_PORT" out
    mkdir -p "$dir/root"
    printf '#include <stdio.h>\nint main(void){puts("minibuild-smoke-ok");return 0;}\n' >"$dir/hello.c"
    gcc -static -O1 -o "$dir/root/hello" "$dir/hello.c" || die "smoke: gcc -static failed"
    tar -C "$dir/root" -cf "$dir/hello.tar" hello
    docker import -c 'ENTRYPOINT ["/hello"]' "$dir/hello.tar" "$tag" >/dev/null ||
        die "smoke: docker import failed"
    out=$(docker run --rm --network none "$tag" 2>&1) || die "smoke: docker run failed: $out"
    [[ "$out" == minibuild-smoke-ok ]] || die "smoke: unexpected container output: $out"
    skopeo copy -q docker-daemon:"$tag" "docker://$reg/minibuild-smoke:1" --dest-tls-verify=false ||
        die "smoke: skopeo push to $reg failed"
    skopeo copy -q docker-daemon:"$tag" "docker://$areg/minibuild-smoke:1" --dest-tls-verify=false \
        --dest-creds "$REGISTRY_USER:$REGISTRY_PASSWORD" || die "smoke: skopeo push to $areg failed"
    docker rmi -f "$tag" "$reg/minibuild-smoke:1" >/dev/null 2>&1 || true
    docker pull -q "$reg/minibuild-smoke:1" >/dev/null || die "smoke: docker pull from $reg failed"
    out=$(docker run --rm "$reg/minibuild-smoke:1" 2>&1) || die "smoke: docker run of pulled image failed: $out"
    docker rmi -f "$reg/minibuild-smoke:1" >/dev/null 2>&1 || true
    touch "$STATE_DIR/smoke.ok"
    log "smoke test passed (run, push to both registries, pull)"
}

stop_services() {
    stop_pidfile "$STATE_DIR/registry-$REGISTRY_PORT/registry.pid" docker-registry
    stop_pidfile "$STATE_DIR/registry-$AUTH_REGISTRY_PORT/registry.pid" docker-registry
    stop_pidfile "$STATE_DIR/dockerd.pid" dockerd
    rm -f "$STATE_DIR/smoke.ok"
    log "services started by this script are stopped"
}

# ------------------------------------------------------------------- main ---
MODE="run"
case "${1:-}" in
    --stop-services) stop_services; exit 0 ;;
    --setup-only) MODE=setup; shift ;;
    -h | --help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
esac

mkdir -p "$STATE_DIR"
trap 'print_timings' EXIT

phase packages
install_packages

phase venv
setup_venv
export PATH="$VENV/bin:$PATH"  # also makes Debian's lddtree (#!/usr/bin/env python3) find pyelftools

phase docker
# Services are machine-wide: serialise their set-up between concurrent runs (other clones too).
exec 9>"$STATE_DIR/setup.lock"
flock -w 300 9 || die "another scripts/test.sh has held $STATE_DIR/setup.lock for 5 minutes"
start_docker

phase buildgrid
setup_buildgrid  # under the set-up lock: one venv for every clone's runs
export MINIBUILD_TEST_BGD="$STATE_DIR/buildgrid-venv/bin/bgd"

phase registries
services_before="$(cat "$STATE_DIR"/registry-*/registry.pid "$STATE_DIR/dockerd.pid" 2>/dev/null || true)"
start_registry "$REGISTRY_PORT" 200
start_registry "$AUTH_REGISTRY_PORT" 401 auth
services_after="$(cat "$STATE_DIR"/registry-*/registry.pid "$STATE_DIR/dockerd.pid" 2>/dev/null || true)"

phase smoke
if [[ "$services_before" != "$services_after" || ! -f "$STATE_DIR/smoke.ok" ]]; then
    rm -f "$STATE_DIR/smoke.ok"
    smoke_test
else
    log "services unchanged since the last passing smoke test; skipped"
fi

export MINIBUILD_TEST_REGISTRY="127.0.0.1:$REGISTRY_PORT"
export MINIBUILD_TEST_AUTH_REGISTRY="127.0.0.1:$AUTH_REGISTRY_PORT"
export MINIBUILD_TEST_REGISTRY_USER="$REGISTRY_USER"
export MINIBUILD_TEST_REGISTRY_PASSWORD="$REGISTRY_PASSWORD"
export MINIBUILD_TEST_STATE_DIR="$STATE_DIR"
# Tests marked docker/registry must fail, not skip, when their service is missing.
export MINIBUILD_REQUIRE_DOCKER="${MINIBUILD_REQUIRE_DOCKER:-1}"

flock -u 9

if [[ "$MODE" == setup ]]; then
    log "set-up done; services left running (stop: bash scripts/test.sh --stop-services)"
    exit 0
fi

cd "$REPO_ROOT"

phase ruff
lint_paths=()
for p in minibuild rules tests benchmarks; do [[ -e "$p" ]] && lint_paths+=("$p"); done
ruff check "${lint_paths[@]}" || die "ruff check failed"

phase mypy
# mypy.ini says what to check; a venv set up before mypy was a test dependency gets it here.
if [[ ! -x "$VENV/bin/mypy" ]]; then
    log "mypy is not in $VENV; pip install mypy"
    retry 2 "$VENV/bin/python" -m pip install -q --disable-pip-version-check mypy || die "pip install mypy failed"
fi
mypy || die "mypy found type errors"

phase pytest
set +e
python -m pytest -rs "$@"
rc=$?
set -e
case "$rc" in
    0) ;;
    5) die "pytest collected no tests (exit 5): that counts as a failure" ;;
    *) die "pytest failed (exit $rc)" ;;
esac
