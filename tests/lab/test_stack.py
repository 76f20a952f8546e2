"""Path classification and the stack record: what ``pilot-lab status`` and the
NAT tests read a daemon's peer list with (pure; no root needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pilotgw.lab import LabError
from pilotgw.lab.stack import Agent, StackRecord, classify

BEACON = "198.51.100.10:9001"


def test_the_daemons_reported_path_is_believed() -> None:
    # Even where the endpoint suggests otherwise: only the daemon knows
    # whether it punched, and a relayed entry's endpoint is the beacon.
    assert classify({"endpoint": "203.0.113.10:1", "path": "relay"}, BEACON) == "relay"
    assert classify({"endpoint": "203.0.113.10:1", "path": "punched"}, BEACON) == "punched"
    assert classify({"endpoint": "203.0.113.10:1", "path": "direct"}, BEACON) == "direct"


def test_without_a_valid_path_the_endpoint_tells_relay_from_direct() -> None:
    assert classify({"endpoint": BEACON, "authenticated": True}, BEACON) == "relay"
    assert classify({"endpoint": "203.0.113.10:4000"}, BEACON) == "direct"
    assert classify({"endpoint": BEACON, "path": "carrier-pigeon"}, BEACON) == "relay"
    assert classify({"endpoint": "203.0.113.10:4000", "path": 3}, BEACON) == "direct"


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
