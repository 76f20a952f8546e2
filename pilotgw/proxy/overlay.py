"""What the proxy needs from the overlay, as a :class:`typing.Protocol`.

The gateway does not care how the overlay is reached (the daemon's IPC
client in production, a fake bridging to local servers in tests); it needs
exactly these operations. Every failure is an exception: the proxy turns
any exception from ``dial`` into a TCP reset for the local client, from
``ping`` into an unanswered echo, and from a datagram port into a dropped
datagram.
"""

from __future__ import annotations

import asyncio
from typing import NamedTuple, Protocol

from pilotgw.overlay.address import Addr


class Datagram(NamedTuple):
    """One overlay datagram received on a bound port: who sent it, and what."""

    addr: Addr
    port: int
    data: bytes


class DatagramPort(Protocol):
    """An overlay port of our own, for one local UDP flow.

    Replies from the agent arrive at this port, which is how they find their
    way back to the local client that sent the request.
    """

    @property
    def port(self) -> int:
        """The local overlay port number datagrams are sent from."""
        ...

    async def send(self, addr: Addr, port: int, data: bytes) -> None:
        """Send one datagram from this port to ``addr:port``."""
        ...

    async def recv(self) -> Datagram:
        """The next datagram addressed to this port; raises :class:`EOFError` once closed."""
        ...

    def close(self) -> None:
        """Release the port; a pending :meth:`recv` raises :class:`EOFError`."""
        ...


class Overlay(Protocol):
    """The overlay operations the gateway uses."""

    async def dial(self, addr: Addr, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """Open a stream to ``addr:port``.

        The writer's ``write_eof()`` half-closes the stream when
        ``can_write_eof()`` is true; ``transport.abort()`` resets it. Raises
        on refusal, unreachable agent or timeout.
        """
        ...

    async def bind_datagrams(self) -> DatagramPort:
        """A fresh overlay port for sending and receiving datagrams."""
        ...

    async def ping(self, addr: Addr) -> float:
        """Round-trip time to ``addr`` in seconds; raises if the agent does not answer.

        The caller bounds the wait with its own timeout.
        """
        ...
