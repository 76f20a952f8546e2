"""Beacon rules (rendezvous.md §1.10-1.11, §2.9), sans-IO.

``BeaconService.datagram(data, addr, now)`` returns the datagrams to send as
``(bytes, addr)`` pairs. Compared with the reference (R-D7, R-D10, R-D23):

* node 0 (a STUN probe) gets its DiscoverReply but is never recorded;
* a mapping refreshed in the last 60 s is not overwritten from another
  source address, unless the registry says the node's endpoint IP is the new
  source IP (a restarted daemon on the same host) -- a spoofed Discover or
  PunchRequest cannot steal a live node's relay traffic or punches;
* a Relay is forwarded only if its sender ID is recorded at exactly the
  datagram's source address (and, in the combined process, is registered),
  never back to its own source, within a per-node packet rate;
* PunchRequests are rate limited per requester and, in the combined
  process, allowed only where ``resolve`` would be (so a punch cannot leak a
  private node's endpoint);
* this beacon is standalone, as the reference's combined program is: Sync
  gossip is not accepted from anyone, so there is no tier-2 forwarding and no
  relay loop;
* mappings not refreshed for 10 minutes expire.
"""

from __future__ import annotations

import struct
from typing import Any, Callable, Optional

from pilotgw.overlay import beacon
from pilotgw.rendezvous.metrics import Metrics
from pilotgw.rendezvous.ratelimit import RateLimiter

Addr = tuple[Any, ...]
_U32X2 = struct.Struct(">II")

FRESH_WINDOW = 60.0
EXPIRE_AFTER = 600.0


class BeaconService:
    def __init__(
        self,
        metrics: Metrics | None = None,
        *,
        relay_rate: float = 2000.0,
        relay_burst: float = 4000.0,
        punch_rate: float = 5.0,
        punch_burst: float = 20.0,
        endpoint_ip: Optional[Callable[[int], Optional[str]]] = None,
        may_punch: Optional[Callable[[int, int], bool]] = None,
    ) -> None:
        """``endpoint_ip(node)`` gives the registry's endpoint IP of a
        registered node (``None`` if unregistered); ``may_punch(r, t)`` is
        the registry's privacy rule. Both are optional (standalone beacon)."""
        self.metrics = metrics or Metrics()
        self.nodes: dict[int, tuple[Addr, float]] = {}
        self._relay_limit = RateLimiter(relay_rate, relay_burst)
        self._punch_limit = RateLimiter(punch_rate, punch_burst)
        self._endpoint_ip = endpoint_ip
        self._may_punch = may_punch

    def _drop(self, reason: str) -> list[tuple[bytes, Addr]]:
        self.metrics.beacon["drop_" + reason] += 1
        return []

    def _record(self, node_id: int, addr: Addr, now: float) -> bool:
        """Map ``node_id`` to ``addr`` unless a fresh mapping elsewhere holds."""
        if node_id == 0:
            return False
        entry = self.nodes.get(node_id)
        if entry is not None and entry[0] != addr and now - entry[1] < FRESH_WINDOW:
            if self._endpoint_ip is None or self._endpoint_ip(node_id) != addr[0]:
                self.metrics.beacon["drop_spoofed_mapping"] += 1
                return False
        self.nodes[node_id] = (addr, now)
        return True

    def datagram(self, data: bytes, addr: Addr, now: float) -> list[tuple[bytes, Addr]]:
        addr = addr[:2]
        n = len(data)
        kind = data[0] if n else 0
        if kind == beacon.RELAY:
            return self._relay(data, addr, now)
        if kind == beacon.DISCOVER and n >= 5:
            self.metrics.beacon["discover"] += 1
            (node_id,) = struct.unpack_from(">I", data, 1)
            self._record(node_id, addr, now)
            return [(b"\x02" + beacon.encode_endpoint(addr[0], addr[1]), addr)]
        if kind == beacon.PUNCH_REQUEST and n >= 9:
            return self._punch(data, addr, now)
        if kind == beacon.SYNC:
            return self._drop("sync_not_a_peer")
        return self._drop("malformed" if kind in (beacon.DISCOVER, beacon.PUNCH_REQUEST) else "unexpected_type")

    def _punch(self, data: bytes, addr: Addr, now: float) -> list[tuple[bytes, Addr]]:
        requester, target = _U32X2.unpack_from(data, 1)
        if not self._record(requester, addr, now):
            return self._drop("punch_unrecorded")
        if requester == target or not self._punch_limit.allow(requester, now):
            return self._drop("punch_rate")
        entry = self.nodes.get(target)
        if entry is None:
            return self._drop("punch_unknown_target")
        if self._may_punch is not None and not self._may_punch(requester, target):
            return self._drop("punch_denied")
        self.metrics.beacon["punch"] += 1
        target_addr = entry[0]
        return [
            (b"\x04" + beacon.encode_endpoint(target_addr[0], target_addr[1]), addr),
            (b"\x04" + beacon.encode_endpoint(addr[0], addr[1]), target_addr),
        ]

    def _relay(self, data: bytes, addr: Addr, now: float) -> list[tuple[bytes, Addr]]:
        if len(data) < 10:
            return self._drop("malformed")
        sender, dest = _U32X2.unpack_from(data, 1)
        entry = self.nodes.get(sender)
        if entry is None or entry[0] != addr:
            return self._drop("relay_unknown_sender")
        if self._endpoint_ip is not None and self._endpoint_ip(sender) is None:
            return self._drop("relay_unregistered")
        if not self._relay_limit.allow(sender, now):
            return self._drop("relay_rate")
        target = self.nodes.get(dest)
        if target is None:
            return self._drop("relay_unknown_dest")
        if target[0] == addr:
            return self._drop("relay_loop")
        self.metrics.relay_packets += 1
        self.metrics.relay_bytes += len(data) - 9
        return [(beacon.relay_to_deliver(data), target[0])]

    def expire(self, now: float) -> int:
        """Forget mappings not refreshed for 10 minutes and idle rate buckets."""
        stale = [node for node, (_, seen) in self.nodes.items() if now - seen > EXPIRE_AFTER]
        for node in stale:
            del self.nodes[node]
        self._relay_limit.sweep(now)
        self._punch_limit.sweep(now)
        return len(stale)
