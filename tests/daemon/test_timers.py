"""The one timer heap that drives every connection's deadline."""

from __future__ import annotations

import asyncio

from pilotgw.daemon.timers import TimerHeap


def test_fires_in_order_and_reschedules():
    async def main():
        loop = asyncio.get_running_loop()
        fired = []
        heap = TimerHeap(loop, lambda obj, now: fired.append(obj))
        t = loop.time()
        heap.schedule("c", t + 0.06)
        heap.schedule("a", t + 0.02)
        heap.schedule("b", t + 0.04)
        heap.schedule("b", t + 0.08)  # moved later: fires once, at the new time
        heap.schedule("gone", t + 0.01)
        heap.cancel("gone")
        await asyncio.sleep(0.15)
        return fired, len(heap)

    fired, left = asyncio.run(main())
    assert fired == ["a", "c", "b"]
    assert left == 0


def test_callback_may_schedule_earlier_than_pending():
    async def main():
        loop = asyncio.get_running_loop()
        fired = []
        heap: TimerHeap[str] = TimerHeap(loop, lambda obj, now: (fired.append(obj),
                                                                 obj == "first" and heap.schedule("late", now + 0.2)))
        t = loop.time()
        heap.schedule("first", t + 0.01)
        heap.schedule("pending", t + 0.05)
        await asyncio.sleep(0.12)
        return fired

    assert asyncio.run(main()) == ["first", "pending"]


def test_idle_heap_arms_nothing():
    async def main():
        loop = asyncio.get_running_loop()
        heap = TimerHeap(loop, lambda obj, now: None)
        for i in range(1000):
            heap.schedule(i, loop.time() + 100 + i)
        for i in range(1000):
            heap.schedule(i, None)
        return len(heap), heap._handle is not None

    left, armed = asyncio.run(main())
    assert left == 0 and armed  # one handle at most; stale entries are skipped when reached
