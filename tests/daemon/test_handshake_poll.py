"""The relayed-handshake poll loop against registries that do and do not
hold empty polls (our ``wait`` extension vs a reference registry)."""

from __future__ import annotations

import asyncio

from pilotgw.daemon.handshake_poll import poll_loop
from pilotgw.daemon.registry_client import RegistryClient, RegistryError
from pilotgw.overlay import registry as reg

from .test_registry_client import FakeRegistry


async def _run_for(seconds: float, coro) -> None:
    task = asyncio.ensure_future(coro)
    await asyncio.sleep(seconds)
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass


def test_registry_ignoring_wait_is_polled_at_the_idle_pace_not_in_a_loop():
    async def main():
        stub = FakeRegistry()  # answers poll_handshakes at once, empty
        port = await stub.start()
        client = RegistryClient("127.0.0.1", port)
        consumed = []

        async def consume(reply):
            consumed.append(reply)

        await _run_for(1.0, poll_loop(lambda wait: client.request(reg.poll_handshakes(7, None, wait=wait)),
                                      lambda: consume, idle_interval=0.4))
        await client.close()
        stub.server.close()
        return [m for m in stub.requests if m["type"] == "poll_handshakes"], consumed

    polls, consumed = asyncio.run(main())
    assert 2 <= len(polls) <= 4 and consumed == []  # t = 0, 0.4, 0.8 -- not thousands
    assert polls[0]["wait"] == 25  # the extension is still offered


def test_entries_are_consumed_and_polled_again_at_once_and_a_holding_registry_is_not_paced():
    async def main():
        replies = [{"requests": [{"from_node_id": 3}]}, {"responses": [{"node_id": 4}]}]
        times = []
        loop = asyncio.get_running_loop()

        async def poll(wait):
            times.append(loop.time())
            if replies:
                return replies.pop(0)
            await asyncio.sleep(wait)  # holds the empty poll, like our rendezvous
            return {}

        consumed = []

        async def consume(reply):
            consumed.append(reply)

        await _run_for(0.5, poll_loop(poll, lambda: consume, idle_interval=30, wait=0.1))
        return times, consumed

    times, consumed = asyncio.run(main())
    assert len(consumed) == 2
    assert len(times) >= 5  # back to back: 2 with entries, then one held poll after another
    assert times[2] - times[0] < 0.05


def test_failures_pause_and_no_consumer_means_no_polls():
    async def main():
        calls = []

        async def failing(wait):
            calls.append(wait)
            raise RegistryError("registry unreachable", "unreachable")

        async def consume(reply):
            pass

        await _run_for(0.3, poll_loop(failing, lambda: consume, idle_interval=0.01, error_pause=0.2))
        failed = len(calls)
        calls.clear()
        await _run_for(0.2, poll_loop(failing, lambda: None, idle_interval=0.01))
        return failed, len(calls)

    assert asyncio.run(main()) == (2, 0)
