#!/usr/bin/env bash
# End-to-end proof of the appliance: a stand-in Raspberry Pi (Debian trixie,
# or bookworm with MC_E2E_SUITE=bookworm, booted with systemd as PID 1 under
# systemd-nspawn) on a simulated home
# network, provisioned by provisioning/site.yml, then checked as a user, a
# LAN neighbour and a stranger would see it (tests/e2e). See docs/e2e.md.
#
#   sudo scripts/e2e-pi.sh [run] [--rebuild] [--keep] [-- PYTEST ARGS]
#        up, provision, run tests/e2e against it, tear down (the default)
#   sudo scripts/e2e-pi.sh up --state-dir DIR [--owner-pid PID] [--rebuild]
#        up and provisioned, left running; DIR/state.env describes it
#   sudo scripts/e2e-pi.sh reboot --state-dir DIR [--power-cut]
#        power-cycle the Pi: stop it, fresh network namespace, boot an
#        overlay copy of the provisioned root; --power-cut: no shutdown at
#        all (SIGKILL to the container's PID 1 ends every process in it at once)
#   sudo scripts/e2e-pi.sh down --state-dir DIR [--keep]
#        stop everything, remove namespaces, mounts, processes and DIR
#
# Network (namespaces "$MC_E2E_PREFIX-*", default mc-e2e-*):
#   lan      192.168.50.1  the home router (a bridge) and a LAN host, no VPN peer
#   pi       192.168.50.10 the appliance (the container's network namespace)
#   laptop   192.168.50.20 a WireGuard peer (userspace wireguard-go)
#   outside  198.51.100.2  the internet, routed to the LAN through the router
#
# MC_E2E_SUITE: trixie (the default) or bookworm.
# MC_E2E_SOURCE: another checkout to provision from (default: this one).
# Caches (MC_E2E_CACHE, default /var/cache/mission-control-testbed): the
# suite's root, the locked wheels for its Python, apt's downloaded packages. --rebuild
# makes the root again. Needs root, network namespaces, systemd-nspawn
# (scripts/e2e/install-deps.sh installs what is missing).
set -Eeuo pipefail
# shellcheck source=scripts/e2e/lib.sh
source "$(dirname "$0")/e2e/lib.sh"
# no silent exit: name the command that failed
trap 'e2e_say "failed: line $LINENO: $BASH_COMMAND"' ERR

LAPTOP_IF=$E2E_IFTAG-lap
ACTIVE=$E2E_CACHE/e2e-active

usage() {
    sed -n '2,/^set -E/p' "$0" | grep '^#' | sed 's/^# \{0,1\}//' >&2
    exit 2
}

CMD=run
case "${1:-}" in
    run | up | down | reboot) CMD=$1; shift ;;
    -h | --help) usage ;;
esac
STATE_DIR=""
OWNER_PID=""
REBUILD=no
KEEP=no
POWER_CUT=no
PYTEST_ARGS=()
while [ "$#" -gt 0 ]; do
    case "$1" in
        --state-dir) STATE_DIR=${2:?}; shift 2 ;;
        --owner-pid) OWNER_PID=${2:?}; shift 2 ;;
        --rebuild) REBUILD=yes; shift ;;
        --keep) KEEP=yes; shift ;;
        --power-cut) POWER_CUT=yes; shift ;;
        --) shift; PYTEST_ARGS=("$@"); break ;;
        *) usage ;;
    esac
done

# ---------------------------------------------------------------- state file
state_set() {
    local key=$1 value=$2 file=$STATE_DIR/state.env
    touch "$file"
    grep -v "^$key=" "$file" >"$file.new" || true
    printf '%s=%s\n' "$key" "$value" >>"$file.new"
    mv -f "$file.new" "$file"
    printf -v "S_$key" '%s' "$value"
}
state_load() {
    local file=$STATE_DIR/state.env key value
    [ -r "$file" ] || e2e_die "no state in $STATE_DIR (was 'up' run?)"
    while IFS='=' read -r key value; do
        [[ "$key" =~ ^[A-Z][A-Z0-9_]*$ ]] || continue
        printf -v "S_$key" '%s' "$value"
    done <"$file"
}
state_get() {
    local var="S_$1"
    printf '%s' "${!var:-}"
}

# ---------------------------------------------------------------- checks
preflight() {
    [ "$(id -u)" = 0 ] || e2e_die "run as root"
    local tool missing=()
    for tool in systemd-nspawn nsenter ip wg wg-quick wireguard-go socat ansible-playbook ssh \
        ssh-keygen debootstrap mount curl; do
        command -v "$tool" >/dev/null || missing+=("$tool")
    done
    [ "${#missing[@]}" = 0 ] || e2e_die "missing ${missing[*]} (scripts/e2e/install-deps.sh)"
    [ -c /dev/net/tun ] || e2e_die "no /dev/net/tun (userspace WireGuard needs it)"
    ip netns add "$E2E_PREFIX-probe" 2>/dev/null || e2e_die "cannot create network namespaces"
    ip netns del "$E2E_PREFIX-probe"
}

# Processes whose pid we recorded, killed only if still ours (cmdline check).
kill_recorded() {
    local pid=$1 needle=$2
    [ -n "$pid" ] || return 0
    if [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$needle"; then
        kill -TERM "$pid" 2>/dev/null || true
        local i
        for i in $(seq 1 25); do
            kill -0 "$pid" 2>/dev/null || return 0
            sleep 0.2
        done
        kill -KILL "$pid" 2>/dev/null || true
    fi
}

# Everything inside one of our namespaces, then the namespace.
delete_netns() {
    local ns=$1 pids i
    ip netns list | awk '{print $1}' | grep -qx "$ns" || return 0
    pids=$(ip netns pids "$ns" 2>/dev/null || true)
    if [ -n "$pids" ]; then
        # shellcheck disable=SC2086
        kill -TERM $pids 2>/dev/null || true
        for i in $(seq 1 15); do
            [ -n "$(ip netns pids "$ns" 2>/dev/null)" ] || break
            sleep 0.2
        done
        pids=$(ip netns pids "$ns" 2>/dev/null || true)
        # shellcheck disable=SC2086
        [ -z "$pids" ] || kill -KILL $pids 2>/dev/null || true
    fi
    ip netns del "$ns" 2>/dev/null || true
}

umount_under() {
    local dir=$1 m
    # deepest first
    while read -r m; do
        umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
    done < <(awk -v d="$dir/" 'index($2, d) == 1 {print $2}' /proc/self/mounts | sort -r)
}

# ---------------------------------------------------------------- network
ns_add() {
    ip netns add "$1"
    ip -n "$1" link set lo up
}

make_lan() {
    delete_netns "$E2E_NS_LAN"
    ns_add "$E2E_NS_LAN"
    ip -n "$E2E_NS_LAN" link add br0 type bridge
    ip -n "$E2E_NS_LAN" addr add "$E2E_LAN_ROUTER/24" dev br0
    ip -n "$E2E_NS_LAN" link set br0 up
    ip netns exec "$E2E_NS_LAN" sysctl -qw net.ipv4.ip_forward=1
    # the router knows the tunnel network is behind the Pi: LAN hosts and the
    # outside can then aim at the tunnel address itself (they must fail)
    ip -n "$E2E_NS_LAN" route add 10.8.0.0/24 via "$E2E_PI_LAN"
}

# link_to_lan NS ADDRESS PORT: a veth from the router's bridge into NS (eth0).
# eth0 gets a fixed MAC address (made from ADDRESS), as a real network card
# has: after a reboot the router's neighbour entry for the Pi is still right
# (a new random MAC left the LAN unable to reach the Pi until it expired).
link_to_lan() {
    local ns=$1 address=$2 port=$3 mac
    # shellcheck disable=SC2046,SC2183
    mac=$(printf '02:00:%02x:%02x:%02x:%02x' $(echo "$address" | tr . ' '))
    # a namespace just deleted is freed asynchronously: its end of an old
    # link may still exist for a moment (seen after a power cut)
    ip -n "$E2E_NS_LAN" link del "$port" 2>/dev/null || true
    ip -n "$E2E_NS_LAN" link add "$port" type veth peer name eth0 address "$mac" netns "$ns"
    ip -n "$E2E_NS_LAN" link set "$port" master br0 up
    ip -n "$ns" addr add "$address/24" dev eth0
    ip -n "$ns" link set eth0 up
    ip -n "$ns" route add default via "$E2E_LAN_ROUTER"
}

make_pi_netns() {
    delete_netns "$E2E_NS_PI"
    ns_add "$E2E_NS_PI"
    link_to_lan "$E2E_NS_PI" "$E2E_PI_LAN" lan-pi
}

make_network() {
    make_lan
    make_pi_netns
    delete_netns "$E2E_NS_LAPTOP"
    ns_add "$E2E_NS_LAPTOP"
    link_to_lan "$E2E_NS_LAPTOP" "$E2E_LAPTOP_LAN" lan-laptop
    delete_netns "$E2E_NS_OUTSIDE"
    ns_add "$E2E_NS_OUTSIDE"
    ip -n "$E2E_NS_LAN" link add wan0 type veth peer name eth0 netns "$E2E_NS_OUTSIDE"
    ip -n "$E2E_NS_LAN" addr add "$E2E_WAN_ROUTER/24" dev wan0
    ip -n "$E2E_NS_LAN" link set wan0 up
    ip -n "$E2E_NS_OUTSIDE" addr add "$E2E_OUTSIDE_ADDR/24" dev eth0
    ip -n "$E2E_NS_OUTSIDE" link set eth0 up
    ip -n "$E2E_NS_OUTSIDE" route add default via "$E2E_WAN_ROUTER"
    e2e_wait_until 10 "the LAN link to the Pi's namespace" \
        ip netns exec "$E2E_NS_LAPTOP" ping -c1 -W1 "$E2E_PI_LAN"
    e2e_wait_until 10 "the route from outside" \
        ip netns exec "$E2E_NS_OUTSIDE" ping -c1 -W1 "$E2E_PI_LAN"
}

# The apt relay: a unix socket on the host forwarding to the mirror, and a
# loopback listener in the Pi's namespace forwarding to that socket. apt in
# the Pi uses it as its HTTP proxy (absolute-URI requests reach the mirror).
start_pi_relay() {
    ip netns exec "$E2E_NS_PI" socat TCP-LISTEN:3142,bind=127.0.0.1,fork,reuseaddr \
        "UNIX-CONNECT:$STATE_DIR/apt-relay.sock" </dev/null >>"$STATE_DIR/relay.log" 2>&1 &
    state_set PI_RELAY_PID $!
}
start_relays() {
    local root=$1 mirror_uri hostport uri
    mirror_uri=$(e2e_mirror)
    hostport=$(e2e_uri_hostport "$mirror_uri")
    while read -r uri; do
        case "$uri" in
            http://"${hostport%:80}"/* | http://"$hostport"/*) ;;
            *) e2e_die "apt source $uri in the root is not on the relayed mirror $hostport" ;;
        esac
    done < <(e2e_root_source_uris "$root")
    socat "UNIX-LISTEN:$STATE_DIR/apt-relay.sock,fork,mode=0600" \
        "TCP:$hostport,connect-timeout=10" </dev/null >>"$STATE_DIR/relay.log" 2>&1 &
    state_set HOST_RELAY_PID $!
    state_set MIRROR "$hostport"
    e2e_wait_until 5 "the relay socket" test -S "$STATE_DIR/apt-relay.sock"
    start_pi_relay
}

# ---------------------------------------------------------------- the Pi
# mount_root N: boot N's root. Boot 1: an overlay on the cached root; boot
# N>1: a fresh overlay whose lower layers are the earlier boots' changes, so
# the provisioned root is booted as it was left, without altering it.
mount_root() {
    local n=$1 root=$STATE_DIR/root$1 lower=$E2E_ROOTFS i
    for ((i = 1; i < n; i++)); do lower=$STATE_DIR/upper$i:$lower; done
    mkdir -p "$root" "$STATE_DIR/upper$n" "$STATE_DIR/work$n"
    if mount -t overlay overlay \
        -o "lowerdir=$lower,upperdir=$STATE_DIR/upper$n,workdir=$STATE_DIR/work$n" "$root" 2>/dev/null; then
        state_set ROOT_MODE overlay
    elif [ "$n" = 1 ]; then
        e2e_say "no overlayfs here: copying the root"
        cp -a "$E2E_ROOTFS/." "$root/"
        state_set ROOT_MODE copy
    else
        e2e_die "cannot mount the overlay for boot $n"
    fi
    state_set ROOT "$root"
}

# A root we may write into: one of this run's own mounts, never the host's /.
check_root() {
    local root=$1
    case "$root" in
        "$STATE_DIR"/root[0-9]*) ;;
        *) e2e_die "refusing to touch '$root': not a root of this run ($STATE_DIR/rootN)" ;;
    esac
    [ -d "$root/etc" ] && [ "$(stat -c %d:%i "$root")" != "$(stat -c %d:%i /)" ] ||
        e2e_die "refusing to touch '$root': not a mounted root file system"
}

# Testbed-only files (documented in docs/e2e.md): apt through the relay, pip
# from the cached wheels (no index), the harness's SSH key for user pi.
seed_root() {
    local root=$1 uid gid
    check_root "$root"
    printf 'Acquire::http::Proxy "http://127.0.0.1:3142/";\nAcquire::Retries "3";\n' \
        >"$root/etc/apt/apt.conf.d/00mc-e2e-relay"
    printf '[global]\nno-index = true\nfind-links = /var/cache/mc-e2e-wheels\n' >"$root/etc/pip.conf"
    # A container may not set the host's clock (no CAP_SYS_TIME) and Debian's
    # timesyncd skips containers: let it run idle as on a Pi, so the base
    # role's "started" holds and a second run changes nothing.
    mkdir -p "$root/etc/systemd/system/systemd-timesyncd.service.d"
    printf '[Unit]\nConditionVirtualization=\n[Service]\nAmbientCapabilities=\nCapabilityBoundingSet=\n' \
        >"$root/etc/systemd/system/systemd-timesyncd.service.d/mc-e2e-container.conf"
    uid=$(awk -F: '$1 == "pi" {print $3}' "$root/etc/passwd")
    gid=$(awk -F: '$1 == "pi" {print $4}' "$root/etc/passwd")
    install -d -m 0700 -o "$uid" -g "$gid" "$root/home/pi/.ssh"
    install -m 0600 -o "$uid" -g "$gid" "$STATE_DIR/ssh/id_ed25519.pub" "$root/home/pi/.ssh/authorized_keys"
}

boot_pi() {
    local n=$1 root pid child i
    root=$(state_get ROOT)
    check_root "$root"
    mkdir -p "$E2E_CACHE/apt-archives-$E2E_SUITE/partial"
    rm -rf "/run/systemd/nspawn/propagate/$E2E_MACHINE"
    SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1 systemd-nspawn -D "$root" --boot \
        --register=no --keep-unit --machine="$E2E_MACHINE" --console=read-only \
        --hostname=mc-pi --resolv-conf=off --timezone=off \
        --network-namespace-path="/run/netns/$E2E_NS_PI" \
        --capability=CAP_NET_ADMIN \
        --system-call-filter="bpf landlock_create_ruleset landlock_add_rule landlock_restrict_self" \
        --bind=/dev/net/tun \
        --bind-ro="$(state_get WHEELS):/var/cache/mc-e2e-wheels" \
        --bind="$E2E_CACHE/apt-archives-$E2E_SUITE:/var/cache/apt/archives" \
        </dev/null >"$STATE_DIR/console$n.log" 2>&1 &
    pid=$!
    state_set NSPAWN_PID "$pid"
    child=""
    for i in $(seq 1 50); do
        child=$( (ps -o pid= --ppid "$pid" 2>/dev/null || true) | head -n1 | tr -d ' ')
        [ -n "$child" ] && [ "$(cat "/proc/$child/comm" 2>/dev/null)" = systemd ] && break
        kill -0 "$pid" 2>/dev/null || { tail -n 20 "$STATE_DIR/console$n.log" >&2; e2e_die "systemd-nspawn exited"; }
        child=""
        sleep 0.2
    done
    [ -n "$child" ] || e2e_die "no systemd inside the container after 10 s"
    state_set PI_PID "$child"
    state_set BOOT "$n"
    local status=""
    for i in $(seq 1 300); do
        status=$(timeout 5 nsenter -t "$child" -a systemctl is-system-running 2>/dev/null || true)
        case "$status" in running | degraded) break ;; esac
        sleep 0.2
    done
    case "$status" in
        running) ;;
        degraded)
            e2e_say "the Pi booted degraded; failed units:"
            timeout 5 nsenter -t "$child" -a systemctl --failed --no-legend >&2 || true
            ;;
        *) tail -n 30 "$STATE_DIR/console$n.log" >&2; e2e_die "the Pi did not finish booting in 60 s (state: ${status:-none})" ;;
    esac
}

# The container's /proc/sys is read-only (systemd-nspawn), so systemd-sysctl
# on the Pi cannot apply the base role's network settings; a real Pi applies
# them at every boot. They are per network namespace: set the net.* keys of
# the Pi's own /etc/sysctl.d in the Pi's namespace, as its boot would. Only
# net.*: kernel.*, fs.* and vm.* are the host's (tests/e2e checks they stay
# untouched).
apply_pi_net_sysctls() {
    local root f line key value n=0
    root=$(state_get ROOT)
    for f in "$root"/usr/lib/sysctl.d/*.conf "$root"/etc/sysctl.d/*.conf; do
        [ -f "$f" ] || continue
        while read -r line; do
            line=${line#-}
            key=$(sed -E 's/[[:space:]]*=.*//' <<<"$line")
            value=$(sed -E 's/^[^=]*=[[:space:]]*//' <<<"$line")
            [[ "$key" =~ ^net\.[A-Za-z0-9_.-]+$ ]] || continue
            if ip netns exec "$E2E_NS_PI" sysctl -q -w "$key=$value" >/dev/null 2>&1; then
                n=$((n + 1))
            fi
        done < <(grep -E '^-?net\.' "$f" || true)
    done
    state_set PI_NET_SYSCTLS "$n"
}

stop_pi() {
    local pid
    pid=$(state_get NSPAWN_PID)
    if [ -n "$pid" ]; then
        kill_recorded "$pid" systemd-nspawn
        # kill_recorded waits 5 s; a container that needs longer gets KILLed
    fi
    rm -rf "/run/systemd/nspawn/propagate/$E2E_MACHINE"
}

# ---------------------------------------------------------------- playbook
# run_playbook N INVENTORY [NETNS]: records RUNn_{SECONDS,CHANGED,FAILED,UNREACHABLE}
run_playbook() {
    local n=$1 inventory=$2 ns=${3:-} log=$STATE_DIR/run$1.log start end recap
    local cmd=(env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME="$STATE_DIR/home" LANG=C.UTF-8
        ANSIBLE_CONFIG="$STATE_DIR/src/provisioning/ansible.cfg" ANSIBLE_NOCOLOR=1
        ANSIBLE_SSH_CONTROL_PATH_DIR="$STATE_DIR/cp" ANSIBLE_CALLBACKS_ENABLED=profile_tasks
        timeout 1800 ansible-playbook -i "$inventory" -e "@$STATE_DIR/vars.yml"
        "$STATE_DIR/src/provisioning/site.yml")
    if [ -n "$ns" ]; then cmd=(ip netns exec "$ns" "${cmd[@]}"); fi
    start=$(e2e_now_ns)
    if ! "${cmd[@]}" </dev/null >"$log" 2>&1; then
        grep -E -B3 -A15 '^(fatal|failed):|UNREACHABLE' "$log" | tail -n 60 >&2 || tail -n 60 "$log" >&2
        e2e_die "playbook run $n failed (log: $log)"
    fi
    end=$(e2e_now_ns)
    recap=$(grep -E '^pi +:' "$log" | tail -n 1 || true)
    state_set "RUN${n}_SECONDS" "$(e2e_secs "$start" "$end")"
    state_set "RUN${n}_CHANGED" "$(sed -E 's/.*changed=([0-9]+).*/\1/' <<<"$recap")"
    state_set "RUN${n}_FAILED" "$(sed -E 's/.*failed=([0-9]+).*/\1/' <<<"$recap")"
    state_set "RUN${n}_UNREACHABLE" "$(sed -E 's/.*unreachable=([0-9]+).*/\1/' <<<"$recap")"
    e2e_say "run $n: $(e2e_secs "$start" "$end") s, $recap"
}

write_playbook_inputs() {
    local pid=$1
    mkdir -p "$STATE_DIR/src" "$STATE_DIR/artifacts" "$STATE_DIR/home" "$STATE_DIR/cp" "$STATE_DIR/ssh"
    # One snapshot for both runs: others may be editing the working tree, and
    # an edit would rightly make the second run change something.
    (cd "${MC_E2E_SOURCE:-$E2E_REPO}" && tar --exclude=__pycache__ --exclude='*.pyc' -cf - pyproject.toml \
        requirements.lock app provisioning systemd nginx wireguard scripts/mc-vpn) |
        tar -xf - -C "$STATE_DIR/src"
    rm -f "$STATE_DIR/src/provisioning/inventory.ini" "$STATE_DIR/src/provisioning/group_vars/all.yml"
    local build_python=$E2E_REPO/.venv/bin/python
    [ -x "$build_python" ] || build_python=python3
    cat >"$STATE_DIR/inventory-nsenter.ini" <<EOF
[mission_control]
pi ansible_connection=community.docker.nsenter ansible_nsenter_pid=$pid ansible_python_interpreter=/usr/bin/python3
EOF
    cat >"$STATE_DIR/inventory-ssh.ini" <<EOF
[mission_control]
pi ansible_host=$E2E_TUNNEL_ADDR ansible_user=pi ansible_python_interpreter=/usr/bin/python3 ansible_ssh_private_key_file=$STATE_DIR/ssh/id_ed25519 ansible_ssh_common_args='-o UserKnownHostsFile=$STATE_DIR/ssh/known_hosts -o StrictHostKeyChecking=accept-new -o ConnectTimeout=5 -o BatchMode=yes'
EOF
    # The settings a user writes into group_vars/all.yml, for this network.
    cat >"$STATE_DIR/vars.yml" <<EOF
---
firewall_lan_subnets: [$E2E_LAN_SUBNET]
firewall_ssh_from_lan: false
wireguard_endpoint_host: $E2E_PI_LAN
wireguard_port: $E2E_WG_PORT
wireguard_peers:
  - name: laptop
  - name: travel
wireguard_userspace: true
base_upgrade_reboot: false
wireguard_fetch_client_configs: true
wireguard_fetch_dir: $STATE_DIR/artifacts
nginx_fetch_dir: $STATE_DIR/artifacts
app_source_dir: $STATE_DIR/src
app_build_python: $build_python
EOF
}

laptop_tunnel_up() {
    local conf=$STATE_DIR/wg/$LAPTOP_IF.conf
    mkdir -p "$STATE_DIR/wg"
    chmod 0700 "$STATE_DIR/wg"
    install -m 0600 "$STATE_DIR/artifacts/pi/laptop.conf" "$conf"
    ip netns exec "$E2E_NS_LAPTOP" env WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD=1 \
        timeout 30 wg-quick up "$conf" </dev/null >>"$STATE_DIR/wg.log" 2>&1 ||
        { tail -n 20 "$STATE_DIR/wg.log" >&2; e2e_die "wg-quick up on the laptop failed"; }
    state_set LAPTOP_IF "$LAPTOP_IF"
    e2e_wait_until 30 "a handshake and a ping through the tunnel" \
        ip netns exec "$E2E_NS_LAPTOP" ping -c1 -W1 "$E2E_TUNNEL_ADDR"
}

https_ok() {
    ip netns exec "$E2E_NS_LAPTOP" curl -fsS -m 2 --cacert "$STATE_DIR/artifacts/pi-ca.crt" \
        -o /dev/null "https://$E2E_TUNNEL_ADDR/healthz"
}

# Host kernel settings the base role sets inside the Pi: a container must not
# change them on the host (checked by tests/e2e).
host_sysctls() {
    local key out=""
    for key in kernel.kptr_restrict kernel.dmesg_restrict kernel.sysrq fs.protected_regular \
        fs.protected_fifos vm.swappiness kernel.yama.ptrace_scope fs.suid_dumpable; do
        out="$out$key:$(sysctl -n "$key" 2>/dev/null || echo -),"
    done
    printf '%s' "${out%,}"
}

# ---------------------------------------------------------------- commands
claim_active() {
    mkdir -p "$E2E_CACHE"
    if [ -r "$ACTIVE" ]; then
        local dir owner
        read -r dir owner <"$ACTIVE" || true
        if [ -n "${owner:-}" ] && kill -0 "$owner" 2>/dev/null && [ -d "$dir" ]; then
            e2e_die "another end-to-end run is active ($dir, owner pid $owner); it ends with: $0 down --state-dir $dir"
        fi
        if [ -n "${dir:-}" ] && [ -d "$dir" ]; then
            e2e_say "cleaning up a stale run in $dir"
            (STATE_DIR=$dir; teardown || true)
        fi
    fi
    local ns
    for ns in $(ip netns list | awk '{print $1}' | grep "^$E2E_PREFIX-" || true); do
        e2e_say "removing the stale namespace $ns"
        delete_netns "$ns"
    done
    printf '%s %s\n' "$STATE_DIR" "${OWNER_PID:-$$}" >"$ACTIVE"
}

cmd_up() {
    preflight
    [ -n "$STATE_DIR" ] || STATE_DIR=$(mktemp -d /var/tmp/mc-e2e.XXXXXX)
    mkdir -p "$STATE_DIR"
    STATE_DIR=$(cd "$STATE_DIR" && pwd)
    # teardown removes it: it must be ours alone
    [ "$STATE_DIR" != / ] && [ -z "$(ls -A "$STATE_DIR")" ] ||
        e2e_die "--state-dir $STATE_DIR must be a new or empty directory"
    chmod 0700 "$STATE_DIR"
    claim_active
    : >"$STATE_DIR/state.env"
    # stage times outlive the run (CI prints them; docs/e2e.md quotes them)
    E2E_TIMINGS=${E2E_TIMINGS:-$E2E_CACHE/e2e-last-timings}
    : >"$E2E_TIMINGS"
    state_set STATE_DIR "$STATE_DIR"
    state_set PREFIX "$E2E_PREFIX"
    for var in NS_PI NS_LAPTOP NS_LAN NS_OUTSIDE MACHINE LAN_SUBNET LAN_ROUTER PI_LAN LAPTOP_LAN \
        WAN_ROUTER OUTSIDE_ADDR TUNNEL_ADDR WG_PORT IFTAG; do
        local name="E2E_$var"
        state_set "$var" "${!name}"
    done
    state_set ROOTFS "$E2E_ROOTFS"
    state_set HOST_SYSCTLS_BEFORE "$(host_sysctls)"
    UP_OK=no
    # on any failure: leave nothing behind (unless --keep)
    trap 'rc=$?; if [ "$UP_OK" != yes ]; then e2e_stage ""; if [ "$KEEP" = yes ]; then e2e_say "kept for inspection: $0 down --state-dir $STATE_DIR"; else teardown; fi; fi; exit $rc' EXIT
    trap 'exit 130' INT TERM
    local t0
    t0=$(e2e_now_ns)

    e2e_stage host-packages
    "$E2E_REPO/scripts/e2e/install-deps.sh"
    e2e_stage rootfs
    e2e_rootfs_ensure "$REBUILD"
    e2e_stage wheels
    local pyver
    pyver=$(e2e_root_python "$E2E_ROOTFS")
    e2e_wheelhouse "$E2E_REPO/requirements.lock" "$pyver" "$(uname -m)" "$(e2e_root_glibc "$E2E_ROOTFS")"
    state_set SUITE "$E2E_SUITE"
    state_set PI_PYTHON "$pyver"
    state_set WHEELS "$E2E_WHEELS"
    e2e_stage network
    make_network
    ssh-keygen -q -t ed25519 -N '' -C mc-e2e -f "$STATE_DIR/ssh-key" >/dev/null
    mkdir -p "$STATE_DIR/ssh"
    mv "$STATE_DIR/ssh-key" "$STATE_DIR/ssh/id_ed25519"
    mv "$STATE_DIR/ssh-key.pub" "$STATE_DIR/ssh/id_ed25519.pub"
    e2e_stage boot
    mount_root 1
    seed_root "$(state_get ROOT)"
    start_relays "$(state_get ROOT)"
    boot_pi 1
    e2e_stage provision-nsenter
    write_playbook_inputs "$(state_get PI_PID)"
    run_playbook 1 "$STATE_DIR/inventory-nsenter.ini"
    state_set RUN1_TRANSPORT nsenter
    # what the role's "Apply kernel settings" handler does on a real Pi
    apply_pi_net_sysctls
    e2e_stage tunnel
    laptop_tunnel_up
    e2e_wait_until 20 "SSH to the Pi through the tunnel" \
        ip netns exec "$E2E_NS_LAPTOP" ssh -i "$STATE_DIR/ssh/id_ed25519" \
        -o UserKnownHostsFile="$STATE_DIR/ssh/known_hosts" -o StrictHostKeyChecking=accept-new \
        -o ConnectTimeout=2 -o BatchMode=yes "pi@$E2E_TUNNEL_ADDR" true
    e2e_stage provision-ssh
    run_playbook 2 "$STATE_DIR/inventory-ssh.ini" "$E2E_NS_LAPTOP"
    state_set RUN2_TRANSPORT "ssh from $E2E_NS_LAPTOP through the tunnel"
    if [ "$(state_get RUN2_CHANGED)" != 0 ]; then
        e2e_say "WARNING: the second run changed $(state_get RUN2_CHANGED) tasks:"
        grep -E '^(TASK|changed)' "$STATE_DIR/run2.log" | grep -B1 '^changed' >&2 || true
    fi
    e2e_stage ready
    e2e_wait_until 60 "https://$E2E_TUNNEL_ADDR/healthz through the tunnel" https_ok
    state_set CA_CERT "$STATE_DIR/artifacts/pi-ca.crt"
    state_set ARTIFACTS "$STATE_DIR/artifacts"
    state_set HOST_SYSCTLS_AFTER "$(host_sysctls)"
    e2e_stage ""
    state_set UP_SECONDS "$(e2e_secs "$t0" "$(e2e_now_ns)")"
    e2e_say "up in $(state_get UP_SECONDS) s: $STATE_DIR/state.env"
    UP_OK=yes
    trap - EXIT INT TERM
}

teardown() {
    [ -n "$STATE_DIR" ] && [ -d "$STATE_DIR" ] || return 0
    STATE_DIR=$(cd "$STATE_DIR" && pwd)
    # only a directory that 'up' made and described is ever removed
    if [ "$STATE_DIR" = / ] || ! grep -qxF "STATE_DIR=$STATE_DIR" "$STATE_DIR/state.env" 2>/dev/null; then
        e2e_say "refusing to tear down $STATE_DIR: no state.env of scripts/e2e-pi.sh up in it"
        return 1
    fi
    state_load
    stop_pi
    local ns
    for ns in "$E2E_NS_LAPTOP" "$E2E_NS_OUTSIDE" "$E2E_NS_PI" "$E2E_NS_LAN"; do
        delete_netns "$ns"
    done
    kill_recorded "$(state_get PI_RELAY_PID)" "$STATE_DIR/apt-relay.sock"
    kill_recorded "$(state_get HOST_RELAY_PID)" "$STATE_DIR/apt-relay.sock"
    rm -f /var/run/wireguard/"$E2E_IFTAG"-*.sock
    umount_under "$STATE_DIR"
    local left=""
    if awk -v d="$STATE_DIR/" 'index($2, d) == 1' /proc/self/mounts | grep -q .; then
        left="mounts under $STATE_DIR"
    fi
    if ip netns list | awk '{print $1}' | grep -q "^$E2E_PREFIX-"; then left="$left namespaces"; fi
    local pid
    for pid in "$(state_get NSPAWN_PID)" "$(state_get PI_PID)" "$(state_get HOST_RELAY_PID)" "$(state_get PI_RELAY_PID)"; do
        if [ -n "$pid" ] && [ -d "/proc/$pid" ] && grep -qF "$STATE_DIR" "/proc/$pid/cmdline" 2>/dev/null; then
            left="$left process $pid"
        fi
    done
    if [ -r "$ACTIVE" ] && [ "$(cut -d' ' -f1 "$ACTIVE")" = "$STATE_DIR" ]; then rm -f "$ACTIVE"; fi
    if [ -n "$left" ]; then
        e2e_say "teardown left: $left"
        return 1
    fi
    # the playbook and console logs outlive the run
    mkdir -p "$E2E_CACHE/e2e-last-logs"
    rm -f "$E2E_CACHE"/e2e-last-logs/*.log
    cp "$STATE_DIR"/run*.log "$STATE_DIR"/console*.log "$E2E_CACHE/e2e-last-logs/" 2>/dev/null || true
    if [ "$KEEP" = yes ]; then
        e2e_say "teardown: clean; files kept in $STATE_DIR"
    else
        rm -rf "$STATE_DIR"
        e2e_say "teardown: clean (no namespace, mount or process left)"
    fi
}

cmd_down() {
    [ -n "$STATE_DIR" ] || e2e_die "down needs --state-dir"
    [ "$(id -u)" = 0 ] || e2e_die "run as root"
    local t0
    t0=$(e2e_now_ns)
    teardown
    e2e_say "[teardown] $(e2e_secs "$t0" "$(e2e_now_ns)") s"
}

cmd_reboot() {
    [ -n "$STATE_DIR" ] || e2e_die "reboot needs --state-dir"
    state_load
    local n t0
    n=$(($(state_get BOOT) + 1))
    t0=$(e2e_now_ns)
    if [ "$POWER_CUT" = yes ]; then
        # the power goes: the kernel ends every process of the container's PID
        # namespace with its init, no unit stops, nothing is flushed by the Pi
        local init nspawn i
        init=$(state_get PI_PID)
        nspawn=$(state_get NSPAWN_PID)
        kill -KILL "$init" 2>/dev/null || true
        for i in $(seq 1 50); do
            kill -0 "$nspawn" 2>/dev/null || break
            sleep 0.2
        done
        e2e_say "power cut (SIGKILL to the Pi's PID 1)"
    fi
    stop_pi
    # power off: the network stack goes too (firewall, addresses, sysctls)
    kill_recorded "$(state_get PI_RELAY_PID)" "$STATE_DIR/apt-relay.sock"
    delete_netns "$E2E_NS_PI"
    if [ "$(state_get ROOT_MODE)" = overlay ]; then
        umount "$(state_get ROOT)" || umount -l "$(state_get ROOT)"
        mount_root "$n"
    fi
    make_pi_netns
    # a real boot applies /etc/sysctl.d before the network comes up
    apply_pi_net_sysctls
    start_pi_relay
    boot_pi "$n"
    state_set "REBOOT_SECONDS" "$(e2e_secs "$t0" "$(e2e_now_ns)")"
    e2e_say "rebooted (boot $n) in $(state_get REBOOT_SECONDS) s"
}

cmd_run() {
    STATE_DIR=$(mktemp -d /var/tmp/mc-e2e.XXXXXX)
    OWNER_PID=$$
    local rc=0 t0 recap
    t0=$(e2e_now_ns)
    cmd_up
    trap 'teardown' EXIT
    trap 'exit 130' INT TERM
    recap="run 1 ($(state_get RUN1_TRANSPORT)): $(state_get RUN1_SECONDS) s, changed=$(state_get RUN1_CHANGED); run 2 ($(state_get RUN2_TRANSPORT)): $(state_get RUN2_SECONDS) s, changed=$(state_get RUN2_CHANGED)"
    e2e_stage checks
    (cd "$E2E_REPO" && MC_E2E=1 MC_E2E_STATE="$STATE_DIR/state.env" timeout 1800 \
        "$E2E_REPO/.venv/bin/pytest" tests/e2e -p no:cacheprovider --durations=0 \
        "${PYTEST_ARGS[@]}") || rc=$?
    e2e_stage teardown
    trap - EXIT
    teardown || rc=1
    e2e_stage ""
    e2e_say "$recap"
    e2e_say "stage wall times (s), also in $E2E_TIMINGS:"
    sed 's/^/   /' "$E2E_TIMINGS" >&2
    e2e_say "total $(e2e_secs "$t0" "$(e2e_now_ns)") s, checks exit code $rc"
    exit "$rc"
}

case "$CMD" in
    up) cmd_up ;;
    down) cmd_down ;;
    reboot) cmd_reboot ;;
    run) cmd_run ;;
esac
