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
#        power-cycle the first Pi (pi): stop it, fresh network namespace, boot an
#        overlay copy of the provisioned root; --power-cut: no shutdown at
#        all (SIGKILL to the container's PID 1 ends every process in it at once)
#   sudo scripts/e2e-pi.sh down --state-dir DIR [--keep]
#        stop everything, remove namespaces, mounts, processes and DIR
#
# Network (namespaces "$MC_E2E_PREFIX-*", default mc-e2e-*):
#   lan      192.168.50.1  the home router (a bridge) and a LAN host, no VPN peer
#   pi       192.168.50.10 the appliance (the container's network namespace),
#            MC_E2E_SUITE (trixie), tunnel 10.8.0.0/24, WireGuard UDP 51820
#   pi2      192.168.50.11 the second Pi of the same inventory, MC_E2E_SUITE2
#            (bookworm), tunnel 10.9.0.0/24, UDP 51830 (MC_E2E_PI2=0: none)
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

ACTIVE=$E2E_CACHE/e2e-active

# ---------------------------------------------------------------- which Pi
# Two stand-in Pis, hosts "pi" (MC_E2E_SUITE) and "pi2" (MC_E2E_SUITE2) of
# one inventory. use_pi N points the per-Pi settings at Pi N; its state keys
# are prefixed (PK: "" for pi, "PI2_" for pi2; tests/e2e reads them so).
E2E_SUITE1=$E2E_SUITE
PIS=(1)
if [ "$E2E_PI2" = 1 ]; then PIS=(1 2); fi
use_pi() {
    case "$1" in
        1)
            PK="" PI_HOST=pi PI_DIR=$STATE_DIR LOGP="" LAN_PORT=lan-pi
            E2E_SUITE=$E2E_SUITE1
            E2E_NS_PI=$E2E_PREFIX-pi E2E_MACHINE=$E2E_PREFIX-pi E2E_PI_LAN=192.168.50.10
            E2E_TUNNEL_NET=10.8.0.0/24 E2E_TUNNEL_ADDR=10.8.0.1 E2E_WG_PORT=51820
            LAPTOP_IF=$E2E_IFTAG-lap
            ;;
        2)
            PK=PI2_ PI_HOST=pi2 PI_DIR=$STATE_DIR/pi2 LOGP=pi2- LAN_PORT=lan-pi2
            E2E_SUITE=$E2E_SUITE2
            E2E_NS_PI=$E2E_NS_PI2 E2E_MACHINE=$E2E_MACHINE2 E2E_PI_LAN=$E2E_PI2_LAN
            E2E_TUNNEL_NET=$E2E_TUNNEL2_NET E2E_TUNNEL_ADDR=$E2E_TUNNEL2_ADDR E2E_WG_PORT=$E2E_WG2_PORT
            LAPTOP_IF=$E2E_IFTAG-lap2
            ;;
        *) e2e_die "no Pi $1" ;;
    esac
    # shellcheck disable=SC2034 # read by e2e_rootfs_ensure (lib.sh)
    E2E_PRISTINE=$E2E_CACHE/rootfs-$E2E_SUITE-minbase
    E2E_ROOTFS=$E2E_CACHE/rootfs-$E2E_SUITE-nspawn
}
# per-Pi state: pstate_set KEY VALUE writes ${PK}KEY
pstate_set() { state_set "$PK$1" "$2"; }
pstate_get() { state_get "$PK$1"; }

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
    local n
    for n in "${PIS[@]}"; do
        use_pi "$n"
        ip -n "$E2E_NS_LAN" route add "$E2E_TUNNEL_NET" via "$E2E_PI_LAN"
    done
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
    link_to_lan "$E2E_NS_PI" "$E2E_PI_LAN" "$LAN_PORT"
}

make_network() {
    make_lan
    local n
    for n in "${PIS[@]}"; do
        use_pi "$n"
        make_pi_netns
    done
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
    for n in "${PIS[@]}"; do
        use_pi "$n"
        e2e_wait_until 10 "the LAN link to $PI_HOST's namespace" \
            ip netns exec "$E2E_NS_LAPTOP" ping -c1 -W1 "$E2E_PI_LAN"
        e2e_wait_until 10 "the route from outside to $PI_HOST" \
            ip netns exec "$E2E_NS_OUTSIDE" ping -c1 -W1 "$E2E_PI_LAN"
    done
}

# The apt relay: a unix socket on the host forwarding to the mirror, and a
# loopback listener in the Pi's namespace forwarding to that socket. apt in
# the Pi uses it as its HTTP proxy (absolute-URI requests reach the mirror).
start_pi_relay() {
    ip netns exec "$E2E_NS_PI" socat TCP-LISTEN:3142,bind=127.0.0.1,fork,reuseaddr \
        "UNIX-CONNECT:$STATE_DIR/apt-relay.sock" </dev/null >>"$STATE_DIR/relay.log" 2>&1 &
    pstate_set PI_RELAY_PID $!
}
# start_relays ROOT...: one host relay; each root's sources must be on its mirror
start_relays() {
    local root mirror_uri hostport uri
    mirror_uri=$(e2e_mirror)
    hostport=$(e2e_uri_hostport "$mirror_uri")
    for root in "$@"; do
        while read -r uri; do
            case "$uri" in
                http://"${hostport%:80}"/* | http://"$hostport"/*) ;;
                *) e2e_die "apt source $uri in $root is not on the relayed mirror $hostport" ;;
            esac
        done < <(e2e_root_source_uris "$root")
    done
    socat "UNIX-LISTEN:$STATE_DIR/apt-relay.sock,fork,mode=0600" \
        "TCP:$hostport,connect-timeout=10" </dev/null >>"$STATE_DIR/relay.log" 2>&1 &
    state_set HOST_RELAY_PID $!
    state_set MIRROR "$hostport"
    e2e_wait_until 5 "the relay socket" test -S "$STATE_DIR/apt-relay.sock"
}

# ---------------------------------------------------------------- the Pi
# mount_root N: boot N's root. Boot 1: an overlay on the cached root; boot
# N>1: a fresh overlay whose lower layers are the earlier boots' changes, so
# the provisioned root is booted as it was left, without altering it.
mount_root() {
    local n=$1 root=$PI_DIR/root$1 lower=$E2E_ROOTFS i
    for ((i = 1; i < n; i++)); do lower=$PI_DIR/upper$i:$lower; done
    mkdir -p "$root" "$PI_DIR/upper$n" "$PI_DIR/work$n"
    if mount -t overlay overlay \
        -o "lowerdir=$lower,upperdir=$PI_DIR/upper$n,workdir=$PI_DIR/work$n" "$root" 2>/dev/null; then
        pstate_set ROOT_MODE overlay
    elif [ "$n" = 1 ]; then
        e2e_say "no overlayfs here: copying the root"
        cp -a "$E2E_ROOTFS/." "$root/"
        pstate_set ROOT_MODE copy
    else
        e2e_die "cannot mount the overlay for boot $n"
    fi
    pstate_set ROOT "$root"
}

# A root we may write into: one of this run's own mounts, never the host's /.
check_root() {
    local root=$1
    case "$root" in
        "$STATE_DIR"/root[0-9]* | "$STATE_DIR"/pi2/root[0-9]*) ;;
        *) e2e_die "refusing to touch '$root': not a root of this run ($STATE_DIR/[pi2/]rootN)" ;;
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
    root=$(pstate_get ROOT)
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
        --bind-ro="$(pstate_get WHEELS):/var/cache/mc-e2e-wheels" \
        --bind="$E2E_CACHE/apt-archives-$E2E_SUITE:/var/cache/apt/archives" \
        </dev/null >"$STATE_DIR/${LOGP}console$n.log" 2>&1 &
    pid=$!
    pstate_set NSPAWN_PID "$pid"
    child=""
    for i in $(seq 1 50); do
        child=$( (ps -o pid= --ppid "$pid" 2>/dev/null || true) | head -n1 | tr -d ' ')
        [ -n "$child" ] && [ "$(cat "/proc/$child/comm" 2>/dev/null)" = systemd ] && break
        kill -0 "$pid" 2>/dev/null || { tail -n 20 "$STATE_DIR/${LOGP}console$n.log" >&2; e2e_die "systemd-nspawn of $PI_HOST exited"; }
        child=""
        sleep 0.2
    done
    [ -n "$child" ] || e2e_die "no systemd inside $PI_HOST's container after 10 s"
    pstate_set PI_PID "$child"
    pstate_set BOOT "$n"
    local status=""
    for i in $(seq 1 300); do
        status=$(timeout 5 nsenter -t "$child" -a systemctl is-system-running 2>/dev/null || true)
        case "$status" in running | degraded) break ;; esac
        sleep 0.2
    done
    case "$status" in
        running) ;;
        degraded)
            e2e_say "$PI_HOST booted degraded; failed units:"
            timeout 5 nsenter -t "$child" -a systemctl --failed --no-legend >&2 || true
            ;;
        *) tail -n 30 "$STATE_DIR/${LOGP}console$n.log" >&2; e2e_die "$PI_HOST did not finish booting in 60 s (state: ${status:-none})" ;;
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
    root=$(pstate_get ROOT)
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
    pstate_set PI_NET_SYSCTLS "$n"
}

stop_pi() {
    local pid
    pid=$(pstate_get NSPAWN_PID)
    if [ -n "$pid" ]; then
        kill_recorded "$pid" systemd-nspawn
        # kill_recorded waits 5 s; a container that needs longer gets KILLed
    fi
    rm -rf "/run/systemd/nspawn/propagate/$E2E_MACHINE"
}

# ---------------------------------------------------------------- playbook
# pis_diagnostics: what each running Pi says about itself after a failed run
# (failed units, their status, the journal's warnings), bounded, to stderr:
# a CI log keeps this output and not the Pi.
pis_diagnostics() {
    local i pid
    for i in "${PIS[@]}"; do
        use_pi "$i"
        pid=$(pstate_get PI_PID)
        [ -n "$pid" ] && [ -d "/proc/$pid" ] || continue
        e2e_say "diagnostics of $PI_HOST:"
        timeout 10 nsenter -t "$pid" -a sh -c \
            'systemctl --failed --no-legend --no-pager; for u in $(systemctl --failed --no-legend --plain | cut -d" " -f1); do systemctl status --no-pager -n 15 "$u"; done; journalctl -b -p warning --no-pager -n 40' \
            >&2 2>&1 || true
    done
    dmesg 2>/dev/null | tail -n 15 >&2 || true
}

# run_playbook N INVENTORY [NETNS]: one run over every Pi of the inventory
# (in parallel: --forks); records RUNn_SECONDS and, per Pi,
# [PI2_]RUNn_{CHANGED,FAILED,UNREACHABLE} from its line of the recap
run_playbook() {
    local n=$1 inventory=$2 ns=${3:-} log=$STATE_DIR/run$1.log start end recap all="" i
    local cmd=(env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME="$STATE_DIR/home" LANG=C.UTF-8
        ANSIBLE_CONFIG="$STATE_DIR/src/provisioning/ansible.cfg" ANSIBLE_NOCOLOR=1
        ANSIBLE_SSH_CONTROL_PATH_DIR="$STATE_DIR/cp" ANSIBLE_CALLBACKS_ENABLED=profile_tasks
        timeout 1800 ansible-playbook --forks 4 -i "$inventory" -e "@$STATE_DIR/vars.yml"
        "$STATE_DIR/src/provisioning/site.yml")
    if [ -n "$ns" ]; then cmd=(ip netns exec "$ns" "${cmd[@]}"); fi
    start=$(e2e_now_ns)
    if ! "${cmd[@]}" </dev/null >"$log" 2>&1; then
        grep -E -B3 -A15 '^(fatal|failed):|UNREACHABLE' "$log" | tail -n 60 >&2 || tail -n 60 "$log" >&2
        pis_diagnostics
        e2e_die "playbook run $n failed (log: $log)"
    fi
    end=$(e2e_now_ns)
    state_set "RUN${n}_SECONDS" "$(e2e_secs "$start" "$end")"
    for i in "${PIS[@]}"; do
        use_pi "$i"
        recap=$(grep -E "^$PI_HOST +:" "$log" | tail -n 1 || true)
        [ -n "$recap" ] || e2e_die "run $n: no recap line for $PI_HOST (log: $log)"
        pstate_set "RUN${n}_CHANGED" "$(sed -E 's/.*changed=([0-9]+).*/\1/' <<<"$recap")"
        pstate_set "RUN${n}_FAILED" "$(sed -E 's/.*failed=([0-9]+).*/\1/' <<<"$recap")"
        pstate_set "RUN${n}_UNREACHABLE" "$(sed -E 's/.*unreachable=([0-9]+).*/\1/' <<<"$recap")"
        all="$all; $recap"
    done
    e2e_say "run $n: $(e2e_secs "$start" "$end") s${all}"
}

# The inventory a user with several Pis writes: one line per Pi with its own
# variables (address, tunnel network, WireGuard port), the rest shared.
# inventory_line TRANSPORT: this Pi's line (nsenter: run 1; ssh: run 2 and
# the checks' update.yml runs, through this Pi's tunnel from the laptop)
inventory_line() {
    local how
    if [ "$1" = nsenter ]; then
        how="ansible_connection=community.docker.nsenter ansible_nsenter_pid=$(pstate_get PI_PID)"
    else
        how="ansible_host=$E2E_TUNNEL_ADDR ansible_user=pi ansible_ssh_private_key_file=$STATE_DIR/ssh/id_ed25519 ansible_ssh_common_args='-o UserKnownHostsFile=$STATE_DIR/ssh/known_hosts -o StrictHostKeyChecking=accept-new -o ConnectTimeout=5 -o BatchMode=yes'"
    fi
    printf '%s %s ansible_python_interpreter=/usr/bin/python3 wireguard_network=%s wireguard_address=%s wireguard_port=%s wireguard_endpoint_host=%s\n' \
        "$PI_HOST" "$how" "$E2E_TUNNEL_NET" "$E2E_TUNNEL_ADDR" "$E2E_WG_PORT" "$E2E_PI_LAN"
}

write_playbook_inputs() {
    local n
    mkdir -p "$STATE_DIR/src" "$STATE_DIR/artifacts" "$STATE_DIR/home" "$STATE_DIR/cp" "$STATE_DIR/ssh"
    # One snapshot for both runs: others may be editing the working tree, and
    # an edit would rightly make the second run change something.
    (cd "${MC_E2E_SOURCE:-$E2E_REPO}" && tar --exclude=__pycache__ --exclude='*.pyc' -cf - pyproject.toml \
        requirements.lock app provisioning systemd nginx wireguard scripts/mc-vpn scripts/mc-vpn-helper) |
        tar -xf - -C "$STATE_DIR/src"
    rm -f "$STATE_DIR/src/provisioning/inventory.ini" "$STATE_DIR/src/provisioning/group_vars/all.yml"
    local build_python=$E2E_REPO/.venv/bin/python
    [ -x "$build_python" ] || build_python=python3
    printf '[mission_control]\n' >"$STATE_DIR/inventory-nsenter.ini"
    printf '[mission_control]\n' >"$STATE_DIR/inventory-ssh.ini"
    for n in "${PIS[@]}"; do
        use_pi "$n"
        inventory_line nsenter >>"$STATE_DIR/inventory-nsenter.ini"
        inventory_line ssh >>"$STATE_DIR/inventory-ssh.ini"
    done
    # The settings a user writes into group_vars/all.yml, for this network
    # (the per-Pi ones are in the inventory: extra vars would override them).
    cat >"$STATE_DIR/vars.yml" <<EOF
---
firewall_lan_subnets: [$E2E_LAN_SUBNET]
firewall_ssh_from_lan: false
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
# alerts that leave the Pi reach a receiver on the outside host, quick retries
# and breaker for the check (tests/e2e/test_e2e_14_notify.py)
app_notify_channels:
  - {name: receiver, url: "json://$E2E_OUTSIDE_ADDR:8099/mc-e2e-alerts", allow_plaintext: true}
app_env: {MC_NOTIFY_RETRY_BASE_S: "2", MC_NOTIFY_BREAKER_FAILURES: "3", MC_NOTIFY_BREAKER_COOL_DOWN_S: "10"}
EOF
}

laptop_tunnel_up() {
    local conf=$STATE_DIR/wg/$LAPTOP_IF.conf
    mkdir -p "$STATE_DIR/wg"
    chmod 0700 "$STATE_DIR/wg"
    install -m 0600 "$STATE_DIR/artifacts/$PI_HOST/laptop.conf" "$conf"
    ip netns exec "$E2E_NS_LAPTOP" env WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD=1 \
        timeout 30 wg-quick up "$conf" </dev/null >>"$STATE_DIR/wg.log" 2>&1 ||
        { tail -n 20 "$STATE_DIR/wg.log" >&2; e2e_die "wg-quick up $LAPTOP_IF on the laptop failed"; }
    pstate_set LAPTOP_IF "$LAPTOP_IF"
    e2e_wait_until 30 "a handshake and a ping through $PI_HOST's tunnel" \
        ip netns exec "$E2E_NS_LAPTOP" ping -c1 -W1 "$E2E_TUNNEL_ADDR"
}

https_ok() {
    ip netns exec "$E2E_NS_LAPTOP" curl -fsS -m 2 --cacert "$STATE_DIR/artifacts/$PI_HOST-ca.crt" \
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
    for var in NS_LAPTOP NS_LAN NS_OUTSIDE LAN_SUBNET LAN_ROUTER LAPTOP_LAN WAN_ROUTER OUTSIDE_ADDR IFTAG; do
        local name="E2E_$var"
        state_set "$var" "${!name}"
    done
    state_set PIS "${PIS[*]}"
    local n
    for n in "${PIS[@]}"; do
        use_pi "$n"
        pstate_set HOST "$PI_HOST"
        pstate_set SUITE "$E2E_SUITE"
        for var in NS_PI MACHINE PI_LAN TUNNEL_NET TUNNEL_ADDR WG_PORT ROOTFS; do
            local name="E2E_$var"
            pstate_set "$var" "${!name}"
        done
    done
    state_set HOST_SYSCTLS_BEFORE "$(host_sysctls)"
    UP_OK=no
    # on any failure: leave nothing behind (unless --keep)
    trap 'rc=$?; if [ "$UP_OK" != yes ]; then e2e_stage ""; if [ "$KEEP" = yes ]; then e2e_say "kept for inspection: $0 down --state-dir $STATE_DIR"; else teardown; fi; fi; exit $rc' EXIT
    trap 'exit 130' INT TERM
    local t0 pyver roots=()
    t0=$(e2e_now_ns)

    e2e_stage host-packages
    "$E2E_REPO/scripts/e2e/install-deps.sh"
    e2e_stage rootfs
    for n in "${PIS[@]}"; do
        use_pi "$n"
        e2e_rootfs_ensure "$REBUILD"
    done
    e2e_stage wheels
    for n in "${PIS[@]}"; do
        use_pi "$n"
        pyver=$(e2e_root_python "$E2E_ROOTFS")
        e2e_wheelhouse "$E2E_REPO/requirements.lock" "$pyver" "$(uname -m)" "$(e2e_root_glibc "$E2E_ROOTFS")"
        pstate_set PI_PYTHON "$pyver"
        pstate_set WHEELS "$E2E_WHEELS"
    done
    e2e_stage network
    make_network
    ssh-keygen -q -t ed25519 -N '' -C mc-e2e -f "$STATE_DIR/ssh-key" >/dev/null
    mkdir -p "$STATE_DIR/ssh"
    mv "$STATE_DIR/ssh-key" "$STATE_DIR/ssh/id_ed25519"
    mv "$STATE_DIR/ssh-key.pub" "$STATE_DIR/ssh/id_ed25519.pub"
    e2e_stage boot
    for n in "${PIS[@]}"; do
        use_pi "$n"
        mount_root 1
        seed_root "$(pstate_get ROOT)"
        roots+=("$(pstate_get ROOT)")
    done
    start_relays "${roots[@]}"
    for n in "${PIS[@]}"; do
        use_pi "$n"
        start_pi_relay
        boot_pi 1
    done
    e2e_stage provision-nsenter
    write_playbook_inputs
    run_playbook 1 "$STATE_DIR/inventory-nsenter.ini"
    state_set RUN1_TRANSPORT nsenter
    e2e_stage tunnel
    for n in "${PIS[@]}"; do
        use_pi "$n"
        # what the role's "Apply kernel settings" handler does on a real Pi
        apply_pi_net_sysctls
        laptop_tunnel_up
        e2e_wait_until 20 "SSH to $PI_HOST through its tunnel" \
            ip netns exec "$E2E_NS_LAPTOP" ssh -i "$STATE_DIR/ssh/id_ed25519" \
            -o UserKnownHostsFile="$STATE_DIR/ssh/known_hosts" -o StrictHostKeyChecking=accept-new \
            -o ConnectTimeout=2 -o BatchMode=yes "pi@$E2E_TUNNEL_ADDR" true
    done
    e2e_stage provision-ssh
    run_playbook 2 "$STATE_DIR/inventory-ssh.ini" "$E2E_NS_LAPTOP"
    state_set RUN2_TRANSPORT "ssh from $E2E_NS_LAPTOP through the tunnel"
    for n in "${PIS[@]}"; do
        use_pi "$n"
        if [ "$(pstate_get RUN2_CHANGED)" != 0 ]; then
            e2e_say "WARNING: the second run changed $(pstate_get RUN2_CHANGED) tasks on $PI_HOST:"
            grep -E '^(TASK|changed)' "$STATE_DIR/run2.log" | grep -B1 "^changed: \[$PI_HOST\]" >&2 || true
        fi
    done
    e2e_stage ready
    for n in "${PIS[@]}"; do
        use_pi "$n"
        e2e_wait_until 60 "https://$E2E_TUNNEL_ADDR/healthz through $PI_HOST's tunnel" https_ok
        pstate_set CA_CERT "$STATE_DIR/artifacts/$PI_HOST-ca.crt"
    done
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
    local ns n pis
    # the Pis this run brought up (a run of an older harness: one)
    read -r -a pis <<<"$(state_get PIS)"
    [ "${#pis[@]}" -gt 0 ] || pis=(1)
    for n in "${pis[@]}"; do
        use_pi "$n"
        stop_pi
    done
    delete_netns "$E2E_NS_LAPTOP"
    delete_netns "$E2E_NS_OUTSIDE"
    for n in "${pis[@]}"; do
        use_pi "$n"
        delete_netns "$E2E_NS_PI"
        kill_recorded "$(pstate_get PI_RELAY_PID)" "$STATE_DIR/apt-relay.sock"
    done
    delete_netns "$E2E_NS_LAN"
    kill_recorded "$(state_get HOST_RELAY_PID)" "$STATE_DIR/apt-relay.sock"
    rm -f /var/run/wireguard/"$E2E_IFTAG"-*.sock
    umount_under "$STATE_DIR"
    local left=""
    if awk -v d="$STATE_DIR/" 'index($2, d) == 1' /proc/self/mounts | grep -q .; then
        left="mounts under $STATE_DIR"
    fi
    if ip netns list | awk '{print $1}' | grep -q "^$E2E_PREFIX-"; then left="$left namespaces"; fi
    local pid
    for pid in "$(state_get NSPAWN_PID)" "$(state_get PI_PID)" "$(state_get HOST_RELAY_PID)" "$(state_get PI_RELAY_PID)" \
        "$(state_get PI2_NSPAWN_PID)" "$(state_get PI2_PI_PID)" "$(state_get PI2_PI_RELAY_PID)"; do
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
    cp "$STATE_DIR"/run*.log "$STATE_DIR"/*console*.log "$E2E_CACHE/e2e-last-logs/" 2>/dev/null || true
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
    # the first Pi (tests/e2e's testbed); the second one is never rebooted
    use_pi 1
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
    recap="run 1 ($(state_get RUN1_TRANSPORT)): $(state_get RUN1_SECONDS) s, changed=$(state_get RUN1_CHANGED)"
    recap="$recap; run 2 ($(state_get RUN2_TRANSPORT)): $(state_get RUN2_SECONDS) s, changed=$(state_get RUN2_CHANGED)"
    if [ -n "$(state_get PI2_HOST)" ]; then
        recap="$recap; pi2 ($(state_get PI2_SUITE)): changed=$(state_get PI2_RUN1_CHANGED), then $(state_get PI2_RUN2_CHANGED)"
    fi
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

# "esac; exit" on one line: bash has read all it runs before a command starts,
# so an edit of this file during a run (a shared working tree) cannot make
# it read on from a shifted offset when the command returns
case "$CMD" in
    up) cmd_up ;;
    down) cmd_down ;;
    reboot) cmd_reboot ;;
    run) cmd_run ;;
esac; exit
