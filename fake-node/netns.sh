#!/usr/bin/env bash
# netns.sh: a network namespace "cplan" joined to the host by a veth pair, so a fake node can
# reach a gateway from a non-loopback address (10.78.0.2 -> 10.78.0.1). Root only.
#   netns.sh up            create it (idempotent)
#   netns.sh down          delete it
#   netns.sh exec CMD...   run CMD inside it
#   netns.sh status        show it
# Environment: CLAWPAIR_NETNS (name, default cplan).
set -euo pipefail

NS="${CLAWPAIR_NETNS:-cplan}"
HOST_IF=cp-host
NS_IF=cp-lan
HOST_IP=10.78.0.1
NS_IP=10.78.0.2

die() { echo "netns.sh: $*" >&2; exit 1; }

need_root() { [ "$(id -u)" = 0 ] || die "must run as root"; }

exists() { ip netns list 2>/dev/null | awk '{print $1}' | grep -qx "$NS"; }

up() {
  need_root
  if exists; then
    echo "netns $NS exists"
  else
    ip netns add "$NS"
    if ! ip link add "$HOST_IF" type veth peer name "$NS_IF"; then
      ip netns del "$NS"
      die "could not create the veth pair"
    fi
    ip link set "$NS_IF" netns "$NS"
    ip addr add "$HOST_IP/24" dev "$HOST_IF"
    ip link set "$HOST_IF" up
    ip netns exec "$NS" ip addr add "$NS_IP/24" dev "$NS_IF"
    ip netns exec "$NS" ip link set "$NS_IF" up
    ip netns exec "$NS" ip link set lo up
  fi
  echo "netns $NS: host $HOST_IF $HOST_IP <-> $NS $NS_IF $NS_IP"
  echo "gateway: --listen $HOST_IP:PORT; node: netns.sh exec clawpair-fake-node --url ws://$HOST_IP:PORT ..."
}

down() {
  need_root
  ip netns del "$NS" 2>/dev/null || true
  # deleting the namespace removes the peer; the host end goes with it
  ip link del "$HOST_IF" 2>/dev/null || true
  echo "netns $NS removed"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  exec)
    shift
    [ $# -gt 0 ] || die "exec needs a command"
    need_root
    exists || die "netns $NS does not exist (run: $0 up)"
    exec ip netns exec "$NS" "$@"
    ;;
  status)
    if exists; then
      echo "netns $NS exists"
      ip -br addr show "$HOST_IF" 2>/dev/null || true
      ip netns exec "$NS" ip -br addr 2>/dev/null || true
    else
      echo "netns $NS absent"
    fi
    ;;
  -h|--help|"") sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'; [ -n "${1:-}" ] ;;
  *) die "unknown command $1 (up|down|exec CMD...|status)" ;;
esac
