"""Tunnel frame classification and codecs (§1.2-1.3, TV-5, TV-6)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pilotgw.overlay import packet, tunnel
from pilotgw.overlay.errors import DecodeError
from pilotgw.overlay.tunnel import FrameKind

SYN = bytes.fromhex("11010000000000000001000000000002c00003e800000000000000000200145ed874")
TV5_SYN = bytes.fromhex(
    "50494c5300000001010203040000000000000001fa5b431eeaa32b09574374fde3ea280f360eca05b417c3dd"
    "080cf71fd9e588f468d020a64b0a56c2ba39e231638062c57bec"
)
X_A = bytes.fromhex("8f40c5adb68f25624ae5b214ea767a6ec94d829d3d7b5e1ad1ba6f3e2138285f")
ED_7 = bytes.fromhex("ea4a6c63e29c520abef5507b132ec5f9954776aebebe7b92421eea691446d22c")
SIG = bytes.fromhex(
    "cc09dd9c736782ceff1d51e982364b9627c6a40a034bdd5638686d1006641f27"
    "80cb8cff2ec5909d094d57d2981c39b380701c08968f200b52ac2b7e15512a0e"
)
TV6_PILA = bytes.fromhex("50494c4100000005") + X_A + ED_7 + SIG
TV6_PILK = bytes.fromhex("50494c4b000000058f40c5adb68f25624ae5b214ea767a6ec94d829d3d7b5e1ad1ba6f3e2138285f")


# --- classify ------------------------------------------------------------------


@pytest.mark.parametrize(
    "datagram, kind",
    [
        (b"\x01\x00\x00\x00\x05", FrameKind.BEACON),
        (b"\x06", FrameKind.BEACON),
        (b"\x0f" + b"x" * 10, FrameKind.BEACON),
        (b"PILT" + SYN, FrameKind.PILT),
        (TV5_SYN, FrameKind.PILS),
        (TV6_PILK, FrameKind.PILK),
        (TV6_PILA, FrameKind.PILA),
        (b"PILP", FrameKind.PILP),
    ],
)
def test_classify(datagram: bytes, kind: FrameKind) -> None:
    assert tunnel.classify(datagram) is kind
    assert tunnel.classify(memoryview(datagram)) is kind


@pytest.mark.parametrize(
    "datagram, code",
    [(b"", "empty"), (b"PIL", "truncated"), (b"\x10", "truncated"), (b"PILX", "magic"), (b"pilt" + SYN, "magic")],
)
def test_classify_rejects(datagram: bytes, code: str) -> None:
    with pytest.raises(DecodeError) as exc:
        tunnel.classify(datagram)
    assert exc.value.code == code


# --- PILT ------------------------------------------------------------------------


def test_pilt_round_trip() -> None:
    frame = tunnel.encode_pilt(SYN)
    assert frame == b"PILT" + SYN
    assert tunnel.decode_pilt(frame) == packet.decode(SYN)
    assert tunnel.decode_pilt(bytearray(frame)) == packet.decode(SYN)


def test_pilt_rules() -> None:
    with pytest.raises(DecodeError) as exc:
        tunnel.decode_pilt(b"PILT" + SYN[:-1])  # 37 bytes
    assert exc.value.code == "truncated"
    bad = bytearray(SYN)
    bad[-1] ^= 1
    with pytest.raises(DecodeError) as exc:
        tunnel.decode_pilt(b"PILT" + bytes(bad))
    assert exc.value.code == "checksum"
    with pytest.raises(DecodeError) as exc:
        tunnel.decode_pilt(b"PILS" + SYN)
    assert exc.value.code == "magic"


# --- PILS ------------------------------------------------------------------------


def test_pils_tv5_split() -> None:
    f = tunnel.decode_pils(TV5_SYN)
    assert f.sender_node == 1
    assert f.nonce == bytes.fromhex("010203040000000000000001")
    assert bytes(f.ciphertext) == TV5_SYN[20:]
    assert len(f.ciphertext) == len(SYN) + 16
    assert tunnel.encode_pils(f.sender_node, f.nonce, f.ciphertext) == TV5_SYN


def test_pils_minimum() -> None:
    shortest = b"PILS" + bytes(32)
    assert bytes(tunnel.decode_pils(shortest).ciphertext) == bytes(16)
    with pytest.raises(DecodeError) as exc:
        tunnel.decode_pils(shortest[:-1])
    assert exc.value.code == "truncated"
    with pytest.raises(DecodeError) as exc:
        tunnel.decode_pils(b"PILA" + bytes(32))
    assert exc.value.code == "magic"


def test_pils_encode_rejects_caller_bugs() -> None:
    with pytest.raises(ValueError):
        tunnel.encode_pils(1, bytes(11), bytes(16))
    with pytest.raises(ValueError):
        tunnel.encode_pils(1, bytes(12), bytes(15))
    with pytest.raises(ValueError):
        tunnel.encode_pils(2**32, bytes(12), bytes(16))


# --- PILK / PILA -----------------------------------------------------------------


def test_pilk_tv6() -> None:
    f = tunnel.decode_pilk(TV6_PILK)
    assert f == tunnel.PilkFrame(5, X_A)
    assert f.encode() == TV6_PILK
    assert tunnel.decode_pilk(TV6_PILK + b"extra") == f  # extra bytes ignored
    with pytest.raises(DecodeError):
        tunnel.decode_pilk(TV6_PILK[:-1])


def test_pila_tv6() -> None:
    f = tunnel.decode_pila(TV6_PILA)
    assert f == tunnel.PilaFrame(5, X_A, ED_7, SIG)
    assert len(TV6_PILA) == tunnel.PILA_LEN == 136
    assert f.encode() == TV6_PILA
    assert f.signed_message == bytes.fromhex("6175746800000005") + X_A
    assert tunnel.decode_pila(TV6_PILA + bytes(7)) == f  # extra bytes ignored
    with pytest.raises(DecodeError) as exc:
        tunnel.decode_pila(TV6_PILA[:-1])
    assert exc.value.code == "truncated"
    with pytest.raises(DecodeError) as exc:
        tunnel.decode_pila(b"PILK" + TV6_PILA[4:])
    assert exc.value.code == "magic"


def test_frame_encoders_reject_wrong_sizes() -> None:
    with pytest.raises(ValueError):
        tunnel.PilaFrame(5, X_A[:31], ED_7, SIG).encode()
    with pytest.raises(ValueError):
        tunnel.PilaFrame(5, X_A, ED_7, SIG + b"x").encode()
    with pytest.raises(ValueError):
        tunnel.PilkFrame(-1, X_A).encode()


# --- properties --------------------------------------------------------------------

u32 = st.integers(0, 2**32 - 1)
b32 = st.binary(min_size=32, max_size=32)


@settings(max_examples=300)
@given(u32, b32, b32, st.binary(min_size=64, max_size=64))
def test_pila_round_trip(node: int, x: bytes, ed: bytes, sig: bytes) -> None:
    f = tunnel.PilaFrame(node, x, ed, sig)
    assert tunnel.decode_pila(f.encode()) == f
    assert tunnel.classify(f.encode()) is FrameKind.PILA


@settings(max_examples=300)
@given(u32, b32)
def test_pilk_round_trip(node: int, x: bytes) -> None:
    f = tunnel.PilkFrame(node, x)
    assert tunnel.decode_pilk(f.encode()) == f


@settings(max_examples=300)
@given(u32, st.binary(min_size=12, max_size=12), st.binary(min_size=16, max_size=300))
def test_pils_round_trip(node: int, nonce: bytes, ct: bytes) -> None:
    f = tunnel.decode_pils(tunnel.encode_pils(node, nonce, ct))
    assert (f.sender_node, f.nonce, bytes(f.ciphertext)) == (node, nonce, ct)


DECODERS = [tunnel.classify, tunnel.decode_pilt, tunnel.decode_pils, tunnel.decode_pilk, tunnel.decode_pila]
SAMPLES = [b"PILT" + SYN, TV5_SYN, TV6_PILK, TV6_PILA, b"PILP"]


def _value_or_decode_error(decoder, data: bytes) -> None:  # type: ignore[no-untyped-def]
    try:
        decoder(data)
    except DecodeError as exc:
        assert exc.code
    try:
        decoder(memoryview(data))
    except DecodeError:
        pass


#: Random tails behind every real magic, so the decoders get past the magic check.
after_magic = st.tuples(st.sampled_from([s[:4] for s in SAMPLES]), st.binary(max_size=180)).map(b"".join)


@settings(max_examples=400)
@given(st.sampled_from(DECODERS), st.one_of(st.binary(max_size=200), after_magic))
def test_random_bytes_give_value_or_decode_error(decoder, data: bytes) -> None:  # type: ignore[no-untyped-def]
    _value_or_decode_error(decoder, data)


@settings(max_examples=400)
@given(
    st.sampled_from(DECODERS),
    st.sampled_from(SAMPLES),
    st.lists(st.tuples(st.integers(0, 200), st.integers(0, 255)), max_size=6),
    st.integers(0, 40),
)
def test_mutated_frames_give_value_or_decode_error(decoder, sample: bytes, flips, cut: int) -> None:  # type: ignore[no-untyped-def]
    data = bytearray(sample)
    for pos, val in flips:
        if pos < len(data):
            data[pos] = val
    _value_or_decode_error(decoder, bytes(data[: len(data) - cut] if cut <= 20 else data))
