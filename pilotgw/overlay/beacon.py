"""Beacon UDP message codec, sans-IO (rendezvous.md §1.10).

The first byte is the type (all below 0x10, so never a tunnel magic); every
integer is big-endian; no message is authenticated. Layouts::

    Discover       01 node u32                       (extra bytes ignored)
    DiscoverReply  02 iplen(4|16) ip port u16
    PunchRequest   03 requester u32 target u32
    PunchCommand   04 iplen(4|16) ip port u16
    Relay          05 sender u32 dest u32 payload    (payload = a whole tunnel frame)
    RelayDeliver   06 sender u32 payload             (at least 1 payload byte)
    Sync           07 beacon u32 count u16 count x node u32

An IPv4 address, IPv4-mapped IPv6 included, is carried in 4 bytes; any other
in 16. :func:`decode` raises :class:`DecodeError` for anything short, an
unknown type or an ``iplen`` other than 4/16, and never anything else.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass
from typing import Union

from pilotgw.overlay.errors import DecodeError

DISCOVER = 0x01
DISCOVER_REPLY = 0x02
PUNCH_REQUEST = 0x03
PUNCH_COMMAND = 0x04
RELAY = 0x05
RELAY_DELIVER = 0x06
SYNC = 0x07

PUNCH_FRAME = b"PILP"
"""What a daemon sends 3 times to the endpoint in a PunchCommand."""

MAX_SYNC_IDS = 0xFFFF

_U32 = struct.Struct(">I")
_U32X2 = struct.Struct(">II")
_SYNC_HEAD = struct.Struct(">BIH")

Buffer = Union[bytes, bytearray, memoryview]


@dataclass(frozen=True, slots=True)
class Discover:
    node_id: int


@dataclass(frozen=True, slots=True)
class DiscoverReply:
    ip: str
    port: int


@dataclass(frozen=True, slots=True)
class PunchRequest:
    requester: int
    target: int


@dataclass(frozen=True, slots=True)
class PunchCommand:
    ip: str
    port: int


@dataclass(frozen=True, slots=True)
class Relay:
    sender: int
    dest: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class RelayDeliver:
    sender: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class Sync:
    beacon_id: int
    node_ids: tuple[int, ...]


BeaconMessage = Union[Discover, DiscoverReply, PunchRequest, PunchCommand, Relay, RelayDeliver, Sync]


def encode_endpoint(ip: str, port: int) -> bytes:
    """``iplen ‖ ip ‖ port``: 4 bytes for IPv4 (and IPv4-mapped), else 16."""
    addr = ipaddress.ip_address(ip.split("%", 1)[0])
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    packed = addr.packed
    if not 0 <= port <= 0xFFFF:
        raise ValueError(f"port {port} out of range")
    return bytes([len(packed)]) + packed + port.to_bytes(2, "big")


def _decode_endpoint(data: Buffer, kind: str) -> tuple[str, int]:
    if len(data) < 2:
        raise DecodeError(f"{kind}: truncated", "truncated")
    iplen = data[1]
    if iplen not in (4, 16):
        raise DecodeError(f"{kind}: iplen must be 4 or 16, got {iplen}", "malformed")
    if len(data) < 4 + iplen:
        raise DecodeError(f"{kind}: truncated", "truncated")
    raw = bytes(data[2 : 2 + iplen])
    ip = str(ipaddress.IPv4Address(raw) if iplen == 4 else ipaddress.IPv6Address(raw))
    return ip, int.from_bytes(data[2 + iplen : 4 + iplen], "big")


def encode(msg: BeaconMessage) -> bytes:
    if isinstance(msg, Discover):
        return bytes([DISCOVER]) + _U32.pack(msg.node_id)
    if isinstance(msg, DiscoverReply):
        return bytes([DISCOVER_REPLY]) + encode_endpoint(msg.ip, msg.port)
    if isinstance(msg, PunchRequest):
        return bytes([PUNCH_REQUEST]) + _U32X2.pack(msg.requester, msg.target)
    if isinstance(msg, PunchCommand):
        return bytes([PUNCH_COMMAND]) + encode_endpoint(msg.ip, msg.port)
    if isinstance(msg, Relay):
        return bytes([RELAY]) + _U32X2.pack(msg.sender, msg.dest) + msg.payload
    if isinstance(msg, RelayDeliver):
        if not msg.payload:
            raise ValueError("RelayDeliver needs at least one payload byte")
        return bytes([RELAY_DELIVER]) + _U32.pack(msg.sender) + msg.payload
    if isinstance(msg, Sync):
        if len(msg.node_ids) > MAX_SYNC_IDS:
            raise ValueError(f"Sync carries at most {MAX_SYNC_IDS} IDs")
        ids = struct.pack(f">{len(msg.node_ids)}I", *msg.node_ids)
        return _SYNC_HEAD.pack(SYNC, msg.beacon_id, len(msg.node_ids)) + ids
    raise TypeError(f"not a beacon message: {type(msg).__name__}")


def decode(data: Buffer) -> BeaconMessage:
    """Parse one datagram; :class:`DecodeError` if it is not a beacon message."""
    if not data:
        raise DecodeError("empty beacon datagram", "truncated")
    kind = data[0]
    n = len(data)
    if kind == DISCOVER:
        if n < 5:
            raise DecodeError("Discover: needs 5 bytes", "truncated")
        return Discover(_U32.unpack_from(data, 1)[0])
    if kind == DISCOVER_REPLY:
        return DiscoverReply(*_decode_endpoint(data, "DiscoverReply"))
    if kind == PUNCH_REQUEST:
        if n < 9:
            raise DecodeError("PunchRequest: needs 9 bytes", "truncated")
        return PunchRequest(*_U32X2.unpack_from(data, 1))
    if kind == PUNCH_COMMAND:
        return PunchCommand(*_decode_endpoint(data, "PunchCommand"))
    if kind == RELAY:
        if n < 9:
            raise DecodeError("Relay: needs 9 bytes", "truncated")
        sender, dest = _U32X2.unpack_from(data, 1)
        return Relay(sender, dest, bytes(data[9:]))
    if kind == RELAY_DELIVER:
        if n < 6:
            raise DecodeError("RelayDeliver: needs 6 bytes", "truncated")
        return RelayDeliver(_U32.unpack_from(data, 1)[0], bytes(data[5:]))
    if kind == SYNC:
        if n < 7:
            raise DecodeError("Sync: needs 7 bytes", "truncated")
        _, beacon_id, count = _SYNC_HEAD.unpack_from(data)
        if n < 7 + 4 * count:
            raise DecodeError(f"Sync: {count} IDs announced, {(n - 7) // 4} present", "truncated")
        return Sync(beacon_id, struct.unpack_from(f">{count}I", data, 7))
    raise DecodeError(f"unknown beacon message type 0x{kind:02x}", "unknown_type")


def relay_to_deliver(data: Buffer) -> bytes:
    """Turn a Relay datagram into the RelayDeliver for its destination
    (``06 ‖ sender ‖ payload``) without decoding the payload: the relay
    path's only per-packet work. The caller has checked ``len(data) >= 10``."""
    return b"\x06" + bytes(data[1:5]) + bytes(data[9:])
