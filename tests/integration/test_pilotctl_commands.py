"""Every command of the pilotctl catalog, text and --json, run as the real
``pilotctl`` binary against real ``pilot-daemon``s and a real
``pilot-rendezvous`` on loopback (issue 7, Done-when 1; the daemon
lifecycle commands are in test_pilotctl_lifecycle.py, the error paths in
test_pilotctl_errors.py).

One network per module: alpha, bravo and charlie, each with its own HOME,
socket and identity. Tests run in file order and leave the network as they
found it, except the last one (deregister).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from pilotgw.client import SyncClient
from tests.integration.conftest import PilotNode, pilot_network, pilotctl_command

pytestmark = pytest.mark.timeout(120)

DATE = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d"
GO_DURATION = r"[0-9.]+(ns|µs|ms|s)"


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[PilotNode]]:
    with pilot_network(tmp_path_factory.mktemp("pilotctl"), "alpha", "bravo", "charlie") as (_, nodes):
        yield nodes


def wait_for(check: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.1)


def spawn(node: PilotNode, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(pilotctl_command() + list(args), env=node.env(), cwd=node.home, text=True,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def finish(proc: subprocess.Popen[str], timeout: float = 20.0) -> tuple[int, str, str]:
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return proc.returncode, out, err


def indented(data: Any) -> str:
    """Text mode's rendering of a map: 2-space indented JSON, sorted keys."""
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def subscribers_on(node: PilotNode) -> int:
    """Established event-stream (1002) connections whose subscribe frame has
    arrived: counting the connection alone raced the frame, and an event
    published in between was (rightly) not delivered."""
    conns = node.ok("connections")["connections"] or []
    return sum(1 for c in conns if c["local_port"] == 1002 and c["state"] == "ESTABLISHED" and c["bytes_recv"] > 0)


# -- info, peers, connections -------------------------------------------------------


def test_info(net: list[PilotNode]) -> None:
    alpha = net[0]
    r = alpha.cli("info")
    assert r.status == 0 and r.err == ""
    lines = r.out.splitlines()
    assert lines[:4] == ["Pilot Protocol Daemon", f"  Node ID:     {alpha.node_id}", f"  Address:     {alpha.address}",
                         "  Hostname:    alpha"]
    assert re.fullmatch(r"  Uptime:      \d\d:\d\d:\d\d", lines[4])
    assert lines[5].startswith("  Connections: ") and lines[6].startswith("  Ports:       ")
    assert lines[8].startswith("  Encryption:  enabled (X25519 + AES-256-GCM), ")
    assert re.fullmatch(r"  Identity:    persistent \(Ed25519 .{16}\.\.\.\)", lines[9])
    assert re.fullmatch(r"  Traffic:     .+ sent / .+ recv", lines[-2])
    assert re.fullmatch(r"  Packets:     \d+ sent / \d+ recv", lines[-1])
    r = alpha.cli("--json", "info")
    assert r.out.endswith("}\n") and r.out.count("\n") == 1 and r.out.startswith('{"data":{"address":')
    data = json.loads(r.out)["data"]
    assert (data["node_id"], data["address"], data["hostname"]) == (alpha.node_id, alpha.address, "alpha")
    assert data["encrypt"] is True and data["identity"] is True
    assert {"uptime_secs", "connections", "ports", "peers", "bytes_sent", "bytes_recv", "conn_list",
            "peer_list"} <= set(data)


def test_peers_and_connections(net: list[PilotNode]) -> None:
    alpha, bravo, _ = net
    alpha.ok("ping", str(bravo.node_id), "--count", "1")
    r = alpha.cli("peers")
    lines = r.out.splitlines()
    assert lines[0] == f"{'NODE ID':<10}  {'ENDPOINT':<30}  {'ENCRYPTED':<20}  AUTH"
    row = next(line for line in lines[1:] if line.startswith(f"{bravo.node_id:<10}  "))
    assert re.fullmatch(rf"{bravo.node_id:<10}  127\.0\.0\.1:\d+ +  yes \(AES-256-GCM\)     yes \(Ed25519\)", row)
    data = alpha.ok("peers", "--search", str(bravo.node_id))
    assert data["total"] == 1 and data["peers"][0]["node_id"] == bravo.node_id
    got = data["peers"][0]
    assert got == {"authenticated": True, "encrypted": True, "endpoint": got["endpoint"], "node_id": bravo.node_id,
                   "path": got["path"], "relay": False}
    assert got["path"] in ("direct", "punched")  # our extension: how the peer is reached (JSON only)
    assert alpha.ok("peers", "--search", "zzz") == {"peers": None, "total": 0}
    assert alpha.cli("peers", "--search", "zzz").out == 'no peers matching "zzz"\n'

    with SyncClient(str(alpha.daemon.socket)) as client:
        conn = client.dial(bravo.node_id, 7)
        data = alpha.ok("connections")
        assert data["total"] == len(data["connections"]) >= 1
        mine = next(c for c in data["connections"] if c["id"] == conn.conn_id)
        assert (mine["remote_addr"], mine["remote_port"], mine["state"]) == (bravo.address, 7, "ESTABLISHED")
        lines = alpha.cli("connections").out.splitlines()
        assert lines[0] == f"Active connections: {data['total']}" and lines[1] == ""
        assert lines[2].split() == ["ID", "LOCAL", "REMOTE", "ADDR", "RPORT", "STATE", "CWND", "FLIGHT", "SRTT",
                                    "UNACK", "OOO", "PEERWIN", "RCVWIN"]
        row = next(line for line in lines if line.startswith(f"{conn.conn_id:<4}  "))
        assert f"  {bravo.address:<22}  {7:<6}  {'ESTABLISHED':<11}  " in row
        stats = lines[lines.index(row) + 1]
        assert re.fullmatch(r"      tx: .+ \(\d+ segs\)  rx: .+ \(\d+ segs\)  retx: \d+  fast-retx: \d+  "
                            r"sack: \d+/\d+  dup-ack: \d+", stats)
        # info lists the same connection in its table
        info_lines = alpha.cli("info").out.splitlines()
        assert f"Active connections: {data['total']}" in info_lines


def test_disconnect(net: list[PilotNode]) -> None:
    alpha, bravo, _ = net
    with SyncClient(str(alpha.daemon.socket)) as client:
        conn = client.dial(bravo.node_id, 7)
        assert alpha.ok("disconnect", str(conn.conn_id)) == {"conn_id": conn.conn_id}
        assert conn.recv(timeout=10) == b""  # the daemon closed it
        other = client.dial(bravo.node_id, 7)
        r = alpha.cli("disconnect", str(other.conn_id))
        assert (r.status, r.out) == (0, indented({"conn_id": other.conn_id}))


# -- trust ------------------------------------------------------------------------------


def _trusted(node: PilotNode) -> dict[int, dict[str, Any]]:
    return {t["node_id"]: t for t in node.ok("trust")["trusted"]}


def _pending(node: PilotNode) -> dict[int, dict[str, Any]]:
    return {p["node_id"]: p for p in node.ok("pending")["pending"]}


def test_handshake_pending_reject_approve_trust_untrust(net: list[PilotNode]) -> None:
    alpha, bravo, _ = net
    assert bravo.cli("pending").out == (
        "no pending handshake requests\n"
        "  requests appear here when another node sends: pilotctl handshake <your-node-id>\n"
    )
    assert bravo.ok("pending") == {"pending": []}
    assert bravo.cli("trust").out == (
        'no trusted peers\n  establish trust: pilotctl handshake <node_id|hostname> "reason"\n'
    )
    assert bravo.ok("trust") == {"trusted": []}

    r = alpha.cli("handshake", str(bravo.node_id), "need your data")
    assert (r.status, r.err) == (0, "")
    assert r.out == (
        f"handshake request sent to node {bravo.node_id}\n"
        f"  next: node {bravo.node_id} must approve — or send a handshake back for auto-approval\n"
        "  check: pilotctl trust\n"
    )
    wait_for(lambda: alpha.node_id in _pending(bravo))
    entry = _pending(bravo)[alpha.node_id]
    assert entry["justification"] == "need your data" and entry["public_key"] and entry["received_at"] > 0
    lines = bravo.cli("pending").out.splitlines()
    assert lines[0] == "NODE ID     JUSTIFICATION                             RECEIVED"
    assert re.fullmatch(rf"{alpha.node_id:<10}  {'need your data':<40}  {DATE}", lines[1])

    r = bravo.cli("reject", str(alpha.node_id), "not now")
    assert r.out == f"handshake from node {alpha.node_id} rejected\n"
    assert alpha.node_id not in _pending(bravo) and alpha.node_id not in _trusted(bravo)
    assert bravo.ok("reject", str(alpha.node_id)) == {"node_id": alpha.node_id, "status": "rejected"}

    r = alpha.cli("handshake", bravo.address)  # a full address: noted on stderr
    assert r.err == f"parsed address {bravo.address} → node {bravo.node_id}\n"
    assert alpha.ok("handshake", "bravo") == {"node_id": bravo.node_id, "status": "sent"}
    r = alpha.cli("handshake", "bravo")
    assert r.err == f"resolved bravo → node {bravo.node_id}\n"
    wait_for(lambda: alpha.node_id in _pending(bravo))
    assert bravo.ok("approve", str(alpha.node_id)) == {"node_id": alpha.node_id, "status": "approved"}
    r = bravo.cli("approve", str(alpha.node_id))
    assert r.out == f"trust established with node {alpha.node_id}\n  try: pilotctl ping {alpha.node_id}\n"
    t = _trusted(bravo)[alpha.node_id]
    assert (t["mutual"], t["network"]) == (False, 0) and t["approved_at"] > 0 and t["public_key"]
    lines = bravo.cli("trust").out.splitlines()
    assert lines[0] == "NODE ID     MUTUAL      NETWORK     APPROVED AT"
    assert re.fullmatch(rf"{alpha.node_id:<10}  no          -           {DATE}", lines[1])
    wait_for(lambda: bravo.node_id in _trusted(alpha))  # the accept reached alpha

    r = bravo.cli("untrust", str(alpha.node_id))
    assert (r.status, r.out) == (0, indented({"node_id": alpha.node_id}))
    assert alpha.node_id not in _trusted(bravo)
    wait_for(lambda: bravo.node_id not in _trusted(alpha))  # the revoke reached alpha
    assert bravo.cli("--json", "untrust", str(alpha.node_id)).error() == {
        "code": "connection_failed", "status": "error",
        "message": f"untrust: revoke: daemon: handshake revoke: node {alpha.node_id} was not trusted"}


def test_mutual_handshake_auto_approves(net: list[PilotNode]) -> None:
    alpha, _, charlie = net
    alpha.ok("handshake", "charlie", "pair")
    wait_for(lambda: alpha.node_id in _pending(charlie))
    charlie.ok("handshake", "alpha", "pair")
    wait_for(lambda: charlie.node_id in _trusted(alpha) and alpha.node_id in _trusted(charlie))
    assert _trusted(alpha)[charlie.node_id]["mutual"] is True
    row = alpha.cli("trust").out.splitlines()[1]
    assert re.fullmatch(rf"{charlie.node_id:<10}  yes         -           {DATE}", row)
    assert alpha.ok("untrust", str(charlie.node_id)) == {"node_id": charlie.node_id}
    wait_for(lambda: _trusted(alpha) == {} and _trusted(charlie) == {})
    charlie.ok("reject", str(alpha.node_id))  # a stale pending entry may remain (trust-and-ipc.md A1)


# -- discovery and node settings ----------------------------------------------------------


def test_find_and_lookup(net: list[PilotNode]) -> None:
    alpha, bravo, _ = net
    r = alpha.cli("find", "bravo")
    assert r.out == f"Hostname:  bravo\nNode ID:   {bravo.node_id}\nAddress:   {bravo.address}\nVisible:   public\n"
    assert alpha.ok("find", "bravo") == {"address": bravo.address, "hostname": "bravo", "node_id": bravo.node_id,
                                         "public": True}
    data = alpha.ok("lookup", str(bravo.node_id))
    assert (data["type"], data["node_id"], data["address"], data["hostname"]) == (
        "lookup_ok", bravo.node_id, bravo.address, "bravo")
    assert data["public"] is True and data["real_addr"].startswith("127.0.0.1:") and data["networks"] == [0]
    assert alpha.cli("lookup", str(bravo.node_id)).out == indented(data)


def test_visibility_tasks_tags(net: list[PilotNode]) -> None:
    alpha, _, charlie = net
    r = charlie.cli("set-private")
    assert r.out == indented({"node_id": charlie.node_id, "type": "set_visibility_ok", "visibility": "private"})
    record = alpha.ok("lookup", str(charlie.node_id))
    assert record["public"] is False and "real_addr" not in record
    assert charlie.ok("set-public") == {"node_id": charlie.node_id, "type": "set_visibility_ok",
                                        "visibility": "public"}
    assert alpha.ok("lookup", str(charlie.node_id))["public"] is True

    assert charlie.ok("enable-tasks") == {"node_id": charlie.node_id, "task_exec": True, "type": "set_task_exec_ok"}
    assert alpha.ok("lookup", str(charlie.node_id))["task_exec"] is True
    r = charlie.cli("disable-tasks")
    assert r.out == indented({"node_id": charlie.node_id, "task_exec": False, "type": "set_task_exec_ok"})
    assert "task_exec" not in alpha.ok("lookup", str(charlie.node_id))

    assert charlie.cli("set-tags", "gpu", "#llm").out == "tags set: #gpu #llm\n"
    assert alpha.ok("lookup", str(charlie.node_id))["tags"] == ["gpu", "llm"]
    assert charlie.ok("set-tags", "cpu") == {"node_id": charlie.node_id, "tags": ["cpu"]}
    assert charlie.cli("clear-tags").out == "tags cleared\n"
    assert charlie.ok("clear-tags") == {"tags": []}
    assert "tags" not in alpha.ok("lookup", str(charlie.node_id))


def test_hostname_commands(net: list[PilotNode]) -> None:
    alpha, _, charlie = net
    config = charlie.home / ".pilot" / "config.json"
    assert charlie.cli("set-hostname", "charlie-two").out == "hostname set: charlie-two\n"
    assert json.loads(config.read_text())["hostname"] == "charlie-two"
    assert alpha.ok("find", "charlie-two")["node_id"] == charlie.node_id
    assert charlie.cli("clear-hostname").out == "hostname cleared\n"
    assert "hostname" not in json.loads(config.read_text())
    assert charlie.ok("clear-hostname") == {"hostname": ""}
    assert alpha.cli("--json", "find", "charlie-two").error()["code"] == "not_found"
    assert charlie.ok("set-hostname", "charlie") == {"hostname": "charlie", "node_id": charlie.node_id}
    assert charlie.cli("info").out.splitlines()[3] == "  Hostname:    charlie"


def test_webhook_commands(net: list[PilotNode]) -> None:
    charlie = net[2]
    config = charlie.home / ".pilot" / "config.json"
    url = "http://127.0.0.1:9/hook"
    assert charlie.cli("set-webhook", url).out == f"webhook set: {url}\napplied to running daemon\n"
    assert json.loads(config.read_text())["webhook"] == url
    assert charlie.ok("set-webhook", url) == {"applied": True, "webhook": url}
    assert charlie.cli("clear-webhook").out == "webhook cleared\napplied to running daemon\n"
    assert "webhook" not in json.loads(config.read_text())
    assert charlie.ok("clear-webhook") == {"applied": True, "webhook": ""}


def test_register_and_rotate_key_are_refused_by_the_registry(net: list[PilotNode]) -> None:
    alpha = net[0]
    r = alpha.cli("register")
    assert (r.status, r.out, r.err) == (1, "", "error: register: registry: request failed\n")
    assert alpha.cli("--json", "register", "127.0.0.1:1").error() == {
        "code": "connection_failed", "message": "register: registry: request failed", "status": "error"}
    r = alpha.cli("rotate-key", str(alpha.node_id), "me@example.com")
    assert (r.status, r.err) == (1, "error: rotate-key: registry: request failed\n")
    assert alpha.cli("--json", "rotate-key", str(alpha.node_id), "x").error()["code"] == "connection_failed"


# -- communication ---------------------------------------------------------------------------


def test_connect_send_recv(net: list[PilotNode]) -> None:
    alpha, bravo, _ = net
    receiver = spawn(bravo, "--json", "recv", "3000", "--count", "2", "--timeout", "30s")
    try:
        wait_for(lambda: receiver.poll() is not None or _bound(bravo, 3000))
        r = alpha.cli("send", "bravo", "3000", "--data", "hello", "--timeout", "5s")
        assert (r.status, r.out) == (0, "")
        assert r.err == f'resolved "bravo" → {bravo.address}\nsent 5 bytes (no response)\n'
        assert alpha.ok("connect", str(bravo.node_id), "3000", stdin="piped\nlines\n") == {
            "port": 3000, "response": "", "sent": "piped\nlines", "target": bravo.address}
    finally:
        status, out, err = finish(receiver)
    assert (status, err) == (0, "")
    assert json.loads(out)["data"] == {"messages": [
        {"bytes": 5, "data": "hello", "port": 3000, "seq": 0},
        {"bytes": 11, "data": "piped\nlines", "port": 3000, "seq": 1}], "timeout": False}

    assert alpha.cli("connect", bravo.address, "7", "--message", "echo me").out == "echo me\n"
    assert alpha.ok("send", bravo.address, "7", "--data", "again") == {
        "port": 7, "response": "again", "sent": "again", "target": bravo.address}
    receiver = spawn(bravo, "recv", "3001", "--timeout", "30s")
    wait_for(lambda: receiver.poll() is not None or _bound(bravo, 3001))
    alpha.cli("connect", str(bravo.node_id), "3001", "--message", "text mode", "--timeout", "5s")
    assert finish(receiver) == (0, "text mode\n", "")


def _bound(node: PilotNode, port: int) -> bool:
    """Whether ``port`` is bound on ``node`` (a second Bind is refused)."""
    try:
        with SyncClient(str(node.daemon.socket)) as c:
            c.listen(port)
        return False
    except Exception:
        return True


def test_send_file_single_many_and_large(net: list[PilotNode], tmp_path: Path) -> None:
    alpha, bravo, charlie = net
    small = tmp_path / "notes.txt"
    small.write_bytes(b"hello, file\n")
    r = alpha.cli("send-file", "bravo", str(small))
    assert r.status == 0 and r.out == indented(
        {"ack": "ACK FILE 12 bytes", "bytes": 12, "destination": bravo.address, "filename": "notes.txt"})
    r = alpha.cli("--json", "send-file", str(bravo.node_id), str(small))
    assert r.out == ('{"data":{"ack":"ACK FILE 12 bytes","bytes":12,"destination":"%s","filename":"notes.txt"},'
                     '"status":"ok"}\n' % bravo.address)
    assert r.err == ""  # no progress bar without a terminal

    big = tmp_path / "weights.bin"
    big.write_bytes(os.urandom((16 << 20) + 1))  # over the reference's one-frame limit: our extension
    data = alpha.ok("send-file", bravo.address, charlie.address, str(big))
    assert data["bytes"] == (16 << 20) + 1 and data["filename"] == "weights.bin" and data["total"] == 2
    assert [x["destination"] for x in data["results"]] == [bravo.address, charlie.address]
    assert all(x["ack"] == f"ACK FILE {(16 << 20) + 1} bytes" for x in data["results"])
    digest = hashlib.sha256(big.read_bytes()).hexdigest()
    for node in (bravo, charlie):
        files = node.ok("received")["files"]
        got = [f for f in files if f["name"].startswith("weights-")]
        assert len(got) == 1 and got[0]["bytes"] == (16 << 20) + 1
        assert hashlib.sha256(Path(got[0]["path"]).read_bytes()).hexdigest() == digest
    assert sum(f["name"].startswith("notes-") for f in bravo.ok("received")["files"]) == 2


def test_send_file_progress_bars_on_a_terminal(net: list[PilotNode], tmp_path: Path) -> None:
    """One bar per receiver on a terminal (stderr); none with --json."""
    import pty

    alpha, bravo, charlie = net
    path = tmp_path / "bar.bin"
    path.write_bytes(os.urandom(4 << 20))

    def run(*args: str) -> tuple[int, str, str]:
        master, slave = pty.openpty()
        try:
            proc = subprocess.run(pilotctl_command() + list(args), env=alpha.env(COLUMNS="120"), cwd=alpha.home,
                                  stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=slave, timeout=60)
            os.close(slave)
            chunks = []
            while True:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: the terminal has no writer left
                    break
                if not chunk:
                    break
                chunks.append(chunk)
        finally:
            os.close(master)
        return proc.returncode, proc.stdout.decode(), b"".join(chunks).decode("utf-8", "replace")

    status, out, err = run("send-file", bravo.address, charlie.address, str(path))
    assert status == 0 and json.loads(out)["total"] == 2
    assert f"bar.bin → {bravo.address}" in err and f"bar.bin → {charlie.address}" in err
    status, out, err = run("--json", "send-file", bravo.address, str(path))
    assert (status, err) == (0, "") and json.loads(out)["data"]["bytes"] == 4 << 20


def test_received_listing_and_clear(net: list[PilotNode]) -> None:
    bravo = net[1]
    data = bravo.ok("received")
    directory = str(bravo.home / ".pilot" / "received")
    assert data["dir"] == directory and data["total"] == len(data["files"]) >= 3
    for f in data["files"]:
        assert set(f) == {"bytes", "modified", "name", "path"} and f["path"] == os.path.join(directory, f["name"])
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(Z|[+-]\d\d:\d\d)", f["modified"])
    lines = bravo.cli("received").out.splitlines()
    assert lines[:3] == [f"Received files ({directory}):", "", f"  {'NAME':<40}  {'SIZE':<10}  RECEIVED"]
    assert lines[-1] == f"total: {data['total']}"
    assert bravo.cli("received", "--clear").out == f"cleared {data['total']} received file(s)\n"
    assert bravo.ok("received") == {"dir": directory, "files": None, "total": 0}
    assert bravo.cli("received").out == (
        "no received files\n  files appear here when someone sends: pilotctl send-file <your-hostname> <file>\n")
    assert bravo.ok("received", "--clear") == {"cleared": 0}


def test_send_message_and_inbox(net: list[PilotNode]) -> None:
    alpha, bravo, _ = net
    assert alpha.ok("send-message", "bravo", "--data", "hi bravo") == {
        "ack": "ACK TEXT 8 bytes", "bytes": 8, "target": bravo.address, "type": "text"}
    r = alpha.cli("send-message", str(bravo.node_id), "--data", '{"task":1}', "--type", "json")
    assert r.out == indented({"ack": "ACK JSON 10 bytes", "bytes": 10, "target": bravo.address, "type": "json"})
    alpha.ok("send-message", bravo.address, "--data", "raw", "--type", "binary")
    data = bravo.ok("inbox")
    assert data["dir"] == str(bravo.home / ".pilot" / "inbox") and data["total"] == 3
    assert [(m["type"], m["data"], m["from"]) for m in data["messages"]] == [
        ("BINARY", "raw", alpha.address), ("JSON", '{"task":1}', alpha.address), ("TEXT", "hi bravo", alpha.address)]
    lines = bravo.cli("inbox").out.splitlines()
    assert lines[:2] == ["Inbox (3 messages):", ""]
    assert re.fullmatch(rf"  \[\S+\] from {re.escape(alpha.address)} type=JSON", lines[5])
    assert lines[6] == '    {"task":1}' and lines[-1] == "clear with: pilotctl inbox --clear"
    assert bravo.cli("inbox", "--clear").out == "cleared 3 message(s)\n"
    assert bravo.ok("inbox") == {"dir": data["dir"], "messages": None, "total": 0}
    assert bravo.cli("inbox").out == (
        "inbox is empty\n"
        '  messages appear here when someone sends: pilotctl send-message <your-hostname> --data "hello"\n')
    assert bravo.ok("inbox", "--clear") == {"cleared": 0}


def test_mailbox_before_anything_arrived(net: list[PilotNode]) -> None:
    alpha = net[0]
    if not (alpha.home / ".pilot" / "inbox").exists():
        assert alpha.ok("inbox") == {"messages": [], "total": 0}
        assert alpha.cli("--json", "inbox", "--clear").error() == {
            "code": "not_found", "message": "inbox is empty", "status": "error"}
    else:
        assert alpha.ok("inbox")["total"] == 0


def test_subscribe_publish(net: list[PilotNode]) -> None:
    alpha, bravo, _ = net
    text_sub = spawn(bravo, "subscribe", "alpha", "news", "--count", "2")
    json_sub = spawn(bravo, "--json", "subscribe", str(alpha.node_id), "*", "--count", "3")
    try:
        wait_for(lambda: subscribers_on(alpha) >= 2 or text_sub.poll() is not None)
        r = alpha.cli("publish", "alpha", "news", "--data", "first")
        assert r.out == indented({"bytes": 5, "target": alpha.address, "topic": "news"})
        assert alpha.ok("publish", str(alpha.node_id), "news", "--data", "second") == {
            "bytes": 6, "target": alpha.address, "topic": "news"}
        alpha.ok("publish", alpha.address, "other", "--data", "third")
        status, out, err = finish(text_sub)
        assert (status, out) == (0, "[news] first\n[news] second\n")
        assert f'subscribed to "news" on {alpha.address} — waiting for events...' in err
        status, out, err = finish(json_sub)
        assert (status, err) == (0, "")
        assert json.loads(out)["data"] == {"events": [
            {"bytes": 5, "data": "first", "topic": "news"}, {"bytes": 6, "data": "second", "topic": "news"},
            {"bytes": 5, "data": "third", "topic": "other"}], "timeout": False}
    finally:
        for p in (text_sub, json_sub):
            if p.poll() is None:
                finish(p, 0.1)


def test_subscribe_ndjson_and_timeout(net: list[PilotNode]) -> None:
    alpha, bravo, _ = net
    before = subscribers_on(alpha)
    sub = spawn(bravo, "--json", "subscribe", "alpha", "feed", "--timeout", "4s")
    try:
        wait_for(lambda: subscribers_on(alpha) > before or sub.poll() is not None)
        alpha.ok("publish", "alpha", "feed", "--data", "a")
        alpha.ok("publish", "alpha", "feed", "--data", "bc")
        status, out, err = finish(sub)
    finally:
        if sub.poll() is None:
            finish(sub, 0.1)
    assert (status, err) == (0, "")
    assert out == '{"bytes":1,"data":"a","topic":"feed"}\n{"bytes":2,"data":"bc","topic":"feed"}\n'
    assert bravo.ok("subscribe", "alpha", "quiet", "--count", "1", "--timeout", "300ms") == {
        "events": None, "timeout": True}
    r = bravo.cli("subscribe", "alpha", "quiet", "--timeout", "300ms")
    assert (r.status, r.out) == (0, "") and r.err.endswith("timeout\n")


def test_listen(net: list[PilotNode]) -> None:
    alpha, bravo, _ = net

    def pump(proc: subprocess.Popen[str], data: bytes) -> None:
        with SyncClient(str(alpha.daemon.socket)) as c:
            deadline = time.monotonic() + 15
            while proc.poll() is None and time.monotonic() < deadline:
                c.send_to(bravo.node_id, 5000, data)
                time.sleep(0.2)

    proc = spawn(bravo, "--json", "listen", "5000", "--count", "1")
    pump(proc, b"dgram")
    status, out, _ = finish(proc)
    assert status == 0
    (msg,) = json.loads(out)["data"]["messages"]
    assert (msg["bytes"], msg["data"], msg["src_addr"]) == (5, "dgram", alpha.address) and msg["src_port"] > 0
    assert json.loads(out)["data"]["timeout"] is False
    proc = spawn(bravo, "listen", "5000", "--count", "1")
    pump(proc, b"text")
    status, out, err = finish(proc)
    assert status == 0 and re.fullmatch(rf"\[{re.escape(alpha.address)}:\d+\] text\n", out)
    assert "listening on port 5000 — waiting for datagrams..." in err
    assert bravo.ok("listen", "5001", "--count", "1", "--timeout", "200ms") == {"messages": None, "timeout": True}


def test_client_api_against_real_daemons(net: list[PilotNode], tmp_path: Path) -> None:
    """The API pilotctl is built on (issue 6 item 7), blocking and asyncio."""
    import asyncio

    from pilotgw.client import connect

    alpha, bravo, charlie = net
    bravo_dir = str(bravo.home / ".pilot")
    with SyncClient(str(alpha.daemon.socket)) as a, SyncClient(str(bravo.daemon.socket)) as b:
        assert a.send_message("bravo", {"job": 7}) == "ACK JSON 9 bytes"
        assert a.send_message(bravo.node_id, b"\x00\xff\x10") == "ACK BINARY 3 bytes"
        inbox = b.inbox(bravo_dir)
        assert [(m.type, m.sender) for m in inbox] == [("BINARY", alpha.address), ("JSON", alpha.address)]
        assert inbox[0].payload == b"\x00\xff\x10" and inbox[1].json() == {"job": 7}
        before = subscribers_on(alpha)
        with b.subscribe("alpha", "jobs") as sub:
            wait_for(lambda: subscribers_on(alpha) > before)
            a.publish(alpha.node_id, "jobs", "run")
            event = sub.receive(timeout=10)
            assert (event.topic, event.payload) == ("jobs", b"run")
        path = tmp_path / "dataset.bin"
        path.write_bytes(os.urandom(1 << 20))
        seen: set[str] = set()
        deliveries = a.send_file(["bravo", charlie.node_id], path, lambda node, done, total: seen.add(node))
        assert [(d.target, d.ok, d.bytes) for d in deliveries] == [
            (bravo.address, True, 1 << 20), (charlie.address, True, 1 << 20)]
        assert seen == {bravo.address, charlie.address}
        assert any(f.path == deliveries[0].path for f in b.received(bravo_dir))

    async def main() -> None:
        async with await connect(str(alpha.daemon.socket)) as a, await connect(str(bravo.daemon.socket)) as b:
            assert await a.send_message("bravo", "async hello") == "ACK TEXT 11 bytes"
            before = await asyncio.to_thread(subscribers_on, alpha)
            async with await b.subscribe(alpha.address, "*") as sub:
                await asyncio.to_thread(wait_for, lambda: subscribers_on(alpha) > before)
                await a.publish("alpha", "any", b"payload")
                event = await asyncio.wait_for(sub.receive(), 10)
                assert (event.topic, event.payload) == ("any", b"payload")
            (d,) = await a.send_file(bravo.address, path)
            assert d.ok and d.bytes == 1 << 20

    asyncio.run(main())
    bravo.ok("inbox", "--clear")
    bravo.ok("received", "--clear")
    charlie.ok("received", "--clear")


def test_broadcast_is_unavailable(net: list[PilotNode]) -> None:
    r = net[0].cli("broadcast", "1", "hello")
    assert (r.status, r.err) == (1, "error: broadcast is not available yet — custom networks are WIP\n")
    assert net[0].cli("--json", "broadcast", "1", "x").error()["code"] == "unavailable"


# -- diagnostics --------------------------------------------------------------------------------


def test_ping(net: list[PilotNode]) -> None:
    alpha, bravo, _ = net
    r = alpha.cli("ping", "bravo", "--count", "2")
    assert r.status == 0 and r.err == f'resolved "bravo" → {bravo.address}\n'
    lines = r.out.splitlines()
    assert lines[0] == f"PING {bravo.address}"
    assert [re.fullmatch(rf"seq={i} bytes=6 time={GO_DURATION}", lines[i + 1]) is not None for i in range(2)] == [
        True, True]
    data = alpha.ok("ping", str(bravo.node_id), "--count", "1", "--timeout", "10s")
    assert data["target"] == bravo.address and data["timeout"] is False
    assert data["results"][0]["seq"] == 0 and data["results"][0]["bytes"] == 6 and data["results"][0]["rtt_ms"] > 0


def test_traceroute(net: list[PilotNode]) -> None:
    alpha, bravo, _ = net
    lines = alpha.cli("traceroute", bravo.address).out.splitlines()
    assert lines[0] == f"TRACEROUTE {bravo.address}"
    assert re.fullmatch(rf"  1  {re.escape(bravo.address)}  setup={GO_DURATION}", lines[1])
    assert all(re.fullmatch(rf"     rtt={GO_DURATION} bytes=7", line) for line in lines[2:5])
    assert lines[5:] == ["", "setup includes: tunnel negotiation + SYN/ACK handshake",
                         "rtt is: data round-trip over established connection"]
    data = alpha.ok("traceroute", bravo.address, "--timeout", "10s")
    assert data["target"] == bravo.address and data["setup_ms"] > 0
    assert [s["bytes"] for s in data["rtt_samples"]] == [7, 7, 7]


def test_bench(net: list[PilotNode]) -> None:
    alpha, bravo, _ = net
    r = alpha.cli("bench", "bravo")
    lines = r.out.splitlines()
    assert lines[0] == f"BENCH {bravo.address} — sending 1.0 MB via echo port"
    assert re.fullmatch(rf"  Sent:     1\.0 MB in {GO_DURATION} \(\d+\.\d MB/s\)", lines[1])
    assert re.fullmatch(rf"  Echoed:   1\.0 MB in {GO_DURATION} \(\d+\.\d MB/s round-trip\)", lines[2])
    data = alpha.ok("bench", str(bravo.node_id), "0.5")
    assert (data["sent_bytes"], data["recv_bytes"], data["target"]) == (524288, 524288, bravo.address)
    assert {"send_duration_ms", "send_mbps", "total_duration_ms", "total_mbps"} <= set(data)


# -- bootstrap commands (no daemon needed) ------------------------------------------------------


def test_init_config_context(net: list[PilotNode], tmp_path: Path) -> None:
    fresh = PilotNode(net[0].daemon, tmp_path, net[0].registry)
    data = fresh.ok("init", "--registry", "10.1.2.3:9000", "--hostname", "box")
    path = tmp_path / ".pilot" / "config.json"
    assert data == {"beacon": "127.0.0.1:9001", "config_path": str(path), "hostname": "box",
                    "registry": "10.1.2.3:9000", "socket": "/tmp/pilot.sock"}
    assert path.read_text() == indented({"beacon": "127.0.0.1:9001", "hostname": "box",
                                         "registry": "10.1.2.3:9000", "socket": "/tmp/pilot.sock"})
    assert fresh.ok("config", "--set", "webhook=http://x") == {"key": "webhook", "value": "http://x"}
    shown = fresh.ok("config")
    assert shown["webhook"] == "http://x" and shown["config_path"] == str(path)
    assert shown["pid_file"] == str(tmp_path / ".pilot" / "pilot.pid")
    assert shown["log_file"] == str(tmp_path / ".pilot" / "pilot.log")
    assert fresh.cli("config").out == indented(shown)

    r = fresh.cli("context")
    assert r.status == 0 and '"\\u003cnode_id\\u003e"' in r.out
    catalog = json.loads(r.out)
    assert len(catalog["commands"]) == 49 and catalog["version"] == "1.2"
    assert fresh.ok("context") == catalog


# -- last: this one removes charlie from the registry ------------------------------------------------


def test_deregister(net: list[PilotNode]) -> None:
    alpha, _, charlie = net
    r = charlie.cli("deregister")
    assert (r.status, r.out) == (0, indented({"type": "deregister_ok"}))
    assert alpha.cli("--json", "lookup", str(charlie.node_id)).error()["code"] == "connection_failed"
    assert charlie.ok("deregister") == {"type": "deregister_ok"}
