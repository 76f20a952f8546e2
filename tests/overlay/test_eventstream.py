"""Event-stream events and topic matching (services-and-cli.md §A4.1-A4.3)."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pilotgw.overlay import eventstream as es
from pilotgw.overlay.errors import DecodeError
from pilotgw.overlay.eventstream import Event

SUBSCRIBE_NEWS = bytes.fromhex("0004 6E657773 00000000".replace(" ", ""))


def test_subscribe_example() -> None:
    assert es.subscribe("news") == SUBSCRIBE_NEWS
    assert es.decode(SUBSCRIBE_NEWS) == Event("news", b"")


def test_layout() -> None:
    assert Event("t", b"xyz").encode() == b"\x00\x01t\x00\x00\x00\x03xyz"


def test_limits() -> None:
    es.decode(struct.pack(">H", 1024) + b"a" * 1024 + b"\0\0\0\0")
    with pytest.raises(DecodeError, match=r"^topic too long: 1025$"):
        es.decode(struct.pack(">H", 1025) + b"a" * 1025 + b"\0\0\0\0")
    with pytest.raises(DecodeError, match=r"^payload too large: 16777217$"):
        es.decode(b"\x00\x01t" + struct.pack(">I", (1 << 24) + 1))
    with pytest.raises(ValueError):
        es.encode(Event("a" * 1025))


def test_oversize_detected_before_the_payload_arrives() -> None:
    reader = es.EventReader()
    with pytest.raises(DecodeError):
        reader.feed(b"\x04\x01")  # topic_len 1025: no need to wait for 1025 bytes
    with pytest.raises(DecodeError):
        es.EventReader().feed(b"\x00\x01t\xff\xff\xff\xff")


def test_truncated_and_trailing() -> None:
    wire = Event("news", b"hello").encode()
    for n in range(len(wire)):
        with pytest.raises(DecodeError):
            es.decode(wire[:n])
    with pytest.raises(DecodeError):
        es.decode(wire + b"\0")


def test_topics_are_bytes_exact() -> None:
    raw = b"\x00\x02\xff\xfe\x00\x00\x00\x00"
    event = es.decode(raw)
    assert event.topic_bytes == b"\xff\xfe"
    assert event.encode() == raw
    assert not es.matches("News", "news")


def test_reader_any_chunking() -> None:
    stream = SUBSCRIBE_NEWS + Event("news", b"a" * 100).encode() + Event("*", b"").encode()
    reader = es.EventReader()
    got = []
    for i in range(len(stream)):
        got += reader.feed(stream[i : i + 1])
    assert got == [Event("news"), Event("news", b"a" * 100), Event("*")]
    assert reader.at_boundary


def test_matching_rules() -> None:
    assert es.matches("news", "news")
    assert es.matches("*", "news")
    assert es.matches("*", "*")
    assert not es.matches("news", "*")
    assert not es.matches("new", "news")
    assert not es.matches("news.*", "news.x")  # `*` is the only wildcard


def test_recipients() -> None:
    subs: es.Subscriptions[str] = es.Subscriptions()
    subs.add("a", "news")
    subs.add("b", "*")
    subs.add("c", "news")
    subs.add("d", "other")
    assert subs.recipients("news", sender="a") == ["c", "b"]
    assert subs.recipients("news") == ["a", "c", "b"]
    assert subs.recipients("*") == ["b"]  # once, only wildcard subscribers
    assert subs.recipients("*", sender="b") == []
    assert subs.recipients("nobody") == ["b"]
    assert subs.remove("a") == "news" and subs.remove("a") is None
    subs.add("c", "other")  # one topic per connection
    assert subs.recipients("news") == ["b"]
    assert subs.topic_of("c") == "other" and len(subs) == 3 and "d" in subs


def test_recipients_list_survives_removal_during_fan_out() -> None:
    subs: es.Subscriptions[int] = es.Subscriptions()
    for conn in range(5):
        subs.add(conn, "t")
    for conn in subs.recipients("t"):
        subs.remove(conn)
    assert len(subs) == 0


events = st.builds(Event, st.binary(max_size=60).map(lambda b: b.decode("utf-8", "surrogateescape")), st.binary(max_size=300))


@settings(max_examples=300)
@given(events)
def test_round_trip(event: Event) -> None:
    assert es.decode(es.encode(event)) == event


@settings(max_examples=300)
@given(st.lists(events, max_size=5), st.integers(1, 40))
def test_reader_round_trip(evs: list[Event], step: int) -> None:
    stream = b"".join(e.encode() for e in evs)
    reader = es.EventReader()
    got = []
    for i in range(0, len(stream), step):
        got += reader.feed(stream[i : i + step])
    assert got == evs


@settings(max_examples=500)
@given(st.binary(max_size=200))
def test_random_bytes_value_or_decode_error(data: bytes) -> None:
    for parse in (es.decode, es.EventReader().feed):
        try:
            parse(data)
        except DecodeError:
            pass


def test_reader_returns_events_before_a_bad_length_then_fails() -> None:
    reader = es.EventReader()
    assert reader.feed(SUBSCRIBE_NEWS + b"\x04\x01") == [Event("news")]
    with pytest.raises(DecodeError, match="topic too long: 1025"):
        reader.feed(b"")
