#!/usr/bin/env bash
# Network namespaces for trying ustack by hand (and for demo.sh),
# following the safety rules ("Namespace safety rules" in README.md): only `ustk-` namespaces
# this script creates, devices and 10.x addresses only inside them, nothing
# added to the root namespace. Needs root.
#
#   netns.sh up tun|tap SUFFIX      namespace ustk-SUFFIX (lo up, IPv6 off);
#                                   then start e.g.
#                                     ip netns exec ustk-SUFFIX udpecho --tun ustk0 --addr 10.1.0.2/24 &
#                                   and give the kernel side its address:
#                                     netns.sh addr ustk-SUFFIX ustk0 10.1.0.1/24
#   netns.sh up raw SUFFIX          ustk-rawk-SUFFIX holds veth end ustkk0 with
#                                   10.3.0.1/24 (the veth's default offloads);
#                                   ustk-raws-SUFFIX holds ustks0 (up, no
#                                   address, IPv6 off) for
#                                     ip netns exec ustk-raws-SUFFIX udpecho --raw ustks0 --addr 10.3.0.2/24
#   netns.sh addr NS DEV CIDR       wait (at most 10 s) for DEV to appear in NS,
#                                   disable IPv6 on it and add CIDR (kernel side)
#   netns.sh down tun|tap|raw SUFFIX
#                                   SIGTERM what still runs in those namespaces
#                                   (only processes started inside them), then
#                                   delete them
#   netns.sh list                   the ustk- namespaces present
#
# SUFFIX should be unique, e.g. "demo-$$".
set -euo pipefail

die() {
    echo "netns.sh: $*" >&2
    exit 1
}

ns_names() { # KIND SUFFIX -> namespace names
    case $1 in
    tun | tap) echo "ustk-$2" ;;
    raw) echo "ustk-rawk-$2 ustk-raws-$2" ;;
    *) die "unknown kind '$1' (tun, tap or raw)" ;;
    esac
}

check_suffix() {
    [[ $1 =~ ^[A-Za-z0-9][A-Za-z0-9_.-]{0,40}$ ]] || die "bad suffix '$1'"
}

new_ns() {
    ip netns add "$1"
    ip -n "$1" link set lo up
    ip netns exec "$1" sysctl -qw net.ipv6.conf.all.disable_ipv6=1
    ip netns exec "$1" sysctl -qw net.ipv6.conf.default.disable_ipv6=1
}

del_ns() {
    local ns=$1 pids
    [[ $ns == ustk-* ]] || die "refusing to touch namespace '$ns'"
    ip netns list | grep -qw -- "$ns" || return 0
    # Processes inside a ustk- namespace were started there by us.
    pids=$(ip netns pids "$ns" 2>/dev/null || true)
    if [[ -n $pids ]]; then
        # shellcheck disable=SC2086
        kill -TERM $pids 2>/dev/null || true
        for _ in $(seq 50); do
            [[ -z $(ip netns pids "$ns" 2>/dev/null || true) ]] && break
            sleep 0.1
        done
        pids=$(ip netns pids "$ns" 2>/dev/null || true)
        # shellcheck disable=SC2086
        if [[ -n $pids ]]; then
            kill -KILL $pids 2>/dev/null || true
        fi
    fi
    ip netns del "$ns"
}

wait_dev() { # NS DEV
    for _ in $(seq 100); do
        ip -n "$1" link show dev "$2" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    die "$2 did not appear in $1 within 10 s"
}

cmd=${1:-}
case $cmd in
up)
    (($# == 3)) || die "usage: netns.sh up tun|tap|raw SUFFIX"
    kind=$2 suffix=$3
    check_suffix "$suffix"
    names=$(ns_names "$kind" "$suffix")
    [[ $(id -u) -eq 0 ]] || die "needs root"
    case $kind in
    tun | tap)
        new_ns "$names" || { del_ns "$names"; die "could not set up $names"; }
        echo "$names"
        ;;
    raw)
        k="ustk-rawk-$suffix" s="ustk-raws-$suffix"
        if ! {
            new_ns "$k" && new_ns "$s" &&
                ip -n "$k" link add ustkk0 type veth peer name ustks0 netns "$s" &&
                ip netns exec "$k" sysctl -qw net.ipv6.conf.ustkk0.disable_ipv6=1 &&
                ip netns exec "$s" sysctl -qw net.ipv6.conf.ustks0.disable_ipv6=1 &&
                ip -n "$k" addr add 10.3.0.1/24 dev ustkk0 &&
                ip -n "$k" link set ustkk0 up &&
                ip -n "$s" link set ustks0 up
        }; then
            del_ns "$k" || true
            del_ns "$s" || true
            die "could not set up $k / $s"
        fi
        echo "$k $s"
        ;;
    esac
    ;;
addr)
    (($# == 4)) || die "usage: netns.sh addr NS DEV CIDR"
    [[ $2 == ustk-* ]] || die "refusing to touch namespace '$2'"
    [[ $4 == 10.* ]] || die "only 10.x addresses, inside ustk- namespaces"
    wait_dev "$2" "$3"
    ip netns exec "$2" sysctl -qw "net.ipv6.conf.$3.disable_ipv6=1"
    ip -n "$2" addr add "$4" dev "$3"
    ip -n "$2" link set "$3" up
    ;;
down)
    (($# == 3)) || die "usage: netns.sh down tun|tap|raw SUFFIX"
    check_suffix "$3"
    for ns in $(ns_names "$2" "$3"); do
        del_ns "$ns"
    done
    ;;
list)
    ip netns list | grep '^ustk-' || true
    ;;
*)
    sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'
    [[ $cmd == -h || $cmd == --help || $cmd == help ]] || exit 2
    ;;
esac
