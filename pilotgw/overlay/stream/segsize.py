"""Loss-adaptive segment size.

Why: a segment larger than the path MTU travels as several IP fragments and
is lost when any one of them is. Large segments (up to 64 KB between pilotgw
nodes) are a big CPU win on clean paths -- per-segment costs dominate in
Python -- but at 2 % loss per packet a 45-fragment datagram is lost 60 % of
the time and the stream stops. So each loss episode shrinks the size of
*new* segments (towards one MTU-sized datagram) and loss-free round trips
grow it back towards the negotiated maximum.

Only the cutting of new data changes: a segment keeps its byte range for
ever, so every retransmission stays identical (§1.11.3).
"""

from __future__ import annotations

#: Each loss episode divides the segment size by this.
SHRINK = 4
#: Loss-free round trips (cumulative ACKs past what was in flight) before the
#: size doubles again.
GROW_ROUNDS = 4


class SegmentSizer:
    """The segment size for new data, between ``minimum`` and ``maximum``."""

    __slots__ = ("size", "maximum", "minimum", "clean_rounds", "mark")

    def __init__(self, size: int, minimum: int) -> None:
        self.size = size
        self.maximum = size
        self.minimum = minimum if minimum < size else size
        self.clean_rounds = 0
        #: The round in progress ends when the cumulative ACK reaches this.
        self.mark = 0

    def set_maximum(self, size: int) -> None:
        """A newly negotiated maximum (the daemon's large-segment extension);
        the size starts there."""
        self.size = self.maximum = size

    def on_loss(self, snd_nxt: int) -> None:
        """A loss episode began (loss detected, timeout, or a local drop)."""
        self.clean_rounds = 0
        self.mark = snd_nxt
        size = self.size // SHRINK
        self.size = size if size > self.minimum else self.minimum

    def on_round(self, snd_nxt: int) -> None:
        """The cumulative ACK passed :attr:`mark` outside recovery: one more
        loss-free round trip (the caller checks the mark, this is rare)."""
        self.mark = snd_nxt
        self.clean_rounds += 1
        if self.clean_rounds >= GROW_ROUNDS and self.size < self.maximum:
            size = self.size * 2
            self.size = size if size < self.maximum else self.maximum
            self.clean_rounds = 0
