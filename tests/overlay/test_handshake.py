"""Trust handshake message (trust-and-ipc.md §A1.1-A1.4, A3.4 vector, Q1/Q3/D-1/D-6)."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from pilotgw.overlay import handshake
from pilotgw.overlay.errors import DecodeError
from pilotgw.overlay.handshake import HandshakeMsg

KEY = Ed25519PrivateKey.from_private_bytes(b"\x07" * 32)
PUBLIC_B64 = "6kpsY+KcUgq+9VB7Ey7F+ZVHdq6+vnuSQh7qaRRG0iw="
SIG_7_TO_9 = "UmX1lowfIVN36r7KP1ZDBzkITiRCA46F6LieFn5jqeM/AtNOKDXHPD0rKRfw8fA8i49yX723GJK9vex/Alf6AQ=="
EXAMPLE = (
    b'{"type":"handshake_request","node_id":7,"public_key":"6kpsY+KcUgq+9VB7Ey7F+ZVHdq6+vnuSQh7qaRRG0iw=",'
    b'"justification":"hi","signature":"UmX1lowfIVN36r7KP1ZDBzkITiRCA46F6LieFn5jqeM/AtNOKDXHPD0rKRfw8fA8i49yX723GJK9vex/'
    b'Alf6AQ==","reason":"","timestamp":1736944496}'
)
NOW = 1736944496


def test_reference_example_byte_exact() -> None:
    msg = handshake.build(handshake.REQUEST, 7, 9, KEY, NOW + 0.9, justification="hi")
    assert msg.public_key == PUBLIC_B64
    assert msg.signature == SIG_7_TO_9
    assert msg.timestamp == NOW
    assert handshake.encode(msg) == EXAMPLE


def test_reference_example_decodes_and_verifies() -> None:
    msg = handshake.decode(EXAMPLE)
    assert msg == HandshakeMsg(handshake.REQUEST, 7, PUBLIC_B64, "hi", SIG_7_TO_9, "", NOW)
    handshake.verify(msg, 9)
    handshake.check_fresh(msg, NOW)


def test_rv_tv1_handshake_signature() -> None:
    msg = handshake.build(handshake.REQUEST, 5, 9, KEY, NOW)
    assert msg.signature == (
        "GEwYY2cCT8ncgwxFFC9eZAwgDkAQgGPpsUiDx5iDbecDXbt9nYvTxwfQhGPFTVhNbCV7vCKiIcL0voG5Cad7CQ=="
    )


def test_challenge_text() -> None:
    assert handshake.challenge(7, 9) == b"handshake:7:9"
    assert handshake.challenge(4294967295, 0) == b"handshake:4294967295:0"


def test_all_seven_keys_in_order_even_when_empty() -> None:
    assert handshake.encode(HandshakeMsg(handshake.ACCEPT, 5)) == (
        b'{"type":"handshake_accept","node_id":5,"public_key":"","justification":"","signature":"",'
        b'"reason":"","timestamp":0}'
    )


@pytest.mark.parametrize(
    "kind, justification, reason",
    [
        (handshake.REQUEST, "please", ""),
        (handshake.ACCEPT, "", ""),
        (handshake.REJECT, "", "no thanks"),
        (handshake.REVOKE, "", "trust revoked"),
    ],
)
def test_fields_filled_per_type(kind: str, justification: str, reason: str) -> None:
    msg = handshake.build(
        kind,
        7,
        9,
        KEY,
        NOW,
        justification=justification if kind == handshake.REQUEST else "",
        reason=reason if kind == handshake.REJECT else "",
    )
    assert (msg.justification, msg.reason) == (justification, reason)
    assert msg.signature == SIG_7_TO_9  # the same string is signed for all types
    handshake.verify(msg, 9)


def test_build_refuses_texts_the_type_does_not_carry() -> None:
    with pytest.raises(ValueError):
        handshake.build(handshake.ACCEPT, 7, 9, KEY, NOW, justification="x")
    with pytest.raises(ValueError):
        handshake.build(handshake.REQUEST, 7, 9, KEY, NOW, reason="x")
    with pytest.raises(ValueError):
        handshake.build("handshake_hello", 7, 9, KEY, NOW)


def test_html_characters_escaped_like_go() -> None:
    msg = handshake.build(handshake.REQUEST, 7, 9, KEY, NOW, justification="<b>&")
    assert b'"justification":"\\u003cb\\u003e\\u0026"' in handshake.encode(msg)


def test_send_size_limit() -> None:
    # D-6: the fixed part is at most 266 bytes, leaving 3830 for the escaped justification.
    fixed = handshake.build(handshake.REQUEST, 4294967295, 9, KEY, 9999999999)
    assert len(handshake.encode(fixed)) <= 266
    room = handshake.MAX_SEND - len(handshake.encode(fixed))
    fits = handshake.build(handshake.REQUEST, 4294967295, 9, KEY, 9999999999, justification="x" * room)
    assert len(handshake.encode_for_send(fits)) == 4096
    too_big = handshake.build(handshake.REQUEST, 7, 9, KEY, NOW, justification="x" * 4000)
    with pytest.raises(ValueError, match=r"^message too large \(max 4096 bytes\)$"):
        handshake.encode_for_send(too_big)


def test_reading_rules_missing_unknown_case_insensitive() -> None:
    msg = handshake.decode(b'{"TYPE":"handshake_reject","Node_Id":3,"extra":{"x":[1,2]},"reason":null}')
    assert msg == HandshakeMsg(handshake.REJECT, 3)
    # a later duplicate wins, as in Go
    assert handshake.decode(b'{"node_id":1,"node_id":2}').node_id == 2
    # Go's simple folding: U+017F matches "s"
    assert handshake.decode('{"\u017fignature":"x"}'.encode()).signature == "x"


def test_unknown_type_decodes() -> None:
    assert handshake.decode(b'{"type":"handshake_ping"}').type == "handshake_ping"


@pytest.mark.parametrize(
    "body",
    [
        b'{"node_id":5.0}',
        b'{"node_id":5e0}',
        b'{"node_id":"5"}',
        b'{"node_id":-1}',
        b'{"node_id":-0}',
        b'{"node_id":4294967296}',
        b'{"timestamp":9223372036854775808}',
        b'{"timestamp":1.5}',
        b'{"type":5}',
        b'{"public_key":true}',
        b'{"node_id":NaN}',
        b'[]',
        b'"handshake_request"',
        b'{"type":"handshake_request"',
        b'{"type":"handshake_request"} x',
        b"",
        b"\xff",
    ],
)
def test_strict_decoding(body: bytes) -> None:
    with pytest.raises(DecodeError):
        handshake.decode(body)


def test_negative_timestamp_allowed_but_stale() -> None:
    msg = handshake.decode(b'{"timestamp":-0}')
    assert msg.timestamp == 0
    with pytest.raises(DecodeError):
        handshake.check_fresh(msg, NOW)


def test_invalid_utf8_becomes_replacement_per_byte() -> None:
    assert handshake.decode(b'{"justification":"a\xe2\x82b"}').justification == "a\ufffd\ufffdb"


def test_freshness_window() -> None:
    msg = HandshakeMsg(handshake.REQUEST, 7, timestamp=NOW)
    handshake.check_fresh(msg, NOW + 300)
    handshake.check_fresh(msg, NOW - 30)
    for now in (NOW + 300.5, NOW - 30.5):
        with pytest.raises(DecodeError) as info:
            handshake.check_fresh(msg, now)
        assert info.value.code == "stale"
    with pytest.raises(DecodeError):
        handshake.check_fresh(HandshakeMsg(handshake.REQUEST, 7, timestamp=0), 10)


def test_verify_rejects_wrong_receiver_sender_key_and_unsigned() -> None:
    msg = handshake.build(handshake.REQUEST, 7, 9, KEY, NOW)
    with pytest.raises(DecodeError) as info:
        handshake.verify(msg, 10)
    assert info.value.code == "auth"
    forged = HandshakeMsg(msg.type, 8, msg.public_key, "", msg.signature, "", NOW)
    with pytest.raises(DecodeError):
        handshake.verify(forged, 9)
    other = Ed25519PrivateKey.from_private_bytes(b"\x08" * 32)
    swapped = handshake.build(handshake.REQUEST, 7, 9, other, NOW)
    with pytest.raises(DecodeError):
        handshake.verify(HandshakeMsg(msg.type, 7, msg.public_key, "", swapped.signature, "", NOW), 9)
    # D-1: an empty key is not "skip the check".
    with pytest.raises(DecodeError):
        handshake.verify(HandshakeMsg(msg.type, 7, "", "", "", "", NOW), 9)
    for key, sig in [("not base64!", msg.signature), (msg.public_key, "AAAA"), (msg.public_key[:-1], msg.signature)]:
        with pytest.raises(DecodeError):
            handshake.verify(HandshakeMsg(msg.type, 7, key, "", sig, "", NOW), 9)


def test_public_key_bytes() -> None:
    msg = handshake.decode(EXAMPLE)
    assert handshake.public_key_bytes(msg) == base64.b64decode(PUBLIC_B64)


def test_replay_key_is_canonical() -> None:
    a = handshake.decode(EXAMPLE)
    b = handshake.decode(b" " + EXAMPLE.replace(b'"node_id"', b'"NODE_ID"') + b"\n")
    assert handshake.replay_key(a) == handshake.replay_key(b)
    c = HandshakeMsg(a.type, a.node_id, a.public_key, a.justification, a.signature, a.reason, a.timestamp + 1)
    assert handshake.replay_key(a) != handshake.replay_key(c)


def test_assembler_accepts_multi_segment_message() -> None:
    asm = handshake.Assembler()
    results = [asm.feed(EXAMPLE[i : i + 7]) for i in range(0, len(EXAMPLE), 7)]
    assert results[-1] == handshake.decode(EXAMPLE)
    assert all(r is None for r in results[:-1])
    asm = handshake.Assembler()
    assert asm.feed(EXAMPLE[:100]) is None
    assert asm.feed(EXAMPLE[100:]) == handshake.decode(EXAMPLE)
    assert asm.done and asm.feed(b"more") is None


def test_assembler_braces_inside_strings_and_trailing_bytes() -> None:
    body = b'  {"type":"handshake_reject","reason":"}{\\"}","node_id":4}'
    asm = handshake.Assembler()
    assert asm.feed(body[:30]) is None
    assert asm.feed(body[30:] + b"{garbage") == HandshakeMsg(handshake.REJECT, 4, reason='}{"}')


def test_assembler_errors() -> None:
    with pytest.raises(DecodeError):
        handshake.Assembler().feed(b"[1]")
    asm = handshake.Assembler(limit=100)
    with pytest.raises(DecodeError) as info:
        asm.feed(b'{"justification":"' + b"x" * 200)
    assert info.value.code == "oversize"
    asm = handshake.Assembler()
    asm.feed(EXAMPLE[:50])
    with pytest.raises(DecodeError):
        asm.eof()


messages = st.builds(
    HandshakeMsg,
    type=st.sampled_from(handshake.TYPES) | st.text(max_size=20),
    node_id=st.integers(0, 2**32 - 1),
    public_key=st.text(max_size=50),
    justification=st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=100),
    signature=st.text(max_size=100),
    reason=st.text(max_size=30),
    timestamp=st.integers(-(2**63), 2**63 - 1),
)


@settings(max_examples=300)
@given(messages)
def test_round_trip(msg: HandshakeMsg) -> None:
    assert handshake.decode(handshake.encode(msg)) == msg
    asm = handshake.Assembler()
    data = handshake.encode(msg)
    got = asm.feed(data[: len(data) // 2]) or asm.feed(data[len(data) // 2 :])
    assert got == msg


@settings(max_examples=500)
@given(st.binary(max_size=300))
def test_random_bytes_value_or_decode_error(data: bytes) -> None:
    try:
        handshake.decode(data)
    except DecodeError:
        pass
    try:
        handshake.Assembler().feed(data)
    except DecodeError:
        pass


@settings(max_examples=500)
@given(st.data())
def test_mutated_example_value_or_decode_error(data: st.DataObject) -> None:
    wire = bytearray(EXAMPLE)
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(wire) - 1))
        wire[i] = data.draw(st.sampled_from(b'{}[]":,.-e05\\ \xff\x00a'))
    try:
        msg = handshake.decode(bytes(wire))
    except DecodeError:
        return
    assert 0 <= msg.node_id < 2**32
    try:
        handshake.verify(msg, 9)
    except DecodeError:
        pass
