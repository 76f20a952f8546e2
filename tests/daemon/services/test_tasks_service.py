"""The port-1003 task service: submit/status/results handling and the
monitors, with in-memory streams, a fake registry and a fake dialer
(services-and-cli.md §A5.3-A5.6, C-1..C-5)."""

from __future__ import annotations

import asyncio
import functools
import json
import struct
from pathlib import Path
from typing import Any

import pytest

from pilotgw.client.tasks import RECEIVED, SUBMITTED, TaskStore
from pilotgw.daemon.services import tasks as svcmod
from pilotgw.daemon.services.tasks import TaskService
from pilotgw.overlay import tasksubmit as ts
from pilotgw.overlay.address import Addr, SocketAddr

ME = Addr(0, 2)
PEER = Addr(0, 7)
OTHER = Addr(0, 9)
NOW = 1736944496.0

pytestmark = pytest.mark.timeout(60)


def aio(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return asyncio.run(asyncio.wait_for(fn(*args, **kwargs), 20))
    return wrapper


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


class Registry:
    def __init__(self, scores: dict[int, int] | None = None, fail: bool = False) -> None:
        self.scores = scores or {}
        self.fail = fail
        self.updates: list[tuple[int, int]] = []

    async def request(self, msg: dict[str, Any]) -> dict[str, Any]:
        if self.fail:
            raise ConnectionError("registry unreachable")
        node = msg["node_id"]
        if msg["type"] == "update_polo_score":
            self.updates.append((node, msg["delta"]))
            self.scores[node] = self.scores.get(node, 0) + msg["delta"]
        return {"type": msg["type"] + "_ok", "node_id": node, "polo_score": self.scores.get(node, 0)}


class Writer:
    def __init__(self) -> None:
        self.data = bytearray()
        self.closed = False

    def write(self, data: bytes) -> None:
        self.data += data

    async def drain(self) -> None:
        return None

    def close(self) -> None:
        self.closed = True


class Dialer:
    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.sent: list[tuple[Addr, int, bytes]] = []

    async def __call__(self, addr: Addr, port: int) -> tuple[Any, Writer]:
        if self.fail:
            raise ConnectionRefusedError("connection refused")
        writer = Writer()
        self.sent.append((addr, port, writer.data))
        return None, writer


def make(tmp_path: Path, registry: Registry | None = None, dialer: Dialer | None = None) -> tuple[TaskService, Clock]:
    clock = Clock()
    service = TaskService(TaskStore(tmp_path), me=lambda: ME, dial=dialer or Dialer(), registry=registry, clock=clock)
    return service, clock


async def serve(service: TaskService, data: bytes, peer: Addr = PEER) -> list[ts.Frame]:
    reader = asyncio.StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    writer = Writer()
    await service.handle(reader, writer, SocketAddr(peer, 49152))
    return ts.FrameAssembler().feed(bytes(writer.data))


async def submit(service: TaskService, task_id: str | None = None, peer: Addr = PEER, description: str = "job",
                 from_addr: str | None = None) -> ts.SubmitResponse:  # fmt: skip
    req = ts.SubmitRequest(task_id or ts.new_task_id(), description, from_addr or str(peer), str(ME))
    frames = await serve(service, req.encode(), peer)
    assert len(frames) == 1 and frames[0].type == ts.SUBMIT
    return ts.SubmitResponse.decode(frames[0])


# -- submit ---------------------------------------------------------------------------


@aio
async def test_submit_accepted_saves_the_task_with_the_real_sender(tmp_path: Path) -> None:
    service, _ = make(tmp_path, Registry({7: 3, 2: 3}))
    tid = ts.new_task_id()
    resp = await submit(service, tid, description="summarise")
    assert resp == ts.SubmitResponse(tid, 200, "Task received with status NEW")
    path = tmp_path / "tasks" / "received" / f"{tid}.json"
    doc = json.loads(path.read_text())
    assert doc == {"task_id": tid, "task_description": "summarise", "created_at": "2025-01-15T12:34:56Z",
                   "status": "NEW", "status_justification": "A new task was created", "from": str(PEER),
                   "to": str(ME)}  # fmt: skip
    assert path.stat().st_mode & 0o777 == 0o600 and path.parent.stat().st_mode & 0o777 == 0o700
    assert (tmp_path / "tasks" / "submitted").is_dir()


@aio
async def test_submit_rejections(tmp_path: Path) -> None:
    registry = Registry({7: 0, 2: 5})
    service, _ = make(tmp_path, registry)
    low = await submit(service)
    assert (low.status, low.message) == (400, "Polo score too low: submitter=0, receiver=5")
    registry.scores[7] = 5
    assert (await submit(service, "../../../etc/passwd")).message == "Invalid task ID"
    assert (await submit(service, from_addr=str(OTHER))).message == "from_addr does not match the sending node"
    assert (await submit(service, from_addr="garbage")).status == 400
    assert (await submit(service, description="x" * (svcmod.MAX_DESCRIPTION + 1))).status == 400
    tid = ts.new_task_id()
    assert (await submit(service, tid)).status == 200
    assert (await submit(service, tid)).message == "Duplicate task ID"
    registry.fail = True
    assert (await submit(service)).message == "Failed to verify polo score"
    assert list((tmp_path / "tasks" / "received").iterdir()) == [tmp_path / "tasks" / "received" / f"{tid}.json"]


@aio
async def test_without_registry_every_valid_submit_is_accepted(tmp_path: Path) -> None:
    service, _ = make(tmp_path, None)
    assert (await submit(service)).status == 200


@aio
async def test_submissions_per_peer_are_rate_limited(tmp_path: Path) -> None:
    service, clock = make(tmp_path)
    statuses = [(await submit(service)).status for _ in range(svcmod.SUBMIT_BURST + 1)]
    assert statuses[:-1] == [200] * svcmod.SUBMIT_BURST and statuses[-1] == 400
    assert (await submit(service, peer=OTHER)).status == 200  # per peer
    clock.now += 3
    assert (await submit(service)).status == 200


# -- status updates and results (tasks we submitted) -------------------------------------


def submitted_task(tmp_path: Path, to: Addr = PEER, created: float = NOW - 600) -> ts.TaskFile:
    task = ts.TaskFile.new(ts.new_task_id(), "job", str(ME), str(to), created)
    TaskStore(tmp_path).save(SUBMITTED, task)
    return task


def load(tmp_path: Path, category: str, task_id: str) -> ts.TaskFile:
    return TaskStore(tmp_path).load(category, task_id)


@aio
async def test_status_updates_only_from_the_worker(tmp_path: Path) -> None:
    service, _ = make(tmp_path)
    task = submitted_task(tmp_path)
    assert await serve(service, ts.TaskStatusUpdate(task.task_id, "ACCEPTED", "Task accepted").encode(), OTHER) == []
    assert load(tmp_path, SUBMITTED, task.task_id).status == "NEW"
    await serve(service, ts.TaskStatusUpdate(task.task_id, "HACKED", "x").encode())
    assert load(tmp_path, SUBMITTED, task.task_id).status == "NEW"
    # C-5: several frames on one connection are all read.
    frames = (ts.TaskStatusUpdate(task.task_id, "ACCEPTED", "Task accepted").encode()
              + ts.TaskStatusUpdate(task.task_id, "EXECUTING", "Task execution started").encode())
    assert await serve(service, frames) == []
    got = load(tmp_path, SUBMITTED, task.task_id)
    assert (got.status, got.status_justification) == ("EXECUTING", "Task execution started")
    await serve(service, ts.TaskStatusUpdate(ts.new_task_id(), "ACCEPTED", "").encode())  # unknown: ignored
    assert service.dropped == 3


@aio
async def test_text_results_complete_the_task_and_move_polo(tmp_path: Path) -> None:
    registry = Registry()
    service, clock = make(tmp_path, registry)
    task = submitted_task(tmp_path)
    msg = ts.TaskResultMessage(task.task_id, "text", ts.format_time(NOW), result_text="42",
                               time_idle_ms=30_000, time_cpu_ms=180_000)  # fmt: skip
    await serve(service, msg.encode())
    result = tmp_path / "tasks" / "results" / f"{task.task_id}_result.txt"
    assert result.read_bytes() == b"42" and result.stat().st_mode & 0o777 == 0o600
    done = load(tmp_path, SUBMITTED, task.task_id)
    assert (done.status, done.status_justification) == ("COMPLETED", "Task completed with results")
    assert (done.time_idle_ms, done.time_cpu_ms) == (30_000, 180_000)
    assert registry.updates == [(ME.node, -1), (PEER.node, 3)]
    # A replay is ignored: no second reward.
    await serve(service, msg.encode())
    assert registry.updates == [(ME.node, -1), (PEER.node, 3)]
    # The final status update still applies.
    await serve(service, ts.TaskStatusUpdate(task.task_id, "SUCCEEDED", "Task completed successfully").encode())
    assert load(tmp_path, SUBMITTED, task.task_id).status == "SUCCEEDED"


@aio
async def test_file_results_get_a_safe_name_and_claimed_times_are_capped(tmp_path: Path) -> None:
    registry = Registry()
    service, _ = make(tmp_path, registry)
    task = submitted_task(tmp_path, created=NOW - 60)
    msg = ts.TaskResultMessage(task.task_id, "file", ts.format_time(NOW), filename="../../../.bashrc",
                               file_data=b"\x89PNG", time_cpu_ms=10**12)  # fmt: skip
    await serve(service, msg.encode())
    assert [p.name for p in (tmp_path / "tasks" / "results").iterdir()] == [f"{task.task_id}_bashrc"]
    assert load(tmp_path, SUBMITTED, task.task_id).time_cpu_ms == 60_000
    assert registry.updates == [(ME.node, -1), (PEER.node, 2)]
    assert not (tmp_path / ".bashrc").exists()


@aio
async def test_results_from_another_node_or_for_foreign_tasks_are_dropped(tmp_path: Path) -> None:
    registry = Registry()
    service, _ = make(tmp_path, registry)
    task = submitted_task(tmp_path)
    msg = ts.TaskResultMessage(task.task_id, "text", ts.format_time(NOW), result_text="x")
    await serve(service, msg.encode(), OTHER)
    await serve(service, ts.TaskResultMessage(ts.new_task_id(), "text", "", result_text="x").encode())
    await serve(service, ts.TaskResultMessage("../x", "text", "", result_text="x").encode())
    assert load(tmp_path, SUBMITTED, task.task_id).status == "NEW"
    assert not (tmp_path / "tasks" / "results").exists() and registry.updates == []


@aio
async def test_bad_frames_end_the_connection_quietly(tmp_path: Path) -> None:
    service, _ = make(tmp_path)
    assert await serve(service, struct.pack(">II", 9, 2) + b"{}") == []  # unknown type: dropped
    assert await serve(service, struct.pack(">II", ts.SUBMIT, svcmod.MAX_CONTROL_FRAME + 1)) == []
    assert await serve(service, struct.pack(">II", ts.SUBMIT, 100) + b"{") == []  # truncated
    assert await serve(service, struct.pack(">II", ts.SUBMIT, 5) + b"nope!") == []  # not JSON
    assert await serve(service, b"\x00\x00") == []
    assert service.dropped == 3  # unknown type, oversize, not JSON


# -- monitors (A5.5, C-3, C-4) ---------------------------------------------------------------


@aio
async def test_new_tasks_are_cancelled_after_a_minute_and_the_submitter_told(tmp_path: Path, monkeypatch) -> None:
    dialer = Dialer()
    service, clock = make(tmp_path, Registry(), dialer)
    tid = ts.new_task_id()
    assert (await submit(service, tid)).status == 200
    own = ts.new_task_id()  # a task we submitted to ourselves: both copies change
    mine = ts.TaskFile.new(own, "self", str(ME), str(ME), NOW)
    TaskStore(tmp_path).save(RECEIVED, mine)
    TaskStore(tmp_path).save(SUBMITTED, mine)
    clock.now = NOW + 60
    assert service.sweep_new(clock.now) == []
    monkeypatch.setattr(svcmod, "CANCEL_INTERVAL", 0.01)
    clock.now = NOW + 75
    monitor = asyncio.ensure_future(service.monitor())
    for _ in range(200):
        await asyncio.sleep(0.01)
        if dialer.sent and dialer.sent[0][2]:
            break
    monitor.cancel()
    got = load(tmp_path, RECEIVED, tid)
    assert (got.status, got.status_justification) == ("CANCELLED", "Task cancelled: no response within 1 minute")
    assert got.time_idle_ms == 75_000 and got.accepted_at
    assert load(tmp_path, SUBMITTED, own).status == "CANCELLED" and load(tmp_path, RECEIVED, own).status == "CANCELLED"
    # Only the remote submitter is notified (C-4), once.
    assert len(dialer.sent) == 1
    addr, port, data = dialer.sent[0]
    assert (addr, port) == (PEER, 1003)
    upd = ts.TaskStatusUpdate.decode(ts.decode(bytes(data)))
    assert upd == ts.TaskStatusUpdate(tid, "CANCELLED", "Task cancelled: no response within 1 minute")


def accepted(tmp_path: Path, n: int, at: float) -> ts.TaskFile:
    task = ts.TaskFile.new(ts.new_task_id(bytes([n]) * 16), f"job {n}", str(PEER), str(ME), at - 10)
    task.set_status(ts.ACCEPTED, ts.JUST_ACCEPTED)
    task.record_response(at)
    TaskStore(tmp_path).save(RECEIVED, task)
    return task


@aio
async def test_queue_head_expires_after_an_hour(tmp_path: Path, monkeypatch) -> None:
    registry, dialer = Registry(), Dialer()
    service, clock = make(tmp_path, registry, dialer)
    first, second = accepted(tmp_path, 9, NOW), accepted(tmp_path, 1, NOW + 5)
    assert service.sweep_head(NOW + 10) == []  # stages the head (FIFO: "9" although "1" sorts first)
    assert load(tmp_path, RECEIVED, first.task_id).staged_at == ts.format_time(NOW + 10)
    assert not load(tmp_path, RECEIVED, second.task_id).staged_at
    assert service.sweep_head(NOW + 3610) == []
    monkeypatch.setattr(svcmod, "CANCEL_INTERVAL", 0.01)
    monkeypatch.setattr(svcmod, "EXPIRE_INTERVAL", 0.0)
    clock.now = NOW + 3611
    monitor = asyncio.ensure_future(service.monitor())
    for _ in range(200):
        await asyncio.sleep(0.01)
        if registry.updates and dialer.sent and dialer.sent[0][2]:
            break
    monitor.cancel()
    gone = load(tmp_path, RECEIVED, first.task_id)
    assert (gone.status, gone.status_justification) == ("EXPIRED", "Task expired: at head of queue for over 1 hour")
    assert gone.time_staged_ms == 3_601_000 and gone.execute_started_at
    nxt = load(tmp_path, RECEIVED, second.task_id)
    assert nxt.status == "ACCEPTED" and nxt.staged_at == ts.format_time(NOW + 3611)
    assert registry.updates == [(ME.node, -1)]
    upd = ts.TaskStatusUpdate.decode(ts.decode(bytes(dialer.sent[0][2])))
    assert upd == ts.TaskStatusUpdate(first.task_id, "EXPIRED", "Task expired: receiver did not execute within 1 hour")


def test_a_finished_head_never_expires(tmp_path: Path) -> None:
    service, _ = make(tmp_path)
    task = accepted(tmp_path, 3, NOW)
    service.sweep_head(NOW + 1)
    done = load(tmp_path, RECEIVED, task.task_id)
    done.set_status(ts.SUCCEEDED, ts.JUST_RESULTS_SENT)
    TaskStore(tmp_path).save(RECEIVED, done)
    assert service.sweep_head(NOW + 10**5) == []
    assert load(tmp_path, RECEIVED, task.task_id).status == "SUCCEEDED"


@aio
async def test_unreachable_submitter_is_only_logged(tmp_path: Path) -> None:
    service, _ = make(tmp_path, None, Dialer(fail=True))
    task = ts.TaskFile.new(ts.new_task_id(), "d", str(PEER), str(ME), NOW)
    await service._notify(task, "CANCELLED", ts.JUST_CANCELLED)  # no exception


@pytest.mark.parametrize("garbage", [b"not json", b"[]", b'{"task_id": 5}'])
def test_scans_skip_broken_files(tmp_path: Path, garbage: bytes) -> None:
    service, _ = make(tmp_path)
    folder = tmp_path / "tasks" / "received"
    folder.mkdir(parents=True)
    (folder / f"{ts.new_task_id()}.json").write_bytes(garbage)
    (folder / "notes.json").write_text("{}")
    accepted(tmp_path, 4, NOW)
    assert service.sweep_new(NOW + 10**4) == [] and service.sweep_head(NOW) == []
