"""Outstanding segments, the SACK scoreboard and RACK loss detection.

Why RACK (RFC 8985) rather than counting duplicate ACKs: a segment is
declared lost when a segment *sent after it* has been delivered and a
reordering window has passed. That one rule finds every hole a SACK reveals,
lost retransmissions too, needs no duplicate-ACK heuristics (the reference's
pure-ACK counting is the broken part, T-D7) and works with SACK blocks in any
order and any count. Tail losses are the connection's job (a loss probe).

Cost model: every structure is touched in proportion to what changed. The
segments sit in a list in sequence order (cumulative ACKs pop from the front,
SACK blocks bisect into it); SACK blocks are merged into a short list of
ranges so that only *newly* covered bytes are walked; a deque in
transmission order lets loss detection stop at the first segment that is
too recent, as RACK's time-ordered list does.

Sequence numbers here are the connection's unbounded ints (see :mod:`.seq`).
"""

from __future__ import annotations

from bisect import bisect_right
from collections import deque
from operator import attrgetter

IN_FLIGHT = 0  #: sent (or resent) and counted in the pipe
LOST = 1  #: declared lost, waiting for retransmission, not in the pipe
SACKED = 2  #: selectively acknowledged
ACKED = 3  #: cumulatively acknowledged

_INF = float("inf")
_start = attrgetter("start")


class Segment:
    """One transmitted byte range. Its boundaries and bytes never change, so
    every retransmission is identical to the original (§1.11.3)."""

    __slots__ = ("start", "end", "data", "sent_at", "tx", "state")

    def __init__(self, start: int, data: bytes, now: float) -> None:
        self.start = start
        self.end = start + len(data)
        self.data = data
        self.sent_at = now
        self.tx = 1
        self.state = IN_FLIGHT


class Scoreboard:
    """Sender-side record of what is outstanding and what is known about it.

    ``pipe`` is RFC 6675's estimate of bytes in the network: sent, not
    acknowledged, not SACKed, not declared lost. The owner sends while
    ``pipe < cwnd``.
    """

    __slots__ = (
        "segs",
        "head",
        "ranges",
        "xmit",
        "lost",
        "pipe",
        "una",
        "rack_ts",
        "rack_end",
        "rack_rtt",
        "reorder_deadline",
        "rtt_sample",
        "last_acked",
    )

    def __init__(self, una: int) -> None:
        self.segs: list[Segment] = []
        self.head = 0  # segs[:head] are acknowledged, kept until compaction
        self.ranges: list[list[int]] = []  # merged SACKed ranges above una
        self.xmit: deque[tuple[Segment, int]] = deque()  # (segment, its tx count) in send order
        self.lost: deque[Segment] = deque()
        self.pipe = 0
        self.una = una
        self.rack_ts = -_INF  # send time of the most recently sent delivered segment
        self.rack_end = 0
        self.rack_rtt = 0.0
        self.reorder_deadline = _INF
        self.rtt_sample = -1.0  # set by on_ack: a Karn-safe sample, or -1
        self.last_acked: Segment | None = None

    # -- transmission -----------------------------------------------------

    def add(self, start: int, data: bytes, now: float) -> Segment:
        """Record a new segment that is being sent now."""
        seg = Segment(start, data, now)
        self.segs.append(seg)
        self.xmit.append((seg, 1))
        self.pipe += seg.end - start
        return seg

    def retransmit(self, seg: Segment, now: float) -> None:
        """Record that ``seg`` is being sent again now (RTO, RACK or loss probe)."""
        if seg.state == LOST:
            self.pipe += seg.end - seg.start
        seg.state = IN_FLIGHT
        seg.sent_at = now
        seg.tx += 1
        self.xmit.append((seg, seg.tx))

    def mark_unsent(self, start: int, now: float) -> bool:
        """The copy of the segment starting at ``start`` that was sent at
        ``now`` never left this host (the local queue refused it): it is lost
        at once. Returns whether such a segment was in flight."""
        segs = self.segs
        k = bisect_right(segs, start, self.head, len(segs), key=_start) - 1
        if k < self.head:
            return False
        seg = segs[k]
        if seg.start != start or seg.state != IN_FLIGHT or seg.sent_at != now:
            return False
        seg.state = LOST
        self.pipe -= seg.end - seg.start
        self.lost.append(seg)
        return True

    def pop_lost(self) -> Segment | None:
        """The next segment waiting for retransmission, removed from the queue."""
        lost = self.lost
        while lost:
            seg = lost.popleft()
            if seg.state == LOST:
                return seg
        return None

    def split(self, seg: Segment, size: int) -> None:
        """Replace ``seg`` -- declared lost and just taken with :meth:`pop_lost`
        -- by lost pieces of at most ``size`` bytes, queued ahead of every other
        lost segment so they are resent next, lowest first.

        Why: a large segment travels as dozens of IP fragments. Under
        congestion each attempt loses some of them, and the partial trains
        left at the receiver fill its reassembly memory for the kernel's
        fragment timeout (30 s), so an identical copy may never get through
        while smaller ones do. Only a receiver that reassembles by byte range
        (pilotgw) accepts the pieces; the caller decides when that holds.
        The pieces keep the segment's send time and count (no RTT sample)."""
        start, data = seg.start, seg.data
        pieces = []
        for off in range(0, len(data), size):
            piece = Segment(start + off, data[off : off + size], seg.sent_at)
            piece.tx = seg.tx
            piece.state = LOST
            pieces.append(piece)
        segs = self.segs
        k = bisect_right(segs, start, self.head, len(segs), key=_start) - 1
        if segs[k] is not seg:
            raise AssertionError(f"split: segment {seg.start}..{seg.end} is not outstanding")
        segs[k : k + 1] = pieces
        # Retired: the queues may still name it (a segment can be queued as
        # lost more than once), and nothing may ever resend it again.
        seg.state = ACKED
        self.lost.extendleft(reversed(pieces))

    @property
    def outstanding(self) -> int:
        """Number of segments sent and not cumulatively acknowledged."""
        return len(self.segs) - self.head

    def last_unsacked(self) -> Segment | None:
        """The highest outstanding segment not yet SACKed (for a loss probe)."""
        segs = self.segs
        for i in range(len(segs) - 1, self.head - 1, -1):
            if segs[i].state < SACKED:
                return segs[i]
        return None

    # -- acknowledgements -------------------------------------------------

    def on_ack(self, ack: int, blocks: list[tuple[int, int]] | None, now: float, min_rtt: float) -> int:
        """Apply a cumulative ACK (``ack >= una``, not beyond what was sent)
        and SACK blocks (already unwrapped and checked to lie within what was
        sent). Returns the bytes newly delivered; sets ``rtt_sample`` and
        RACK's view of the most recent delivery."""
        delivered = 0
        newest: Segment | None = None
        segs = self.segs
        if ack > self.una:
            i = self.head
            n = len(segs)
            while i < n:
                s = segs[i]
                if s.end > ack:
                    break
                st = s.state
                if st < SACKED:
                    ln = s.end - s.start
                    delivered += ln
                    if st == IN_FLIGHT:
                        self.pipe -= ln
                    if newest is None or s.sent_at >= newest.sent_at:
                        newest = s
                s.state = ACKED
                i += 1
            if i != self.head:
                self.last_acked = segs[i - 1]
                if i > 256 and i * 2 > n:
                    del segs[:i]
                    i = 0
                self.head = i
            self.una = ack
            rs = self.ranges
            while rs and rs[0][1] <= ack:
                del rs[0]
            if rs and rs[0][0] < ack:
                rs[0][0] = ack
        if blocks:
            for left, right in blocks:
                if left < self.una:
                    left = self.una
                if right > left:
                    got, seg = self._sack(left, right)
                    if got:
                        delivered += got
                        if newest is None or seg.sent_at > newest.sent_at or (
                            seg.sent_at == newest.sent_at and seg.end > newest.end
                        ):
                            newest = seg
        self.rtt_sample = -1.0
        if newest is not None:
            r = now - newest.sent_at
            if newest.tx == 1:
                self.rtt_sample = r
            # RFC 8985 §6.2 step 2: a retransmitted segment delivered sooner
            # than min_rtt was probably delivered by its original copy.
            if (newest.tx == 1 or r >= min_rtt) and (
                newest.sent_at > self.rack_ts or (newest.sent_at == self.rack_ts and newest.end > self.rack_end)
            ):
                self.rack_ts = newest.sent_at
                self.rack_end = newest.end
                self.rack_rtt = r
        return delivered

    def _sack(self, left: int, right: int) -> tuple[int, Segment | None]:
        """Merge ``[left, right)`` into the SACKed ranges and mark the segments
        it newly covers. Returns (bytes newly SACKed, the most recently sent
        of the newly SACKed segments)."""
        rs = self.ranges
        n = len(rs)
        i = 0
        while i < n and rs[i][1] < left:
            i += 1
        parts = []
        cur = left
        j = i
        while j < n and rs[j][0] <= right:
            a, b = rs[j]
            if a > cur:
                parts.append((cur, a))
            if b > cur:
                cur = b
            j += 1
        if cur < right:
            parts.append((cur, right))
        if not parts:
            return 0, None
        lo = rs[i][0] if i < j and rs[i][0] < left else left
        hi = rs[j - 1][1] if i < j and rs[j - 1][1] > right else right
        rs[i:j] = [[lo, hi]]
        segs = self.segs
        got = 0
        newest: Segment | None = None
        end_idx = len(segs)
        for a, b in parts:
            k = bisect_right(segs, a, self.head, end_idx, key=_start) - 1
            if k < self.head:
                k = self.head
            while k < end_idx:
                s = segs[k]
                if s.start >= b:
                    break
                if s.state < SACKED and s.start >= lo and s.end <= hi:
                    ln = s.end - s.start
                    got += ln
                    if s.state == IN_FLIGHT:
                        self.pipe -= ln
                    s.state = SACKED
                    if newest is None or s.sent_at > newest.sent_at or (
                        s.sent_at == newest.sent_at and s.end > newest.end
                    ):
                        newest = s
                k += 1
        return got, newest

    # -- loss detection ---------------------------------------------------

    def detect_losses(self, now: float, reo_wnd: float) -> int:
        """RACK: declare lost every outstanding segment sent before the most
        recently delivered one and older than ``rack_rtt + reo_wnd``. Returns
        how many were newly declared lost; ``reorder_deadline`` is when the
        next candidate becomes due (or infinity)."""
        self.reorder_deadline = _INF
        rack_ts = self.rack_ts
        if rack_ts == -_INF:
            return 0
        rack_end = self.rack_end
        wait = self.rack_rtt + reo_wnd
        xmit = self.xmit
        lost = self.lost
        count = 0
        while xmit:
            seg, tx = xmit[0]
            if seg.tx != tx or seg.state != IN_FLIGHT:
                xmit.popleft()
                continue
            ts = seg.sent_at
            if ts > rack_ts or (ts == rack_ts and seg.end > rack_end):
                break
            due = ts + wait
            if due > now:
                self.reorder_deadline = due
                break
            xmit.popleft()
            seg.state = LOST
            self.pipe -= seg.end - seg.start
            lost.append(seg)
            count += 1
        return count

    def mark_all_lost(self) -> None:
        """Retransmission timeout: everything not SACKed is presumed lost and
        will be resent in sequence order."""
        self.lost.clear()
        self.xmit.clear()
        segs = self.segs
        for k in range(self.head, len(segs)):
            s = segs[k]
            if s.state < SACKED:
                s.state = LOST
                self.lost.append(s)
        self.pipe = 0
        self.reorder_deadline = _INF
