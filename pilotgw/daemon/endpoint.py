"""The node's one UDP socket (tunnel-and-transport.md §1.1): every peer, every
virtual port, and the beacon share it.

The protocol class does nothing but hand each datagram to the tunnel layer:
classification, crypto and delivery live in :mod:`pilotgw.daemon.peers`.
Buffers are large (a sender bursts up to its whole window at once, and our
64 KB segments fill the default 208 KB buffer in three datagrams); as root we
use ``SO_RCVBUFFORCE``/``SO_SNDBUFFORCE`` to pass ``rmem_max``.

Sending does not go through the event loop's transport. A datagram transport
swallows ``sendto`` errors (it passes them to ``error_received``) and buffers
without bound on EAGAIN, so the stream layer could not tell that a packet
never left: Linux even reports a full qdisc (a rate-limited uplink) as
success unless ``IP_RECVERR`` is set, and only counts it in ``netstat -su``
"send buffer errors". Here ``IP_RECVERR`` is set and :meth:`UdpEndpoint.sendto`
sends on the socket directly and returns False when the local stack refused
the datagram (ENOBUFS, EAGAIN), which the connection table feeds to the
stream's congestion response (:meth:`Connection.send_failed`).

``IP_RECVERR`` also queues every ICMP error on the socket's error queue, and
the socket polls as in error for as long as that queue is not empty. When a
``sendto`` (rather than the loop's ``recvmsg``) collected the pending error,
nothing would empty it: the stock loop then spins and uvloop crashes
(SIGSEGV) on the next poll. So the queue is drained wherever a pending error
surfaces: in :meth:`UdpEndpoint.sendto` and in
:meth:`TunnelProtocol.error_received`.
"""

from __future__ import annotations

import asyncio
import errno
import os
import socket
from typing import Callable

from pilotgw.daemon.log import Log

log = Log("endpoint")

SOCKET_BUFFER = 8 * 1024 * 1024
_SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)
_SO_SNDBUFFORCE = getattr(socket, "SO_SNDBUFFORCE", 32)
_IP_RECVERR = getattr(socket, "IP_RECVERR", 11)
_IPV6_RECVERR = getattr(socket, "IPV6_RECVERR", 25)
#: The local stack refused the datagram for lack of room: congestion here.
_CONGESTED = frozenset((errno.ENOBUFS, errno.EAGAIN, errno.EWOULDBLOCK))
_MSG_ERRQUEUE = getattr(socket, "MSG_ERRQUEUE", 0x2000)
_DRAIN_MAX = 256

Addr = tuple[str, int]


class TunnelProtocol(asyncio.DatagramProtocol):
    """Feeds received datagrams to ``on_datagram(data, addr)``."""

    def __init__(self, on_datagram: Callable[[bytes, Addr], None], errors: socket.socket | None = None) -> None:
        self.on_datagram = on_datagram
        self.transport: asyncio.DatagramTransport | None = None
        #: The socket whose error queue :meth:`error_received` empties.
        self.errors = errors

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: Addr) -> None:  # hot path
        self.on_datagram(data, addr)

    def error_received(self, exc: Exception) -> None:
        # ICMP errors (a peer's port closed) surface here on Linux; the
        # stream and key-exchange timers deal with the consequence.
        log.debug("udp error", error=str(exc))
        if self.errors is not None:
            drain_error_queue(self.errors)


def drain_error_queue(sock: socket.socket) -> None:
    """Discard the ICMP errors ``IP_RECVERR`` queued (see the module doc)."""
    for _ in range(_DRAIN_MAX):
        try:
            sock.recvmsg(1, 512, _MSG_ERRQUEUE)
        except OSError:  # EAGAIN: empty
            return


def _set_buffer(sock: socket.socket, force: int, plain: int, size: int) -> None:
    try:
        sock.setsockopt(socket.SOL_SOCKET, force, size)
    except OSError:
        try:
            sock.setsockopt(socket.SOL_SOCKET, plain, size)
        except OSError:
            pass


class UdpEndpoint:
    """The tunnel socket as the daemon uses it: the loop's transport receives,
    :meth:`sendto` sends on a duplicate of the socket's descriptor (the loop
    may take over the original) and reports local refusals."""

    def __init__(self, transport: asyncio.DatagramTransport, sock: socket.socket) -> None:
        self.transport = transport
        self._sock = sock
        #: Datagrams the local stack refused (ENOBUFS/EAGAIN).
        self.refused = 0

    def sendto(self, data: bytes | bytearray, addr: Addr) -> bool:
        """Send one datagram now; False when the local stack refused it
        (full socket buffer or qdisc). Other errors -- a pending ICMP error
        reported on this call, an unreachable network -- are logged; the
        datagram is retried once when the error was a stale pending one."""
        try:
            self._sock.sendto(data, addr)
            return True
        except OSError as exc:
            if exc.errno in _CONGESTED:
                self.refused += 1
                return False
            drain_error_queue(self._sock)
            if exc.errno in (errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EHOSTDOWN):
                # An ICMP error for an earlier datagram (IP_RECVERR) is
                # reported by the next call, which then sent nothing.
                try:
                    self._sock.sendto(data, addr)
                    return True
                except OSError as again:
                    exc = again
                    drain_error_queue(self._sock)
                    if exc.errno in _CONGESTED:
                        self.refused += 1
                        return False
            log.debug("sendto failed", addr=f"{addr[0]}:{addr[1]}", error=str(exc))
            return True  # not congestion: timers deal with a path that does not work

    def get_extra_info(self, name: str, default: object = None) -> object:
        return self.transport.get_extra_info(name, default)

    def close(self) -> None:
        self.transport.close()
        self._sock.close()


def open_socket(host: str, port: int) -> socket.socket:
    """Bind the tunnel socket (``host`` "" = all IPv4 interfaces)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        _set_buffer(sock, _SO_RCVBUFFORCE, socket.SO_RCVBUF, SOCKET_BUFFER)
        _set_buffer(sock, _SO_SNDBUFFORCE, socket.SO_SNDBUF, SOCKET_BUFFER)
        try:  # report local drops (full qdisc) as ENOBUFS instead of success
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, _IPV6_RECVERR, 1)
            else:
                sock.setsockopt(socket.IPPROTO_IP, _IP_RECVERR, 1)
        except OSError:
            pass
        sock.setblocking(False)
        sock.bind((host or ("::" if family == socket.AF_INET6 else "0.0.0.0"), port))
    except OSError:
        sock.close()
        raise
    return sock


async def open_endpoint(
    host: str, port: int, on_datagram: Callable[[bytes, Addr], None]
) -> tuple[UdpEndpoint, TunnelProtocol]:
    loop = asyncio.get_running_loop()
    sock = open_socket(host, port)
    try:
        sender = socket.socket(sock.family, sock.type, fileno=os.dup(sock.fileno()))
        sender.setblocking(False)
    except OSError:
        sock.close()
        raise
    try:
        transport, protocol = await loop.create_datagram_endpoint(lambda: TunnelProtocol(on_datagram, sender), sock=sock)
    except BaseException:
        sender.close()
        sock.close()
        raise
    return UdpEndpoint(transport, sender), protocol  # type: ignore[arg-type]
