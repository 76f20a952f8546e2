"""The 34-byte Pilot packet header and its payload (tunnel-and-transport.md §1.7-1.8).

Layout (big-endian)::

    0  u8   version << 4 | flags        (version 1; SYN 1, ACK 2, FIN 4, RST 8)
    1  u8   protocol                    (stream 1, datagram 2, control 3)
    2  u16  payload length
    4  u16  src network   6 u32 src node
    10 u16  dst network  12 u32 dst node
    16 u16  src port     18 u16 dst port
    20 u32  seq          24 u32 ack
    28 u16  window (segments)
    30 u32  CRC-32/IEEE of the header with this field zeroed, then the payload
    34 ...  payload

Decoding follows the reference: bytes past the payload are ignored (and not
checksummed), the version is reported but not validated here -- the daemon
drops version != 1 and counts it (T-D17) -- and unknown protocols decode.

This module is on the per-packet hot path: one ``struct`` call each way, CRC
via ``zlib`` over memoryview slices, no per-field Python work beyond that.
"""

from __future__ import annotations

import struct
import zlib
from typing import Union

from pilotgw.overlay.errors import DecodeError

HEADER_LEN = 34
VERSION = 1
MAX_PAYLOAD = 0xFFFF

FLAG_SYN = 0x1
FLAG_ACK = 0x2
FLAG_FIN = 0x4
FLAG_RST = 0x8

PROTO_STREAM = 0x01
PROTO_DATAGRAM = 0x02
PROTO_CONTROL = 0x03

_HEADER = struct.Struct(">BBHHIHIHHIIHI")
_CRC_OFFSET = 30
_ZERO_CRC = b"\x00\x00\x00\x00"

Buffer = Union[bytes, bytearray, memoryview]


class Packet:
    """One decoded (or to-be-encoded) Pilot packet.

    A plain slotted class rather than a dataclass: it is created once per
    packet on the data path, and slots keep that cheap. ``payload`` is whatever
    slice type the decoder was given (bytes in, bytes out; memoryview in,
    memoryview out), so a caller holding a memoryview pays for no copy.
    """

    __slots__ = (
        "version",
        "flags",
        "protocol",
        "src_net",
        "src_node",
        "dst_net",
        "dst_node",
        "src_port",
        "dst_port",
        "seq",
        "ack",
        "window",
        "payload",
    )

    def __init__(
        self,
        protocol: int,
        flags: int = 0,
        src_net: int = 0,
        src_node: int = 0,
        dst_net: int = 0,
        dst_node: int = 0,
        src_port: int = 0,
        dst_port: int = 0,
        seq: int = 0,
        ack: int = 0,
        window: int = 0,
        payload: Buffer = b"",
        version: int = VERSION,
    ) -> None:
        self.version = version
        self.flags = flags
        self.protocol = protocol
        self.src_net = src_net
        self.src_node = src_node
        self.dst_net = dst_net
        self.dst_node = dst_node
        self.src_port = src_port
        self.dst_port = dst_port
        self.seq = seq
        self.ack = ack
        self.window = window
        self.payload = payload

    def __repr__(self) -> str:
        names = [n for n, bit in (("SYN", 1), ("ACK", 2), ("FIN", 4), ("RST", 8)) if self.flags & bit]
        return (
            f"Packet(proto={self.protocol} flags={'|'.join(names) or '0'} "
            f"{self.src_net}:{self.src_node}:{self.src_port} -> "
            f"{self.dst_net}:{self.dst_node}:{self.dst_port} seq={self.seq} ack={self.ack} "
            f"win={self.window} len={len(self.payload)})"
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Packet):
            return NotImplemented
        return all(getattr(self, s) == getattr(other, s) for s in self.__slots__ if s != "payload") and bytes(
            self.payload
        ) == bytes(other.payload)

    __hash__ = None  # type: ignore[assignment]  # mutable

    def encode(self) -> bytes:
        return encode(self)


def encode(p: Packet) -> bytes:
    """Serialise ``p`` with its checksum. Raises ``ValueError`` on a payload
    over 65535 bytes or a field out of range (a caller bug, not bad input)."""
    n = len(p.payload)
    if n > MAX_PAYLOAD:
        raise ValueError(f"payload of {n} bytes exceeds the 65535-byte limit")
    fields = (
        ((p.version & 0x0F) << 4) | (p.flags & 0x0F),
        p.protocol,
        n,
        p.src_net,
        p.src_node,
        p.dst_net,
        p.dst_node,
        p.src_port,
        p.dst_port,
        p.seq,
        p.ack,
        p.window,
    )
    try:
        header = _HEADER.pack(*fields, 0)
    except struct.error as exc:
        raise ValueError(f"packet field out of range: {exc}") from None
    # Checksum over the zero-checksum header, then the payload; the header is
    # packed a second time with the CRC so the payload is copied only once.
    return _HEADER.pack(*fields, zlib.crc32(p.payload, zlib.crc32(header))) + p.payload


def decode(data: Buffer) -> Packet:
    """Parse one packet; raise :class:`DecodeError` if it is truncated or its
    checksum does not match. Trailing bytes beyond the payload are ignored."""
    if len(data) < HEADER_LEN:
        raise DecodeError(f"packet of {len(data)} bytes is shorter than the 34-byte header", "truncated")
    (vf, proto, n, sn, snode, dn, dnode, sp, dp, seq, ack, win, crc) = _HEADER.unpack_from(data)
    end = HEADER_LEN + n
    if len(data) < end:
        raise DecodeError(f"packet truncated: header says {n} payload bytes, {len(data) - HEADER_LEN} present", "truncated")
    view = data if isinstance(data, memoryview) else memoryview(data)
    actual = zlib.crc32(view[HEADER_LEN:end], zlib.crc32(_ZERO_CRC, zlib.crc32(view[:_CRC_OFFSET])))
    if actual != crc:
        raise DecodeError(f"checksum mismatch: header {crc:#010x}, computed {actual:#010x}", "checksum")
    return Packet(proto, vf & 0x0F, sn, snode, dn, dnode, sp, dp, seq, ack, win, data[HEADER_LEN:end], vf >> 4)
