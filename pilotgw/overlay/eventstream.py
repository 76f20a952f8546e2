"""Event-stream (pub/sub) events on virtual port 1002 (services-and-cli.md §A4.1-A4.3).

``topic_len u16 | topic | payload_len u32 | payload``, the same layout in
both directions. The first event on a connection is its subscription (its
payload is ignored), every later one a publish.

Topics are compared byte for byte. They are held as ``str`` decoded with
``surrogateescape``, so any byte string round-trips and ``str`` equality is
exactly byte equality.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Generic, Hashable, TypeVar, Union

from pilotgw.overlay.errors import DecodeError

MAX_TOPIC = 1024
MAX_PAYLOAD = 1 << 24  # exactly 16 MiB is allowed
WILDCARD = "*"

_TOPIC_LEN = struct.Struct(">H")
_PAYLOAD_LEN = struct.Struct(">I")

Buffer = Union[bytes, bytearray, memoryview]


def _topic_bytes(topic: str) -> bytes:
    return topic.encode("utf-8", "surrogateescape")


def _topic_text(raw: Buffer) -> str:
    return bytes(raw).decode("utf-8", "surrogateescape")


@dataclass(frozen=True, slots=True)
class Event:
    topic: str
    payload: bytes = b""

    def encode(self) -> bytes:
        return encode(self)

    @property
    def topic_bytes(self) -> bytes:
        return _topic_bytes(self.topic)


def encode(event: Event) -> bytes:
    """One event as one write. ``ValueError`` for a topic over 1024 bytes or
    a payload over 16 MiB, which a reference reader would refuse."""
    topic = _topic_bytes(event.topic)
    if len(topic) > MAX_TOPIC:
        raise ValueError(f"topic of {len(topic)} bytes exceeds {MAX_TOPIC}")
    if len(event.payload) > MAX_PAYLOAD:
        raise ValueError(f"payload of {len(event.payload)} bytes exceeds {MAX_PAYLOAD}")
    return b"".join((_TOPIC_LEN.pack(len(topic)), topic, _PAYLOAD_LEN.pack(len(event.payload)), event.payload))


def subscribe(topic: str) -> bytes:
    """The subscription a client sends first: the topic, empty payload."""
    return encode(Event(topic))


def _parse(data: Buffer) -> tuple[Event, int] | None:
    """The first event in ``data`` and its size, or ``None`` if incomplete.
    Length limits are checked as soon as each length field is present."""
    if len(data) < 2:
        return None
    (topic_len,) = _TOPIC_LEN.unpack_from(data)
    if topic_len > MAX_TOPIC:
        raise DecodeError(f"topic too long: {topic_len}", "oversize")
    head = 2 + topic_len + 4
    if len(data) < head:
        return None
    (payload_len,) = _PAYLOAD_LEN.unpack_from(data, head - 4)
    if payload_len > MAX_PAYLOAD:
        raise DecodeError(f"payload too large: {payload_len}", "oversize")
    end = head + payload_len
    if len(data) < end:
        return None
    return Event(_topic_text(data[2 : 2 + topic_len]), bytes(data[head:end])), end


def decode(data: Buffer) -> Event:
    """Exactly one event: truncation and trailing bytes are errors."""
    parsed = _parse(data)
    if parsed is None:
        raise DecodeError(f"event truncated at {len(data)} bytes", "truncated")
    event, size = parsed
    if size != len(data):
        raise DecodeError(f"{len(data) - size} bytes after the event", "trailing")
    return event


class EventReader:
    """Incremental parser: feed received chunks, get whole events back.

    Events completed before an over-limit length in the same chunk are
    returned; the error is raised by the next call (``feed(b"")`` will do).
    """

    __slots__ = ("_buf", "_error")

    def __init__(self) -> None:
        self._buf = bytearray()
        self._error: DecodeError | None = None

    @property
    def at_boundary(self) -> bool:
        return not self._buf

    def feed(self, data: Buffer) -> list[Event]:
        if self._error is not None:
            raise self._error
        self._buf += data
        events: list[Event] = []
        try:
            while (parsed := _parse(self._buf)) is not None:
                event, size = parsed
                events.append(event)
                del self._buf[:size]
        except DecodeError as exc:
            self._error = exc
            if not events:
                raise
        return events


def matches(subscription: str, topic: str) -> bool:
    """Whether a subscriber to ``subscription`` receives an event published
    to ``topic``: the exact topic, or the ``*`` wildcard (which receives an
    event published to ``*`` once, like any exact match)."""
    return subscription == topic or subscription == WILDCARD


C = TypeVar("C", bound=Hashable)


class Subscriptions(Generic[C]):
    """Who is subscribed to what: one topic per connection (A4.2).

    Sans-IO bookkeeping for the broker; ``C`` is whatever identifies a
    connection. Recipients come back in subscription order.
    """

    __slots__ = ("_topic_of", "_by_topic")

    def __init__(self) -> None:
        self._topic_of: dict[C, str] = {}
        self._by_topic: dict[str, dict[C, None]] = {}

    def __len__(self) -> int:
        return len(self._topic_of)

    def __contains__(self, conn: object) -> bool:
        return conn in self._topic_of

    def topic_of(self, conn: C) -> str | None:
        return self._topic_of.get(conn)

    def add(self, conn: C, topic: str) -> None:
        """Subscribe ``conn`` (replacing an earlier subscription of it)."""
        self.remove(conn)
        self._topic_of[conn] = topic
        self._by_topic.setdefault(topic, {})[conn] = None

    def remove(self, conn: C) -> str | None:
        """Forget ``conn``; returns the topic it was subscribed to."""
        topic = self._topic_of.pop(conn, None)
        if topic is not None:
            members = self._by_topic[topic]
            del members[conn]
            if not members:
                del self._by_topic[topic]
        return topic

    def recipients(self, topic: str, sender: C | None = None) -> list[C]:
        """Subscribers to ``topic``, then ``*`` subscribers unless the topic
        is ``*`` itself; never the sender. A list, so the caller may drop
        dead subscribers while fanning out."""
        out = [conn for conn in self._by_topic.get(topic, ()) if conn != sender]
        if topic != WILDCARD:
            out += [conn for conn in self._by_topic.get(WILDCARD, ()) if conn != sender]
        return out
