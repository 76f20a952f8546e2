"""The bulk extension's frame reader: frames come out whole and in order
however the stream is cut into reads, and a broken stream gives the error
its caller handles (clean EOF, EOF inside a frame, bad header)."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pilotgw.overlay.errors import DecodeError
from pilotgw.services import xfer


class Pieces:
    """A reader that hands out ``data`` in the given piece sizes, whatever
    ``read(n)`` asks for (at most ``n``), as a network stream does."""

    def __init__(self, data: bytes, cuts: list[int]) -> None:
        self.data = data
        self.cuts = cuts
        self.pos = 0
        self.reads = 0

    async def read(self, n: int) -> bytes:
        assert n > 0
        self.reads += 1
        size = self.cuts[self.reads % len(self.cuts)] if self.cuts else n
        chunk = self.data[self.pos : self.pos + min(size, n)]
        self.pos += len(chunk)
        return chunk


def read_all(reader: Pieces, read_size: int = xfer.HEADER.size + xfer.MAX_DATA) -> list[tuple[int, bytes]]:
    async def run() -> list[tuple[int, bytes]]:
        frames = xfer.FrameReader(reader, read_size)
        out = []
        while (got := await frames.next()) is not None:
            out.append(got)
        return out

    return asyncio.run(run())


frames_strategy = st.lists(
    st.one_of(
        st.binary(max_size=3000).map(lambda b: (xfer.DATA, b)),
        st.sampled_from([xfer.start(0), xfer.end("ab" * 32), xfer.progress("0:0000.0000.0001", 7)]).map(
            lambda f: (int.from_bytes(f[:4], "big"), f[8:])
        ),
    ),
    max_size=12,
)


@settings(max_examples=300, deadline=None)
@given(frames_strategy, st.lists(st.integers(1, 5000), max_size=6), st.integers(1, 4096))
def test_frames_survive_any_cutting_of_the_stream(frames, cuts, read_size):
    wire = b"".join(xfer.frame(kind, payload) for kind, payload in frames)
    assert read_all(Pieces(wire, cuts), read_size) == frames


def test_one_read_brings_header_and_payload():
    wire = xfer.frame(xfer.DATA, b"x" * 100_000) + xfer.end("cd" * 32)
    reader = Pieces(wire, [])
    assert [k for k, _ in read_all(reader)] == [xfer.DATA, xfer.END]
    assert reader.reads == 2  # everything in one read, then EOF


def test_eof_inside_a_frame_is_an_incomplete_read():
    wire = xfer.frame(xfer.DATA, b"y" * 1000)
    for cut in (3, 8, 500):
        with pytest.raises(asyncio.IncompleteReadError):
            read_all(Pieces(wire[:cut], [64]))


def test_bad_header_is_refused_before_its_payload_is_read():
    oversized = xfer.HEADER.pack(xfer.DATA, xfer.MAX_DATA + 1)
    with pytest.raises(DecodeError) as info:
        read_all(Pieces(oversized, []))
    assert info.value.code == "oversize"
    with pytest.raises(DecodeError) as info:
        read_all(Pieces(xfer.HEADER.pack(0x1234, 0), []))
    assert info.value.code == "type"
