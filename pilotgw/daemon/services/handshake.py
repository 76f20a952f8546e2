"""The trust handshake on port 444 and its registry relay (trust-and-ipc.md
§A1, rendezvous.md §1.8.10-1.8.11), with the D-1/D-3/D-9/D-10 repairs.

Wire format and flows are the reference's: one signed JSON message per
connection, replies on new connections, direct delivery first and the
registry relay only when the direct send fails. What we check that the
reference does not (an inbound message is honoured only if all hold):

* it is signed, with the key the registry holds for ``node_id`` (cached
  lookup, refreshed once on mismatch) and the key of any existing trust
  record (D-1 c);
* ``node_id`` is the node the stream really comes from (D-1 b);
* it is fresh (-5 min / +30 s) and not a replay;
* an accept is honoured only for a request we sent (or a peer we already
  trust), a revoke only when it passes the above (D-3).

If the registry cannot be asked, a request is still kept as pending with its
key marked unverified (checked again at approval); accepts and revokes are
dropped. Relayed requests and approvals get the direct path's webhooks and a
key backfill (D-9). A revoke is delivered before the tunnel is dropped (D-10).

Relayed requests arrive quickly between pilotgw nodes: the node long-polls
``poll_handshakes`` with the ``wait`` extension on a second registry
connection and hands each reply to :meth:`Handshakes.consume_poll`.
"""

from __future__ import annotations

import asyncio
import base64
import time
from typing import Any, Awaitable, Callable

from pilotgw.daemon.log import Log
from pilotgw.daemon.trust import ReplayCache, TrustStore
from pilotgw.daemon.webhooks import Webhooks
from pilotgw.overlay import handshake as hs
from pilotgw.overlay import registry as reg
from pilotgw.overlay import ipc
from pilotgw.overlay.address import PORT_HANDSHAKE, Addr, SocketAddr
from pilotgw.overlay.errors import DecodeError

log = Log("handshake")

#: Delays between attempts to re-report trust after a re-registration.
RESYNC_BACKOFF = (0.0, 1.0, 2.0, 4.0, 8.0, 15.0)

RECEIVE_WAIT = 10.0
CLOSE_DELAY = 0.5
DIAL_TIMEOUT = 30.0
REVOKE_DELIVERY_WAIT = 5.0

Dial = Callable[[Addr, int], Awaitable[tuple[Any, Any]]]


class HandshakeError(Exception):
    """An IPC-visible failure; the message is the exact IPC error text."""


class Registry:
    """What the handshake needs from the daemon's registry client."""

    async def request(self, msg: reg.Message, *, timeout: float | None = None) -> reg.Message: ...

    async def lookup_key(self, node: int, *, refresh: bool = False) -> bytes: ...


class Handshakes:
    """Trust operations of one daemon. ``sign`` signs with the identity key;
    ``node_id`` is read at use (it changes on re-registration);
    ``drop_tunnel(peer)`` forgets the peer's tunnel and crypto state."""

    def __init__(
        self,
        store: TrustStore,
        *,
        node_id: Callable[[], int],
        sign: Callable[[bytes], bytes],
        public_key: bytes,
        registry: Registry,
        dial: Dial,
        webhooks: Webhooks | None = None,
        drop_tunnel: Callable[[int], None] = lambda peer: None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self._node_id = node_id
        self._sign = sign
        self._public_key_b64 = base64.b64encode(public_key).decode("ascii")
        self._registry = registry
        self._dial = dial
        self._webhooks = webhooks
        self._drop_tunnel = drop_tunnel
        self._clock = clock
        self._replay = ReplayCache()
        self._tasks: set[asyncio.Task[Any]] = set()

    # -- helpers -------------------------------------------------------------------

    def _emit(self, event: str, data: dict[str, Any]) -> None:
        if self._webhooks is not None:
            self._webhooks.emit(event, data)

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        """Wait (bounded) for background sends, as the reference does at stop."""
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=REVOKE_DELIVERY_WAIT)
        for task in list(self._tasks):
            task.cancel()

    def _build(self, kind: str, peer: int, *, justification: str = "", reason: str = "") -> bytes:
        me = self._node_id()
        msg = hs.HandshakeMsg(
            type=kind,
            node_id=me,
            public_key=self._public_key_b64,
            justification=justification,
            signature=base64.b64encode(self._sign(hs.challenge(me, peer))).decode("ascii"),
            reason=hs.REVOKE_REASON if kind == hs.REVOKE else reason,
            timestamp=int(self._clock()),
        )
        return hs.encode_for_send(msg)

    async def _send_direct(self, peer: int, data: bytes) -> bool:
        """Dial ``peer:444``, write once, close 500 ms later (A1.1)."""
        try:
            reader, writer = await asyncio.wait_for(self._dial(Addr(0, peer), PORT_HANDSHAKE), DIAL_TIMEOUT)
        except Exception as exc:
            log.info("direct handshake delivery failed", peer=peer, error=str(exc) or type(exc).__name__)
            return False
        try:
            writer.write(data)
            await writer.drain()
            await asyncio.sleep(CLOSE_DELAY)
            return True
        except Exception as exc:
            log.info("direct handshake write failed", peer=peer, error=str(exc))
            return False
        finally:
            writer.close()

    async def _registry_call(self, what: str, msg: reg.Message, peer: int) -> bool:
        try:
            await self._registry.request(msg)
            return True
        except Exception as exc:  # logged with detail (D-20); never fatal
            log.warning("registry call failed", call=what, peer=peer, error=str(exc))
            return False

    def _report_trust(self, peer: int) -> None:
        self._spawn(self._registry_call("report_trust", reg.report_trust(self._node_id(), peer, self._sign), peer))

    def _respond(self, peer: int, accept: bool) -> Awaitable[bool]:
        msg = reg.respond_handshake(self._node_id(), peer, accept, self._sign)
        return self._registry_call("respond_handshake", msg, peer)

    async def _send_accept(self, peer: int) -> None:
        """Direct accept; relay ``respond_handshake(accept)`` if that fails."""
        if not await self._send_direct(peer, self._build(hs.ACCEPT, peer)):
            await self._respond(peer, True)

    async def _backfill(self, peer: int) -> None:
        try:
            key = await self._registry.lookup_key(peer)
        except Exception as exc:
            log.info("key backfill failed", peer=peer, error=str(exc))
            return
        self.store.set_key(peer, base64.b64encode(key).decode("ascii"))

    # -- inbound port 444 ----------------------------------------------------------

    async def handle(self, reader: Any, writer: Any, remote: SocketAddr) -> None:
        """One inbound connection: read one message (Q1: it may span
        segments), never write (Q2)."""
        assembler = hs.Assembler()
        msg: hs.HandshakeMsg | None = None
        try:
            async with asyncio.timeout(RECEIVE_WAIT):
                while msg is None:
                    data = await reader.read(4096)
                    msg = assembler.feed(data) if data else assembler.eof()
        except (TimeoutError, DecodeError, ConnectionError, OSError) as exc:
            log.info("invalid handshake message", remote=str(remote), error=str(exc) or type(exc).__name__)
            return
        await self.receive(msg, remote.addr.node)

    async def receive(self, msg: hs.HandshakeMsg, source: int) -> bool:
        """Validate and dispatch one message that came from node ``source``.
        True if it was acted upon."""
        now = self._clock()
        me = self._node_id()
        try:
            hs.check_fresh(msg, now)
            hs.verify(msg, me)
        except DecodeError as exc:
            log.info("handshake dropped", peer=msg.node_id, reason=str(exc))
            return False
        if msg.node_id != source:
            log.warning("handshake dropped: node_id is not the sender", claimed=msg.node_id, source=source)
            return False
        if msg.type not in hs.TYPES:
            return False
        verified = await self._key_matches(msg)
        if verified is False or (verified is None and msg.type != hs.REQUEST):
            return False
        if not self._replay.check_and_add(hs.replay_key(msg), now):
            log.info("handshake replay dropped", peer=msg.node_id, type=msg.type)
            return False
        peer = msg.node_id
        if msg.type == hs.REQUEST:
            self._on_request(peer, msg.public_key, msg.justification, now, key_verified=verified is True)
        elif msg.type == hs.ACCEPT:
            if not (self.store.has_outgoing(peer, now) or self.store.is_trusted(peer)):
                log.warning("unsolicited handshake accept dropped", peer=peer)
                return False
            self.store.trust(peer, msg.public_key, now, mutual=True)
            self._report_trust(peer)
        elif msg.type == hs.REJECT:
            self.store.clear_outgoing(peer)
        else:
            self._on_revoked_by_peer(peer)
        return True

    async def _key_matches(self, msg: hs.HandshakeMsg) -> bool | None:
        """True: the message key is the registry's (and the stored one);
        False: it is not; None: the registry could not be asked."""
        stored = self.store.trusted.get(msg.node_id)
        if stored is not None and stored.public_key and stored.public_key != msg.public_key:
            log.warning("handshake key differs from the trusted record", peer=msg.node_id)
            return False
        claimed = hs.public_key_bytes(msg)
        try:
            key = await self._registry.lookup_key(msg.node_id)
            if key != claimed:
                key = await self._registry.lookup_key(msg.node_id, refresh=True)
        except Exception as exc:
            log.info("registry key check unavailable", peer=msg.node_id, error=str(exc))
            return None
        if key != claimed:
            log.warning("handshake key is not the registry's key for the node", peer=msg.node_id)
            return False
        return True

    def _on_request(self, peer: int, key: str, justification: str, now: float, *, key_verified: bool) -> None:
        self._emit("handshake.received", {"peer_node_id": peer, "justification": justification})
        if self.store.is_trusted(peer):
            self._spawn(self._send_accept(peer))
        elif self.store.has_outgoing(peer, now):
            self.store.trust(peer, key if key_verified else "", now, mutual=True)
            self._emit("handshake.auto_approved", {"peer_node_id": peer, "reason": "mutual"})
            self._spawn(self._send_accept(peer))
            self._report_trust(peer)
            if not key_verified:
                self._spawn(self._backfill(peer))
        else:
            self.store.add_pending(peer, key, justification, now, key_verified=key_verified)
            self._emit("handshake.pending", {"peer_node_id": peer, "justification": justification})
            log.info("handshake request pending", peer=peer)

    def _on_revoked_by_peer(self, peer: int) -> None:
        self._emit("trust.revoked_by_peer", {"peer_node_id": peer})
        was_trusted, _ = self.store.remove(peer)
        self._drop_tunnel(peer)
        if was_trusted:
            self._spawn(self._registry_call("revoke_trust", reg.revoke_trust(self._node_id(), peer, self._sign), peer))

    # -- IPC operations (A1.6, A2.5) ------------------------------------------------

    async def request(self, peer: int, justification: str) -> dict[str, Any]:
        if self.store.is_trusted(peer):
            log.info("handshake to an already trusted peer: nothing sent", peer=peer)
            return {"node_id": peer, "status": "sent"}
        try:
            data = self._build(hs.REQUEST, peer, justification=justification)
        except ValueError as exc:
            raise HandshakeError(f"handshake request: {exc}") from None
        self.store.add_outgoing(peer, self._clock())
        if not await self._send_direct(peer, data):
            try:
                await self._registry.request(reg.request_handshake(self._node_id(), peer, justification, self._sign))
            except Exception as exc:
                log.warning("handshake relay failed", peer=peer, error=str(exc))
                raise HandshakeError(f"handshake request: handshake relay: {_masked(exc)}") from None
        return {"node_id": peer, "status": "sent"}

    async def approve(self, peer: int) -> dict[str, Any]:
        entry = self.store.take_pending(peer)
        if entry is None:
            log.info("approve: nothing pending", peer=peer)
            return {"node_id": peer, "status": "approved"}
        key = entry.public_key if entry.key_verified else ""
        self.store.trust(peer, key, self._clock(), mutual=False)
        self._emit("handshake.approved", {"peer_node_id": peer})

        async def tell_registry() -> None:
            await self._registry_call("report_trust", reg.report_trust(self._node_id(), peer, self._sign), peer)
            await self._respond(peer, True)

        self._spawn(tell_registry())
        if not key:
            self._spawn(self._backfill(peer))
        await self._send_accept(peer)
        return {"node_id": peer, "status": "approved"}

    async def reject(self, peer: int, reason: str) -> dict[str, Any]:
        self.store.take_pending(peer)
        self._emit("handshake.rejected", {"peer_node_id": peer, "reason": reason})
        self._spawn(self._respond(peer, False))
        try:
            data = self._build(hs.REJECT, peer, reason=reason)
        except ValueError as exc:
            log.info("reject message not sent", peer=peer, error=str(exc))
        else:
            self._spawn(self._send_direct(peer, data))
        return {"node_id": peer, "status": "rejected"}

    async def revoke(self, peer: int) -> dict[str, Any]:
        was_trusted, _ = self.store.remove(peer)
        if not was_trusted:
            raise HandshakeError(f"handshake revoke: node {peer} was not trusted")
        self._emit("trust.revoked", {"peer_node_id": peer})

        async def notify_then_drop() -> None:
            # D-10: deliver the revoke while the tunnel still exists.
            try:
                await asyncio.wait_for(self._send_direct(peer, self._build(hs.REVOKE, peer)), REVOKE_DELIVERY_WAIT)
            except asyncio.TimeoutError:
                log.info("revoke notification not delivered in time", peer=peer)
            self._drop_tunnel(peer)
            await self._registry_call("revoke_trust", reg.revoke_trust(self._node_id(), peer, self._sign), peer)

        self._spawn(notify_then_drop())
        return {"node_id": peer, "status": "revoked"}

    def pending(self) -> dict[str, Any]:
        return {"pending": self.store.pending_list()}

    def trusted(self) -> dict[str, Any]:
        return {"trusted": self.store.trusted_list()}

    async def ipc(self, req: ipc.Message) -> dict[str, Any]:
        """Answer an IPC Handshake sub-command (the reply JSON object)."""
        if isinstance(req, ipc.HandshakeRequest):
            return await self.request(req.node_id, req.justification)
        if isinstance(req, ipc.HandshakeApprove):
            return await self.approve(req.node_id)
        if isinstance(req, ipc.HandshakeReject):
            return await self.reject(req.node_id, req.reason)
        if isinstance(req, ipc.HandshakePending):
            return self.pending()
        if isinstance(req, ipc.HandshakeTrusted):
            return self.trusted()
        if isinstance(req, ipc.HandshakeRevoke):
            return await self.revoke(req.node_id)
        raise TypeError(f"not a handshake request: {type(req).__name__}")

    # -- registry relay ------------------------------------------------------------

    async def consume_poll(self, reply: reg.Message) -> None:
        """The node's relay poller hands each ``poll_handshakes_ok`` here."""
        self.process_poll(reply)

    def process_poll(self, reply: reg.Message) -> int:
        """Apply a ``poll_handshakes_ok`` reply; returns how many entries it held."""
        now = self._clock()
        requests = reply.get("requests") or []
        responses = reply.get("responses") or []
        count = 0
        for entry in requests if isinstance(requests, list) else []:
            try:
                peer = reg.id_field(entry, "from_node_id")
            except (DecodeError, AttributeError, TypeError):
                continue
            justification = entry.get("justification") if isinstance(entry.get("justification"), str) else ""
            count += 1
            self._on_relayed_request(peer, justification, now)
        for entry in responses if isinstance(responses, list) else []:
            try:
                peer = reg.id_field(entry, "from_node_id")
            except (DecodeError, AttributeError, TypeError):
                continue
            count += 1
            if entry.get("accept") is True:
                if self.store.is_trusted(peer):
                    continue
                if not self.store.has_outgoing(peer, now):
                    log.warning("unsolicited relayed approval dropped", peer=peer)
                    continue
                self.store.trust(peer, "", now, mutual=True)
                self._spawn(self._backfill(peer))
            else:
                self.store.clear_outgoing(peer)
        return count

    def _on_relayed_request(self, peer: int, justification: str, now: float) -> None:
        self._emit("handshake.received", {"peer_node_id": peer, "justification": justification})
        if self.store.is_trusted(peer):
            self._spawn(self._respond(peer, True))
        elif self.store.has_outgoing(peer, now):
            self.store.trust(peer, "", now, mutual=True)
            self._emit("handshake.auto_approved", {"peer_node_id": peer, "reason": "mutual"})
            self._spawn(self._respond(peer, True))
            self._spawn(self._backfill(peer))
        else:
            self.store.add_pending(peer, "", justification, now)
            self._emit("handshake.pending", {"peer_node_id": peer, "justification": justification})
            self._spawn(self._backfill(peer))

    async def resync(self) -> None:
        """A1.8: after re-registration, report every trusted peer again.

        When the rendezvous itself restarted, a peer that has not re-registered
        yet is unknown to it and the report is refused; those reports are
        retried with backoff (about half a minute in all) instead of being lost.
        """
        pending = list(self.store.trusted)
        for delay in RESYNC_BACKOFF:
            if delay:
                await asyncio.sleep(delay)
            failed = []
            for peer in pending:
                if peer in self.store.trusted and not await self._registry_call(
                        "report_trust", reg.report_trust(self._node_id(), peer, self._sign), peer):
                    failed.append(peer)
            pending = failed
            if not pending:
                return


def _masked(exc: BaseException) -> str:
    """Registry errors as the reference words them (Q11)."""
    text = str(exc)
    return text if text.startswith("registry: ") else "registry: request failed"
