"""The blocking SyncClient against the scripted daemon."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from pilotgw.client import DaemonError, NotRunning, SyncClient, Timeout
from pilotgw.overlay.address import Addr

pytestmark = pytest.mark.timeout(30)


def test_sync_client_does_not_import_asyncio() -> None:
    code = "import sys, pilotgw.client.sync; print('asyncio' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_not_running(sockdir: str) -> None:
    with pytest.raises(NotRunning):
        SyncClient(os.path.join(sockdir, "none.sock"))


def test_rpc_and_errors(fake) -> None:  # type: ignore[no-untyped-def]
    with SyncClient(fake.path) as c:
        assert c.info()["hostname"] == "alice"
        assert c.handshake(9, "hi")["status"] == "sent"
        with pytest.raises(DaemonError, match="^resolve_hostname: daemon: resolve_hostname: registry: request failed$"):
            c.resolve_hostname("nobody")
        assert c.deregister() == {"type": "deregister_ok"}
    assert fake.requests[1] == (0x0F, b"\x01\x00\x00\x00\x09hi")


def test_echo_stream_large_payload(fake) -> None:  # type: ignore[no-untyped-def]
    payload = os.urandom(2 * 1024 * 1024 + 5)
    with SyncClient(fake.path) as c:
        conn = c.dial(Addr(0, 9), 7)
        conn.send(payload)  # echoes are read while writing: no deadlock
        got = bytearray()
        while len(got) < len(payload):
            got += conn.recv(1 << 20, timeout=5)
        assert bytes(got) == payload
        conn.close()


def test_recv_timeout_and_eof(fake) -> None:  # type: ignore[no-untyped-def]
    fake.silent_ports.add(1000)
    with SyncClient(fake.path) as c:
        conn = c.dial(9, 1000)
        with pytest.raises(Timeout):
            conn.recv(timeout=0.1)
        fake.close_stream(conn.conn_id)
        assert conn.recv(timeout=2) == b""


def test_listen_accept_and_datagrams(fake) -> None:  # type: ignore[no-untyped-def]
    with SyncClient(fake.path) as c:
        listener = c.listen(2000)
        fake.push_accept(2000, 9, 49153, b"ping")
        conn = listener.accept(timeout=2)
        assert conn.recv(timeout=2) == b"ping" and conn.remote.port == 49153
        c.watch_datagrams()
        c.send_to(9, 3000, b"a")
        c.send_to(9, 4000, b"b")
        dg = c.recv_datagram(4000, timeout=2)
        assert dg.data == b"b" and dg.src_addr == Addr(0, 9)
        c.disconnect(conn.conn_id, timeout=2)
