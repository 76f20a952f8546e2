"""The TUN slow path's packet codec: checksums, round trips, no crash on junk."""

from __future__ import annotations

import ipaddress
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import ICMP, IP, UDP

from pilotgw.overlay.errors import DecodeError
from pilotgw.tun import ipv4

A = ipaddress.IPv4Address("10.4.0.1")
B = ipaddress.IPv4Address("192.0.2.7")


def slow_checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\x00"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


@settings(max_examples=300)
@given(st.binary(max_size=2000))
def test_checksum_matches_rfc1071_loop(data):
    assert ipv4.checksum(data) == slow_checksum(data)


def test_checksum_of_all_zero_and_all_ones_words():
    assert ipv4.checksum(b"") == 0xFFFF
    assert ipv4.checksum(b"\x00\x00") == 0xFFFF
    assert ipv4.checksum(b"\xff\xff") == 0


def test_udp_packet_is_what_scapy_builds():
    ours = ipv4.build_udp(A, B, 5353, 40000, b"hello", ident=7)
    theirs = bytes(IP(src=str(A), dst=str(B), id=7, flags=0, ttl=64) / UDP(sport=5353, dport=40000) / b"hello")
    assert ours == theirs


def test_echo_reply_answers_scapy_request():
    request = bytes(IP(src=str(B), dst=str(A)) / ICMP(type=8, id=0x77, seq=3) / b"payload")
    packet = ipv4.parse_ipv4(request)
    echo = ipv4.parse_icmp_echo(packet)
    assert echo == ipv4.IcmpEcho(0x77, 3, b"payload")
    raw = ipv4.build_echo_reply(packet.dst, packet.src, echo)
    reply = IP(raw)
    assert (reply.src, reply.dst) == (str(A), str(B))
    assert (reply[ICMP].type, reply[ICMP].id, reply[ICMP].seq) == (0, 0x77, 3)
    assert bytes(reply[ICMP].payload) == b"payload"
    assert ipv4.checksum(raw[:20]) == 0  # header checksum
    assert ipv4.checksum(raw[20:]) == 0  # ICMP checksum


def test_parse_udp_from_scapy_and_checksum_checked():
    raw = bytearray(bytes(IP(src=str(B), dst=str(A)) / UDP(sport=1234, dport=53) / b"query"))
    packet = ipv4.parse_ipv4(bytes(raw))
    assert ipv4.parse_udp(packet) == ipv4.UdpDatagram(1234, 53, b"query")
    raw[-1] ^= 0xFF  # payload damage: only the UDP checksum notices
    with pytest.raises(DecodeError) as err:
        ipv4.parse_udp(ipv4.parse_ipv4(bytes(raw)))
    assert err.value.code == "checksum"


def test_udp_zero_checksum_means_unchecked():
    raw = bytes(IP(src=str(B), dst=str(A)) / UDP(sport=1, dport=2, chksum=0) / b"x")
    assert ipv4.parse_udp(ipv4.parse_ipv4(raw)).data == b"x"


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b"\x45\x00", "truncated"),
        (bytes(IP(src="1.2.3.4", dst="5.6.7.8") / UDP())[:-1], "truncated"),
        (b"\x60" + bytes(39), "unsupported"),
        (bytes(IP(src="1.2.3.4", dst="5.6.7.8", flags="MF") / UDP()), "fragmented"),
        (bytes(IP(src="1.2.3.4", dst="5.6.7.8", frag=8) / UDP()), "fragmented"),
        (bytes(IP(src="1.2.3.4", dst="5.6.7.8", chksum=1) / UDP()), "checksum"),
    ],
)
def test_bad_ip_packets_raise_decode_error_with_code(raw, code):
    with pytest.raises(DecodeError) as err:
        ipv4.parse_ipv4(raw)
    assert err.value.code == code


def test_non_echo_icmp_is_unsupported():
    raw = bytes(IP(src=str(B), dst=str(A)) / ICMP(type=3, code=1))
    with pytest.raises(DecodeError) as err:
        ipv4.parse_icmp_echo(ipv4.parse_ipv4(raw))
    assert err.value.code == "unsupported"


def test_oversized_udp_is_refused():
    with pytest.raises(DecodeError) as err:
        ipv4.build_udp(A, B, 1, 2, bytes(65508))
    assert err.value.code == "oversized"
    assert len(ipv4.build_udp(A, B, 1, 2, bytes(65507))) == 65535


@settings(max_examples=400)
@given(st.binary(max_size=200))
def test_parsers_raise_only_decode_error(data):
    try:
        packet = ipv4.parse_ipv4(data)
    except DecodeError:
        return
    for parse in (ipv4.parse_udp, ipv4.parse_icmp_echo):
        try:
            parse(packet)
        except DecodeError:
            pass


@settings(max_examples=200)
@given(
    st.integers(0, 2**32 - 1),
    st.integers(0, 2**32 - 1),
    st.integers(0, 65535),
    st.integers(0, 65535),
    st.binary(max_size=1500),
)
def test_udp_round_trip(src, dst, sport, dport, data):
    s, d = ipaddress.IPv4Address(src), ipaddress.IPv4Address(dst)
    packet = ipv4.parse_ipv4(ipv4.build_udp(s, d, sport, dport, data))
    assert (packet.src, packet.dst, packet.protocol) == (s, d, ipv4.PROTO_UDP)
    assert ipv4.parse_udp(packet) == ipv4.UdpDatagram(sport, dport, data)
