"""The receive side: in-order bytes waiting for the application, and
out-of-order bytes waiting for the gap before them to fill.

Reassembly is by byte range (T-D17): a segment that overlaps what we hold is
trimmed to the bytes we lack and the rest kept, so no data is lost whatever
boundaries a retransmitting peer uses. Out-of-order bytes are held as pieces
keyed by their first sequence number plus a short sorted list of merged
ranges; the ranges are also exactly what SACK reports.

Limits (the receive-buffer policy of T-D8) are enforced here so that one
connection can never take unbounded memory: in-order bytes beyond
``hard_cap`` unread, and out-of-order bytes beyond ``ooo_cap`` or further than
``span`` past the next expected byte, are dropped (and so not acknowledged).
"""

from __future__ import annotations

from collections import deque

DUPLICATE = 0  #: nothing new (already delivered or already held)
IN_ORDER = 1  #: the next expected bytes, with nothing held out of order
FILLED = 2  #: in order, and it filled (part of) a hole before held data
OUT_OF_ORDER = 3  #: new bytes stored beyond a hole
DROPPED = 4  #: refused by a limit: the caller must not acknowledge it


class ReceiveBuffer:
    __slots__ = ("nxt", "ready", "ready_bytes", "_off", "pieces", "ranges", "ooo_bytes", "last_ooo", "_hard_cap", "_ooo_cap", "_span")

    def __init__(self, nxt: int, hard_cap: int, ooo_cap: int, span: int) -> None:
        self.nxt = nxt  # next expected sequence number (the cumulative ACK)
        self.ready: deque[bytes] = deque()
        self.ready_bytes = 0  # unread in-order bytes
        self._off = 0  # bytes of ready[0] already read
        self.pieces: dict[int, bytes] = {}
        self.ranges: list[list[int]] = []  # merged out-of-order ranges, ascending
        self.ooo_bytes = 0
        self.last_ooo = 0  # start of the most recently stored out-of-order bytes
        self._hard_cap = hard_cap
        self._ooo_cap = ooo_cap
        self._span = span

    def add(self, start: int, data: bytes) -> int:
        """File one segment; returns one of the module's result codes."""
        nxt = self.nxt
        end = start + len(data)
        if start == nxt and not self.ranges:
            if self.ready_bytes + len(data) > self._hard_cap:
                return DROPPED
            self.ready.append(data)
            self.ready_bytes += len(data)
            self.nxt = end
            return IN_ORDER
        if end <= nxt:
            return DUPLICATE
        if start <= nxt:
            if self.ready_bytes + (end - nxt) > self._hard_cap:
                return DROPPED
            if start < nxt:
                data = data[nxt - start :]
                start = nxt
            if not self.ranges:
                self.ready.append(data)
                self.ready_bytes += len(data)
                self.nxt = end
                return IN_ORDER
            self._store(start, data)
            self._drain()
            return FILLED
        if end - nxt > self._span or self.ooo_bytes + len(data) > self._ooo_cap:
            return DROPPED
        if not self._store(start, data):
            return DUPLICATE
        self.last_ooo = start
        return OUT_OF_ORDER

    def _store(self, start: int, data: bytes) -> int:
        """Keep the parts of ``data`` not already held; returns bytes added."""
        end = start + len(data)
        rs = self.ranges
        n = len(rs)
        i = 0
        while i < n and rs[i][1] < start:
            i += 1
        added = 0
        cur = start
        j = i
        pieces = self.pieces
        while j < n and rs[j][0] <= end:
            a, b = rs[j]
            if a > cur:
                pieces[cur] = data[cur - start : a - start]
                added += a - cur
            if b > cur:
                cur = b
            j += 1
        if cur < end:
            pieces[cur] = data if cur == start else data[cur - start :]
            added += end - cur
        if added:
            lo = rs[i][0] if i < j and rs[i][0] < start else start
            hi = rs[j - 1][1] if i < j and rs[j - 1][1] > end else end
            rs[i:j] = [[lo, hi]]
            self.ooo_bytes += added
        return added

    def _drain(self) -> None:
        """Move the held range that now starts at ``nxt`` into the ready queue."""
        rs = self.ranges
        pieces = self.pieces
        while rs and rs[0][0] == self.nxt:
            a, b = rs.pop(0)
            pos = a
            while pos < b:
                piece = pieces.pop(pos)
                self.ready.append(piece)
                pos += len(piece)
            self.ooo_bytes -= b - a
            self.ready_bytes += b - a
            self.nxt = b

    def sack_blocks(self) -> list[tuple[int, int]]:
        """Up to four held ranges: the one holding the latest arrival first
        (RFC 2018), then the lowest others."""
        rs = self.ranges
        first = None
        for r in rs:
            if r[0] <= self.last_ooo < r[1]:
                first = r
                break
        blocks = [(first[0], first[1])] if first is not None else []
        for r in rs:
            if len(blocks) == 4:
                break
            if r is not first:
                blocks.append((r[0], r[1]))
        return blocks

    def read(self, max_bytes: int = -1) -> bytes:
        """Remove and return up to ``max_bytes`` in-order bytes (all if < 0)."""
        ready = self.ready
        if not ready or max_bytes == 0:
            return b""
        if max_bytes < 0 or max_bytes >= self.ready_bytes:
            if self._off:
                ready[0] = ready[0][self._off :]
                self._off = 0
            out = ready[0] if len(ready) == 1 else b"".join(ready)
            ready.clear()
            self.ready_bytes = 0
            return bytes(out)
        parts = []
        need = max_bytes
        while need:
            head = ready[0]
            avail = len(head) - self._off
            if avail <= need:
                parts.append(head[self._off :])
                ready.popleft()
                self._off = 0
                need -= avail
            else:
                parts.append(head[self._off : self._off + need])
                self._off += need
                need = 0
        self.ready_bytes -= max_bytes
        return b"".join(parts)
