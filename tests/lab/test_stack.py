"""Path classification and the stack record: what ``pilot-lab status`` and the
NAT tests read a daemon's peer list with (pure; no root needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pilotgw.lab import Host, LabError, NatKind, NatRouter, Topology
from pilotgw.lab.stack import Agent, StackRecord, classify, needs_punch
from pilotgw.lab.topology import plan

BEACON = "198.51.100.10:9001"


def test_relay_is_the_beacon_endpoint() -> None:
    assert classify({"endpoint": BEACON, "authenticated": True}, BEACON) == "relay"
    assert classify({"endpoint": BEACON}, BEACON, punched=True) == "relay"


def test_direct_or_punched_by_caller_knowledge() -> None:
    peer = {"endpoint": "203.0.113.10:4000"}
    assert classify(peer, BEACON) == "direct"
    assert classify(peer, BEACON, punched=True) == "punched"


def test_reported_path_wins_and_unknown_values_are_ignored() -> None:
    assert classify({"endpoint": "203.0.113.10:1", "path": "relay"}, BEACON) == "relay"
    assert classify({"endpoint": BEACON, "path": "punched"}, BEACON) == "punched"
    assert classify({"endpoint": BEACON, "path": "carrier-pigeon"}, BEACON) == "relay"


def test_needs_punch_only_when_both_sides_filter() -> None:
    topo = Topology(
        "t",
        hosts=(Host("rv"), Host("pub")),
        nats=(
            NatRouter("n-fc", NatKind.FULL_CONE, (Host("fc"),)),
            NatRouter("n-pr", NatKind.PORT_RESTRICTED, (Host("pr"), Host("pr2"))),
            NatRouter("n-sym", NatKind.SYMMETRIC, (Host("sym"),)),
        ),
        rendezvous="rv",
    )
    layout = plan(topo, "abcdef")
    kinds = {"n-fc": NatKind.FULL_CONE, "n-pr": NatKind.PORT_RESTRICTED, "n-sym": NatKind.SYMMETRIC}
    assert needs_punch(layout, kinds, "pr", "sym")
    assert needs_punch(layout, kinds, "pr", "pr2")
    assert not needs_punch(layout, kinds, "pr", "fc")
    assert not needs_punch(layout, kinds, "pub", "sym")
    # The router changed kind while the lab runs: the current kind counts.
    assert not needs_punch(layout, {**kinds, "n-sym": NatKind.FULL_CONE}, "pr", "sym")


def test_stack_record_round_trips(tmp_path: Path) -> None:
    agent = Agent("alice", "plab-abcdef-alice", "192.168.1.10", tmp_path / "alice", tmp_path / "alice" / "pilot.sock",
                  tmp_path / "alice" / "daemon.log", node_id=7, address="0:0000.0000.0007", pid=42)
    rec = StackRecord("abcdef", "rv", "198.51.100.10:9000", BEACON, {"alice": agent}, {"web": "alice"})
    (tmp_path / "abcdef").mkdir()
    rec.save(tmp_path)
    back = StackRecord.load(tmp_path, "abcdef")
    assert back == rec
    assert agent.env(rec.registry) == {"HOME": str(tmp_path / "alice"), "PILOT_SOCKET": str(agent.socket),
                                      "PILOT_REGISTRY": "198.51.100.10:9000"}
    assert StackRecord.load(tmp_path, "123456") is None


def test_corrupt_stack_record_is_a_lab_error(tmp_path: Path) -> None:
    (tmp_path / "abcdef").mkdir()
    (tmp_path / "abcdef" / "stack.json").write_text('{"lab": "abcdef"}')
    with pytest.raises(LabError) as err:
        StackRecord.load(tmp_path, "abcdef")
    assert err.value.code == "bad-state"
