"""A loopback stand-in for the overlay: data-exchange services of several
"nodes" served on local TCP ports, and a ``dial(addr, port)`` that reaches
them (refusing ports nobody listens on, as a reference node refuses the
extension port)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from pilotgw.daemon.services.dataexchange import DataExchange, Storage
from pilotgw.overlay.address import PORT_DATA_EXCHANGE, Addr, SocketAddr
from pilotgw.services import xfer


class CountingWriter:
    """Wraps a StreamWriter; counts bytes and can fail after a budget."""

    def __init__(self, writer, fail_after=None):
        self._w = writer
        self.sent = 0
        self.fail_after = fail_after
        self.failed = False

    def write(self, data):
        if self.fail_after is not None and self.sent + len(data) > self.fail_after:
            # Half-close after what was written so far, and keep reading, so
            # the receiver sees every byte and then EOF (a full close would
            # answer its progress messages with an RST that discards data).
            self._w.write_eof()
            self.failed = True
            raise ConnectionResetError("injected failure")
        self.sent += len(data)
        self._w.write(data)

    async def drain(self):
        await self._w.drain()

    def close(self):
        if not self.failed:
            self._w.close()

    def really_close(self):
        self._w.close()


class LoopNet:
    def __init__(self, root: Path):
        self.root = root
        self.ports: dict[tuple[int, int], int] = {}
        self.services: dict[int, DataExchange] = {}
        self.servers = []
        self.sender_writers: list[CountingWriter] = []
        self.fail_after = None

    async def add(self, node: int, *, bulk: bool = True, **kwargs) -> DataExchange:
        svc = DataExchange(Storage(self.root / f"n{node}", min_free=0), me=lambda: str(Addr(0, node)),
                           dial=self.hop_dial, **kwargs)
        self.services[node] = svc
        await self._serve(node, PORT_DATA_EXCHANGE, svc.handle)
        if bulk:
            await self._serve(node, xfer.PORT, svc.handle_bulk)
        return svc

    async def _serve(self, node, port, handler):
        async def on_conn(reader, writer):
            await handler(reader, writer, SocketAddr(Addr(0, 99), 49152))

        server = await asyncio.start_server(on_conn, "127.0.0.1", 0)
        self.servers.append(server)
        self.ports[(node, port)] = server.sockets[0].getsockname()[1]

    async def _open(self, addr: Addr, port: int):
        tcp = self.ports.get((addr.node, port))
        if tcp is None:
            raise ConnectionRefusedError("dial: connection refused")
        return await asyncio.open_connection("127.0.0.1", tcp)

    async def hop_dial(self, addr: Addr, port: int):
        return await self._open(addr, port)

    async def dial(self, addr: Addr, port: int):
        """The sender's dial: its writers are counted (and may fail once)."""
        reader, writer = await self._open(addr, port)
        counted = CountingWriter(writer, self.fail_after)
        self.fail_after = None
        self.sender_writers.append(counted)
        return reader, counted

    def received(self, node: int) -> list[Path]:
        d = self.root / f"n{node}" / "received"
        return sorted(p for p in d.iterdir() if p.is_file()) if d.exists() else []

    async def close(self):
        for w in self.sender_writers:
            w.really_close()
        for s in self.servers:
            s.close()
