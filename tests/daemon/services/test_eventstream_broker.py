"""Event-stream broker over loopback TCP streams (the daemon hands it
reader/writer pairs of the same shape)."""

from __future__ import annotations

import asyncio
import functools
import struct

from pilotgw.daemon.services.eventstream import Broker
from pilotgw.overlay import eventstream
from pilotgw.overlay.address import Addr, SocketAddr


def aio(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return asyncio.run(asyncio.wait_for(fn(*args, **kwargs), 30))
    return wrapper


class Hooks:
    def __init__(self):
        self.events = []

    def emit(self, name, data=None):
        self.events.append((name, data))


async def serve(broker):
    counter = iter(range(1, 10_000))

    async def handle(reader, writer):
        await broker.handle(reader, writer, SocketAddr(Addr(0, next(counter)), 49152))

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def client(port, topic, rcvbuf=None):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(eventstream.subscribe(topic))
    await writer.drain()
    return reader, writer


async def read_event(reader):
    (tlen,) = struct.unpack(">H", await reader.readexactly(2))
    topic = await reader.readexactly(tlen)
    (plen,) = struct.unpack(">I", await reader.readexactly(4))
    return topic.decode(), await reader.readexactly(plen)


async def settle(broker, n):
    for _ in range(200):
        if len(broker) >= n:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("subscribers did not register")


@aio
async def test_matching_exact_wildcard_and_no_echo():
    hooks = Hooks()
    broker = Broker(hooks)
    server, port = await serve(broker)
    news_r, news_w = await client(port, "news")
    star_r, star_w = await client(port, "*")
    other_r, other_w = await client(port, "other")
    await settle(broker, 3)
    news_w.write(eventstream.encode(eventstream.Event("news", b"self")))  # not echoed to news
    other_w.write(eventstream.encode(eventstream.Event("news", b"n1")))
    other_w.write(eventstream.encode(eventstream.Event("*", b"s1")))
    await other_w.drain()
    await news_w.drain()
    assert await read_event(news_r) == ("news", b"n1")
    got = {await read_event(star_r) for _ in range(3)}
    assert got == {("news", b"self"), ("news", b"n1"), ("*", b"s1")}
    await asyncio.sleep(0.1)
    assert not other_r._buffer  # a publisher never receives its own events
    for w in (news_w, star_w, other_w):
        w.close()
    server.close()
    await asyncio.sleep(0.05)
    names = [e[0] for e in hooks.events]
    assert names.count("pubsub.subscribed") == 3 and names.count("pubsub.published") == 3
    assert ("pubsub.published", {"from": "0:0000.0000.0003:49152", "size": 2, "topic": "news"}) in hooks.events


@aio
async def test_thousand_events_ten_subscribers_in_order_with_a_blocked_one():
    broker = Broker()
    server, port = await serve(broker)
    blocked_r, blocked_w = await client(port, "*")  # never reads
    subs = [await client(port, "*" if i % 2 else "t") for i in range(10)]
    pub_r, pub_w = await client(port, "publisher")
    await settle(broker, 12)
    payload = b"x" * 2000
    for i in range(1000):
        pub_w.write(eventstream.encode(eventstream.Event("t", i.to_bytes(4, "big") + payload)))
    await pub_w.drain()
    loop = asyncio.get_running_loop()
    start = loop.time()
    for reader, _ in subs:
        for i in range(1000):
            topic, data = await read_event(reader)
            assert int.from_bytes(data[:4], "big") == i
    assert loop.time() - start < 10
    for _, w in subs + [(blocked_r, blocked_w), (pub_r, pub_w)]:
        w.close()
    server.close()


@aio
async def test_overflowing_subscriber_is_disconnected_others_continue():
    broker = Broker(queue_bytes=64 * 1024, queue_events=10_000)
    server, port = await serve(broker)
    slow_r, slow_w = await client(port, "t")
    slow_w.transport.pause_reading()
    fast_r, fast_w = await client(port, "t")
    pub_r, pub_w = await client(port, "p")
    await settle(broker, 3)

    async def drain_fast():
        for _ in range(300):
            await read_event(fast_r)

    reading = asyncio.ensure_future(drain_fast())
    for i in range(300):
        pub_w.write(eventstream.encode(eventstream.Event("t", bytes(16 * 1024))))
        await pub_w.drain()
        await asyncio.sleep(0)
    await reading
    assert broker.disconnected_slow == 1
    slow_w.transport.resume_reading()
    # the slow one sees some events, then EOF
    try:
        while True:
            await read_event(slow_r)
    except asyncio.IncompleteReadError:
        pass
    for w in (fast_w, pub_w, slow_w):
        w.close()
    server.close()


@aio
async def test_bad_event_closes_only_that_connection():
    broker = Broker()
    server, port = await serve(broker)
    ok_r, ok_w = await client(port, "t")
    bad_r, bad_w = await asyncio.open_connection("127.0.0.1", port)
    bad_w.write(struct.pack(">H", 2000))  # topic too long
    await bad_w.drain()
    assert await bad_r.read() == b""
    await settle(broker, 1)
    pub_r, pub_w = await client(port, "p")
    await settle(broker, 2)
    pub_w.write(eventstream.encode(eventstream.Event("t", b"still")))
    assert await read_event(ok_r) == ("t", b"still")
    for w in (ok_w, pub_w):
        w.close()
    server.close()
