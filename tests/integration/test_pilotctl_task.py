"""``pilotctl task ...`` against real daemons (services-and-cli.md §A14, §A5).

The real ``pilotctl`` binary, real ``pilot-daemon``s and a real
``pilot-rendezvous`` on loopback: every task subcommand in text and
``--json`` mode, the submitter's view following the worker's (status
updates, results files, polo scores), and the error paths with their codes
and hints. One network per module (alpha, bravo: public; carol: private);
tests run in file order and build on each other's polo scores.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from pilotgw.client.tasks import RECEIVED, TaskStore
from pilotgw.overlay import tasksubmit as ts
from tests.integration.conftest import PilotNode, launch_node, pilot_network

pytestmark = pytest.mark.timeout(120)

TASK_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
STAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[PilotNode]]:
    tmp = tmp_path_factory.mktemp("tasks")
    with pilot_network(tmp, "alpha", "bravo") as (rv, nodes):
        carol = launch_node(tmp, rv, "carol", "-hostname", "carol", public=False)
        try:
            yield nodes + [carol]
        finally:
            carol.daemon.kill()
            print(f"---- pilot-daemon carol ----\n{carol.daemon.log()[-20000:]}")


def wait_for(check: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.1)


def task_file(node: PilotNode, category: str, task_id: str) -> dict[str, Any]:
    return json.loads((node.home / ".pilot" / "tasks" / category / f"{task_id}.json").read_text())


def status_of(node: PilotNode, category: str, task_id: str) -> str:
    return str(task_file(node, category, task_id)["status"])


def indented(data: Any) -> str:
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def polo(node: PilotNode, of: PilotNode) -> int:
    return int(node.ok("lookup", str(of.node_id)).get("polo_score", 0))


def submit(node: PilotNode, target: str, description: str) -> dict[str, Any]:
    data = node.ok("task", "submit", target, "--task", description)
    assert TASK_ID.fullmatch(data["task_id"])
    return data  # type: ignore[no-any-return]


def error(node: PilotNode, *args: str, **env: str) -> dict[str, Any]:
    return node.cli("--json", "task", *args, **env).error()


# -- the whole life of a task ---------------------------------------------------------


def test_submit_accept_execute_results_and_polo(net: list[PilotNode]) -> None:
    alpha, bravo = net[0], net[1]
    data = submit(alpha, "bravo", "summarise <the> report & more")
    task_id = data["task_id"]
    assert data == {"accepted": True, "message": "Task received with status NEW", "status": 200,
                    "target": bravo.address, "task": "summarise <the> report & more", "task_id": task_id}

    # Both sides hold the task file, in the contract's field order, no trailing newline.
    raw = (bravo.home / ".pilot" / "tasks" / "received" / f"{task_id}.json").read_text()
    assert not raw.endswith("\n")
    received = json.loads(raw)
    assert list(received) == ["task_id", "task_description", "created_at", "status", "status_justification",
                              "from", "to"]
    assert received["from"] == alpha.address and received["to"] == bravo.address
    assert received["status"] == "NEW" and received["status_justification"] == "A new task was created"
    assert STAMP.fullmatch(received["created_at"])
    assert task_file(alpha, "submitted", task_id)["to"] == bravo.address

    listed = bravo.ok("task", "list")["tasks"]
    assert listed == [{"category": "received", "created_at": received["created_at"],
                       "description": "summarise <the> report & more", "from": alpha.address, "status": "NEW",
                       "task_id": task_id, "to": bravo.address}]
    text = bravo.cli("task", "list", "--type", "received")
    assert text.status == 0 and text.out == (
        f"[received] {task_id} (NEW) - summarise <the> report & more\n"
        f"  From: {alpha.address} → To: {bravo.address}\n")
    assert alpha.ok("task", "list", "--type", "submitted")["tasks"][0]["category"] == "submitted"
    assert alpha.ok("task", "list", "--type", "received")["tasks"] == []
    assert bravo.ok("task", "queue") == {"queue": []}
    assert bravo.cli("task", "queue").out == "Queue is empty\n"

    accepted = bravo.ok("task", "accept", "--id", task_id)
    assert accepted == {"message": "Task accepted", "status": "ACCEPTED", "task_id": task_id}
    wait_for(lambda: status_of(alpha, "submitted", task_id) == "ACCEPTED")
    assert task_file(alpha, "submitted", task_id)["status_justification"] == "Task accepted"
    queued = bravo.ok("task", "queue")
    assert queued["count"] == 1 and queued["queue"][0]["task_id"] == task_id
    assert list(queued["queue"][0]) == ["created_at", "description", "from", "task_id"]
    assert bravo.cli("task", "queue").out == (
        f"Queued tasks (1):\n  1. {task_id}: summarise <the> report & more\n     From: {alpha.address}\n")
    assert task_file(bravo, "received", task_id)["staged_at"]  # the head of the queue is staged (C-3)

    started = bravo.ok("task", "execute")
    assert started == {"from": alpha.address, "status": "EXECUTING",
                       "task_description": "summarise <the> report & more", "task_id": task_id}
    wait_for(lambda: status_of(alpha, "submitted", task_id) == "EXECUTING")
    assert bravo.ok("task", "queue") == {"queue": []}

    sent = bravo.ok("task", "send-results", "--id", task_id, "--results", "the answer is 42")
    assert sent == {"sent_to": alpha.address, "sent_type": "text", "status": "SUCCEEDED", "task_id": task_id}
    result = alpha.home / ".pilot" / "tasks" / "results" / f"{task_id}_result.txt"
    wait_for(result.exists)
    assert result.read_text() == "the answer is 42"
    assert result.stat().st_mode & 0o777 == 0o600
    # C-5: the final SUCCEEDED update arrives on its own connection.
    wait_for(lambda: status_of(alpha, "submitted", task_id) == "SUCCEEDED")
    local = task_file(bravo, "received", task_id)
    assert local["status"] == "SUCCEEDED" and local["execute_started_at"] and local["completed_at"]

    # Polo: submitter -1, worker +reward (1 for a task of no measurable CPU time).
    wait_for(lambda: polo(alpha, alpha) == -1 and polo(alpha, bravo) == 1)
    # Now alpha's score is below bravo's: the next submission is refused, exit 0.
    r = alpha.cli("--json", "task", "submit", bravo.address, "--task", "again")
    assert r.status == 0
    refused = json.loads(r.out)["data"]
    assert refused["accepted"] is False and refused["status"] == 400
    assert refused["message"] == "Polo score too low: submitter=-1, receiver=1"
    assert not (alpha.home / ".pilot" / "tasks" / "submitted" / f"{refused['task_id']}.json").exists()


def test_decline_reaches_the_submitter(net: list[PilotNode]) -> None:
    alpha, bravo = net[0], net[1]
    task_id = submit(bravo, alpha.address, "decline me")["task_id"]
    data = alpha.ok("task", "decline", "--id", task_id, "--justification", "too busy")
    assert data == {"justification": "too busy", "message": "Task declined", "status": "DECLINED", "task_id": task_id}
    wait_for(lambda: status_of(bravo, "submitted", task_id) == "DECLINED")
    assert task_file(bravo, "submitted", task_id)["status_justification"] == "too busy"
    again = error(alpha, "accept", "--id", task_id)
    assert again == {"code": "invalid_state", "message": f"task {task_id} is already DECLINED", "status": "error"}


def test_file_results_and_text_mode(net: list[PilotNode], tmp_path: Path) -> None:
    alpha, bravo = net[0], net[1]
    r = bravo.cli("task", "submit", str(alpha.node_id), "--task", "draw a chart")
    assert r.status == 0
    data = json.loads(r.out)  # text mode: the map, indented
    assert r.out == indented(data) and data["accepted"] is True
    task_id = data["task_id"]
    r = alpha.cli("task", "accept", "--id", task_id)
    assert r.out == indented({"message": "Task accepted", "status": "ACCEPTED", "task_id": task_id})
    assert alpha.cli("task", "execute").status == 0
    chart = tmp_path / "Chart.PNG"
    chart.write_bytes(bytes(range(256)) * 40)
    sent = alpha.ok("task", "send-results", "--id", task_id, "--file", str(chart), "--results", "ignored")
    assert sent == {"file_size": 10240, "filename": "Chart.PNG", "sent_to": bravo.address, "sent_type": "file",
                    "status": "SUCCEEDED", "task_id": task_id}
    saved = bravo.home / ".pilot" / "tasks" / "results" / f"{task_id}_Chart.PNG"
    wait_for(saved.exists)
    assert saved.read_bytes() == chart.read_bytes()
    wait_for(lambda: status_of(bravo, "submitted", task_id) == "SUCCEEDED")
    times = task_file(bravo, "submitted", task_id)
    assert times["status_justification"] == "Task completed successfully"


def test_queue_is_fifo_by_acceptance(net: list[PilotNode]) -> None:
    alpha, bravo = net[0], net[1]  # alpha -> bravo keeps the polo scores balanced for later tests
    ids = [submit(alpha, "bravo", f"job {n}")["task_id"] for n in range(3)]
    for task_id in reversed(ids):  # accepted in reverse submission order
        bravo.ok("task", "accept", "--id", task_id)
        time.sleep(1.05)  # accepted_at has one-second resolution
    assert [t["task_id"] for t in bravo.ok("task", "queue")["queue"]] == list(reversed(ids))
    for expected in reversed(ids):
        assert bravo.ok("task", "execute")["task_id"] == expected
    assert error(bravo, "execute") == {"code": "not_found", "message": "no accepted tasks to execute",
                                       "status": "error"}
    for task_id in ids:
        bravo.ok("task", "send-results", "--id", task_id, "--results", "done")


# -- errors -------------------------------------------------------------------------


def test_dispatch_and_argument_errors(net: list[PilotNode]) -> None:
    alpha = net[0]
    assert error(alpha) == {"code": "invalid_argument", "message": "missing subcommand", "status": "error",
                            "hint": "available: pilotctl task submit | accept | decline | execute | send-results "
                                    "| list | queue"}
    assert error(alpha, "frobnicate") == {"code": "invalid_argument", "message": "unknown task subcommand: frobnicate",
                                          "hint": "available: submit, accept, decline, execute, send-results, list, "
                                                  "queue", "status": "error"}
    r = alpha.cli("task", "frobnicate")
    assert r.status == 1 and r.out == "" and r.err == (
        "error: unknown task subcommand: frobnicate\n"
        "hint:  available: submit, accept, decline, execute, send-results, list, queue\n")
    usage = "usage: pilotctl task submit <address|hostname> --task <description>"
    assert error(alpha, "submit")["message"] == usage
    assert error(alpha, "submit", "bravo") == {"code": "invalid_argument", "message": "--task is required",
                                               "status": "error"}
    assert error(alpha, "accept")["message"] == "--id is required"
    assert error(alpha, "decline", "--id", "x")["message"] == "--justification is required"
    assert error(alpha, "send-results", "--id", "x") == {
        "code": "invalid_argument", "message": "either --results or --file is required", "status": "error"}
    assert error(alpha, "list", "--type", "sent")["code"] == "invalid_argument"


def test_lookup_and_state_errors(net: list[PilotNode], tmp_path: Path) -> None:
    alpha, bravo = net[0], net[1]
    missing = ts.new_task_id()
    assert error(alpha, "accept", "--id", missing) == {
        "code": "not_found", "hint": "check pilotctl task list --type received",
        "message": f"task not found: {missing}", "status": "error"}
    # C-1: a path in place of an ID is just an unknown task.
    assert error(alpha, "accept", "--id", "../../trust")["code"] == "not_found"
    task_id = submit(bravo, "alpha", "state checks")["task_id"]
    r = alpha.cli("task", "send-results", "--id", task_id, "--results", "early")
    assert r.status == 1 and r.err == f"error: task {task_id} cannot receive results (status: NEW)\n"
    alpha.ok("task", "accept", "--id", task_id)
    script = tmp_path / "run.sh"
    script.write_text("rm -rf /")
    assert error(alpha, "send-results", "--id", task_id, "--file", str(script)) == {
        "code": "invalid_argument", "message": 'file type ".sh" not allowed for results', "status": "error"}
    gone = tmp_path / "gone.txt"
    assert error(alpha, "send-results", "--id", task_id, "--file", str(gone)) == {
        "code": "internal_error", "message": f"failed to read file: open {gone}: no such file or directory",
        "status": "error"}
    assert status_of(alpha, "received", task_id) == "ACCEPTED"  # nothing changed by the failures
    alpha.ok("task", "send-results", "--id", task_id, "--results", "ok")


def test_expired_accept_deadline(net: list[PilotNode]) -> None:
    alpha = net[0]
    task_id = ts.new_task_id()
    TaskStore(alpha.home / ".pilot").save(RECEIVED, ts.TaskFile.new(task_id, "stale", net[1].address, alpha.address,
                                                                     time.time() - 62))  # fmt: skip
    assert error(alpha, "accept", "--id", task_id) == {
        "code": "expired", "message": f"task {task_id} has expired (accept deadline was 1 minute after creation)",
        "status": "error"}


def test_connection_errors(net: list[PilotNode]) -> None:
    alpha, carol = net[0], net[2]
    submitted = alpha.home / ".pilot" / "tasks" / "submitted"
    before = sorted(submitted.iterdir())
    # carol is private and trusts nobody: port 1003 refuses alpha (D-5/C-19).
    assert error(alpha, "submit", carol.address, "--task", "hi") == {
        "code": "connection_failed", "hint": f"check that {carol.address} is reachable: pilotctl ping {carol.address}",
        "message": f"cannot connect to {carol.address} (task submit port 1003)", "status": "error"}
    assert error(alpha, "submit", "nobody-here", "--task", "hi")["code"] == "not_found"
    assert sorted(submitted.iterdir()) == before


def test_without_daemon(net: list[PilotNode], tmp_path: Path) -> None:
    alpha, bravo = net[0], net[1]
    task_id = submit(bravo, "alpha", "offline accept")["task_id"]
    dead = str(tmp_path / "no-daemon.sock")
    err = error(alpha, "accept", "--id", task_id, PILOT_SOCKET=dead)
    assert err == {"code": "not_running", "hint": "start the daemon with: pilotctl daemon start",
                   "message": "daemon is not running", "status": "error"}
    # As the reference: the local file was updated before the daemon was needed.
    assert status_of(alpha, "received", task_id) == "ACCEPTED"
    assert error(alpha, "submit", "bravo", "--task", "x", PILOT_SOCKET=dead)["code"] == "not_running"
    # list and queue need no daemon.
    assert any(t["task_id"] == task_id for t in alpha.ok("task", "queue", PILOT_SOCKET=dead)["queue"])
    alpha.ok("task", "execute")
    alpha.ok("task", "send-results", "--id", task_id, "--results", "ok")


def test_empty_task_folders(net: list[PilotNode], tmp_path: Path) -> None:
    alpha = net[0]
    home = tmp_path / "fresh"
    home.mkdir()
    assert alpha.ok("task", "list", HOME=str(home)) == {"tasks": []}
    assert alpha.cli("task", "list", HOME=str(home)).out == "No tasks found\n"
    assert error(alpha, "execute", HOME=str(home)) == {"code": "not_found", "message": "no received tasks found",
                                                       "status": "error"}


# -- the same flow through the Python API (sync submitter, asyncio worker) ----------------


def test_client_api(net: list[PilotNode]) -> None:
    import asyncio

    from pilotgw.client import SyncClient, connect

    alpha, bravo = net[0], net[1]
    alpha_dir, bravo_dir = str(alpha.home / ".pilot"), str(bravo.home / ".pilot")
    with SyncClient(str(bravo.daemon.socket)) as client:
        data = client.submit_task("alpha", "via the API", pilot_dir=bravo_dir)
        task_id = data["task_id"]
        assert any(t["task_id"] == task_id for t in client.task_list("submitted", pilot_dir=bravo_dir))
    assert data["accepted"] is True and data["target"] == alpha.address

    async def work() -> list[dict[str, Any]]:
        async with await connect(str(alpha.daemon.socket)) as worker:
            out = [await worker.accept_task(task_id, pilot_dir=alpha_dir)]
            assert [t["task_id"] for t in worker.task_queue(pilot_dir=alpha_dir)] == [task_id]
            out.append(await worker.execute_task(pilot_dir=alpha_dir))
            out.append(await worker.send_task_results(task_id, text="api result", pilot_dir=alpha_dir))
            return out

    accepted, started, sent = asyncio.run(work())
    assert accepted["message"] == "Task accepted" and started["task_id"] == task_id
    assert sent == {"sent_to": bravo.address, "sent_type": "text", "status": "SUCCEEDED", "task_id": task_id}
    result = bravo.home / ".pilot" / "tasks" / "results" / f"{task_id}_result.txt"
    wait_for(result.exists)
    assert result.read_text() == "api result"
    wait_for(lambda: status_of(bravo, "submitted", task_id) == "SUCCEEDED")


def test_unreachable_submitter(net: list[PilotNode]) -> None:
    alpha = net[0]
    ghost = "0:0000.0000.7777"  # no such node: notifications and results cannot go out
    folder = alpha.home / ".pilot" / "tasks" / "received"
    ids = [ts.new_task_id() for _ in range(3)]
    for task_id in ids:
        TaskStore(alpha.home / ".pilot").save(RECEIVED, ts.TaskFile.new(task_id, "ghost", ghost, alpha.address,
                                                                         time.time()))  # fmt: skip
    t0 = time.monotonic()
    assert alpha.ok("task", "accept", "--id", ids[0]) == {
        "message": "Task accepted (submitter notification failed)", "status": "ACCEPTED", "task_id": ids[0]}
    print(f"failed notification took {time.monotonic() - t0:.2f}s")
    assert alpha.ok("task", "decline", "--id", ids[1], "--justification", "no")["message"] == (
        "Task declined (submitter notification failed)")
    assert alpha.ok("task", "execute")["task_id"] == ids[0]
    assert error(alpha, "send-results", "--id", ids[0], "--results", "x") == {
        "code": "connection_failed", "hint": f"check that {ghost} is reachable",
        "message": f"cannot connect to submitter {ghost}", "status": "error"}
    assert status_of(alpha, "received", ids[0]) == "SUCCEEDED"  # local state first, as the reference
    bad = ids[2]
    doc = task_file(alpha, "received", bad)
    doc["from"] = "not-an-address"
    (folder / f"{bad}.json").write_text(json.dumps(doc))
    assert error(alpha, "accept", "--id", bad) == {
        "code": "invalid_argument", "status": "error",
        "message": 'invalid from address: invalid address: "not-an-address" (expected N:XXXX.YYYY.YYYY)'}
