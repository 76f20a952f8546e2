"""Start-up paths of pilot-daemon: TLS-pinned registry, JSON logs, failures
that must stop the daemon with a clear message, and no hijacked socket."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.integration.conftest import _daemon_command


def _run_daemon(rv, tmp_path, *extra, timeout=30):
    args = ["-registry", f"127.0.0.1:{rv.registry[1]}", "-beacon", f"127.0.0.1:{rv.beacon[1]}",
            "-listen", "127.0.0.1:0", "-socket", str(tmp_path / "x.sock"), *extra]
    return subprocess.run(_daemon_command() + args, capture_output=True, text=True, timeout=timeout)


def test_registry_tls_with_pinning(start_rendezvous, start_daemon, tmp_path):
    rv = start_rendezvous("-tls")
    assert rv.fingerprint
    d = start_daemon(rv, "a", "-registry-tls", "-registry-fingerprint", rv.fingerprint)
    assert d.info()["node_id"] == d.node_id
    bad = "0" * 64
    res = _run_daemon(rv, tmp_path, "-registry-tls", "-registry-fingerprint", bad)
    assert res.returncode == 1
    assert "fingerprint mismatch" in res.stderr


def test_tls_without_pin_refused(rendezvous, tmp_path):
    res = _run_daemon(rendezvous, tmp_path, "-registry-tls")
    assert res.returncode == 1
    assert "requires RegistryFingerprint" in res.stderr


@pytest.mark.slow
def test_unreachable_registry_fails_start(tmp_path):
    class Fake:
        registry = ("127.0.0.1", 1)
        beacon = ("127.0.0.1", 1)

    res = _run_daemon(Fake, tmp_path)
    assert res.returncode == 1 and "unreachable" in res.stderr
    assert not (tmp_path / "x.sock").exists()


def test_corrupt_identity_refuses_to_start(rendezvous, tmp_path):
    ident = tmp_path / "id.json"
    ident.write_text('{"private_key": "AAAA", "public_key": "BBBB"}')
    res = _run_daemon(rendezvous, tmp_path, "-identity", str(ident))
    assert res.returncode == 1 and "identity" in res.stderr
    assert ident.read_text().startswith('{"private_key": "AAAA"')  # never overwritten


def test_json_logs_and_running_socket_not_hijacked(rendezvous, start_daemon, tmp_path):
    d = start_daemon(rendezvous, "a", "-log-format", "json")
    lines = [json.loads(line) for line in d.log().splitlines() if line.strip()]
    assert lines and all({"time", "level", "component", "msg"} <= set(obj) for obj in lines)
    assert any(obj["msg"] == "daemon started" and obj["node_id"] == d.node_id for obj in lines)
    res = subprocess.run(_daemon_command() + ["-registry", f"127.0.0.1:{rendezvous.registry[1]}", "-beacon",
                                              f"127.0.0.1:{rendezvous.beacon[1]}", "-socket", str(d.socket)],
                         capture_output=True, text=True, timeout=30)
    assert res.returncode == 1 and "already running" in res.stderr
    assert d.info()["node_id"] == d.node_id  # the first daemon still owns its socket


def test_plaintext_mode_when_both_disable_encryption(rendezvous, start_daemon):
    a = start_daemon(rendezvous, "a", "-encrypt=false")
    b = start_daemon(rendezvous, "b", "-encrypt=false")
    from pilotgw.client import SyncClient

    with SyncClient(str(a.socket)) as c:
        conn = c.dial(b.node_id, 7, timeout=15)
        conn.send(b"in the clear")
        got = b""
        while len(got) < 12:
            got += conn.recv(100, timeout=5)
        conn.close()
        info = c.info()
    assert got == b"in the clear"
    assert info["encrypt"] is False
    assert not any(p["encrypted"] for p in info["peer_list"])
