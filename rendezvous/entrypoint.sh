#!/bin/sh
# pilot-rendezvous container entrypoint: the default config
# (/etc/pilotgw/rendezvous.json, state in the /var/lib/pilotgw volume) with
# any extra flags given as the container's command, which win over the file.
set -eu
exec pilot-rendezvous -config /etc/pilotgw/rendezvous.json "$@"
