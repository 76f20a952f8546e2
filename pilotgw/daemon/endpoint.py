"""The node's one UDP socket (tunnel-and-transport.md §1.1): every peer, every
virtual port, and the beacon share it.

The protocol class does nothing but hand each datagram to the tunnel layer:
classification, crypto and delivery live in :mod:`pilotgw.daemon.peers`.
Buffers are large (a sender bursts up to its whole window at once, and our
64 KB segments fill the default 208 KB buffer in three datagrams); as root we
use ``SO_RCVBUFFORCE``/``SO_SNDBUFFORCE`` to pass ``rmem_max``.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Callable

from pilotgw.daemon.log import Log

log = Log("endpoint")

SOCKET_BUFFER = 8 * 1024 * 1024
_SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)
_SO_SNDBUFFORCE = getattr(socket, "SO_SNDBUFFORCE", 32)

Addr = tuple[str, int]


class TunnelProtocol(asyncio.DatagramProtocol):
    """Feeds received datagrams to ``on_datagram(data, addr)``."""

    def __init__(self, on_datagram: Callable[[bytes, Addr], None]) -> None:
        self.on_datagram = on_datagram
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: Addr) -> None:  # hot path
        self.on_datagram(data, addr)

    def error_received(self, exc: Exception) -> None:
        # ICMP errors (a peer's port closed) surface here on Linux; the
        # stream and key-exchange timers deal with the consequence.
        log.debug("udp error", error=str(exc))


def _set_buffer(sock: socket.socket, force: int, plain: int, size: int) -> None:
    try:
        sock.setsockopt(socket.SOL_SOCKET, force, size)
    except OSError:
        try:
            sock.setsockopt(socket.SOL_SOCKET, plain, size)
        except OSError:
            pass


def open_socket(host: str, port: int) -> socket.socket:
    """Bind the tunnel socket (``host`` "" = all IPv4 interfaces)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        _set_buffer(sock, _SO_RCVBUFFORCE, socket.SO_RCVBUF, SOCKET_BUFFER)
        _set_buffer(sock, _SO_SNDBUFFORCE, socket.SO_SNDBUF, SOCKET_BUFFER)
        sock.setblocking(False)
        sock.bind((host or ("::" if family == socket.AF_INET6 else "0.0.0.0"), port))
    except OSError:
        sock.close()
        raise
    return sock


async def open_endpoint(
    host: str, port: int, on_datagram: Callable[[bytes, Addr], None]
) -> tuple[asyncio.DatagramTransport, TunnelProtocol]:
    loop = asyncio.get_running_loop()
    sock = open_socket(host, port)
    transport, protocol = await loop.create_datagram_endpoint(lambda: TunnelProtocol(on_datagram), sock=sock)
    return transport, protocol  # type: ignore[return-value]
