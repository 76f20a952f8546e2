"""C-9: one peer cannot tie up port 1001: concurrent connections are capped
per peer and overall (services-and-cli.md Part C)."""

from __future__ import annotations

import asyncio

from pilotgw.daemon.services.dataexchange import DataExchange, Storage
from pilotgw.overlay import dataexchange as dx
from pilotgw.overlay.address import Addr, SocketAddr
from tests.daemon.services.test_dataexchange_service import aio


class Conn:
    """One port-1001 connection from ``node`` served by ``svc.handle``."""

    def __init__(self, svc: DataExchange, node: int) -> None:
        self.reader = asyncio.StreamReader()
        self.closed = asyncio.Event()
        self.out = bytearray()
        self.task = asyncio.ensure_future(svc.handle(self.reader, self, SocketAddr(Addr(0, node), 49152)))

    # the writer half handed to the service
    def write(self, data: bytes) -> None:
        self.out += data

    async def drain(self) -> None:
        pass

    def close(self) -> None:
        self.closed.set()

    def send(self, frame: dx.Frame) -> None:
        self.reader.feed_data(frame.encode())

    def acks(self) -> list[str]:
        return [f.payload.decode() for f in dx.FrameAssembler().feed(bytes(self.out))]


@aio
async def test_connections_beyond_the_per_peer_cap_are_closed_unanswered(tmp_path):
    svc = DataExchange(Storage(tmp_path, min_free=0), max_conns=3, max_conns_per_peer=2)
    first, second = Conn(svc, 7), Conn(svc, 7)
    await asyncio.sleep(0.05)
    third = Conn(svc, 7)  # a third concurrent connection from the same peer
    await asyncio.wait_for(third.closed.wait(), 5)
    third.send(dx.Frame(dx.TEXT, b"refused"))
    other = Conn(svc, 8)  # another peer still gets in
    for c in (first, second, other):
        c.send(dx.Frame(dx.TEXT, b"hi"))
    await asyncio.sleep(0.1)
    assert [c.acks() for c in (first, second, third, other)] == [["ACK TEXT 2 bytes"]] * 2 + [[]] + [["ACK TEXT 2 bytes"]]
    # the overall cap: all three slots are taken
    fourth = Conn(svc, 9)
    await asyncio.wait_for(fourth.closed.wait(), 5)
    # a slot freed by EOF is usable again
    first.reader.feed_eof()
    await asyncio.wait_for(first.task, 5)
    again = Conn(svc, 9)
    again.send(dx.Frame(dx.TEXT, b"ok"))
    await asyncio.sleep(0.1)
    assert again.acks() == ["ACK TEXT 2 bytes"] and not again.closed.is_set()
    for c in (second, other, again):
        c.reader.feed_eof()
    await asyncio.wait_for(asyncio.gather(second.task, other.task, again.task, third.task, fourth.task), 5)
