"""State files: atomic writes, owner liveness, replay after a crash."""

from __future__ import annotations

import ipaddress
import json
import os
import stat
import subprocess
import sys

import pytest

from pilotgw.tun.errors import KernelError
from pilotgw.tun.leftovers import find_leftovers
from pilotgw.tun.netlink import Netlink
from pilotgw.tun.nft import Nft, render_ruleset
from pilotgw.tun.state import KernelRecord, atomic_write, cleanup_stale, current_owner, load_record, owner_alive

SUBNET = ipaddress.IPv4Network("10.4.0.0/16")


def test_atomic_write_replaces_with_mode_0600(tmp_path):
    path = tmp_path / "f.json"
    path.write_text("old")
    atomic_write(path, b"new")
    assert path.read_bytes() == b"new"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["f.json"]


def test_record_lists_intents_in_order(tmp_path):
    record = KernelRecord(tmp_path / "k.json")
    record.begin()
    record.intend({"kind": "link", "name": "pilot0"})
    record.intend({"kind": "rule", "dst": "10.4.0.0/16", "table": 4104, "priority": 4104})
    owner, items = load_record(tmp_path / "k.json")
    assert owner["pid"] == os.getpid()
    assert [item["kind"] for item in items] == ["link", "rule"]
    record.finish()
    assert not (tmp_path / "k.json").exists()


def test_record_never_deletes_a_file_it_did_not_claim(tmp_path):
    path = tmp_path / "k.json"
    path.write_text("someone else's")
    KernelRecord(path).finish()
    assert path.read_text() == "someone else's"


def test_owner_alive_for_us_and_not_for_a_dead_process():
    assert owner_alive(current_owner())
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert not owner_alive({**current_owner(), "pid": child.pid})
    assert not owner_alive({**current_owner(), "boot_id": "another boot"})
    assert not owner_alive({**current_owner(), "start_ticks": -1})


@pytest.mark.parametrize(
    "content",
    [
        b"not json",
        b"[]",
        json.dumps({"version": 1, "owner": {}, "items": [{"kind": "bomb"}]}).encode(),
        json.dumps({"version": 1, "owner": {}, "items": [{"kind": "route", "dst": "x", "table": 1}]}).encode(),
        json.dumps({"version": 9, "owner": {}, "items": []}).encode(),
    ],
)
def test_corrupt_state_file_is_a_clear_error(tmp_path, content):
    path = tmp_path / "k.json"
    path.write_bytes(content)
    with pytest.raises(KernelError) as err:
        load_record(path)
    assert err.value.code == "internal"
    assert str(path) in err.value.hint


def test_cleanup_without_state_file_does_nothing(tmp_path):
    assert cleanup_stale(tmp_path / "absent.json") == []


def test_cleanup_refuses_while_the_owner_runs(tmp_path):
    record = KernelRecord(tmp_path / "k.json")
    record.begin()
    with pytest.raises(KernelError) as err:
        cleanup_stale(tmp_path / "k.json")
    assert err.value.code == "already_exists"
    assert (tmp_path / "k.json").exists()


def test_cleanup_replays_a_dead_runs_record(namespace, tmp_path):
    """What a killed run left (rule, route on a vanished link, nft table) is removed."""
    path = tmp_path / "k.json"
    nft = Nft()
    nft.apply(render_ruleset("pilotgw_pilot0", SUBNET, 1234, None))
    with Netlink() as netlink:
        netlink.add_rule(SUBNET, 4104, 4104)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    items = [
        {"kind": "link", "name": "pilot0"},
        {"kind": "route", "dst": str(SUBNET), "table": 4104},
        {"kind": "rule", "dst": str(SUBNET), "table": 4104, "priority": 4104},
        {"kind": "nft_table", "name": "pilotgw_pilot0"},
    ]
    path.write_text(json.dumps({"version": 1, "owner": {**current_owner(), "pid": dead.pid}, "items": items}))
    assert sorted(find_leftovers(SUBNET)) == ["nft table ip pilotgw_pilot0", "rule 4104: to 10.4.0.0/16"]
    undone = cleanup_stale(path)
    assert undone[0] == "nft table pilotgw_pilot0" and len(undone) == 4
    assert find_leftovers(SUBNET) == []
    assert not path.exists()
