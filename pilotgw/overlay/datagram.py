"""Datagrams (protocol 0x02): unreliable, unordered, possibly duplicated (§1.10.2).

Building one enforces the reference's rules before anything reaches the wire:
an empty payload would be dropped by the receiver and a broadcast destination
is refused by the reference ("broadcast is not available"), so both are
refused here with a coded error. Header values are fixed: Flags 0, Seq 0,
Ack 0, Window 0.
"""

from __future__ import annotations

from typing import NamedTuple

from pilotgw.overlay.address import BROADCAST_NODE, Addr, SocketAddr
from pilotgw.overlay.packet import PROTO_DATAGRAM, Packet

#: Largest payload that fits one IPv4 UDP datagram inside a PILS frame (70 bytes
#: of framing); inside PILT the limit is 65,469.
MAX_PAYLOAD_PILS = 65_437
MAX_PAYLOAD_PILT = 65_469


class DatagramError(ValueError):
    """A datagram we refuse to send. ``code``: ``empty``, ``broadcast`` or ``too_large``."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


class Datagram(NamedTuple):
    """A received datagram, as handed to local applications."""

    src: SocketAddr
    dst_port: int
    data: bytes


def build(src: SocketAddr, dst: SocketAddr, data: bytes, max_payload: int = MAX_PAYLOAD_PILS) -> Packet:
    """The packet carrying ``data`` from ``src`` to ``dst``; ``src.port`` is the
    (ephemeral) port the caller allocated. Raises :class:`DatagramError`."""
    if not data:
        raise DatagramError("empty datagrams are dropped by the receiver; refusing to send one", "empty")
    if dst.addr.node == BROADCAST_NODE:
        raise DatagramError("broadcast is not available", "broadcast")
    if len(data) > max_payload:
        raise DatagramError(f"datagram of {len(data)} bytes exceeds the {max_payload}-byte limit", "too_large")
    return Packet(
        PROTO_DATAGRAM,
        0,
        src.addr.network,
        src.addr.node,
        dst.addr.network,
        dst.addr.node,
        src.port,
        dst.port,
        payload=bytes(data),
    )


def accept(p: Packet) -> Datagram | None:
    """Read a received datagram packet; ``None`` when the reference would
    drop it (empty payload). Flags, Seq, Ack and Window are not checked, as
    the reference does not check them."""
    if p.protocol != PROTO_DATAGRAM or not p.payload:
        return None
    return Datagram(SocketAddr(Addr(p.src_net, p.src_node), p.src_port), p.dst_port, bytes(p.payload))
