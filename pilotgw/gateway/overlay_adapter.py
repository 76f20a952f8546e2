"""The proxy's :class:`~pilotgw.proxy.overlay.Overlay` over the daemon's IPC socket.

One IPC session per bridged TCP connection and per UDP flow, not one shared
session, because the IPC contract multiplexes every connection of a session
on one Unix socket and its only back-pressure is to stop reading that
socket: on a shared session, one browser tab that stops reading would stall
every other download through the gateway. A session of its own gives each
connection the exact back-pressure of the overlay stream, costs one Unix
``connect`` (tens of microseconds), and makes cleanup trivial: closing the
session makes the daemon close the stream and unbind the flow's port.
Sessions are opened on demand, so the gateway carries on by itself when the
daemon restarts.

The contract has no reset and no half-close: "aborting" an overlay stream
ends its session (the daemon sends FIN), and ``can_write_eof()`` is false,
so the proxy lingers instead of half-closing.

UDP flows send with the SendToFrom extension from a port the flow's session
bound, so the agent's replies (addressed to that port) find the flow again;
the daemon pushes every datagram to every session, and each flow keeps only
those for its port. Ping dials the agent's echo port (7, open to everyone,
as ``pilotctl ping`` does) and waits for 8 bytes to come back.
"""

from __future__ import annotations

import asyncio
import os
import random
from typing import Any

from pilotgw.client.aio import Client, DatagramStream, PilotStreamWriter, connect
from pilotgw.client.errors import DaemonError, PilotError
from pilotgw.overlay.address import PORT_ECHO, Addr
from pilotgw.proxy.overlay import Datagram

FLOW_PORT_MIN = 40000
FLOW_PORT_MAX = 48999
BIND_ATTEMPTS = 16


class _CloseSession:
    """``transport.abort()`` for an overlay stream: end its session (FIN)."""

    def __init__(self, stream: "OverlayStream") -> None:
        self._stream = stream

    def abort(self) -> None:
        self._stream.close()

    def is_closing(self) -> bool:
        return self._stream.is_closing()


class OverlayStream:
    """The writer half handed to the proxy: a :class:`PilotStreamWriter` that
    owns its IPC session and closes it with the stream."""

    def __init__(self, client: Client, writer: PilotStreamWriter) -> None:
        self._client = client
        self._writer = writer
        self.transport = _CloseSession(self)
        self._closing: asyncio.Task[None] | None = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self._writer.write(data)

    async def drain(self) -> None:
        await self._writer.drain()

    def can_write_eof(self) -> bool:
        return False

    def write_eof(self) -> None:
        self._writer.write_eof()

    def is_closing(self) -> bool:
        return self._closing is not None

    def close(self) -> None:
        """Send Close for the stream, then end the session (never blocks)."""
        if self._closing is None:
            self._closing = asyncio.ensure_future(self._close())

    async def _close(self) -> None:
        try:
            self._writer.close()
        except PilotError:
            pass
        await self._client.close()

    async def wait_closed(self) -> None:
        if self._closing is not None:
            await asyncio.shield(self._closing)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._writer.get_extra_info(name, default)


class FlowPort:
    """A :class:`~pilotgw.proxy.overlay.DatagramPort`: one session, one bound port."""

    def __init__(self, client: Client, port: int, stream: DatagramStream) -> None:
        self._client = client
        self._port = port
        self._stream = stream

    @property
    def port(self) -> int:
        return self._port

    async def send(self, addr: Addr, port: int, data: bytes) -> None:
        await self._client.send_to(addr, port, data, from_port=self._port)

    async def recv(self) -> Datagram:
        try:
            datagram = await self._stream.receive()
        except (PilotError, StopAsyncIteration) as exc:
            raise EOFError(str(exc)) from None
        return Datagram(datagram.src_addr, datagram.src_port, datagram.data)

    def close(self) -> None:
        self._stream.close()
        asyncio.ensure_future(self._client.close())


class DaemonOverlay:
    """Implements :class:`~pilotgw.proxy.overlay.Overlay` with the daemon at ``socket_path``."""

    def __init__(self, socket_path: str) -> None:
        self.socket_path = socket_path

    async def session(self) -> Client:
        """A new IPC session (raises :class:`~pilotgw.client.NotRunning` without a daemon)."""
        return await connect(self.socket_path)

    async def dial(self, addr: Addr, port: int) -> tuple[asyncio.StreamReader, OverlayStream]:
        client = await self.session()
        try:
            reader, writer = await client.dial(addr, port)
        except BaseException:
            await client.close()
            raise
        return reader, OverlayStream(client, writer)

    async def bind_datagrams(self) -> FlowPort:
        client = await self.session()
        try:
            for _ in range(BIND_ATTEMPTS):
                port = random.randint(FLOW_PORT_MIN, FLOW_PORT_MAX)
                stream = client.datagrams(port)
                try:
                    await client.listen(port)
                except DaemonError:
                    stream.close()
                    continue
                return FlowPort(client, port, stream)
            raise DaemonError("bind", f"no free overlay port for a UDP flow after {BIND_ATTEMPTS} tries")
        except BaseException:
            await client.close()
            raise

    async def ping(self, addr: Addr) -> float:
        loop = asyncio.get_running_loop()
        client = await self.session()
        try:
            start = loop.time()
            reader, writer = await client.dial(addr, PORT_ECHO)
            nonce = os.urandom(8)
            writer.write(nonce)
            await writer.drain()
            echoed = await reader.readexactly(len(nonce))
            if echoed != nonce:
                raise DaemonError("ping", "echo returned different bytes")
            return loop.time() - start
        finally:
            await client.close()
