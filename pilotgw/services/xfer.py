"""The pilotgw bulk file-transfer extension: wire format (sans-IO).

Why a separate port. The reference's data exchange (port 1001) carries a
file as one frame of at most 16 MiB, held in memory, with no checksum and no
way to resume. Our extension lifts those limits, but a reference peer must
never see it. So it lives on its own virtual port, :data:`PORT`, where only
pilotgw daemons listen: a sender dials it first, and a reference node answers
that SYN with an RST (no listener) -- the sender then falls back to one
standard FILE frame on port 1001. No byte of the extension ever reaches a
reference peer, and the negotiation costs one round trip.

Framing: every message in both directions uses the data-exchange header
``type u32 | length u32 | payload`` with types of our own (:data:`OFFER`
...). Control messages carry compact JSON; ``DATA`` carries raw file bytes,
at most :data:`MAX_DATA` per frame so memory stays bounded.

Exchange (S = sender or upstream hop, R = receiver)::

    S -> R  OFFER  {"name","size","id","chain":[addr...]}
    R -> S  READY  {"offset","prefix_sha256"}   bytes R (and every hop after
                                                 it) already holds of this id
    S -> R  START  {"offset"}                    the resume point S chose
    S -> R  DATA*                                bytes [offset, size)
    S -> R  END    {"sha256"}                    of the whole file
    R -> S  PROGRESS {"node","bytes"}            any time, per receiver
    R -> S  RESULT {"node","ok","bytes","path"|"error"}   once per receiver
    R -> S  REFUSED {"error"}                    instead of READY

``chain`` lists further receivers: R saves the file *and* forwards the same
stream to ``chain[0]`` with ``chain[1:]``, so a file goes to N receivers
while the sender reads it once and sends one copy (a pipeline through the
receivers). PROGRESS and RESULT messages of later hops travel back up the
chain unchanged, so the sender sees progress per receiver.

Resume: ``id`` names the file version (the sender derives it from the
path, size and mtime). A receiver keeps an interrupted transfer's bytes under
that id; READY offers them with their SHA-256, and the sender resumes only
if its own prefix hashes the same -- then the final SHA-256 still covers the
whole file.
"""

from __future__ import annotations

import asyncio
import json
import re
import struct
from collections import deque
from dataclasses import dataclass
from typing import Any

from pilotgw.overlay.address import Addr, parse_addr
from pilotgw.overlay.errors import DecodeError

#: Virtual port of the extension (unused by the reference; see module doc).
PORT = 1004

OFFER = 0x50470001
READY = 0x50470002
START = 0x50470003
DATA = 0x50470004
END = 0x50470005
PROGRESS = 0x50470006
RESULT = 0x50470007
REFUSED = 0x50470008
_CONTROL = frozenset({OFFER, READY, START, END, PROGRESS, RESULT, REFUSED})

#: Start of the RESULT error a hop reports for a receiver it could not reach.
UNREACHABLE = "cannot reach receiver"

HEADER = struct.Struct(">II")
MAX_DATA = 1 << 20
MAX_CONTROL = 64 * 1024
MAX_CHAIN = 64
#: ``id`` values: lowercase hex, 16..64 digits.
_ID = re.compile(r"[0-9a-f]{16,64}")
_HEX64 = re.compile(r"[0-9a-f]{64}")


def frame(kind: int, payload: bytes) -> bytes:
    return HEADER.pack(kind, len(payload)) + payload


def control(kind: int, doc: dict[str, Any]) -> bytes:
    return frame(kind, json.dumps(doc, separators=(",", ":"), ensure_ascii=True).encode("ascii"))


def data_header(length: int) -> bytes:
    return HEADER.pack(DATA, length)


def check_header(kind: int, length: int) -> None:
    """Raise :class:`DecodeError` for an unknown type or an oversized frame,
    before the payload is read."""
    if kind == DATA:
        if length > MAX_DATA:
            raise DecodeError(f"data frame of {length} bytes exceeds {MAX_DATA}", "oversize")
    elif kind in _CONTROL:
        if length > MAX_CONTROL:
            raise DecodeError(f"control frame of {length} bytes exceeds {MAX_CONTROL}", "oversize")
    else:
        raise DecodeError(f"unknown transfer frame type 0x{kind:08X}", "type")


def parse_control(payload: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(payload)
    except (ValueError, RecursionError):
        raise DecodeError("transfer control message is not JSON", "json") from None
    if not isinstance(doc, dict):
        raise DecodeError("transfer control message is not an object", "json")
    return doc


def _uint(doc: dict[str, Any], key: str, maximum: int = (1 << 63) - 1) -> int:
    value = doc.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= maximum:
        raise DecodeError(f"transfer field {key!r} must be an integer in 0..{maximum}", "field")
    return value


def _text(doc: dict[str, Any], key: str, limit: int = 4096) -> str:
    value = doc.get(key, "")
    if not isinstance(value, str) or len(value) > limit:
        raise DecodeError(f"transfer field {key!r} must be a string of at most {limit} characters", "field")
    return value


def _hex64(doc: dict[str, Any], key: str) -> str:
    value = doc.get(key)
    if not isinstance(value, str) or not _HEX64.fullmatch(value):
        raise DecodeError(f"transfer field {key!r} must be a SHA-256 in lowercase hex", "field")
    return value


@dataclass(frozen=True, slots=True)
class Offer:
    name: str
    size: int
    id: str
    chain: tuple[Addr, ...] = ()

    def encode(self) -> bytes:
        return control(OFFER, {"name": self.name, "size": self.size, "id": self.id, "chain": [str(a) for a in self.chain]})

    @classmethod
    def decode(cls, payload: bytes) -> "Offer":
        doc = parse_control(payload)
        ident = doc.get("id")
        if not isinstance(ident, str) or not _ID.fullmatch(ident):
            raise DecodeError("transfer id must be 16..64 lowercase hex digits", "field")
        chain = doc.get("chain", [])
        if not isinstance(chain, list) or len(chain) > MAX_CHAIN or not all(isinstance(a, str) for a in chain):
            raise DecodeError(f"transfer chain must be a list of at most {MAX_CHAIN} addresses", "field")
        return cls(_text(doc, "name", 65535), _uint(doc, "size"), ident, tuple(parse_addr(a) for a in chain))


@dataclass(frozen=True, slots=True)
class Ready:
    offset: int
    prefix_sha256: str

    def encode(self) -> bytes:
        return control(READY, {"offset": self.offset, "prefix_sha256": self.prefix_sha256})

    @classmethod
    def decode(cls, payload: bytes) -> "Ready":
        doc = parse_control(payload)
        return cls(_uint(doc, "offset"), _hex64(doc, "prefix_sha256"))


@dataclass(frozen=True, slots=True)
class Result:
    """One receiver's outcome. ``node`` is its text address."""

    node: str
    ok: bool
    bytes: int = 0
    path: str = ""
    error: str = ""

    def encode(self) -> bytes:
        doc: dict[str, Any] = {"node": self.node, "ok": self.ok, "bytes": self.bytes}
        doc["path" if self.ok else "error"] = self.path if self.ok else self.error
        return control(RESULT, doc)

    @classmethod
    def decode(cls, payload: bytes) -> "Result":
        doc = parse_control(payload)
        return cls(_text(doc, "node", 64), doc.get("ok") is True, _uint(doc, "bytes"), _text(doc, "path"), _text(doc, "error"))


def start(offset: int) -> bytes:
    return control(START, {"offset": offset})


def parse_start(payload: bytes) -> int:
    return _uint(parse_control(payload), "offset")


def end(sha256_hex: str) -> bytes:
    return control(END, {"sha256": sha256_hex})


def parse_end(payload: bytes) -> str:
    return _hex64(parse_control(payload), "sha256")


def progress(node: str, done: int) -> bytes:
    return control(PROGRESS, {"node": node, "bytes": done})


def parse_progress(payload: bytes) -> tuple[str, int]:
    doc = parse_control(payload)
    return _text(doc, "node", 64), _uint(doc, "bytes")


def refused(error: str) -> bytes:
    return control(REFUSED, {"error": error})


def parse_refused(payload: bytes) -> str:
    return _text(parse_control(payload), "error")


class FrameReader:
    """Frames from an asyncio-style reader (``read(n)``), buffered.

    Why not ``readexactly``: that reads a frame's header and payload with
    separate calls and, on a daemon stream, assembles the payload in a
    bytearray and copies it again into ``bytes``. Here one ``read`` may
    bring a header and most of a payload, and a payload costs at most one
    copy -- none when a read returned exactly the frame's remaining bytes.
    One instance per connection: bytes it has read ahead belong to the next
    frame."""

    def __init__(self, reader: Any, read_size: int = HEADER.size + MAX_DATA) -> None:
        self._reader = reader
        self._read_size = read_size
        self._chunks: deque[bytes] = deque()
        self._off = 0  # bytes of _chunks[0] already taken
        self._have = 0  # bytes buffered and not yet taken

    async def next(self) -> tuple[int, bytes] | None:
        """The next frame; ``None`` at a clean EOF between frames. Raises
        :class:`DecodeError` for a bad header (before reading its payload)
        and ``asyncio.IncompleteReadError`` for EOF inside a frame."""
        if not await self._fill(HEADER.size):
            if not self._have:
                return None
            raise asyncio.IncompleteReadError(self._take(self._have), None)
        kind, length = HEADER.unpack(self._take(HEADER.size))
        check_header(kind, length)
        if not await self._fill(length):
            raise asyncio.IncompleteReadError(self._take(self._have), length)
        return kind, self._take(length)

    async def _fill(self, n: int) -> bool:
        while self._have < n:
            data = await self._reader.read(max(n - self._have, self._read_size))
            if not data:
                return False
            self._chunks.append(data)
            self._have += len(data)
        return True

    def _take(self, n: int) -> bytes:
        if not n:
            return b""
        chunks = self._chunks
        self._have -= n
        head = chunks[0]
        off = self._off
        if off + n <= len(head):
            if off == 0 and n == len(head):
                chunks.popleft()
                return head
            self._off = off + n
            if self._off == len(head):
                chunks.popleft()
                self._off = 0
            return head[off : off + n]
        parts = []
        while n:
            head = chunks[0]
            part = head[self._off : self._off + n]
            parts.append(part)
            n -= len(part)
            if self._off + len(part) == len(head):
                chunks.popleft()
                self._off = 0
            else:
                self._off += len(part)
        return b"".join(parts)
