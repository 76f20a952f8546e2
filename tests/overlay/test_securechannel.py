"""Port-443 secure channel: TV-8 records and the strict reader of T-D18."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from pilotgw.overlay import crypto, securechannel
from pilotgw.overlay.errors import DecodeError
from pilotgw.overlay.securechannel import Role, SecureChannel

SECURE_KEY = bytes.fromhex("fceec3b9f3b38f657e6666f147dd479de04819c6a45d86da355620a43a3772e0")
TV8_CLIENT_HELLO = bytes.fromhex("000000210000000200000000000000015c1d7918b3fa98d0cdb66f4e6173f01481b305aa4b")
TV8_SERVER_EMPTY = bytes.fromhex("0000001c000000010000000000000001c6b9b81cec6df3a9d1fb631122fafee2")


def _channels() -> tuple[SecureChannel, SecureChannel]:
    return SecureChannel(Role.CLIENT, SECURE_KEY), SecureChannel(Role.SERVER, SECURE_KEY)


def _error(channel: SecureChannel, data: bytes) -> str:
    with pytest.raises(DecodeError) as exc:
        channel.receive(data)
    return exc.value.code


def test_tv8_records() -> None:
    client, server = _channels()
    assert client.seal(b"hello") == TV8_CLIENT_HELLO
    assert server.seal(b"") == TV8_SERVER_EMPTY
    client2, server2 = _channels()
    assert server2.receive(TV8_CLIENT_HELLO) == [b"hello"]
    assert client2.receive(TV8_SERVER_EMPTY) == [b""]


def test_handshake_derives_the_tv4_key() -> None:
    a = X25519PrivateKey.from_private_bytes(bytes(range(0x00, 0x20)))
    b = X25519PrivateKey.from_private_bytes(bytes(range(0x20, 0x40)))
    client = SecureChannel.from_handshake(Role.CLIENT, a, crypto.x25519_public_bytes(b))
    server = SecureChannel.from_handshake(Role.SERVER, b, crypto.x25519_public_bytes(a))
    assert client.seal(b"hello") == TV8_CLIENT_HELLO
    assert server.receive(TV8_CLIENT_HELLO) == [b"hello"]
    with pytest.raises(DecodeError) as exc:
        SecureChannel.from_handshake(Role.CLIENT, a, bytes(32))
    assert exc.value.code == "weak_key"


def test_both_directions_and_counters() -> None:
    client, server = _channels()
    for i in range(5):
        assert server.receive(client.seal(b"c%d" % i)) == [b"c%d" % i]
        assert client.receive(server.seal(b"s%d" % i)) == [b"s%d" % i]
    assert server.receive(client.seal(b"a") + client.seal(b"b") + client.seal(b"")) == [b"a", b"b", b""]


def test_byte_by_byte_delivery() -> None:
    client, server = _channels()
    stream = client.seal(b"x" * 100) + client.seal(b"y")
    got: list[bytes] = []
    for i in range(len(stream)):
        got += server.receive(stream[i : i + 1])
    assert got == [b"x" * 100, b"y"]


def test_replayed_record_breaks_the_channel() -> None:
    client, server = _channels()
    rec = client.seal(b"pay 10")
    assert server.receive(rec) == [b"pay 10"]
    assert _error(server, rec) == "nonce"
    assert server.failed
    assert _error(server, client.seal(b"next")) == "channel_failed"


def test_reordered_or_dropped_record_rejected() -> None:
    client, server = _channels()
    first, second = client.seal(b"1"), client.seal(b"2")
    # Record 2 before record 1: a drop and a reorder look the same to the reader.
    assert _error(server, second) == "nonce"
    assert _error(server, first) == "channel_failed"


def test_reflected_record_rejected() -> None:
    """Our own record sent back to us carries our role prefix, not the peer's."""
    client, _ = _channels()
    assert _error(client, client.seal(b"echo me")) == "nonce"


def test_tampered_record_rejected() -> None:
    _, server = _channels()
    bad = bytearray(TV8_CLIENT_HELLO)
    bad[-1] ^= 1
    assert _error(server, bytes(bad)) == "auth"


@pytest.mark.parametrize("length", [0, 11, 12, 27, securechannel.MAX_RECORD_LEN + 1, 0xFFFFFFFF])
def test_bad_lengths_rejected_before_buffering(length: int) -> None:
    _, server = _channels()
    assert _error(server, length.to_bytes(4, "big")) == "malformed"


def test_largest_record_accepted() -> None:
    client, server = _channels()
    big = bytes(securechannel.MAX_PLAINTEXT)
    rec = client.seal(big)
    assert int.from_bytes(rec[:4], "big") == securechannel.MAX_RECORD_LEN
    assert server.receive(rec) == [big]
    with pytest.raises(ValueError):
        client.seal(big + b"x")


def test_record_codec() -> None:
    rec = securechannel.decode_record(TV8_CLIENT_HELLO + b"tail")
    assert rec is not None
    assert rec.size == len(TV8_CLIENT_HELLO)
    assert securechannel.encode_record(rec.nonce, rec.ciphertext) == TV8_CLIENT_HELLO
    assert securechannel.decode_record(TV8_CLIENT_HELLO[:-1]) is None
    assert securechannel.decode_record(b"\x00\x00") is None


@settings(max_examples=300)
@given(st.lists(st.binary(max_size=300), max_size=6), st.data())
def test_any_split_delivers_the_same_plaintexts(messages: list[bytes], data: st.DataObject) -> None:
    client, server = _channels()
    stream = b"".join(client.seal(m) for m in messages)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=8)))
    got: list[bytes] = []
    prev = 0
    for cut in cuts + [len(stream)]:
        got += server.receive(stream[prev:cut])
        prev = cut
    assert got == messages


@settings(max_examples=300)
@given(st.binary(max_size=200))
def test_random_stream_only_raises_decode_error(data: bytes) -> None:
    _, server = _channels()
    try:
        assert server.receive(data) == []  # nothing random authenticates
    except DecodeError:
        assert server.failed


@settings(max_examples=300)
@given(st.lists(st.tuples(st.integers(0, 36), st.integers(1, 255)), min_size=1, max_size=3))
def test_mutated_record_never_delivers(flips: list[tuple[int, int]]) -> None:
    _, server = _channels()
    rec = bytearray(TV8_CLIENT_HELLO)
    for pos, xor in flips:
        rec[pos] ^= xor
    if rec == TV8_CLIENT_HELLO:
        return
    try:
        assert server.receive(bytes(rec)) == []  # a grown length just waits for more
    except DecodeError:
        assert server.failed
