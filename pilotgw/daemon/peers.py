"""The tunnel layer: peer table, key exchange, the receive crypto path, relay.

Every datagram from the UDP socket enters :meth:`Tunnel.datagram_received`
and is demultiplexed (tunnel-and-transport.md §1.2):

* beacon messages are accepted **only from the configured beacon address**
  (T-D14): DiscoverReply completes STUN, PunchCommand sends 3 ``PILP``
  (rate-limited), RelayDeliver carries an inner tunnel frame;
* ``PILS``: key state by sender node, read-only replay check, GCM, commit,
  then the inner packet must have ``Src.Node`` = the sender node, ``Dst.Node``
  = us and version 1 (guidance item 3). Unauthenticated bytes change nothing.
  Only a frame under the *current* key may move the peer's endpoint (roaming,
  T-D3(c)); a relayed frame that authenticates puts the peer in relay mode, a
  direct one takes it out (non-sticky relay, T-D14);
* ``PILA`` is verified against a *copy* of the registry's key, looked up
  asynchronously -- the frame waits in a small bounded queue, the receive
  path never blocks (T-D1, T-D12). We reply with our ``PILA`` when the peer
  is new or its key changed (§1.6); when the same key comes again along the
  path we use (the peer still has no key for us: our answer was lost or it
  dropped its state; rate-limited); or when it came from an address we do
  not use for the peer (answered there; the endpoint does not move);
* ``PILK`` is never accepted (T-D19): answered with our ``PILA``;
* ``PILT`` is dropped from peers with key state; from others only accepted
  when configured (T-D13), else answered with our ``PILA``;
* ``PILP`` is ignored.

Self-healing (T-D6): a ``PILS`` from a node we hold no key for, or repeated
GCM failures, make us send our ``PILA`` to that node, rate-limited per node
and per source. A keyed peer that goes silent -- a dial's SYN unanswered
after its first timeout (:meth:`Tunnel.suspect`), or the stall sweep -- gets
our ``PILA`` on its current path and at the endpoint the registry now
resolves, so a peer restarted on another port is re-keyed within about a
second. Sending never produces plaintext copies: until the key is ready,
packets wait in a bounded per-peer queue and leave as ``PILS``.

Path selection: a new peer is resolved through the registry, a PunchRequest
goes to the beacon, and ``PILA`` is sent at 0, 1 and 3 s (the PunchRequest
again with each retry); if nothing has authenticated after that (≈7 s, the
reference's relay trigger), we also try the relay. A relayed peer gets a
direct ``PILA`` every 30 s, and at once when our own endpoint changed
(:meth:`Tunnel.retry_direct`), and returns to the direct path as soon as an
authenticated frame arrives directly.
"""

from __future__ import annotations

import asyncio
import collections
import struct
from typing import Callable, Optional

from pilotgw.daemon.log import Log
from pilotgw.daemon.ratelimit import Gate, TokenBucket
from pilotgw.daemon.registry_client import RegistryClient, RegistryError
from pilotgw.overlay import beacon as bmsg
from pilotgw.overlay import crypto, tunnel
from pilotgw.overlay import packet as pkt
from pilotgw.overlay.errors import DecodeError

log = Log("tunnel")

Addr = tuple[str, int]

MAX_PENDING_PER_PEER = 64
MAX_PENDING_PEERS = 256
MAX_PENDING_PILA = 256
KX_SCHEDULE = (0.0, 1.0, 3.0, 7.0, 15.0, 23.0)  # PILA sends; relay tried from the 4th
RELAY_AFTER = 3
DIRECT_RETRY_INTERVAL = 30.0
PROBE_PORT = 65535  # source port of our direct-path probe pings (never 0, T-D17)
STALL_AFTER = 6.0
HEAL_INTERVAL = 2.0
ANSWER_INTERVAL = 0.5
REANSWER_AFTER = 5.0
KEYED_QUIET = 1.0
SUSPECT_QUIET = 0.9
#: PunchCommands (T-D14): one 3-PILP burst per target per interval, and a
#: token bucket for all targets together -- enough for many peers dialling
#: us at once, too little to make us a traffic source for a forged beacon.
PUNCH_TARGET_INTERVAL = 0.5
PUNCH_RATE = 10.0
PUNCH_BURST = 20.0

_U32X2 = struct.Struct(">II")
_RELAY_HEAD = b"\x05"
_PILS = tunnel.MAGIC_PILS
_PILA = tunnel.MAGIC_PILA
_PILT = tunnel.MAGIC_PILT
_PILK = tunnel.MAGIC_PILK
_PILP = tunnel.MAGIC_PILP


class Peer:
    """What we know about one remote node's tunnel."""

    __slots__ = ("node", "crypto", "endpoint", "relay", "relay_trial", "pending", "kx_handle",
                 "kx_attempt", "last_rx", "last_tx", "authenticated", "connecting", "resolved",
                 "last_direct_try", "waiters", "answered_at", "punched", "direct_seen")

    def __init__(self, node: int, crypto_state: crypto.PeerCrypto) -> None:
        self.node = node
        self.crypto = crypto_state
        self.endpoint: Optional[Addr] = None
        self.relay = False  # an authenticated frame arrived through the relay
        self.relay_trial = False  # direct key exchange failed: also try the relay
        self.pending: collections.deque[bytes] = collections.deque(maxlen=MAX_PENDING_PER_PEER)
        self.kx_handle: Optional[asyncio.TimerHandle] = None
        self.kx_attempt = 0
        self.last_rx = 0.0
        self.last_tx = 0.0
        self.authenticated = False
        self.connecting: Optional[asyncio.Task] = None
        self.resolved: Optional[Addr] = None
        self.last_direct_try = 0.0
        self.waiters: list[asyncio.Future[None]] = []
        self.answered_at = float("-inf")  # our last answer to a repeated (same-key) PILA
        self.punched = False  # we punched the endpoint before anything came directly from it
        self.direct_seen = False  # an authenticated frame arrived directly from the endpoint

    @property
    def path(self) -> str:
        """How we reach the peer, for Info: ``relay`` through the beacon,
        ``punched`` when the direct path began with a hole punch we made
        (a PunchCommand towards this endpoint came before any
        authenticated frame from it), else ``direct``."""
        if self.via_relay:
            return "relay"
        return "punched" if self.punched else "direct"

    @property
    def via_relay(self) -> bool:
        return self.relay or (self.relay_trial and not self.crypto.ready)


class TunnelStats:
    __slots__ = ("bytes_sent", "bytes_recv", "pkts_sent", "pkts_recv", "drops")

    def __init__(self) -> None:
        self.bytes_sent = 0
        self.bytes_recv = 0
        self.pkts_sent = 0
        self.pkts_recv = 0
        self.drops: collections.Counter[str] = collections.Counter()


def parse_hostport(text: str) -> Addr:
    host, _, port = text.rpartition(":")
    return host.strip("[]"), int(port)


class Tunnel:
    """Peer table and frame processing for one node."""

    def __init__(
        self,
        *,
        identity: crypto.Signer,
        registry: RegistryClient,
        beacon: Optional[Addr],
        on_packet: Callable[[pkt.Packet, int], None],
        allow_plaintext: bool = False,
        encrypt: bool = True,
        on_observed: Optional[Callable[[Addr], None]] = None,
    ) -> None:
        self.identity = identity
        self.registry = registry
        self.beacon = beacon
        self.on_packet = on_packet
        #: Called with every STUN answer (the endpoint the beacon sees us at).
        self.on_observed = on_observed
        self.allow_plaintext = allow_plaintext
        self.encrypt = encrypt
        self.node_id = 0
        self.x25519 = crypto.generate_x25519()
        self.peers: dict[int, Peer] = {}
        self.stats = TunnelStats()
        self.transport: Optional[asyncio.DatagramTransport] = None
        self.loop = asyncio.get_event_loop()
        self._pila_frame: Optional[bytes] = None
        self._heal_gate = Gate(HEAL_INTERVAL)
        self._answer_gate = Gate(ANSWER_INTERVAL)
        self._source_gate = Gate(HEAL_INTERVAL / 2)
        self._refresh_gate = Gate(10.0)
        self._punch_gate = Gate(PUNCH_TARGET_INTERVAL)
        self._punch_total = TokenBucket(PUNCH_RATE, self.loop.time(), capacity=PUNCH_BURST)
        self._pila_wait: dict[int, list[tuple[tunnel.PilaFrame, Addr, bool]]] = {}
        self._stun: Optional[asyncio.Future[Addr]] = None
        self._tasks: set[asyncio.Task] = set()

    # -- setup ------------------------------------------------------------------

    def set_node_id(self, node_id: int) -> None:
        """After (re-)registration: frames carry our node ID from now on."""
        if node_id != self.node_id:
            self.node_id = node_id
            self._pila_frame = crypto.sign_pila(self.identity, node_id, crypto.x25519_public_bytes(self.x25519)).encode()

    def now(self) -> float:
        return self.loop.time()

    def close(self) -> None:
        for peer in self.peers.values():
            if peer.kx_handle is not None:
                peer.kx_handle.cancel()
            if peer.connecting is not None:
                peer.connecting.cancel()
        for task in list(self._tasks):
            task.cancel()

    def _spawn(self, coro) -> asyncio.Task:
        task = self.loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            # Background resolves fail with RegistryError; dials report it.
            log.debug("tunnel task failed", error=str(task.exception()))

    # -- raw sends -----------------------------------------------------------------

    def _sendto(self, data: bytes, addr: Addr) -> bool:
        """False only when the local stack refused the datagram (full
        socket buffer or qdisc, see :class:`~pilotgw.daemon.endpoint.UdpEndpoint`)."""
        transport = self.transport
        if transport is None:
            return True
        try:
            return transport.sendto(data, addr) is not False
        except OSError as exc:  # pragma: no cover - UdpEndpoint reports errors itself
            log.debug("sendto failed", addr=f"{addr[0]}:{addr[1]}", error=str(exc))
            return True

    def _send_frame(self, peer: Peer, frame: bytes | bytearray) -> bool:
        stats = self.stats
        stats.pkts_sent += 1
        stats.bytes_sent += len(frame)
        peer.last_tx = self.loop.time()
        if peer.via_relay and self.beacon is not None:
            return self._sendto(_RELAY_HEAD + _U32X2.pack(self.node_id, peer.node) + frame, self.beacon)
        if peer.endpoint is not None:
            return self._sendto(frame, peer.endpoint)
        return True

    def send_beacon(self, msg: bmsg.BeaconMessage) -> None:
        if self.beacon is not None:
            self._sendto(bmsg.encode(msg), self.beacon)

    def _send_pila(self, peer: Peer, addr: Optional[Addr] = None, relay: bool = False) -> None:
        """Our PILA to ``addr``, through the beacon, or along the peer's path."""
        frame = self._pila_frame
        if frame is None:  # T-D17: no frames before registration
            return
        if relay and self.beacon is not None:
            self._sendto(_RELAY_HEAD + _U32X2.pack(self.node_id, peer.node) + frame, self.beacon)
        elif addr is not None:
            self._sendto(frame, addr)
        else:
            if peer.via_relay and self.beacon is not None:
                self._sendto(_RELAY_HEAD + _U32X2.pack(self.node_id, peer.node) + frame, self.beacon)
            elif peer.endpoint is not None:
                self._sendto(frame, peer.endpoint)

    # -- outbound packets -----------------------------------------------------------------

    def peer(self, node: int) -> Peer:
        peer = self.peers.get(node)
        if peer is None:
            peer = self.peers[node] = Peer(node, crypto.PeerCrypto(self.x25519))
        return peer

    def send_packet(self, node: int, data: bytes) -> bool:
        """Send one encoded Pilot packet to ``node`` (hot path). False when
        the local stack refused it (congestion); queued counts as sent."""
        peer = self.peers.get(node)
        if peer is not None and peer.crypto.ready:
            return self._send_frame(peer, peer.crypto.seal(self.node_id, data))
        if not self.encrypt:
            if peer is not None and peer.endpoint is not None:
                return self._send_frame(peer, _PILT + data)
        if peer is None:
            if sum(1 for p in self.peers.values() if p.pending) >= MAX_PENDING_PEERS:
                self.stats.drops["pending_peers"] += 1
                return True  # no tunnel to congest: the stream's timers retry
            peer = self.peer(node)
        peer.pending.append(data)
        if peer.kx_handle is None and (peer.connecting is None or peer.connecting.done()):
            # Nothing under way (first packet, or an earlier exchange gave up).
            self.start_connect(peer)
        return True

    def drop(self, node: int) -> bool:
        """Forget ``node``'s tunnel: key, endpoint, relay state, queued packets
        and the registry's cached endpoint.

        For the trust service (a revoked or rejected peer): the next packet to
        or from that node starts over with a registry lookup and a fresh key
        exchange, so nothing keyed under the old trust survives. Returns
        whether there was a tunnel to drop."""
        peer = self.peers.pop(node, None)
        self.registry.forget_endpoint(node)
        if peer is None:
            return False
        if peer.kx_handle is not None:
            peer.kx_handle.cancel()
        if peer.connecting is not None:
            peer.connecting.cancel()
        log.info("tunnel dropped", node=node)
        return True

    def start_connect(self, peer: Peer) -> asyncio.Task:
        if peer.connecting is None or peer.connecting.done():
            peer.connecting = self._spawn(self._connect(peer))
        return peer.connecting

    async def connect(self, node: int) -> None:
        """Make sure a path to ``node`` is being set up; raise
        :class:`RegistryError` if the registry cannot resolve it. Returns
        without waiting for the key exchange (packets queue until then)."""
        peer = self.peer(node)
        if peer.crypto.ready or peer.endpoint is not None or peer.relay:
            return
        await asyncio.shield(self.start_connect(peer))

    async def _connect(self, peer: Peer) -> None:
        try:
            real = await self.registry.resolve(peer.node, self.node_id, self.identity.sign)
        except RegistryError:
            self._fail_pending(peer)
            raise
        try:
            addr = parse_hostport(real)
        except ValueError:
            self._fail_pending(peer)
            raise RegistryError(f"node {peer.node} has no real address", "no_address") from None
        peer.resolved = addr
        if peer.endpoint is None:
            peer.endpoint = addr
        if self.beacon is not None:
            self.send_beacon(bmsg.PunchRequest(self.node_id, peer.node))
        if not self.encrypt:
            # -encrypt=false: plaintext by configuration, no key exchange.
            pending, peer.pending = peer.pending, collections.deque(maxlen=MAX_PENDING_PER_PEER)
            for data in pending:
                self._send_frame(peer, _PILT + data)
            return
        if not peer.crypto.ready and peer.kx_handle is None:
            peer.kx_attempt = 0
            self._kx_step(peer)

    def _fail_pending(self, peer: Peer) -> None:
        if not peer.crypto.ready:
            peer.pending.clear()

    def _kx_step(self, peer: Peer) -> None:
        """One step of the key-exchange schedule (KX_SCHEDULE)."""
        peer.kx_handle = None
        if peer.crypto.ready or peer.node not in self.peers:
            return
        n = peer.kx_attempt
        if n >= len(KX_SCHEDULE):
            log.info("key exchange gave up", node=peer.node)
            peer.pending.clear()
            peer.kx_attempt = 0
            return
        if n >= RELAY_AFTER and self.beacon is not None and not peer.relay_trial:
            peer.relay_trial = True
            log.info("direct path silent, trying relay", node=peer.node)
        if n and self.beacon is not None:
            # The beacon's PunchCommand (or the peer's punch) may have been
            # lost or rate-limited: ask again with every retry.
            self.send_beacon(bmsg.PunchRequest(self.node_id, peer.node))
        if peer.relay_trial:
            self._send_pila(peer, relay=True)
            if peer.endpoint is not None:
                self._send_pila(peer, addr=peer.endpoint)
        else:
            self._send_pila(peer)
        peer.kx_attempt = n + 1
        if n + 1 < len(KX_SCHEDULE):
            delay = KX_SCHEDULE[n + 1] - KX_SCHEDULE[n]
        else:
            delay = 8.0
        peer.kx_handle = self.loop.call_later(delay, self._kx_step, peer)

    def _key_ready(self, peer: Peer) -> None:
        if peer.kx_handle is not None:
            peer.kx_handle.cancel()
            peer.kx_handle = None
        peer.kx_attempt = 0
        pending, peer.pending = peer.pending, collections.deque(maxlen=MAX_PENDING_PER_PEER)
        for data in pending:
            self._send_frame(peer, peer.crypto.seal(self.node_id, data))

    # -- inbound ------------------------------------------------------------------------

    def datagram_received(self, data: bytes, addr: Addr) -> None:
        """Entry point for every datagram on the tunnel socket (hot path)."""
        if not data:
            return
        stats = self.stats
        stats.pkts_recv += 1
        stats.bytes_recv += len(data)
        if data[0] < 0x10:
            if addr != self.beacon:
                stats.drops["beacon_source"] += 1
                return
            self._on_beacon(data)
            return
        magic = data[:4]
        if magic == _PILS:
            self._on_pils(data, addr, False)
        elif magic == _PILA:
            self._on_pila(data, addr, False)
        elif magic == _PILT:
            self._on_pilt(data, addr, False, 0)
        elif magic == _PILK:
            self._on_pilk(data, addr, False)
        elif magic == _PILP:
            return
        else:
            stats.drops["magic"] += 1

    def _on_pils(self, data: bytes, addr: Addr, via_relay: bool) -> None:
        try:
            frame = tunnel.decode_pils(memoryview(data))
        except DecodeError:
            self.stats.drops["truncated"] += 1
            return
        node = frame.sender_node
        peer = self.peers.get(node)
        now = self.loop.time()
        if peer is None or not peer.crypto.ready:
            self.stats.drops["no_key"] += 1
            self._heal(node, addr, via_relay, now)
            return
        cs = peer.crypto
        try:
            plaintext = cs.open(frame, now)
        except DecodeError as exc:
            self.stats.drops[exc.code] += 1
            if exc.code == "auth" and cs.auth_failures >= 3:
                self._heal(node, addr, via_relay, now)
            return
        try:
            p = pkt.decode(plaintext)
        except DecodeError:
            self.stats.drops["inner_decode"] += 1
            return
        if p.src_node != node or p.dst_node != self.node_id or p.version != 1:
            self.stats.drops["header_binding"] += 1
            return
        peer.last_rx = now
        if not peer.authenticated:
            peer.authenticated = True
        if via_relay:
            if not peer.relay:
                peer.relay = True
                log.info("peer reached through relay", node=node)
        elif not cs.opened_with_fallback:
            if peer.endpoint != addr:
                if peer.endpoint is not None:
                    log.info("peer endpoint moved", node=node, old=_fmt(peer.endpoint), new=_fmt(addr))
                    peer.punched = False  # a path the peer opened, not our punch
                peer.endpoint = addr
            peer.direct_seen = True
            if peer.relay or peer.relay_trial:
                peer.relay = peer.relay_trial = False
                log.info("direct path to peer works again", node=node)
        if cs.rekey_reason is not None:
            self._rotate(peer, cs.rekey_reason)
        self.on_packet(p, node)

    def _heal(self, node: int, addr: Addr, via_relay: bool, now: float) -> None:
        """T-D6: a peer talks to us with a key we do not hold: send our PILA."""
        if self._pila_frame is None or node == 0:
            return
        if not self._heal_gate.allow(node, now) or not self._source_gate.allow(addr[0], now):
            return
        log.debug("sending PILA to heal tunnel", node=node, addr=_fmt(addr))
        peer = self.peer(node)
        if via_relay:
            self._send_pila(peer, relay=True)
        else:
            self._send_pila(peer, addr=addr)

    def _rotate(self, peer: Peer, reason: str) -> None:
        """T-D4: nonce prefixes collided or piled up: new X25519 key for this peer."""
        try:
            our_pub = peer.crypto.rotate(crypto.generate_x25519(), self.loop.time())
        except (crypto.CryptoStateError, DecodeError):
            return
        log.info("rotating tunnel key for peer", node=peer.node, reason=reason)
        frame = crypto.sign_pila(self.identity, self.node_id, our_pub).encode()
        if peer.via_relay and self.beacon is not None:
            self._sendto(_RELAY_HEAD + _U32X2.pack(self.node_id, peer.node) + frame, self.beacon)
        elif peer.endpoint is not None:
            self._sendto(frame, peer.endpoint)

    def _on_pila(self, data: bytes, addr: Addr, via_relay: bool) -> None:
        try:
            frame = tunnel.decode_pila(data)
        except DecodeError:
            self.stats.drops["truncated"] += 1
            return
        node = frame.node
        if node == 0 or node == self.node_id or not self.encrypt:
            self.stats.drops["pila_node"] += 1
            return
        frame = tunnel.PilaFrame(node, bytes(frame.x25519_public), bytes(frame.ed25519_public), bytes(frame.signature))
        key = self.registry.cached_key(node)
        if key is not None and frame.ed25519_public == key:
            self._accept_pila(frame, key, addr, via_relay)
            return
        # Unknown or mismatching key: look it up (refresh on mismatch, rate-limited)
        # without blocking the receive path; the frame waits in a bounded queue.
        refresh = key is not None
        if refresh and not self._refresh_gate.allow(node, self.loop.time()):
            self.stats.drops["pila_key_mismatch"] += 1
            return
        waiting = self._pila_wait.get(node)
        if waiting is not None:
            if len(waiting) < 4:
                waiting.append((frame, addr, via_relay))
            return
        if len(self._pila_wait) >= MAX_PENDING_PILA:
            self.stats.drops["pila_queue"] += 1
            return
        self._pila_wait[node] = [(frame, addr, via_relay)]
        self._spawn(self._lookup_then_accept(node, refresh))

    async def _lookup_then_accept(self, node: int, refresh: bool) -> None:
        try:
            key: Optional[bytes] = await self.registry.lookup_key(node, refresh=refresh)
        except RegistryError as exc:
            log.warning("PILA dropped: registry lookup failed", node=node, error=str(exc))
            key = None
        finally:
            waiting = self._pila_wait.pop(node, [])
        if key is None:
            self.stats.drops["pila_lookup"] += len(waiting)
            return
        for frame, addr, via_relay in waiting:
            self._accept_pila(frame, key, addr, via_relay)

    def _accept_pila(self, frame: tunnel.PilaFrame, key: bytes, addr: Addr, via_relay: bool) -> None:
        try:
            crypto.verify_pila(frame, key)
        except DecodeError as exc:
            self.stats.drops["pila_" + exc.code] += 1
            log.debug("PILA rejected", node=frame.node, reason=exc.code)
            return
        now = self.loop.time()
        peer = self.peer(frame.node)
        try:
            result = peer.crypto.install(frame.x25519_public, now)
        except DecodeError:
            self.stats.drops["pila_weak_key"] += 1
            return
        if result is crypto.InstallResult.REFUSED:
            self.stats.drops["pila_refused"] += 1
            return
        if via_relay:
            # A verified PILA through the beacon: the peer's direct path to us
            # failed, so answer along the relay until a direct frame arrives.
            peer.relay = True
        elif peer.endpoint is None or result is crypto.InstallResult.CHANGED:
            # First contact: a verified PILA is the only address we have. A
            # changed key means the peer restarted, likely on a new port (or
            # NAT mapping): its old endpoint is dead, so follow the new one.
            if peer.endpoint is not None and peer.endpoint != addr:
                log.info("peer endpoint moved", node=frame.node, old=_fmt(peer.endpoint), new=_fmt(addr))
            peer.endpoint = addr
        changed = result in (crypto.InstallResult.NEW, crypto.InstallResult.CHANGED)
        if changed:
            log.info("peer keyed", node=frame.node, result=result.value, relay=via_relay, addr=_fmt(addr))
            self._answer_gate.allow(frame.node, now)  # a second copy sent with this one needs no answer
            self._send_pila(peer, relay=True) if via_relay else self._send_pila(peer, addr=addr)
        elif ((via_relay or addr == peer.endpoint) and now - peer.last_rx >= KEYED_QUIET
              and (peer.last_rx > peer.answered_at or now - peer.answered_at >= REANSWER_AFTER)
              and self._answer_gate.allow(frame.node, now)):
            # The same key again, along the path we use, from a peer that is
            # not sending us PILS: it holds no key for us (our answer was lost,
            # or it dropped its tunnel state), so answer. Not while its PILS
            # still arrive (it has the key; this is its reply to a PILA of ours,
            # and every PILA resets a reference peer's nonce state, T-D5), not
            # for a copy sent with the first (a reference peer's paired PILAs,
            # §2.6), and once per round of authenticated traffic (or 5 s): two
            # peers that both see the other's answer as a repeat must not
            # ping-pong.
            peer.answered_at = now
            self._send_pila(peer, relay=True) if via_relay else self._send_pila(peer, addr=addr)
        elif not via_relay and addr != peer.endpoint and self._source_gate.allow(("pila", addr), now):
            # A PILA from an address we do not use: answer there, do not move.
            self._send_pila(peer, addr=addr)
        if (not via_relay and peer.crypto.ready and (peer.relay or peer.relay_trial or addr != peer.endpoint)
                and self._source_gate.allow(("probe", addr), now)):
            # The peer reached us directly from an address we do not send to
            # (we are relayed, or it moved or restarted): probe that path with
            # an encrypted ping. Only its authenticated answer, arriving
            # directly, moves the endpoint (T-D3(c)); a replayed PILA cannot.
            self._probe_direct(peer, addr)
        self._key_ready(peer)
        for fut in peer.waiters:
            if not fut.done():
                fut.set_result(None)
        peer.waiters.clear()

    def _probe_direct(self, peer: Peer, addr: Addr) -> None:
        ping = pkt.Packet(pkt.PROTO_CONTROL, 0, 0, self.node_id, 0, peer.node, PROBE_PORT, 0,
                          int(self.loop.time() * 1000) & 0xFFFFFFFF)
        frame = peer.crypto.seal(self.node_id, ping.encode())
        self.stats.pkts_sent += 1
        self.stats.bytes_sent += len(frame)
        self._sendto(frame, addr)

    def _on_pilk(self, data: bytes, addr: Addr, via_relay: bool) -> None:
        """T-D19: never install a PILK key; answer with our PILA."""
        try:
            frame = tunnel.decode_pilk(data)
        except DecodeError:
            self.stats.drops["truncated"] += 1
            return
        self.stats.drops["pilk"] += 1
        now = self.loop.time()
        if frame.node and frame.node != self.node_id and self._heal_gate.allow(("pilk", frame.node), now):
            peer = self.peer(frame.node)
            self._send_pila(peer, relay=via_relay, addr=None if via_relay else addr)

    def _on_pilt(self, data: bytes, addr: Addr, via_relay: bool, relay_sender: int) -> None:
        try:
            p = tunnel.decode_pilt(data)
        except DecodeError:
            self.stats.drops["truncated"] += 1
            return
        node = p.src_node
        if via_relay and node != relay_sender:
            self.stats.drops["relay_sender"] += 1
            return
        peer = self.peers.get(node)
        if self.encrypt and peer is not None and peer.crypto.ready:
            self.stats.drops["pilt_keyed"] += 1  # T-D13
            return
        if self.encrypt and not self.allow_plaintext:
            self.stats.drops["pilt_policy"] += 1
            self._heal(node, addr, via_relay, self.loop.time())
            return
        if p.dst_node != self.node_id or p.version != 1:
            self.stats.drops["header_binding"] += 1
            return
        if peer is None:
            peer = self.peer(node)
        if peer.endpoint is None and not via_relay:
            peer.endpoint = addr
        self.on_packet(p, node)

    # -- beacon -----------------------------------------------------------------------------

    def _on_beacon(self, data: bytes) -> None:
        try:
            msg = bmsg.decode(data)
        except DecodeError:
            self.stats.drops["beacon_decode"] += 1
            return
        if isinstance(msg, bmsg.RelayDeliver):
            self._on_relay_deliver(msg)
        elif isinstance(msg, bmsg.DiscoverReply):
            observed = (msg.ip, msg.port)
            if self._stun is not None and not self._stun.done():
                self._stun.set_result(observed)
            if self.on_observed is not None:
                self.on_observed(observed)
        elif isinstance(msg, bmsg.PunchCommand):
            now = self.loop.time()
            target = (msg.ip, msg.port)
            if self._punch_gate.allow(target, now):
                if not self._punch_total.take(now):
                    self._punch_gate.reset(target)  # not punched: a later command for it may be
                    self.stats.drops["punch_rate"] += 1
                    return
                for _ in range(3):
                    self._sendto(_PILP, target)
                for peer in self.peers.values():
                    if not peer.direct_seen and target in (peer.endpoint, peer.resolved):
                        peer.punched = True
        else:
            self.stats.drops["beacon_type"] += 1

    def _on_relay_deliver(self, msg: bmsg.RelayDeliver) -> None:
        inner = msg.payload
        if len(inner) < 4 or self.beacon is None:
            return
        magic = inner[:4]
        sender = msg.sender
        if magic == _PILS:
            if len(inner) >= 8 and int.from_bytes(inner[4:8], "big") != sender:
                self.stats.drops["relay_sender"] += 1
                return
            self._on_pils(inner, self.beacon, True)
        elif magic == _PILA:
            if len(inner) >= 8 and int.from_bytes(inner[4:8], "big") != sender:
                self.stats.drops["relay_sender"] += 1
                return
            self._on_pila(inner, self.beacon, True)
        elif magic == _PILT:
            self._on_pilt(inner, self.beacon, True, sender)
        elif magic == _PILK:
            self._on_pilk(inner, self.beacon, True)

    async def stun(self, timeout: float = 2.0) -> Optional[Addr]:
        """Discover our public endpoint from the tunnel socket itself (T-D15)."""
        if self.beacon is None:
            return None
        self._stun = self.loop.create_future()
        self._sendto(bmsg.encode(bmsg.Discover(self.node_id)), self.beacon)
        try:
            return await asyncio.wait_for(self._stun, timeout)
        except asyncio.TimeoutError:
            return None
        finally:
            self._stun = None

    # -- maintenance ------------------------------------------------------------------------

    async def wait_keyed(self, node: int, timeout: float) -> bool:
        peer = self.peer(node)
        if peer.crypto.ready:
            return True
        fut = self.loop.create_future()
        peer.waiters.append(fut)
        try:
            await asyncio.wait_for(fut, timeout)
            return True
        except asyncio.TimeoutError:
            return False

    def sweep(self, now: float) -> None:
        """Periodic: direct-path retries for relayed peers, stall healing (T-D6)."""
        for peer in list(self.peers.values()):
            if peer.relay and now - peer.last_direct_try >= DIRECT_RETRY_INTERVAL:
                # Non-sticky relay (T-D14): offer the direct path again.
                peer.last_direct_try = now
                self.registry.forget_endpoint(peer.node)
                self._spawn(self._refresh_resolved(peer, send_pila=True, force=True))
            if peer.crypto.ready and peer.last_tx - peer.last_rx > STALL_AFTER and now - peer.last_tx < STALL_AFTER:
                self._rekey_silent(peer, now, "peer silent, re-keying")

    def retry_direct(self) -> None:
        """Our endpoint changed (we registered the new one): offer every
        relayed peer the direct path now instead of at its next periodic
        retry -- our PILA at the endpoint the registry resolves for it. A
        peer whose NAT re-mapped it too (both NATs rebooted) gets there once
        it has registered its own new endpoint, and retries towards ours."""
        now = self.loop.time()
        for peer in list(self.peers.values()):
            if peer.relay or peer.relay_trial:
                peer.last_direct_try = now
                self.registry.forget_endpoint(peer.node)
                self._spawn(self._refresh_resolved(peer, send_pila=True, force=True))

    def suspect(self, node: int) -> None:
        """A dial to ``node`` got no SYN-ACK within its first timeout. If the
        tunnel is keyed and nothing arrived from the peer in that time, the
        peer may have restarted elsewhere (T-D6 2.): re-key now rather than
        at the stall sweep, seconds later. Only PILAs are sent (to the
        current endpoint and to the registry's, if it differs); the endpoint
        moves on the peer's verified answer."""
        peer = self.peers.get(node)
        if peer is None or not peer.crypto.ready or peer.relay:
            return  # a key exchange (or the relay path) is in charge
        now = self.loop.time()
        if now - peer.last_rx > SUSPECT_QUIET:
            self._rekey_silent(peer, now, "dial unanswered, re-keying")

    def _rekey_silent(self, peer: Peer, now: float, why: str) -> None:
        if not self._heal_gate.allow(("stall", peer.node), now):
            return
        log.info(why, node=peer.node)
        self._send_pila(peer)
        self.registry.forget_endpoint(peer.node)
        self._spawn(self._refresh_resolved(peer, send_pila=True))

    async def _refresh_resolved(self, peer: Peer, send_pila: bool = False, force: bool = False) -> None:
        try:
            real = await self.registry.resolve(peer.node, self.node_id, self.identity.sign)
            addr = parse_hostport(real)
        except (RegistryError, ValueError):
            return
        peer.resolved = addr
        if send_pila and (force or addr != peer.endpoint):
            self._send_pila(peer, addr=addr)

    def peer_info(self) -> list[dict]:
        out = []
        for peer in self.peers.values():
            if not peer.crypto.ready and peer.endpoint is None:
                continue
            ep = self.beacon if peer.via_relay and self.beacon else peer.endpoint
            path = peer.path
            out.append({"authenticated": peer.crypto.ready, "encrypted": peer.crypto.ready,
                        "endpoint": _fmt(ep) if ep else "", "node_id": peer.node,
                        "path": path, "relay": path == "relay"})
        return out


def _fmt(addr: Optional[Addr]) -> str:
    if addr is None:
        return ""
    host, port = addr[0], addr[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
