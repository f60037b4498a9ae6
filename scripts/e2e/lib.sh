# shellcheck shell=bash
# shellcheck disable=SC2034 # settings used by the scripts that source this file
# Shared pieces of the end-to-end harness (sourced by scripts/e2e-pi.sh and
# scripts/e2e/arm64-smoke.sh): settings, logging with stage timings, the
# package mirror, the cached root file system of the stand-in Pi's suite.
#
# Everything here is bounded in time and touches only what it made itself:
# namespaces named "$E2E_PREFIX-*", files under $E2E_CACHE and the run's own
# work directory, processes whose pid it recorded.

E2E_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# root's tools live in sbin, which a CI runner's PATH may lack
export PATH=$PATH:/usr/local/sbin:/usr/sbin:/sbin
E2E_CACHE=${MC_E2E_CACHE:-${MC_TESTBED_CACHE:-/var/cache/mission-control-testbed}}
# The Debian release of the stand-in Pi: trixie (Debian 13, what Raspberry Pi
# OS is built on today: the primary target) or bookworm (Debian 12, still
# supported). Each suite has its own cached roots and wheels.
E2E_SUITE=${MC_E2E_SUITE:-trixie}
case "$E2E_SUITE" in
    trixie | bookworm) ;;
    *)
        printf 'e2e: MC_E2E_SUITE=%s: only trixie and bookworm are supported\n' "$E2E_SUITE" >&2
        exit 2
        ;;
esac
# scripts/provision-chroot-test.sh's pristine minbase root: reused when present
E2E_PRISTINE=$E2E_CACHE/rootfs-$E2E_SUITE-minbase
# ours: that root plus systemd, dbus, sudo and a "pi" user, i.e. a freshly
# flashed Raspberry Pi OS Lite, on amd64
E2E_ROOTFS=$E2E_CACHE/rootfs-$E2E_SUITE-nspawn
E2E_ROOTFS_MARK=.mc-e2e-rootfs-v3
E2E_PREFIX=${MC_E2E_PREFIX:-mc-e2e}
# WireGuard interface names start with this (their control sockets live in the
# host's /var/run/wireguard, shared by every testbed: two concurrent testbeds
# need two tags as well as two prefixes and two caches)
E2E_IFTAG=${MC_E2E_IFTAG:-mce2e}

# The stand-in network (see docs/e2e.md for the picture).
E2E_NS_PI=$E2E_PREFIX-pi
E2E_NS_LAPTOP=$E2E_PREFIX-laptop
E2E_NS_LAN=$E2E_PREFIX-lan
E2E_NS_OUTSIDE=$E2E_PREFIX-outside
E2E_MACHINE=$E2E_PREFIX-pi
E2E_LAN_SUBNET=192.168.50.0/24
E2E_LAN_ROUTER=192.168.50.1
E2E_PI_LAN=192.168.50.10
E2E_LAPTOP_LAN=192.168.50.20
E2E_WAN_ROUTER=198.51.100.1
E2E_OUTSIDE_ADDR=198.51.100.2
E2E_TUNNEL_ADDR=10.8.0.1
E2E_WG_PORT=51820

# The second stand-in Pi: the same inventory and the same ansible-playbook
# runs provision both (the scale-out path: one inventory, per-host
# variables). It runs the other suite (bookworm beside trixie) with its own
# LAN address, tunnel network and WireGuard port. MC_E2E_PI2=0: one Pi only.
E2E_PI2=${MC_E2E_PI2:-1}
case "$E2E_SUITE" in
    trixie) E2E_SUITE2=${MC_E2E_SUITE2:-bookworm} ;;
    *) E2E_SUITE2=${MC_E2E_SUITE2:-trixie} ;;
esac
case "$E2E_SUITE2" in
    trixie | bookworm) ;;
    *)
        printf 'e2e: MC_E2E_SUITE2=%s: only trixie and bookworm are supported\n' "$E2E_SUITE2" >&2
        exit 2
        ;;
esac
E2E_NS_PI2=$E2E_PREFIX-pi2
E2E_MACHINE2=$E2E_PREFIX-pi2
E2E_PI2_LAN=192.168.50.11
E2E_TUNNEL2_NET=10.9.0.0/24
E2E_TUNNEL2_ADDR=10.9.0.1
# not 51821: the checks plant a UDP service there
E2E_WG2_PORT=51830

_e2e_t0=${_e2e_t0:-$(date +%s%N)}
_e2e_stage=""
_e2e_stage_t0=0

e2e_say() { printf '== %s\n' "$*" >&2; }
e2e_die() {
    printf 'e2e: %s\n' "$*" >&2
    exit 1
}

e2e_now_ns() { date +%s%N; }

# tenths of seconds between two date +%s%N readings, printed as "12.3"
e2e_secs() {
    local tenths=$((($2 - $1) / 100000000))
    printf '%d.%d' $((tenths / 10)) $((tenths % 10))
}

# e2e_stage NAME: end the previous stage (print and record its wall time)
# and start NAME. e2e_stage "" ends the current one.
e2e_stage() {
    local now
    now=$(e2e_now_ns)
    if [ -n "$_e2e_stage" ]; then
        local took
        took=$(e2e_secs "$_e2e_stage_t0" "$now")
        printf '== [%s] %s s\n' "$_e2e_stage" "$took" >&2
        if [ -n "${E2E_TIMINGS:-}" ]; then
            printf '%s %s\n' "$_e2e_stage" "$took" >>"$E2E_TIMINGS"
        fi
    fi
    _e2e_stage=$1
    _e2e_stage_t0=$now
    if [ -n "$_e2e_stage" ]; then
        printf '== [%s] ...\n' "$_e2e_stage" >&2
    fi
}

# wait_until TIMEOUT_S DESCRIPTION COMMAND...: poll every 0.2 s, bounded
e2e_wait_until() {
    local timeout=$1 what=$2 deadline
    shift 2
    deadline=$(($(date +%s) + timeout))
    until "$@" >/dev/null 2>&1; do
        if [ "$(date +%s)" -ge "$deadline" ]; then
            e2e_say "timed out after ${timeout} s waiting for: $what"
            return 1
        fi
        sleep 0.2
    done
}

# The mirror this machine already uses (deb822 .sources or sources.list),
# as in scripts/provision-chroot-test.sh.
e2e_mirror() {
    local uri=""
    if [ -r /etc/apt/sources.list.d/debian.sources ]; then
        uri=$(awk '/^URIs:/ && $2 !~ /security/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources)
    fi
    if [ -z "$uri" ] && [ -r /etc/apt/sources.list ]; then
        uri=$(awk '$1 == "deb" && $0 !~ /security/ {for (i = 2; i <= NF; i++) if ($i ~ /^https?:/) {print $i; exit}}' /etc/apt/sources.list)
    fi
    echo "${uri:-http://deb.debian.org/debian}"
}

# host:port of an http:// URI
e2e_uri_hostport() {
    local rest=${1#http://}
    rest=${rest%%/*}
    case "$rest" in
        *:*) echo "$rest" ;;
        *) echo "$rest:80" ;;
    esac
}

# Every apt source URI of a root (deb822 and one-line style), one per line.
e2e_root_source_uris() {
    local root=$1 f
    for f in "$root"/etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] && awk '/^URIs:/ {for (i = 2; i <= NF; i++) print $i}' "$f"
    done
    for f in "$root"/etc/apt/sources.list "$root"/etc/apt/sources.list.d/*.list; do
        [ -f "$f" ] && awk '$1 == "deb" {for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) {print $i; break}}' "$f"
    done
    return 0
}

# e2e_write_pi_sources ROOT MIRROR_URI: the Pi's own apt sources for its
# suite (deb822, as Debian 12 and 13 and Raspberry Pi OS write them): the
# suite, its updates and its security archive. Never the host's sources: a
# trixie root with bookworm sources breaks at its first install
# (libssl3t64 Breaks openssh-server << 1:9.4p1). The security archive is on
# the mirror's host (deb.debian.org serves /debian-security): the relay
# reaches one host only.
e2e_write_pi_sources() {
    local root=$1 mirror=${2%/} security
    security=${mirror%/debian}/debian-security
    mkdir -p "$root/etc/apt/sources.list.d"
    cat >"$root/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $mirror
Suites: $E2E_SUITE $E2E_SUITE-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $security
Suites: $E2E_SUITE-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
    : >"$root/etc/apt/sources.list"
}

# e2e_root_python ROOT: the X.Y of a root's /usr/bin/python3 (3.13 on trixie,
# 3.11 on bookworm), read from its symlink (works for a foreign architecture).
e2e_root_python() {
    local target
    target=$(readlink "$1/usr/bin/python3")
    target=${target##*/}
    target=${target#python}
    [[ "$target" =~ ^3\.[0-9]+$ ]] || e2e_die "cannot tell the Python version of $1 (/usr/bin/python3 -> $target)"
    printf '%s' "$target"
}

# e2e_root_glibc ROOT: the minor version of a root's C library (36 for
# Debian 12's 2.36, 41 for Debian 13's 2.41), from its dpkg status: wheels
# tagged for a newer glibc do not install there.
e2e_root_glibc() {
    local version
    version=$(awk '/^Package: libc6$/ {p = 1} p && /^Version:/ {print $2; exit}' "$1/var/lib/dpkg/status")
    [[ "$version" =~ ^2\.([0-9]+) ]] || e2e_die "cannot tell the glibc version of $1 (libc6 $version)"
    printf '%s' "${BASH_REMATCH[1]}"
}

# Mount what apt and postinst scripts need in a chroot; e2e_chroot_umount undoes it.
_E2E_CHROOT_MOUNTS=()
e2e_chroot_mount() {
    local root=$1
    mount -t proc proc "$root/proc" && _E2E_CHROOT_MOUNTS+=("$root/proc")
    mount --bind /dev "$root/dev" && _E2E_CHROOT_MOUNTS+=("$root/dev")
    mount -t tmpfs tmpfs "$root/tmp" && _E2E_CHROOT_MOUNTS+=("$root/tmp")
}
e2e_chroot_umount() {
    local i
    for ((i = ${#_E2E_CHROOT_MOUNTS[@]} - 1; i >= 0; i--)); do
        umount -l "${_E2E_CHROOT_MOUNTS[$i]}" 2>/dev/null || true
    done
    _E2E_CHROOT_MOUNTS=()
}

# The host's extra CAs (a CI machine may reach the mirror through a
# TLS-inspecting proxy); plain-http apt does not need them, pip on the host does.
e2e_copy_host_cas() {
    local root=$1
    if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
        mkdir -p "$root/usr/local/share/ca-certificates"
        cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/"
        chroot "$root" update-ca-certificates >/dev/null 2>&1 || true
    fi
}

# Build (or reuse) $E2E_ROOTFS: Debian bookworm minbase with systemd as init,
# dbus, sudo and a "pi" user with passwordless sudo and no password (what
# Raspberry Pi Imager makes: SSH keys only). Nothing of Mission Control.
# A pristine root of scripts/provision-chroot-test.sh is reused if cached.
e2e_rootfs_ensure() {
    local rebuild=${1:-no} tmp mirror_uri log
    if [ "$rebuild" != yes ] && [ -e "$E2E_ROOTFS/$E2E_ROOTFS_MARK" ]; then
        e2e_say "using the cached root $E2E_ROOTFS"
        return 0
    fi
    mkdir -p "$E2E_CACHE"
    tmp=$E2E_ROOTFS.tmp
    log=$E2E_CACHE/e2e-rootfs.log
    rm -rf "$tmp" "$E2E_ROOTFS"
    mirror_uri=$(e2e_mirror)
    if [ -e "$E2E_PRISTINE/.mission-control-pristine" ]; then
        e2e_say "deriving $E2E_ROOTFS from $E2E_PRISTINE"
        cp -a "$E2E_PRISTINE" "$tmp"
        rm -f "$tmp/.mission-control-pristine"
    else
        e2e_say "debootstrap $E2E_SUITE minbase from $mirror_uri (about 1.5-2 min)"
        timeout 900 debootstrap --variant=minbase \
            --include=systemd,systemd-sysv,dbus,sudo,python3,python3-apt,iproute2,ca-certificates \
            "$E2E_SUITE" "$tmp" "$mirror_uri" >"$log" 2>&1 ||
            e2e_die "debootstrap failed, see $log"
    fi
    e2e_write_pi_sources "$tmp" "$mirror_uri"
    # no service may start while we install into the chroot
    printf '#!/bin/sh\nexit 101\n' >"$tmp/usr/sbin/policy-rc.d"
    chmod 0755 "$tmp/usr/sbin/policy-rc.d"
    cp -L /etc/resolv.conf "$tmp/etc/resolv.conf"
    e2e_chroot_mount "$tmp"
    if ! {
        chroot "$tmp" env DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
            chroot "$tmp" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
                --no-install-recommends systemd systemd-sysv dbus sudo python3 python3-apt \
                iproute2 ca-certificates
    } >>"$log" 2>&1; then
        e2e_chroot_umount
        e2e_die "installing systemd into the root failed, see $log"
    fi
    # the user Raspberry Pi Imager creates: keys only (locked password), sudo
    # without a password (Raspberry Pi OS's /etc/sudoers.d/010_pi-nopasswd)
    chroot "$tmp" useradd --create-home --shell /bin/bash --groups sudo pi >>"$log" 2>&1 ||
        { e2e_chroot_umount; e2e_die "useradd pi failed, see $log"; }
    chroot "$tmp" passwd --lock pi >>"$log" 2>&1 || true
    printf 'pi ALL=(ALL) NOPASSWD: ALL\n' >"$tmp/etc/sudoers.d/010_pi-nopasswd"
    chmod 0440 "$tmp/etc/sudoers.d/010_pi-nopasswd"
    chroot "$tmp" apt-get clean >>"$log" 2>&1 || true
    e2e_chroot_umount
    # a flashed image: old (here: no) package lists, so the first run updates
    # them; services start normally
    rm -rf "$tmp"/var/lib/apt/lists/* "$tmp/var/lib/apt/periodic/update-success-stamp" \
        "$tmp/usr/sbin/policy-rc.d"
    mkdir -p "$tmp/var/lib/apt/lists/partial"
    touch -d 2020-01-01 "$tmp/var/lib/apt/lists" "$tmp/var/lib/apt/lists/partial"
    # a host name that resolves without DNS (sudo looks it up), as the Imager
    # sets; no DNS server (the Pi needs none here; lookups fail at once)
    echo mc-pi >"$tmp/etc/hostname"
    printf '127.0.0.1\tlocalhost\n127.0.1.1\tmc-pi\n::1\tlocalhost ip6-localhost ip6-loopback\n' \
        >"$tmp/etc/hosts"
    : >"$tmp/etc/resolv.conf"
    touch "$tmp/$E2E_ROOTFS_MARK"
    mv "$tmp" "$E2E_ROOTFS"
}

# e2e_wheelhouse LOCK PYVER ARCH GLIBC: the locked runtime dependencies for
# the Pi's interpreter (PYVER, e.g. 3.13), machine (x86_64 or aarch64) and C
# library (GLIBC: the minor version, manylinux tags up to it), as a
# Pi online would get them from the package index: `pip download` for that
# target, hash-checked against the lock (an sdist where the lock has no wheel,
# e.g. sdnotify; setuptools and wheel build it on the Pi). Downloaded once per
# lock file, interpreter and machine; the Pi's venv installs them offline
# (pip --no-index --find-links, hashes checked again). The host's own Python
# may differ (Debian 12's is 3.11): wheels it would pick do not install on
# trixie's 3.13. Sets E2E_WHEELS to the directory (call it directly, not in
# $(...): a failure must stop the caller).
e2e_wheelhouse() {
    local lock=$1 pyver=$2 arch=$3 glibc=$4 dir sum python minor log abi sdists
    python=$E2E_REPO/.venv/bin/python
    [ -x "$python" ] || python=python3
    sum=$(sha256sum "$lock" | cut -c1-16)
    abi=cp${pyver/./}
    dir=$E2E_CACHE/wheels-$sum-$abi-$arch-glibc2.$glibc
    log=$E2E_CACHE/e2e-wheels-$abi-$arch.log
    if [ ! -e "$dir/.complete" ]; then
        rm -rf "$dir.tmp"
        mkdir -p "$dir.tmp"
        local target=(--python-version "$pyver" --implementation cp --abi "$abi" --abi abi3 --abi none
            --platform "linux_$arch")
        # most specific first: the newest glibc the Pi has, down to manylinux2014
        for ((minor = glibc; minor >= 17; minor--)); do
            target+=(--platform "manylinux_2_${minor}_$arch")
        done
        target+=(--platform "manylinux2014_$arch")
        env PIP_DISABLE_PIP_VERSION_CHECK=1 timeout 600 "$python" -m pip download --quiet --no-deps \
            --require-hashes -r "$lock" -d "$dir.tmp" "${target[@]}" >"$log" 2>&1 ||
            e2e_die "pip download of $lock for CPython $pyver on $arch failed, see $log"
        env PIP_DISABLE_PIP_VERSION_CHECK=1 timeout 300 "$python" -m pip download --quiet --no-deps \
            --only-binary=:all: setuptools wheel -d "$dir.tmp" >>"$log" 2>&1 ||
            e2e_die "pip download of setuptools and wheel failed, see $log"
        # a compiled package that came as an sdist would need a compiler on the Pi
        sdists=$(find "$dir.tmp" -name '*.tar.gz' ! -name 'sdnotify-*' -printf '%f ')
        [ -z "$sdists" ] || e2e_die "no $abi $arch wheel in the lock for: $sdists"
        touch "$dir.tmp/.complete"
        rm -rf "$dir"
        mv "$dir.tmp" "$dir"
    fi
    E2E_WHEELS=$dir
}
