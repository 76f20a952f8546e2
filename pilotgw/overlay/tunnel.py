"""Tunnel frames: the outer layer of every datagram on the tunnel socket.

tunnel-and-transport.md §1.2-1.3. A received datagram is first classified
(:func:`classify`): a first byte below 0x10 is a beacon message (every magic
starts with ``P`` = 0x50, so the two cannot collide), otherwise the first four
bytes are a magic:

* ``PILT`` -- a plaintext Pilot packet (at least 38 bytes in all);
* ``PILS`` -- sender node u32, 12-byte GCM nonce, ciphertext ‖ 16-byte tag
  (at least 36 bytes in all). Decoding only splits the fields; the crypto lives
  in :mod:`pilotgw.overlay.crypto`;
* ``PILK`` -- node u32 and X25519 key (40 bytes; extra bytes ignored);
* ``PILA`` -- node u32, X25519 key, Ed25519 key, signature (136 bytes; extra
  bytes ignored);
* ``PILP`` -- the 4-byte NAT punch, carrying nothing.

Frames are small immutable ``NamedTuple`` classes: cheap to build once per
datagram and safe to pass around. Decoders accept ``bytes``, ``bytearray`` or
``memoryview``; variable-length fields come back as the same kind of slice the
decoder was given, so a receive path holding a memoryview copies nothing.
Every decoder raises :class:`~pilotgw.overlay.errors.DecodeError` and nothing
else on bad input.
"""

from __future__ import annotations

import enum
import struct
from typing import NamedTuple, Union

from pilotgw.overlay import packet as _packet
from pilotgw.overlay.errors import DecodeError

Buffer = Union[bytes, bytearray, memoryview]

MAGIC_PILT = b"PILT"
MAGIC_PILS = b"PILS"
MAGIC_PILK = b"PILK"
MAGIC_PILA = b"PILA"
MAGIC_PILP = b"PILP"

#: The whole NAT punch frame.
PILP_FRAME = MAGIC_PILP

NONCE_LEN = 12
TAG_LEN = 16
KEY_LEN = 32
SIGNATURE_LEN = 64

PILT_MIN_LEN = 4 + _packet.HEADER_LEN
PILS_HEADER_LEN = 4 + 4 + NONCE_LEN
PILS_MIN_LEN = PILS_HEADER_LEN + TAG_LEN
PILK_LEN = 4 + 4 + KEY_LEN
PILA_LEN = 4 + 4 + KEY_LEN + KEY_LEN + SIGNATURE_LEN

#: First bytes below this are beacon message types (§1.2 rule 2).
BEACON_TYPE_LIMIT = 0x10

_PILS_HEADER = struct.Struct(">4sI12s")
_PILK = struct.Struct(">4sI32s")
_PILA = struct.Struct(">4sI32s32s64s")
_U32 = struct.Struct(">I")
_AUTH_PREFIX = b"auth"


class FrameKind(enum.Enum):
    """What a received datagram is, from its first bytes alone."""

    BEACON = "beacon"
    PILT = "PILT"
    PILS = "PILS"
    PILK = "PILK"
    PILA = "PILA"
    PILP = "PILP"


_KIND_BY_MAGIC = {
    MAGIC_PILT: FrameKind.PILT,
    MAGIC_PILS: FrameKind.PILS,
    MAGIC_PILK: FrameKind.PILK,
    MAGIC_PILA: FrameKind.PILA,
    MAGIC_PILP: FrameKind.PILP,
}


def classify(datagram: Buffer) -> FrameKind:
    """Demultiplex one received datagram (§1.2).

    Raises :class:`DecodeError` with code ``"empty"`` for a zero-length
    datagram, ``"truncated"`` for 1-3 bytes that are not a beacon message and
    ``"magic"`` for an unknown magic; the caller drops all three.
    """
    if not datagram:
        raise DecodeError("empty datagram", "empty")
    if datagram[0] < BEACON_TYPE_LIMIT:
        return FrameKind.BEACON
    if len(datagram) < 4:
        raise DecodeError(f"datagram of {len(datagram)} bytes has no tunnel magic", "truncated")
    kind = _KIND_BY_MAGIC.get(bytes(datagram[:4]))
    if kind is None:
        raise DecodeError(f"unknown tunnel magic {bytes(datagram[:4])!r}", "magic")
    return kind


def _require_magic(datagram: Buffer, magic: bytes, minimum: int) -> None:
    if len(datagram) < minimum:
        raise DecodeError(
            f"{magic.decode()} frame of {len(datagram)} bytes is shorter than {minimum}", "truncated"
        )
    if datagram[:4] != magic:
        raise DecodeError(f"expected {magic.decode()} magic, got {bytes(datagram[:4])!r}", "magic")


# --- PILT -----------------------------------------------------------------


def encode_pilt(packet_bytes: Buffer) -> bytes:
    """Wrap an encoded Pilot packet as a plaintext frame."""
    return MAGIC_PILT + packet_bytes


def decode_pilt(datagram: Buffer) -> _packet.Packet:
    """Unwrap and decode the Pilot packet of a ``PILT`` frame (§1.3.1)."""
    _require_magic(datagram, MAGIC_PILT, PILT_MIN_LEN)
    view = datagram if isinstance(datagram, memoryview) else memoryview(datagram)
    return _packet.decode(view[4:])


# --- PILS -----------------------------------------------------------------


class PilsFrame(NamedTuple):
    """An encrypted frame, split but not decrypted (§1.3.2)."""

    sender_node: int
    #: 4-byte sender prefix ‖ u64 counter.
    nonce: bytes
    #: AES-256-GCM ciphertext of the encoded packet, followed by the tag.
    ciphertext: Buffer


def encode_pils(sender_node: int, nonce: bytes, ciphertext: Buffer) -> bytes:
    """Assemble a ``PILS`` frame. Raises ``ValueError`` on a caller bug (a
    nonce that is not 12 bytes, a ciphertext shorter than a tag, a node out of
    range)."""
    if len(nonce) != NONCE_LEN:
        raise ValueError(f"nonce must be {NONCE_LEN} bytes, got {len(nonce)}")
    if len(ciphertext) < TAG_LEN:
        raise ValueError(f"ciphertext of {len(ciphertext)} bytes cannot hold a {TAG_LEN}-byte tag")
    try:
        head = _PILS_HEADER.pack(MAGIC_PILS, sender_node, nonce)
    except struct.error as exc:
        raise ValueError(f"PILS field out of range: {exc}") from None
    return head + ciphertext


def decode_pils(datagram: Buffer) -> PilsFrame:
    """Split a ``PILS`` frame into sender node, nonce and ciphertext."""
    if len(datagram) < PILS_MIN_LEN:
        raise DecodeError(
            f"PILS frame of {len(datagram)} bytes is shorter than {PILS_MIN_LEN}", "truncated"
        )
    magic, node, nonce = _PILS_HEADER.unpack_from(datagram)
    if magic != MAGIC_PILS:
        raise DecodeError(f"expected PILS magic, got {magic!r}", "magic")
    return PilsFrame(node, nonce, datagram[PILS_HEADER_LEN:])


# --- PILK -----------------------------------------------------------------


class PilkFrame(NamedTuple):
    """An anonymous key exchange (§1.3.3). We decode it only to answer it
    with our ``PILA``; we never install a key from it (T-D19)."""

    node: int
    x25519_public: bytes

    def encode(self) -> bytes:
        try:
            return _PILK.pack(MAGIC_PILK, self.node, _exact(self.x25519_public, KEY_LEN, "X25519 key"))
        except struct.error as exc:
            raise ValueError(f"PILK field out of range: {exc}") from None


def decode_pilk(datagram: Buffer) -> PilkFrame:
    """Parse a ``PILK`` frame; bytes past the 40th are ignored (§1.3.3)."""
    _require_magic(datagram, MAGIC_PILK, PILK_LEN)
    _, node, x_pub = _PILK.unpack_from(datagram)
    return PilkFrame(node, x_pub)


# --- PILA -----------------------------------------------------------------


def pila_signed_message(node: int, x25519_public: bytes) -> bytes:
    """The 40 bytes a ``PILA`` signs: ``auth`` (no colon) ‖ node ‖ X25519 key."""
    return _AUTH_PREFIX + _U32.pack(node) + x25519_public


class PilaFrame(NamedTuple):
    """An authenticated key exchange (§1.3.4). Decoding proves nothing:
    verify it with :func:`pilotgw.overlay.crypto.verify_pila` against the
    registry's key for ``node`` before using ``x25519_public``."""

    node: int
    x25519_public: bytes
    ed25519_public: bytes
    signature: bytes

    @property
    def signed_message(self) -> bytes:
        return pila_signed_message(self.node, self.x25519_public)

    def encode(self) -> bytes:
        try:
            return _PILA.pack(
                MAGIC_PILA,
                self.node,
                _exact(self.x25519_public, KEY_LEN, "X25519 key"),
                _exact(self.ed25519_public, KEY_LEN, "Ed25519 key"),
                _exact(self.signature, SIGNATURE_LEN, "signature"),
            )
        except struct.error as exc:
            raise ValueError(f"PILA field out of range: {exc}") from None


def decode_pila(datagram: Buffer) -> PilaFrame:
    """Parse a ``PILA`` frame; bytes past the 136th are ignored (§1.3.4)."""
    _require_magic(datagram, MAGIC_PILA, PILA_LEN)
    _, node, x_pub, ed_pub, sig = _PILA.unpack_from(datagram)
    return PilaFrame(node, x_pub, ed_pub, sig)


def _exact(value: bytes, size: int, what: str) -> bytes:
    # struct's "32s" silently pads or truncates; a wrong-sized key is a bug.
    if len(value) != size:
        raise ValueError(f"{what} must be {size} bytes, got {len(value)}")
    return value
