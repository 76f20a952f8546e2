"""Pilot addresses: 48-bit (network u16, node u32) pairs and their text form.

Text form (rendezvous.md §1.7, services-and-cli.md §0): ``N:NNNN.HHHH.LLLL``
-- the network in decimal, then the network, the node's high 16 bits and low
16 bits as 4-digit hex groups. Formatting uses upper case; parsing accepts
either case, needs exactly four hex digits per group and requires the decimal
network to equal the first hex group (so the published example
``1:00A3.F291.0004`` is rejected). Error texts match the reference's, because
the CLI embeds them in its messages.
"""

from __future__ import annotations

import re
import struct
from typing import NamedTuple

from pilotgw.overlay.errors import DecodeError

BROADCAST_NODE = 0xFFFFFFFF
MAX_NODE = 0xFFFFFFFF
MAX_NETWORK = 0xFFFF
MAX_PORT = 0xFFFF

# Well-known ports (tunnel-and-transport.md §1.9).
PORT_PING = 0
PORT_CONTROL = 1
PORT_ECHO = 7
PORT_NAMESERVER = 53
PORT_HTTP = 80
PORT_SECURE = 443
PORT_HANDSHAKE = 444
PORT_STDIO = 1000
PORT_DATA_EXCHANGE = 1001
PORT_EVENT_STREAM = 1002
PORT_TASK_SUBMIT = 1003
PORT_RESERVED_MAX = 1023
PORT_REGISTERED_MAX = 49151
PORT_EPHEMERAL_MIN = 49152
PORT_EPHEMERAL_MAX = 65535

_DECIMAL = re.compile(r"[0-9]+")
_HEX4 = re.compile(r"[0-9A-Fa-f]{4}")
_ADDR_BYTES = struct.Struct(">HI")


class Addr(NamedTuple):
    """A node's overlay address. A tuple so it hashes and compares cheaply."""

    network: int
    node: int

    def __str__(self) -> str:
        return format_addr(self.network, self.node)

    @property
    def is_broadcast(self) -> bool:
        return self.node == BROADCAST_NODE

    @property
    def is_zero(self) -> bool:
        return self.network == 0 and self.node == 0

    def to_bytes(self) -> bytes:
        return _ADDR_BYTES.pack(self.network, self.node)

    @classmethod
    def from_bytes(cls, data: bytes) -> "Addr":
        if len(data) < 6:
            raise DecodeError(f"address needs 6 bytes, got {len(data)}", "truncated")
        network, node = _ADDR_BYTES.unpack_from(data)
        return cls(network, node)


class SocketAddr(NamedTuple):
    """An address plus a virtual port: ``0:0000.0000.0005:1001``."""

    addr: Addr
    port: int

    def __str__(self) -> str:
        return f"{self.addr}:{self.port}"


ZERO = Addr(0, 0)
REGISTRY = Addr(0, 1)
BEACON = Addr(0, 2)
NAMESERVER = Addr(0, 3)


def format_addr(network: int, node: int) -> str:
    """``format_addr(0, 70000) == "0:0000.0001.1170"``."""
    return f"{network}:{network:04X}.{node >> 16:04X}.{node & 0xFFFF:04X}"


def _go_parse_error(s: str, reason: str = "invalid syntax") -> str:
    return f'strconv.ParseUint: parsing "{s}": {reason}'


def parse_addr(text: str) -> Addr:
    """Parse the text form; raise :class:`DecodeError` with the reference's text."""
    if not isinstance(text, str):
        raise DecodeError(f"address must be text, not {type(text).__name__}")
    colon = text.find(":")
    if colon < 0:
        raise DecodeError(f'invalid address: "{text}" (expected N:XXXX.YYYY.YYYY)')
    net_text, rest = text[:colon], text[colon + 1 :]
    if not _DECIMAL.fullmatch(net_text):
        raise DecodeError(f'invalid network ID: "{net_text}": {_go_parse_error(net_text)}')
    network = int(net_text)
    if network > MAX_NETWORK:
        raise DecodeError(
            f'invalid network ID: "{net_text}": {_go_parse_error(net_text, "value out of range")}'
        )
    groups = rest.split(".")
    if len(groups) != 3:
        raise DecodeError(f'invalid address: "{rest}" (expected 3 dot-separated hex groups)')
    values = []
    for group in groups:
        if len(group) != 4:
            raise DecodeError(f'invalid hex group: "{group}" (expected 4 digits)')
        if not _HEX4.fullmatch(group):
            raise DecodeError(f'invalid hex group: "{group}": {_go_parse_error(group)}')
        values.append(int(group, 16))
    if values[0] != network:
        raise DecodeError(f"network mismatch: decimal {network} != hex 0x{values[0]:04X}")
    return Addr(network, (values[1] << 16) | values[2])


def parse_socket_addr(text: str) -> SocketAddr:
    """Parse ``N:XXXX.YYYY.YYYY:port``; the port must be 0..65535 in decimal."""
    if not isinstance(text, str):
        raise DecodeError(f"socket address must be text, not {type(text).__name__}")
    cut = text.rfind(":")
    if cut <= 0 or text.find(":") == cut:
        raise DecodeError(f'invalid socket address: "{text}" (expected N:XXXX.YYYY.YYYY:PORT)')
    addr = parse_addr(text[:cut])
    port_text = text[cut + 1 :]
    if not _DECIMAL.fullmatch(port_text) or int(port_text) > MAX_PORT:
        raise DecodeError(f'invalid port: "{port_text}" (expected 0-65535)')
    return SocketAddr(addr, int(port_text))


def parse_target(text: str) -> Addr | None:
    """CLI target rule (services-and-cli.md §A9.4) without the hostname step.

    A full text address is parsed strictly; a bare unsigned 32-bit decimal is a
    node on network 0; anything else returns ``None`` (a hostname to resolve).
    """
    if ":" in text:
        return parse_addr(text)
    if _DECIMAL.fullmatch(text) and int(text) <= MAX_NODE:
        return Addr(0, int(text))
    return None
