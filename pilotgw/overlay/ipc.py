"""The daemon <-> driver IPC protocol on the Unix socket (trust-and-ipc.md §A2).

Framing is ``length u32 | command u8 | payload`` with a 1 MiB limit on the
body; :class:`FrameSplitter` cuts a byte stream into bodies as it arrives.
Each command of the A2.3 table is a small immutable class whose
``payload()`` gives the exact bytes; :func:`decode_request` (daemon side)
and :func:`decode_reply` (driver side) turn a body back into one.

:func:`decode_request` raises :class:`DecodeError` whose message *is* the
reference's error text (``bind: missing port``, ``unknown command: 0x02``,
``handshake: unknown sub-command 0x07`` ...), so the daemon answers a bad
request with ``Error(str(exc))`` and stays byte-identical to the reference.

JSON replies are written with keys sorted, as the reference writes maps;
builders for every reply shape of A2.4-A2.6 live here so the daemon cannot
get a key or a ``null``/``[]`` choice wrong.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any, ClassVar, Iterator, Union

from pilotgw.overlay import gojson, goread
from pilotgw.overlay.address import Addr
from pilotgw.overlay.errors import DecodeError

Buffer = Union[bytes, bytearray, memoryview]

MAX_BODY = 1 << 20
MAX_SEND_DATA = MAX_BODY - 1 - 4  # command byte and conn_id
SEND_CHUNK = 64 * 1024  # our driver's Send size (D-13)
MAX_TAGS = 3
ERROR_GENERIC = 1
FRAME_TOO_LARGE = "frame too large"  # our answer before closing (D-13)
GO_ZERO_TIME = -62135596800  # Unix seconds of Go's zero time.Time

# Command codes (A2.3).
BIND = 0x01
BIND_OK = 0x02
DIAL = 0x03
DIAL_OK = 0x04
ACCEPT = 0x05
SEND = 0x06
RECV = 0x07
CLOSE = 0x08
CLOSE_OK = 0x09
ERROR = 0x0A
SEND_TO = 0x0B
RECV_FROM = 0x0C
INFO = 0x0D
INFO_OK = 0x0E
HANDSHAKE = 0x0F
HANDSHAKE_OK = 0x10
RESOLVE_HOSTNAME = 0x11
RESOLVE_HOSTNAME_OK = 0x12
SET_HOSTNAME = 0x13
SET_HOSTNAME_OK = 0x14
SET_VISIBILITY = 0x15
SET_VISIBILITY_OK = 0x16
DEREGISTER = 0x17
DEREGISTER_OK = 0x18
SET_TAGS = 0x19
SET_TAGS_OK = 0x1A
SET_WEBHOOK = 0x1B
SET_WEBHOOK_OK = 0x1C
SET_TASK_EXEC = 0x1D
SET_TASK_EXEC_OK = 0x1E

# Extension commands: ours alone, never sent or answered by the reference (a
# reference daemon answers them with Error "unknown command: 0x40"), so Go
# drivers and the reference CLI are unaffected. Codes start at 0x40, far from
# the contract's 0x01-0x1E.
#
# * Expose 0x40 -> ExposeOK 0x41 (JSON): publish a local TCP service on a
#   pilot port (services-and-cli.md issue 8 item 5). ``sub u8`` then:
#   0x01 add ``port u16 | target`` (UTF-8 ``host:port``), reply
#   ``{"port","target"}``; 0x02 remove ``port u16``, reply ``{"port","target"}``;
#   0x03 list, reply ``{"exposed": [{"port","target","connections",
#   "active_connections","bytes_in","bytes_out","errors"}]}`` sorted by port.
#   Errors are Error frames ``expose: <text>``.
# * SendToFrom 0x42: like SendTo, but from ``src_port u16`` (first in the
#   payload, then ``addr 6B | port u16 | data``), which this client must
#   have bound; replies to that port find their way back to the sender
#   (SendTo picks a fresh ephemeral source port per datagram). Like SendTo:
#   no reply on success, Error ``sendto: <text>`` on failure.
EXPOSE = 0x40
EXPOSE_OK = 0x41
SEND_TO_FROM = 0x42

# Expose (0x40) sub-commands.
EXPOSE_ADD = 0x01
EXPOSE_REMOVE = 0x02
EXPOSE_LIST = 0x03

# Pushes the daemon writes on its own; the Go driver's read loop eats them.
PUSH_CODES = frozenset({ACCEPT, RECV, CLOSE_OK, RECV_FROM})

# Handshake (0x0F) sub-commands (A2.5).
HS_REQUEST = 0x01
HS_APPROVE = 0x02
HS_REJECT = 0x03
HS_PENDING = 0x04
HS_TRUSTED = 0x05
HS_REVOKE = 0x06

_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_ADDR_PORT = struct.Struct(">HIH")
_ACCEPT = struct.Struct(">HIHIH")
_RECV_FROM = struct.Struct(">HIHH")


# --------------------------------------------------------------------------
# Framing


def frame(body: Buffer) -> bytes:
    """Length-prefix one body. ``ValueError`` over 1 MiB: the peer's reader
    would tear down the whole session rather than read it."""
    if len(body) > MAX_BODY:
        raise ValueError(f"IPC frame body of {len(body)} bytes exceeds {MAX_BODY}")
    return _U32.pack(len(body)) + bytes(body)


class FrameSplitter:
    """Cuts a received byte stream into frame bodies (command byte first).

    Zero-length bodies are skipped (A2.2). A length prefix over
    ``max_body`` raises :class:`DecodeError` ``frame too large`` before any
    of the body is buffered; the session is then unusable. Bodies completed
    before the bad prefix in the same chunk are still returned (the reference
    handles them too, reading frame by frame) and the error is raised by the
    next call -- ``feed(b"")`` will do.
    """

    __slots__ = ("_buf", "_max", "_error")

    def __init__(self, max_body: int = MAX_BODY) -> None:
        self._buf = bytearray()
        self._max = max_body
        self._error: DecodeError | None = None

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def feed(self, data: Buffer) -> list[bytes]:
        if self._error is not None:
            raise self._error
        self._buf += data
        bodies: list[bytes] = []
        buf = self._buf
        while len(buf) >= 4:
            (n,) = _U32.unpack_from(buf)
            if n > self._max:
                self._error = DecodeError(FRAME_TOO_LARGE, "oversize")
                if bodies:
                    break
                raise self._error
            if len(buf) < 4 + n:
                break
            if n:
                bodies.append(bytes(buf[4 : 4 + n]))
            del buf[: 4 + n]
        return bodies


# --------------------------------------------------------------------------
# Messages


class Message:
    """A command with its payload; ``code`` is the command byte."""

    __slots__ = ()
    code: ClassVar[int]

    def payload(self) -> bytes:
        return b""

    def body(self) -> bytes:
        return bytes((self.code,)) + self.payload()

    def encode(self) -> bytes:
        return frame(self.body())


def _pack(st: struct.Struct, *values: int) -> bytes:
    try:
        return st.pack(*values)
    except struct.error as exc:
        raise ValueError(f"IPC field out of range: {exc}") from None


def _text(data: Buffer) -> str:
    return goread.go_string(data)


@dataclass(frozen=True, slots=True)
class Bind(Message):
    code: ClassVar[int] = BIND
    port: int

    def payload(self) -> bytes:
        return _pack(_U16, self.port)


@dataclass(frozen=True, slots=True)
class BindOK(Message):
    code: ClassVar[int] = BIND_OK
    port: int

    def payload(self) -> bytes:
        return _pack(_U16, self.port)


@dataclass(frozen=True, slots=True)
class Dial(Message):
    code: ClassVar[int] = DIAL
    addr: Addr
    port: int

    def payload(self) -> bytes:
        return _pack(_ADDR_PORT, self.addr.network, self.addr.node, self.port)


@dataclass(frozen=True, slots=True)
class DialOK(Message):
    code: ClassVar[int] = DIAL_OK
    conn_id: int

    def payload(self) -> bytes:
        return _pack(_U32, self.conn_id)


@dataclass(frozen=True, slots=True)
class Accept(Message):
    """Push: a connection arrived on a port this client bound."""

    code: ClassVar[int] = ACCEPT
    local_port: int
    conn_id: int
    remote_addr: Addr
    remote_port: int

    def payload(self) -> bytes:
        return _pack(
            _ACCEPT, self.local_port, self.conn_id, self.remote_addr.network, self.remote_addr.node, self.remote_port
        )


@dataclass(frozen=True, slots=True)
class Send(Message):
    """Data for a connection; the daemon answers only on error."""

    code: ClassVar[int] = SEND
    conn_id: int
    data: bytes

    def payload(self) -> bytes:
        return _pack(_U32, self.conn_id) + self.data


@dataclass(frozen=True, slots=True)
class Recv(Message):
    code: ClassVar[int] = RECV
    conn_id: int
    data: bytes

    def payload(self) -> bytes:
        return _pack(_U32, self.conn_id) + self.data


@dataclass(frozen=True, slots=True)
class Close(Message):
    code: ClassVar[int] = CLOSE
    conn_id: int

    def payload(self) -> bytes:
        return _pack(_U32, self.conn_id)


@dataclass(frozen=True, slots=True)
class CloseOK(Message):
    """Reply to Close, and also pushed when a connection's receive side ends."""

    code: ClassVar[int] = CLOSE_OK
    conn_id: int

    def payload(self) -> bytes:
        return _pack(_U32, self.conn_id)


@dataclass(frozen=True, slots=True)
class Error(Message):
    """``message`` is the contract (A2.4); ``error_code`` is always 1."""

    code: ClassVar[int] = ERROR
    message: str
    error_code: int = ERROR_GENERIC

    def payload(self) -> bytes:
        return _pack(_U16, self.error_code) + self.message.encode("utf-8", "surrogateescape")


@dataclass(frozen=True, slots=True)
class SendTo(Message):
    code: ClassVar[int] = SEND_TO
    addr: Addr
    port: int
    data: bytes

    def payload(self) -> bytes:
        return _pack(_ADDR_PORT, self.addr.network, self.addr.node, self.port) + self.data


@dataclass(frozen=True, slots=True)
class RecvFrom(Message):
    """Push: a datagram, fanned out to every client (Q15); filter on ``dst_port``."""

    code: ClassVar[int] = RECV_FROM
    src_addr: Addr
    src_port: int
    dst_port: int
    data: bytes

    def payload(self) -> bytes:
        return _pack(_RECV_FROM, self.src_addr.network, self.src_addr.node, self.src_port, self.dst_port) + self.data


@dataclass(frozen=True, slots=True)
class Info(Message):
    code: ClassVar[int] = INFO


@dataclass(frozen=True, slots=True)
class HandshakeRequest(Message):
    """Sub 0x01: ask ``node_id`` for trust."""

    code: ClassVar[int] = HANDSHAKE
    sub: ClassVar[int] = HS_REQUEST
    node_id: int
    justification: str = ""

    def payload(self) -> bytes:
        return bytes((self.sub,)) + _pack(_U32, self.node_id) + self.justification.encode("utf-8", "surrogateescape")


@dataclass(frozen=True, slots=True)
class HandshakeApprove(Message):
    code: ClassVar[int] = HANDSHAKE
    sub: ClassVar[int] = HS_APPROVE
    node_id: int

    def payload(self) -> bytes:
        return bytes((self.sub,)) + _pack(_U32, self.node_id)


@dataclass(frozen=True, slots=True)
class HandshakeReject(Message):
    code: ClassVar[int] = HANDSHAKE
    sub: ClassVar[int] = HS_REJECT
    node_id: int
    reason: str = ""

    def payload(self) -> bytes:
        return bytes((self.sub,)) + _pack(_U32, self.node_id) + self.reason.encode("utf-8", "surrogateescape")


@dataclass(frozen=True, slots=True)
class HandshakePending(Message):
    code: ClassVar[int] = HANDSHAKE
    sub: ClassVar[int] = HS_PENDING

    def payload(self) -> bytes:
        return bytes((self.sub,))


@dataclass(frozen=True, slots=True)
class HandshakeTrusted(Message):
    code: ClassVar[int] = HANDSHAKE
    sub: ClassVar[int] = HS_TRUSTED

    def payload(self) -> bytes:
        return bytes((self.sub,))


@dataclass(frozen=True, slots=True)
class HandshakeRevoke(Message):
    code: ClassVar[int] = HANDSHAKE
    sub: ClassVar[int] = HS_REVOKE
    node_id: int

    def payload(self) -> bytes:
        return bytes((self.sub,)) + _pack(_U32, self.node_id)


@dataclass(frozen=True, slots=True)
class ResolveHostname(Message):
    code: ClassVar[int] = RESOLVE_HOSTNAME
    hostname: str

    def payload(self) -> bytes:
        return self.hostname.encode("utf-8", "surrogateescape")


@dataclass(frozen=True, slots=True)
class SetHostname(Message):
    """Empty hostname clears it; the registry validates, not the daemon."""

    code: ClassVar[int] = SET_HOSTNAME
    hostname: str

    def payload(self) -> bytes:
        return self.hostname.encode("utf-8", "surrogateescape")


@dataclass(frozen=True, slots=True)
class SetVisibility(Message):
    code: ClassVar[int] = SET_VISIBILITY
    public: bool

    def payload(self) -> bytes:
        return b"\x01" if self.public else b"\x00"


@dataclass(frozen=True, slots=True)
class Deregister(Message):
    code: ClassVar[int] = DEREGISTER


@dataclass(frozen=True, slots=True)
class SetTags(Message):
    code: ClassVar[int] = SET_TAGS
    tags: tuple[str, ...]

    def payload(self) -> bytes:
        return gojson.dumpb(list(self.tags))


@dataclass(frozen=True, slots=True)
class SetWebhook(Message):
    """Empty URL disables delivery."""

    code: ClassVar[int] = SET_WEBHOOK
    url: str

    def payload(self) -> bytes:
        return self.url.encode("utf-8", "surrogateescape")


@dataclass(frozen=True, slots=True)
class SetTaskExec(Message):
    code: ClassVar[int] = SET_TASK_EXEC
    enabled: bool

    def payload(self) -> bytes:
        return b"\x01" if self.enabled else b"\x00"


@dataclass(frozen=True, slots=True)
class ExposeAdd(Message):
    """Extension: publish ``target`` (``host:port``, TCP) on pilot ``port``."""

    code: ClassVar[int] = EXPOSE
    sub: ClassVar[int] = EXPOSE_ADD
    port: int
    target: str

    def payload(self) -> bytes:
        return bytes((self.sub,)) + _pack(_U16, self.port) + self.target.encode("utf-8", "surrogateescape")


@dataclass(frozen=True, slots=True)
class ExposeRemove(Message):
    code: ClassVar[int] = EXPOSE
    sub: ClassVar[int] = EXPOSE_REMOVE
    port: int

    def payload(self) -> bytes:
        return bytes((self.sub,)) + _pack(_U16, self.port)


@dataclass(frozen=True, slots=True)
class ExposeList(Message):
    code: ClassVar[int] = EXPOSE
    sub: ClassVar[int] = EXPOSE_LIST

    def payload(self) -> bytes:
        return bytes((self.sub,))


@dataclass(frozen=True, slots=True)
class SendToFrom(Message):
    """Extension: a datagram from a port this client bound."""

    code: ClassVar[int] = SEND_TO_FROM
    src_port: int
    addr: Addr
    port: int
    data: bytes

    def payload(self) -> bytes:
        return (
            _pack(_U16, self.src_port)
            + _pack(_ADDR_PORT, self.addr.network, self.addr.node, self.port)
            + self.data
        )


JSON_REPLY_CODES = frozenset(
    {
        EXPOSE_OK,
        INFO_OK,
        HANDSHAKE_OK,
        RESOLVE_HOSTNAME_OK,
        SET_HOSTNAME_OK,
        SET_VISIBILITY_OK,
        DEREGISTER_OK,
        SET_TAGS_OK,
        SET_WEBHOOK_OK,
        SET_TASK_EXEC_OK,
    }
)


@dataclass(frozen=True, slots=True)
class JsonReply(Message):
    """One of the JSON replies (InfoOK, HandshakeOK, SetTagsOK ...).

    ``value`` is plain JSON data (dicts, lists, str, int, float, bool,
    None); it is written with keys sorted. Build it with the helpers below
    (:func:`info_reply`, :func:`status_reply` ...) rather than by hand.
    """

    reply_code: int
    value: Any

    def __post_init__(self) -> None:
        if self.reply_code not in JSON_REPLY_CODES:
            raise ValueError(f"0x{self.reply_code:02X} is not a JSON reply")

    @property
    def code(self) -> int:  # type: ignore[override]
        return self.reply_code

    def payload(self) -> bytes:
        return gojson.dumpb(self.value)


Request = Union[
    Bind,
    Dial,
    Send,
    Close,
    SendTo,
    Info,
    HandshakeRequest,
    HandshakeApprove,
    HandshakeReject,
    HandshakePending,
    HandshakeTrusted,
    HandshakeRevoke,
    ResolveHostname,
    SetHostname,
    SetVisibility,
    Deregister,
    SetTags,
    SetWebhook,
    SetTaskExec,
    ExposeAdd,
    ExposeRemove,
    ExposeList,
    SendToFrom,
]
Reply = Union[BindOK, DialOK, Accept, Recv, CloseOK, Error, RecvFrom, JsonReply]


def encode_send(conn_id: int, data: Buffer, chunk: int = SEND_CHUNK) -> Iterator[bytes]:
    """Frames carrying ``data`` as Send commands of at most ``chunk`` bytes
    each, so no write can exceed the 1 MiB frame limit (D-13)."""
    if not 0 < chunk <= MAX_SEND_DATA:
        raise ValueError(f"Send chunk must be 1..{MAX_SEND_DATA} bytes")
    view = memoryview(data)
    head = bytes((SEND,)) + _pack(_U32, conn_id)
    for start in range(0, len(view), chunk):
        part = view[start : start + chunk]
        yield _U32.pack(5 + len(part)) + head + part


# --------------------------------------------------------------------------
# Decoding requests (daemon side): error messages are the A2.4/A2.5 texts.


def _need(payload: Buffer, n: int, message: str) -> None:
    if len(payload) < n:
        raise DecodeError(message, "truncated")


def _addr_port(payload: Buffer, message: str) -> tuple[Addr, int]:
    _need(payload, 8, message)
    network, node, port = _ADDR_PORT.unpack_from(payload)
    return Addr(network, node), port


def _conn_id(payload: Buffer, message: str) -> int:
    _need(payload, 4, message)
    return _U32.unpack_from(payload)[0]


def _decode_handshake(payload: Buffer) -> Request:
    _need(payload, 1, "handshake: missing sub-command")
    sub, args = payload[0], payload[1:]
    if sub == HS_REQUEST:
        return HandshakeRequest(_conn_id(args, "handshake request: missing node_id"), _text(args[4:]))
    if sub == HS_APPROVE:
        return HandshakeApprove(_conn_id(args, "handshake approve: missing node_id"))
    if sub == HS_REJECT:
        return HandshakeReject(_conn_id(args, "handshake reject: missing node_id"), _text(args[4:]))
    if sub == HS_PENDING:
        return HandshakePending()
    if sub == HS_TRUSTED:
        return HandshakeTrusted()
    if sub == HS_REVOKE:
        return HandshakeRevoke(_conn_id(args, "handshake revoke: missing node_id"))
    raise DecodeError(f"handshake: unknown sub-command 0x{sub:02X}", "unknown")


def _decode_expose(payload: Buffer) -> Request:
    _need(payload, 1, "expose: missing sub-command")
    sub, args = payload[0], payload[1:]
    if sub == EXPOSE_ADD:
        _need(args, 2, "expose add: missing port")
        return ExposeAdd(_U16.unpack_from(args)[0], _text(args[2:]))
    if sub == EXPOSE_REMOVE:
        _need(args, 2, "expose remove: missing port")
        return ExposeRemove(_U16.unpack_from(args)[0])
    if sub == EXPOSE_LIST:
        return ExposeList()
    raise DecodeError(f"expose: unknown sub-command 0x{sub:02X}", "unknown")


def decode_tags(payload: Buffer) -> tuple[str, ...]:
    """SetTags' JSON array of strings, at most 3 (the registry checks the
    rest). ``null`` is an empty list, as for Go's ``[]string``."""
    try:
        value = goread.loads(payload)
    except DecodeError as exc:
        raise DecodeError(f"set_tags: invalid JSON: {exc}", "json") from None
    if value is None:
        return ()
    if not isinstance(value, list) or isinstance(value, goread.JsonObject):
        kind = "object" if isinstance(value, goread.JsonObject) else _json_kind(value)
        raise DecodeError(f"set_tags: invalid JSON: json: cannot unmarshal {kind} into Go value of type []string", "json")
    tags = []
    for item in value:
        if item is not None and not isinstance(item, str):
            kind = "object" if isinstance(item, goread.JsonObject) else _json_kind(item)
            raise DecodeError(f"set_tags: invalid JSON: json: cannot unmarshal {kind} into Go value of type string", "json")
        tags.append(goread.plain(item or ""))
    if len(tags) > MAX_TAGS:
        raise DecodeError("set_tags: maximum 3 tags allowed", "invalid")
    return tuple(tags)


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array"


def decode_request(body: Buffer) -> Request:
    """A client's frame body as a request. Every :class:`DecodeError` text
    is what the reference daemon answers in its Error frame."""
    if not body:
        raise DecodeError("empty IPC frame", "truncated")
    cmd, payload = body[0], memoryview(body)[1:]
    if cmd == BIND:
        _need(payload, 2, "bind: missing port")
        return Bind(_U16.unpack_from(payload)[0])
    if cmd == DIAL:
        return Dial(*_addr_port(payload, "dial: missing address/port"))
    if cmd == SEND:
        return Send(_conn_id(payload, "send: missing conn_id"), bytes(payload[4:]))
    if cmd == CLOSE:
        return Close(_conn_id(payload, "close: missing conn_id"))
    if cmd == SEND_TO:
        addr, port = _addr_port(payload, "sendto: missing address/port")
        return SendTo(addr, port, bytes(payload[8:]))
    if cmd == INFO:
        return Info()
    if cmd == HANDSHAKE:
        return _decode_handshake(payload)
    if cmd == RESOLVE_HOSTNAME:
        _need(payload, 1, "resolve_hostname: missing hostname")
        return ResolveHostname(_text(payload))
    if cmd == SET_HOSTNAME:
        return SetHostname(_text(payload))
    if cmd == SET_VISIBILITY:
        _need(payload, 1, "set_visibility: missing value")
        return SetVisibility(payload[0] == 1)
    if cmd == DEREGISTER:
        return Deregister()
    if cmd == SET_TAGS:
        return SetTags(decode_tags(payload))
    if cmd == SET_WEBHOOK:
        return SetWebhook(_text(payload))
    if cmd == SET_TASK_EXEC:
        _need(payload, 1, "set_task_exec: missing value")
        return SetTaskExec(payload[0] == 1)
    if cmd == EXPOSE:
        return _decode_expose(payload)
    if cmd == SEND_TO_FROM:
        _need(payload, 10, "sendto: missing source port/address/port")
        addr, port = _addr_port(payload[2:], "sendto: missing source port/address/port")
        return SendToFrom(_U16.unpack_from(payload)[0], addr, port, bytes(payload[10:]))
    raise DecodeError(f"unknown command: 0x{cmd:02X}", "unknown")


# --------------------------------------------------------------------------
# Decoding replies and pushes (driver side).


def _fixed(payload: Buffer, n: int, name: str) -> None:
    if len(payload) < n:
        raise DecodeError(f"{name} needs {n} payload bytes, got {len(payload)}", "truncated")


def decode_reply(body: Buffer) -> Reply:
    """A daemon's frame body as a reply or push. JSON replies come back as
    :class:`JsonReply` with plain values (integers stay exact)."""
    if not body:
        raise DecodeError("empty IPC frame", "truncated")
    cmd, payload = body[0], memoryview(body)[1:]
    if cmd == BIND_OK:
        _fixed(payload, 2, "BindOK")
        return BindOK(_U16.unpack_from(payload)[0])
    if cmd == DIAL_OK:
        _fixed(payload, 4, "DialOK")
        return DialOK(_U32.unpack_from(payload)[0])
    if cmd == ACCEPT:
        _fixed(payload, 14, "Accept")
        local_port, conn_id, network, node, remote_port = _ACCEPT.unpack_from(payload)
        return Accept(local_port, conn_id, Addr(network, node), remote_port)
    if cmd == RECV:
        _fixed(payload, 4, "Recv")
        return Recv(_U32.unpack_from(payload)[0], bytes(payload[4:]))
    if cmd == CLOSE_OK:
        _fixed(payload, 4, "CloseOK")
        return CloseOK(_U32.unpack_from(payload)[0])
    if cmd == ERROR:
        _fixed(payload, 2, "Error")
        return Error(_text(payload[2:]), _U16.unpack_from(payload)[0])
    if cmd == RECV_FROM:
        _fixed(payload, 10, "RecvFrom")
        network, node, src_port, dst_port = _RECV_FROM.unpack_from(payload)
        return RecvFrom(Addr(network, node), src_port, dst_port, bytes(payload[10:]))
    if cmd in JSON_REPLY_CODES:
        return JsonReply(cmd, goread.plain(goread.loads(payload)))
    raise DecodeError(f"unknown reply command: 0x{cmd:02X}", "unknown")


def decode_request_frame(data: Buffer) -> Request:
    """Exactly one length-prefixed request (tests and tools)."""
    return decode_request(_one_body(data))


def decode_reply_frame(data: Buffer) -> Reply:
    """Exactly one length-prefixed reply (tests and tools)."""
    return decode_reply(_one_body(data))


def _one_body(data: Buffer) -> bytes:
    if len(data) < 4:
        raise DecodeError(f"IPC frame needs a 4-byte length, got {len(data)} bytes", "truncated")
    (n,) = _U32.unpack_from(data)
    if n > MAX_BODY:
        raise DecodeError(FRAME_TOO_LARGE, "oversize")
    if len(data) != 4 + n:
        raise DecodeError(f"IPC frame announces {n} bytes, {len(data) - 4} present", "truncated")
    return bytes(data[4:])


# --------------------------------------------------------------------------
# Reply builders and typed views of the JSON replies (A2.4-A2.6).


def status_reply(node_id: int, status: str) -> JsonReply:
    """HandshakeOK for request/approve/reject/revoke: ``sent``, ``approved``,
    ``rejected`` or ``revoked`` (the same status even when nothing happened)."""
    return JsonReply(HANDSHAKE_OK, {"node_id": node_id, "status": status})


@dataclass(frozen=True, slots=True)
class PendingEntry:
    node_id: int
    public_key: str = ""
    justification: str = ""
    received_at: int = 0  # Unix seconds; GO_ZERO_TIME for "never"

    def to_json(self) -> dict[str, Any]:
        return {
            "justification": self.justification,
            "node_id": self.node_id,
            "public_key": self.public_key,
            "received_at": self.received_at,
        }


@dataclass(frozen=True, slots=True)
class TrustedEntry:
    node_id: int
    public_key: str = ""
    approved_at: int = 0  # Unix seconds; GO_ZERO_TIME for "never"
    mutual: bool = False
    network: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "approved_at": self.approved_at,
            "mutual": self.mutual,
            "network": self.network,
            "node_id": self.node_id,
            "public_key": self.public_key,
        }


def pending_reply(entries: list[PendingEntry]) -> JsonReply:
    """``{"pending":[...]}``; ``[]`` (never ``null``) when empty."""
    return JsonReply(HANDSHAKE_OK, {"pending": [e.to_json() for e in entries]})


def trusted_reply(entries: list[TrustedEntry]) -> JsonReply:
    """``{"trusted":[...]}``; ``[]`` (never ``null``) when empty."""
    return JsonReply(HANDSHAKE_OK, {"trusted": [e.to_json() for e in entries]})


_PENDING_SCHEMA = {
    "node_id": goread.u32,
    "public_key": goread.string,
    "justification": goread.string,
    "received_at": goread.i64,
}
_TRUSTED_SCHEMA = {
    "node_id": goread.u32,
    "public_key": goread.string,
    "approved_at": goread.i64,
    "mutual": goread.boolean,
    "network": goread.u16,
}


def _entries(value: Any, key: str) -> list[Any]:
    if not isinstance(value, dict) or not isinstance(value.get(key, []), (list, type(None))):
        raise DecodeError(f"HandshakeOK has no {key!r} list", "json")
    return value.get(key) or []


def parse_pending(reply: JsonReply) -> list[PendingEntry]:
    """The entries of a list-pending HandshakeOK (missing keys are zero)."""
    return [_zero_filled(PendingEntry, _PENDING_SCHEMA, e) for e in _entries(reply.value, "pending")]


def parse_trusted(reply: JsonReply) -> list[TrustedEntry]:
    """The entries of a list-trusted HandshakeOK (missing keys are zero)."""
    return [_zero_filled(TrustedEntry, _TRUSTED_SCHEMA, e) for e in _entries(reply.value, "trusted")]


def _zero_filled(cls: type, schema: dict[str, goread.Reader], obj: Any) -> Any:
    if not isinstance(obj, dict):
        raise DecodeError(f"{cls.__name__} must be a JSON object", "json")
    return cls(**{"node_id": 0, **goread.fields(goread.JsonObject(obj.items()), schema)})


def set_hostname_reply(node_id: int, hostname: str) -> JsonReply:
    return JsonReply(SET_HOSTNAME_OK, {"hostname": hostname, "node_id": node_id, "type": "set_hostname_ok"})


def set_visibility_reply(node_id: int, public: bool) -> JsonReply:
    visibility = "public" if public else "private"
    return JsonReply(SET_VISIBILITY_OK, {"node_id": node_id, "type": "set_visibility_ok", "visibility": visibility})


def deregister_reply() -> JsonReply:
    return JsonReply(DEREGISTER_OK, {"type": "deregister_ok"})


def set_tags_reply(node_id: int, tags: list[str] | tuple[str, ...]) -> JsonReply:
    """``"tags": null`` for an empty list, as the registry sends it (Q23)."""
    return JsonReply(SET_TAGS_OK, {"node_id": node_id, "tags": list(tags) or None, "type": "set_tags_ok"})


def set_webhook_reply(url: str) -> JsonReply:
    return JsonReply(SET_WEBHOOK_OK, {"webhook": url})


def set_task_exec_reply(node_id: int, enabled: bool) -> JsonReply:
    return JsonReply(SET_TASK_EXEC_OK, {"node_id": node_id, "task_exec": enabled, "type": "set_task_exec_ok"})


def resolve_hostname_reply(registry_reply: dict[str, Any]) -> JsonReply:
    """The registry's reply object, re-encoded with sorted keys."""
    return JsonReply(RESOLVE_HOSTNAME_OK, registry_reply)


@dataclass(frozen=True, slots=True)
class PeerInfo:
    """One ``peer_list`` entry. ``path`` (``"direct"``, ``"punched"`` or
    ``"relay"``) and ``relay`` are our extension, present only when
    ``path`` is set (a reference daemon sends neither; its CLI ignores
    extra keys)."""

    node_id: int
    endpoint: str = ""
    encrypted: bool = False
    authenticated: bool = False
    path: str = ""
    relay: bool = False

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "authenticated": self.authenticated,
            "encrypted": self.encrypted,
            "endpoint": self.endpoint,
            "node_id": self.node_id,
        }
        if self.path:
            out["path"] = self.path
            out["relay"] = self.relay
        return out


CONN_STATES = ("CLOSED", "LISTEN", "SYN_SENT", "SYN_RECV", "ESTABLISHED", "FIN_WAIT", "CLOSE_WAIT", "TIME_WAIT")


@dataclass(frozen=True, slots=True)
class ConnInfo:
    """One ``conn_list`` entry; ``srtt_ms``/``rttvar_ms`` are whole ms,
    ``recv_win`` and ``peer_recv_win`` are bytes."""

    id: int
    local_port: int = 0
    remote_addr: str = ""
    remote_port: int = 0
    state: str = "CLOSED"
    cong_win: int = 0
    ssthresh: int = 0
    in_flight: int = 0
    srtt_ms: float = 0
    rttvar_ms: float = 0
    unacked: int = 0
    ooo_buf: int = 0
    peer_recv_win: int = 0
    recv_win: int = 0
    in_recovery: bool = False
    bytes_sent: int = 0
    bytes_recv: int = 0
    segs_sent: int = 0
    segs_recv: int = 0
    retransmits: int = 0
    fast_retx: int = 0
    sack_recv: int = 0
    sack_sent: int = 0
    dup_acks: int = 0

    def to_json(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in _CONN_SCHEMA}


@dataclass(frozen=True, slots=True)
class NodeInfo:
    """The InfoOK object (A2.6). ``identity`` means "an identity file path is
    configured", not "a key exists" (Q16)."""

    node_id: int
    address: str
    hostname: str = ""
    uptime_secs: float = 0
    connections: int = 0
    ports: int = 0
    peers: int = 0
    encrypted_peers: int = 0
    authenticated_peers: int = 0
    encrypt: bool = False
    identity: bool = False
    public_key: str = ""
    owner: str = ""
    bytes_sent: int = 0
    bytes_recv: int = 0
    pkts_sent: int = 0
    pkts_recv: int = 0
    peer_list: tuple[PeerInfo, ...] = field(default_factory=tuple)
    conn_list: tuple[ConnInfo, ...] = field(default_factory=tuple)

    def to_json(self) -> dict[str, Any]:
        out = {name: getattr(self, name) for name in _INFO_SCALARS}
        out["peer_list"] = [p.to_json() for p in self.peer_list]
        out["conn_list"] = [c.to_json() for c in self.conn_list]
        return out


_INT = goread.i64
_COUNT = goread.u64

_PEER_SCHEMA = {
    "node_id": goread.u32,
    "endpoint": goread.string,
    "encrypted": goread.boolean,
    "authenticated": goread.boolean,
    "path": goread.string,
    "relay": goread.boolean,
}
_CONN_SCHEMA: dict[str, goread.Reader] = {
    "id": goread.u32,
    "local_port": goread.u16,
    "remote_addr": goread.string,
    "remote_port": goread.u16,
    "state": goread.string,
    "cong_win": _INT,
    "ssthresh": _INT,
    "in_flight": _INT,
    "srtt_ms": goread.number,
    "rttvar_ms": goread.number,
    "unacked": _INT,
    "ooo_buf": _INT,
    "peer_recv_win": _INT,
    "recv_win": _INT,
    "in_recovery": goread.boolean,
    "bytes_sent": _COUNT,
    "bytes_recv": _COUNT,
    "segs_sent": _COUNT,
    "segs_recv": _COUNT,
    "retransmits": _COUNT,
    "fast_retx": _COUNT,
    "sack_recv": _COUNT,
    "sack_sent": _COUNT,
    "dup_acks": _COUNT,
}
_INFO_SCALARS: dict[str, goread.Reader] = {
    "node_id": goread.u32,
    "address": goread.string,
    "hostname": goread.string,
    "uptime_secs": goread.number,
    "connections": _INT,
    "ports": _INT,
    "peers": _INT,
    "encrypted_peers": _INT,
    "authenticated_peers": _INT,
    "encrypt": goread.boolean,
    "identity": goread.boolean,
    "public_key": goread.string,
    "owner": goread.string,
    "bytes_sent": _COUNT,
    "bytes_recv": _COUNT,
    "pkts_sent": _COUNT,
    "pkts_recv": _COUNT,
}


def info_reply(info: NodeInfo) -> JsonReply:
    return JsonReply(INFO_OK, info.to_json())


def _list_of(value: Any, name: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise DecodeError(f"InfoOK {name} must be a list", "json")
    return value


def parse_info(reply: JsonReply) -> NodeInfo:
    """The typed view of an InfoOK reply; missing keys take zero values."""
    value = reply.value
    if reply.reply_code != INFO_OK or not isinstance(value, dict):
        raise DecodeError("not an InfoOK object", "json")
    scalars = {"node_id": 0, "address": ""}
    scalars.update(goread.fields(goread.JsonObject(value.items()), _INFO_SCALARS))
    peers = tuple(_zero_filled(PeerInfo, _PEER_SCHEMA, p) for p in _list_of(value.get("peer_list"), "peer_list"))
    conns = tuple(_conn(c) for c in _list_of(value.get("conn_list"), "conn_list"))
    return NodeInfo(**scalars, peer_list=peers, conn_list=conns)


def _conn(obj: Any) -> ConnInfo:
    if not isinstance(obj, dict):
        raise DecodeError("ConnInfo must be a JSON object", "json")
    values = goread.fields(goread.JsonObject(obj.items()), _CONN_SCHEMA)
    return ConnInfo(**{"id": 0, **values})
