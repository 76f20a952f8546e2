"""``pilotctl daemon start | status | stop`` on a machine with nothing
configured (issue 7, Done-when 3): fresh HOMEs, no PILOT_* variables, no
config file and nothing on 127.0.0.1:9000. The first ``daemon start`` brings
up a local ``pilot-rendezvous`` there (and says so) and a working node; a
second node with another socket joins it; the two handshake and send a file.

To be sure 127.0.0.1:9000 is free whatever else runs on this machine, every
process runs in a network namespace created for the test (so it needs root).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest

from pilotgw.lab import netns
from tests.integration.conftest import CliResult, pilotctl_command

REASON = None if os.geteuid() == 0 else "needs root for a network namespace"
pytestmark = [pytest.mark.root, pytest.mark.timeout(120),
              pytest.mark.skipif(REASON is not None, reason=REASON or "")]


class FreshUser:
    """A user with an empty HOME in the test's namespace, running pilotctl."""

    def __init__(self, ns: str, home: Path) -> None:
        self.ns = ns
        self.home = home
        self.socket = ""  # exported as PILOT_SOCKET once the daemon runs, as its user would
        home.mkdir()

    def cli(self, *args: str, timeout: float = 60.0) -> CliResult:
        env = {"HOME": str(self.home), "LANG": "C.UTF-8",
               "PATH": f"{os.path.dirname(sys.executable)}:/usr/sbin:/usr/bin:/sbin:/bin"}
        if self.socket:
            env["PILOT_SOCKET"] = self.socket
        r = subprocess.run(netns.command(self.ns, pilotctl_command() + list(args)), env=env, cwd=self.home,
                           stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)
        return CliResult(r.returncode, r.stdout, r.stderr)

    def ok(self, *args: str) -> dict:
        r = self.cli("--json", *args)
        assert r.status == 0, r
        return json.loads(r.out)["data"]  # type: ignore[no-any-return]

    def pid(self, name: str) -> int:
        try:
            return int((self.home / ".pilot" / name).read_text())
        except (OSError, ValueError):
            return 0


@pytest.fixture
def namespace() -> Iterator[str]:
    name = f"pgwcli-{os.getpid()}"
    netns.create(name)
    try:
        yield name
    finally:
        netns.remove(name)  # kills whatever this test started in it (daemons, rendezvous)


def wait_for(check, timeout: float = 15.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.1)


def test_daemon_start_on_an_unconfigured_machine(namespace: str, tmp_path: Path) -> None:
    one, two = FreshUser(namespace, tmp_path / "one"), FreshUser(namespace, tmp_path / "two")
    sock1, sock2 = str(tmp_path / "one.sock"), str(tmp_path / "two.sock")

    r = one.cli("daemon", "start", "--socket", sock1, "--hostname", "node-one")
    assert r.status == 0, r
    pid1 = one.pid("pilot.pid")
    assert "no registry configured: started a local rendezvous on 127.0.0.1:9000" in r.err
    assert re.search(rf"starting daemon \(pid {pid1}\)\.*\n", r.err)
    log1 = one.home / ".pilot" / "pilot.log"
    lines = r.out.splitlines()
    assert lines[0] == f"Daemon running (pid {pid1})" and lines[1].startswith("  Address:  0:0000.")
    assert lines[2:] == ["  Hostname: node-one", f"  Socket:   {sock1}", f"  Logs:     {log1}"]
    assert (os.stat(log1).st_mode & 0o777, os.stat(one.home / ".pilot" / "pilot.pid").st_mode & 0o777) == (
        0o600, 0o600)
    assert one.pid("rendezvous.pid") > 0
    assert (one.home / ".pilot" / "identity.key").exists()  # a persistent identity by default

    data = two.ok("daemon", "start", "--socket", sock2)
    pid2 = two.pid("pilot.pid")
    assert set(data) == {"address", "hostname", "log_file", "node_id", "pid", "socket"}
    assert (data["pid"], data["socket"], data["hostname"]) == (pid2, sock2, "")
    assert two.pid("rendezvous.pid") == 0  # it joined the one already there

    r = one.cli("--json", "daemon", "start", "--socket", sock1)
    assert r.error() == {"code": "already_exists", "hint": "stop it first with: pilotctl daemon stop",
                         "message": f"daemon is already running (pid {pid1})", "status": "error"}

    # Both nodes work: same local registry, handshake, a file.
    one.socket, two.socket = sock1, sock2
    status_one, status_two = one.ok("daemon", "status"), two.ok("daemon", "status")
    assert (status_one["running"], status_one["responsive"], status_one["pid"]) == (True, True, pid1)
    assert one.cli("daemon", "status", "--check") == CliResult(0, "", "")
    id1, id2 = status_one["node_id"], status_two["node_id"]
    lines = one.cli("daemon", "status").out.splitlines()
    assert lines[:3] == [f"Daemon: running (pid {pid1})", f"  Node ID:     {id1}",
                         f"  Address:     {status_one['address']}"]
    assert two.ok("lookup", str(id1))["hostname"] == "node-one"  # the registry the daemon uses

    assert two.ok("handshake", "node-one", "hello") == {"node_id": id1, "status": "sent"}
    wait_for(lambda: any(p["node_id"] == id2 for p in one.ok("pending")["pending"]))
    one.ok("approve", str(id2))
    wait_for(lambda: any(t["node_id"] == id1 for t in two.ok("trust")["trusted"]))
    payload = tmp_path / "model.bin"
    payload.write_bytes(os.urandom(3 << 20))
    sent = two.ok("send-file", "node-one", str(payload))
    assert sent == {"ack": f"ACK FILE {3 << 20} bytes", "bytes": 3 << 20, "destination": status_one["address"],
                    "filename": "model.bin"}
    (got,) = one.ok("received")["files"]
    assert hashlib.sha256(Path(got["path"]).read_bytes()).digest() == hashlib.sha256(payload.read_bytes()).digest()

    # Stop both; status and stop afterwards.
    r = two.cli("daemon", "stop")
    assert (r.status, r.out) == (0, f"daemon stopped (pid {pid2})\n")
    assert one.ok("daemon", "stop") == {"pid": pid1}
    assert not (one.home / ".pilot" / "pilot.pid").exists()
    assert one.cli("daemon", "status").out == "Daemon: stopped\n  start with: pilotctl daemon start\n"
    assert one.cli("daemon", "status", "--check").status == 1
    assert one.cli("--json", "daemon", "stop").error() == {
        "code": "not_running", "message": "daemon is not running", "status": "error"}
