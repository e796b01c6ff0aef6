#!/usr/bin/env bash
# First command for a newcomer: install minibuild into .venv and build a first image.
#
#   bash scripts/install.sh
#
# Needs Python >= 3.11 (set PYTHON=/path/to/python to choose one). Docker is optional:
# minibuild builds images without a daemon; when `docker info` works, the image is also
# loaded into Docker.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$REPO_ROOT/.venv"
TARGET="//images:bash"
IMAGE="images/bash:latest"

log() { printf '[install.sh] %s\n' "$*" >&2; }
die() { printf '[install.sh] ERROR: %s\n' "$*" >&2; exit 1; }

# shellcheck source=scripts/lib.sh
source "$REPO_ROOT/scripts/lib.sh"

py_ok() { "$1" -c 'import sys; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1; }

find_python() {
    local c
    if [[ -n "${PYTHON:-}" ]]; then
        py_ok "$PYTHON" || die "PYTHON=$PYTHON is not a Python >= 3.11"
        echo "$PYTHON"
        return
    fi
    for c in python3 python3.13 python3.12 python3.11; do
        if command -v "$c" >/dev/null 2>&1 && py_ok "$c"; then
            command -v "$c"
            return
        fi
    done
    die "minibuild needs Python >= 3.11; install it (Debian 12: apt-get install python3) or set PYTHON=..."
}

# 1. virtual environment
if [[ -x "$VENV/bin/python" ]] && ! "$VENV/bin/python" -c 'pass' >/dev/null 2>&1; then
    log "$VENV is broken; recreating it"
    rm -rf "$VENV"
fi
if [[ ! -x "$VENV/bin/python" ]]; then
    PY="$(find_python)"
    if ! "$PY" -c 'import venv, ensurepip' >/dev/null 2>&1; then
        # Debian/Ubuntu split venv out of the interpreter package.
        command -v apt-get >/dev/null 2>&1 ||
            die "$PY cannot create virtual environments (module venv/ensurepip missing)"
        pkg="python$("$PY" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')-venv"
        log "installing $pkg (needed for python -m venv)"
        as_root env DEBIAN_FRONTEND=noninteractive apt-get -q update
        as_root env DEBIAN_FRONTEND=noninteractive apt-get -q install -y --no-install-recommends "$pkg"
    fi
    log "creating $VENV with $PY ($("$PY" --version 2>&1))"
    "$PY" -m venv "$VENV"
fi

# 2. minibuild itself (editable: the checkout is the installed code)
log "pip install -e ."
(cd "$REPO_ROOT" && "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e .)

# 3. a first image
log "building $TARGET"
(cd "$REPO_ROOT" && "$VENV/bin/minibuild" build "$TARGET")

# 4. how to go on
docker_up=no
if command -v docker >/dev/null 2>&1 && timeout 20 docker info >/dev/null 2>&1; then
    docker_up=yes
fi
echo
echo "minibuild is installed in $VENV."
echo "Put it on your PATH for this shell:"
echo "    source .venv/bin/activate"
if [[ "$docker_up" == yes ]]; then
    echo "Run the image you just built:"
    echo "    docker run --rm -it $IMAGE"
else
    echo "Docker is not running here, so the image was built but not loaded."
    echo "Once Docker runs, build again to load it and run it:"
    echo "    minibuild build $TARGET && docker run --rm -it $IMAGE"
fi
