"""Round-trip time estimation and the retransmission timeout (RFC 6298).

Kept apart from loss detection so that both the RTO and RACK's reordering
window read the same samples. ``min_rtt`` is the smallest sample seen; RACK
uses it to size its reordering window and to judge ambiguous retransmissions.
"""

from __future__ import annotations

#: The reference's ClockGranularity: the floor of the variance term.
GRANULARITY = 0.010


class RttEstimator:
    """SRTT/RTTVAR per RFC 6298 §2, with exponential backoff on timeouts."""

    __slots__ = ("srtt", "rttvar", "min_rtt", "latest", "rto", "backoff", "_min_rto", "_max_rto")

    def __init__(self, initial_rto: float, min_rto: float, max_rto: float) -> None:
        self.srtt = 0.0  # 0 until the first sample
        self.rttvar = 0.0
        self.min_rtt = float("inf")
        self.latest = 0.0
        self.rto = initial_rto
        self.backoff = 0
        self._min_rto = min_rto
        self._max_rto = max_rto

    @property
    def has_sample(self) -> bool:
        return self.srtt > 0.0

    def sample(self, r: float) -> None:
        """Feed one measurement (Karn's rule is the caller's job: never time a
        retransmitted segment). Resets any timeout backoff (RFC 6298 §5.7)."""
        if r <= 0.0:
            r = 1e-6
        self.latest = r
        if r < self.min_rtt:
            self.min_rtt = r
        if self.srtt == 0.0:
            self.srtt = r
            self.rttvar = r / 2
        else:
            err = self.srtt - r
            self.rttvar = 0.75 * self.rttvar + 0.25 * (err if err >= 0 else -err)
            self.srtt = 0.875 * self.srtt + 0.125 * r
        var = 4 * self.rttvar
        rto = self.srtt + (var if var > GRANULARITY else GRANULARITY)
        self.rto = self._min_rto if rto < self._min_rto else (self._max_rto if rto > self._max_rto else rto)
        self.backoff = 0

    def current_rto(self) -> float:
        """The RTO including backoff, capped at the maximum."""
        rto = self.rto * (1 << self.backoff) if self.backoff < 30 else self._max_rto
        return rto if rto < self._max_rto else self._max_rto

    def on_timeout(self) -> None:
        """Double the timeout (RFC 6298 §5.5)."""
        self.backoff += 1
