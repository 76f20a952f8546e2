"""Trust store: transitions, persistence format and atomicity, replay cache."""

from __future__ import annotations

import json
import os
import stat

import pytest
from hypothesis import given, settings, strategies as st

from pilotgw.daemon import trust
from pilotgw.daemon.trust import ReplayCache, TrustStore

NOW = 1_736_944_496.0


def test_trust_clears_pending_and_outgoing(tmp_path):
    store = TrustStore(tmp_path / "trust.json")
    store.add_outgoing(9, NOW)
    store.add_pending(9, "KEY", "hi", NOW)
    store.trust(9, "", NOW, mutual=True)
    assert store.is_trusted(9)
    assert 9 not in store.pending  # D-7
    assert not store.has_outgoing(9, NOW)
    assert store.trusted[9].public_key == "KEY"  # an empty key keeps the known one


def test_relayed_request_keeps_known_key(tmp_path):
    store = TrustStore(None)
    store.add_pending(5, "KEY", "direct", NOW)
    store.add_pending(5, "", "relayed", NOW + 1)
    assert store.pending[5].public_key == "KEY"
    assert store.pending[5].justification == "relayed"


def test_outgoing_expires_after_a_week():
    store = TrustStore(None)
    store.add_outgoing(3, NOW)
    assert store.has_outgoing(3, NOW + trust.OUTGOING_TTL - 1)
    assert not store.has_outgoing(3, NOW + trust.OUTGOING_TTL + 1)


def test_remove_reports_what_was_there():
    store = TrustStore(None)
    store.trust(4, "K", NOW, mutual=False)
    assert store.remove(4) == (True, False)
    assert store.remove(4) == (False, False)


def test_saved_file_is_0600_atomic_and_reloads(tmp_path):
    path = tmp_path / "sub" / "trust.json"
    store = TrustStore(path)
    store.trust(12, "PK", NOW, mutual=True, network=3)
    store.add_pending(9, "", "text <b>", NOW)
    store.add_outgoing(44, NOW)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
    assert not (tmp_path / "sub" / "trust.json.tmp").exists()
    raw = path.read_bytes()
    assert not raw.endswith(b"\n")
    doc = json.loads(raw)
    assert list(doc["trusted"][0]) == ["node_id", "public_key", "approved_at", "mutual", "network"]
    assert list(doc["pending"][0]) == ["node_id", "justification", "received_at"]  # empty key omitted
    assert doc["outgoing"][0]["node_id"] == 44
    again = TrustStore(path)
    assert again.trusted[12].approved_at == NOW and again.trusted[12].network == 3 and again.trusted[12].mutual
    assert again.pending[9].justification == "text <b>"
    assert again.has_outgoing(44, NOW)


def test_empty_state_writes_empty_trusted_list_and_no_pending(tmp_path):
    store = TrustStore(tmp_path / "t.json")
    store.trust(1, "", NOW, mutual=False)
    store.remove(1)
    assert json.loads((tmp_path / "t.json").read_bytes()) == {"trusted": []}


def test_reads_reference_file_shapes(tmp_path):
    path = tmp_path / "trust.json"
    path.write_text(json.dumps({
        "trusted": [{"node_id": 7, "public_key": "", "approved_at": "2025-01-15T12:34:56+01:00", "mutual": True},
                    {"node_id": "bad"}, "junk"],
        "pending": [{"node_id": 9, "received_at": "garbage"}],
    }))
    store = TrustStore(path)
    assert store.trusted[7].approved_at == 1736940896
    assert store.pending[9].received_at == trust.ZERO_TIME
    assert store.pending_list()[0]["received_at"] == -62135596800
    path.write_text('{"trusted": null}')
    assert TrustStore(path).trusted == {}


@pytest.mark.parametrize("content", [b"{not json", b"[1,2]", b"\xff\xfe", b"null"])
def test_corrupt_file_starts_empty(tmp_path, content):
    path = tmp_path / "trust.json"
    path.write_bytes(content)
    assert TrustStore(path).trusted == {}


def test_existing_world_readable_file_becomes_0600(tmp_path):
    path = tmp_path / "trust.json"
    path.write_text('{"trusted": []}')
    os.chmod(path, 0o666)
    TrustStore(path).trust(2, "", NOW, mutual=False)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_ipc_lists():
    store = TrustStore(None)
    store.trust(5, "K", NOW, mutual=True)
    store.add_pending(6, "P", "why", NOW)
    assert store.trusted_list() == [{"approved_at": int(NOW), "mutual": True, "network": 0, "node_id": 5, "public_key": "K"}]
    assert store.pending_list() == [{"justification": "why", "node_id": 6, "public_key": "P", "received_at": int(NOW)}]


def test_set_key_backfills_and_verifies():
    store = TrustStore(None)
    store.trust(5, "", NOW, mutual=True)
    store.add_pending(6, "CLAIMED", "", NOW, key_verified=False)
    store.set_key(5, "REG5")
    store.set_key(6, "REG6")
    assert store.trusted[5].public_key == "REG5"
    assert store.pending[6].public_key == "REG6" and store.pending[6].key_verified


def test_replay_cache_rejects_repeats_and_forgets_after_retention():
    cache = ReplayCache()
    assert cache.check_and_add(b"a", NOW)
    assert not cache.check_and_add(b"a", NOW + 100)
    assert cache.check_and_add(b"a", NOW + trust.REPLAY_RETENTION + trust.REPLAY_REAP_INTERVAL + 1)


@settings(max_examples=200, deadline=None)
@given(st.floats(min_value=0, max_value=4_000_000_000, allow_nan=False))
def test_time_round_trip(ts):
    assert trust.parse_time(trust.format_time(ts)) == float(int(ts))


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=40))
def test_parse_time_never_raises(text):
    trust.parse_time(text)


class _Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def test_inbound_policy_private_node_admits_only_trusted_except_444_and_7():
    store = TrustStore(None)
    store.trust(5, "", NOW, mutual=True)
    refused = []
    public = [False]
    clock = _Clock()
    policy = trust.InboundPolicy(store, is_public=lambda: public[0], local_node=lambda: 1,
                                 on_refused=lambda *a: refused.append(a), clock=clock)
    assert policy.check(5, 1001, "stream")          # trusted
    assert policy.check(9, 444, "stream")           # handshake always open
    assert policy.check(9, 7, "stream")             # echo always open
    assert policy.check(1, 1001, "stream")          # ourselves
    assert not policy.check(9, 1001, "stream")
    assert not policy.check(9, 1001, "stream")      # refused again, reported once
    assert not policy.check(9, 5000, "datagram")
    assert refused == [(9, 1001, "stream"), (9, 5000, "datagram")]
    clock.t = trust.REFUSAL_REPORT_INTERVAL + 1
    assert not policy.check(9, 1001, "stream")
    assert len(refused) == 3 and policy.refused == 4
    public[0] = True                                # public nodes behave as the reference
    assert policy.check(9, 1001, "stream")
    store.remove(5)
    public[0] = False
    assert not policy.check(5, 1001, "stream")      # untrust stops traffic


def test_inbound_policy_explicit_mode():
    store = TrustStore(None)
    assert trust.InboundPolicy(store, is_public=lambda: False, local_node=lambda: 1, mode="open").check(9, 1001, "stream")
    assert not trust.InboundPolicy(store, is_public=lambda: True, local_node=lambda: 1, mode="trusted").check(9, 1001, "stream")
    with pytest.raises(ValueError):
        trust.InboundPolicy(store, is_public=lambda: True, local_node=lambda: 1, mode="closed")
