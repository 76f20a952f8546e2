"""The port-443 secure channel: records over an ordinary Pilot stream
(tunnel-and-transport.md §1.13, T-D18).

Handshake: each side makes an ephemeral X25519 key; the client writes its 32
raw bytes first and reads 32, the server reads then writes. Both derive
``SHA-256("pilot-secure-v1:" ‖ shared)`` (:func:`pilotgw.overlay.crypto.secure_key`).

Record::

    u32 L = 12 + len(ciphertext ‖ tag)
    12-byte nonce = role prefix ‖ u64 counter
    AES-256-GCM ciphertext ‖ 16-byte tag, no AAD

The same key serves both directions; only the role prefix (server
``00000001``, client ``00000002``) separates the nonce spaces. The reference
reader checks neither prefix nor counter; ours (T-D18) requires the peer's
role prefix and a counter exactly one above the previous record's, starting
at 1, so records cannot be replayed, dropped or reordered unnoticed. Any
failure makes the channel unusable, as in the reference.

:class:`SecureChannel` is sans-IO: :meth:`~SecureChannel.seal` returns the
bytes to write to the stream, :meth:`~SecureChannel.receive` takes whatever
bytes the stream delivered and returns the plaintexts of complete records.
"""

from __future__ import annotations

import enum
import struct
from typing import NamedTuple, Optional, Union

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from pilotgw.overlay.crypto import MAX_COUNTER, CryptoStateError, secure_key, x25519_shared
from pilotgw.overlay.errors import DecodeError

Buffer = Union[bytes, bytearray, memoryview]

HANDSHAKE_KEY_LEN = 32
#: The whole handshake must finish within this many seconds (``HandshakeTimeout``).
HANDSHAKE_TIMEOUT = 10.0
NONCE_LEN = 12
TAG_LEN = 16
LENGTH_LEN = 4
#: Largest L a reader accepts (``MaxEncryptedMessageLen``, 16 MiB).
MAX_RECORD_LEN = 16 * 1024 * 1024
#: Smallest meaningful L: a nonce and a tag around an empty plaintext. The
#: reference rejects only L < 12, but 12..27 can never authenticate.
MIN_RECORD_LEN = NONCE_LEN + TAG_LEN
MAX_PLAINTEXT = MAX_RECORD_LEN - MIN_RECORD_LEN

_HEAD = struct.Struct(">I4sQ")
_LEN = struct.Struct(">I")
_NONCE = struct.Struct(">4sQ")


class Role(enum.Enum):
    """Which end of the channel we are; the value is our nonce prefix."""

    SERVER = b"\x00\x00\x00\x01"
    CLIENT = b"\x00\x00\x00\x02"

    @property
    def peer(self) -> "Role":
        return Role.CLIENT if self is Role.SERVER else Role.SERVER


class Record(NamedTuple):
    """One record split from the stream, not yet decrypted."""

    nonce: bytes
    ciphertext: bytes
    #: Bytes of the stream this record used, length field included.
    size: int


def encode_record(nonce: bytes, ciphertext: Buffer) -> bytes:
    """Frame a nonce and ciphertext ‖ tag as one record."""
    if len(nonce) != NONCE_LEN:
        raise ValueError(f"nonce must be {NONCE_LEN} bytes, got {len(nonce)}")
    return _LEN.pack(NONCE_LEN + len(ciphertext)) + nonce + ciphertext


def decode_record(data: Buffer) -> Optional[Record]:
    """Split the first record off ``data``.

    Returns ``None`` when ``data`` does not yet hold a whole record. Raises
    :class:`DecodeError` (code ``"malformed"``) for a length below 28 or above
    16 MiB, which no correct writer produces.
    """
    if len(data) < LENGTH_LEN:
        return None
    (length,) = _LEN.unpack_from(data)
    if length < MIN_RECORD_LEN or length > MAX_RECORD_LEN:
        raise DecodeError(f"secure-channel record length {length} outside [{MIN_RECORD_LEN}, {MAX_RECORD_LEN}]", "malformed")
    end = LENGTH_LEN + length
    if len(data) < end:
        return None
    return Record(bytes(data[LENGTH_LEN : LENGTH_LEN + NONCE_LEN]), bytes(data[LENGTH_LEN + NONCE_LEN : end]), end)


class SecureChannel:
    """Record state for one established port-443 channel."""

    __slots__ = ("role", "_aead", "_send_counter", "_recv_counter", "_buffer", "_failed")

    def __init__(self, role: Role, key: bytes) -> None:
        if len(key) != 32:
            raise ValueError(f"secure-channel key must be 32 bytes, got {len(key)}")
        self.role = role
        self._aead = AESGCM(key)
        self._send_counter = 0
        self._recv_counter = 0
        self._buffer = bytearray()
        self._failed: Optional[str] = None

    @classmethod
    def from_handshake(cls, role: Role, our_private: X25519PrivateKey, peer_public: bytes) -> "SecureChannel":
        """Derive the channel from our ephemeral key and the 32 bytes the peer
        sent. Raises :class:`DecodeError` (``"weak_key"``) for a low-order key."""
        return cls(role, secure_key(x25519_shared(our_private, peer_public)))

    @property
    def failed(self) -> bool:
        """True once a bad record made the channel unusable."""
        return self._failed is not None

    def seal(self, plaintext: Buffer) -> bytes:
        """One record carrying ``plaintext`` (possibly empty).

        Raises ``ValueError`` for more than :data:`MAX_PLAINTEXT` bytes (split
        the write) and :class:`CryptoStateError` if the counter would wrap.
        """
        if len(plaintext) > MAX_PLAINTEXT:
            raise ValueError(f"record plaintext of {len(plaintext)} bytes exceeds {MAX_PLAINTEXT}")
        counter = self._send_counter + 1
        if counter > MAX_COUNTER:
            raise CryptoStateError("secure-channel send counter exhausted")
        self._send_counter = counter
        out = bytearray(LENGTH_LEN + MIN_RECORD_LEN + len(plaintext))
        _HEAD.pack_into(out, 0, len(out) - LENGTH_LEN, self.role.value, counter)
        view = memoryview(out)
        self._aead.encrypt_into(view[LENGTH_LEN : LENGTH_LEN + NONCE_LEN], plaintext, None, view[LENGTH_LEN + NONCE_LEN :])
        return bytes(out)

    def receive(self, data: Buffer) -> list[bytes]:
        """Feed stream bytes; return the plaintext of every completed record.

        Raises :class:`DecodeError` with code ``"malformed"`` (bad length),
        ``"nonce"`` (wrong role prefix or counter out of sequence) or
        ``"auth"`` (tag mismatch); after that every call raises
        ``"channel_failed"``. Plaintexts of records completed before the bad
        one in the same call are lost with it, since the stream is unusable.
        """
        if self._failed is not None:
            raise DecodeError(f"secure channel unusable after an earlier error: {self._failed}", "channel_failed")
        self._buffer += data
        out: list[bytes] = []
        try:
            while True:
                record = decode_record(self._buffer)
                if record is None:
                    return out
                out.append(self._open(record))
                del self._buffer[: record.size]
        except DecodeError as exc:
            self._failed = str(exc)
            self._buffer.clear()
            raise

    def _open(self, record: Record) -> bytes:
        prefix, counter = _NONCE.unpack(record.nonce)
        expected = self._recv_counter + 1
        if prefix != self.role.peer.value:
            raise DecodeError(f"secure-channel record with prefix {prefix.hex()}, expected the peer role's", "nonce")
        if counter != expected:
            raise DecodeError(f"secure-channel record counter {counter}, expected {expected}", "nonce")
        try:
            plaintext = self._aead.decrypt(record.nonce, record.ciphertext, None)
        except InvalidTag:
            raise DecodeError("secure-channel record failed authentication", "auth") from None
        self._recv_counter = counter
        return plaintext
