"""Snapshot round trip, reference-format import, and refusal of corrupt files."""

from __future__ import annotations

import json

import pytest

from pilotgw.overlay import registry as r
from pilotgw.rendezvous import snapshot
from pilotgw.rendezvous.registry_service import RegistryService

from tests.rendezvous.rvhelpers import Harness, Ident


def populated() -> tuple[Harness, list[Ident]]:
    h = Harness()
    a, b, c = Ident(1), Ident(2), Ident(3)
    for ident in (a, b, c):
        h.register(ident)
    h.signed(a, r.set_hostname, a.id, "alice")
    h.signed(a, r.set_tags, a.id, ["gpu"])
    h.signed(a, r.set_visibility, a.id, True)
    h.signed(a, r.set_task_exec, a.id, True)
    h.signed(a, r.report_trust, a.id, b.id)
    h.signed(c, r.request_handshake, c.id, b.id, "hello")
    h.signed(b, r.respond_handshake, b.id, a.id, False)
    h.signed(c, r.deregister, c.id)
    return h, [a, b, c]


def test_round_trip_keeps_everything_that_matters():
    h, (a, b, c) = populated()
    data = snapshot.dump(h.svc, h.now)
    fresh = RegistryService()
    assert snapshot.load(fresh, data, h.now + 10) == []
    node = fresh.nodes[a.id]
    assert (node.hostname, node.tags, node.public, node.task_exec) == ("alice", ("gpu",), True, True)
    assert node.last_seen == h.now + 10  # R-D16: loaded nodes count as just seen
    assert fresh.hostnames == {"alice": a.id}
    assert fresh.trust == h.svc.trust
    assert fresh.inbox[b.id][0][:2] == (c.id, "hello")
    assert fresh.responses[a.id][0][:2] == (b.id, False)
    assert fresh.asked == h.svc.asked
    assert fresh.by_key[c.pub] == c.id and c.id not in fresh.nodes  # retired key keeps its ID
    assert fresh.next_node == h.svc.next_node
    assert snapshot.dump(fresh, h.now) == data


def test_cached_fragments_follow_changes():
    h, (a, *_rest) = populated()
    snapshot.dump(h.svc, h.now)
    h.signed(a, r.set_hostname, a.id, "alice2")
    fresh = RegistryService()
    snapshot.load(fresh, snapshot.dump(h.svc, h.now), h.now)
    assert fresh.nodes[a.id].hostname == "alice2"


def test_reference_snapshot_imports_with_bad_records_skipped():
    key = r.encode_public_key(Ident(1).pub)
    snap = {
        "next_node": 3, "next_net": 1,
        "nodes": {
            "1": {"id": 1, "public_key": key, "real_addr": "1.2.3.4:5", "networks": [0], "hostname": "a",
                  "last_seen": "2024-01-01T00:00:00Z"},
            "2": {"id": 2, "public_key": "", "networks": [0]},
            "9": {"id": 8, "public_key": key},
        },
        "networks": {"0": {"id": 0, "name": "backbone", "join_rule": "open", "members": [1, 2], "created": "x"}},
        "trust_pairs": ["1:2", "bogus"],
    }
    svc = RegistryService()
    warnings = snapshot.load(svc, json.dumps(snap).encode(), 100.0)
    assert list(svc.nodes) == [1]
    assert len(warnings) == 3
    assert svc.trust  # legacy pair counts as mutual
    assert svc.next_node == 4  # never below 4, never reusing a loaded ID


@pytest.mark.parametrize("data", [b"", b"{\"nodes\":{", b"[]", b"\xff\xfe", b'{"nodes":[]}', b'{"trust_pairs":{}}'])
def test_corrupt_snapshots_are_refused(data):
    with pytest.raises(snapshot.SnapshotError):
        snapshot.load(RegistryService(), data, 0.0)


def test_truncated_real_snapshot_is_refused():
    h, _ = populated()
    data = snapshot.dump(h.svc, h.now)
    with pytest.raises(snapshot.SnapshotError, match="truncated or corrupt"):
        snapshot.load(RegistryService(), data[: len(data) // 2], 0.0)
