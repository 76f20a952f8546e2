"""Port-1001 receiver: reference frames and ACKs, inbox files, safe names."""

from __future__ import annotations

import asyncio
import functools
import json
import os
import struct

import pytest
from hypothesis import given, settings, strategies as st

from pilotgw.daemon.services import dataexchange as de
from pilotgw.daemon.services.dataexchange import DataExchange, Storage
from pilotgw.overlay import dataexchange as dx
from pilotgw.overlay.address import Addr, SocketAddr

NOW = 1_736_944_496.789


def aio(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return asyncio.run(asyncio.wait_for(fn(*args, **kwargs), 30))
    return wrapper


class Hooks:
    def __init__(self):
        self.events = []

    def emit(self, name, data=None):
        self.events.append((name, data))


@pytest.mark.parametrize("raw, name", [
    (b"../../etc/passwd", "passwd"), (b"a/b", "b"), (b".", "."), (b"", "."), (b"/", "."),
    (b"dir/", "dir"), (b"a\x00b", "a_b"), (b"a\\b", "a\\b"), (b"\xffx", "\ufffdx"), (b"..", ".."),
])
def test_safe_name(raw, name):
    assert de.safe_name(raw) == name


def test_received_names_follow_reference_pattern_then_collision_suffix():
    names = de.received_names("report.pdf", NOW)
    ts = de.timestamp(NOW)
    assert next(names) == f"report-{ts}.pdf"
    assert next(names) == f"report-{ts}-1.pdf"
    assert next(de.received_names(".bashrc", NOW)) == f"-{ts}.bashrc"
    assert next(de.received_names("archive.tar.gz", NOW)) == f"archive.tar-{ts}.gz"
    assert len(ts) == len("20250115-123456.789")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=700))
def test_any_name_gives_a_safe_single_component(raw):
    names = de.received_names(de.safe_name(raw), NOW)
    for _ in range(3):
        name = next(names)
        assert "/" not in name and "\x00" not in name and name not in (".", "..")
        assert len(name.encode("utf-8", "surrogateescape")) <= 255


async def exchange(svc, frames: bytes, sender=Addr(0, 7)):
    async def on_conn(reader, writer):
        await svc.handle(reader, writer, SocketAddr(sender, 49152))

    server = await asyncio.start_server(on_conn, "127.0.0.1", 0)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.sockets[0].getsockname()[1])
    writer.write(frames)
    await writer.drain()
    writer.write_eof()
    out = await reader.read()
    writer.close()
    server.close()
    return [f.payload.decode() for f in dx.FrameAssembler().feed(out)]


@aio
async def test_messages_go_to_inbox_with_acks(tmp_path):
    hooks = Hooks()
    svc = DataExchange(Storage(tmp_path, min_free=0), webhooks=hooks)
    frames = (dx.Frame(dx.TEXT, b"hello").encode() + dx.Frame(dx.JSON, b'{"a":1}').encode()
              + dx.Frame(dx.BINARY, b"\xff\x00").encode() + dx.Frame(9, b"zz").encode())
    acks = await exchange(svc, frames)
    assert acks == ["ACK TEXT 5 bytes", "ACK JSON 7 bytes", "ACK BINARY 2 bytes", "ACK UNKNOWN(9) 2 bytes"]
    inbox = sorted(os.listdir(tmp_path / "inbox"))
    assert [n.split("-")[0] for n in inbox] == ["BINARY", "JSON", "TEXT"]
    doc = json.loads((tmp_path / "inbox" / inbox[2]).read_bytes())
    assert list(doc) == ["bytes", "data", "from", "received_at", "type"]
    assert doc["data"] == "hello" and doc["from"] == "0:0000.0000.0007" and doc["type"] == "TEXT"
    raw = os.listdir(tmp_path / "inbox-raw")
    assert raw == [inbox[0][:-5] + ".bin"]
    assert (tmp_path / "inbox-raw" / raw[0]).read_bytes() == b"\xff\x00"
    assert ("message.received", {"from": "0:0000.0000.0007", "size": 5, "type": "TEXT"}) in hooks.events


@aio
async def test_file_frames_with_hostile_names_stay_inside_received(tmp_path):
    svc = DataExchange(Storage(tmp_path / "home", min_free=0))
    names = [b"../../etc/passwd", b"a/b", b".", b"x\x00y", b"n" * 300 + b".txt", b"same", b"same"]
    frames = b"".join(dx.file_frame(n, b"data").encode() for n in names)
    frames += dx.Frame(dx.FILE, b"").encode()  # FILE without a name: ACKed, not saved
    acks = await exchange(svc, frames)
    assert acks == ["ACK FILE 4 bytes"] * len(names) + ["ACK FILE 0 bytes"]
    received = tmp_path / "home" / "received"
    files = [p for p in received.iterdir() if p.is_file()]
    assert len(files) == len(names)
    assert all(p.read_bytes() == b"data" and p.stat().st_mode & 0o777 == 0o600 for p in files)
    assert not (tmp_path / "etc").exists()
    assert not list((received / ".partial").iterdir())  # no temp files left


@aio
async def test_zero_byte_file_and_oversized_frame(tmp_path):
    svc = DataExchange(Storage(tmp_path, min_free=0))
    acks = await exchange(svc, dx.file_frame("empty", b"").encode() + struct.pack(">II", 4, (1 << 24) + 1))
    assert acks == ["ACK FILE 0 bytes"]  # then closed silently
    [f] = [p for p in (tmp_path / "received").iterdir() if p.is_file()]
    assert f.stat().st_size == 0


@aio
async def test_truncated_file_leaves_nothing(tmp_path):
    svc = DataExchange(Storage(tmp_path, min_free=0))
    acks = await exchange(svc, dx.encode_file_prefix("cut", 1000) + b"x" * 10)
    assert acks == []
    assert [p for p in (tmp_path / "received").iterdir() if p.is_file()] == []
    assert list((tmp_path / "received" / ".partial").iterdir()) == []


@aio
async def test_no_space_answers_err(tmp_path):
    svc = DataExchange(Storage(tmp_path, min_free=1 << 62))
    acks = await exchange(svc, dx.file_frame("f", b"abc").encode())
    assert len(acks) == 1 and acks[0].startswith("ERR FILE save failed: not enough disk space")
