"""Token buckets keyed by source (an IP, a node ID), sans-IO.

One small class serves every limit of the server: registrations per IP (the
reference's 10/min), requests per IP, relay packets per node, punches per
node. Buckets idle long enough to be full again are forgotten by
:meth:`RateLimiter.sweep`, so a spray of source addresses costs memory only
for as long as it lasts.
"""

from __future__ import annotations

from typing import Hashable


class RateLimiter:
    """``rate`` tokens per second up to ``burst``; ``rate <= 0`` disables it."""

    __slots__ = ("rate", "burst", "_buckets")

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = burst
        self._buckets: dict[Hashable, list[float]] = {}

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def allow(self, key: Hashable, now: float, cost: float = 1.0) -> bool:
        """Take ``cost`` tokens if available. A denied request takes nothing,
        so a client that backs off recovers at the configured rate."""
        if self.rate <= 0:
            return True
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = [self.burst, now]
        else:
            bucket[0] = min(self.burst, bucket[0] + (now - bucket[1]) * self.rate)
            bucket[1] = now
        if bucket[0] < cost:
            return False
        bucket[0] -= cost
        return True

    def sweep(self, now: float) -> None:
        """Drop buckets that have refilled completely (they hold no state)."""
        if self.rate <= 0:
            return
        full_after = self.burst / self.rate
        stale = [k for k, (_, t) in self._buckets.items() if now - t >= full_after]
        for key in stale:
            del self._buckets[key]

    def __len__(self) -> int:
        return len(self._buckets)
