"""Registry handlers: reply shapes of §1.8 and the hardening of Part 3."""

from __future__ import annotations

import pytest

from pilotgw.overlay import registry as r
from pilotgw.rendezvous.registry_service import Conn, Limits, LongPoll, RegistryService

from tests.rendezvous.rvhelpers import Harness, Ident


@pytest.fixture
def h() -> Harness:
    return Harness()


def err(reply, code):
    assert reply == {"type": "error", "error": "request failed", "code": code}


def test_register_assigns_ids_from_4_and_uses_tcp_source_ip(h):
    a = Ident(1)
    reply = h.register(a, "203.0.113.9:4000", ip="10.0.0.7")
    assert reply == {
        "type": "register_ok", "node_id": 4, "network_id": 0, "address": "0:0000.0000.0004",
        "public_key": r.encode_public_key(a.pub),
    }
    assert h.svc.nodes[4].real_addr == "10.0.0.7:4000"


def test_register_without_port_uses_tcp_source_port():
    h = Harness()
    a = Ident(1)
    h.call(r.register(a.pub, ""), Conn("10.0.0.7", 61000))
    assert h.svc.nodes[4].real_addr == "10.0.0.7:61000"


@pytest.mark.parametrize(("msg", "code"), [
    ({"type": "register"}, "bad_request"),
    ({"type": "register", "public_key": "AAAA"}, "bad_key"),
])
def test_register_refuses_bad_keys(h, msg, code):
    err(h.call(msg), code)


def test_same_key_same_id_even_after_deregister(h):
    a = Ident(1)
    h.register(a)
    first = a.id
    h.signed(a, r.set_visibility, a.id, True)
    assert h.signed(a, r.deregister, a.id) == {"type": "deregister_ok"}
    assert a.id not in h.svc.nodes
    h.register(a)
    assert a.id == first
    assert h.svc.nodes[first].public is False  # reclaimed bare, as the reference does


def test_reregister_from_new_ip_waits_for_a_signed_request(h):
    """R-D2: someone replaying a known key cannot move the victim's endpoint."""
    a = Ident(1)
    h.register(a, "0.0.0.0:4000", ip="10.0.0.1")
    attacker = Conn("10.6.6.6", 1234)
    reply = h.call(r.register(a.pub, "0.0.0.0:9999"), attacker)
    assert reply["node_id"] == a.id
    assert h.svc.nodes[a.id].real_addr == "10.0.0.1:4000"
    # The real node moving networks proves itself on its new connection.
    moved = Conn("10.0.0.2", 5555)
    h.call(r.register(a.pub, "0.0.0.0:4001"), moved)
    assert h.svc.nodes[a.id].real_addr == "10.0.0.1:4000"
    assert h.call(r.heartbeat(a.id, a.key), moved)["type"] == "heartbeat_ok"
    assert h.svc.nodes[a.id].real_addr == "10.0.0.2:4001"


def test_same_ip_reregister_updates_endpoint_at_once(h):
    a = Ident(1)
    h.register(a, "0.0.0.0:4000", ip="10.0.0.1")
    h.call(r.register(a.pub, "0.0.0.0:4002"), Conn("10.0.0.1", 7))
    assert h.svc.nodes[a.id].real_addr == "10.0.0.1:4002"


def test_owner_never_takes_over_a_key(h):
    """R-D3: a new key with a known owner gets a new node."""
    a, b = Ident(1), Ident(2)
    h.register(a, owner="me@example.com")
    h.register(b, owner="me@example.com")
    assert b.id != a.id
    assert h.svc.nodes[a.id].key == a.pub


def test_register_rate_limit_per_ip_exempts_known_keys():
    h = Harness(RegistryService(Limits(register_per_minute=10)))
    idents = [Ident(i) for i in range(1, 12)]
    for ident in idents[:10]:
        h.register(ident, ip="10.0.0.1")
    err(h.call(r.register(idents[10].pub, ""), Conn("10.0.0.1", 1)), "rate_limited")
    assert h.call(r.register(idents[0].pub, ""), Conn("10.0.0.1", 1))["type"] == "register_ok"
    assert h.call(r.register(idents[10].pub, ""), Conn("10.0.0.2", 1))["type"] == "register_ok"


def test_register_hostname_rules(h):
    a, b, c = Ident(1), Ident(2), Ident(3)
    assert h.register(a, hostname="alice")["hostname"] == "alice"
    taken = h.register(b, hostname="alice")
    assert "hostname" not in taken and "hostname_error" not in taken
    assert h.register(c, hostname="Bad_Name")["hostname_error"].startswith("hostname must be lowercase")
    assert h.register(Ident(4), hostname="localhost")["hostname_error"] == 'hostname "localhost" is reserved'


def test_heartbeat_needs_valid_signature(h):
    a, b = Ident(1), Ident(2)
    h.register(a)
    h.register(b)
    assert h.signed(a, r.heartbeat, a.id) == {"type": "heartbeat_ok", "time": int(h.now)}
    err(h.call(r.heartbeat(a.id, None)), "auth")
    err(h.call(r.heartbeat(a.id, b.key)), "auth")
    err(h.call(r.heartbeat(999, a.key)), "not_found")


def test_lookup_shape_and_optional_fields(h):
    a = Ident(1)
    h.register(a, "0.0.0.0:4000")
    assert h.call(r.lookup(a.id)) == {
        "type": "lookup_ok", "node_id": a.id, "address": "0:0000.0000.0004", "networks": [0],
        "public_key": r.encode_public_key(a.pub), "public": False, "polo_score": 0,
    }
    h.signed(a, r.set_visibility, a.id, True)
    h.signed(a, r.set_tags, a.id, ["#gpu", "ml"])
    h.signed(a, r.set_task_exec, a.id, True)
    h.signed(a, r.set_hostname, a.id, "alice")
    reply = h.call(r.lookup(a.id))
    assert reply["tags"] == ["gpu", "ml"] and reply["task_exec"] is True
    assert reply["hostname"] == "alice" and reply["real_addr"] == "10.0.0.1:4000" and reply["public"] is True
    err(h.call(r.lookup(12345)), "not_found")


def test_resolve_private_needs_mutual_trust(h):
    """R-D1: one side's report is not enough; both reports are."""
    a, b = Ident(1), Ident(2)
    h.register(a)
    h.register(b, ip="10.0.0.2")
    err(h.signed(a, r.resolve, b.id, a.id), "denied")
    assert h.signed(a, r.report_trust, a.id, b.id) == {"type": "report_trust_ok"}
    err(h.signed(a, r.resolve, b.id, a.id), "denied")
    h.signed(b, r.report_trust, b.id, a.id)
    assert h.signed(a, r.resolve, b.id, a.id) == {"type": "resolve_ok", "node_id": b.id, "real_addr": "10.0.0.2:4000"}
    assert h.signed(a, r.revoke_trust, a.id, b.id) == {"type": "revoke_trust_ok"}
    err(h.signed(a, r.resolve, b.id, a.id), "denied")
    err(h.signed(a, r.revoke_trust, a.id, b.id), "not_found")


def test_one_sided_trust_switch_restores_reference_rule():
    h = Harness(RegistryService(Limits(one_sided_trust=True)))
    a, b = Ident(1), Ident(2)
    h.register(a)
    h.register(b)
    h.signed(a, r.report_trust, a.id, b.id)
    assert h.signed(a, r.resolve, b.id, a.id)["type"] == "resolve_ok"


def test_resolve_public_target_and_unknowns(h):
    a, b = Ident(1), Ident(2)
    h.register(a)
    h.register(b)
    h.signed(b, r.set_visibility, b.id, True)
    assert h.signed(a, r.resolve, b.id, a.id)["type"] == "resolve_ok"
    err(h.signed(a, r.resolve, 999, a.id), "denied")
    err(h.call(r.resolve(b.id, 999, a.key)), "denied")
    err(h.call(r.resolve(b.id, a.id, b.key)), "auth")


def test_handshake_relay_accept_creates_trust(h):
    a, b = Ident(1), Ident(2)
    h.register(a)
    h.register(b)
    assert h.signed(a, r.request_handshake, a.id, b.id, "let me in") == {
        "type": "request_handshake_ok", "status": "delivered"}
    err(h.signed(a, r.request_handshake, a.id, b.id, "again"), "conflict")
    polled = h.signed(b, r.poll_handshakes, b.id)
    assert polled == {
        "type": "poll_handshakes_ok",
        "requests": [{"from_node_id": a.id, "justification": "let me in", "timestamp": int(h.now)}],
        "responses": [],
    }
    assert h.signed(b, r.poll_handshakes, b.id)["requests"] == []  # cleared
    assert h.signed(b, r.respond_handshake, b.id, a.id, True) == {
        "type": "respond_handshake_ok", "accept": True, "peer_id": a.id}
    assert h.signed(a, r.poll_handshakes, a.id)["responses"] == [
        {"from_node_id": b.id, "accept": True, "timestamp": int(h.now)}]
    assert h.signed(a, r.resolve, b.id, a.id)["type"] == "resolve_ok"
    assert h.signed(b, r.resolve, a.id, b.id)["type"] == "resolve_ok"


def test_unsolicited_accept_does_not_grant_resolve(h):
    """R-D1: respond_handshake without a request counts as one side only."""
    a, b = Ident(1), Ident(2)
    h.register(a)
    h.register(b)
    h.signed(a, r.respond_handshake, a.id, b.id, True)
    err(h.signed(a, r.resolve, b.id, a.id), "denied")


def test_inbox_limits():
    h = Harness(RegistryService(Limits(inbox_max=2, responses_max=2, justification_max=10)))
    target = Ident(1)
    h.register(target)
    senders = [Ident(i) for i in range(2, 5)]
    for s in senders:
        h.register(s)
    h.signed(senders[0], r.request_handshake, senders[0].id, target.id, "x")
    h.signed(senders[1], r.request_handshake, senders[1].id, target.id, "x")
    err(h.signed(senders[2], r.request_handshake, senders[2].id, target.id, "x"), "limit")
    err(h.signed(senders[2], r.request_handshake, senders[2].id, senders[0].id, "y" * 11), "too_large")
    for s in senders:
        h.signed(s, r.respond_handshake, s.id, target.id, False)
    responses = h.signed(target, r.poll_handshakes, target.id)["responses"]
    assert [x["from_node_id"] for x in responses] == [senders[1].id, senders[2].id]


def test_long_poll_only_when_inbox_empty(h):
    a, b = Ident(1), Ident(2)
    h.register(a)
    h.register(b)
    woken = []
    h.svc.notify = woken.append
    assert h.call(r.poll_handshakes(b.id, b.key, wait=5), h.conn(b)) == LongPoll(b.id, 5.0)
    h.signed(a, r.request_handshake, a.id, b.id, "hi")
    assert woken == [b.id]
    assert h.svc.drain_handshakes(b.id)["requests"][0]["from_node_id"] == a.id
    h.signed(a, r.request_handshake, a.id, b.id, "hi")  # inbox was cleared, so a new one is allowed
    assert h.call(r.poll_handshakes(b.id, b.key, wait=5), h.conn(b))["type"] == "poll_handshakes_ok"


def test_set_hostname_rules(h):
    a, b = Ident(1), Ident(2)
    h.register(a)
    h.register(b)
    assert h.signed(a, r.set_hostname, a.id, "alice") == {"type": "set_hostname_ok", "node_id": a.id, "hostname": "alice"}
    err(h.signed(b, r.set_hostname, b.id, "alice"), "conflict")
    err(h.signed(b, r.set_hostname, b.id, "-bad"), "invalid")
    assert h.call(r.resolve_hostname("alice")) == {
        "type": "resolve_hostname_ok", "node_id": a.id, "address": "0:0000.0000.0004", "public": False,
        "hostname": "alice"}
    h.signed(a, r.set_hostname, a.id, "")
    err(h.call(r.resolve_hostname("alice")), "not_found")
    err(h.call(r.resolve_hostname("")), "bad_request")


def test_set_tags_rules_and_null_for_empty(h):
    a = Ident(1)
    h.register(a)
    assert h.signed(a, r.set_tags, a.id, ["#a", "b-c"])["tags"] == ["a", "b-c"]
    assert h.signed(a, r.set_tags, a.id, []) == {"type": "set_tags_ok", "node_id": a.id, "tags": None}
    err(h.signed(a, r.set_tags, a.id, [str(i) for i in range(11)]), "invalid")
    err(h.signed(a, r.set_tags, a.id, ["UP"]), "invalid")
    err(h.signed(a, r.set_tags, a.id, ["#"]), "invalid")


def test_visibility_and_task_exec_replies(h):
    a = Ident(1)
    h.register(a)
    assert h.signed(a, r.set_visibility, a.id, True)["visibility"] == "public"
    assert h.call(r.set_visibility(a.id, "yes", a.key) | {"public": "yes"}, h.conn(a))["visibility"] == "private"
    assert h.signed(a, r.set_task_exec, a.id, True) == {"type": "set_task_exec_ok", "node_id": a.id, "task_exec": True}


def test_deregister_unknown_is_ok_and_known_needs_signature(h):
    a, b = Ident(1), Ident(2)
    h.register(a, hostname="alice")
    h.register(b)
    assert h.call({"type": "deregister", "node_id": 999}) == {"type": "deregister_ok"}
    err(h.call(r.deregister(a.id, b.key)), "auth")
    h.signed(a, r.deregister, a.id)
    assert "alice" not in h.svc.hostnames


def test_punch_applies_privacy_rule(h):
    a, b = Ident(1), Ident(2)
    h.register(a)
    h.register(b, ip="10.0.0.2")
    err(h.signed(a, r.punch, a.id, a.id, b.id), "denied")
    err(h.call(r.punch(b.id, a.id, b.id, a.key)), "auth")
    h.signed(b, r.set_visibility, b.id, True)
    assert h.signed(a, r.punch, a.id, a.id, b.id) == {
        "type": "punch_ok", "node_a": a.id, "node_a_addr": "10.0.0.1:4000", "node_b": b.id,
        "node_b_addr": "10.0.0.2:4000"}
    err(h.signed(a, r.punch, 77, a.id, b.id), "denied")


def test_polo_writes_need_an_authenticated_connection(h):
    a = Ident(1)
    h.register(a)
    err(h.call(r.update_polo_score(a.id, 5)), "auth")
    h.signed(a, r.heartbeat, a.id)
    assert h.call(r.update_polo_score(a.id, 5), h.conn(a))["polo_score"] == 5
    err(h.call(r.update_polo_score(a.id, 10**6), h.conn(a)), "invalid")
    err(h.call({"type": "update_polo_score", "node_id": a.id}, h.conn(a)), "bad_request")
    assert h.call({"type": "set_polo_score", "node_id": a.id, "polo_score": 7}, h.conn(a))["polo_score"] == 7
    assert h.call(r.get_polo_score(a.id)) == {
        "type": "get_polo_score_ok", "node_id": a.id, "address": "0:0000.0000.0004", "polo_score": 7}


def test_networks_and_disabled_calls(h):
    a = Ident(1)
    h.register(a)
    assert h.call(r.list_networks()) == {
        "type": "list_networks_ok", "networks": [{"id": 0, "name": "backbone", "members": 1, "join_rule": "open"}]}
    err(h.call(r.list_nodes(0)), "denied")
    err(h.call(r.list_nodes(7)), "not_found")
    err(h.call({"type": "create_network", "node_id": a.id}), "disabled")
    err(h.call({"type": "rotate_key", "node_id": a.id}), "disabled")


def test_unknown_type_and_metrics_label(h):
    err(h.call({"type": "nope"}), "unknown_type")
    err(h.call({}), "unknown_type")
    assert h.svc.metrics.requests["unknown"] == 2
    assert "nope" not in h.svc.metrics.requests


def test_subscribe_replication_refused_and_closes(h):
    msg = {"type": "subscribe_replication", "token": "x"}
    assert h.call(msg) == {"type": "error", "error": "replication not configured", "code": "disabled"}
    assert h.svc.closes_connection(msg)


def test_beacon_register_needs_allowlist():
    h = Harness(RegistryService(Limits(beacon_allow=frozenset({"10.0.0.5"}))))
    msg = {"type": "beacon_register", "beacon_id": 3, "addr": "10.0.0.5:9001"}
    err(h.call(msg, Conn("10.0.0.6", 1)), "denied")
    assert h.call(msg, Conn("10.0.0.5", 1)) == {"type": "beacon_register_ok", "beacon_id": 3}
    assert h.call({"type": "beacon_list"}) == {"type": "beacon_list_ok", "beacons": [{"id": 3, "addr": "10.0.0.5:9001"}]}


def test_request_flood_from_one_ip_is_limited_but_others_served():
    h = Harness(RegistryService(Limits(requests_per_second=10, request_burst=10)))
    flood = Conn("10.6.6.6", 1)
    replies = [h.call(r.list_networks(), flood) for _ in range(20)]
    assert sum(1 for x in replies if x.get("code") == "rate_limited") == 10
    assert h.call(r.list_networks(), Conn("10.0.0.1", 1))["type"] == "list_networks_ok"


def test_max_nodes_limit():
    h = Harness(RegistryService(Limits(max_nodes=1)))
    h.register(Ident(1))
    err(h.call(r.register(Ident(2).pub, "")), "limit")


def test_reap_removes_stale_nodes_but_keeps_trust_and_ids(h):
    a, b = Ident(1), Ident(2)
    h.register(a)
    h.register(b)
    h.signed(a, r.report_trust, a.id, b.id)
    h.signed(b, r.report_trust, b.id, a.id)
    h.svc.nodes[b.id].last_seen -= 1000
    assert h.svc.reap(h.now) == 1
    assert b.id not in h.svc.nodes and h.svc.trust
    old = b.id
    h.register(b)
    assert b.id == old
