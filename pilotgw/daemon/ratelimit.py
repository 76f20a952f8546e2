"""Small rate limiters used on the packet path.

:class:`Gate` allows one event per key per interval (PILA replies, punches,
key refreshes); :class:`TokenBucket` is the reference's SYN bucket
(tunnel-and-transport.md §2.12: capacity = rate, integer refill that only
moves the refill time when a token was added). Both take ``now`` from the
caller and keep bounded state, so a flood of distinct keys cannot grow memory.
"""

from __future__ import annotations

from typing import Hashable


class Gate:
    """At most one ``allow(key, now)`` per ``interval`` seconds per key."""

    __slots__ = ("interval", "max_keys", "_last")

    def __init__(self, interval: float, max_keys: int = 4096) -> None:
        self.interval = interval
        self.max_keys = max_keys
        self._last: dict[Hashable, float] = {}

    def allow(self, key: Hashable, now: float) -> bool:
        last = self._last.get(key)
        if last is not None and now - last < self.interval:
            return False
        if last is None and len(self._last) >= self.max_keys:
            self._reap(now)
            if len(self._last) >= self.max_keys:
                return False
        self._last[key] = now
        return True

    def reset(self, key: Hashable) -> None:
        self._last.pop(key, None)

    def _reap(self, now: float) -> None:
        stale = [k for k, t in self._last.items() if now - t >= self.interval]
        for k in stale:
            del self._last[k]


class TokenBucket:
    """``rate`` tokens per second, capacity ``capacity`` (default ``rate``)."""

    __slots__ = ("rate", "capacity", "tokens", "refilled")

    def __init__(self, rate: float, now: float, capacity: float | None = None, tokens: float | None = None) -> None:
        self.rate = rate
        self.capacity = rate if capacity is None else capacity
        self.tokens = self.capacity if tokens is None else tokens
        self.refilled = now

    def take(self, now: float) -> bool:
        added = int((now - self.refilled) * self.rate)
        if added >= 1:
            self.tokens = min(self.capacity, self.tokens + added)
            self.refilled = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False
