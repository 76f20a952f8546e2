"""Byte-exact request frames and push decoding (trust-and-ipc.md §A2.3 examples)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from pilotgw.client import wire
from pilotgw.client.errors import InvalidArgument
from pilotgw.overlay.address import Addr
from pilotgw.overlay.errors import DecodeError


def test_contract_examples() -> None:
    assert wire.frame(wire.INFO) == bytes.fromhex("000000010D")
    assert wire.bind(1000) == bytes.fromhex("0000000301 03E8")
    assert wire.dial(Addr(0, 5), 7) == bytes.fromhex("00000009 03 000000000005 0007")
    assert wire.send_frames(1, b"hi") == [bytes.fromhex("00000007 06 00000001 6869")]
    assert wire.handshake(wire.HS_APPROVE, 9) == bytes.fromhex("00000006 0F 02 00000009")


def test_accept_push_decodes() -> None:
    body = bytes.fromhex("03E8 00000002 000000000009 C000")
    assert wire.decode_accept(body) == wire.Accept(1000, 2, Addr(0, 9), 49152)


def test_large_send_is_chunked_below_limit() -> None:
    data = bytes(range(256)) * 4097  # just over 1 MiB
    frames = wire.send_frames(3, data)
    assert all(len(f) - 4 <= wire.MAX_BODY for f in frames)
    assert b"".join(f[9:] for f in frames) == data
    assert len(frames) == -(-len(data) // wire.SEND_CHUNK)


def test_bad_input_rejected_locally() -> None:
    with pytest.raises(InvalidArgument):
        wire.bind(70000)
    with pytest.raises(InvalidArgument):
        wire.send_to(Addr(0, 0xFFFFFFFF), 1000, b"x")
    with pytest.raises(InvalidArgument):
        wire.handshake(wire.HS_REVOKE, -1)


def test_reader_skips_empty_and_rejects_oversize() -> None:
    r = wire.FrameReader()
    assert r.feed(bytes.fromhex("00000000 00000001 0E")) == [(0x0E, b"")]
    with pytest.raises(DecodeError) as exc:
        wire.FrameReader().feed((wire.MAX_BODY + 1).to_bytes(4, "big"))
    assert exc.value.code == "too_large"


@settings(max_examples=300)
@given(st.lists(st.tuples(st.integers(1, 255), st.binary(max_size=300)), max_size=8), st.integers(1, 64))
def test_reader_reassembles_any_split(frames: list[tuple[int, bytes]], step: int) -> None:
    stream = b"".join(wire.frame(c, p) for c, p in frames)
    r = wire.FrameReader()
    out = []
    for i in range(0, len(stream), step):
        out += r.feed(stream[i : i + step])
    assert out == frames


@settings(max_examples=300)
@given(st.binary(max_size=64))
def test_push_decoders_only_raise_decode_error(data: bytes) -> None:
    for fn in (wire.decode_accept, wire.decode_recv_from, wire.decode_error):
        try:
            fn(data)
        except DecodeError:
            pass


def test_frames_match_the_shared_ipc_codec() -> None:
    # wire.py stays import-light for pilotctl's startup budget; this keeps it
    # byte-identical to the daemon side's codec.
    from pilotgw.overlay import ipc

    a = Addr(0, 0x10009)
    assert wire.bind(80) == ipc.Bind(80).encode()
    assert wire.dial(a, 1001) == ipc.Dial(a, 1001).encode()
    assert wire.close(7) == ipc.Close(7).encode()
    assert wire.send_to(a, 9, b"dg") == ipc.SendTo(a, 9, b"dg").encode()
    assert wire.send_frames(7, b"x" * 70000) == list(ipc.encode_send(7, b"x" * 70000))
    assert wire.handshake(wire.HS_REQUEST, 9, b"why") == ipc.HandshakeRequest(9, "why").encode()
    assert wire.handshake(wire.HS_PENDING) == ipc.HandshakePending().encode()
    assert wire.flag(wire.SET_VISIBILITY, True) == ipc.SetVisibility(True).encode()
    accept = ipc.Accept(1000, 2, a, 49152)
    assert wire.decode_accept(accept.payload()) == wire.Accept(1000, 2, a, 49152)
    rf = ipc.RecvFrom(a, 5, 6, b"z")
    assert wire.decode_recv_from(rf.payload()) == wire.Datagram(a, 5, 6, b"z")
