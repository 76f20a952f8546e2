"""IPv4, UDP and ICMP echo packets for the TUN slow path, sans-IO.

Only ICMP echo and UDP reach the TUN device (TCP is redirected to a socket
before routing; see :mod:`pilotgw.tun`), so this is all the packet handling
the gateway needs. Packets come from the kernel, but on the forwarding path
they were built by other hosts: every parser raises
:class:`~pilotgw.overlay.errors.DecodeError` and nothing else.
"""

from __future__ import annotations

import ipaddress
import struct
from typing import NamedTuple

from pilotgw.overlay.errors import DecodeError

PROTO_ICMP = 1
PROTO_UDP = 17
ICMP_ECHO_REPLY = 0
ICMP_ECHO_REQUEST = 8
DEFAULT_TTL = 64
MAX_PACKET = 65535

_IP_HEADER = struct.Struct("!BBHHHBBH4s4s")
_UDP_HEADER = struct.Struct("!HHHH")
_ICMP_ECHO = struct.Struct("!BBHHH")
_FLAG_MF = 0x2000
_OFFSET_MASK = 0x1FFF


def checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071) of ``data``.

    The ones'-complement sum of 16-bit words is the number the bytes spell,
    modulo 0xFFFF (2**16 is 1 modulo 0xFFFF), so a single big-integer
    reduction replaces a Python loop over 32 768 words.
    """
    if len(data) % 2:
        data += b"\x00"
    number = int.from_bytes(data, "big")
    folded = number % 0xFFFF
    if folded == 0 and number != 0:
        folded = 0xFFFF
    return ~folded & 0xFFFF


class IPv4Packet(NamedTuple):
    src: ipaddress.IPv4Address
    dst: ipaddress.IPv4Address
    protocol: int
    payload: bytes


class UdpDatagram(NamedTuple):
    src_port: int
    dst_port: int
    data: bytes


class IcmpEcho(NamedTuple):
    ident: int
    seq: int
    data: bytes


def parse_ipv4(packet: bytes) -> IPv4Packet:
    """Header fields and payload of a whole (unfragmented) IPv4 packet."""
    if len(packet) < _IP_HEADER.size:
        raise DecodeError(f"IPv4 packet of {len(packet)} bytes is shorter than a header", "truncated")
    ver_ihl, _tos, total, _ident, frag, _ttl, proto, _sum, src, dst = _IP_HEADER.unpack_from(packet)
    if ver_ihl >> 4 != 4:
        raise DecodeError(f"IP version {ver_ihl >> 4} is not 4", "unsupported")
    header_len = (ver_ihl & 0x0F) * 4
    if header_len < _IP_HEADER.size or total < header_len:
        raise DecodeError(f"bad IPv4 lengths: header {header_len}, total {total}", "malformed")
    if total > len(packet):
        raise DecodeError(f"IPv4 total length {total} exceeds the {len(packet)} bytes read", "truncated")
    if checksum(packet[:header_len]) != 0:
        raise DecodeError("bad IPv4 header checksum", "checksum")
    if frag & (_FLAG_MF | _OFFSET_MASK):
        raise DecodeError("IPv4 fragment", "fragmented")
    return IPv4Packet(
        ipaddress.IPv4Address(src),
        ipaddress.IPv4Address(dst),
        proto,
        bytes(packet[header_len:total]),
    )


def build_ipv4(
    src: ipaddress.IPv4Address,
    dst: ipaddress.IPv4Address,
    protocol: int,
    payload: bytes,
    *,
    ident: int = 0,
    ttl: int = DEFAULT_TTL,
) -> bytes:
    """A header without options (DF clear, so routers may fragment) plus ``payload``."""
    total = _IP_HEADER.size + len(payload)
    if total > MAX_PACKET:
        raise DecodeError(f"IPv4 packet of {total} bytes exceeds {MAX_PACKET}", "oversized")
    header = bytearray(
        _IP_HEADER.pack(0x45, 0, total, ident & 0xFFFF, 0, ttl, protocol, 0, src.packed, dst.packed)
    )
    struct.pack_into("!H", header, 10, checksum(bytes(header)))
    return bytes(header) + payload


def _pseudo_header(src: ipaddress.IPv4Address, dst: ipaddress.IPv4Address, length: int) -> bytes:
    return src.packed + dst.packed + struct.pack("!BBH", 0, PROTO_UDP, length)


def parse_udp(packet: IPv4Packet) -> UdpDatagram:
    """The UDP datagram in ``packet`` (a zero checksum means "not computed")."""
    segment = packet.payload
    if len(segment) < _UDP_HEADER.size:
        raise DecodeError(f"UDP segment of {len(segment)} bytes is shorter than a header", "truncated")
    sport, dport, length, sent_sum = _UDP_HEADER.unpack_from(segment)
    if length < _UDP_HEADER.size or length > len(segment):
        raise DecodeError(f"UDP length {length} does not fit a {len(segment)}-byte segment", "malformed")
    segment = segment[:length]
    if sent_sum and checksum(_pseudo_header(packet.src, packet.dst, length) + segment) != 0:
        raise DecodeError("bad UDP checksum", "checksum")
    return UdpDatagram(sport, dport, segment[_UDP_HEADER.size :])


def build_udp(
    src: ipaddress.IPv4Address,
    dst: ipaddress.IPv4Address,
    src_port: int,
    dst_port: int,
    data: bytes,
    *,
    ident: int = 0,
) -> bytes:
    """A whole IPv4 packet carrying one UDP datagram, checksummed."""
    length = _UDP_HEADER.size + len(data)
    if length > MAX_PACKET - _IP_HEADER.size:
        raise DecodeError(f"UDP datagram of {len(data)} bytes is too large for IPv4", "oversized")
    header = _UDP_HEADER.pack(src_port, dst_port, length, 0)
    value = checksum(_pseudo_header(src, dst, length) + header + data) or 0xFFFF
    header = _UDP_HEADER.pack(src_port, dst_port, length, value)
    return build_ipv4(src, dst, PROTO_UDP, header + data, ident=ident)


def parse_icmp_echo(packet: IPv4Packet) -> IcmpEcho:
    """The echo request in ``packet``; other ICMP messages are ``unsupported``."""
    message = packet.payload
    if len(message) < _ICMP_ECHO.size:
        raise DecodeError(f"ICMP message of {len(message)} bytes is too short", "truncated")
    kind, code, _sum, ident, seq = _ICMP_ECHO.unpack_from(message)
    if kind != ICMP_ECHO_REQUEST or code != 0:
        raise DecodeError(f"ICMP type {kind} code {code} is not an echo request", "unsupported")
    if checksum(message) != 0:
        raise DecodeError("bad ICMP checksum", "checksum")
    return IcmpEcho(ident, seq, message[_ICMP_ECHO.size :])


def build_echo_reply(
    src: ipaddress.IPv4Address, dst: ipaddress.IPv4Address, echo: IcmpEcho, *, ident: int = 0
) -> bytes:
    """A whole IPv4 packet answering ``echo`` with the same id, sequence and data."""
    body = _ICMP_ECHO.pack(ICMP_ECHO_REPLY, 0, 0, echo.ident, echo.seq) + echo.data
    body = body[:2] + struct.pack("!H", checksum(body)) + body[4:]
    return build_ipv4(src, dst, PROTO_ICMP, body, ident=ident)
