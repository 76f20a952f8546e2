#!/bin/sh
# NAT router entrypoint for the Compose lab.
#
#   NAT_KIND    port-restricted (default), full-cone or symmetric
#   NAT_WAN_IP  this router's address on the public network; the interface
#               holding it is the WAN side, every other one is LAN
#
# Needs NET_ADMIN and net.ipv4.ip_forward=1 (compose `sysctls`: /proc/sys is
# read-only inside a container). Loads the nftables ruleset of
# pilotgw.lab.nat -- the netns lab's own NAT kinds -- into table ip pilot_nat,
# then idles until stopped.
set -eu

kind="${NAT_KIND:-port-restricted}"
if [ -z "${NAT_WAN_IP:-}" ]; then
    echo "router: set NAT_WAN_IP to this router's public address (error code: no-wan-ip)" >&2
    exit 2
fi
wan=$(ip -o -4 addr show | awk -v ip="$NAT_WAN_IP" '{split($4, a, "/"); if (a[1] == ip) print $2}')
if [ -z "$wan" ]; then
    echo "router: no interface holds NAT_WAN_IP=$NAT_WAN_IP (error code: no-wan-iface)" >&2
    ip -br -4 addr >&2
    exit 2
fi
if [ "$(cat /proc/sys/net/ipv4/ip_forward)" != "1" ]; then
    echo "router: net.ipv4.ip_forward is 0; add 'sysctls: [net.ipv4.ip_forward=1]' (error code: no-forwarding)" >&2
    exit 2
fi

python3 - "$kind" "$wan" <<'PY' > /run/pilot-nat.nft
import sys

from pilotgw.lab.errors import LabError
from pilotgw.lab.nat import ruleset

try:
    sys.stdout.write(ruleset("pilot_nat", sys.argv[1], wan=sys.argv[2]))
except (LabError, ValueError):
    sys.exit(f"router: NAT_KIND={sys.argv[1]!r} is not port-restricted, full-cone or symmetric (error code: bad-nat-kind)")
PY
nft -f /run/pilot-nat.nft
echo "router: $kind NAT, WAN $wan ($NAT_WAN_IP)"

trap 'exit 0' TERM INT
sleep infinity &
wait
