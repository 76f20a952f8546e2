"""A fake :class:`pilotgw.proxy.overlay.Overlay` whose agent is this host.

``dial(addr, port)`` connects to ``127.0.0.1:port`` and a datagram port is a
UDP socket on 127.0.0.1, so a mapped IP reaches ordinary local servers on
the same port numbers. ``ping`` succeeds or fails at the test's command.
"""

from __future__ import annotations

import asyncio

from pilotgw.overlay.address import Addr
from pilotgw.proxy.overlay import Datagram

AGENT = Addr(0, 4)
LOCALHOST = "127.0.0.1"


class _Receiver(asyncio.DatagramProtocol):
    def __init__(self, port: "FakeDatagramPort") -> None:
        self.port = port

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.port.queue.put_nowait(Datagram(self.port.peer, addr[1], data))


class FakeDatagramPort:
    def __init__(self) -> None:
        self.queue: asyncio.Queue[Datagram | None] = asyncio.Queue()
        self.peer = AGENT
        self.transport: asyncio.DatagramTransport | None = None

    @property
    def port(self) -> int:
        assert self.transport is not None
        return int(self.transport.get_extra_info("sockname")[1])

    async def send(self, addr: Addr, port: int, data: bytes) -> None:
        assert self.transport is not None
        self.peer = addr
        self.transport.sendto(data, (LOCALHOST, port))

    async def recv(self) -> Datagram:
        item = await self.queue.get()
        if item is None:
            raise EOFError("port closed")
        return item

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
        self.queue.put_nowait(None)


class FakeOverlay:
    def __init__(self) -> None:
        self.ping_ok = True
        self.dial_error: Exception | None = None
        self.can_half_close = True
        self.dials: list[tuple[Addr, int]] = []
        self.pings = 0
        self.ports: list[FakeDatagramPort] = []

    async def dial(self, addr: Addr, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        self.dials.append((addr, port))
        if self.dial_error is not None:
            raise self.dial_error
        reader, writer = await asyncio.open_connection(LOCALHOST, port)
        if not self.can_half_close:  # like an overlay transport without half-close
            writer.can_write_eof = lambda: False  # type: ignore[method-assign]
        return reader, writer

    async def bind_datagrams(self) -> FakeDatagramPort:
        port = FakeDatagramPort()
        loop = asyncio.get_running_loop()
        port.transport, _ = await loop.create_datagram_endpoint(lambda: _Receiver(port), local_addr=(LOCALHOST, 0))
        self.ports.append(port)
        return port

    async def ping(self, addr: Addr) -> float:
        self.pings += 1
        if not self.ping_ok:
            raise TimeoutError(f"{addr} does not answer")
        return 0.0001
