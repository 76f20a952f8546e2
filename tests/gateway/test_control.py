"""The control socket protocol: one JSON reply line per request line, the
CLI's error codes carried through, 0600, no second server on a live socket."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import stat
import tempfile
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pilotgw.gateway import control
from pilotgw.gateway.control import ControlError, ControlServer, error_reply, request
from pilotgw.proxy.mapping import MappingError
from pilotgw.tun.errors import KernelError


class Served:
    """A ControlServer on a loop in a thread, so the blocking client can call it."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.loop = asyncio.new_event_loop()
        self.server = ControlServer(path, self.handle)
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(self.loop)
            self.loop.run_until_complete(self.server.start())
            ready.set()
            self.loop.run_forever()

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        assert ready.wait(5)

    async def handle(self, op: str, req: dict[str, Any]) -> Any:
        self.calls.append((op, req))
        if op == "echo":
            return {"args": {k: v for k, v in req.items() if k != "op"}}
        if op == "unmap":
            raise MappingError(f"no mapping for {req['ip']}", "not_found")
        if op == "kernel":
            raise KernelError("needs CAP_NET_ADMIN", "permission_denied", "run with sudo")
        if op == "boom":
            raise RuntimeError("unexpected")
        raise ControlError(f"unknown operation {op!r}", "invalid_argument")

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.server.close(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


@pytest.fixture
def served() -> Iterator[Served]:
    d = tempfile.mkdtemp(prefix="pgw-ctl-", dir="/tmp")
    s = Served(os.path.join(d, "gateway.sock"))
    yield s
    s.close()
    shutil.rmtree(d, ignore_errors=True)


def test_request_round_trip_and_socket_mode(served: Served) -> None:
    assert request(served.path, "echo", target="0:0000.0000.0004", ip=None) == {
        "args": {"target": "0:0000.0000.0004", "ip": None}
    }
    assert stat.S_IMODE(os.stat(served.path).st_mode) == 0o600


def test_errors_keep_their_cli_codes_and_hints(served: Served) -> None:
    with pytest.raises(ControlError) as info:
        request(served.path, "unmap", ip="10.4.0.9")
    assert (info.value.code, str(info.value), info.value.hint) == ("not_found", "no mapping for 10.4.0.9", None)
    with pytest.raises(ControlError) as info:
        request(served.path, "kernel")
    assert (info.value.code, info.value.hint) == ("permission_denied", "run with sudo")
    with pytest.raises(ControlError) as info:
        request(served.path, "boom")
    assert (info.value.code, str(info.value)) == ("internal", "unexpected")


def test_bad_lines_get_invalid_argument_and_the_connection_survives(served: Served) -> None:
    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect(served.path)
        sock.settimeout(5)
        sock.sendall(b"not json\n[1,2]\n{\"op\": 5}\n{\"op\":\"echo\"}\n")
        lines = b""
        while lines.count(b"\n") < 4:
            lines += sock.recv(4096)
    replies = [json.loads(line) for line in lines.splitlines()]
    assert [r["ok"] for r in replies] == [False, False, False, True]
    assert {r["code"] for r in replies[:3]} == {"invalid_argument"}


def test_an_overlong_line_is_refused(served: Served) -> None:
    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect(served.path)
        sock.settimeout(5)
        sock.sendall(b"{" + b" " * (control.MAX_LINE + 10))
        reply = json.loads(sock.recv(4096).splitlines()[0])
    assert reply["ok"] is False and reply["code"] == "invalid_argument"
    assert request(served.path, "echo") == {"args": {}}


def test_no_gateway_is_not_running() -> None:
    with pytest.raises(ControlError) as info:
        request("/tmp/pgw-no-such-dir/gateway.sock", "status")
    assert info.value.code == "not_running" and info.value.hint == "start with: pilotctl gateway start"


def test_a_second_server_on_a_live_socket_is_refused(served: Served) -> None:
    async def second() -> None:
        await ControlServer(served.path, served.handle).start()

    with pytest.raises(ControlError) as info:
        asyncio.run(second())
    assert info.value.code == "already_exists"
    assert request(served.path, "echo") == {"args": {}}  # the first one is untouched


def test_a_stale_socket_file_is_replaced() -> None:
    d = tempfile.mkdtemp(prefix="pgw-ctl-", dir="/tmp")
    path = os.path.join(d, "gateway.sock")
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(path)
    stale.close()  # the file stays, nobody listens: a crashed gateway's socket
    try:
        s = Served(path)
        assert request(path, "echo") == {"args": {}}
        s.close()
        assert not os.path.exists(path)
    finally:
        shutil.rmtree(d, ignore_errors=True)


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.text(), st.integers(), st.none(), st.lists(st.integers())),
       st.sampled_from(["code", "message", "hint"]))
def test_error_reply_always_has_a_string_code_and_message(value: Any, attr: str) -> None:
    exc = RuntimeError("x")
    setattr(exc, attr, value)
    reply = error_reply(exc)
    assert reply["ok"] is False and isinstance(reply["code"], str) and reply["code"]
    assert isinstance(reply["message"], str) and reply["message"]
    assert isinstance(reply.get("hint", ""), str)
