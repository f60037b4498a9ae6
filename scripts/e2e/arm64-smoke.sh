#!/usr/bin/env bash
# arm64 (Raspberry Pi 4/5) smoke test under qemu-user emulation: in a Debian
# arm64 root of MC_E2E_ARM64_SUITE (trixie by default, Python 3.13 as on
# current Raspberry Pi OS; or bookworm, Python 3.11) the compiled locked
# dependencies (requirements.lock, aarch64 wheels for the root's Python and
# glibc) import, `missionctl --version` runs, `missionctl db migrate` and a
# short `missionctl serve` answer /healthz. Not a boot test (systemd under
# qemu only reaches "degraded"): tests/e2e covers the appliance on amd64.
#
#   sudo scripts/e2e/arm64-smoke.sh [--rebuild] [--keep]
#
# What would be slow under emulation is done natively, or once and cached:
# - the root ($MC_E2E_CACHE/rootfs-<suite>-arm64): `mmdebstrap
#   --variant=extract` of python3 and tzdata with their dependencies, unpacked
#   by the host's apt and dpkg; no maintainer script runs under qemu (seconds,
#   where a configured trixie root took 18 minutes under load). The one thing
#   of theirs that matters here, the byte-compilation of the standard library
#   (python3's postinst, py3compile), is done by the root's own python3;
# - the venv with the locked dependencies ($MC_E2E_CACHE/site-arm64-<suite>-
#   <lock hash>-<abi>-<glibc>): made by the root's python3 (`-m venv
#   --without-pip`), filled by the host's pip (`install --target`, no pip
#   under qemu) for the root's interpreter, ABI and aarch64 platform tags,
#   --require-hashes against the lock, from the hash-checked wheel cache
#   (scripts/e2e/lib.sh, e2e_wheelhouse), then byte-compiled by the root's
#   python3 as pip on the Pi does;
# - each run: an overlay of the root with that venv as a lower layer, the
#   app's wheel (built here) installed into it the same way, then the smoke
#   commands under qemu.
# Needs root, mmdebstrap, qemu-user-static and binfmt-support
# (scripts/e2e/install-deps.sh --arm64). The aarch64 registration of
# binfmt_misc (a host-wide setting) is switched on for the run and put back
# as it was found afterwards.
set -Eeuo pipefail
# shellcheck source=scripts/e2e/lib.sh
source "$(dirname "$0")/lib.sh"
trap 'e2e_say "failed: line $LINENO: $BASH_COMMAND"' ERR

ARM64_SUITE=${MC_E2E_ARM64_SUITE:-trixie}
case "$ARM64_SUITE" in
    trixie | bookworm) ;;
    *) e2e_die "MC_E2E_ARM64_SUITE=$ARM64_SUITE: only trixie and bookworm are supported" ;;
esac
ROOTFS_ARM64=$E2E_CACHE/rootfs-$ARM64_SUITE-arm64
# v3: the unpacked-only root; the mark records the root's Python and glibc
# (an older root is made again)
MARK=.mc-e2e-arm64-v3
VENV=/opt/mission-control/venv
# The CPU qemu emulates: the Raspberry Pi 4's Cortex-A72 (ARMv8.0-A, the
# oldest core the appliance supports; the Pi 5 has a Cortex-A76), so the
# aarch64 wheels are proven on its instruction set. qemu's default, "max",
# has pointer authentication, which trixie's binaries use (branch
# protection) and qemu emulates slowly: trixie's python3 started 4-5 times
# slower there (`max,pauth=off` as fast as the A72; bookworm's either way).
export QEMU_CPU=${MC_E2E_ARM64_CPU:-cortex-a72}
# how long `missionctl serve` may take to answer its first /healthz under qemu
SERVE_BOUND=${MC_E2E_ARM64_SERVE_BOUND:-180}
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
for tool in mmdebstrap qemu-aarch64-static update-binfmts unshare curl; do
    command -v "$tool" >/dev/null || e2e_die "$tool is missing (scripts/e2e/install-deps.sh --arm64)"
done
python=$E2E_REPO/.venv/bin/python
[ -x "$python" ] || python=python3

WORK=$(mktemp -d /var/tmp/mc-e2e-arm64.XXXXXX)
ROOT=$WORK/root
MOUNTED_BINFMT=no
ENABLED_AARCH64=no
# the pids of processes whose root directory is the arm64 root, or the one
# being made
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

# byte_compile CHROOT DIR: compile DIR (a path inside CHROOT) with the
# root's python3 under qemu, as the package's postinst or pip on the Pi
# would. A file that does not compile only costs time later.
byte_compile() {
    timeout 600 chroot "$1" /usr/bin/python3 -m compileall -q "$2" >>"$WORK/compile.log" 2>&1 || true
}

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
if [ "$REBUILD" = yes ] || [ ! -s "$ROOTFS_ARM64/$MARK" ]; then
    log=$E2E_CACHE/e2e-arm64-rootfs.log
    rm -rf "$ROOTFS_ARM64.tmp" "$ROOTFS_ARM64" "$E2E_CACHE/site-arm64-$ARM64_SUITE-"*
    e2e_say "mmdebstrap --variant=extract --arch=arm64 $ARM64_SUITE python3 tzdata (unpacked only)"
    # merged-usr: /lib -> usr/lib etc., which the extract variant does not make
    # and the aarch64 binaries' interpreter path (/lib/ld-linux-aarch64.so.1) needs
    timeout 900 mmdebstrap --arch=arm64 --variant=extract \
        --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr --include=python3,tzdata \
        "$ARM64_SUITE" "$ROOTFS_ARM64.tmp" "$(e2e_mirror)" >"$log" 2>&1 ||
        e2e_die "mmdebstrap of the arm64 root failed, see $log"
    pyver=$(e2e_root_python "$ROOTFS_ARM64.tmp")
    # the root's python3 runs under qemu without ld.so.cache (ld.so's built-in
    # multiarch paths); one start tells what the wheels and bytecode must fit
    read -r machine libc < <(timeout 300 chroot "$ROOTFS_ARM64.tmp" /usr/bin/python3 -c '
import platform
print(platform.machine(), platform.libc_ver()[1])') ||
        e2e_die "the arm64 root's python3 does not run under qemu"
    [ "$machine" = aarch64 ] || e2e_die "the root's python3 reports $machine, not aarch64"
    [[ "$libc" =~ ^2\.([0-9]+)$ ]] || e2e_die "the root's python3 reports glibc '$libc'"
    glibc=${BASH_REMATCH[1]}
    e2e_say "byte-compiling the root's Python $pyver standard library"
    byte_compile "$ROOTFS_ARM64.tmp" "/usr/lib/python$pyver"
    rm -rf "$ROOTFS_ARM64.tmp"/var/lib/apt/lists/* "$ROOTFS_ARM64.tmp"/var/cache/apt/archives/*.deb
    # mount points (e2e_chroot_mount) and the smoke test's state directory
    mkdir -p "$ROOTFS_ARM64.tmp"/{proc,dev,tmp,opt/mission-control,var/lib/mc-smoke}
    printf 'python=%s glibc=%s\n' "$pyver" "$glibc" >"$ROOTFS_ARM64.tmp/$MARK"
    mv "$ROOTFS_ARM64.tmp" "$ROOTFS_ARM64"
else
    e2e_say "using the cached arm64 root $ROOTFS_ARM64"
fi
read -r facts <"$ROOTFS_ARM64/$MARK"
[[ "$facts" =~ ^python=(3\.[0-9]+)\ glibc=([0-9]+)$ ]] ||
    e2e_die "$ROOTFS_ARM64/$MARK: unexpected '$facts' (--rebuild)"
pyver=${BASH_REMATCH[1]} glibc=${BASH_REMATCH[2]}
abi=cp${pyver/./}
e2e_say "arm64 root: $ARM64_SUITE, Python $pyver, glibc 2.$glibc; qemu CPU $QEMU_CPU"

e2e_stage wheels-arm64
lock=$E2E_REPO/requirements.lock
# the lock's aarch64 files for the root's own Python and glibc, hash-checked
# (an sdist only where the lock has no wheel and the package is pure Python)
e2e_wheelhouse "$lock" "$pyver" aarch64 "$glibc"
wheels=$E2E_WHEELS
# the app itself: one pure-Python wheel, built here as the playbook builds it
mkdir -p "$WORK/src" "$WORK/dist"
(cd "$E2E_REPO" && tar --exclude=__pycache__ --exclude='*.pyc' -cf - pyproject.toml app) |
    tar -xf - -C "$WORK/src"
SOURCE_DATE_EPOCH=315532800 "$python" -m pip wheel --quiet --no-deps --no-build-isolation \
    --wheel-dir "$WORK/dist" "$WORK/src" >/dev/null 2>&1 || e2e_die "building the app's wheel failed"
app_wheel=$(ls "$WORK"/dist/*.whl)
# pip for the root's interpreter on aarch64, run natively: the tags pip on
# the Pi accepts (its CPython ABI, abi3, none; manylinux up to its glibc)
target=(--python-version "$pyver" --implementation cp --abi "$abi" --abi abi3 --abi none
    --platform "linux_aarch64")
for ((minor = glibc; minor >= 17; minor--)); do
    target+=(--platform "manylinux_2_${minor}_aarch64")
done
target+=(--platform manylinux2014_aarch64)
# pip_for_root DIR ARGS...: install into DIR (a site-packages) for the root
pip_for_root() {
    local dir=$1
    shift
    env PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INDEX=1 PIP_FIND_LINKS="$wheels" \
        timeout 600 "$python" -m pip install --quiet --no-deps --no-compile --upgrade \
        --target "$dir" "${target[@]}" "$@"
}
# console scripts: pip --target writes them to DIR/bin for the host's python;
# moved to the venv's bin/ with the venv's interpreter, as pip on the Pi writes them
move_scripts() {
    local dir=$1 venv_root=$2 f
    [ -d "$dir/bin" ] || return 0
    for f in "$dir"/bin/*; do
        sed -i "1s|^#!.*python.*$|#!$VENV/bin/python|" "$f"
        mv -f "$f" "$venv_root$VENV/bin/"
    done
    rmdir "$dir/bin"
}

e2e_stage venv-arm64
locksum=$(sha256sum "$lock" | cut -c1-16)
SITE_LAYER=$E2E_CACHE/site-arm64-$ARM64_SUITE-$locksum-$abi-glibc2.$glibc
site=$VENV/lib/python$pyver/site-packages
mkdir -p "$ROOT" "$WORK/upper" "$WORK/work"
if [ "$REBUILD" = no ] && [ -e "$SITE_LAYER/.complete" ]; then
    e2e_say "using the cached venv with the locked dependencies $SITE_LAYER"
    mount -t overlay overlay \
        -o "lowerdir=$SITE_LAYER:$ROOTFS_ARM64,upperdir=$WORK/upper,workdir=$WORK/work" "$ROOT"
    e2e_chroot_mount "$ROOT"
else
    mount -t overlay overlay -o "lowerdir=$ROOTFS_ARM64,upperdir=$WORK/upper,workdir=$WORK/work" "$ROOT"
    e2e_chroot_mount "$ROOT"
    # the venv as the root's own python makes it (no pip inside: nothing
    # installs with it under qemu)
    timeout 300 chroot "$ROOT" /usr/bin/python3 -m venv --without-pip "$VENV" ||
        e2e_die "python3 -m venv failed in the arm64 root"
    [ -d "$ROOT$site" ] || e2e_die "the venv has no $site"
    e2e_say "installing the locked dependencies for $abi aarch64 glibc 2.$glibc (natively, hashes checked)"
    pip_for_root "$ROOT$site" --require-hashes -r "$lock" >"$WORK/pip-lock.log" 2>&1 ||
        { tail -n 30 "$WORK/pip-lock.log" >&2; e2e_die "the locked dependencies did not install for aarch64"; }
    move_scripts "$ROOT$site" "$ROOT"
    byte_compile "$ROOT" "$site"
    rm -rf "$SITE_LAYER.tmp" "$SITE_LAYER"
    mkdir -p "$SITE_LAYER.tmp/opt/mission-control"
    cp -a "$ROOT$VENV" "$SITE_LAYER.tmp/opt/mission-control/"
    touch "$SITE_LAYER.tmp/.complete"
    mv "$SITE_LAYER.tmp" "$SITE_LAYER"
fi
# the app's wheel into the venv (the overlay's upper layer: every run anew)
pip_for_root "$WORK/app-site" "$app_wheel" >"$WORK/pip-app.log" 2>&1 ||
    { tail -n 30 "$WORK/pip-app.log" >&2; e2e_die "the app's wheel did not install for aarch64"; }
move_scripts "$WORK/app-site" "$ROOT"
cp -a "$WORK/app-site/." "$ROOT$site/"
byte_compile "$ROOT" "$site/app"
[ -x "$ROOT$VENV/bin/missionctl" ] || e2e_die "the app's wheel installed no missionctl script"

e2e_stage smoke-arm64
# a clean environment for every command under qemu (the root has no shell)
in_root=(env -i PATH="$VENV/bin:/usr/bin" HOME=/root LANG=C.UTF-8 QEMU_CPU="$QEMU_CPU"
    MC_DATABASE_PATH=/var/lib/mc-smoke/mc.db MC_STATE_DIR=/var/lib/mc-smoke "$(command -v chroot)" "$ROOT")
ts=$(e2e_now_ns)
version=$("${in_root[@]}" "$VENV/bin/missionctl" --version) || e2e_die "missionctl --version failed on aarch64"
e2e_say "aarch64: missionctl --version: $version ($(e2e_secs "$ts" "$(e2e_now_ns)") s)"
# the compiled dependencies are aarch64 builds and load
ts=$(e2e_now_ns)
"${in_root[@]}" "$VENV/bin/python" -c '
import platform, sys, pydantic_core, cryptography.hazmat.bindings._rust as rust, argon2, httptools, psutil
import yaml._yaml, markupsafe._speedups, _cffi_backend
import pydantic_core._pydantic_core as core
print(platform.machine(), sys.version.split()[0], core.__file__.rsplit("/", 1)[-1], rust.__file__.rsplit("/", 1)[-1])
' >&2 || e2e_die "the compiled dependencies do not import on aarch64"
e2e_say "aarch64: the compiled dependencies import ($(e2e_secs "$ts" "$(e2e_now_ns)") s)"
ts=$(e2e_now_ns)
"${in_root[@]}" "$VENV/bin/missionctl" db migrate >/dev/null ||
    e2e_die "missionctl db migrate failed on aarch64"
e2e_say "aarch64: missionctl db migrate ($(e2e_secs "$ts" "$(e2e_now_ns)") s)"
# a short serve in a private network namespace (loopback only), /healthz
# answered within SERVE_BOUND seconds (polled twice a second)
unshare --net -- /bin/bash -c '
    set -euo pipefail
    bound=$1 log=$2 timings=$3
    shift 3
    ip link set lo up
    # chroot and env exec: $! is the server itself and the trap really stops it
    "$@" serve --host 127.0.0.1 --port 8080 >"$log" 2>&1 &
    server=$!
    stop() {
        kill "$server" 2>/dev/null || true
        for _ in $(seq 1 50); do kill -0 "$server" 2>/dev/null || break; sleep 0.2; done
        kill -KILL "$server" 2>/dev/null || true
        wait "$server" 2>/dev/null || true
    }
    trap stop EXIT
    start=$(date +%s%N)
    deadline=$(($(date +%s) + bound))
    while [ "$(date +%s)" -lt "$deadline" ]; do
        if answer=$(curl -fsS -m 2 http://127.0.0.1:8080/healthz 2>/dev/null); then
            took=$((($(date +%s%N) - start) / 100000000))
            echo "aarch64 serve: /healthz -> $answer after $((took / 10)).$((took % 10)) s" >&2
            echo "serve-healthz-arm64 $((took / 10)).$((took % 10))" >>"$timings"
            [ "$answer" = "{\"status\":\"ok\"}" ]
            exit 0
        fi
        kill -0 "$server" 2>/dev/null || { tail -n 20 "$log" >&2; exit 1; }
        sleep 0.5
    done
    echo "serve did not answer /healthz in $bound s" >&2
    tail -n 20 "$log" >&2
    exit 1
' arm64-serve "$SERVE_BOUND" "$WORK/serve.log" "$E2E_TIMINGS" "${in_root[@]}" "$VENV/bin/missionctl" ||
    e2e_die "missionctl serve did not answer /healthz on aarch64"
# nothing may outlive the test: no process may still run inside the arm64 root
left=$(chrooted_pids)
[ -z "$left" ] || e2e_die "processes left running in the arm64 root: $left"
e2e_stage ""
e2e_say "arm64 smoke test passed in $(e2e_secs "$t0" "$(e2e_now_ns)") s ($version; $ARM64_SUITE, Python $pyver)"
