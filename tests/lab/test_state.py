"""State files and the teardown decisions made from them (namespace calls are faked here;
tests/integration/test_lab_nat.py removes real labs)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from pilotgw.lab import state
from pilotgw.lab.errors import LabError
from pilotgw.lab.topology import builtin, plan


def record(lab_id: str, owner_pid: int | None = None, owner_start: int | None = None) -> state.LabRecord:
    topo = builtin("basic")
    return state.LabRecord(lab_id, topo, plan(topo, lab_id).namespaces, owner_pid, owner_start)


class FakeNetns:
    """Stands in for pilotgw.lab.netns: a set of existing namespaces."""

    def __init__(self, names: list[str]) -> None:
        self.names = set(names)
        self.removed: list[str] = []
        self.emptied: list[str] = []

    def kill_processes(self, names: list[str]) -> list[int]:
        self.emptied.extend(names)
        return []

    def list_all(self) -> list[str]:
        return sorted(self.names)

    def remove(self, name: str) -> bool:
        if name not in self.names:
            return False
        self.names.discard(name)
        self.removed.append(name)
        return True


@pytest.fixture
def fake_netns(monkeypatch: pytest.MonkeyPatch) -> FakeNetns:
    fake = FakeNetns([])
    monkeypatch.setattr(state.netns, "list_all", fake.list_all)
    monkeypatch.setattr(state.netns, "remove", fake.remove)
    monkeypatch.setattr(state.netns, "kill_processes", fake.kill_processes)
    return fake


def test_save_is_private_and_round_trips(tmp_path: Path) -> None:
    rec = record("abc123", os.getpid(), state.process_start_time(os.getpid()))
    state.save(rec, tmp_path / "labs")
    path = tmp_path / "labs" / "abc123.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "labs").stat().st_mode) == 0o700
    assert state.load(path) == rec
    assert state.find("abc123", tmp_path / "labs") == rec
    assert [p.name for p in (tmp_path / "labs").iterdir()] == ["abc123.json"]


def test_owner_alive_follows_pid_and_start_time() -> None:
    me = os.getpid()
    assert record("abc123", me, state.process_start_time(me)).owner_alive()
    assert not record("abc123", me, state.process_start_time(me) + 1).owner_alive()  # recycled pid
    assert not record("abc123").owner_alive()  # detached
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert not record("abc123", child.pid, 1).owner_alive()


def test_process_start_time_handles_odd_command_names(tmp_path: Path) -> None:
    odd = tmp_path / "we ird) (x"
    odd.symlink_to(sys.executable)
    proc = subprocess.Popen([str(odd), "-c", "import time; time.sleep(5)"])
    try:
        start = state.process_start_time(proc.pid)
        assert isinstance(start, int) and start >= state.process_start_time(os.getpid())
    finally:
        proc.kill()
        proc.wait()
    assert state.process_start_time(2**22 + 7) is None


@pytest.mark.parametrize(
    ("mutate", "needle"),
    [
        (lambda d: d.update(id="../etc"), "bad lab id"),
        (lambda d: d.update(namespaces=["plab-ffffff-rv"]), "namespaces"),
        (lambda d: d.update(namespaces=["plab-abc123-../x"]), "namespaces"),
        (lambda d: d.update(namespaces="plab-abc123-rv"), "namespaces"),
        (lambda d: d.update(owner_pid="1"), "owner_pid"),
        (lambda d: d.update(owner_start=True), "owner_start"),
        (lambda d: d.update(created=None), "created"),
        (lambda d: d.update(topology={"name": "x"}), "at least one"),
    ],
)
def test_bad_state_is_refused_not_obeyed(tmp_path: Path, mutate, needle: str) -> None:  # type: ignore[no-untyped-def]
    data = record("abc123").to_json()
    mutate(data)
    path = tmp_path / "abc123.json"
    path.write_text(json.dumps(data))
    with pytest.raises(LabError) as err:
        state.load(path)
    assert err.value.code == "bad-state" and needle in str(err.value)


def test_unreadable_files_are_reported_by_load_all(tmp_path: Path) -> None:
    state.save(record("abc123"), tmp_path)
    (tmp_path / "ffffff.json").write_text("{not json")
    records, errors = state.load_all(tmp_path)
    assert [r.lab_id for r in records] == ["abc123"]
    assert len(errors) == 1 and errors[0].code == "bad-state" and "ffffff.json" in str(errors[0])


def test_find_unknown_lab(tmp_path: Path) -> None:
    for lab_id in ("abc123", "../../x"):
        with pytest.raises(LabError) as err:
            state.find(lab_id, tmp_path)
        assert err.value.code == "unknown-lab"


def test_new_lab_id_avoids_taken_ids(tmp_path: Path, fake_netns: FakeNetns) -> None:
    lab_id = state.new_lab_id(tmp_path)
    assert len(lab_id) == 6 and int(lab_id, 16) >= 0
    state.save(record(lab_id), tmp_path)
    fake_netns.names.add("plab-0a0a0a-rv")
    for _ in range(200):
        assert state.new_lab_id(tmp_path) not in (lab_id, "0a0a0a")


def test_teardown_removes_namespaces_then_state(tmp_path: Path, fake_netns: FakeNetns) -> None:
    rec = record("abc123")
    state.save(rec, tmp_path)
    fake_netns.names.update(rec.namespaces[:3])  # a half-built lab
    homes = state.stack_dir(tmp_path, "abc123") / "alice" / ".pilot"
    homes.mkdir(parents=True)
    (homes / "identity.key").write_text("{}")
    removed = state.teardown(rec, tmp_path)
    assert fake_netns.emptied == rec.namespaces  # every process killed before any removal
    assert sorted(removed) == sorted(rec.namespaces[:3])
    assert not (tmp_path / "abc123.json").exists()
    assert not state.stack_dir(tmp_path, "abc123").exists()  # daemons' homes, sockets, logs
    assert state.teardown(rec, tmp_path) == []  # idempotent


def test_down_all_keeps_live_owners_and_removes_the_rest(tmp_path: Path, fake_netns: FakeNetns) -> None:
    me = os.getpid()
    live = record("aaaaaa", me, state.process_start_time(me))
    crashed = record("bbbbbb", 2**22 + 7, 12345)
    detached = record("cccccc")
    for rec in (live, crashed, detached):
        state.save(rec, tmp_path)
        fake_netns.names.update(rec.namespaces)
    fake_netns.names.update({"plab-dddddd-rv", "plab-dddddd-inet", "other-ns", "plabcheck-1"})
    report = state.down_all(tmp_path)
    assert report.kept == ["aaaaaa"]
    assert set(report.removed) == {"bbbbbb", "cccccc"}
    assert sorted(report.orphans) == ["plab-dddddd-inet", "plab-dddddd-rv"]
    assert fake_netns.names == set(live.namespaces) | {"other-ns", "plabcheck-1"}
    assert [p.name for p in tmp_path.glob("*.json")] == ["aaaaaa.json"]
    forced = state.down_all(tmp_path, force=True)
    assert set(forced.removed) == {"aaaaaa"} and fake_netns.names == {"other-ns", "plabcheck-1"}


def test_orphans_never_include_namespaces_of_recorded_labs(tmp_path: Path, fake_netns: FakeNetns) -> None:
    rec = record("abc123")
    state.save(rec, tmp_path)
    fake_netns.names.update(rec.namespaces)
    assert state.orphan_namespaces(tmp_path) == []
