"""The task files shared by the daemon and pilotctl (pilotgw.client.tasks):
atomic writes, the cross-process lock, scans, and the local operations'
contract errors."""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from pathlib import Path

import pytest

from pilotgw.client import tasks
from pilotgw.client.errors import PilotError
from pilotgw.overlay import tasksubmit as ts

NOW = 1736944496.0
ME, PEER = "0:0000.0000.0002", "0:0000.0000.0007"


def received(store: tasks.TaskStore, created: float = NOW, n: int | None = None) -> ts.TaskFile:
    task = ts.TaskFile.new(ts.new_task_id(None if n is None else bytes([n]) * 16), "job", PEER, ME, created)
    store.save(tasks.RECEIVED, task)
    return task


def test_save_is_atomic_private_and_without_trailing_newline(tmp_path: Path) -> None:
    store = tasks.TaskStore(tmp_path)
    task = received(store)
    path = store.path(tasks.RECEIVED, task.task_id)
    assert path.read_bytes() == task.to_json() and not path.read_bytes().endswith(b"\n")
    assert path.stat().st_mode & 0o777 == 0o600
    assert {p.name for p in (tmp_path / "tasks").iterdir()} == {"received", "submitted"}
    assert all((tmp_path / "tasks" / d).stat().st_mode & 0o777 == 0o700 for d in ("received", "submitted"))
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left


def test_paths_only_for_task_ids(tmp_path: Path) -> None:
    store = tasks.TaskStore(tmp_path)
    for bad in ("../x", "", "a" * 36, ts.new_task_id().upper()):
        with pytest.raises(ValueError):
            store.path(tasks.RECEIVED, bad)
    with pytest.raises(ValueError):
        store.save_result("../../x", "a.txt", b"")


def test_results_are_saved_under_a_safe_name(tmp_path: Path) -> None:
    store = tasks.TaskStore(tmp_path)
    tid = ts.new_task_id()
    path = store.save_result(tid, "../../../etc/cron.d/x.txt", b"data")
    assert path == tmp_path / "tasks" / "results" / f"{tid}_x.txt" and path.read_bytes() == b"data"
    assert store.save_result(tid, None, b"t").name == f"{tid}_result.txt"


def test_scan_sees_changes_and_skips_junk(tmp_path: Path) -> None:
    store = tasks.TaskStore(tmp_path)
    assert store.scan(tasks.RECEIVED) is None
    a = received(store, n=2)
    b = received(store, n=1)
    (tmp_path / "tasks" / "received" / f"{ts.new_task_id()}.json").write_text("{broken")
    (tmp_path / "tasks" / "received" / "README.json").write_text("{}")
    assert [t.task_id for t in store.scan(tasks.RECEIVED) or []] == [b.task_id, a.task_id]  # file-name order
    other = tasks.TaskStore(tmp_path)  # e.g. pilotctl, while the daemon's store has a cache
    tasks.accept(other, a.task_id, NOW + 5)
    assert {t.task_id: t.status for t in store.scan(tasks.RECEIVED) or []}[a.task_id] == "ACCEPTED"
    os.unlink(store.path(tasks.RECEIVED, b.task_id))
    assert [t.task_id for t in store.scan(tasks.RECEIVED) or []] == [a.task_id]


def _hold_lock(root: str, ready: "multiprocessing.synchronize.Event", release: "multiprocessing.synchronize.Event") -> None:
    with tasks.TaskStore(root).locked():
        ready.set()
        release.wait(10)


def test_lock_excludes_other_processes_and_is_reentrant(tmp_path: Path) -> None:
    store = tasks.TaskStore(tmp_path)
    with store.locked(), store.locked():  # re-entrant in one store
        pass
    ctx = multiprocessing.get_context("fork")
    ready, release = ctx.Event(), ctx.Event()
    proc = ctx.Process(target=_hold_lock, args=(str(tmp_path), ready, release))
    proc.start()
    try:
        assert ready.wait(10)
        t0 = time.monotonic()
        threading.Timer(0.3, release.set).start()
        with store.locked():
            waited = time.monotonic() - t0
    finally:
        release.set()
        proc.join(10)
    assert waited >= 0.25


def test_local_operations_and_their_errors(tmp_path: Path) -> None:
    store = tasks.TaskStore(tmp_path)
    task = received(store)
    with pytest.raises(PilotError) as err:
        tasks.accept(store, task.task_id, NOW + 61)
    assert (err.value.code, err.value.message) == (
        "expired", f"task {task.task_id} has expired (accept deadline was 1 minute after creation)")
    got = tasks.accept(store, task.task_id, NOW + 2)
    assert got.status == "ACCEPTED" and got.time_idle_ms == 2000
    assert store.load(tasks.RECEIVED, task.task_id).staged_at == ts.format_time(NOW + 2)  # head staged
    with pytest.raises(PilotError) as err:
        tasks.decline(store, task.task_id, "no", NOW + 3)
    assert (err.value.code, err.value.message) == ("invalid_state", f"task {task.task_id} is already ACCEPTED")
    started = tasks.execute(store, NOW + 10)
    assert started.status == "EXECUTING" and started.time_staged_ms == 8000
    results = tasks.prepare_results(store, task.task_id, "42", "", NOW + 70)
    assert results.task.time_cpu_ms == 60_000 and results.message.time_cpu_ms == 60_000
    assert results.message.result_text == "42" and results.data["sent_to"] == PEER
    with pytest.raises(PilotError) as err:
        tasks.prepare_results(store, task.task_id, "again", "", NOW + 80)
    assert err.value.code == "invalid_state"
    with pytest.raises(PilotError) as err:
        tasks.list_tasks(store, "everything")
    assert err.value.code == "invalid_argument"


def test_result_file_limits(tmp_path: Path) -> None:
    big = tmp_path / "big.bin"
    with open(big, "wb") as fh:
        fh.truncate(tasks.MAX_RESULT_FILE + 1)
    with pytest.raises(PilotError, match="file too large"):
        tasks.read_result_file(str(big))
    ok = tmp_path / "ok.CSV"
    ok.write_text("a,b\n")
    assert tasks.read_result_file(str(ok)) == ("ok.CSV", b"a,b\n")
    # The largest allowed file still fits one frame once base64-encoded.
    msg = ts.TaskResultMessage(ts.new_task_id(), "file", ts.format_time(NOW), filename="x" * 200 + ".bin",
                               file_data=b"\0" * tasks.MAX_RESULT_FILE, time_idle_ms=2**62)  # fmt: skip
    assert len(msg.payload()) <= ts.MAX_LENGTH
