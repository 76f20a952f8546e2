"""Event stream between real daemons: 1,000 events to 10 subscribers with
wildcard filters, in order per publisher, one blocked subscriber harmless."""

from __future__ import annotations

import asyncio
import struct
import time

import pytest

import pilotgw
from pilotgw.overlay import eventstream


def run(coro, timeout: float = 120.0):
    return asyncio.run(asyncio.wait_for(coro, timeout))


@pytest.fixture
def pair(rendezvous, start_daemon):
    return start_daemon(rendezvous, "broker"), start_daemon(rendezvous, "clients")


async def read_event(reader):
    (tlen,) = struct.unpack(">H", await reader.readexactly(2))
    topic = await reader.readexactly(tlen)
    (plen,) = struct.unpack(">I", await reader.readexactly(4))
    return topic.decode(), await reader.readexactly(plen)


def test_thousand_events_ten_subscribers_blocked_one(pair):
    broker, clients = pair

    async def main():
        client = await pilotgw.connect(str(clients.socket))
        try:
            async def subscribe(topic):
                reader, writer = await client.dial(broker.node_id, 1002)
                writer.write(eventstream.subscribe(topic))
                await writer.drain()
                return reader, writer

            blocked = await subscribe("*")  # never reads
            subs = [await subscribe("*" if i % 2 else "jobs") for i in range(10)]
            publishers = [await subscribe(f"pub{i}") for i in range(2)]
            await asyncio.sleep(0.5)  # let the broker register every subscription
            filler = b"x" * 1000

            async def publish(index, writer):
                for seq in range(500):
                    payload = struct.pack(">HI", index, seq) + filler
                    writer.write(eventstream.encode(eventstream.Event("jobs", payload)))
                    await writer.drain()

            start = time.monotonic()
            await asyncio.gather(*(publish(i, w) for i, (_, w) in enumerate(publishers)))

            async def consume(reader):
                last = {0: -1, 1: -1}
                for _ in range(1000):
                    topic, data = await read_event(reader)
                    assert topic == "jobs"
                    index, seq = struct.unpack(">HI", data[:6])
                    assert seq == last[index] + 1  # in order per publisher
                    last[index] = seq
                return last

            results = await asyncio.gather(*(consume(r) for r, _ in subs))
            elapsed = time.monotonic() - start
            assert all(r == {0: 499, 1: 499} for r in results)
            for _, w in subs + publishers + [blocked]:
                w.close()
            return elapsed
        finally:
            await client.close()

    elapsed = run(main())
    assert elapsed < 30, elapsed
