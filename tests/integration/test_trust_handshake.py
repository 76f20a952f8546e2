"""Trust between real daemons and a real rendezvous: direct and relayed
handshakes, approve/reject/untrust, persistence, enforcement, forgeries."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

import pilotgw
from pilotgw.overlay import handshake as hs
from pilotgw.overlay import identity


def run(coro, timeout: float = 60.0):
    return asyncio.run(asyncio.wait_for(coro, timeout))


@pytest.fixture
def node(rendezvous, start_daemon, tmp_path, monkeypatch):
    """``node("a", public=True)``: a daemon with its own $HOME."""

    def start(name, *flags, public=True):
        home = tmp_path / f"home-{name}"
        (home / ".pilot").mkdir(parents=True, exist_ok=True)
        ident = home / ".pilot" / "identity.key"  # trust.json goes next to it
        with monkeypatch.context() as m:
            m.setenv("HOME", str(home))
            d = start_daemon(rendezvous, name, *flags, "-identity", str(ident), public=public)
        d.home, d.identity = home, ident
        return d

    return start


async def call(d, method, *args):
    client = await pilotgw.connect(str(d.socket))
    try:
        return await getattr(client, method)(*args)
    finally:
        await client.close()


def wait_for(check, timeout=10.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def ids(entries):
    return {e["node_id"] for e in entries}


def test_request_pending_approve_trusts_both_sides(node):
    a, b = node("a"), node("b")
    assert run(call(a, "handshake", b.node_id, "hello")) == {"node_id": b.node_id, "status": "sent"}
    pending = wait_for(lambda: run(call(b, "pending")), what="pending at b")
    assert pending[0]["node_id"] == a.node_id and pending[0]["justification"] == "hello"
    assert pending[0]["public_key"] == a.info()["public_key"]
    assert run(call(b, "approve", a.node_id)) == {"node_id": a.node_id, "status": "approved"}
    wait_for(lambda: a.node_id in ids(run(call(b, "trusted"))) and b.node_id in ids(run(call(a, "trusted"))),
             what="trust on both sides")
    ta = {e["node_id"]: e for e in run(call(a, "trusted"))}
    assert ta[b.node_id]["mutual"] is True and ta[b.node_id]["public_key"] == b.info()["public_key"]
    assert run(call(b, "pending")) == []


def test_mutual_auto_approve_and_reject(node):
    a, b, c = node("a"), node("b"), node("c")
    run(call(a, "handshake", b.node_id, "a asks"))
    wait_for(lambda: run(call(b, "pending")), what="pending at b")
    run(call(b, "handshake", a.node_id, "b asks"))  # a asked first: a auto-approves
    wait_for(lambda: b.node_id in ids(run(call(a, "trusted"))) and a.node_id in ids(run(call(b, "trusted"))),
             what="mutual trust")
    # reject
    run(call(c, "handshake", a.node_id, "c asks"))
    wait_for(lambda: run(call(a, "pending")), what="pending at a")
    assert run(call(a, "reject", c.node_id, "no thanks")) == {"node_id": c.node_id, "status": "rejected"}
    assert run(call(a, "pending")) == []
    time.sleep(0.5)
    assert a.node_id not in ids(run(call(c, "trusted")))


def test_relayed_handshake_to_private_node_and_enforcement(node):
    a = node("a")
    b = node("b", public=False)
    c = node("c")
    start = time.monotonic()
    run(call(a, "handshake", b.node_id, "via relay"))
    pending = wait_for(lambda: run(call(b, "pending")), what="relayed request at b")
    assert time.monotonic() - start < 5  # long-poll: well under a heartbeat period
    assert pending[0]["node_id"] == a.node_id
    run(call(b, "approve", a.node_id))
    wait_for(lambda: b.node_id in ids(run(call(a, "trusted"))), what="relayed approval at a")

    async def dial_1001(d, target):
        client = await pilotgw.connect(str(d.socket))
        try:
            reader, writer = await client.dial(target, 1001)
            writer.close()
            return "ok"
        except Exception as exc:
            return str(exc)
        finally:
            await client.close()

    assert run(call(a, "dial", b.node_id, 7)) is not None  # echo always open
    assert run(dial_1001(a, b.node_id)) == "ok"
    # untrusted c cannot reach the private node's data exchange
    assert run(dial_1001(c, b.node_id)) != "ok"
    # untrust stops traffic
    assert run(call(b, "revoke", a.node_id)) == {"node_id": a.node_id, "status": "revoked"}
    wait_for(lambda: b.node_id not in ids(run(call(a, "trusted"))), what="revoke reaching a")
    result = run(dial_1001(a, b.node_id))
    assert result != "ok", result


def test_trust_survives_restart(node, start_daemon, rendezvous, monkeypatch):
    a, b = node("a"), node("b")
    run(call(a, "handshake", b.node_id, ""))
    wait_for(lambda: run(call(b, "pending")), what="pending")
    run(call(b, "approve", a.node_id))
    wait_for(lambda: b.node_id in ids(run(call(a, "trusted"))), what="trust")
    trust_file = b.identity.parent / "trust.json"
    assert oct(trust_file.stat().st_mode & 0o777) == "0o600"
    assert json.loads(trust_file.read_bytes())["trusted"][0]["node_id"] == a.node_id
    b.stop()
    b2 = node("b")
    assert b2.node_id == b.node_id
    assert a.node_id in ids(run(call(b2, "trusted")))


def _forge(kind, sender, receiver, key, **kw):
    return hs.encode(hs.build(kind, sender, receiver, key._private, time.time(), **kw))


async def _write_444(d, target, data):
    client = await pilotgw.connect(str(d.socket))
    try:
        reader, writer = await client.dial(target, 444)
        writer.write(data)
        await writer.drain()
        await asyncio.sleep(0.5)
        writer.close()
    finally:
        await client.close()


def test_forged_handshakes_have_no_effect(node):
    a, b, c = node("a"), node("b"), node("c")
    mallory = identity.load(c.identity)
    # c claims to be a (signed with c's key): wrong key and wrong source
    run(_write_444(c, b.node_id, _forge(hs.REQUEST, a.node_id, b.node_id, mallory, justification="forged")))
    # unsolicited accept from c
    run(_write_444(c, b.node_id, _forge(hs.ACCEPT, c.node_id, b.node_id, mallory)))
    time.sleep(0.5)
    assert run(call(b, "pending")) == [] and run(call(b, "trusted")) == []
    # a valid request, rejected, then replayed byte for byte: stays rejected
    valid = _forge(hs.REQUEST, c.node_id, b.node_id, mallory, justification="once")
    run(_write_444(c, b.node_id, valid))
    wait_for(lambda: run(call(b, "pending")), what="valid request")
    run(call(b, "reject", c.node_id, ""))
    run(_write_444(c, b.node_id, valid))
    time.sleep(0.5)
    assert run(call(b, "pending")) == []
    # b trusts a; a revoke claiming to be a (from c) changes nothing
    run(call(a, "handshake", b.node_id, ""))
    wait_for(lambda: run(call(b, "pending")), what="a's request")
    run(call(b, "approve", a.node_id))
    run(_write_444(c, b.node_id, _forge(hs.REVOKE, a.node_id, b.node_id, mallory)))
    time.sleep(0.5)
    assert a.node_id in ids(run(call(b, "trusted")))
