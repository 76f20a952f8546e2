"""Messages, events and files through the client API (both drivers) against
the scripted daemon, and the framing helpers they share."""

from __future__ import annotations

import asyncio
import os
import struct
from pathlib import Path

import pytest

from pilotgw.client import InvalidArgument, NotFound, PilotError, ProtocolError, SyncClient, Timeout, connect
from pilotgw.client import messaging
from pilotgw.overlay.address import Addr
from pilotgw.overlay.eventstream import Event

pytestmark = pytest.mark.timeout(30)


@pytest.mark.parametrize(
    ("data", "kind", "want_kind", "want"),
    [
        ("héllo", None, "text", "héllo".encode()),
        (b"\x00\xff", None, "binary", b"\x00\xff"),
        (bytearray(b"ab"), None, "binary", b"ab"),
        ({"a": [1, "é"]}, None, "json", '{"a":[1,"é"]}'.encode()),
        ([1, 2], None, "json", b"[1,2]"),
        ('{"raw":1}', "json", "json", b'{"raw":1}'),
        ("plain", "binary", "binary", b"plain"),
    ],
)
def test_message_kind_and_payload(data, kind, want_kind, want) -> None:  # type: ignore[no-untyped-def]
    got_kind = messaging.message_kind(data, kind)
    assert got_kind == want_kind
    payload = messaging.message_payload(data, got_kind)
    assert payload == want
    frame = messaging.message_frame(got_kind, payload)
    assert frame[:8] == struct.pack(">II", {"text": 1, "binary": 2, "json": 3}[want_kind], len(want))


def test_message_errors() -> None:
    with pytest.raises(InvalidArgument, match=r'^unknown type "xml" \(use text, json, or binary\)$'):
        messaging.message_kind("x", "xml")
    with pytest.raises(InvalidArgument, match="JSON-serialisable"):
        messaging.message_payload({"x": object()}, "json")
    with pytest.raises(InvalidArgument, match="needs str or bytes"):
        messaging.message_payload(5, "text")
    with pytest.raises(InvalidArgument, match="too long|exceeds"):
        messaging.publish_frames("t" * 2000, b"")


def test_ack_reader_waits_for_a_whole_frame_and_refuses_garbage() -> None:
    acks = messaging.AckReader()
    frame = struct.pack(">II", 1, 17) + b"ACK TEXT 12 bytes"
    assert acks.feed(frame[:5]) is None
    assert acks.feed(frame[5:]) == "ACK TEXT 12 bytes"
    with pytest.raises(ProtocolError):
        messaging.AckReader().feed(struct.pack(">II", 1, 1 << 30))


def test_sync_send_message_publish_subscribe(fake) -> None:  # type: ignore[no-untyped-def]
    with SyncClient(fake.path) as c, SyncClient(fake.path) as sub_client:
        assert c.send_message("alice", "hello") == "ACK TEXT 5 bytes"
        assert c.send_message(9, {"k": 1}) == "ACK JSON 7 bytes"
        assert c.send_message(Addr(0, 9), b"\x01\x02") == "ACK BINARY 2 bytes"
        with sub_client.subscribe("bob", "news") as sub:
            assert sub.target == Addr(0, 9)
            with pytest.raises(Timeout):
                sub.receive(timeout=0.05)
            c.publish(9, "news", "flash")
            c.publish(9, "other", b"ignored")
            c.publish(9, "news", b"two")
            assert sub.receive(timeout=5) == Event("news", b"flash")
            assert sub.receive(timeout=5) == Event("news", b"two")


def test_sync_target_resolution(fake) -> None:  # type: ignore[no-untyped-def]
    with SyncClient(fake.path) as c:
        assert c.target("bob") == Addr(0, 9)
        assert c.target("0:0000.0000.000A") == Addr(0, 10)
        assert c.target(7) == Addr(0, 7)
        with pytest.raises(NotFound, match='^cannot resolve "ghost"$'):
            c.target("ghost")
        with pytest.raises(InvalidArgument):
            c.target("1:2")
        with pytest.raises(NotFound):
            c.send_message("ghost", "x")


def test_send_message_without_ack_returns_none(fake) -> None:  # type: ignore[no-untyped-def]
    fake.silent_ports.add(1001)
    with SyncClient(fake.path) as c:
        assert c.send_message(9, "x", timeout=0.2) is None


def test_sync_send_file_to_reference_nodes(fake, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "w.bin"
    path.write_bytes(os.urandom(300_000))
    seen: dict[str, int] = {}
    with SyncClient(fake.path) as c:
        out = c.send_file(["alice", 9], path, lambda node, done, total: seen.__setitem__(node, done))
        assert [(d.target, d.ok, d.method, d.ack) for d in out] == [
            ("0:0000.0000.0005", True, "standard", "ACK FILE 300000 bytes"),
            ("0:0000.0000.0009", True, "standard", "ACK FILE 300000 bytes"),
        ]
        assert seen == {"0:0000.0000.0005": 300_000, "0:0000.0000.0009": 300_000}
        with pytest.raises(PilotError) as err:
            c.send_file(9, tmp_path / "missing")
        assert err.value.code == "not_found"
    streams = {**fake._finished, **fake._streams}
    sent = [bytes(s.received) for s in streams.values() if s.port == 1001]
    assert len(sent) == 2 and sent[0][8:10] == struct.pack(">H", 5) and sent[0].endswith(path.read_bytes())


def test_async_client_data_services(fake, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "a.txt"
    path.write_bytes(b"abc")

    async def main() -> None:
        async with await connect(fake.path) as c, await connect(fake.path) as other:
            assert await c.send_message("bob", "hi") == "ACK TEXT 2 bytes"
            async with await other.subscribe(9, "*") as sub:
                await c.publish("bob", "t", b"x")
                async for event in sub:
                    assert event == Event("t", b"x")
                    break
            (d,) = await c.send_file(9, path)
            assert (d.ok, d.ack, d.bytes) == (True, "ACK FILE 3 bytes", 3)
            with pytest.raises(NotFound):
                await c.publish("ghost", "t", b"")
            assert c.inbox() == [] and c.received() == []

    asyncio.run(main())
