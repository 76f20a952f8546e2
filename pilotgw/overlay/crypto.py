"""Tunnel crypto: X25519 agreement, key derivation, PILA signatures, and the
per-peer key state that seals and opens PILS frames.

Wire contract (tunnel-and-transport.md §1.5-1.6):

* ``shared = X25519(ours, theirs)``; an all-zero result aborts.
* Tunnel key ``SHA-256("pilot-tunnel-v1:" ‖ shared)``; port-443 secure-channel
  key ``SHA-256("pilot-secure-v1:" ‖ shared)``. No HKDF, no salt.
* AES-256-GCM, one key for both directions, no AAD, nonce = sender's random
  4-byte prefix ‖ u64 counter incremented before use (first is 1).
* A ``PILA`` signs ``auth ‖ node u32 ‖ X25519 key`` with the node's Ed25519
  identity; it is verified against the key the *registry* holds for the node.

Where we differ from the reference (Part 3), all wire-compatible:

* T-D1: :func:`verify_pila` takes the expected Ed25519 key from the caller (a
  copy of the registry's key) and requires the frame's key to equal it; the
  key in the frame is never trusted on its own.
* T-D2: :meth:`PeerCrypto.open` pre-checks the replay window read-only, runs
  GCM, and records the counter only after authentication. Counter 0 is refused.
* T-D4: a key state keeps one random send prefix and a monotonic counter for
  its whole life; a duplicate ``PILA`` with the same key changes nothing, a new
  key gets a new state and a new prefix, and a stale key that was superseded is
  refused from then on, so a derived key never gets a second send prefix. The
  counter refuses to wrap. A peer prefix equal to ours, or too many peer
  prefixes, raises :attr:`PeerCrypto.rekey_reason` so the daemon rotates our
  X25519 key for that peer (:meth:`PeerCrypto.rotate`).
* T-D5: replay windows are kept per *peer prefix* (at most
  :data:`MAX_PEER_PREFIXES` per key state), so a reference peer that
  re-installed its state and restarted its counter at 1 is not dropped.
* T-D3(c): a new peer X25519 key keeps the previous key state as a
  receive-only fallback; see :class:`PeerCrypto` for the revert rule.
"""

from __future__ import annotations

import enum
import hashlib
import os
import struct
from typing import Optional, Protocol

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from pilotgw.overlay.errors import DecodeError
from pilotgw.overlay.replay import ReplayWindow, Verdict
from pilotgw.overlay.tunnel import (
    KEY_LEN,
    MAGIC_PILS,
    PILS_HEADER_LEN,
    TAG_LEN,
    PilaFrame,
    PilsFrame,
    pila_signed_message,
)

TUNNEL_KEY_LABEL = b"pilot-tunnel-v1:"
SECURE_KEY_LABEL = b"pilot-secure-v1:"

PREFIX_LEN = 4
#: The send counter stops here instead of wrapping to a used nonce.
MAX_COUNTER = 0xFFFF_FFFF_FFFF_FFFF
#: Replay windows kept per key state, one per peer prefix (T-D5).
MAX_PEER_PREFIXES = 64
#: Peer X25519 keys remembered as stale; a PILA carrying one is ignored.
MAX_REFUSED_KEYS = 16
#: Seconds after a peer key change during which frames that still
#: authenticate under the previous key are taken as in flight, not as proof
#: that the change came from a replayed PILA.
FALLBACK_GRACE = 2.0

_ZERO_SHARED = bytes(32)
_NONCE = struct.Struct(">4sQ")
_PILS_HEAD = struct.Struct(">4sI4sQ")


class CryptoStateError(RuntimeError):
    """A local misuse or limit, never caused by received bytes: sealing
    without a key, or a send counter that would wrap."""


class Signer(Protocol):
    """What :func:`sign_pila` needs from an identity
    (:class:`pilotgw.overlay.identity.Identity` is one)."""

    @property
    def public_key(self) -> bytes: ...

    def sign(self, message: bytes) -> bytes: ...


# --- key agreement and derivation ---------------------------------------------


def generate_x25519() -> X25519PrivateKey:
    """A fresh X25519 private key (per process, or per peer for rotation)."""
    return X25519PrivateKey.generate()


def x25519_public_bytes(private: X25519PrivateKey) -> bytes:
    """The raw 32-byte public key that goes into PILA/PILK frames."""
    return private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def x25519_shared(private: X25519PrivateKey, peer_public: bytes) -> bytes:
    """X25519 agreement with a peer's raw public key.

    Raises :class:`DecodeError` (code ``"weak_key"``) for a key that is not 32
    bytes or that yields the all-zero secret (a low-order point, §1.5).
    """
    if len(peer_public) != KEY_LEN:
        raise DecodeError(f"X25519 key must be {KEY_LEN} bytes, got {len(peer_public)}", "weak_key")
    try:
        shared = private.exchange(X25519PublicKey.from_public_bytes(bytes(peer_public)))
    except ValueError:
        raise DecodeError("X25519 agreement failed: low-order peer key", "weak_key") from None
    if shared == _ZERO_SHARED:
        raise DecodeError("X25519 agreement gave the all-zero secret", "weak_key")
    return shared


def tunnel_key(shared: bytes) -> bytes:
    """``SHA-256("pilot-tunnel-v1:" ‖ shared)``: the PILS AES-256 key."""
    return hashlib.sha256(TUNNEL_KEY_LABEL + shared).digest()


def secure_key(shared: bytes) -> bytes:
    """``SHA-256("pilot-secure-v1:" ‖ shared)``: the port-443 channel key."""
    return hashlib.sha256(SECURE_KEY_LABEL + shared).digest()


# --- PILA ---------------------------------------------------------------------


def sign_pila(identity: Signer, node: int, x25519_public: bytes) -> PilaFrame:
    """Our authenticated key exchange frame for ``node`` (our node ID)."""
    signature = identity.sign(pila_signed_message(node, x25519_public))
    return PilaFrame(node, bytes(x25519_public), bytes(identity.public_key), signature)


def verify_pila(frame: PilaFrame, expected_ed25519: bytes) -> None:
    """Check a received PILA against the registry's key for its node (T-D1).

    ``expected_ed25519`` must be the caller's own copy of the registry key
    for ``frame.node``. Raises :class:`DecodeError` with code
    ``"key_mismatch"`` when the frame carries another key (the daemon may
    refresh its registry copy once, rate-limited, in case the peer rotated) and
    ``"signature"`` when the signature does not verify under the expected key.
    """
    if frame.ed25519_public != expected_ed25519:
        raise DecodeError(f"PILA from node {frame.node} carries an Ed25519 key the registry does not hold", "key_mismatch")
    try:
        Ed25519PublicKey.from_public_bytes(bytes(expected_ed25519)).verify(frame.signature, frame.signed_message)
    except (InvalidSignature, ValueError):
        raise DecodeError(f"PILA from node {frame.node} has a bad signature", "signature") from None


# --- per-peer key state -----------------------------------------------------------


class InstallResult(enum.Enum):
    """What :meth:`PeerCrypto.install` did with a verified peer key.

    The daemon replies with its own PILA for :attr:`NEW` and :attr:`CHANGED`
    (§1.6 reply rule) and for nothing else.
    """

    NEW = "new"  # first key for this peer
    CHANGED = "changed"  # the peer key differs from the one in use
    SAME = "same"  # duplicate PILA: nothing changed, counters untouched (T-D4)
    REFUSED = "refused"  # a stale key already proven or superseded; ignored


class _KeyState:
    """One derived tunnel key: our send nonce space and the peer's windows."""

    __slots__ = ("peer_public", "aead", "send_prefix", "send_counter", "windows", "installed_at")

    def __init__(self, peer_public: bytes, key: bytes, send_prefix: bytes, installed_at: float) -> None:
        self.peer_public = peer_public
        self.aead = AESGCM(key)
        self.send_prefix = send_prefix
        self.send_counter = 0
        self.windows: dict[bytes, ReplayWindow] = {}
        self.installed_at = installed_at


class PeerCrypto:
    """Tunnel key state for one peer node, as used by the daemon's packet path.

    **Sending** (:meth:`seal`) always uses the *current* state. **Receiving**
    (:meth:`open`) tries the current state, then the *fallback*, a previous
    state kept receive-only after a key change so that frames in flight, and a
    replayed old ``PILA``, cannot kill the tunnel (T-D3(c), guidance item 5).

    The revert rule, applied inside :meth:`open`:

    * a frame that authenticates under the current state confirms it: the
      fallback is dropped (and, if it held another peer key, that key is
      refused from then on: the peer has moved past it);
    * a frame that authenticates under the fallback is accepted; if the
      fallback holds a different peer key and :data:`FALLBACK_GRACE` seconds
      have passed since the current state was installed with nothing
      authenticating under it, the ``PILA`` that installed it was a replay:
      the fallback becomes current again (its send counter continues) and the
      replayed peer key is refused from then on. :attr:`reverts` counts this.

    A fallback created by our own :meth:`rotate` holds the same peer key and is
    never reverted to; it lives until the peer's first frame under our new key.

    After each successful :meth:`open`, :attr:`opened_with_fallback` says
    which state decrypted the frame: the daemon moves a peer's endpoint only
    for frames under the current state (T-D3(c)). :attr:`auth_failures` counts
    consecutive frames no state could authenticate (a trigger for a
    rate-limited PILA, T-D6). :attr:`rekey_reason` is set when our X25519 key
    for this peer should be rotated (T-D4/T-D5).
    """

    __slots__ = (
        "_our_private",
        "our_public",
        "_current",
        "_fallback",
        "_refused",
        "opened_with_fallback",
        "auth_failures",
        "reverts",
        "rekey_reason",
    )

    def __init__(self, our_private: X25519PrivateKey) -> None:
        self._our_private = our_private
        self.our_public = x25519_public_bytes(our_private)
        self._current: Optional[_KeyState] = None
        self._fallback: Optional[_KeyState] = None
        self._refused: dict[bytes, None] = {}
        self.opened_with_fallback = False
        self.auth_failures = 0
        self.reverts = 0
        self.rekey_reason: Optional[str] = None

    # -- inspection -------------------------------------------------------------

    @property
    def ready(self) -> bool:
        """True once a key is installed: :meth:`seal` can be used."""
        return self._current is not None

    @property
    def peer_public(self) -> Optional[bytes]:
        """The peer X25519 key we send under, if any."""
        return None if self._current is None else self._current.peer_public

    @property
    def has_fallback(self) -> bool:
        return self._fallback is not None

    @property
    def send_prefix(self) -> Optional[bytes]:
        return None if self._current is None else self._current.send_prefix

    def is_refused(self, peer_public: bytes) -> bool:
        return bytes(peer_public) in self._refused

    # -- key installation -----------------------------------------------------------

    def install(self, peer_public: bytes, now: float, prefix: Optional[bytes] = None) -> InstallResult:
        """Use the X25519 key of a *verified* PILA from this peer.

        * refused (stale) key: ignored -> ``REFUSED``;
        * no state yet: a new state (new random prefix, counter 0) -> ``NEW``;
        * the key in use: nothing changes, counters continue -> ``SAME``;
        * the fallback's key: the fallback is current again and the unconfirmed
          state is dropped -> ``CHANGED``;
        * another key: a new state becomes current; the old current becomes the
          fallback, unless a fallback already exists (the old current was never
          confirmed by traffic), in which case the confirmed fallback is kept
          and the unconfirmed state dropped -> ``CHANGED``.

        ``prefix`` overrides the random send prefix of a newly created state
        (tests). Raises :class:`DecodeError` (``"weak_key"``) for a low-order
        key, leaving the state unchanged.
        """
        peer_public = bytes(peer_public)
        if peer_public in self._refused:
            return InstallResult.REFUSED
        current = self._current
        if current is not None and current.peer_public == peer_public:
            return InstallResult.SAME
        fallback = self._fallback
        if fallback is not None and fallback.peer_public == peer_public:
            # Back to the confirmed key: resume its state, nonce space intact.
            self._current, self._fallback = fallback, None
            return InstallResult.CHANGED
        state = self._new_state(self._our_private, peer_public, now, prefix)
        if current is None:
            self._current = state
            return InstallResult.NEW
        if fallback is None:
            # ``current`` was confirmed (or is the first key): keep it receive-only.
            self._fallback = current
        # else ``current`` never authenticated anything: replace it, keep the
        # confirmed fallback.
        self._current = state
        return InstallResult.CHANGED

    def rotate(self, our_private: X25519PrivateKey, now: float, prefix: Optional[bytes] = None) -> bytes:
        """Switch to a new X25519 key of ours for this peer (T-D3(d), T-D4).

        Returns our new public key, to be announced in a fresh PILA. The old
        state stays as a receive-only fallback until the peer's first frame
        under the new key. Raises :class:`CryptoStateError` if no peer key is
        installed, :class:`DecodeError` if the peer key is low-order.
        """
        current = self._current
        if current is None:
            raise CryptoStateError("no peer key installed to rotate against")
        state = self._new_state(our_private, current.peer_public, now, prefix)
        self._our_private = our_private
        self.our_public = x25519_public_bytes(our_private)
        self._fallback = current
        self._current = state
        self.rekey_reason = None
        return self.our_public

    @staticmethod
    def _new_state(
        our_private: X25519PrivateKey, peer_public: bytes, now: float, prefix: Optional[bytes]
    ) -> _KeyState:
        key = tunnel_key(x25519_shared(our_private, peer_public))
        if prefix is None:
            prefix = os.urandom(PREFIX_LEN)
        elif len(prefix) != PREFIX_LEN:
            raise ValueError(f"send prefix must be {PREFIX_LEN} bytes, got {len(prefix)}")
        return _KeyState(peer_public, key, bytes(prefix), now)

    def _refuse(self, peer_public: bytes) -> None:
        self._refused[peer_public] = None
        if len(self._refused) > MAX_REFUSED_KEYS:
            del self._refused[next(iter(self._refused))]

    # -- packet path --------------------------------------------------------------------

    def seal(self, our_node_id: int, plaintext: bytes) -> bytearray:
        """Encrypt one encoded Pilot packet into a complete PILS frame.

        Raises :class:`CryptoStateError` without a key or when the counter
        would pass 2^64-1 (never reuse a nonce); ``ValueError`` for a node ID
        out of range.
        """
        state = self._current
        if state is None:
            raise CryptoStateError("no key installed for this peer")
        counter = state.send_counter + 1
        if counter > MAX_COUNTER:
            raise CryptoStateError("send counter exhausted; rotate the key")
        state.send_counter = counter
        frame = bytearray(PILS_HEADER_LEN + len(plaintext) + TAG_LEN)
        try:
            _PILS_HEAD.pack_into(frame, 0, MAGIC_PILS, our_node_id, state.send_prefix, counter)
        except struct.error as exc:
            raise ValueError(f"node ID out of range: {exc}") from None
        view = memoryview(frame)
        state.aead.encrypt_into(view[8:PILS_HEADER_LEN], plaintext, None, view[PILS_HEADER_LEN:])
        return frame

    def open(self, frame: PilsFrame, now: float) -> bytes:
        """Authenticate and decrypt a PILS frame from this peer.

        Order (T-D2): read-only replay check, GCM open, then commit the counter
        in the window of the frame's prefix. Raises :class:`DecodeError` with
        code ``"no_key"``, ``"counter"`` (counter 0), ``"replay"``, ``"stale"``
        (older than the window), ``"auth"`` (no state authenticates it) or
        ``"prefix_limit"`` (too many peer prefixes under this key; the daemon
        should rotate). Rejected frames change no window.
        """
        current = self._current
        if current is None:
            raise DecodeError(f"PILS from node {frame.sender_node} but no key installed", "no_key")
        prefix, counter = _NONCE.unpack(frame.nonce)
        window = current.windows.get(prefix)
        verdict = window.check(counter) if window is not None else (Verdict.NEW if counter else Verdict.ZERO)
        if verdict is Verdict.NEW:
            try:
                plaintext = current.aead.decrypt(frame.nonce, frame.ciphertext, None)
            except InvalidTag:
                pass
            else:
                if window is None:
                    self._commit_new_prefix(current, prefix, counter)
                else:
                    window.commit(counter)
                if self._fallback is not None:
                    self._confirm(current)
                self.opened_with_fallback = False
                self.auth_failures = 0
                return plaintext
            fallback = self._fallback
            if fallback is not None:
                plaintext = self._open_fallback(current, fallback, frame, prefix, counter, now)
                if plaintext is not None:
                    return plaintext
            self.auth_failures += 1
            raise DecodeError(f"PILS from node {frame.sender_node} failed authentication", "auth")
        if verdict is Verdict.ZERO:
            raise DecodeError(f"PILS from node {frame.sender_node} with counter 0", "counter")
        if verdict is Verdict.REPLAY:
            raise DecodeError(f"PILS from node {frame.sender_node}: counter {counter} replayed", "replay")
        raise DecodeError(f"PILS from node {frame.sender_node}: counter {counter} is outside the window", "stale")

    def _open_fallback(
        self, current: _KeyState, fallback: _KeyState, frame: PilsFrame, prefix: bytes, counter: int, now: float
    ) -> Optional[bytes]:
        window = fallback.windows.get(prefix)
        if window is not None:
            verdict = window.check(counter)
            if verdict is not Verdict.NEW:
                code = "replay" if verdict is Verdict.REPLAY else "stale"
                raise DecodeError(f"PILS from node {frame.sender_node}: counter {counter} rejected ({code})", code)
        try:
            plaintext = fallback.aead.decrypt(frame.nonce, frame.ciphertext, None)
        except InvalidTag:
            return None
        if window is None:
            self._commit_new_prefix(fallback, prefix, counter)
        else:
            window.commit(counter)
        self.opened_with_fallback = True
        self.auth_failures = 0
        if current.peer_public != fallback.peer_public and now - current.installed_at >= FALLBACK_GRACE:
            self._refuse(current.peer_public)
            self._current, self._fallback = fallback, None
            self.opened_with_fallback = False
            self.reverts += 1
        return plaintext

    def _confirm(self, current: _KeyState) -> None:
        # A frame authenticated under the current state: the key change is
        # real, so the peer has moved past the fallback's key for good.
        fallback = self._fallback
        if fallback is not None and fallback.peer_public != current.peer_public:
            self._refuse(fallback.peer_public)
        self._fallback = None

    def _commit_new_prefix(self, state: _KeyState, prefix: bytes, counter: int) -> None:
        if len(state.windows) >= MAX_PEER_PREFIXES:
            self.rekey_reason = "prefix_limit"
            raise DecodeError(f"peer used more than {MAX_PEER_PREFIXES} nonce prefixes under one key", "prefix_limit")
        window = state.windows[prefix] = ReplayWindow()
        if prefix == state.send_prefix:
            # Both directions share the key: equal prefixes mean nonce reuse.
            self.rekey_reason = "prefix_collision"
        window.commit(counter)
