"""daemon start | stop | status with stand-in programs (§A11)."""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
from pathlib import Path
from typing import Iterator

import pytest

from pilotgw.cli.commands import daemon as daemon_cmd

STUB = str(Path(__file__).parent.parent / "stubprograms.py")

pytestmark = pytest.mark.timeout(60)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def stubs(monkeypatch: pytest.MonkeyPatch, home: str) -> Iterator[str]:
    monkeypatch.setattr(
        daemon_cmd,
        "_program",
        lambda script, module: [sys.executable, STUB, "daemon" if script == "pilot-daemon" else "rendezvous"],
    )
    port = _free_port()
    registry = f"127.0.0.1:{port}"
    monkeypatch.setattr(daemon_cmd.config, "DEFAULT_REGISTRY", registry)
    yield registry
    for name in ("pilot.pid", "rendezvous.pid"):
        try:
            with open(os.path.join(home, ".pilot", name)) as f:
                os.kill(int(f.read()), signal.SIGKILL)
        except (OSError, ValueError):
            pass


def test_status_and_stop_without_daemon(cli) -> None:  # type: ignore[no-untyped-def]
    assert cli("daemon", "status", "--check").status == 1
    r = cli("daemon", "status")
    assert r.out == "Daemon: stopped\n  start with: pilotctl daemon start\n"
    data = json.loads(cli("daemon", "status", "--json").out)["data"]
    assert data["responsive"] is False and data["pid"] == 0 and data["running"] is False
    err = json.loads(cli("daemon", "stop", "--json").err)
    assert (err["code"], err["message"]) == ("not_running", "daemon is not running")
    err = json.loads(cli("daemon", "--json").err)
    assert err == {
        "code": "invalid_argument",
        "hint": "available: pilotctl daemon start | stop | status",
        "message": "missing subcommand",
        "status": "error",
    }
    assert json.loads(cli("daemon", "restart", "--json").err)["message"] == "unknown daemon subcommand: restart"


def test_status_of_a_socket_without_pid_file(cli, fake) -> None:  # type: ignore[no-untyped-def]
    assert cli("daemon", "status", "--check").status == 0
    lines = cli("daemon", "status").out.splitlines()
    assert lines[0] == "Daemon: running (pid 0)" and lines[1] == "  Node ID:     5" and lines[4] == "  Uptime:      01:02:05"
    err = json.loads(cli("daemon", "stop", "--json").err)
    assert err["message"] == "daemon socket is active but PID file is missing"
    err = json.loads(cli("daemon", "start", "--json").err)
    assert err["code"] == "already_exists" and "is active" in err["message"]


def test_start_with_nothing_configured_starts_local_rendezvous(cli, stubs, home) -> None:  # type: ignore[no-untyped-def]
    r = cli("daemon", "start", "--json")
    assert r.status == 0, r.err
    data = json.loads(r.out)["data"]
    assert data["address"] == "0:0000.0000.0005" and data["socket"] == os.environ["PILOT_SOCKET"]
    assert data["rendezvous"]["registry"] == stubs
    with open(os.path.join(home, ".pilot", "pilot.pid")) as f:
        pid_text = f.read()
    assert pid_text == str(data["pid"])  # decimal, no newline
    assert oct(os.stat(os.path.join(home, ".pilot", "pilot.pid")).st_mode & 0o777) == "0o600"
    with open(os.path.join(home, ".pilot", "pilot.log")) as f:
        log = f.read()
    assert f"-registry {stubs}" in log and "-beacon 127.0.0.1:9001" in log
    assert f"-identity {home}/.pilot/identity.key" in log
    err = json.loads(cli("daemon", "start", "--json").err)
    assert err["code"] == "already_exists" and err["message"] == f"daemon is already running (pid {data['pid']})"
    assert cli("daemon", "status").out.startswith(f"Daemon: running (pid {data['pid']})\n")
    assert json.loads(cli("daemon", "stop", "--json").out)["data"] == {"pid": data["pid"]}
    assert not os.path.exists(os.path.join(home, ".pilot", "pilot.pid"))


def test_start_text_mode_and_configured_registry(cli, stubs, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("PILOT_REGISTRY", "127.0.0.1:1")
    r = cli("daemon", "start", "--hostname", "alice", "--no-encrypt")
    assert r.status == 0, r.err
    assert r.err.startswith("starting daemon (pid ") and "rendezvous" not in r.err
    lines = r.out.splitlines()
    assert lines[0].startswith("Daemon running (pid ") and lines[1] == "  Address:  0:0000.0000.0005"
    assert lines[2] == "  Hostname: alice"
    assert cli("daemon", "stop").out.startswith("daemon stopped (pid ")


def test_daemon_argv_translation(home: str) -> None:
    s = daemon_cmd._settings(daemon_cmd.parse_flags(["--registry", "r:1", "--public", "--no-encrypt", "--owner", "o"]))
    argv = daemon_cmd.daemon_argv(s)
    assert argv[argv.index("-registry") + 1] == "r:1"
    assert "-public" in argv and "-encrypt=false" in argv and argv[argv.index("-owner") + 1] == "o"
