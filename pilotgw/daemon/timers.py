"""One timer for many deadlines: every connection's next deadline lives in one
heap, and the event loop holds a single ``call_at`` handle for the earliest.

A task or a loop timer per connection would cost a handle per retransmission
reset and make 1,000 idle connections wake the loop independently; here an
idle node with no pending deadlines has no timer armed at all. Entries are
invalidated lazily: rescheduling pushes a new entry and the stale one is
skipped when it surfaces; the heap is rebuilt when stale entries dominate.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from typing import Callable, Generic, Hashable, TypeVar

T = TypeVar("T", bound=Hashable)

# Deadlines this close together fire in one wake-up: saves loop round trips
# when many connections share a timeout, at a cost well under a delayed ACK.
_SLACK = 0.001


class TimerHeap(Generic[T]):
    """``schedule(obj, deadline)``; ``fire(obj, now)`` is called at the deadline."""

    def __init__(self, loop: asyncio.AbstractEventLoop, fire: Callable[[T, float], None]) -> None:
        self._loop = loop
        self._fire = fire
        self._heap: list[tuple[float, int, T]] = []
        self._current: dict[T, float] = {}
        self._seq = itertools.count()
        self._handle: asyncio.TimerHandle | None = None
        self._armed_at: float | None = None

    def __len__(self) -> int:
        return len(self._current)

    def schedule(self, obj: T, deadline: float | None) -> None:
        """Set (or with ``None`` clear) the one deadline of ``obj``."""
        old = self._current.get(obj)
        if deadline is None:
            if old is not None:
                del self._current[obj]
            return
        if old == deadline:
            return
        self._current[obj] = deadline
        heapq.heappush(self._heap, (deadline, next(self._seq), obj))
        if len(self._heap) > 64 and len(self._heap) > 4 * len(self._current):
            self._compact()
        if self._armed_at is None or deadline < self._armed_at - _SLACK:
            self._arm(deadline)

    def cancel(self, obj: T) -> None:
        self._current.pop(obj, None)

    def close(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._handle = None
        self._armed_at = None
        self._heap.clear()
        self._current.clear()

    def _compact(self) -> None:
        self._heap = [(d, next(self._seq), o) for o, d in self._current.items()]
        heapq.heapify(self._heap)

    def _arm(self, deadline: float) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._armed_at = deadline
        self._handle = self._loop.call_at(deadline, self._run)

    def _run(self) -> None:
        self._handle = None
        self._armed_at = None
        now = self._loop.time()
        heap, current = self._heap, self._current
        due: list[T] = []
        while heap and heap[0][0] <= now + _SLACK:
            deadline, _, obj = heapq.heappop(heap)
            if current.get(obj) == deadline:
                del current[obj]
                due.append(obj)
        for obj in due:
            self._fire(obj, now)
        while heap and current.get(heap[0][2]) != heap[0][0]:
            heapq.heappop(heap)
        if heap and (self._armed_at is None or heap[0][0] < self._armed_at - _SLACK):
            self._arm(heap[0][0])
