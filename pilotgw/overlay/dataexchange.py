"""Data-exchange frames on virtual port 1001 (services-and-cli.md §A3.1-A3.2).

``type u32 | length u32 | payload[length]``; a FILE payload is
``name_len u16 | name | data``. No magic, version or checksum.

Two readers, because the two ends want different things:

* :class:`StreamReader` never holds a payload: it reports the header (and,
  for FILE, the name), then hands the data through in the chunks it arrived
  in, so a 16 MiB file can go straight to disk (C-9);
* :class:`FrameAssembler` returns whole :class:`Frame` objects, for small
  frames such as the TEXT acknowledgements a sender waits for.

Both refuse a length over 16 MiB with the reference's ``frame too large: <n>``
before reading any payload.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Union

from pilotgw.overlay.errors import DecodeError

TEXT = 1
BINARY = 2
JSON = 3
FILE = 4

_NAMES = {TEXT: "TEXT", BINARY: "BINARY", JSON: "JSON", FILE: "FILE"}

HEADER_LEN = 8
MAX_LENGTH = 1 << 24  # exactly 16 MiB is allowed
MAX_NAME = 0xFFFF

_HEADER = struct.Struct(">II")
_NAME_LEN = struct.Struct(">H")

Buffer = Union[bytes, bytearray, memoryview]


def type_name(frame_type: int) -> str:
    """``TEXT`` ... ``FILE``, else ``UNKNOWN(n)`` -- the name in ACK texts."""
    return _NAMES.get(frame_type, f"UNKNOWN({frame_type})")


def split_file_payload(payload: Buffer) -> tuple[bytes, bytes]:
    """``(name, data)`` of a FILE payload by the A3.2 rule: when the name
    header does not fit, the name is empty and the data is everything."""
    if len(payload) >= 2:
        (n,) = _NAME_LEN.unpack_from(payload)
        if n + 2 <= len(payload):
            return bytes(payload[2 : 2 + n]), bytes(payload[2 + n :])
    return b"", bytes(payload)


@dataclass(frozen=True, slots=True)
class Frame:
    type: int
    payload: bytes

    @property
    def filename(self) -> bytes:
        """Raw name bytes of a FILE frame (``b""`` for other types)."""
        return split_file_payload(self.payload)[0] if self.type == FILE else b""

    @property
    def data(self) -> bytes:
        """The payload without a FILE frame's name header."""
        return split_file_payload(self.payload)[1] if self.type == FILE else self.payload

    def encode(self) -> bytes:
        return encode(self)


def _name_bytes(name: bytes | str) -> bytes:
    raw = name.encode("utf-8") if isinstance(name, str) else bytes(name)
    if len(raw) > MAX_NAME:
        raise ValueError(f"file name of {len(raw)} bytes exceeds {MAX_NAME}")
    return raw


def file_frame(name: bytes | str, data: Buffer) -> Frame:
    raw = _name_bytes(name)
    return Frame(FILE, _NAME_LEN.pack(len(raw)) + raw + bytes(data))


def encode_header(frame_type: int, length: int) -> bytes:
    """The 8-byte header; ``ValueError`` past the 16 MiB limit, which a
    reference receiver answers by closing without an ACK."""
    if length > MAX_LENGTH:
        raise ValueError(f"frame payload of {length} bytes exceeds {MAX_LENGTH}")
    return _HEADER.pack(frame_type, length)


def encode_file_prefix(name: bytes | str, data_length: int) -> bytes:
    """Header plus name header of a FILE frame whose ``data_length`` data
    bytes the caller streams right after (so the file is never in memory)."""
    raw = _name_bytes(name)
    return encode_header(FILE, 2 + len(raw) + data_length) + _NAME_LEN.pack(len(raw)) + raw


def encode(frame: Frame) -> bytes:
    return encode_header(frame.type, len(frame.payload)) + frame.payload


def decode_header(data: Buffer) -> tuple[int, int]:
    """``(type, length)`` from the first 8 bytes."""
    if len(data) < HEADER_LEN:
        raise DecodeError(f"data-exchange header needs 8 bytes, got {len(data)}", "truncated")
    frame_type, length = _HEADER.unpack_from(data)
    if length > MAX_LENGTH:
        raise DecodeError(f"frame too large: {length}", "oversize")
    return frame_type, length


def decode(data: Buffer) -> Frame:
    """Exactly one frame: truncation and trailing bytes are errors."""
    frame_type, length = decode_header(data)
    if len(data) != HEADER_LEN + length:
        code = "truncated" if len(data) < HEADER_LEN + length else "trailing"
        raise DecodeError(f"frame announces {length} payload bytes, {len(data) - HEADER_LEN} present", code)
    return Frame(frame_type, bytes(data[HEADER_LEN:]))


def ack(frame_type: int, data_length: int) -> Frame:
    """The receiver's answer to a saved frame: ``ACK TEXT 5 bytes``."""
    return Frame(TEXT, f"ACK {type_name(frame_type)} {data_length} bytes".encode())


def save_failed(frame_type: int, error: str) -> Frame:
    """The answer when saving failed: ``ERR FILE save failed: <error>``."""
    return Frame(TEXT, f"ERR {type_name(frame_type)} save failed: {error}".encode())


@dataclass(frozen=True, slots=True)
class FrameStart:
    """A frame begins: ``data_length`` data bytes follow as :class:`FrameData`
    (for FILE, after the name; ``filename`` is ``b""`` when there is none)."""

    type: int
    length: int
    filename: bytes
    data_length: int


@dataclass(frozen=True, slots=True)
class FrameData:
    data: Buffer


@dataclass(frozen=True, slots=True)
class FrameEnd:
    type: int


Event = Union[FrameStart, FrameData, FrameEnd]


class StreamReader:
    """Incremental frame parser that streams payloads instead of holding them.

    ``feed`` returns the events the new bytes complete. Only the header and a
    FILE name (at most 65535 bytes) are buffered; data is passed on as slices
    of what was fed. :attr:`at_boundary` tells whether EOF now is clean.
    """

    __slots__ = ("_max", "_buf", "_type", "_length", "_remaining", "_state", "_error")

    # States: waiting for the header, a FILE's name length, its name, or data.
    _S_HEADER, _S_NAME_LEN, _S_NAME, _S_DATA = range(4)

    def __init__(self, max_length: int = MAX_LENGTH) -> None:
        self._max = max_length
        self._buf = bytearray()
        self._type = 0
        self._length = 0
        self._remaining = 0
        self._state = self._S_HEADER
        self._error: DecodeError | None = None

    @property
    def at_boundary(self) -> bool:
        return self._state == self._S_HEADER and not self._buf

    def feed(self, data: Buffer) -> list[Event]:
        """Events completed by ``data``. A bad header after complete frames
        in the same chunk does not lose them: they are returned and the
        error is raised by the next call (``feed(b"")`` will do)."""
        if self._error is not None:
            raise self._error
        events: list[Event] = []
        try:
            self._feed(data, events)
        except DecodeError as exc:
            if not events:
                raise
            self._error = exc
        return events

    def _feed(self, data: Buffer, events: list[Event]) -> None:
        view = memoryview(data) if not isinstance(data, memoryview) else data
        pos = 0
        while True:
            if self._state == self._S_DATA:
                if self._remaining:
                    take = min(self._remaining, len(view) - pos)
                    if take == 0:
                        return
                    events.append(FrameData(data[pos : pos + take]))
                    pos += take
                    self._remaining -= take
                if self._remaining == 0:
                    events.append(FrameEnd(self._type))
                    self._state = self._S_HEADER
                continue
            need = (HEADER_LEN, 2, self._remaining)[self._state]
            take = min(need - len(self._buf), len(view) - pos)
            self._buf += view[pos : pos + take]
            pos += take
            if len(self._buf) < need:
                return
            self._advance(events)

    def _advance(self, events: list[Event]) -> None:
        buf, self._buf = bytes(self._buf), bytearray()
        if self._state == self._S_HEADER:
            self._type, self._length = decode_header(buf)
            if self._length > self._max:
                raise DecodeError(f"frame too large: {self._length}", "oversize")
            if self._type == FILE and self._length >= 2:
                self._state = self._S_NAME_LEN
                return
            self._start(events, b"", self._length)
        elif self._state == self._S_NAME_LEN:
            (n,) = _NAME_LEN.unpack(buf)
            if n + 2 > self._length:  # no name: the two bytes are data
                self._start(events, b"", self._length)
                events.append(FrameData(buf))
                self._remaining -= 2
            else:
                self._state, self._remaining = self._S_NAME, n
        else:  # the name is complete
            self._start(events, buf, self._length - 2 - len(buf))

    def _start(self, events: list[Event], name: bytes, data_length: int) -> None:
        events.append(FrameStart(self._type, self._length, name, data_length))
        self._state, self._remaining = self._S_DATA, data_length


class FrameAssembler:
    """Incremental parser returning whole frames (payload held in memory);
    ``max_length`` bounds what one frame may make us buffer. Like
    :class:`StreamReader`, frames before a bad header in the same chunk are
    returned and the error is raised by the next call."""

    __slots__ = ("_max", "_buf", "_error")

    def __init__(self, max_length: int = MAX_LENGTH) -> None:
        self._max = max_length
        self._buf = bytearray()
        self._error: DecodeError | None = None

    @property
    def at_boundary(self) -> bool:
        return not self._buf

    def feed(self, data: Buffer) -> list[Frame]:
        if self._error is not None:
            raise self._error
        self._buf += data
        frames: list[Frame] = []
        while len(self._buf) >= HEADER_LEN:
            try:
                frame_type, length = decode_header(self._buf)
                if length > self._max:
                    raise DecodeError(f"frame too large: {length}", "oversize")
            except DecodeError as exc:
                self._error = exc
                if frames:
                    break
                raise
            end = HEADER_LEN + length
            if len(self._buf) < end:
                break
            frames.append(Frame(frame_type, bytes(self._buf[HEADER_LEN:end])))
            del self._buf[:end]
        return frames
