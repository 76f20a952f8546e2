"""The node: composition of every daemon part, in the start order of
trust-and-ipc.md §A3.3 as our brief fixes it -- identity, UDP socket, STUN
(from the tunnel socket itself, T-D15), registration, services, IPC socket --
and the reverse on SIGTERM/SIGINT: FIN every connection, deregister, remove
the socket.

The packet path ends here: :meth:`Node.on_packet` dispatches authenticated
packets by protocol (stream -> connection table, datagram -> services and
every IPC client, Control -> pong in place), and :meth:`Node.transmit` sends
what the connection table emits through the tunnel.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import time
from typing import Any, Awaitable, Callable, Optional

from pilotgw.daemon import ipc_server as ipcs
from pilotgw.daemon.config import Config, parse_hostport
from pilotgw.daemon.connections import Conn, ConnTable, StreamDialError
from pilotgw.daemon.endpoint import open_endpoint
from pilotgw.daemon.handshake_poll import poll_loop
from pilotgw.daemon.ipc_server import IpcServer, NodeError
from pilotgw.daemon.log import Log
from pilotgw.daemon.peers import Tunnel
from pilotgw.daemon.registry_client import RegistryClient, RegistryError
from pilotgw.daemon.services import ServiceStream, make_listener
from pilotgw.daemon.services.builtins import install as install_builtins
from pilotgw.daemon.services.echo import EchoService
from pilotgw.overlay import beacon as bmsg
from pilotgw.overlay import datagram as dgram
from pilotgw.overlay import identity as identmod
from pilotgw.overlay import ipc
from pilotgw.overlay import packet as pkt
from pilotgw.overlay import registry as reg
from pilotgw.overlay.address import BROADCAST_NODE, Addr, SocketAddr, format_addr
from pilotgw.overlay.errors import DecodeError
from pilotgw.overlay.stream.options import StreamOptions
from pilotgw.overlay.stream.states import State, StreamStateError

log = Log("node")

SWEEP_INTERVAL = 5.0
REREGISTER_AFTER = 3
#: STUN from the tunnel socket this often once the beacon answers: a NAT that
#: rebooted or re-mapped us is noticed within this, and we register again.
ENDPOINT_REFRESH = 10.0
#: Backoff between STUN attempts while the beacon does not answer.
STUN_RETRY = (1.0, 2.0, 4.0, 8.0)
_LIVE = (State.ESTABLISHED, State.SYN_SENT)

_DIAL_ERRORS = {
    "refused": "connection refused",
    "dial_timeout": "dial timeout",
    "reset": "connection refused",
}


class StartError(Exception):
    """The daemon cannot start; the message says why."""


class Node:
    """One running node."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.loop = asyncio.get_event_loop()
        self.node_id = 0
        self.address = Addr(0, 0)
        self.hostname = cfg.hostname
        self.public = cfg.public
        self.owner = cfg.owner
        self.identity: Optional[identmod.Identity] = None
        self.registry: Optional[RegistryClient] = None
        self.tunnel: Optional[Tunnel] = None
        self.conns: Optional[ConnTable] = None
        self.ipc: Optional[IpcServer] = None
        self.services: dict[int, Any] = {}
        #: Trust policy hook (next issue): ``check(src_node, port, kind)`` for
        #: every inbound SYN (kind "stream") and datagram (kind "datagram").
        self.inbound_check: Optional[Callable[[int, int, str], bool]] = None
        # Set by the trust service: trusted peers skip the SYN rate buckets.
        self.is_trusted: Optional[Callable[[int], bool]] = None
        #: Handshake IPC commands (next issue): ``await handler(request)`` -> reply.
        self.handshake_handler: Optional[Callable[[Any], Awaitable[ipc.Message]]] = None
        #: Relayed-handshake consumer (next issue): called with each
        #: ``poll_handshakes_ok`` reply; the poller runs only when set.
        self.handshake_consumer: Optional[Callable[[dict], Awaitable[None]]] = None
        #: Expose extension (``pilotgw.daemon.services.expose``): ``await handler(request)`` -> reply.
        self.expose_handler: Optional[Callable[[Any], Awaitable[ipc.Message]]] = None
        self.webhooks: Any = None
        self.started_at = time.monotonic()
        self.deregistered = False
        self.listen_addr = ""  # the endpoint we believe others reach us at
        self._registered_addr = ""  # the endpoint the registry has (our last registration)
        self._local: tuple[str, int] = ("", 0)  # the tunnel socket's own address
        self._endpoint_task: Optional[asyncio.Task] = None
        #: The trust service's handshake state (set by the built-in services):
        #: re-registration re-reports its trusted peers (R-D17).
        self.handshakes: Any = None
        self.tags: tuple[str, ...] = ()
        self.task_exec: Optional[bool] = None
        self._tasks: set[asyncio.Task] = set()
        self._stopping = asyncio.Event()
        self._poller: Optional[RegistryClient] = None

    # ------------------------------------------------------------------ start

    async def start(self) -> None:
        cfg = self.cfg
        for note in cfg.notes:
            log.info(note)
        if os.path.exists(cfg.socket) and await ipcs.answers(cfg.socket):
            # D-15: never take over a running daemon's socket (checked again at bind).
            raise StartError(f"socket {cfg.socket}: daemon already running")
        # 1. identity
        if cfg.identity:
            try:
                self.identity, created = identmod.load_or_create(cfg.identity)
            except DecodeError as exc:
                raise StartError(f"identity {cfg.identity}: {exc}") from None
            except OSError as exc:
                raise StartError(f"identity {cfg.identity}: {exc.strerror or exc}") from None
            if created:
                log.info("identity created", path=cfg.identity)
        else:
            self.identity = identmod.generate()
            log.info("ephemeral identity (no -identity): a new node ID on every start")
        ident = self.identity
        # 2. UDP socket
        reg_host, reg_port = parse_hostport(cfg.registry, what="registry")
        beacon = None
        if cfg.beacon:
            bh, bp = parse_hostport(cfg.beacon, what="beacon")
            beacon = (_resolve_ip(bh), bp)
        self.registry = RegistryClient(
            reg_host, reg_port, tls=cfg.registry_tls, fingerprint=cfg.registry_fingerprint, on_connect=self._on_registry_reconnect
        )
        self.tunnel = Tunnel(identity=ident, registry=self.registry, beacon=beacon, on_packet=self.on_packet,
                             allow_plaintext=cfg.allow_plaintext, encrypt=cfg.encrypt,
                             on_observed=None if cfg.endpoint else self._on_observed)
        lhost, lport = parse_hostport(cfg.listen, what="listen")
        try:
            transport, _ = await open_endpoint(lhost, lport, self.tunnel.datagram_received)
        except OSError as exc:
            raise StartError(f"listen {cfg.listen}: {exc.strerror or exc}") from None
        self.tunnel.transport = transport
        sockname = transport.get_extra_info("sockname")
        local_port = sockname[1]
        self._local = (sockname[0], local_port)
        # 3. STUN from the tunnel socket itself (T-D15); one short try here,
        # then :meth:`_stun_loop` keeps at it in the background (R-D14).
        if cfg.endpoint:
            self.listen_addr = cfg.endpoint
        else:
            self.listen_addr = self._endpoint_for(await self.tunnel.stun())
        # 4. registration
        try:
            await self.registry.connect()
            await self._register(first=True)
        except RegistryError as exc:
            raise StartError(f"registry {cfg.registry}: {exc}") from None
        # 5. webhooks, connection table and services
        self._start_webhooks()
        opts = StreamOptions(keepalive=min(cfg.keepalive_s, 30.0), idle_timeout=cfg.idle_timeout_s,
                             time_wait=cfg.time_wait_s, recv_buffer=4 * 1024 * 1024)
        large = None
        if cfg.segment_size_max > 4096:
            large = StreamOptions(keepalive=opts.keepalive, idle_timeout=opts.idle_timeout, time_wait=opts.time_wait,
                                  mss=cfg.segment_size_max, recv_buffer=16 * 1024 * 1024,
                                  send_buffer=8 * 1024 * 1024, initial_window=16)
        self.conns = ConnTable(self.loop, self.address, self.transmit, options=opts, large_options=large,
                               syn_rate=cfg.syn_rate, max_per_port=cfg.conns_per_port, max_total=cfg.conns_total,
                               inbound_check=self._inbound_check,
                               is_trusted=lambda src: self.is_trusted is not None and self.is_trusted(src),
                               on_dial_retry=self.tunnel.suspect)
        if not cfg.no_echo:
            self.add_service(EchoService())
        install_builtins(self)  # trust policy, handshake, data exchange, event stream
        # 6. IPC
        self.started_at = time.monotonic()  # D-16: before IPC can answer Info
        self.ipc = IpcServer(self, cfg.socket)
        try:
            await self.ipc.start()
        except (NodeError, OSError) as exc:
            raise StartError(f"socket {cfg.socket}: {exc}") from None
        self._spawn(self._heartbeat_loop())
        self._spawn(self._sweep_loop())
        if beacon is not None and not cfg.endpoint:
            self._spawn(self._stun_loop())
        if self.handshake_consumer is not None:
            self._spawn(self._poll_loop())
        log.info("daemon started", node_id=self.node_id, address=str(self.address), socket=cfg.socket,
                 tunnel=f"{sockname[0]}:{local_port}", registered_endpoint=self.listen_addr)

    def _start_webhooks(self) -> None:
        try:
            from pilotgw.daemon.webhooks import Webhooks
        except ImportError:  # pragma: no cover
            return
        self.webhooks = Webhooks(self.cfg.webhook, node_id=lambda: self.node_id)
        self.webhooks.emit("node.registered", {"address": str(self.address), "node_id": self.node_id})

    def add_service(self, service: Any) -> None:
        """Bind a built-in service to its port (see :mod:`pilotgw.daemon.services`)."""
        assert self.conns is not None
        if not self.conns.listen(service.port, make_listener(self.conns, service, self._spawn)):
            raise NodeError(f"port {service.port} already bound")
        self.services[service.port] = service

    def remove_service(self, port: int) -> None:
        """Unbind a built-in service (expose's unexpose); live connections continue."""
        service = self.services.pop(port, None)
        if service is not None and self.conns is not None:
            listener = self.conns.listeners.get(port)
            if getattr(listener, "service", None) is service:
                self.conns.unlisten(port)

    def _spawn(self, coro: Awaitable[Any]) -> asyncio.Task:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            log.error("background task failed", error=repr(exc))

    # ------------------------------------------------------------------ registry

    async def _register(self, first: bool = False) -> None:
        """Register (again) with our current endpoint and restore what the
        registry may have lost: visibility, hostname, tags, task_exec and,
        after the first start, the trust pairs (R-D17)."""
        assert self.registry is not None and self.identity is not None and self.tunnel is not None
        endpoint = self.listen_addr
        reply = await self.registry.request(
            reg.register(self.identity.public_key, endpoint, self.owner)
        )
        node_id = reg.id_field(reply, "node_id")
        if not node_id:
            raise RegistryError("register: no node_id in reply", "protocol")
        if self.node_id and node_id != self.node_id:
            log.warning("registry assigned a new node ID", old=self.node_id, new=node_id)
        self.node_id = node_id
        self.address = Addr(0, node_id)
        self.tunnel.set_node_id(node_id)
        if self.conns is not None:
            self.conns.set_local(self.address)
        self.tunnel.send_beacon(bmsg.Discover(node_id))
        sign = self.identity.sign
        if self.public:
            await self.registry.request(reg.set_visibility(node_id, True, sign))
        if self.hostname:
            try:
                await self.registry.request(reg.set_hostname(node_id, self.hostname, sign))
            except RegistryError as exc:
                log.warning("hostname not set", hostname=self.hostname, error=str(exc))
        if self.tags:
            await self.registry.request(reg.set_tags(node_id, self.tags, sign))
        if self.task_exec is not None:
            await self.registry.request(reg.set_task_exec(node_id, self.task_exec, sign))
        if not first and self.handshakes is not None:
            self._spawn(self.handshakes.resync())  # retries in the background
        self._registered_addr = endpoint
        log.info("registered", node_id=node_id, address=str(self.address), endpoint=endpoint)

    async def _on_registry_reconnect(self) -> None:
        """The registry connection came back (rendezvous restarted?): register again."""
        if self.deregistered or self._stopping.is_set():
            return
        try:
            await self._register()
        except RegistryError as exc:
            log.warning("re-registration failed", error=str(exc))

    # ------------------------------------------------------------------ endpoint (R-D14)

    def _endpoint_for(self, mapped: Optional[tuple[str, int]]) -> str:
        """The endpoint to register for a STUN answer (None: no answer): the
        beacon's view of the tunnel socket; if the beacon saw us on loopback
        (or did not answer), our own address, with the beacon's port."""
        if mapped is not None and not _is_local(mapped[0]):
            return _hostport(mapped)
        host, port = self._local
        if host in ("0.0.0.0", "::", ""):
            host = "127.0.0.1"
        return _hostport((host, mapped[1] if mapped else port))

    async def _stun_loop(self) -> None:
        """STUN from the tunnel socket for as long as we run: with backoff
        while the beacon does not answer, then every ENDPOINT_REFRESH. The
        answers arrive at :meth:`_on_observed` (as do those to the
        heartbeat's Discover)."""
        assert self.tunnel is not None
        misses = 0
        while True:
            if misses:
                await asyncio.sleep(STUN_RETRY[min(misses, len(STUN_RETRY)) - 1])
            else:
                await asyncio.sleep(ENDPOINT_REFRESH)
            if self.deregistered:
                continue
            misses = 0 if await self.tunnel.stun() is not None else misses + 1

    def _on_observed(self, mapped: tuple[str, int]) -> None:
        """The beacon answered a Discover: if it sees us at another endpoint
        than the registry has (the first STUN failed, or a NAT re-mapped us),
        register again with it."""
        if not self._registered_addr:
            return  # not registered yet: start() registers what it found
        self.listen_addr = self._endpoint_for(mapped)
        if (self.listen_addr != self._registered_addr and not self.deregistered and not self._stopping.is_set()
                and (self._endpoint_task is None or self._endpoint_task.done())):
            self._endpoint_task = self._spawn(self._follow_endpoint())

    async def _follow_endpoint(self) -> None:
        assert self.tunnel is not None
        while self.listen_addr != self._registered_addr and not self.deregistered:
            log.info("public endpoint changed, registering again", old=self._registered_addr, new=self.listen_addr)
            try:
                await self._register()
            except RegistryError as exc:
                log.warning("re-registration failed", error=str(exc))
                return  # the next STUN answer tries again
        # Relayed peers may now reach us directly (a NAT that rebooted into
        # a friendlier kind): offer them the direct path at once.
        self.tunnel.retry_direct()

    async def _heartbeat_loop(self) -> None:
        assert self.registry is not None and self.identity is not None and self.tunnel is not None
        failures = 0
        while True:
            await asyncio.sleep(self.cfg.keepalive_s)
            if self.deregistered:
                continue
            try:
                await self.registry.request(reg.heartbeat(self.node_id, self.identity.sign))
            except RegistryError as exc:
                failures += 1
                log.warning("heartbeat failed", failures=failures, error=str(exc))
                if failures >= REREGISTER_AFTER:
                    failures = 0
                    try:
                        await self._register()
                    except RegistryError as exc2:
                        log.warning("re-registration failed", error=str(exc2))
                continue
            failures = 0
            self.tunnel.send_beacon(bmsg.Discover(self.node_id))

    async def _poll_loop(self) -> None:
        """Relayed handshakes via the long-poll extension (second connection)."""
        assert self.registry is not None and self.identity is not None
        ident = self.identity
        poller = self._poller = RegistryClient(self.registry.host, self.registry.port, tls=self.cfg.registry_tls,
                                               fingerprint=self.cfg.registry_fingerprint, request_timeout=40.0)
        await poll_loop(
            lambda wait: poller.request(reg.poll_handshakes(self.node_id, ident.sign, wait=wait)),
            lambda: None if self.deregistered else self.handshake_consumer,
            idle_interval=self.cfg.keepalive_s,
        )

    async def _sweep_loop(self) -> None:
        assert self.tunnel is not None and self.conns is not None
        while True:
            await asyncio.sleep(SWEEP_INTERVAL)
            now = self.loop.time()
            self.tunnel.sweep(now)
            self.conns.reap_syn_buckets(now)

    # ------------------------------------------------------------------ packet path

    def transmit(self, p: pkt.Packet) -> bool:
        """Send one packet we produced (hot path); False when the local
        network stack refused it (the stream treats that as congestion)."""
        data = pkt.encode(p)
        node = p.dst_node
        if node == self.node_id:
            self.loop.call_soon(self.on_packet, pkt.decode(data), node)
            return True
        return self.tunnel.send_packet(node, data)  # type: ignore[union-attr]

    def on_packet(self, p: pkt.Packet, src_node: int) -> None:
        """An authenticated packet from ``src_node`` (hot path)."""
        proto = p.protocol
        if proto == pkt.PROTO_STREAM:
            self.conns.receive(p)  # type: ignore[union-attr]
        elif proto == pkt.PROTO_DATAGRAM:
            self._on_datagram(p)
        elif proto == pkt.PROTO_CONTROL:
            self._on_control(p)

    def _on_control(self, p: pkt.Packet) -> None:
        # Ping on port 0 -> pong (§1.10.1); never answer port-0 sources or
        # pongs (ACK set), which would loop (T-D17).
        if p.dst_port != 0 or p.src_port == 0 or p.flags & pkt.FLAG_ACK:
            return
        pong = pkt.Packet(pkt.PROTO_CONTROL, pkt.FLAG_ACK, 0, self.node_id, p.src_net, p.src_node, 0, p.src_port,
                          p.seq, (p.seq + 1) & 0xFFFFFFFF, 0, bytes(p.payload))
        self.transmit(pong)

    def _on_datagram(self, p: pkt.Packet) -> None:
        dg = dgram.accept(p)
        if dg is None:
            return
        if not self._inbound_check(p.src_node, p.dst_port, "datagram"):
            return
        service = self.services.get(p.dst_port)
        if service is not None and hasattr(service, "on_datagram"):
            service.on_datagram(dg.src, dg.dst_port, dg.data)
        if self.ipc is not None and self.ipc.clients:
            self.ipc.broadcast(ipc.RecvFrom(dg.src.addr, dg.src.port, dg.dst_port, dg.data).encode())

    def _inbound_check(self, src_node: int, port: int, kind: str) -> bool:
        check = self.inbound_check
        return True if check is None else check(src_node, port, kind)

    # ------------------------------------------------------------------ operations (IPC and services)

    def bind(self, port: int, owner: Any) -> None:
        assert self.conns is not None
        if not self.conns.listen(port, owner):
            raise NodeError(f"port {port} already bound")

    def unbind(self, port: int, owner: Any) -> None:
        assert self.conns is not None
        self.conns.unlisten(port, owner)

    async def dial(self, addr: Addr, port: int, owner: Any = None) -> Conn:
        """Open a stream; raises :class:`NodeError` with the IPC error text."""
        assert self.conns is not None and self.tunnel is not None
        if addr.node != self.node_id:
            try:
                await self.tunnel.connect(addr.node)
            except RegistryError as exc:
                raise NodeError(f"resolve node {addr.node}: {exc}") from None
        conn = self.conns.dial(SocketAddr(addr, port), owner)
        try:
            await asyncio.shield(conn.dial_future)  # type: ignore[arg-type]
        except StreamDialError as exc:
            raise NodeError(_DIAL_ERRORS.get(exc.code, f"dial: {exc.code}")) from None
        except asyncio.CancelledError:
            self.conns.abort(conn)
            raise
        return conn

    async def open_stream(self, addr: Addr, port: int) -> ServiceStream:
        """Dial from inside the daemon (services): an asyncio-style stream."""
        conn = await self.dial(addr, port)
        assert self.conns is not None
        return ServiceStream(self.conns, conn)

    def conn_send(self, conn: Conn, data: Any) -> bool:
        """Queue data; True when the writer should pause. NodeError on failure."""
        assert self.conns is not None
        try:
            return self.conns.send(conn, data)
        except StreamStateError:
            if conn.stream.state in (State.CLOSED, State.TIME_WAIT) or conn.local_closed:
                raise NodeError("send: connection closed") from None
            raise NodeError("send: connection not established") from None

    def close_conn(self, conn: Conn) -> None:
        assert self.conns is not None
        self.conns.close(conn)

    def send_datagram(self, addr: Addr, port: int, data: bytes, src_port: Optional[int] = None) -> None:
        """Send from ``src_port``, or from a fresh ephemeral port (SendTo's rule)."""
        assert self.conns is not None
        if addr.node == BROADCAST_NODE:
            raise NodeError("sendto: broadcast is not available \u2014 custom networks are WIP")
        if not data:
            return  # the receiver would drop it (§1.10.2)
        try:
            if src_port is None:
                src_port = self.conns.streams.allocate_port()
            p = dgram.build(SocketAddr(self.address, src_port), SocketAddr(addr, port), data)
        except dgram.DatagramError as exc:
            raise NodeError(f"sendto: {exc}") from None
        except RuntimeError as exc:
            raise NodeError(f"sendto: {exc}") from None
        self.transmit(p)

    def info(self) -> ipc.NodeInfo:
        assert self.tunnel is not None and self.conns is not None
        peers = [ipc.PeerInfo(**p) for p in self.tunnel.peer_info()]
        conns = []
        live = 0
        for conn in self.conns.by_id.values():
            s = conn.stream
            if s.state in _LIVE:
                live += 1
            conns.append(_conn_info(conn))
        stats = self.tunnel.stats
        return ipc.NodeInfo(
            node_id=self.node_id,
            address=str(self.address),
            hostname=self.hostname,
            uptime_secs=round(time.monotonic() - self.started_at),
            connections=live,
            ports=len(self.conns.listeners),
            peers=len(peers),
            encrypted_peers=sum(1 for p in peers if p.encrypted),
            authenticated_peers=sum(1 for p in peers if p.authenticated),
            encrypt=self.cfg.encrypt,
            identity=bool(self.cfg.identity),
            public_key=self.identity.public_key_b64 if self.identity else "",
            owner=self.owner,
            bytes_sent=stats.bytes_sent,
            bytes_recv=stats.bytes_recv,
            pkts_sent=stats.pkts_sent,
            pkts_recv=stats.pkts_recv,
            peer_list=tuple(peers),
            conn_list=tuple(conns),
        )

    async def admin_request(self, req: Any) -> ipc.Message:
        """IPC commands that talk to the registry or the trust service."""
        assert self.registry is not None and self.identity is not None
        sign = self.identity.sign
        registry = self.registry
        if isinstance(req, (ipc.HandshakeRequest, ipc.HandshakeApprove, ipc.HandshakeReject, ipc.HandshakePending,
                            ipc.HandshakeTrusted, ipc.HandshakeRevoke)):
            if self.handshake_handler is None:
                if isinstance(req, ipc.HandshakePending):
                    return ipc.pending_reply([])
                if isinstance(req, ipc.HandshakeTrusted):
                    return ipc.trusted_reply([])
                raise NodeError("handshake: trust service not running")
            return await self.handshake_handler(req)
        if isinstance(req, (ipc.ExposeAdd, ipc.ExposeRemove, ipc.ExposeList)):
            if self.expose_handler is None:
                raise NodeError("expose: service not running")
            return await self.expose_handler(req)
        if isinstance(req, ipc.ResolveHostname):
            reply = await _registry(registry.request(reg.resolve_hostname(req.hostname)), "resolve_hostname")
            return ipc.resolve_hostname_reply(reply)
        if isinstance(req, ipc.SetHostname):
            await _registry(registry.request(reg.set_hostname(self.node_id, req.hostname, sign)), "set_hostname")
            self.hostname = req.hostname
            return ipc.set_hostname_reply(self.node_id, req.hostname)
        if isinstance(req, ipc.SetVisibility):
            await _registry(registry.request(reg.set_visibility(self.node_id, req.public, sign)), "set_visibility")
            self.public = req.public
            return ipc.set_visibility_reply(self.node_id, req.public)
        if isinstance(req, ipc.Deregister):
            await _registry(registry.request(reg.deregister(self.node_id, sign)), "deregister")
            self.deregistered = True  # D-14: no zombie re-registration
            return ipc.deregister_reply()
        if isinstance(req, ipc.SetTags):
            reply = await _registry(registry.request(reg.set_tags(self.node_id, req.tags, sign)), "set_tags")
            self.tags = tuple(req.tags)
            tags = reply.get("tags")
            return ipc.set_tags_reply(self.node_id, tags if isinstance(tags, list) else [])
        if isinstance(req, ipc.SetWebhook):
            if self.webhooks is not None:
                self.webhooks.set_url(req.url)
            return ipc.set_webhook_reply(req.url)
        if isinstance(req, ipc.SetTaskExec):
            await _registry(registry.request(reg.set_task_exec(self.node_id, req.enabled, sign)), "set_task_exec")
            self.task_exec = req.enabled
            return ipc.set_task_exec_reply(self.node_id, req.enabled)
        raise NodeError(f"unknown command: 0x{getattr(req, 'code', 0):02X}")

    # ------------------------------------------------------------------ stop

    async def stop(self) -> None:
        """Graceful stop: FIN to every connection, deregister, remove the socket."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        log.info("daemon stopping", node_id=self.node_id)
        if self.conns is not None:
            self.conns.shutdown()
        for task in list(self._tasks):
            task.cancel()
        if self.webhooks is not None:
            self.webhooks.emit("node.deregistered")
        if self.registry is not None and self.identity is not None and self.node_id and not self.deregistered:
            try:
                await asyncio.wait_for(self.registry.request(reg.deregister(self.node_id, self.identity.sign)), 2.0)
            except (RegistryError, asyncio.TimeoutError):
                pass
        if self.ipc is not None:
            await self.ipc.close()
        if self.tunnel is not None:
            self.tunnel.close()
            if self.tunnel.transport is not None:
                self.tunnel.transport.close()
        if self.registry is not None:
            await self.registry.close()
        if self._poller is not None:
            await self._poller.close()
        if self.webhooks is not None:
            try:
                await asyncio.wait_for(self.webhooks.close(), 6.0)
            except asyncio.TimeoutError:
                pass
        log.info("daemon stopped")

    async def wait_stopped(self) -> None:
        await self._stopping.wait()


async def _registry(coro: Awaitable[dict], label: str) -> dict:
    try:
        return await coro
    except RegistryError as exc:
        raise NodeError(f"{label}: {exc}") from None


def _conn_info(conn: Conn) -> ipc.ConnInfo:
    """One ``conn_list`` entry (§A2.6): sizes in bytes, RTTs in whole ms."""
    s = conn.stream
    state = s.state.name
    if state == "CLOSING":
        state = "FIN_WAIT"
    st = s.stats()
    return ipc.ConnInfo(
        id=conn.id,
        local_port=conn.local_port,
        remote_addr=format_addr(conn.remote.network, conn.remote.node),
        remote_port=conn.remote_port,
        state=state,
        cong_win=st.cong_win,
        ssthresh=st.ssthresh,
        in_flight=st.in_flight,
        srtt_ms=round(st.srtt * 1000),
        rttvar_ms=round(st.rttvar * 1000),
        unacked=st.unacked,
        ooo_buf=st.ooo_buf,
        peer_recv_win=st.peer_recv_win,
        recv_win=st.recv_win,
        in_recovery=st.in_recovery,
        bytes_sent=st.bytes_sent,
        bytes_recv=st.bytes_recv,
        segs_sent=st.segs_sent,
        segs_recv=st.segs_recv,
        retransmits=st.retransmits,
        fast_retx=st.fast_retx,
        sack_recv=st.sack_recv,
        sack_sent=st.sack_sent,
        dup_acks=st.dup_acks,
    )


def _resolve_ip(host: str) -> str:
    if not host:
        return "127.0.0.1"
    try:
        return socket.getaddrinfo(host, None, type=socket.SOCK_DGRAM)[0][4][0]
    except OSError:
        return host


def _is_local(host: str) -> bool:
    return host in ("", "0.0.0.0", "::") or host.startswith("127.") or host == "::1"


def _hostport(addr: tuple[str, int]) -> str:
    host, port = addr
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def run(cfg: Config) -> int:
    """Run the daemon in the foreground until SIGTERM/SIGINT."""
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover
        pass
    return asyncio.run(_main(cfg))


async def _main(cfg: Config) -> int:
    node = Node(cfg)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await node.start()
    except StartError as exc:
        log.error("daemon failed to start", error=str(exc))
        print(f"pilot-daemon: {exc}", file=__import__("sys").stderr)
        await node.stop()
        return 1
    await stop.wait()
    await node.stop()
    return 0
