#!/usr/bin/env bash
# Apply provisioning/site.yml for real to a debootstrapped Debian root
# (MC_E2E_SUITE: trixie, the default, or bookworm) with Ansible's chroot
# connection, twice, and check that the second run changes
# nothing. Services are not started (no systemd runs in a chroot): the roles
# enable them, and skip what needs a running systemd or would touch the build
# host (loading the firewall, sysctl, wg syncconf).
#
#   sudo scripts/provision-chroot-test.sh [--keep] [--rebuild]
#
# The pristine root is cached as $MC_E2E_CACHE/rootfs-<suite>-minbase
# (MC_TESTBED_CACHE also works; default /var/cache/mission-control-testbed;
# scripts/e2e-pi.sh derives its stand-in Pi from it) and rebuilt when missing
# (--rebuild forces it). Each run works on an overlay of it, so the cache
# stays pristine. The mirror, the suite's own apt sources and the host's CAs
# come from scripts/e2e/lib.sh, as for the end-to-end harness.
# --keep leaves the provisioned root mounted at the printed path.
# Needs: root, debootstrap, ansible (Debian's 7.x carries community.general).
set -euo pipefail
# shellcheck source=scripts/e2e/lib.sh
source "$(dirname "$0")/e2e/lib.sh"

cd "$E2E_REPO"
REPO=$E2E_REPO
CACHE=$E2E_CACHE
SUITE=$E2E_SUITE
PRISTINE=$E2E_PRISTINE
KEEP=no
REBUILD=no
for arg in "$@"; do
    case "$arg" in
        --keep) KEEP=yes ;;
        --rebuild) REBUILD=yes ;;
        *) echo "usage: $0 [--keep] [--rebuild]" >&2; exit 2 ;;
    esac
done

say() { printf '== %s\n' "$*"; }
die() { printf 'provision-chroot-test: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root"
for tool in debootstrap ansible-playbook mount; do
    command -v "$tool" >/dev/null || die "$tool is missing (apt-get install --no-install-recommends debootstrap ansible)"
done

build_pristine() {
    local mirror_uri tmp
    mirror_uri=$(e2e_mirror)
    say "debootstrap $SUITE minbase from $mirror_uri into $PRISTINE"
    mkdir -p "$CACHE"
    tmp=$PRISTINE.tmp
    rm -rf "$tmp"
    debootstrap --variant=minbase \
        --include=python3,python3-apt,ca-certificates,iproute2 \
        "$SUITE" "$tmp" "$mirror_uri" >"$CACHE/debootstrap.log" 2>&1 ||
        die "debootstrap failed, see $CACHE/debootstrap.log"
    # the suite's own sources (its updates and security archive), never the
    # host's: a trixie root with bookworm sources breaks at its first install
    e2e_write_pi_sources "$tmp" "$mirror_uri"
    # never start a service inside the chroot (nginx's postinst would try)
    printf '#!/bin/sh\nexit 101\n' >"$tmp/usr/sbin/policy-rc.d"
    chmod 0755 "$tmp/usr/sbin/policy-rc.d"
    touch "$tmp/.mission-control-pristine"
    mv "$tmp" "$PRISTINE"
}

if [ "$REBUILD" = yes ] || [ ! -e "$PRISTINE/.mission-control-pristine" ]; then
    rm -rf "$PRISTINE"
    start=$(date +%s)
    build_pristine
    say "debootstrap took $(($(date +%s) - start)) s"
else
    say "using the cached root $PRISTINE"
fi

WORK=$(mktemp -d /var/tmp/mc-chroot-test.XXXXXX)
ROOT=$WORK/root
mkdir -p "$ROOT" "$WORK/upper" "$WORK/work" "$WORK/artifacts"
MOUNTS=()
cleanup() {
    local i
    if [ "$KEEP" = yes ]; then
        say "kept: $ROOT (umount -R $ROOT; rm -rf $WORK when done)"
        return
    fi
    for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do
        umount -l "${MOUNTS[$i]}" 2>/dev/null || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT

if mount -t overlay overlay -o "lowerdir=$PRISTINE,upperdir=$WORK/upper,workdir=$WORK/work" "$ROOT" 2>/dev/null; then
    MOUNTS+=("$ROOT")
else
    say "no overlayfs here: copying the root"
    cp -a "$PRISTINE/." "$ROOT/"
fi
mount -t proc proc "$ROOT/proc" && MOUNTS+=("$ROOT/proc")
mount -t sysfs sysfs "$ROOT/sys" && MOUNTS+=("$ROOT/sys")
mount --bind /dev "$ROOT/dev" && MOUNTS+=("$ROOT/dev")
mount -t devpts devpts "$ROOT/dev/pts" -o newinstance,ptmxmode=0666 2>/dev/null && MOUNTS+=("$ROOT/dev/pts") || true
mount -t tmpfs tmpfs "$ROOT/tmp" && MOUNTS+=("$ROOT/tmp")
cp -L /etc/resolv.conf "$ROOT/etc/resolv.conf"
# Trust what this machine trusts (a CI machine may reach the package
# registries through a TLS-inspecting proxy with its own CA).
e2e_copy_host_cas "$ROOT"

# Both runs install the same snapshot of the app (others may be editing the
# working tree meanwhile; an edit would rightly make the second run reinstall).
mkdir -p "$WORK/src"
tar --exclude=__pycache__ --exclude='*.pyc' -cf - pyproject.toml requirements.lock app |
    tar -xf - -C "$WORK/src"
BUILD_PYTHON=$REPO/.venv/bin/python
[ -x "$BUILD_PYTHON" ] || BUILD_PYTHON=python3

cat >"$WORK/inventory.ini" <<EOF
[mission_control]
testroot ansible_connection=community.general.chroot ansible_host=$ROOT ansible_python_interpreter=/usr/bin/python3
EOF
cat >"$WORK/vars.yml" <<EOF
---
firewall_lan_subnets: [192.168.1.0/24]
wireguard_endpoint_host: 192.0.2.10
wireguard_peers:
  - name: laptop
  - name: phone
    address: 10.8.0.20
wireguard_fetch_client_configs: true
wireguard_fetch_dir: $WORK/artifacts
nginx_fetch_dir: $WORK/artifacts
app_source_dir: $WORK/src
app_build_python: $BUILD_PYTHON
EOF

run_playbook() {
    local n=$1 start end log=$WORK/run$1.log
    start=$(date +%s%N)
    if ! ANSIBLE_CONFIG="$REPO/provisioning/ansible.cfg" ANSIBLE_NOCOLOR=1 \
        ANSIBLE_CALLBACKS_ENABLED=profile_tasks \
        ansible-playbook -i "$WORK/inventory.ini" -e "@$WORK/vars.yml" \
        "$REPO/provisioning/site.yml" >"$log" 2>&1; then
        cp "$log" "$CACHE/last-failed-run.log"
        grep -E -B3 -A12 '^(fatal|failed):' "$log" | tail -n 60 >&2 || tail -n 60 "$log" >&2
        die "run $n failed (full log: $CACHE/last-failed-run.log)"
    fi
    end=$(date +%s%N)
    RECAP=$(grep -E '^testroot +:' "$log" | tail -n 1)
    local tenths=$(((end - start) / 100000000))
    TIME="$((tenths / 10)).$((tenths % 10))"
    CHANGED=$(sed -E 's/.*changed=([0-9]+).*/\1/' <<<"$RECAP")
    FAILED=$(sed -E 's/.*failed=([0-9]+).*/\1/' <<<"$RECAP")
    say "run $n: ${TIME} s, $RECAP"
}

say "run 1: provisioning a fresh root"
run_playbook 1
TIME1=$TIME CHANGED1=$CHANGED
say "run 2: must change nothing"
run_playbook 2
TIME2=$TIME CHANGED2=$CHANGED

if [ "$CHANGED2" != 0 ] || [ "$FAILED" != 0 ]; then
    grep -E '^(changed|TASK)' "$WORK/run2.log" | grep -B1 '^changed' >&2 || true
    KEEP=yes
    die "second run was not idempotent: changed=$CHANGED2 failed=$FAILED (log: $WORK/run2.log)"
fi

# a few facts about the result, checked from outside
for f in etc/nginx/nginx.conf etc/nftables.conf etc/wireguard/wg0.conf etc/mission-control/env \
    etc/systemd/system/mission-control.service opt/mission-control/venv/bin/missionctl; do
    [ -e "$ROOT/$f" ] || die "missing after provisioning: /$f"
done
[ "$(stat -c %a "$ROOT/etc/wireguard/wg0.conf")" = 600 ] || die "wg0.conf is not 0600"
[ -s "$WORK/artifacts/testroot-ca.crt" ] || die "the CA certificate was not fetched"
[ -s "$WORK/artifacts/testroot/laptop.conf" ] || die "the laptop's client config was not fetched"
[ -L "$ROOT/etc/systemd/system/multi-user.target.wants/mission-control.service" ] ||
    die "mission-control.service is not enabled"

say "summary: run 1 ${TIME1} s changed=$CHANGED1; run 2 ${TIME2} s changed=$CHANGED2 (idempotent)"
