"""Beacon rules: STUN reply, punch, relay and the R-D7/R-D10 hardening."""

from __future__ import annotations

from pilotgw.overlay import beacon as b
from pilotgw.rendezvous.beacon_service import BeaconService

A = ("10.0.0.1", 4000)
B = ("10.0.0.2", 5000)
EVIL = ("10.6.6.6", 6666)


def discover(svc, node, addr, now=0.0):
    return svc.datagram(b.encode(b.Discover(node)), addr, now)


def test_discover_replies_with_observed_endpoint_and_skips_node_zero():
    svc = BeaconService()
    assert discover(svc, 0, A) == [(b.encode(b.DiscoverReply(*A)), A)]
    assert svc.nodes == {}
    discover(svc, 5, ("::ffff:10.0.0.1", 4000, 0, 0))
    assert svc.nodes[5][0] == ("::ffff:10.0.0.1", 4000)


def test_fresh_mapping_is_not_stolen_but_expires():
    svc = BeaconService()
    discover(svc, 5, A, now=0.0)
    reply = discover(svc, 5, EVIL, now=10.0)
    assert reply == [(b.encode(b.DiscoverReply(*EVIL)), EVIL)]  # still gets its STUN answer
    assert svc.nodes[5][0] == A
    discover(svc, 5, EVIL, now=61.0)
    assert svc.nodes[5][0] == EVIL
    assert svc.expire(1000.0) == 1 and svc.nodes == {}


def test_registry_endpoint_ip_allows_takeover_from_the_same_host():
    svc = BeaconService(endpoint_ip=lambda node: "10.0.0.1")
    discover(svc, 5, A)
    discover(svc, 5, ("10.0.0.1", 4444), now=1.0)
    assert svc.nodes[5][0] == ("10.0.0.1", 4444)


def test_punch_commands_reach_both_sides():
    svc = BeaconService()
    discover(svc, 9, B)
    out = svc.datagram(b.encode(b.PunchRequest(5, 9)), A, 1.0)
    assert out == [(b.encode(b.PunchCommand(*B)), A), (b.encode(b.PunchCommand(*A)), B)]
    assert svc.datagram(b.encode(b.PunchRequest(5, 77)), A, 1.0) == []


def test_punch_respects_privacy_hook_and_rate():
    svc = BeaconService(may_punch=lambda r, t: False)
    discover(svc, 9, B)
    assert svc.datagram(b.encode(b.PunchRequest(5, 9)), A, 1.0) == []
    svc = BeaconService(punch_rate=1, punch_burst=2)
    discover(svc, 9, B)
    sent = [svc.datagram(b.encode(b.PunchRequest(5, 9)), A, 1.0) for _ in range(4)]
    assert [len(x) for x in sent] == [2, 2, 0, 0]


def test_relay_forwards_only_from_the_recorded_sender_address():
    svc = BeaconService()
    discover(svc, 5, A)
    discover(svc, 9, B)
    relay = b.encode(b.Relay(5, 9, b"PILSdata"))
    assert svc.datagram(relay, A, 1.0) == [(b.encode(b.RelayDeliver(5, b"PILSdata")), B)]
    assert svc.metrics.relay_bytes == 8
    assert svc.datagram(relay, EVIL, 1.0) == []  # spoofed sender ID
    assert svc.datagram(b.encode(b.Relay(5, 77, b"x")), A, 1.0) == []
    assert svc.datagram(b.encode(b.Relay(5, 5, b"x")), A, 1.0) == []  # back to itself
    assert svc.datagram(b.encode(b.Relay(5, 9, b"")), A, 1.0) == []


def test_relay_requires_registration_when_hooked_and_is_rate_limited():
    svc = BeaconService(endpoint_ip=lambda node: None)
    discover(svc, 5, A)
    discover(svc, 9, B)
    assert svc.datagram(b.encode(b.Relay(5, 9, b"x")), A, 1.0) == []
    svc = BeaconService(relay_rate=1, relay_burst=3)
    discover(svc, 5, A)
    discover(svc, 9, B)
    sent = [svc.datagram(b.encode(b.Relay(5, 9, b"x")), A, 1.0) for _ in range(5)]
    assert [len(x) for x in sent] == [1, 1, 1, 0, 0]


def test_garbage_sync_and_beacon_replies_are_dropped():
    svc = BeaconService()
    for data in (b"", b"\x01", b"\x03\x00", b"\x07" + b"\x00" * 6, b"\x02\x04abcdef", b"\x06abcdx", b"\xff", b"PILT"):
        assert svc.datagram(data, A, 0.0) == []
    assert svc.nodes == {}
