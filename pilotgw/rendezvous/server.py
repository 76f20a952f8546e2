"""The asyncio side of pilot-rendezvous: sockets, timers, persistence.

One process, one event loop (uvloop when available):

* :class:`RegistryProtocol` -- one per TCP (or TLS) connection. Bytes go
  through :class:`FrameSplitter`; each frame is decoded and handed to the
  sans-IO :class:`RegistryService`; replies are written in request order.
  An oversize length prefix, a body that is not a JSON object or a body that
  is not JSON closes the connection without a reply, as the reference does.
  A long poll (``poll_handshakes`` + ``wait``) parks the connection: later
  requests on it wait, so replies stay in order.
* :class:`BeaconProtocol` -- the UDP beacon, one ``sendto`` per reply.
* Upkeep tasks: a 1 s sweep closes idle connections (5 min without a
  request), peers that leave a frame half-sent for ``frame_timeout`` and
  peers that stop reading replies for ``write_timeout`` -- no client can hold
  the loop or a buffer; the persister saves the snapshot when the state
  version moved (batched, at most every ``flush_interval``, written in a
  worker thread so a 100k-node save never stalls requests); the reaper runs
  every 60 s.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any, Optional

from pilotgw.overlay.errors import DecodeError
from pilotgw.overlay.registry import FrameSplitter, decode_body, encode_frame
from pilotgw.rendezvous import snapshot
from pilotgw.rendezvous.beacon_service import BeaconService
from pilotgw.rendezvous.registry_service import Conn, LongPoll, RegistryService
from pilotgw.rendezvous.store import Store, StoreError

log = logging.getLogger("pilotgw.rendezvous")


@dataclass
class ServerConfig:
    registry_host: Optional[str] = None
    registry_port: int = 9000
    beacon_host: str = "0.0.0.0"
    beacon_port: int = 9001
    ssl_context: Optional[ssl.SSLContext] = None
    idle_timeout: float = 300.0
    frame_timeout: float = 30.0
    write_timeout: float = 30.0
    max_connections: int = 20000
    max_connections_per_ip: int = 512
    flush_interval: float = 0.05
    reap_interval: float = 60.0


def _ip(peer: Any) -> tuple[str, int]:
    ip, port = peer[0], peer[1]
    if ip.startswith("::ffff:") and "." in ip:
        ip = ip[7:]
    return ip, port


class RegistryProtocol(asyncio.Protocol):
    def __init__(self, rv: "Rendezvous") -> None:
        self.rv = rv
        self.splitter = FrameSplitter()
        self.transport: Optional[asyncio.Transport] = None
        self.conn: Optional[Conn] = None
        self.poll: Optional[tuple[int, asyncio.TimerHandle]] = None
        self.last_rx = time.monotonic()
        self.partial_since: Optional[float] = None
        self.paused_since: Optional[float] = None
        self.closed = False

    # -- connection lifecycle

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        ip, port = _ip(peer) if peer else ("?", 0)
        rv = self.rv
        if len(rv.connections) >= rv.config.max_connections or rv.per_ip[ip] >= rv.config.max_connections_per_ip:
            rv.service.metrics.events["connections_refused"] += 1
            self.closed = True
            transport.abort()
            return
        self.conn = Conn(ip, port)
        rv.connections.add(self)
        rv.per_ip[ip] += 1

    def connection_lost(self, exc: Optional[Exception]) -> None:
        if self.conn is None or self not in self.rv.connections:
            return
        self.closed = True
        self.rv.connections.discard(self)
        self.rv.per_ip[self.conn.ip] -= 1
        if self.rv.per_ip[self.conn.ip] <= 0:
            del self.rv.per_ip[self.conn.ip]
        self._cancel_poll()

    def abort(self, reason: str) -> None:
        if self.closed or self.transport is None:
            return
        self.closed = True
        self.rv.service.metrics.events["connections_dropped_" + reason] += 1
        log.debug("dropping registry connection from %s: %s", self.conn.ip if self.conn else "?", reason)
        self.transport.abort()

    # -- reading

    def data_received(self, data: bytes) -> None:
        if self.closed:
            return
        self.last_rx = time.monotonic()
        self.splitter.feed(data)
        self._process()

    def _process(self) -> None:
        service = self.rv.service
        consumed = False
        while self.poll is None and not self.closed:
            try:
                body = self.splitter.next_body()
                if body is None:
                    break
                msg = decode_body(body)
            except DecodeError as exc:
                service.metrics.errors["bad_frame_" + exc.code] += 1
                self.abort("bad_frame")
                return
            consumed = True
            result = service.handle(msg, self.conn, time.time())  # type: ignore[arg-type]
            if isinstance(result, LongPoll):
                self._park(result)
                return
            self._send(result)
            if service.closes_connection(msg):
                self.closed = True
                self.transport.close()  # type: ignore[union-attr]
                return
        if not self.splitter.pending:
            self.partial_since = None
        elif consumed or self.partial_since is None:
            self.partial_since = time.monotonic()

    def _send(self, reply: dict[str, Any]) -> None:
        try:
            frame = encode_frame(reply)
        except ValueError:
            frame = encode_frame({"type": "error", "error": "request failed", "code": "too_large"})
        self.transport.write(frame)  # type: ignore[union-attr]

    # -- long poll

    def _park(self, poll: LongPoll) -> None:
        loop = asyncio.get_running_loop()
        handle = loop.call_later(poll.timeout, self.finish_poll)
        self.poll = (poll.node_id, handle)
        self.rv.waiters.setdefault(poll.node_id, set()).add(self)
        self.transport.pause_reading()  # type: ignore[union-attr]

    def _cancel_poll(self) -> None:
        if self.poll is None:
            return
        node_id, handle = self.poll
        handle.cancel()
        waiting = self.rv.waiters.get(node_id)
        if waiting is not None:
            waiting.discard(self)
            if not waiting:
                del self.rv.waiters[node_id]
        self.poll = None

    def finish_poll(self) -> None:
        if self.poll is None or self.closed:
            return
        node_id = self.poll[0]
        self._cancel_poll()
        self._send(self.rv.service.drain_handshakes(node_id))
        self.last_rx = time.monotonic()
        if self.paused_since is None:
            self.transport.resume_reading()  # type: ignore[union-attr]
        self._process()

    # -- flow control: a client that does not read its replies stops being read

    def pause_writing(self) -> None:
        self.paused_since = time.monotonic()
        if self.poll is None:
            self.transport.pause_reading()  # type: ignore[union-attr]

    def resume_writing(self) -> None:
        self.paused_since = None
        if self.poll is None and not self.closed:
            self.transport.resume_reading()  # type: ignore[union-attr]


class BeaconProtocol(asyncio.DatagramProtocol):
    def __init__(self, beacon: BeaconService) -> None:
        self.beacon = beacon
        self.transport: Optional[asyncio.DatagramTransport] = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: Any) -> None:
        for out, dest in self.beacon.datagram(data, addr, time.monotonic()):
            self.transport.sendto(out, dest)  # type: ignore[union-attr]

    def error_received(self, exc: Exception) -> None:
        # ICMP unreachable from a vanished peer: nothing to do but count it.
        self.beacon.metrics.beacon["send_error"] += 1


class Rendezvous:
    """Registry + beacon + upkeep tasks over one loop. ``start`` loads the
    store first, so a corrupt snapshot stops startup before any port opens."""

    def __init__(self, service: RegistryService, beacon: BeaconService, store: Store, config: ServerConfig) -> None:
        self.service = service
        self.beacon = beacon
        self.store = store
        self.config = config
        self.connections: set[RegistryProtocol] = set()
        self.per_ip: Counter[str] = Counter()
        self.waiters: dict[int, set[RegistryProtocol]] = {}
        self.started = time.time()
        self.saves = 0
        self._tcp: Optional[asyncio.AbstractServer] = None
        self._udp: Optional[asyncio.DatagramTransport] = None
        self._tasks: list[asyncio.Task[None]] = []
        self._saved_version = 0

    def load(self) -> list[str]:
        """Load the snapshot into the (empty) service. Raises
        :class:`~pilotgw.rendezvous.snapshot.SnapshotError` or
        :class:`StoreError` when the store is unusable."""
        data = self.store.load()
        if data is None:
            return []
        warnings = snapshot.load(self.service, data, time.time())
        snapshot.collect(self.service, time.time())  # build every node's JSON now, not on the first save
        self._saved_version = self.service.version
        return warnings

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.service.notify = lambda node_id: loop.call_soon(self._wake, node_id)
        cfg = self.config
        self._tcp = await loop.create_server(
            lambda: RegistryProtocol(self),
            cfg.registry_host,
            cfg.registry_port,
            ssl=cfg.ssl_context,
            ssl_handshake_timeout=10.0 if cfg.ssl_context else None,
            backlog=1024,
            reuse_address=True,
        )
        family = socket.AF_INET6 if ":" in cfg.beacon_host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
            sock.bind((cfg.beacon_host, cfg.beacon_port))
        except OSError:
            sock.close()
            self._tcp.close()
            raise
        transport, _ = await loop.create_datagram_endpoint(lambda: BeaconProtocol(self.beacon), sock=sock)
        self._udp = transport
        self._tasks = [
            loop.create_task(self._sweep_loop()),
            loop.create_task(self._persist_loop()),
            loop.create_task(self._reap_loop()),
        ]

    @property
    def registry_address(self) -> tuple[str, int]:
        assert self._tcp is not None
        return self._tcp.sockets[0].getsockname()[:2]

    @property
    def beacon_address(self) -> tuple[str, int]:
        assert self._udp is not None
        return self._udp.get_extra_info("sockname")[:2]

    def _wake(self, node_id: int) -> None:
        for proto in list(self.waiters.get(node_id, ())):
            proto.finish_poll()

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._tcp is not None:
            self._tcp.close()
        for proto in list(self.connections):
            if proto.transport is not None:
                proto.transport.abort()
        if self._udp is not None:
            self._udp.close()
        if self.service.version != self._saved_version:
            self.flush()

    def flush(self) -> None:
        """Save now, synchronously (shutdown path)."""
        version = self.service.version
        self.store.save(snapshot.dump(self.service, time.time()))
        self._saved_version = version
        self.saves += 1

    async def _sweep_loop(self) -> None:
        cfg = self.config
        while True:
            await asyncio.sleep(1.0)
            now = time.monotonic()
            for proto in list(self.connections):
                if proto.paused_since is not None and now - proto.paused_since > cfg.write_timeout:
                    proto.abort("write_timeout")
                elif proto.partial_since is not None and now - proto.partial_since > cfg.frame_timeout:
                    proto.abort("frame_timeout")
                elif proto.poll is None and now - proto.last_rx > cfg.idle_timeout:
                    proto.abort("idle")

    async def _persist_loop(self) -> None:
        loop = asyncio.get_running_loop()
        interval = self.config.flush_interval
        while True:
            await asyncio.sleep(interval)
            version = self.service.version
            if version == self._saved_version:
                continue
            started = time.monotonic()
            pieces = snapshot.collect(self.service, time.time())
            try:
                await loop.run_in_executor(None, lambda: self.store.save(pieces.encode()))
            except StoreError as exc:
                log.error("%s; will retry", exc)
                continue
            self._saved_version = version
            self.saves += 1
            # Big registries save less often: never spend more than ~1/3 of the time saving.
            interval = max(self.config.flush_interval, min(2.0, 2 * (time.monotonic() - started)))

    async def _reap_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.reap_interval)
            reaped = self.service.reap(time.time())
            self.beacon.expire(time.monotonic())
            if reaped:
                log.info("reaped %d stale nodes", reaped)
