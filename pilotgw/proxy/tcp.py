"""TCP bridging: one listener for the whole subnet, one overlay stream per connection.

nftables redirects TCP for mapped IPs to :class:`TcpProxy`'s listener (see
:mod:`pilotgw.tun`); the original destination (mapped IP, port) comes from
``SO_ORIGINAL_DST`` and the connection is bridged to an overlay stream to the
mapped agent's *same* port.

Bridging rules (C-8):

* Half-close both ways: EOF from the client becomes ``write_eof()`` on the
  overlay stream and vice versa, and the other direction keeps flowing
  until it ends too. An overlay writer that cannot half-close is left open,
  and the connection then lingers at most ``linger`` seconds of silence.
* Backpressure both ways: each direction reads at most one chunk, writes
  it and awaits ``drain()`` before reading again, and the readers stop
  reading from their sockets when their (bounded) buffer fills.
* Errors become resets: a failed dial, a reset or error on either side
  resets the other (SO_LINGER 0 then abort, so the client sees RST at once,
  not a FIN that looks like a complete response).
* Idle connections are reset after ``idle_timeout`` seconds without data;
  unmapping a mapped IP resets its live connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
import struct
from collections.abc import Callable
from typing import Any

from pilotgw.proxy.mapping import Mapping
from pilotgw.proxy.metrics import MappingMetrics
from pilotgw.proxy.overlay import Overlay

log = logging.getLogger(__name__)

SO_ORIGINAL_DST = 80  # linux/netfilter_ipv4.h
CHUNK = 256 * 1024
DEFAULT_DIAL_TIMEOUT = 30.0
DEFAULT_IDLE_TIMEOUT = 300.0
DEFAULT_LINGER = 30.0
_LINGER_RESET = struct.pack("ii", 1, 0)


def original_destination(sock: Any) -> tuple[ipaddress.IPv4Address, int]:
    """Where the client was connecting before nftables redirected it."""
    raw = sock.getsockopt(socket.SOL_IP, SO_ORIGINAL_DST, 16)
    port, packed = struct.unpack_from("!2xH4s", raw)
    return ipaddress.IPv4Address(packed), port


def reset(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP RST (if it is a TCP socket) and drop unsent data.

    A transport already closing (the peer reset it first) is just aborted: its
    descriptor may be gone, and uvloop then refuses socket options.
    """
    if not writer.transport.is_closing():
        sock = writer.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError, ValueError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
    writer.transport.abort()


class _Bridge:
    """One client connection and its overlay stream."""

    def __init__(
        self,
        proxy: "TcpProxy",
        mapping: Mapping,
        metrics: MappingMetrics,
        client_reader: asyncio.StreamReader,
        client_writer: asyncio.StreamWriter,
    ) -> None:
        self.proxy = proxy
        self.mapping = mapping
        self.metrics = metrics
        self.client_reader = client_reader
        self.client_writer = client_writer
        self.overlay_writer: asyncio.StreamWriter | None = None
        self.loop = asyncio.get_running_loop()
        self.last_activity = self.loop.time()
        self.idle_limit = proxy.idle_timeout
        self.task: asyncio.Task[None] | None = None
        self.closed_by: str | None = None
        self._watchdog: asyncio.TimerHandle | None = None

    async def run(self, port: int) -> None:
        overlay = self.proxy.overlay
        try:
            reader, writer = await asyncio.wait_for(
                overlay.dial(self.mapping.addr, port), self.proxy.dial_timeout
            )
        except Exception as exc:  # any overlay failure means: refuse this client
            log.info("dial %s:%d failed: %r", self.mapping.addr, port, exc)
            self.metrics.errors += 1
            reset(self.client_writer)
            return
        self.overlay_writer = writer
        self._watchdog = self.loop.call_later(self.idle_limit, self._check_idle)
        up = asyncio.ensure_future(self._pump(self.client_reader, writer, True))
        down = asyncio.ensure_future(self._pump(reader, self.client_writer, False))
        try:
            done, _ = await asyncio.wait((up, down), return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                task.result()  # re-raises the error that ended a direction
            self.client_writer.close()
            writer.close()
        except asyncio.CancelledError:
            self._reset_both()
            raise
        except Exception as exc:
            if self.closed_by is None:
                log.debug("connection to %s:%d failed: %r", self.mapping.addr, port, exc)
                self.metrics.errors += 1
            self._reset_both()
        finally:
            if self._watchdog is not None:
                self._watchdog.cancel()
            for task in (up, down):
                task.cancel()

    async def _pump(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter, upstream: bool) -> None:
        metrics = self.metrics
        while True:
            data = await src.read(CHUNK)
            if not data:
                break
            dst.write(data)
            self.last_activity = self.loop.time()
            if upstream:
                metrics.bytes_to_overlay += len(data)
            else:
                metrics.bytes_from_overlay += len(data)
            await dst.drain()
        if dst.can_write_eof():
            dst.write_eof()
        elif self.proxy.linger < self.idle_limit:
            self.idle_limit = self.proxy.linger
            if self._watchdog is not None:
                self._watchdog.cancel()
            self._check_idle()

    def _check_idle(self) -> None:
        idle = self.loop.time() - self.last_activity
        if idle >= self.idle_limit:
            self.close("idle")
        else:
            self._watchdog = self.loop.call_later(self.idle_limit - idle, self._check_idle)

    def _reset_both(self) -> None:
        reset(self.client_writer)
        if self.overlay_writer is not None:
            self.overlay_writer.transport.abort()

    def close(self, why: str) -> None:
        """End the connection now (unmap, idle timeout or shutdown): reset both sides."""
        self.closed_by = why
        if self.task is not None:
            self.task.cancel()
        self._reset_both()


class TcpProxy:
    """The single accepting socket for every mapped IP and port."""

    def __init__(
        self,
        overlay: Overlay,
        resolve: Callable[[ipaddress.IPv4Address], Mapping | None],
        metrics_for: Callable[[Mapping], MappingMetrics],
        ports: frozenset[int] | None,
        *,
        dial_timeout: float = DEFAULT_DIAL_TIMEOUT,
        idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
        linger: float = DEFAULT_LINGER,
    ) -> None:
        self.overlay = overlay
        self.resolve = resolve
        self.metrics_for = metrics_for
        self.ports = ports
        self.dial_timeout = dial_timeout
        self.idle_timeout = idle_timeout
        self.linger = linger
        self.sock = self._listen_socket()
        self._server: asyncio.AbstractServer | None = None
        self._bridges: dict[ipaddress.IPv4Address, set[_Bridge]] = {}

    @staticmethod
    def _listen_socket() -> socket.socket:
        # The wildcard address because redirected connections from other
        # hosts arrive on their interface's address; nftables resets anything
        # reaching this port that was not redirected from the subnet.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("0.0.0.0", 0))
        sock.listen(1024)
        sock.setblocking(False)
        return sock

    @property
    def port(self) -> int:
        """The listener's port, which the nftables redirect points at."""
        return int(self.sock.getsockname()[1])

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, sock=self.sock, limit=CHUNK)

    def connections(self, ip: ipaddress.IPv4Address) -> int:
        return len(self._bridges.get(ip, ()))

    def close_mapping(self, ip: ipaddress.IPv4Address) -> None:
        """Reset every live connection to ``ip`` (it was just unmapped)."""
        for bridge in list(self._bridges.get(ip, ())):
            bridge.close("unmapped")

    async def close(self) -> None:
        """Stop accepting and reset every live connection."""
        if self._server is not None:
            self._server.close()
            self._server = None
        for ip in list(self._bridges):
            self.close_mapping(ip)
        self.sock.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            ip, port = original_destination(writer.get_extra_info("socket"))
        except OSError:
            reset(writer)
            return
        mapping = self.resolve(ip)
        if mapping is None or (self.ports is not None and port not in self.ports):
            reset(writer)
            return
        metrics = self.metrics_for(mapping)
        bridge = _Bridge(self, mapping, metrics, reader, writer)
        bridge.task = asyncio.current_task()
        live = self._bridges.setdefault(ip, set())
        live.add(bridge)
        metrics.connections += 1
        metrics.active_connections += 1
        try:
            await bridge.run(port)
        except asyncio.CancelledError:
            if bridge.closed_by is None:
                raise
            # Closed on purpose (unmap, idle timeout, shutdown): both sides are reset.
        finally:
            metrics.active_connections -= 1
            live.discard(bridge)
            if not live and self._bridges.get(ip) is live:
                del self._bridges[ip]
