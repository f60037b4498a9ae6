#!/usr/bin/env bash
# Create .venv and install the pinned, hash-checked dependencies.
#   scripts/bootstrap-venv.sh [runtime|dev]
# Works on a fresh Debian bookworm / Raspberry Pi OS machine as root or as a
# normal user. As root it installs python3-venv when the interpreter lacks it.
set -euo pipefail
cd "$(dirname "$0")/.."
kind="${1:-dev}"
lock="requirements.lock"
[ "$kind" = dev ] && lock="requirements-dev.lock"
venv="${VENV:-.venv}"

pick_python() {
    for candidate in "${PYTHON:-}" python3.11 python3; do
        [ -n "$candidate" ] || continue
        if command -v "$candidate" >/dev/null 2>&1 &&
            "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] < (3, 11))' 2>/dev/null; then
            command -v "$candidate"
            return 0
        fi
    done
    echo "bootstrap: Python 3.11 or newer is required (apt-get install python3)" >&2
    return 1
}

python="$(pick_python)"
if ! "$python" -c 'import ensurepip, venv' >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "bootstrap: installing python3-venv" >&2
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
    else
        echo "bootstrap: the venv module is missing: sudo apt-get install python3-venv" >&2
        exit 1
    fi
fi

if [ ! -x "$venv/bin/python" ]; then
    "$python" -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --require-hashes --no-deps -r "$lock"
if [ "$kind" = dev ]; then
    "$venv/bin/python" -m pip install --quiet --no-deps --no-build-isolation -e .
else
    "$venv/bin/python" -m pip install --quiet --no-deps .
fi
touch "$venv/.installed-$kind"
