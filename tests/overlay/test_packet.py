"""Packet header codec: every TV-1 packet, and the §1.8 decoding rules."""

from __future__ import annotations

import struct
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pilotgw.overlay import packet
from pilotgw.overlay.errors import DecodeError
from pilotgw.overlay.packet import FLAG_ACK, FLAG_FIN, FLAG_RST, FLAG_SYN, Packet


def _hex(spaced: str) -> bytes:
    return bytes.fromhex(spaced.replace(" ", ""))


S, D, A, N1, N2 = packet.PROTO_STREAM, packet.PROTO_DATAGRAM, FLAG_ACK, 1, 2

# (name, packet, wire bytes from tunnel-and-transport.md TV-1)
TV1 = [
    (
        "syn",
        Packet(S, FLAG_SYN, 0, N1, 0, N2, 49152, 1000, 0, 0, 512),
        "11 01 0000 0000 00000001 0000 00000002 c000 03e8 00000000 00000000 0200 145ed874",
    ),
    (
        "data hello",
        Packet(S, A, 0, N1, 0, N2, 49152, 1000, 1, 1, 502, b"hello"),
        "12 01 0005 0000 00000001 0000 00000002 c000 03e8 00000001 00000001 01f6 5ee872c8 68656c6c6f",
    ),
    (
        "syn-ack",
        Packet(S, FLAG_SYN | A, 0, N2, 0, N1, 1000, 49152, 0, 1, 512),
        "13 01 0000 0000 00000002 0000 00000001 03e8 c000 00000000 00000001 0200 24f40f8e",
    ),
    (
        "handshake ack",
        Packet(S, A, 0, N1, 0, N2, 49152, 1000, 1, 1, 512),
        "12 01 0000 0000 00000001 0000 00000002 c000 03e8 00000001 00000001 0200 1e21ff5a",
    ),
    (
        "ack with sack",
        Packet(S, A, 0, N2, 0, N1, 1000, 49152, 1, 1, 510, _hex("5341434b0200001001000020010000300100004001")),
        "12 01 0015 0000 00000002 0000 00000001 03e8 c000 00000001 00000001 01fe b3b2d96d "
        "5341434b0200001001000020010000300100004001",
    ),
    (
        "keepalive",
        Packet(S, A, 0, N1, 0, N2, 49152, 1000, 6, 1, 0),
        "12 01 0000 0000 00000001 0000 00000002 c000 03e8 00000006 00000001 0000 7ad24bd2",
    ),
    (
        "fin",
        Packet(S, FLAG_FIN, 0, N1, 0, N2, 49152, 1000, 6, 0, 0),
        "14 01 0000 0000 00000001 0000 00000002 c000 03e8 00000006 00000000 0000 07a8a6d2",
    ),
    (
        "fin-ack",
        Packet(S, FLAG_FIN | A, 0, N2, 0, N1, 1000, 49152, 1, 7, 0),
        "16 01 0000 0000 00000002 0000 00000001 03e8 c000 00000001 00000007 0000 7de95191",
    ),
    (
        "rst",
        Packet(S, FLAG_RST, 0, N2, 0, N1, 1000, 49152, 0, 0, 0),
        "18 01 0000 0000 00000002 0000 00000001 03e8 c000 00000000 00000000 0000 5daed99a",
    ),
    (
        "datagram ping",
        Packet(D, 0, 0, N1, 0, N2, 49153, 1001, 0, 0, 0, b"ping"),
        "10 02 0004 0000 00000001 0000 00000002 c001 03e9 00000000 00000000 0000 6f4e88c2 70696e67",
    ),
    (
        "control pong",
        Packet(packet.PROTO_CONTROL, A, 0, N2, 0, N1, 0, 49154, 7, 8, 0, b"abc"),
        "12 03 0003 0000 00000002 0000 00000001 0000 c002 00000007 00000008 0000 efeb30e7 616263",
    ),
]


@pytest.mark.parametrize("name, pkt, wire", TV1, ids=[t[0] for t in TV1])
def test_tv1_encode(name: str, pkt: Packet, wire: str) -> None:
    assert packet.encode(pkt) == _hex(wire)
    assert pkt.encode() == _hex(wire)


@pytest.mark.parametrize("name, pkt, wire", TV1, ids=[t[0] for t in TV1])
def test_tv1_decode(name: str, pkt: Packet, wire: str) -> None:
    got = packet.decode(_hex(wire))
    assert got == pkt
    assert got.version == 1


def test_tv1_checksum_values() -> None:
    # The CRC is zlib.crc32 of the header with the field zeroed, then the payload.
    raw = bytearray(_hex(TV1[0][2]))
    assert struct.unpack_from(">I", raw, 30)[0] == 0x145ED874
    raw[30:34] = b"\0\0\0\0"
    assert zlib.crc32(raw) == 0x145ED874


def test_header_shorter_than_34_bytes() -> None:
    wire = _hex(TV1[0][2])
    for n in range(34):
        with pytest.raises(DecodeError) as info:
            packet.decode(wire[:n])
        assert info.value.code == "truncated"


def test_payload_truncated() -> None:
    wire = _hex(TV1[1][2])
    with pytest.raises(DecodeError) as info:
        packet.decode(wire[:-1])
    assert info.value.code == "truncated"


def test_trailing_bytes_ignored_and_not_checksummed() -> None:
    wire = _hex(TV1[1][2])
    got = packet.decode(wire + b"garbage")
    assert bytes(got.payload) == b"hello"


@pytest.mark.parametrize("offset", [0, 1, 3, 9, 21, 29, 33, 34, 38])
def test_checksum_mismatch(offset: int) -> None:
    wire = bytearray(_hex(TV1[1][2]))
    wire[offset] ^= 0x40
    with pytest.raises(DecodeError) as info:
        packet.decode(bytes(wire))
    assert info.value.code in ("checksum", "truncated")


def test_version_reported_not_validated() -> None:
    pkt = Packet(S, A, version=2, payload=b"x")
    assert packet.decode(packet.encode(pkt)).version == 2


def test_unknown_protocol_decodes() -> None:
    assert packet.decode(packet.encode(Packet(0x7F, payload=b"x"))).protocol == 0x7F


def test_memoryview_in_memoryview_out() -> None:
    wire = _hex(TV1[1][2])
    got = packet.decode(memoryview(wire))
    assert isinstance(got.payload, memoryview) and bytes(got.payload) == b"hello"


def test_encode_refuses_oversize_payload_and_bad_fields() -> None:
    with pytest.raises(ValueError):
        packet.encode(Packet(S, payload=b"\0" * 65536))
    with pytest.raises(ValueError):
        packet.encode(Packet(S, src_port=65536))
    assert len(packet.encode(Packet(D, payload=b"\0" * 65535))) == 34 + 65535


packets = st.builds(
    Packet,
    protocol=st.integers(0, 255),
    flags=st.integers(0, 15),
    src_net=st.integers(0, 0xFFFF),
    src_node=st.integers(0, 0xFFFFFFFF),
    dst_net=st.integers(0, 0xFFFF),
    dst_node=st.integers(0, 0xFFFFFFFF),
    src_port=st.integers(0, 0xFFFF),
    dst_port=st.integers(0, 0xFFFF),
    seq=st.integers(0, 0xFFFFFFFF),
    ack=st.integers(0, 0xFFFFFFFF),
    window=st.integers(0, 0xFFFF),
    payload=st.binary(max_size=300),
    version=st.integers(0, 15),
)


@settings(max_examples=300)
@given(packets)
def test_round_trip(pkt: Packet) -> None:
    assert packet.decode(packet.encode(pkt)) == pkt


@settings(max_examples=500)
@given(st.binary(max_size=120))
def test_random_bytes_decode_or_decode_error(data: bytes) -> None:
    try:
        packet.decode(data)
    except DecodeError:
        pass


@settings(max_examples=500)
@given(packets, st.data())
def test_mutated_packets_decode_or_decode_error(pkt: Packet, data: st.DataObject) -> None:
    wire = bytearray(packet.encode(pkt))
    i = data.draw(st.integers(0, len(wire) - 1))
    wire[i] ^= data.draw(st.integers(1, 255))
    cut = data.draw(st.integers(0, len(wire)))
    try:
        got = packet.decode(bytes(wire[:cut]))
    except DecodeError:
        return
    # A single flipped byte is always caught by CRC-32 unless it only touched
    # bytes beyond the payload.
    assert packet.encode(got) == bytes(wire[: 34 + len(got.payload)])
