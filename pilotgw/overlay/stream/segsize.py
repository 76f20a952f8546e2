"""Loss-adaptive segment size.

Why: a segment larger than the path MTU travels as several IP fragments and
is lost when any one of them is. Large segments (up to 64 KB between pilotgw
nodes) are a big CPU win on clean paths -- per-segment costs dominate in
Python -- but at 2 % loss per packet a 45-fragment datagram is lost 60 % of
the time and the stream stops. So each loss episode shrinks the size of
*new* segments (towards one MTU-sized datagram, ``min_mss``) and stretches without loss
(counted in segments, see :data:`GROW_SEGMENTS`) grow it back towards the
negotiated maximum.

To a reference peer a segment keeps its byte range for ever, so every
retransmission stays identical (§1.11.3). A pilotgw peer (one that agreed to
segments over the reference's 4096 bytes) reassembles by byte range, and
there a lost segment is resent in pieces: of the current size the first
time, of ``minimum`` (unfragmented) after that. Resending a large segment
whole can starve it: a qdisc that overflows halfway through a datagram lets
its first fragments out (``sendto`` still fails), every such partial train
pins the receiver's IP reassembly memory for 30 s (``ipfrag_time``), and
once that memory is full no fragmented datagram is reassembled at all; a
retry as soon as the queue has *some* room makes another partial train.
Pieces that fit one packet get through all the same.
"""

from __future__ import annotations

#: Each loss episode divides the segment size by this.
SHRINK = 4
#: Segments (of the current size) that must arrive without a loss episode
#: before the size doubles. Counting segments rather than round trips makes
#: the size settle where a datagram is lost about once per this many: at 2 %
#: loss per packet, 64 clean one-packet segments happen 27 % of the time but
#: 64 clean 4-fragment ones only 0.5 %, so a lossy path stays (almost)
#: unfragmented, while on a clean path a shrink is undone within a few
#: round trips.
GROW_SEGMENTS = 64


class SegmentSizer:
    """The segment size for new data, between ``minimum`` and ``maximum``."""

    __slots__ = ("size", "maximum", "minimum", "mark")

    def __init__(self, size: int, minimum: int) -> None:
        self.size = size
        self.maximum = size
        self.minimum = minimum if minimum < size else size
        #: The size may grow once the cumulative ACK reaches this sequence
        #: number with no loss episode in between.
        self.mark = 0

    def set_maximum(self, size: int) -> None:
        """A newly negotiated maximum (the daemon's large-segment extension);
        the size starts there."""
        self.size = self.maximum = size

    def on_loss(self, snd_nxt: int) -> None:
        """A loss episode began (loss detected, timeout, or a local drop)."""
        size = self.size // SHRINK
        self.size = size = size if size > self.minimum else self.minimum
        self.mark = snd_nxt + GROW_SEGMENTS * size

    def on_clean(self, snd_nxt: int) -> None:
        """The cumulative ACK passed :attr:`mark` outside recovery (the caller
        checks the mark, so this runs once per growth step)."""
        if self.size < self.maximum:
            size = self.size * 2
            self.size = size = size if size < self.maximum else self.maximum
            self.mark = snd_nxt + GROW_SEGMENTS * size
        else:
            self.mark = 1 << 62  # at the maximum: nothing to wait for until a loss
