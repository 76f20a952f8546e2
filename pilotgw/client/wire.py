"""Driver side of the daemon IPC framing (trust-and-ipc.md §A2.2-A2.5).

Every message is ``[length BE u32][command u8][payload]``. This module builds
the request frames a driver sends and splits and decodes the frames a daemon
sends; it does no I/O. Payload rules that the daemon would reject anyway
(port range, node IDs) are checked here so that bad input fails locally with
a clear error instead of a confusing daemon reply.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from pilotgw.client.errors import InvalidArgument
from pilotgw.overlay.address import Addr, BROADCAST_NODE, MAX_PORT
from pilotgw.overlay.errors import DecodeError

MAX_BODY = 1 << 20
"""Largest body either side accepts (1 MiB); larger frames kill the session."""

SEND_CHUNK = 64 * 1024
"""Data per Send frame: far below MAX_BODY, small enough to keep latency of
other requests on the shared socket low (trust-and-ipc.md D-13)."""

BIND, BIND_OK = 0x01, 0x02
DIAL, DIAL_OK = 0x03, 0x04
ACCEPT = 0x05
SEND = 0x06
RECV = 0x07
CLOSE, CLOSE_OK = 0x08, 0x09
ERROR = 0x0A
SEND_TO = 0x0B
RECV_FROM = 0x0C
INFO, INFO_OK = 0x0D, 0x0E
HANDSHAKE, HANDSHAKE_OK = 0x0F, 0x10
RESOLVE_HOSTNAME, RESOLVE_HOSTNAME_OK = 0x11, 0x12
SET_HOSTNAME, SET_HOSTNAME_OK = 0x13, 0x14
SET_VISIBILITY, SET_VISIBILITY_OK = 0x15, 0x16
DEREGISTER, DEREGISTER_OK = 0x17, 0x18
SET_TAGS, SET_TAGS_OK = 0x19, 0x1A
SET_WEBHOOK, SET_WEBHOOK_OK = 0x1B, 0x1C
SET_TASK_EXEC, SET_TASK_EXEC_OK = 0x1D, 0x1E
# Our extensions (pilotgw.overlay.ipc documents them; a reference daemon refuses them).
EXPOSE, EXPOSE_OK = 0x40, 0x41
SEND_TO_FROM = 0x42
EXPOSE_ADD, EXPOSE_REMOVE, EXPOSE_LIST = 1, 2, 3

REPLY_CODES = frozenset(
    {
        BIND_OK,
        DIAL_OK,
        INFO_OK,
        HANDSHAKE_OK,
        RESOLVE_HOSTNAME_OK,
        SET_HOSTNAME_OK,
        SET_VISIBILITY_OK,
        DEREGISTER_OK,
        SET_TAGS_OK,
        SET_WEBHOOK_OK,
        SET_TASK_EXEC_OK,
        EXPOSE_OK,
    }
)

# Handshake sub-commands (§A2.5).
HS_REQUEST, HS_APPROVE, HS_REJECT, HS_PENDING, HS_TRUSTED, HS_REVOKE = 1, 2, 3, 4, 5, 6

_LEN = struct.Struct(">I")
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_ACCEPT = struct.Struct(">HIHIH")
_RECV_FROM = struct.Struct(">HIHH")


class Accept(NamedTuple):
    local_port: int
    conn_id: int
    remote_addr: Addr
    remote_port: int


class Datagram(NamedTuple):
    """One datagram pushed by the daemon (RecvFrom, §A2.3)."""

    src_addr: Addr
    src_port: int
    dst_port: int
    data: bytes


def frame(command: int, payload: bytes = b"") -> bytes:
    return _LEN.pack(1 + len(payload)) + bytes((command,)) + payload


def check_port(port: int) -> int:
    if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= MAX_PORT:
        raise InvalidArgument(f"port {port!r} out of range 0-65535")
    return port


def check_node(node_id: int) -> int:
    if not isinstance(node_id, int) or isinstance(node_id, bool) or not 0 <= node_id <= 0xFFFFFFFF:
        raise InvalidArgument(f"node ID {node_id!r} out of range 0-4294967295")
    return node_id


def bind(port: int) -> bytes:
    return frame(BIND, _U16.pack(check_port(port)))


def dial(addr: Addr, port: int) -> bytes:
    return frame(DIAL, addr.to_bytes() + _U16.pack(check_port(port)))


def send_frames(conn_id: int, data: bytes | bytearray | memoryview) -> list[bytes]:
    """Split ``data`` into Send frames of at most :data:`SEND_CHUNK` bytes."""
    view = memoryview(data).cast("B")
    head = _U32.pack(conn_id)
    if not view:
        return []
    return [frame(SEND, head + view[i : i + SEND_CHUNK].tobytes()) for i in range(0, len(view), SEND_CHUNK)]


def close(conn_id: int) -> bytes:
    return frame(CLOSE, _U32.pack(conn_id))


def send_to(addr: Addr, port: int, data: bytes) -> bytes:
    if addr.node == BROADCAST_NODE:
        raise InvalidArgument("sendto: broadcast is not available — custom networks are WIP")
    if len(data) > MAX_BODY - 9:
        raise InvalidArgument(f"datagram too large: {len(data)} bytes (max {MAX_BODY - 9})")
    return frame(SEND_TO, addr.to_bytes() + _U16.pack(check_port(port)) + bytes(data))


def send_to_from(src_port: int, addr: Addr, port: int, data: bytes) -> bytes:
    """SendToFrom (extension): a datagram from ``src_port``, which the client bound."""
    if addr.node == BROADCAST_NODE:
        raise InvalidArgument("sendto: broadcast is not available — custom networks are WIP")
    if len(data) > MAX_BODY - 11:
        raise InvalidArgument(f"datagram too large: {len(data)} bytes (max {MAX_BODY - 11})")
    return frame(SEND_TO_FROM, _U16.pack(check_port(src_port)) + addr.to_bytes() + _U16.pack(check_port(port)) + bytes(data))


def expose(sub: int, port: int | None = None, target: str = "") -> bytes:
    """Expose (extension): add / remove / list published local TCP services."""
    payload = bytes((sub,))
    if port is not None:
        payload += _U16.pack(check_port(port)) + target.encode("utf-8")
    return frame(EXPOSE, payload)


def handshake(sub: int, node_id: int | None = None, extra: bytes = b"") -> bytes:
    payload = bytes((sub,))
    if node_id is not None:
        payload += _U32.pack(check_node(node_id)) + extra
    return frame(HANDSHAKE, payload)


def flag(command: int, value: bool) -> bytes:
    """SetVisibility / SetTaskExec: one byte, 1 = on."""
    return frame(command, b"\x01" if value else b"\x00")


class FrameReader:
    """Splits the daemon's byte stream into ``(command, payload)`` bodies.

    Raises :class:`DecodeError` (code ``"too_large"``) for a length above
    :data:`MAX_BODY`; zero-length bodies are skipped as the contract says.
    """

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        buf = self._buf
        buf += data
        out: list[tuple[int, bytes]] = []
        pos = 0
        end = len(buf)
        while end - pos >= 4:
            (length,) = _LEN.unpack_from(buf, pos)
            if length > MAX_BODY:
                raise DecodeError(f"IPC frame too large: {length} bytes", "too_large")
            if end - pos - 4 < length:
                break
            if length:
                out.append((buf[pos + 4], bytes(buf[pos + 5 : pos + 4 + length])))
            pos += 4 + length
        if pos:
            del buf[:pos]
        return out


def decode_accept(payload: bytes) -> Accept:
    if len(payload) < _ACCEPT.size:
        raise DecodeError(f"Accept needs 14 bytes, got {len(payload)}", "truncated")
    local_port, conn_id, net, node, remote_port = _ACCEPT.unpack_from(payload)
    return Accept(local_port, conn_id, Addr(net, node), remote_port)


def decode_conn_id(payload: bytes, what: str) -> int:
    if len(payload) < 4:
        raise DecodeError(f"{what} needs a 4-byte conn_id, got {len(payload)} bytes", "truncated")
    return _U32.unpack_from(payload)[0]


def decode_recv_from(payload: bytes) -> Datagram:
    if len(payload) < _RECV_FROM.size:
        raise DecodeError(f"RecvFrom needs 10 header bytes, got {len(payload)}", "truncated")
    net, node, src_port, dst_port = _RECV_FROM.unpack_from(payload)
    return Datagram(Addr(net, node), src_port, dst_port, payload[_RECV_FROM.size :])


def decode_error(payload: bytes) -> str:
    """The message of an Error frame (the u16 code is always 1 and carries nothing)."""
    if len(payload) < 2:
        raise DecodeError(f"Error frame needs 2 code bytes, got {len(payload)}", "truncated")
    return payload[2:].decode("utf-8", "replace")
