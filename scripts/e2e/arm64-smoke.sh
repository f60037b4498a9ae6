#!/usr/bin/env bash
# arm64 (Raspberry Pi 4/5) smoke test under qemu-user emulation: in a Debian
# arm64 root of MC_E2E_ARM64_SUITE (bookworm by default, or trixie), the app's
# wheel and the hash-locked dependencies (requirements.lock, aarch64 wheels
# for the root's Python) install into a venv, the compiled dependencies
# import, `missionctl --version` runs and a short `missionctl serve` answers
# /healthz. Not a boot test (systemd under qemu
# only reaches "degraded"): tests/e2e covers the appliance on amd64.
#
#   sudo scripts/e2e/arm64-smoke.sh [--rebuild] [--keep]
#
# The arm64 root is cached as $MC_E2E_CACHE/rootfs-<suite>-arm64; each run
# works on an overlay of it. bookworm's: debootstrap --foreign + second stage
# under qemu (about 3 minutes). trixie's: mmdebstrap, which resolves and
# unpacks with the host's apt and runs only the maintainer scripts under
# qemu: debootstrap's second stage runs its Packages-file scans in emulated
# perl, and one scan of trixie's 56 MB arm64 Packages file took over 5
# minutes under load (the stage did not finish in 14 minutes here, 40 in an
# earlier session); mmdebstrap made the root in 18 minutes under the same
# load. Needs root, debootstrap (and mmdebstrap for trixie), qemu-user-static
# and binfmt-support (scripts/e2e/install-deps.sh --arm64). The aarch64
# registration of binfmt_misc (a host-wide setting) is switched on for the
# run and put back as it was found afterwards.
set -Eeuo pipefail
# shellcheck source=scripts/e2e/lib.sh
source "$(dirname "$0")/lib.sh"
trap 'e2e_say "failed: line $LINENO: $BASH_COMMAND"' ERR

# The arm64 root's Debian release: bookworm by default (its root is made in
# about 3 minutes, inside make test's 30-minute budget);
# MC_E2E_ARM64_SUITE=trixie for Python 3.13 and the lock's cp313 aarch64
# wheels (its root takes 18 minutes to make under load, then is cached).
ARM64_SUITE=${MC_E2E_ARM64_SUITE:-bookworm}
case "$ARM64_SUITE" in
    trixie | bookworm) ;;
    *) e2e_die "MC_E2E_ARM64_SUITE=$ARM64_SUITE: only trixie and bookworm are supported" ;;
esac
ROOTFS_ARM64=$E2E_CACHE/rootfs-$ARM64_SUITE-arm64
MARK=.mc-e2e-arm64-v1
REBUILD=no
KEEP=no
for arg in "$@"; do
    case "$arg" in
        --rebuild) REBUILD=yes ;;
        --keep) KEEP=yes ;;
        *) echo "usage: $0 [--rebuild] [--keep]" >&2; exit 2 ;;
    esac
done
[ "$(id -u)" = 0 ] || e2e_die "run as root"
"$E2E_REPO/scripts/e2e/install-deps.sh" --arm64
for tool in debootstrap qemu-aarch64-static update-binfmts unshare curl; do
    command -v "$tool" >/dev/null || e2e_die "$tool is missing (scripts/e2e/install-deps.sh --arm64)"
done

WORK=$(mktemp -d /var/tmp/mc-e2e-arm64.XXXXXX)
ROOT=$WORK/root
MOUNTED_BINFMT=no
ENABLED_AARCH64=no
SERVER_PID=""
# the pids of processes whose root directory is the arm64 root, or the one
# being made (an interrupted second stage's processes went on running)
chrooted_pids() {
    local p out="" root
    for p in /proc/[0-9]*; do
        root=$(readlink "$p/root" 2>/dev/null) || continue
        case "$root" in
            "$ROOT" | "$ROOTFS_ARM64.tmp") out="$out ${p#/proc/}" ;;
        esac
    done
    printf '%s' "${out# }"
}
cleanup() {
    local rc=$?
    local stray
    stray=$(chrooted_pids)
    # shellcheck disable=SC2086
    [ -z "$stray" ] || kill -KILL $stray 2>/dev/null || true
    e2e_stage ""
    if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; fi
    local m
    while read -r m; do
        umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
    done < <(awk -v d="$WORK/" 'index($2, d) == 1 {print $2}' /proc/self/mounts | sort -r)
    e2e_chroot_umount
    if [ "$ENABLED_AARCH64" = yes ]; then update-binfmts --disable qemu-aarch64 >/dev/null 2>&1 || true; fi
    if [ "$MOUNTED_BINFMT" = yes ]; then umount /proc/sys/fs/binfmt_misc 2>/dev/null || true; fi
    if [ "$KEEP" = yes ]; then
        e2e_say "kept: $WORK"
    else
        rm -rf "$WORK"
    fi
    exit "$rc"
}
trap cleanup EXIT
E2E_TIMINGS=$E2E_CACHE/e2e-arm64-last-timings
mkdir -p "$E2E_CACHE"
: >"$E2E_TIMINGS"
t0=$(e2e_now_ns)

e2e_stage binfmt
if [ ! -e /proc/sys/fs/binfmt_misc/status ]; then
    mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
    MOUNTED_BINFMT=yes
fi
if ! grep -q '^enabled' /proc/sys/fs/binfmt_misc/qemu-aarch64 2>/dev/null; then
    update-binfmts --enable qemu-aarch64
    ENABLED_AARCH64=yes
fi
grep -q '^enabled' /proc/sys/fs/binfmt_misc/qemu-aarch64 || e2e_die "qemu-aarch64 is not registered"

e2e_stage rootfs-arm64
if [ "$REBUILD" = yes ] || [ ! -e "$ROOTFS_ARM64/$MARK" ]; then
    log=$E2E_CACHE/e2e-arm64-rootfs.log
    # an interrupted second stage leaves its /proc and /sys mounted in the root
    for m in "$ROOTFS_ARM64.tmp/proc" "$ROOTFS_ARM64.tmp/sys"; do
        if mountpoint -q "$m"; then umount -l "$m"; fi
    done
    rm -rf "$ROOTFS_ARM64.tmp" "$ROOTFS_ARM64"
    if [ "$ARM64_SUITE" = trixie ]; then
        command -v mmdebstrap >/dev/null || e2e_die "mmdebstrap is missing (scripts/e2e/install-deps.sh --arm64)"
        e2e_say "mmdebstrap --arch=arm64 trixie (maintainer scripts under emulation: 10-20 minutes)"
        timeout 2400 mmdebstrap --arch=arm64 --variant=minbase \
            --include=python3,python3-venv,ca-certificates \
            "$ARM64_SUITE" "$ROOTFS_ARM64.tmp" "$(e2e_mirror)" >"$log" 2>&1 ||
            e2e_die "mmdebstrap of the arm64 root failed, see $log"
    else
        e2e_say "debootstrap --arch=arm64 (about 3 minutes under emulation)"
        timeout 900 debootstrap --arch=arm64 --foreign --variant=minbase \
            --include=python3,python3-venv,ca-certificates \
            "$ARM64_SUITE" "$ROOTFS_ARM64.tmp" "$(e2e_mirror)" >"$log" 2>&1 ||
            e2e_die "debootstrap (first stage) failed, see $log"
        # the F flag of Debian's registration makes this unnecessary; harmless otherwise
        cp /usr/bin/qemu-aarch64-static "$ROOTFS_ARM64.tmp/usr/bin/"
        timeout 2400 chroot "$ROOTFS_ARM64.tmp" /debootstrap/debootstrap --second-stage >>"$log" 2>&1 ||
            e2e_die "debootstrap (second stage) failed, see $log"
    fi
    rm -rf "$ROOTFS_ARM64.tmp"/var/lib/apt/lists/* "$ROOTFS_ARM64.tmp"/var/cache/apt/archives/*.deb
    touch "$ROOTFS_ARM64.tmp/$MARK"
    mv "$ROOTFS_ARM64.tmp" "$ROOTFS_ARM64"
else
    e2e_say "using the cached arm64 root $ROOTFS_ARM64"
fi

e2e_stage wheels-arm64
python=$E2E_REPO/.venv/bin/python
[ -x "$python" ] || python=python3
lock=$E2E_REPO/requirements.lock
# the lock's aarch64 files for the root's own Python (3.13 on trixie, 3.11 on
# bookworm), hash-checked (an sdist only where the lock has no wheel)
pyver=$(e2e_root_python "$ROOTFS_ARM64")
e2e_wheelhouse "$lock" "$pyver" aarch64 "$(e2e_root_glibc "$ROOTFS_ARM64")"
wheels=$E2E_WHEELS
# the app itself: one pure-Python wheel, built here as the playbook builds it
mkdir -p "$WORK/src" "$WORK/dist"
(cd "$E2E_REPO" && tar --exclude=__pycache__ --exclude='*.pyc' -cf - pyproject.toml app) |
    tar -xf - -C "$WORK/src"
SOURCE_DATE_EPOCH=315532800 "$python" -m pip wheel --quiet --no-deps --no-build-isolation \
    --wheel-dir "$WORK/dist" "$WORK/src" >/dev/null 2>&1 || e2e_die "building the app's wheel failed"
app_wheel=$(ls "$WORK"/dist/*.whl)

e2e_stage venv-arm64
mkdir -p "$ROOT" "$WORK/upper" "$WORK/work"
mount -t overlay overlay -o "lowerdir=$ROOTFS_ARM64,upperdir=$WORK/upper,workdir=$WORK/work" "$ROOT"
e2e_chroot_mount "$ROOT"
mkdir -p "$ROOT/wheels" "$ROOT/opt/mission-control/dist"
mount --bind -o ro "$wheels" "$ROOT/wheels"
cp "$lock" "$ROOT/opt/mission-control/requirements.lock"
cp "$app_wheel" "$ROOT/opt/mission-control/dist/"
arch=$(chroot "$ROOT" /usr/bin/python3 -c 'import platform; print(platform.machine())')
[ "$arch" = aarch64 ] || e2e_die "the root's python3 reports $arch, not aarch64"
chroot "$ROOT" /bin/sh -c '
    set -e
    export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INDEX=1 PIP_FIND_LINKS=/wheels
    python3 -m venv /opt/mission-control/venv
    /opt/mission-control/venv/bin/pip install --quiet --no-deps --require-hashes \
        -r /opt/mission-control/requirements.lock
    /opt/mission-control/venv/bin/pip install --quiet --no-deps /opt/mission-control/dist/*.whl
' >"$WORK/venv.log" 2>&1 || { tail -n 30 "$WORK/venv.log" >&2; e2e_die "the venv did not install on aarch64"; }

e2e_stage smoke-arm64
venv=/opt/mission-control/venv
version=$(chroot "$ROOT" "$venv/bin/missionctl" --version)
e2e_say "aarch64: missionctl --version: $version"
# the compiled dependencies are aarch64 builds and load
chroot "$ROOT" "$venv/bin/python" -c '
import platform, pydantic_core, cryptography.hazmat.bindings._rust as rust, argon2, httptools, psutil
import pydantic_core._pydantic_core as core
print(platform.machine(), core.__file__.rsplit("/", 1)[-1], rust.__file__.rsplit("/", 1)[-1])
' >&2 || e2e_die "the compiled dependencies do not import on aarch64"
# a short serve in a private network namespace (loopback only), /healthz answered
mkdir -p "$ROOT/var/lib/mc-smoke"
unshare --net -- /bin/bash -c '
    set -euo pipefail
    root=$1 venv=$2
    ip link set lo up
    env=(env MC_DATABASE_PATH=/var/lib/mc-smoke/mc.db MC_STATE_DIR=/var/lib/mc-smoke)
    chroot "$root" "${env[@]}" "$venv/bin/missionctl" db migrate >/dev/null
    # no shell function or subshell in between: chroot and env exec, so $! is
    # the server itself and the trap really stops it (a backgrounded function
    # left the server running under qemu after the test)
    chroot "$root" "${env[@]}" "$venv/bin/missionctl" serve --host 127.0.0.1 --port 8080 \
        >/tmp/mc-arm64-serve.$$.log 2>&1 &
    server=$!
    stop() {
        kill "$server" 2>/dev/null || true
        for _ in $(seq 1 50); do kill -0 "$server" 2>/dev/null || break; sleep 0.2; done
        kill -KILL "$server" 2>/dev/null || true
        wait "$server" 2>/dev/null || true
        rm -f "/tmp/mc-arm64-serve.$$.log"
    }
    trap stop EXIT
    for _ in $(seq 1 150); do
        if answer=$(curl -fsS -m 2 http://127.0.0.1:8080/healthz 2>/dev/null); then
            echo "aarch64 serve: /healthz -> $answer" >&2
            [ "$answer" = "{\"status\":\"ok\"}" ]
            exit 0
        fi
        kill -0 "$server" 2>/dev/null || { tail -n 20 /tmp/mc-arm64-serve.$$.log >&2; exit 1; }
        sleep 0.4
    done
    echo "serve did not answer /healthz in 60 s" >&2
    tail -n 20 /tmp/mc-arm64-serve.$$.log >&2
    exit 1
' arm64-serve "$ROOT" "$venv" || e2e_die "missionctl serve did not answer /healthz on aarch64"
# nothing may outlive the test: no process may still run inside the arm64 root
left=$(chrooted_pids)
[ -z "$left" ] || e2e_die "processes left running in the arm64 root: $left"
e2e_stage ""
e2e_say "arm64 smoke test passed in $(e2e_secs "$t0" "$(e2e_now_ns)") s ($version)"
