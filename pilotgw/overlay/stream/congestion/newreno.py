"""NewReno (RFC 5681/6582) window arithmetic, for use with SACK/RACK recovery.

Loss *detection* and the recovery episode live in the connection and
:mod:`..recovery`; this class only halves on a congestion event, collapses on
a timeout, and grows by slow start (no per-ACK cap, so a receiver that
acknowledges a batch of segments at once does not slow it down) or by one
segment per window in congestion avoidance (byte counting, RFC 3465).
"""

from __future__ import annotations


class NewReno:
    __slots__ = ("cwnd", "ssthresh", "mss", "_acc")

    def __init__(self, mss: int, initial_window: int) -> None:
        #: The sender's current segment size (it may change under loss, see
        #: :mod:`..segsize`): the growth step and the floors.
        self.cwnd = initial_window
        self.ssthresh = 1 << 62
        self.mss = mss
        self._acc = 0

    def on_ack(self, delivered: int, now: float, rtt: float) -> None:
        if self.cwnd < self.ssthresh:
            self.cwnd += delivered
            return
        self._acc += delivered
        if self._acc >= self.cwnd:
            self._acc -= self.cwnd
            self.cwnd += self.mss

    def on_congestion(self, now: float, flight: int) -> None:
        base = flight if flight < self.cwnd else self.cwnd
        self.ssthresh = max(base // 2, 2 * self.mss)
        self.cwnd = self.ssthresh
        self._acc = 0

    def on_timeout(self, now: float, flight: int) -> None:
        base = flight if flight < self.cwnd else self.cwnd
        self.ssthresh = max(base // 2, 2 * self.mss)
        self.cwnd = self.mss
        self._acc = 0

    def on_local_drop(self, now: float, pipe: int) -> None:
        # Like Linux's reaction to a local qdisc drop (TCP CWR), but at every
        # refusal: halving once per episode left the window far above what
        # the queue holds, and 40 % of sends were refused and redone.
        # ssthresh stays: slow start regains what a momentarily small pipe cost.
        floor = 2 * self.mss
        cap = pipe if pipe > floor else floor
        if cap < self.cwnd:
            self.cwnd = cap
            self._acc = 0
