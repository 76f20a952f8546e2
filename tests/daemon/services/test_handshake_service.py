"""Handshake service between in-memory nodes: flows, relay, forgery checks."""

from __future__ import annotations

import asyncio
import base64
import functools

import pytest

from pilotgw.daemon.services import handshake as hsvc
from pilotgw.daemon.services.handshake import HandshakeError, Handshakes
from pilotgw.daemon.trust import TrustStore
from pilotgw.overlay import handshake as hs
from pilotgw.overlay import identity
from pilotgw.overlay.address import Addr, SocketAddr

hsvc.CLOSE_DELAY = 0.0


def aio(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return asyncio.run(asyncio.wait_for(fn(*args, **kwargs), 30))
    return wrapper


class Hooks:
    def __init__(self):
        self.events = []

    def emit(self, name, data=None):
        self.events.append((name, data))

    def names(self):
        return [e[0] for e in self.events]


class FakeRegistry:
    def __init__(self):
        self.keys: dict[int, bytes] = {}
        self.calls: list[dict] = []
        self.down = False

    async def request(self, msg, *, timeout=None):
        if self.down:
            raise OSError("registry unreachable")
        self.calls.append(msg)
        return {"type": msg["type"] + "_ok"}

    async def lookup_key(self, node, *, refresh=False):
        if self.down:
            raise OSError("registry unreachable")
        return self.keys[node]

    def types(self):
        return [c["type"] for c in self.calls]


class Pipe:
    """Writer half of an in-memory one-way stream into a StreamReader."""

    def __init__(self, reader):
        self.reader = reader

    def write(self, data):
        self.reader.feed_data(data)

    async def drain(self):
        pass

    def close(self):
        self.reader.feed_eof()


class Net:
    def __init__(self):
        self.registry = FakeRegistry()
        self.nodes: dict[int, Handshakes] = {}
        self.hooks: dict[int, Hooks] = {}
        self.unreachable: set[int] = set()
        self.dropped: list[tuple[int, int]] = []
        self.tasks = []

    def add(self, node: int, tmp=None) -> Handshakes:
        ident = identity.generate()
        self.registry.keys[node] = ident.public_key
        hooks = Hooks()
        svc = Handshakes(
            TrustStore(tmp), node_id=lambda: node, sign=ident.sign, public_key=ident.public_key,
            registry=self.registry, dial=self._dialer(node), webhooks=hooks,
            drop_tunnel=lambda peer: self.dropped.append((node, peer)),
        )
        svc.identity = ident
        self.nodes[node], self.hooks[node] = svc, hooks
        return svc

    def _dialer(self, me):
        async def dial(addr, port):
            if addr.node in self.unreachable or addr.node not in self.nodes:
                raise ConnectionRefusedError("connection refused")
            reader = asyncio.StreamReader()
            task = asyncio.ensure_future(self.nodes[addr.node].handle(reader, None, SocketAddr(Addr(0, me), 49152)))
            self.tasks.append(task)
            return None, Pipe(reader)
        return dial

    async def settle(self):
        for _ in range(5):
            await asyncio.sleep(0.01)
            for svc in self.nodes.values():
                if svc._tasks:
                    await asyncio.wait(list(svc._tasks))
            if self.tasks:
                await asyncio.wait(self.tasks)


@aio
async def test_request_pending_approve_trusts_both_sides():
    net = Net()
    a, b = net.add(1), net.add(2)
    assert await a.request(2, "let me in") == {"node_id": 2, "status": "sent"}
    await net.settle()
    assert b.pending()["pending"][0]["justification"] == "let me in"
    assert net.hooks[2].names() == ["handshake.received", "handshake.pending"]
    assert await b.approve(1) == {"node_id": 1, "status": "approved"}
    await net.settle()
    assert a.store.trusted[2].mutual and not b.store.trusted[1].mutual
    assert a.store.trusted[2].public_key == base64.b64encode(b.identity.public_key).decode()
    assert b.pending() == {"pending": []}
    assert "report_trust" in net.registry.types() and "respond_handshake" in net.registry.types()
    assert ("handshake.approved", {"peer_node_id": 1}) in net.hooks[2].events


@aio
async def test_mutual_requests_auto_approve():
    net = Net()
    a, b = net.add(1), net.add(2)
    net.unreachable.add(2)  # A's request goes through the relay (B has not polled yet)
    await a.request(2, "a->b")
    net.unreachable.clear()
    await b.request(1, "b->a")  # reaches A directly: A asked B, so A auto-approves
    await net.settle()
    assert a.store.is_trusted(2) and b.store.is_trusted(1)
    assert a.store.trusted[2].mutual and b.store.trusted[1].mutual
    assert ("handshake.auto_approved", {"peer_node_id": 2, "reason": "mutual"}) in net.hooks[1].events
    b.process_poll({"requests": [{"from_node_id": 1, "justification": "a->b"}], "responses": []})
    await net.settle()
    assert not b.store.pending  # already trusted: answered, not stored


@aio
async def test_reject_clears_both_sides():
    net = Net()
    a, b = net.add(1), net.add(2)
    await a.request(2, "")
    await net.settle()
    assert await b.reject(1, "no") == {"node_id": 1, "status": "rejected"}
    await net.settle()
    assert not a.store.outgoing and not b.store.pending and not a.store.trusted
    assert ("handshake.rejected", {"peer_node_id": 1, "reason": "no"}) in net.hooks[2].events


@aio
async def test_revoke_notifies_peer_then_drops_tunnel():
    net = Net()
    a, b = net.add(1), net.add(2)
    await a.request(2, "")
    await net.settle()
    await b.approve(1)
    await net.settle()
    assert await a.revoke(2) == {"node_id": 2, "status": "revoked"}
    await net.settle()
    assert not b.store.is_trusted(1) and not a.store.is_trusted(2)
    assert (1, 2) in net.dropped and (2, 1) in net.dropped
    assert ("trust.revoked_by_peer", {"peer_node_id": 1}) in net.hooks[2].events
    with pytest.raises(HandshakeError, match="^handshake revoke: node 2 was not trusted$"):
        await a.revoke(2)


@aio
async def test_relay_when_direct_fails_and_relayed_approval():
    net = Net()
    a, b = net.add(1), net.add(2)
    net.unreachable.add(2)
    await a.request(2, "via registry")
    assert net.registry.types() == ["request_handshake"]
    b.process_poll({"requests": [{"from_node_id": 1, "justification": "via registry", "timestamp": 1}], "responses": []})
    await net.settle()
    assert b.store.pending[1].public_key  # D-9: key backfilled
    assert net.hooks[2].names() == ["handshake.received", "handshake.pending"]
    a.process_poll({"requests": [], "responses": [{"from_node_id": 2, "accept": True}]})
    await net.settle()
    assert a.store.is_trusted(2) and a.store.trusted[2].public_key  # backfilled


@aio
async def test_relay_error_text():
    net = Net()
    a = net.add(1)
    net.registry.down = True
    with pytest.raises(HandshakeError, match="^handshake request: handshake relay: registry: request failed$"):
        await a.request(9, "")


@aio
async def test_oversized_request_is_refused():
    net = Net()
    a = net.add(1)
    with pytest.raises(HandshakeError, match=r"^handshake request: message too large \(max 4096 bytes\)$"):
        await a.request(2, "x" * 5000)


def forged(net, kind, sender, receiver, key=None, now=None, justification=""):
    ident = key or net.nodes[sender].identity
    import time
    msg = hs.build(kind, sender, receiver, ident._private, now or time.time(), justification=justification)
    return msg


@aio
async def test_forged_messages_have_no_effect():
    net = Net()
    a, b = net.add(1), net.add(2)
    mallory = identity.generate()
    # wrong key: signed by a key that is not node 1's registered key
    assert not await b.receive(forged(net, hs.REQUEST, 1, 2, key=mallory), source=1)
    # node_id is not the stream's source
    assert not await b.receive(forged(net, hs.REQUEST, 1, 2), source=3)
    # unsolicited accept
    assert not await b.receive(forged(net, hs.ACCEPT, 1, 2), source=1)
    assert not b.store.trusted and not b.store.pending
    # replay of a valid message
    msg = forged(net, hs.REQUEST, 1, 2)
    assert await b.receive(msg, source=1)
    assert not await b.receive(msg, source=1)
    # stale
    assert not await b.receive(forged(net, hs.REQUEST, 1, 2, now=1_000_000), source=1)
    # unsigned
    unsigned = hs.HandshakeMsg(hs.REQUEST, 1, timestamp=msg.timestamp)
    assert not await b.receive(unsigned, source=1)
    # revoke signed by the wrong key does not drop trust
    await b.approve(1)
    assert not await b.receive(forged(net, hs.REVOKE, 1, 2, key=mallory), source=1)
    assert b.store.is_trusted(1)


@aio
async def test_unsolicited_relayed_approval_is_ignored():
    net = Net()
    a = net.add(1)
    a.process_poll({"requests": [], "responses": [{"from_node_id": 7, "accept": True}]})
    assert not a.store.is_trusted(7)


@aio
async def test_registry_down_request_goes_pending_unverified_accept_dropped():
    net = Net()
    a, b = net.add(1), net.add(2)
    net.registry.down = True
    assert await b.receive(forged(net, hs.REQUEST, 1, 2), source=1)
    assert not b.store.pending[1].key_verified
    b.store.add_outgoing(1, b._clock())
    assert not await b.receive(forged(net, hs.ACCEPT, 1, 2), source=1)
    assert not b.store.is_trusted(1)


@aio
async def test_handle_reads_multi_segment_message():
    net = Net()
    b = net.add(2)
    net.add(1)
    data = hs.encode(forged(net, hs.REQUEST, 1, 2, justification="y" * 3000))
    reader = asyncio.StreamReader()
    for i in range(0, len(data), 1000):
        reader.feed_data(data[i:i + 1000])
    reader.feed_eof()
    await b.handle(reader, None, SocketAddr(Addr(0, 1), 50000))
    assert b.store.pending[1].justification == "y" * 3000


@aio
async def test_resync_retries_reports_the_registry_refused(monkeypatch):
    """After a rendezvous restart the peer may re-register after us: its trust
    report is refused at first and must be retried, not lost (R-D17)."""
    monkeypatch.setattr(hsvc, "RESYNC_BACKOFF", (0.0, 0.01, 0.01))
    net = Net()
    a, b = net.add(1), net.add(2)
    await a.request(2, "hi")
    await net.settle()
    await b.approve(1)
    await net.settle()
    net.registry.calls.clear()
    refusals = {"left": 1}
    real = net.registry.request

    async def flaky(msg, *, timeout=None):
        if msg["type"] == "report_trust" and refusals["left"]:
            refusals["left"] -= 1
            raise OSError("registry: request failed")  # peer not registered yet
        return await real(msg, timeout=timeout)

    net.registry.request = flaky
    await a.resync()
    assert [c["type"] for c in net.registry.calls] == ["report_trust"]
    assert net.registry.calls[0]["peer_id"] == 2
