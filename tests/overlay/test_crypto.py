"""Tunnel crypto: TV-3..TV-6 and the PILS receive rules of T-D2..T-D5, T-D3(c)."""

from __future__ import annotations

import os

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import given, settings
from hypothesis import strategies as st

from pilotgw.overlay import crypto, packet, tunnel
from pilotgw.overlay.crypto import (
    FALLBACK_GRACE,
    MAX_COUNTER,
    MAX_PEER_PREFIXES,
    CryptoStateError,
    InstallResult,
    PeerCrypto,
)
from pilotgw.overlay.errors import DecodeError
from pilotgw.overlay.identity import Identity

PRIV_A = X25519PrivateKey.from_private_bytes(bytes(range(0x00, 0x20)))
PRIV_B = X25519PrivateKey.from_private_bytes(bytes(range(0x20, 0x40)))
PUB_A = bytes.fromhex("8f40c5adb68f25624ae5b214ea767a6ec94d829d3d7b5e1ad1ba6f3e2138285f")
PUB_B = bytes.fromhex("358072d6365880d1aeea329adf9121383851ed21a28e3b75e965d0d2cd166254")
SHARED = bytes.fromhex("9663aa1da97e848a914a436d04163dfbb89178f107f1b5b77ed3854203382854")
TUNNEL_KEY = bytes.fromhex("a0f91c0de6a0e41bdbc12c6cca81d48353003cbf303988fb94e7b8cccd4e0277")
SECURE_KEY = bytes.fromhex("fceec3b9f3b38f657e6666f147dd479de04819c6a45d86da355620a43a3772e0")

SYN = bytes.fromhex("11010000000000000001000000000002c00003e800000000000000000200145ed874")
HELLO = bytes.fromhex("12010005000000000001000000000002c00003e80000000100000001" "01f65ee872c868656c6c6f")
TV5_SYN = bytes.fromhex(
    "50494c5300000001010203040000000000000001fa5b431eeaa32b09574374fde3ea280f360eca05b417c3dd"
    "080cf71fd9e588f468d020a64b0a56c2ba39e231638062c57bec"
)
TV5_HELLO = bytes.fromhex(
    "50494c53000000010102030400000000000000023a80035e43341ab2cdab5dda329d213162be5e9e4c97c0b9"
    "75653c0378f1e1bf620bea749602b36f7e5737411f5e0f47a802da55661abf"
)
ED_7 = bytes.fromhex("ea4a6c63e29c520abef5507b132ec5f9954776aebebe7b92421eea691446d22c")
TV6_PILA = bytes.fromhex(
    "50494c41000000058f40c5adb68f25624ae5b214ea767a6ec94d829d3d7b5e1ad1ba6f3e2138285fea4a6c63"
    "e29c520abef5507b132ec5f9954776aebebe7b92421eea691446d22ccc09dd9c736782ceff1d51e982364b96"
    "27c6a40a034bdd5638686d1006641f2780cb8cff2ec5909d094d57d2981c39b380701c08968f200b52ac2b7e"
    "15512a0e"
)
PREFIX = bytes.fromhex("01020304")


def _pair(prefix_a: bytes | None = None, prefix_b: bytes | None = None) -> tuple[PeerCrypto, PeerCrypto]:
    """Two nodes with installed state for each other: a sends to b."""
    a, b = PeerCrypto(PRIV_A), PeerCrypto(PRIV_B)
    assert a.install(PUB_B, 0.0, prefix_a) is InstallResult.NEW
    assert b.install(PUB_A, 0.0, prefix_b) is InstallResult.NEW
    return a, b


def _open(receiver: PeerCrypto, frame: bytes | bytearray, now: float = 0.0) -> bytes:
    return receiver.open(tunnel.decode_pils(frame), now)


def _code(receiver: PeerCrypto, frame: bytes | bytearray, now: float = 0.0) -> str:
    with pytest.raises(DecodeError) as exc:
        _open(receiver, frame, now)
    return exc.value.code


# --- vectors ---------------------------------------------------------------------------


def test_tv3_x25519() -> None:
    assert crypto.x25519_public_bytes(PRIV_A) == PUB_A
    assert crypto.x25519_public_bytes(PRIV_B) == PUB_B
    assert crypto.x25519_shared(PRIV_A, PUB_B) == SHARED
    assert crypto.x25519_shared(PRIV_B, PUB_A) == SHARED


def test_tv4_derived_keys() -> None:
    assert crypto.tunnel_key(SHARED) == TUNNEL_KEY
    assert crypto.secure_key(SHARED) == SECURE_KEY


def test_tv5_seal_produces_exact_frames() -> None:
    a, _ = _pair(prefix_a=PREFIX)
    assert bytes(a.seal(1, SYN)) == TV5_SYN
    assert bytes(a.seal(1, HELLO)) == TV5_HELLO


def test_tv5_frames_open_to_tv1_packets() -> None:
    b = PeerCrypto(PRIV_B)
    b.install(PUB_A, 0.0)
    syn = packet.decode(_open(b, TV5_SYN))
    hello = packet.decode(_open(b, TV5_HELLO))
    assert (syn.flags, syn.src_node, syn.dst_node, syn.src_port, syn.dst_port, syn.window) == (1, 1, 2, 49152, 1000, 512)
    assert bytes(hello.payload) == b"hello" and hello.seq == 1 and hello.window == 502
    assert not b.opened_with_fallback


def test_tv6_pila_sign_and_verify() -> None:
    ident = Identity(b"\x07" * 32)
    frame = crypto.sign_pila(ident, 5, PUB_A)
    assert frame.encode() == TV6_PILA
    crypto.verify_pila(tunnel.decode_pila(TV6_PILA), ED_7)


def test_verify_pila_requires_the_registry_key() -> None:
    """T-D1: a frame signed by any other key fails, even if self-consistent."""
    mallory = Identity(b"\x09" * 32)
    forged = crypto.sign_pila(mallory, 5, PUB_B)
    with pytest.raises(DecodeError) as exc:
        crypto.verify_pila(forged, ED_7)
    assert exc.value.code == "key_mismatch"
    # Frame claims the registry key but the signature is mallory's.
    spoofed = forged._replace(ed25519_public=ED_7)
    with pytest.raises(DecodeError) as exc:
        crypto.verify_pila(spoofed, ED_7)
    assert exc.value.code == "signature"
    # Signature bound to node and X25519 key.
    genuine = tunnel.decode_pila(TV6_PILA)
    for tampered in (genuine._replace(node=6), genuine._replace(x25519_public=PUB_B)):
        with pytest.raises(DecodeError) as exc:
            crypto.verify_pila(tampered, ED_7)
        assert exc.value.code == "signature"


@settings(max_examples=200)
@given(st.binary(min_size=136, max_size=136), st.binary(min_size=32, max_size=32))
def test_verify_pila_random_input_only_decode_error(data: bytes, expected: bytes) -> None:
    frame = tunnel.decode_pila(b"PILA" + data[4:])
    with pytest.raises(DecodeError):
        crypto.verify_pila(frame, expected)
    with pytest.raises(DecodeError):
        crypto.verify_pila(frame._replace(ed25519_public=expected), expected)


@pytest.mark.parametrize(
    "low_order",
    [
        bytes(32),
        (1).to_bytes(32, "little"),
        bytes.fromhex("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"),
    ],
)
def test_low_order_keys_are_refused(low_order: bytes) -> None:
    with pytest.raises(DecodeError) as exc:
        crypto.x25519_shared(PRIV_A, low_order)
    assert exc.value.code == "weak_key"
    pc = PeerCrypto(PRIV_A)
    with pytest.raises(DecodeError):
        pc.install(low_order, 0.0)
    assert not pc.ready


# --- sending ---------------------------------------------------------------------------------


def test_counter_starts_at_one_and_is_monotonic() -> None:
    a, b = _pair()
    counters = [int.from_bytes(tunnel.decode_pils(a.seal(1, SYN)).nonce[4:], "big") for _ in range(5)]
    assert counters == [1, 2, 3, 4, 5]


def test_duplicate_pila_does_not_reset_the_counter() -> None:
    """T-D4: the reference re-installs on every PILA; we keep our nonce space."""
    a, _ = _pair()
    a.seal(1, SYN)
    prefix = a.send_prefix
    assert a.install(PUB_B, 5.0) is InstallResult.SAME
    nonce = tunnel.decode_pils(a.seal(1, SYN)).nonce
    assert nonce == prefix + (2).to_bytes(8, "big")


def test_new_key_state_gets_a_new_random_prefix() -> None:
    prefixes = set()
    for _ in range(20):
        a = PeerCrypto(X25519PrivateKey.generate())
        a.install(PUB_B, 0.0)
        prefixes.add(a.send_prefix)
    assert len(prefixes) == 20


def test_seal_refuses_to_wrap_the_counter() -> None:
    a, b = _pair()
    a._current.send_counter = MAX_COUNTER - 1  # type: ignore[union-attr]
    last = a.seal(1, SYN)
    assert tunnel.decode_pils(last).nonce[4:] == b"\xff" * 8
    assert _open(b, last) == SYN
    with pytest.raises(CryptoStateError):
        a.seal(1, SYN)


def test_without_key() -> None:
    pc = PeerCrypto(PRIV_A)
    assert not pc.ready and pc.peer_public is None
    with pytest.raises(CryptoStateError):
        pc.seal(1, SYN)
    assert _code(pc, TV5_SYN) == "no_key"


# --- receiving: replay and forgery (T-D2, T-D5) -----------------------------------------------


def test_forged_frames_do_not_disturb_the_window() -> None:
    a, b = _pair()
    assert _open(b, a.seal(1, SYN)) == SYN
    forged_nonce = os.urandom(4) + (2**63).to_bytes(8, "big")
    for nonce in (a.send_prefix + (2**63).to_bytes(8, "big"), forged_nonce):  # type: ignore[operator]
        assert _code(b, tunnel.encode_pils(1, nonce, os.urandom(80))) == "auth"
    # Genuine traffic continues: counter 2 is still fresh.
    assert _open(b, a.seal(1, SYN)) == SYN
    assert b.auth_failures == 0


def test_replayed_frame_rejected() -> None:
    a, b = _pair()
    frame = bytes(a.seal(1, SYN))
    assert _open(b, frame) == SYN
    assert _code(b, frame) == "replay"
    later = [bytes(a.seal(1, SYN)) for _ in range(300)]
    for f in later:
        _open(b, f)
    assert _code(b, later[0]) == "stale"


def test_counter_zero_rejected() -> None:
    a, b = _pair(prefix_a=PREFIX)
    # A genuinely encrypted frame with counter 0 (never sent by a reference).
    aead = AESGCM(crypto.tunnel_key(SHARED))
    nonce = PREFIX + bytes(8)
    frame = tunnel.encode_pils(1, nonce, aead.encrypt(nonce, SYN, None))
    assert _code(b, frame) == "counter"
    assert _open(b, a.seal(1, SYN)) == SYN
    assert _code(b, frame) == "counter"


def test_out_of_order_within_window_accepted() -> None:
    a, b = _pair()
    frames = [bytes(a.seal(1, SYN)) for _ in range(5)]
    for i in (0, 2, 3, 1, 4):  # §1.5: reordering happens even on loopback
        assert _open(b, frames[i]) == SYN


def test_reinstalled_peer_with_new_prefix_restarting_at_one() -> None:
    """T-D5: a reference peer re-installs on our PILA: new prefix, counter 1."""
    a, b = _pair(prefix_a=b"\xaa\xaa\xaa\xaa")
    for _ in range(3):
        _open(b, a.seal(1, SYN))
    restarted = PeerCrypto(PRIV_A)
    restarted.install(PUB_B, 1.0, prefix=b"\xbb\xbb\xbb\xbb")
    assert _open(b, restarted.seal(1, SYN)) == SYN
    assert _open(b, a.seal(1, SYN)) == SYN  # in-flight frames of the old prefix too
    again = PeerCrypto(PRIV_A)
    again.install(PUB_B, 1.0, prefix=b"\xbb\xbb\xbb\xbb")
    assert _code(b, again.seal(1, SYN)) == "replay"


def test_prefix_limit_asks_for_a_rekey() -> None:
    _, b = _pair()
    for i in range(MAX_PEER_PREFIXES):
        s = PeerCrypto(PRIV_A)
        s.install(PUB_B, 0.0, prefix=i.to_bytes(4, "big"))
        _open(b, s.seal(1, SYN))
    assert b.rekey_reason is None
    s = PeerCrypto(PRIV_A)
    s.install(PUB_B, 0.0, prefix=b"\xff\xff\xff\xff")
    assert _code(b, s.seal(1, SYN)) == "prefix_limit"
    assert b.rekey_reason == "prefix_limit"


def test_peer_prefix_equal_to_ours_asks_for_a_rekey() -> None:
    a, b = _pair(prefix_a=PREFIX, prefix_b=PREFIX)
    assert _open(b, a.seal(1, SYN)) == SYN
    assert b.rekey_reason == "prefix_collision"
    new_pub = b.rotate(X25519PrivateKey.generate(), 1.0)
    assert b.rekey_reason is None and new_pub == b.our_public != PUB_B


def test_auth_failures_count_and_reset() -> None:
    a, b = _pair()
    other = PeerCrypto(X25519PrivateKey.generate())
    other.install(PUB_B, 0.0)
    for n in range(1, 4):
        assert _code(b, other.seal(1, SYN)) == "auth"
        assert b.auth_failures == n
    _open(b, a.seal(1, SYN))
    assert b.auth_failures == 0


# --- key changes and the fallback (T-D3(c)) --------------------------------------------------------


def _node_a_restarted() -> tuple[X25519PrivateKey, bytes, PeerCrypto]:
    priv = X25519PrivateKey.generate()
    pub = crypto.x25519_public_bytes(priv)
    sender = PeerCrypto(priv)
    sender.install(PUB_B, 10.0)
    return priv, pub, sender


def test_peer_key_change_keeps_old_key_receive_only() -> None:
    a, b = _pair()
    in_flight = [bytes(a.seal(1, SYN)) for _ in range(3)]
    _, new_pub, a2 = _node_a_restarted()
    assert b.install(new_pub, 10.0) is InstallResult.CHANGED
    assert b.peer_public == new_pub and b.has_fallback
    # b now sends under the new key only.
    assert _open(a2, b.seal(2, SYN)) == SYN
    # Frames sent before the change still open, marked as fallback.
    assert _open(b, in_flight[0], 10.1) == SYN
    assert b.opened_with_fallback
    # The first frame under the new key confirms it and drops the fallback.
    assert _open(b, a2.seal(1, SYN), 10.2) == SYN
    assert not b.opened_with_fallback and not b.has_fallback
    assert _code(b, in_flight[1], 10.3) == "auth"
    # The superseded key is stale from now on: a replayed PILA with it is ignored.
    assert b.install(PUB_A, 11.0) is InstallResult.REFUSED
    assert b.peer_public == new_pub


def test_replayed_old_pila_is_reverted() -> None:
    """A replayed PILA carrying a stale key must not kill the tunnel."""
    a, b = _pair()
    _open(b, a.seal(1, SYN))
    sent_before = b.seal(2, SYN)
    stale_pub = crypto.x25519_public_bytes(X25519PrivateKey.generate())
    assert b.install(stale_pub, 100.0) is InstallResult.CHANGED  # attacker's replay
    # Genuine frames keep authenticating under the previous key.
    assert _open(b, a.seal(1, SYN), 100.5) == SYN
    assert b.opened_with_fallback and b.reverts == 0 and b.peer_public == stale_pub
    assert _open(b, a.seal(1, SYN), 100.0 + FALLBACK_GRACE) == SYN
    assert b.reverts == 1 and b.peer_public == PUB_A and not b.has_fallback
    assert not b.opened_with_fallback
    # b's original nonce space continues: a can read b again, counter moved on.
    after = b.seal(2, SYN)
    assert _open(a, after) == SYN
    assert tunnel.decode_pils(after).nonce == tunnel.decode_pils(sent_before).nonce[:4] + (2).to_bytes(8, "big")
    assert b.install(stale_pub, 200.0) is InstallResult.REFUSED


def test_second_unconfirmed_key_keeps_the_confirmed_fallback() -> None:
    a, b = _pair()
    _open(b, a.seal(1, SYN))
    for _ in range(2):
        junk = crypto.x25519_public_bytes(X25519PrivateKey.generate())
        assert b.install(junk, 50.0) is InstallResult.CHANGED
    assert _open(b, a.seal(1, SYN), 50.1) == SYN
    assert b.opened_with_fallback
    # The genuine PILA (same key as the confirmed one) restores it directly.
    assert b.install(PUB_A, 50.2) is InstallResult.CHANGED
    assert b.peer_public == PUB_A and not b.has_fallback
    assert _open(a, b.seal(2, SYN)) == SYN


def test_rotation_keeps_old_state_until_peer_uses_new_key() -> None:
    a, b = _pair()
    old_frame = bytes(a.seal(1, SYN))
    new_priv = X25519PrivateKey.generate()
    new_pub = b.rotate(new_priv, 20.0)
    # a still uses the old derived key: accepted via the fallback, never reverted.
    assert _open(b, old_frame, 20.0 + 10 * FALLBACK_GRACE) == SYN
    assert b.opened_with_fallback and b.reverts == 0
    # a learns b's new key (from b's PILA) and re-keys.
    assert a.install(new_pub, 21.0) is InstallResult.CHANGED
    assert _open(b, a.seal(1, SYN), 21.0) == SYN
    assert not b.has_fallback and not b.opened_with_fallback
    assert b.install(PUB_A, 22.0) is InstallResult.SAME  # same peer key, not refused
    assert _open(a, b.seal(2, SYN)) == SYN


def test_rotate_needs_a_key() -> None:
    with pytest.raises(CryptoStateError):
        PeerCrypto(PRIV_A).rotate(X25519PrivateKey.generate(), 0.0)


# --- properties -----------------------------------------------------------------------------------

_A, _B = _pair()


@settings(max_examples=300)
@given(st.binary(max_size=2000))
def test_seal_open_round_trip(plaintext: bytes) -> None:
    assert _open(_B, _A.seal(7, plaintext)) == plaintext


@settings(max_examples=300)
@given(st.binary(max_size=200))
def test_random_frames_only_raise_decode_error(data: bytes) -> None:
    a, b = _pair()
    try:
        b.open(tunnel.decode_pils(b"PILS" + data), 0.0)
    except DecodeError:
        pass
    else:  # pragma: no cover - would be a forgery
        pytest.fail("random bytes authenticated")
    assert _open(b, a.seal(1, SYN)) == SYN  # and the window is untouched


@settings(max_examples=300)
@given(st.lists(st.tuples(st.integers(8, 69), st.integers(1, 255)), min_size=1, max_size=4), st.integers(0, 30))
def test_mutated_frames_never_authenticate(flips: list[tuple[int, int]], cut: int) -> None:
    """Any change to nonce, ciphertext or tag fails; the node ID (bytes 4-8)
    only selects which peer's state is tried."""
    a, b = _pair()
    original = bytes(a.seal(1, SYN))
    frame = bytearray(original)
    for pos, xor in flips:
        frame[pos] ^= xor
    if cut:
        del frame[-cut:]
    if frame == original:
        return  # the flips cancelled out
    with pytest.raises(DecodeError):
        _open(b, frame)
    assert _open(b, original) == SYN
