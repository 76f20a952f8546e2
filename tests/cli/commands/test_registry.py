"""lookup / register / rotate-key against a scripted registry on loopback."""

from __future__ import annotations

import json
import socket
import struct
import threading
from typing import Any, Iterator

import pytest


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[dict[str, Any]]]:
    seen: list[dict[str, Any]] = []
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                (n,) = struct.unpack(">I", conn.recv(4))
                msg = json.loads(conn.recv(n))
                seen.append(msg)
                if msg["type"] == "lookup" and msg["node_id"] == 9:
                    reply = {"type": "lookup_ok", "node_id": 9, "address": "0:0000.0000.0009", "networks": [0],
                             "public_key": "k", "public": False, "polo_score": 0}  # fmt: skip
                else:
                    reply = {"type": "error", "error": "request failed"}
                body = json.dumps(reply).encode()
                conn.sendall(struct.pack(">I", len(body)) + body)

    threading.Thread(target=serve, daemon=True).start()
    monkeypatch.setenv("PILOT_REGISTRY", f"127.0.0.1:{server.getsockname()[1]}")
    yield seen
    server.close()


def test_lookup(cli, registry) -> None:  # type: ignore[no-untyped-def]
    data = json.loads(cli("lookup", "9", "--json").out)["data"]
    assert data["type"] == "lookup_ok" and data["address"] == "0:0000.0000.0009"
    assert registry[-1] == {"node_id": 9, "type": "lookup"}
    r = cli("lookup", "10", "--json")
    assert json.loads(r.err)["message"] == "lookup: registry: request failed"


def test_register_and_rotate_key_fail_like_the_reference(cli, registry) -> None:  # type: ignore[no-untyped-def]
    assert json.loads(cli("register", "--json").err)["message"] == "register: registry: request failed"
    assert json.loads(cli("rotate-key", "9", "me@x", "--json").err)["message"] == "rotate-key: registry: request failed"
    assert registry[-1] == {"new_public_key": "me@x", "node_id": 9, "type": "rotate_key"}


def test_registry_unreachable(cli, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("PILOT_REGISTRY", "127.0.0.1:1")
    err = json.loads(cli("lookup", "9", "--json").err)
    assert err == {
        "code": "connection_failed",
        "hint": "check that the registry is running at 127.0.0.1:1, or set PILOT_REGISTRY",
        "message": "cannot reach registry at 127.0.0.1:1",
        "status": "error",
    }
