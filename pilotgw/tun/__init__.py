"""The gateway's kernel side: TUN device, route, policy rule, nftables table.

Routing design
==============

Mapped IPs (default subnet ``10.4.0.0/16``) are never assigned to any
interface. Instead:

* **Policy routing.** A rule ``to <subnet> lookup <table>`` (priority 4104)
  points at a routing table of our own holding one route, ``<subnet> dev
  pilot0``, the TUN device. The main table is never edited. So everything
  sent to the subnet, from this host (OUTPUT) or forwarded for other hosts
  that route the subnet through us (PREROUTING, needs ``ip_forward``), is
  headed for the TUN device.
* **TCP: one listener for the whole subnet.** Before routing sends TCP to the
  TUN, nftables ``redirect`` (nat output and nat prerouting) rewrites it to a
  single proxy socket listening on an ephemeral port; the proxy reads the
  original destination (mapped IP and port) with ``SO_ORIGINAL_DST``. Any
  port works without one listener per IP and port; when a port list is
  given, only those ports are redirected. The kernel's own TCP stack does the
  heavy lifting: no userspace TCP.
* **ICMP and UDP: through the TUN.** They are not redirected, so they reach
  the TUN device, where the proxy reads raw packets: an echo request to a
  mapped IP is answered only after the overlay agent answers a ping; a UDP
  datagram becomes an overlay datagram and the reply comes back as a packet
  written to the TUN. The kernel never answers for a mapped IP itself.
* **Fail fast.** Traffic to an unmapped IP, TCP that was not redirected and
  UDP to an unlisted port are rejected in our nftables table (TCP reset or
  ICMP unreachable), so clients get an error at once instead of a timeout.

Everything added is recorded in a state file *before* it is added
(:mod:`pilotgw.tun.state`), removed on stop, and removed by
:func:`cleanup_stale` after a crash. The TUN device itself dies with the
process that holds it (it is not persistent), taking its route along; the
rule and the nftables table are what a ``kill -9`` would leave behind.

All operations block (pyroute2's synchronous API and the ``nft`` tool); an
event loop calls them from a worker thread. :func:`require_net_admin` checks
permissions before anything is touched.
"""

from __future__ import annotations

from pilotgw.tun.errors import KernelError
from pilotgw.tun.plumbing import SubnetPlumbing
from pilotgw.tun.privileges import require_net_admin
from pilotgw.tun.state import cleanup_stale

__all__ = ["KernelError", "SubnetPlumbing", "cleanup_stale", "require_net_admin"]
