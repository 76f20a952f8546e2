"""Expose: local TCP services published on pilot ports (issue 8, item 5).

``pilotctl gateway expose 80 127.0.0.1:8080`` makes an ordinary web server
reachable as ``<this node>:80`` on the overlay -- and so as
``http://10.4.0.x/`` through any gateway that maps this node -- with no
custom program and no extra process to manage. It lives in the daemon
because the daemon is already the long-running process that owns the pilot
ports; the table is persisted next to the identity (``expose.json``,
atomic, 0600) and re-published on every start, so it survives daemon
restarts. Without an identity (ephemeral node) it is kept in memory only.

Each exposed port is an ordinary built-in service binding: inbound SYNs go
through the node's trust policy first (a private node admits only trusted
peers), exactly as for any other port. Every accepted stream is bridged to
a new TCP connection to the target:

* overlay -> TCP until the overlay side ends, then the TCP side is
  half-closed (``write_eof``) and the response keeps flowing;
* TCP -> overlay until the local service closes, then the stream is closed
  (FIN after the queued data) and the bridge ends;
* a target that refuses or does not answer within ``CONNECT_TIMEOUT``, or a
  reset on either side, resets the other side, so a gateway's client sees
  an RST instead of an empty, seemingly complete response.

Controlled over the IPC Expose extension (``pilotgw.overlay.ipc``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pilotgw.daemon.ipc_server import NodeError
from pilotgw.daemon.log import Log
from pilotgw.daemon.services import ServiceStream
from pilotgw.overlay import ipc
from pilotgw.overlay.address import SocketAddr

if TYPE_CHECKING:  # pragma: no cover
    from pilotgw.daemon.node import Node

log = Log("expose")

EXPOSE_FILE = "expose.json"
FILE_VERSION = 1
CONNECT_TIMEOUT = 10.0
CHUNK = 256 * 1024
_LINGER_RESET = struct.pack("ii", 1, 0)


class ExposeError(NodeError):
    """A refused expose request; the message is the IPC error text."""


def expose_path(identity_path: str) -> str | None:
    """``<identity dir>/expose.json``; ``None`` (memory only) without identity."""
    if not identity_path:
        return None
    return os.path.join(os.path.dirname(os.path.abspath(identity_path)), EXPOSE_FILE)


def parse_target(text: str) -> tuple[str, int]:
    """``host:port`` (``[v6]:port`` too) -> ``(host, port)``; :class:`ExposeError` otherwise."""
    host, sep, port = text.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ExposeError(f"expose: invalid target {text!r}: want host:port (port 1-65535)")
    return host, int(port)


@dataclass
class Exposed:
    """One published service and its counters."""

    port: int
    target: str
    connections: int = 0
    active_connections: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    errors: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "active_connections": self.active_connections,
            "bytes_in": self.bytes_in,
            "bytes_out": self.bytes_out,
            "connections": self.connections,
            "errors": self.errors,
            "port": self.port,
            "target": self.target,
        }


class _Binding:
    """What :meth:`Node.add_service` takes: a port and a handler."""

    def __init__(self, exposer: "Exposer", port: int) -> None:
        self.port = port
        self._exposer = exposer

    async def handle(self, stream: ServiceStream, _writer: ServiceStream, remote: SocketAddr) -> None:
        entry = self._exposer.entries.get(self.port)
        if entry is not None:
            await self._exposer.bridge(entry, stream, remote)


class Exposer:
    """The table of exposed ports, bound on the node and persisted."""

    def __init__(self, node: "Node", path: str | None) -> None:
        self.node = node
        self.path = path
        self.entries: dict[int, Exposed] = {}

    # -- persistence ------------------------------------------------------------

    def restore(self) -> None:
        """Publish what the file lists; a port that cannot be bound is logged and kept."""
        if self.path is None:
            return
        try:
            with open(self.path, "rb") as f:
                data = json.load(f)
            saved = [(int(e["port"]), str(e["target"])) for e in data["exposed"]]
        except FileNotFoundError:
            return
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("ignoring unreadable expose table", path=self.path, error=str(exc))
            return
        for port, target in saved:
            try:
                parse_target(target)
                self._bind(port)
            except NodeError as exc:
                log.warning("cannot re-expose", port=port, target=target, error=str(exc))
                continue
            self.entries[port] = Exposed(port, target)
            log.info("exposed", port=port, target=target)

    def _save(self) -> None:
        if self.path is None:
            return
        body = {"version": FILE_VERSION, "exposed": [{"port": e.port, "target": e.target} for e in self._sorted()]}
        tmp = f"{self.path}.tmp"
        os.makedirs(os.path.dirname(self.path), mode=0o700, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(body, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)

    # -- operations ---------------------------------------------------------------

    def _sorted(self) -> list[Exposed]:
        return [self.entries[p] for p in sorted(self.entries)]

    def _bind(self, port: int) -> None:
        if not 1 <= port <= 65535:
            raise ExposeError(f"expose: invalid port {port}: must be 1-65535")
        try:
            self.node.add_service(_Binding(self, port))
        except NodeError as exc:
            raise ExposeError(f"expose: {exc}") from None

    def add(self, port: int, target: str) -> dict[str, Any]:
        """Publish ``target`` on ``port``; re-exposing a port changes its target."""
        parse_target(target)
        entry = self.entries.get(port)
        if entry is None:
            self._bind(port)
            self.entries[port] = Exposed(port, target)
        else:
            entry.target = target
        try:
            self._save()
        except OSError as exc:
            log.warning("cannot save expose table", path=self.path, error=str(exc))
        log.info("exposed", port=port, target=target)
        return {"port": port, "target": target}

    def remove(self, port: int) -> dict[str, Any]:
        """Stop publishing ``port``; live bridges run to their end."""
        entry = self.entries.pop(port, None)
        if entry is None:
            raise ExposeError(f"expose: port {port} is not exposed")
        self.node.remove_service(port)
        try:
            self._save()
        except OSError as exc:
            log.warning("cannot save expose table", path=self.path, error=str(exc))
        log.info("unexposed", port=port)
        return {"port": port, "target": entry.target}

    def listing(self) -> dict[str, Any]:
        return {"exposed": [e.as_dict() for e in self._sorted()]}

    async def ipc(self, req: Any) -> ipc.Message:
        """The Expose extension's IPC handler (``Node.expose_handler``)."""
        if isinstance(req, ipc.ExposeAdd):
            value = self.add(req.port, req.target)
        elif isinstance(req, ipc.ExposeRemove):
            value = self.remove(req.port)
        else:
            value = self.listing()
        return ipc.JsonReply(ipc.EXPOSE_OK, value)

    # -- bridging -----------------------------------------------------------------

    async def bridge(self, entry: Exposed, stream: ServiceStream, remote: SocketAddr) -> None:
        host, port = parse_target(entry.target)
        entry.connections += 1
        entry.active_connections += 1
        try:
            try:
                reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port, limit=CHUNK), CONNECT_TIMEOUT)
            except (OSError, asyncio.TimeoutError) as exc:
                entry.errors += 1
                log.info("exposed target unreachable", port=entry.port, target=entry.target, remote=str(remote),
                         error=repr(exc))
                self._abort(stream)
                return
            await self._pump_both(entry, stream, reader, writer)
        finally:
            entry.active_connections -= 1

    async def _pump_both(self, entry: Exposed, stream: ServiceStream, reader: asyncio.StreamReader,
                         writer: asyncio.StreamWriter) -> None:
        inbound = asyncio.ensure_future(self._to_tcp(entry, stream, writer))
        try:
            while True:
                data = await reader.read(CHUNK)
                if not data:
                    break
                stream.write(data)
                entry.bytes_out += len(data)
                await stream.drain()
            # The local service is done: FIN after what is queued; the peer's
            # remaining data, if any, has nowhere to go.
            stream.close()
            writer.close()
        except (ConnectionError, OSError) as exc:
            entry.errors += 1
            log.debug("expose bridge reset", port=entry.port, error=repr(exc))
            _reset_tcp(writer)
            self._abort(stream)
        finally:
            inbound.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await inbound

    async def _to_tcp(self, entry: Exposed, stream: ServiceStream, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                data = await stream.read(CHUNK)
                if not data:
                    break
                writer.write(data)
                entry.bytes_in += len(data)
                await writer.drain()
            if writer.can_write_eof() and not writer.is_closing():
                writer.write_eof()
        except (ConnectionError, OSError) as exc:
            entry.errors += 1
            log.debug("expose bridge: local side failed", port=entry.port, error=repr(exc))
            _reset_tcp(writer)
            self._abort(stream)

    def _abort(self, stream: ServiceStream) -> None:
        """Reset the overlay stream (RST), unless it is already closed."""
        if not stream.conn.local_closed and self.node.conns is not None:
            self.node.conns.abort(stream.conn)


def _reset_tcp(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None and not writer.transport.is_closing():
        with contextlib.suppress(OSError, ValueError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
    writer.transport.abort()
