"""Bridging between mapped local IPs and overlay agents.

* :mod:`.overlay` — the :class:`Overlay` protocol: the only way the proxy
  reaches the overlay (dial a stream, bind a datagram port, ping).
* :mod:`.mapping` — the local IP ↔ pilot address table (persisted).
* :mod:`.tcp` — one listener for every mapped IP and port; bridges with
  half-close, backpressure, resets and idle timeouts.
* :mod:`.packets` — ICMP echo and UDP read from and written to the TUN device.
* :mod:`.gateway` — :class:`Gateway`, which composes all of the above with
  :mod:`pilotgw.tun` (the kernel side; its docstring explains the routing).
"""

from __future__ import annotations

from pilotgw.proxy.gateway import Gateway
from pilotgw.proxy.mapping import Mapping, MappingError, MappingTable
from pilotgw.proxy.metrics import MappingMetrics
from pilotgw.proxy.overlay import Datagram, DatagramPort, Overlay

__all__ = [
    "Datagram",
    "DatagramPort",
    "Gateway",
    "Mapping",
    "MappingError",
    "MappingMetrics",
    "MappingTable",
    "Overlay",
]
