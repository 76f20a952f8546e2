"""Typed messages (data exchange, port 1001) and events (event stream, port
1002) as the client sends them: framing and ACK parsing shared by
:class:`~pilotgw.client.aio.Client`, :class:`~pilotgw.client.sync.SyncClient`
and ``pilotctl`` (services-and-cli.md §A3, §A4). No I/O here.
"""

from __future__ import annotations

import json
from collections import deque
from typing import Any

from pilotgw.client.errors import ConnectionFailed, InvalidArgument, ProtocolError
from pilotgw.overlay import dataexchange as dx
from pilotgw.overlay import eventstream
from pilotgw.overlay.errors import DecodeError

#: ``pilotctl send-message --type`` names → frame types.
MESSAGE_TYPES = {"text": dx.TEXT, "binary": dx.BINARY, "json": dx.JSON}
#: How long a sender waits for the receiver's ACK frame.
ACK_TIMEOUT = 30.0
#: Bytes asked for per read of a message or event stream.
READ_CHUNK = 64 * 1024
#: An ACK is a short TEXT frame; anything longer is not one.
_ACK_LIMIT = 64 * 1024


def message_kind(data: Any, kind: str | None) -> str:
    """``kind`` if given, else from the value: ``str`` → text, bytes-like →
    binary, anything else (dict, list, number...) → json."""
    if kind is not None:
        if kind not in MESSAGE_TYPES:
            raise InvalidArgument(f'unknown type "{kind}" (use text, json, or binary)')
        return kind
    if isinstance(data, str):
        return "text"
    if isinstance(data, (bytes, bytearray, memoryview)):
        return "binary"
    return "json"


def message_payload(data: Any, kind: str) -> bytes:
    """The bytes sent for ``data``: text as UTF-8, bytes unchanged, other
    values as compact JSON (a ``str`` sent as json is taken as already
    encoded, like ``pilotctl send-message --type json``)."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        payload = bytes(data)
    elif isinstance(data, str):
        payload = data.encode("utf-8")
    elif kind == "json":
        try:
            payload = json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        except (TypeError, ValueError) as exc:
            raise InvalidArgument(f"message is not JSON-serialisable: {exc}") from None
    else:
        raise InvalidArgument(f"a {kind} message needs str or bytes, not {type(data).__name__}")
    if len(payload) > dx.MAX_LENGTH:
        raise InvalidArgument(f"message too large: {len(payload)} bytes (max {dx.MAX_LENGTH})")
    return payload


def message_frame(kind: str, payload: bytes) -> bytes:
    return dx.encode_header(MESSAGE_TYPES[kind], len(payload)) + payload


class AckReader:
    """Collects the receiver's first frame (the ACK, a TEXT frame, Q1)."""

    def __init__(self) -> None:
        self._frames = dx.FrameAssembler(max_length=_ACK_LIMIT)

    def feed(self, data: bytes) -> str | None:
        """The ACK text once a whole frame arrived, else ``None``; a stream
        that cannot be an ACK raises :class:`ProtocolError`."""
        try:
            frames = self._frames.feed(data)
        except DecodeError as exc:
            raise ProtocolError(f"bad acknowledgement frame: {exc}") from None
        return frames[0].payload.decode("utf-8", "replace") if frames else None


class EventQueue:
    """Events parsed from one subscription's byte stream, shared by the
    asyncio and the blocking subscription (they differ only in how they read).

    :meth:`feed` takes what one read returned: an empty read means the broker
    closed the stream (:class:`ConnectionFailed`); bytes that are not events
    raise :class:`ProtocolError` (the caller closes the connection)."""

    def __init__(self, target: object) -> None:
        self.target = target
        self._parser = eventstream.EventReader()
        self._ready: deque[eventstream.Event] = deque()

    def __bool__(self) -> bool:
        return bool(self._ready)

    def feed(self, data: bytes) -> None:
        if not data:
            raise ConnectionFailed(f"event stream from {self.target} ended")
        try:
            self._ready.extend(self._parser.feed(data))
        except ValueError as exc:
            raise ProtocolError(f"bad event from {self.target}: {exc}") from None

    def pop(self) -> eventstream.Event:
        return self._ready.popleft()


def publish_frames(topic: str, payload: bytes) -> bytes:
    """What ``publish`` writes: the subscription the broker expects first
    (Q4), then the event."""
    try:
        return eventstream.subscribe(topic) + eventstream.encode(eventstream.Event(topic, payload))
    except ValueError as exc:
        raise InvalidArgument(f"publish: {exc}") from None


def subscribe_frame(topic: str) -> bytes:
    try:
        return eventstream.subscribe(topic)
    except ValueError as exc:
        raise InvalidArgument(f"subscribe: {exc}") from None


def as_payload(data: str | bytes | bytearray | memoryview) -> bytes:
    return data.encode("utf-8") if isinstance(data, str) else bytes(data)
