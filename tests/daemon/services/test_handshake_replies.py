"""D-8: requests that change nothing keep the reference's success replies
(scripts depend on them) and really change nothing (trust-and-ipc.md Part C)."""

from __future__ import annotations

from tests.daemon.services.test_handshake_service import Net, aio


@aio
async def test_approve_and_reject_of_unknown_nodes_reply_success_and_trust_nobody():
    net = Net()
    a = net.add(1)
    assert await a.approve(99) == {"node_id": 99, "status": "approved"}
    assert await a.reject(98, "no") == {"node_id": 98, "status": "rejected"}
    await net.settle()
    assert not a.store.is_trusted(99) and not a.store.trusted and not a.store.pending
    assert "report_trust" not in net.registry.types()  # nothing reported for a node never pending


@aio
async def test_handshake_to_an_already_trusted_peer_replies_sent_without_already_trusted_status():
    net = Net()
    a, b = net.add(1), net.add(2)
    await a.request(2, "hello")
    await net.settle()
    await b.approve(1)
    await net.settle()
    assert a.store.is_trusted(2)
    b_pending_before = dict(b.store.pending)
    assert await a.request(2, "again") == {"node_id": 2, "status": "sent"}
    await net.settle()
    assert b.store.pending == b_pending_before  # nothing was sent
