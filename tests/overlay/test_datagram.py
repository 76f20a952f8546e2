"""Datagrams: the reference's header values and refusal rules (§1.10.2)."""

from __future__ import annotations

import pytest

from pilotgw.overlay import datagram
from pilotgw.overlay.address import Addr, SocketAddr
from pilotgw.overlay.packet import PROTO_DATAGRAM, Packet, decode, encode

SRC = SocketAddr(Addr(0, 1), 49153)
DST = SocketAddr(Addr(0, 2), 1001)


def test_build_matches_the_tv1_datagram_bytes():
    p = datagram.build(SRC, DST, b"ping")
    assert encode(p).hex() == "".join("10 02 0004 0000 00000001 0000 00000002 c001 03e9 00000000 00000000 0000 6f4e88c2 70696e67".split())


@pytest.mark.parametrize(
    "dst,data,code",
    [
        (DST, b"", "empty"),
        (SocketAddr(Addr(0, 0xFFFFFFFF), 1001), b"x", "broadcast"),
        (DST, bytes(65_438), "too_large"),
    ],
)
def test_refusals_carry_a_code(dst, data, code):
    with pytest.raises(datagram.DatagramError) as exc:
        datagram.build(SRC, dst, data)
    assert exc.value.code == code


def test_pilt_limit_is_larger():
    assert len(datagram.build(SRC, DST, bytes(65_469), max_payload=datagram.MAX_PAYLOAD_PILT).payload) == 65_469


def test_accept_reads_and_drops_empty():
    got = datagram.accept(decode(encode(datagram.build(SRC, DST, b"hi"))))
    assert got == datagram.Datagram(SRC, 1001, b"hi")
    assert datagram.accept(Packet(PROTO_DATAGRAM, src_node=1, dst_node=2, payload=b"")) is None
