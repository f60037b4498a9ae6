#!/usr/bin/env bash
# Host packages the end-to-end harness (scripts/e2e-pi.sh) needs; with
# --arm64 also those of scripts/e2e/arm64-smoke.sh (qemu-user emulation).
# Only as root on Debian; idempotent: when everything is there it only asks
# dpkg (well under a second). Always --no-install-recommends: wireguard-tools
# would otherwise pull in a whole kernel image.
set -euo pipefail
packages=(
    # the stand-in Pi: a debootstrapped bookworm root booted with systemd as PID 1
    debootstrap
    systemd-container
    util-linux
    # network namespaces, veth links, a bridge; the laptop's userspace WireGuard
    iproute2
    wireguard-tools
    wireguard-go
    # the relay that lets apt inside the Pi reach the package mirror
    socat
    # the playbook (Debian's ansible 7.7 carries community.docker.nsenter),
    # its second run over SSH through the tunnel
    ansible
    openssh-client
    # probes; testssl.sh's resolver tools (testssl.sh itself: trixie's package,
    # fetched by tests/e2e/test_e2e_15_testssl.py)
    curl
    iputils-ping
    bind9-dnsutils
    bsdextrautils
)
if [ "${1:-}" = --arm64 ]; then
    # mmdebstrap: the arm64 root, unpacked by the host's apt (--variant=extract)
    packages+=(qemu-user-static binfmt-support mmdebstrap arch-test)
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "e2e deps: not root on Debian; the end-to-end tests will skip" >&2
    exit 0
fi
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    echo "e2e deps: installing ${missing[*]}" >&2
    timeout 600 apt-get update -qq
    DEBIAN_FRONTEND=noninteractive timeout 900 apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >/dev/null
fi
