#!/usr/bin/env bash
# Install the host packages the test suite drives for real (nginx, nftables,
# WireGuard, Ansible, ...). Only as root on Debian; elsewhere the tests that
# need them say they skipped and why. Idempotent: when everything is there it
# only asks dpkg (well under a second).
set -euo pipefail
packages=(
    # nginx -t and a live nginx in a network namespace (tests/provisioning)
    nginx-light
    openssl
    curl
    # the nftables ruleset, network namespaces, probes
    nftables
    iproute2
    iputils-ping
    util-linux
    # WireGuard: wg, wg-quick, a userspace interface (no kernel module in CI), QR codes
    wireguard-tools
    wireguard-go
    qrencode
    # systemd-analyze verify / security
    systemd
    # the playbook: Debian's ansible 7.7 (core 2.14) and ansible-lint 6.13
    ansible
    ansible-lint
    # scripts/provision-chroot-test.sh
    debootstrap
    # the web UI's browser tests (tests/browser): Playwright drives Debian's chromium
    chromium
)
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
    # --no-install-recommends: wireguard-tools would otherwise pull in a kernel
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The real agent CLIs (tests/runner/test_real_*.py): pinned in
# scripts/agent-cli-versions.env, from the npm registry (npm's cache in ~/.npm keeps
# the tarballs). npm's global prefix is /usr here, which the per-run sandbox lets
# agents execute. Skipped without npm: those tests then say why.
# shellcheck source=scripts/agent-cli-versions.env
. "$(dirname "$0")/agent-cli-versions.env"
agent_clis=(
    "claude @anthropic-ai/claude-code $CLAUDE_CODE_VERSION"
    "codex @openai/codex $CODEX_VERSION"
    "gemini @google/gemini-cli $GEMINI_CLI_VERSION"
    "opencode opencode-ai $OPENCODE_VERSION"
)
if command -v npm >/dev/null 2>&1; then
    for entry in "${agent_clis[@]}"; do
        read -r binary package version <<<"$entry"
        installed="$(npm ls --global --depth=0 --json "$package" 2>/dev/null |
            grep -o "\"version\": *\"[^\"]*\"" | head -n1 | grep -o "[0-9][^\"]*" || true)"
        if [ "$installed" != "$version" ] || ! command -v "$binary" >/dev/null 2>&1; then
            echo "test-deps: installing $package@$version from the npm registry" >&2
            npm install -g --no-fund --no-audit --loglevel=error "$package@$version" >/dev/null
        fi
    done
else
    echo "test-deps: npm not found; the real agent CLI tests will skip" >&2
fi
