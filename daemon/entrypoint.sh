#!/bin/sh
# pilot-daemon container entrypoint.
#
# 1. PILOT_ROUTE_VIA=<ip>: make <ip> the default route first. In the Compose
#    lab a node's only way out is its NAT router, which Docker cannot express
#    (a network's gateway is always the host's bridge), hence NET_ADMIN and
#    this step.
# 2. Run pilot-daemon with /etc/pilotgw/daemon.json plus
#    PILOT_REGISTRY (read by the daemon itself), PILOT_BEACON -> -beacon,
#    PILOT_HOSTNAME -> -hostname, and PILOT_DAEMON_FLAGS (extra flags,
#    split on spaces).
# 3. With no arguments the daemon is the container's process. With
#    arguments (e.g. `pilotctl gateway start ...`), the daemon runs in the
#    background, the command starts once the IPC socket exists, and the
#    container lives as long as both do; SIGTERM stops both.
set -eu

if [ -n "${PILOT_ROUTE_VIA:-}" ]; then
    ip route replace default via "$PILOT_ROUTE_VIA"
fi

socket="${PILOT_SOCKET:-/tmp/pilot.sock}"
daemon_flags="-config /etc/pilotgw/daemon.json"
[ -n "${PILOT_BEACON:-}" ] && daemon_flags="$daemon_flags -beacon $PILOT_BEACON"
[ -n "${PILOT_HOSTNAME:-}" ] && daemon_flags="$daemon_flags -hostname $PILOT_HOSTNAME"
daemon_flags="$daemon_flags ${PILOT_DAEMON_FLAGS:-}"

if [ "$#" -eq 0 ]; then
    # shellcheck disable=SC2086  # flags are meant to be split
    exec pilot-daemon $daemon_flags
fi

# shellcheck disable=SC2086
pilot-daemon $daemon_flags &
daemon=$!
child=""
trap 'kill -TERM $daemon $child 2>/dev/null || true' TERM INT

waited=0
until [ -S "$socket" ]; do
    if ! kill -0 "$daemon" 2>/dev/null; then
        echo "pilot-entrypoint: pilot-daemon exited before its socket $socket appeared" >&2
        wait "$daemon" || exit $?
        exit 1
    fi
    if [ "$waited" -ge 300 ]; then
        echo "pilot-entrypoint: no IPC socket at $socket after 30s" >&2
        kill -TERM "$daemon"
        exit 1
    fi
    sleep 0.1
    waited=$((waited + 1))
done

"$@" &
child=$!
# Whichever ends first ends the container: a gateway without its daemon (or
# the reverse) is not a working node.
while kill -0 "$daemon" 2>/dev/null && kill -0 "$child" 2>/dev/null; do
    sleep 1
done
kill -TERM "$daemon" "$child" 2>/dev/null || true
status=0
wait "$child" || status=$?
wait "$daemon" || true
exit "$status"
