"""Expose between real daemons on loopback: a local TCP service published on
a pilot port is reachable by other nodes, obeys the trust policy, survives a
daemon restart, and `pilotctl gateway expose/unexpose/exposed` drive it.

No network namespaces needed: the gateway side here is a plain client dial.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

import pilotgw
from pilotgw.client.errors import DaemonError

PAGE = b"<html>hello from behind the overlay</html>"


def run(coro, timeout: float = 60.0):
    return asyncio.run(asyncio.wait_for(coro, timeout))


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server API)
        body = PAGE if self.path == "/" else os.urandom(int(self.path.strip("/")))
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def http_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


@pytest.fixture
def node(rendezvous, start_daemon, tmp_path, monkeypatch):
    def start(name, *flags, public=True):
        home = tmp_path / f"home-{name}"
        (home / ".pilot").mkdir(parents=True, exist_ok=True)
        ident = home / ".pilot" / "identity.key"
        with monkeypatch.context() as m:
            m.setenv("HOME", str(home))
            d = start_daemon(rendezvous, name, *flags, "-identity", str(ident), public=public)
        d.home, d.identity = home, ident
        return d

    return start


async def call(d, method, *args):
    client = await pilotgw.connect(str(d.socket))
    try:
        return await getattr(client, method)(*args)
    finally:
        await client.close()


async def http_get(d, node_id: int, port: int, path: str = "/") -> bytes:
    client = await pilotgw.connect(str(d.socket))
    try:
        reader, writer = await client.dial(node_id, port)
        writer.write(f"GET {path} HTTP/1.0\r\nHost: x\r\n\r\n".encode())
        await writer.drain()
        return await reader.read()
    finally:
        await client.close()


def pilotctl(d, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HOME": str(d.home), "PILOT_SOCKET": str(d.socket)}
    return subprocess.run([sys.executable, "-m", "pilotgw.cli.main", *args], capture_output=True, text=True,
                          env=env, timeout=30)


def test_exposed_service_is_reachable_and_persisted(node, http_server, start_daemon, rendezvous, monkeypatch):
    agent, peer = node("agent"), node("peer")
    target = f"127.0.0.1:{http_server}"
    done = pilotctl(agent, "--json", "gateway", "expose", "80", target)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"data": {"port": 80, "target": target}, "status": "ok"}

    reply = run(http_get(peer, agent.node_id, 80))
    assert reply.startswith(b"HTTP/1.0 200") and reply.endswith(PAGE)
    big = run(http_get(peer, agent.node_id, 80, "/3000000"))
    assert len(big.split(b"\r\n\r\n", 1)[1]) == 3_000_000

    listing = json.loads(pilotctl(agent, "--json", "gateway", "exposed").stdout)["data"]
    assert listing["total"] == 1
    entry = listing["exposed"][0]
    assert entry["port"] == 80 and entry["target"] == target
    assert entry["connections"] == 2 and entry["bytes_out"] > 3_000_000 and entry["errors"] == 0

    saved = json.loads((agent.identity.parent / "expose.json").read_text())
    assert saved["exposed"] == [{"port": 80, "target": target}]
    assert (agent.identity.parent / "expose.json").stat().st_mode & 0o777 == 0o600

    # A restart re-publishes it with no command.
    agent.stop()
    with monkeypatch.context() as m:
        m.setenv("HOME", str(agent.home))
        again = start_daemon(rendezvous, "agent2", "-identity", str(agent.identity), public=True)
    again.home, again.identity = agent.home, agent.identity
    assert run(http_get(peer, again.node_id, 80)).endswith(PAGE)

    text = pilotctl(again, "gateway", "unexpose", "80")
    assert text.returncode == 0 and text.stdout == f"unexposed pilot port 80 (was {target})\n"
    with pytest.raises(Exception):
        run(http_get(peer, again.node_id, 80), timeout=20)
    assert json.loads((agent.identity.parent / "expose.json").read_text())["exposed"] == []


def test_expose_obeys_trust_and_reports_errors(node, http_server):
    agent = node("agent", public=False)  # private: only trusted peers get in
    stranger = node("stranger")
    assert run(call(agent, "expose", 8080, f"127.0.0.1:{http_server}")) == {
        "port": 8080, "target": f"127.0.0.1:{http_server}"}
    with pytest.raises(Exception):
        run(http_get(stranger, agent.node_id, 8080), timeout=30)

    # A built-in port cannot be taken; bad input is refused with clear codes.
    busy = pilotctl(agent, "--json", "gateway", "expose", "1001", "127.0.0.1:1")
    assert busy.returncode == 1 and json.loads(busy.stderr)["code"] == "already_exists"
    bad = pilotctl(agent, "--json", "gateway", "expose", "81", "nohostport")
    assert bad.returncode == 1 and json.loads(bad.stderr)["code"] == "invalid_argument"
    missing = pilotctl(agent, "--json", "gateway", "unexpose", "81")
    assert missing.returncode == 1 and json.loads(missing.stderr)["code"] == "not_found"
    with pytest.raises(DaemonError):
        run(call(agent, "unexpose", 9))


def test_unreachable_target_resets_the_stream(node):
    agent, peer = node("agent"), node("peer")
    with socket.socket() as s:  # bound, never listening: connections are refused
        s.bind(("127.0.0.1", 0))
        run(call(agent, "expose", 81, f"127.0.0.1:{s.getsockname()[1]}"))
        start = time.monotonic()
        assert run(http_get(peer, agent.node_id, 81)) == b""
        assert time.monotonic() - start < 5
    entry = run(call(agent, "exposed"))[0]
    assert entry["errors"] == 1 and entry["connections"] == 1
