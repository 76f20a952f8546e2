"""The STUN-like probe, over loopback: observed endpoints, the alternate port, junk."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest

from pilotgw.lab import probe


def free_port_pair() -> int:
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as a:
            a.bind(("127.0.0.1", 0))
            port = a.getsockname()[1]
            if port >= 65535:
                continue
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as b:
                try:
                    b.bind(("127.0.0.1", port + 1))
                except OSError:
                    continue
            return port
    raise RuntimeError("no free port pair")


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, int]]:
    port = free_port_pair()
    proc = subprocess.Popen(
        [sys.executable, "-m", "pilotgw.lab.probe", "serve", "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == f"ready {port}"
        yield ("127.0.0.1", port)
    finally:
        proc.kill()
        proc.wait()


@pytest.fixture
def client() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    yield sock
    sock.close()


def test_reports_the_observed_source(server: tuple[str, int], client: socket.socket) -> None:
    assert probe.observe(client, server) == client.getsockname()


def test_alt_answers_from_the_other_port(server: tuple[str, int], client: socket.socket) -> None:
    assert probe.observe(client, server, alt=True) == client.getsockname()
    client.sendto(b"alt", server)
    _, src = client.recvfrom(100)
    assert src == (server[0], server[1] + 1)


def test_junk_is_ignored_and_the_server_survives(server: tuple[str, int], client: socket.socket) -> None:
    for junk in (b"", b"\xff" * 1500, b"PING", b"ping" * 100):
        client.sendto(junk, server)
    client.settimeout(0.2)
    with pytest.raises(socket.timeout):
        client.recvfrom(100)
    assert probe.observe(client, server) == client.getsockname()


def test_no_server_means_none(client: socket.socket) -> None:
    port = free_port_pair()
    assert probe.observe(client, ("127.0.0.1", port), timeout=0.05, tries=2) is None


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"1.2.3.4:5", ("1.2.3.4", 5)),
        (b"198.51.100.10:65535", ("198.51.100.10", 65535)),
        (b"1.2.3.4:65536", None),
        (b"1.2.3.999:5", None),
        (b"1.2.3.4", None),
        (b"x1.2.3.4:5", None),
        (b"", None),
    ],
)
def test_parse_reply(data: bytes, expected: tuple[str, int] | None) -> None:
    assert probe.parse_reply(data) == expected


def test_query_command(server: tuple[str, int]) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "pilotgw.lab.probe", "query", f"{server[0]}:{server[1]}"],
        capture_output=True, text=True, timeout=10,
    )
    assert out.returncode == 0 and out.stdout.startswith("127.0.0.1:")
    bad = subprocess.run([sys.executable, "-m", "pilotgw.lab.probe", "query", "nowhere"], capture_output=True, text=True, timeout=10)
    assert bad.returncode == 2 and "not ip:port" in bad.stderr
