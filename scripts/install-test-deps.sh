#!/usr/bin/env bash
# Install the host packages the test suite drives for real (nginx, nftables,
# WireGuard, Ansible, ...). Only as root on Debian; elsewhere the tests that
# need them say they skipped and why.
set -euo pipefail
packages=(nginx-light nftables iproute2 curl)
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "test-deps: not root on Debian; tests needing host packages will skip" >&2
    exit 0
fi
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    echo "test-deps: installing ${missing[*]}" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
