"""Data-exchange frames (services-and-cli.md §A3.1-A3.3, A3.6, C-9/C-10)."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pilotgw.overlay import dataexchange as dx
from pilotgw.overlay.errors import DecodeError

TEXT_HELLO = bytes.fromhex("00000001 00000005 68656C6C6F".replace(" ", ""))
FILE_A_TXT = bytes.fromhex("00000004 00000009 0005 612E747874 6869".replace(" ", ""))


def test_spec_examples() -> None:
    assert dx.encode(dx.Frame(dx.TEXT, b"hello")) == TEXT_HELLO
    assert dx.file_frame("a.txt", b"hi").encode() == FILE_A_TXT
    frame = dx.decode(FILE_A_TXT)
    assert (frame.type, frame.filename, frame.data) == (dx.FILE, b"a.txt", b"hi")
    assert dx.decode(TEXT_HELLO) == dx.Frame(dx.TEXT, b"hello")


def test_type_names() -> None:
    assert [dx.type_name(t) for t in (1, 2, 3, 4, 0, 99)] == ["TEXT", "BINARY", "JSON", "FILE", "UNKNOWN(0)", "UNKNOWN(99)"]


def test_ack_texts() -> None:
    assert dx.ack(dx.TEXT, 5).encode() == bytes.fromhex("0000000100000010") + b"ACK TEXT 5 bytes"
    assert dx.ack(dx.FILE, 1024).payload == b"ACK FILE 1024 bytes"
    assert dx.ack(7, 0).payload == b"ACK UNKNOWN(7) 0 bytes"
    failed = dx.save_failed(dx.FILE, "disk full")
    assert (failed.type, failed.payload) == (dx.TEXT, b"ERR FILE save failed: disk full")


@pytest.mark.parametrize(
    "payload, name, data",
    [
        (b"", b"", b""),
        (b"\x00", b"", b"\x00"),
        (b"\x00\x00", b"", b""),
        (b"\x00\x00xyz", b"", b"xyz"),
        (b"\x00\x03abc", b"abc", b""),
        (b"\x00\x04abc", b"", b"\x00\x04abc"),  # name does not fit: no name, all data
        (b"\xff\xffab", b"", b"\xff\xffab"),
    ],
)
def test_file_name_rule(payload: bytes, name: bytes, data: bytes) -> None:
    frame = dx.Frame(dx.FILE, payload)
    assert (frame.filename, frame.data) == (name, data)


def test_non_file_types_have_no_name() -> None:
    frame = dx.Frame(dx.TEXT, b"\x00\x01ab")
    assert (frame.filename, frame.data) == (b"", b"\x00\x01ab")


def test_size_limit_exactly_16_mib_allowed() -> None:
    assert dx.decode_header(struct.pack(">II", 1, 1 << 24)) == (1, 1 << 24)
    with pytest.raises(DecodeError, match=r"^frame too large: 16777217$") as info:
        dx.decode_header(struct.pack(">II", 1, (1 << 24) + 1))
    assert info.value.code == "oversize"
    with pytest.raises(ValueError):
        dx.encode_header(dx.FILE, (1 << 24) + 1)


def test_decode_truncated_and_trailing() -> None:
    for n in range(len(TEXT_HELLO)):
        with pytest.raises(DecodeError) as info:
            dx.decode(TEXT_HELLO[:n])
        assert info.value.code == "truncated"
    with pytest.raises(DecodeError) as info:
        dx.decode(TEXT_HELLO + b"!")
    assert info.value.code == "trailing"


def test_file_prefix_streams_the_data() -> None:
    data = bytes(range(256)) * 10
    assert dx.encode_file_prefix(b"f.bin", len(data)) + data == dx.file_frame(b"f.bin", data).encode()
    with pytest.raises(ValueError):
        dx.encode_file_prefix("x" * 70000, 1)
    # 16 MiB minus the name header is the largest file (C-10)
    dx.encode_file_prefix("a", (1 << 24) - 3)
    with pytest.raises(ValueError):
        dx.encode_file_prefix("a", (1 << 24) - 2)


def _collect(events: list[dx.Event]) -> list[tuple[int, bytes, bytes]]:
    """(type, filename, data) per frame, from reader events."""
    out, data, start = [], bytearray(), None
    for ev in events:
        if isinstance(ev, dx.FrameStart):
            assert start is None
            start, data = ev, bytearray()
        elif isinstance(ev, dx.FrameData):
            data += ev.data
        else:
            assert start is not None and ev.type == start.type
            assert len(data) == start.data_length
            out.append((start.type, start.filename, bytes(data)))
            start = None
    assert start is None
    return out


def test_stream_reader_one_byte_at_a_time() -> None:
    stream = TEXT_HELLO + FILE_A_TXT + dx.Frame(dx.FILE, b"\x00\x09ab").encode() + dx.Frame(dx.JSON, b"").encode()
    reader = dx.StreamReader()
    events = []
    for i in range(len(stream)):
        events += reader.feed(stream[i : i + 1])
        assert reader.at_boundary == (i + 1 in (13, 30, 42, 50))
    assert _collect(events) == [
        (dx.TEXT, b"", b"hello"),
        (dx.FILE, b"a.txt", b"hi"),
        (dx.FILE, b"", b"\x00\x09ab"),
        (dx.JSON, b"", b""),
    ]


def test_stream_reader_does_not_buffer_file_data() -> None:
    reader = dx.StreamReader()
    events = reader.feed(dx.encode_file_prefix(b"big", 10_000_000))
    assert events == [dx.FrameStart(dx.FILE, 10_000_005, b"big", 10_000_000)]
    chunk = memoryview(b"z" * 65536)
    events = reader.feed(chunk)
    assert len(events) == 1 and events[0].data.obj is chunk.obj  # a slice, not a copy
    assert not reader.at_boundary


def test_stream_reader_rejects_oversize_before_payload() -> None:
    with pytest.raises(DecodeError, match="frame too large"):
        dx.StreamReader().feed(struct.pack(">II", 4, 1 << 25))
    with pytest.raises(DecodeError):
        dx.StreamReader(max_length=100).feed(struct.pack(">II", 1, 101))


def test_frame_assembler() -> None:
    asm = dx.FrameAssembler()
    assert asm.feed(TEXT_HELLO[:5]) == []
    assert asm.feed(TEXT_HELLO[5:] + FILE_A_TXT[:9]) == [dx.Frame(dx.TEXT, b"hello")]
    assert not asm.at_boundary
    assert asm.feed(FILE_A_TXT[9:]) == [dx.decode(FILE_A_TXT)]
    assert asm.at_boundary
    with pytest.raises(DecodeError):
        dx.FrameAssembler(max_length=4).feed(TEXT_HELLO)


def test_readers_return_frames_before_a_bad_header_then_fail() -> None:
    bad = struct.pack(">II", 1, (1 << 24) + 1)
    asm = dx.FrameAssembler()
    assert asm.feed(TEXT_HELLO + bad) == [dx.Frame(dx.TEXT, b"hello")]
    with pytest.raises(DecodeError, match="frame too large"):
        asm.feed(b"")
    reader = dx.StreamReader()
    assert _collect(reader.feed(TEXT_HELLO + bad)) == [(dx.TEXT, b"", b"hello")]
    with pytest.raises(DecodeError, match="frame too large"):
        reader.feed(b"")


frames = st.one_of(
    st.builds(dx.Frame, st.integers(0, 2**32 - 1), st.binary(max_size=300)),
    st.builds(dx.file_frame, st.binary(max_size=40), st.binary(max_size=300)),
)


@settings(max_examples=300)
@given(frames)
def test_round_trip(frame: dx.Frame) -> None:
    assert dx.decode(dx.encode(frame)) == frame


@settings(max_examples=300)
@given(st.lists(frames, max_size=5), st.lists(st.integers(1, 50), min_size=1, max_size=20))
def test_readers_agree_with_decode_for_any_chunking(fs: list[dx.Frame], cuts: list[int]) -> None:
    stream = b"".join(f.encode() for f in fs)
    reader, asm = dx.StreamReader(), dx.FrameAssembler()
    events, whole, pos, i = [], [], 0, 0
    while pos < len(stream):
        step = cuts[i % len(cuts)]
        events += reader.feed(stream[pos : pos + step])
        whole += asm.feed(stream[pos : pos + step])
        pos, i = pos + step, i + 1
    assert whole == fs
    assert _collect(events) == [(f.type, f.filename, f.data) for f in fs]
    assert reader.at_boundary and asm.at_boundary


@settings(max_examples=500)
@given(st.binary(max_size=200))
def test_random_bytes_value_or_decode_error(data: bytes) -> None:
    for parse in (dx.decode, dx.StreamReader().feed, dx.FrameAssembler().feed):
        try:
            parse(data)
        except DecodeError:
            pass
