"""Application bytes accepted by ``send()`` and not yet cut into segments.

Chunks are kept as the application wrote them and sliced into segments only
when the congestion and flow-control windows allow, so a large write costs
one slice per segment and nothing up front.

Cutting is where SACK safety is enforced (T-D11): a segment that would itself
parse as a SACK option (``"SACK"``, a count of 1..4, long enough) is sent as
a separate 4-byte segment instead. Four bytes can never parse as SACK, and
the next segment then starts with the count byte, so nothing we send is ever
swallowed by a receiver's SACK parser. Retransmissions reuse the segment
objects, so the split boundary is kept.
"""

from __future__ import annotations

from collections import deque

from pilotgw.overlay.sack import looks_like_sack


class SendBuffer:
    __slots__ = ("_chunks", "_off", "size")

    def __init__(self) -> None:
        self._chunks: deque[bytes] = deque()
        self._off = 0  # bytes of _chunks[0] already cut
        self.size = 0

    def write(self, data: bytes) -> None:
        """Append ``data`` (must be ``bytes``: it is kept, not copied)."""
        if data:
            self._chunks.append(data)
            self.size += len(data)

    def cut(self, limit: int) -> bytes:
        """Remove and return the next segment: up to ``limit`` (>= 1) bytes,
        fewer only when the buffer holds fewer or to keep SACK safety."""
        chunks = self._chunks
        head = chunks[0]
        off = self._off
        end = off + limit
        if end < len(head):
            seg = head[off:end]
            self._off = end
        elif end == len(head) and off == 0:
            seg = head
            chunks.popleft()
            self._off = 0
        else:
            seg = self._gather(limit)
        if seg[:4] == b"SACK" and looks_like_sack(seg):
            self._unread(seg[4:])
            seg = seg[:4]
        self.size -= len(seg)
        return seg

    def _gather(self, limit: int) -> bytes:
        """Slow path of :meth:`cut`: the segment spans chunks or ends one."""
        parts = []
        need = limit
        chunks = self._chunks
        while need and chunks:
            head = chunks[0]
            avail = len(head) - self._off
            if avail <= need:
                parts.append(head[self._off :] if self._off else head)
                chunks.popleft()
                self._off = 0
                need -= avail
            else:
                parts.append(head[self._off : self._off + need])
                self._off += need
                need = 0
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def _unread(self, data: bytes) -> None:
        """Put ``data`` back in front (only used by the SACK-safety split)."""
        if self._off:
            self._chunks[0] = self._chunks[0][self._off :]
            self._off = 0
        self._chunks.appendleft(data)

    def clear(self) -> None:
        self._chunks.clear()
        self._off = 0
        self.size = 0
