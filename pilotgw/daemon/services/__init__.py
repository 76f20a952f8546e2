"""Built-in services: a tiny interface between the node and the code behind a
well-known port.

A service is an object with a ``port`` and an async
``handle(reader, writer, remote)`` that the node calls for every accepted
connection, handing it asyncio-style reader/writer objects
(:class:`ServiceStream` plays both roles: ``await read(n)``, ``write(data)``,
``await drain()``, ``close()``). It may also take datagrams
(``on_datagram(src, dst_port, data)``) and dial out through
:meth:`pilotgw.daemon.node.Node.open_stream`. Echo (port 7) lives here; the
trust handshake (444), data exchange (1001) and event stream (1002) plug in
the same way, and a trust policy plugs into
:attr:`pilotgw.daemon.node.Node.inbound_check`, which the node calls for every
inbound SYN and datagram before any service or IPC client sees it.

The Control ping on port 0 is not a service: it is answered in the packet
path (:mod:`pilotgw.daemon.node`).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Optional, Protocol

from pilotgw.daemon.log import Log
from pilotgw.overlay.address import SocketAddr

if TYPE_CHECKING:  # pragma: no cover
    from pilotgw.daemon.connections import Conn, ConnTable

log = Log("services")

READ_CHUNK = 256 * 1024


class Service(Protocol):
    port: int

    async def handle(self, reader: "ServiceStream", writer: "ServiceStream", remote: SocketAddr) -> None: ...


class ServiceStream:
    """One connection as seen by a service (and by in-process dialers)."""

    def __init__(self, table: "ConnTable", conn: "Conn") -> None:
        self.table = table
        self.conn = conn
        self.remote = SocketAddr(conn.remote, conn.remote_port)
        self.local_port = conn.local_port
        self._readable = asyncio.Event()
        self._writable = asyncio.Event()
        self._writable.set()
        conn.owner = self
        conn.push_enabled = True

    # Owner callbacks (from the connection table)
    def on_data(self, conn: "Conn") -> None:
        self._readable.set()

    def on_writable(self, conn: "Conn") -> None:
        self._writable.set()

    def on_closed(self, conn: "Conn") -> None:
        self._readable.set()
        self._writable.set()

    # Reader side
    async def read(self, n: int = -1) -> bytes:
        """Up to ``n`` bytes (``-1``: what is there); ``b""`` at end of stream."""
        conn = self.conn
        limit = READ_CHUNK if n < 0 else n
        while True:
            data = conn.read(limit)
            if data:
                return data
            if conn.eof or conn.local_closed:
                return b""
            self._readable.clear()
            await self._readable.wait()

    async def readexactly(self, n: int) -> bytes:
        out = bytearray()
        while len(out) < n:
            chunk = await self.read(n - len(out))
            if not chunk:
                raise asyncio.IncompleteReadError(bytes(out), n)
            out += chunk
        return bytes(out)

    # Writer side
    def write(self, data: Any) -> None:
        conn = self.conn
        if conn.local_closed or conn.error is not None:
            raise ConnectionResetError(f"connection {conn.id} is closed")
        if self.table.send(conn, data):
            self._writable.clear()

    async def drain(self) -> None:
        while not self._writable.is_set():
            await self._writable.wait()
        if self.conn.error is not None and self.conn.error != "idle_timeout":
            raise ConnectionResetError(f"connection {self.conn.id}: {self.conn.error}")

    def close(self) -> None:
        if not self.conn.local_closed:
            self.table.close(self.conn)

    def is_closing(self) -> bool:
        return self.conn.local_closed

    async def wait_closed(self) -> None:
        return None


class ServiceListener:
    """Binds a service to its port: every accepted connection runs ``handle``."""

    writable = True

    def __init__(self, table: "ConnTable", service: Any, spawn: Callable[[Awaitable[None]], Any]) -> None:
        self.table = table
        self.service = service
        self.spawn = spawn

    def on_accept(self, conn: "Conn") -> None:
        stream = ServiceStream(self.table, conn)
        self.spawn(self._run(stream))

    async def _run(self, stream: ServiceStream) -> None:
        try:
            await self.service.handle(stream, stream, stream.remote)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("service failed", port=self.service.port, remote=str(stream.remote))
        finally:
            stream.close()


def make_listener(table: "ConnTable", service: Any, spawn: Callable[[Awaitable[None]], Any]) -> ServiceListener:
    return ServiceListener(table, service, spawn)


__all__ = ["Service", "ServiceStream", "ServiceListener", "make_listener"]
