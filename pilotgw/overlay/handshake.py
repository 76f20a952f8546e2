"""The trust handshake message sent on virtual port 444 (trust-and-ipc.md §A1.1-A1.4).

One JSON object per stream connection, one direction: the sender dials
``peer:444``, writes the object in a single write and closes. Replies travel
on a new connection the other way. The object always carries all seven keys
in the order of :data:`FIELDS`, because that is what the reference emits and
what its replay cache hashes.

The signature covers only ``handshake:<from>:<to>`` (:func:`challenge`), not
the type, timestamp or text; so the checks here (:func:`verify`,
:func:`check_fresh`, :func:`replay_key`) are necessary but not sufficient --
the daemon adds the D-1/D-3 policy (source node, registry key, state).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from pilotgw.overlay import gojson, goread
from pilotgw.overlay.errors import DecodeError

REQUEST = "handshake_request"
ACCEPT = "handshake_accept"
REJECT = "handshake_reject"
REVOKE = "handshake_revoke"
TYPES = (REQUEST, ACCEPT, REJECT, REVOKE)

REVOKE_REASON = "trust revoked"

# A1.1: the reference reads only the first segment, so what we send must fit one.
MAX_SEND = 4096
# Q1: our receiver accumulates segments up to this much before giving up.
MAX_RECEIVE = 64 * 1024
# A1.4 freshness window, seconds.
MAX_AGE = 300
MAX_FUTURE_SKEW = 30

FIELDS = ("type", "node_id", "public_key", "justification", "signature", "reason", "timestamp")

_SCHEMA = {
    "type": goread.string,
    "node_id": goread.u32,
    "public_key": goread.string,
    "justification": goread.string,
    "signature": goread.string,
    "reason": goread.string,
    "timestamp": goread.i64,
}


@dataclass(frozen=True, slots=True)
class HandshakeMsg:
    """Record ``HandshakeMsg``; ``public_key``/``signature`` stay base64 text
    because that is how they are compared, stored and hashed."""

    type: str
    node_id: int
    public_key: str = ""
    justification: str = ""
    signature: str = ""
    reason: str = ""
    timestamp: int = 0

    def encode(self) -> bytes:
        return encode(self)


def encode(msg: HandshakeMsg) -> bytes:
    """Compact Go-JSON with all seven keys in declared order."""
    return gojson.dumpb({name: getattr(msg, name) for name in FIELDS}, sort_keys=False)


def encode_for_send(msg: HandshakeMsg) -> bytes:
    """:func:`encode`, refusing what the reference receiver would silently
    drop (D-6). The ``ValueError`` text is the tail of the IPC error
    ``handshake request: message too large (max 4096 bytes)``."""
    data = encode(msg)
    if len(data) > MAX_SEND:
        raise ValueError(f"message too large (max {MAX_SEND} bytes)")
    return data


def decode(data: goread.Buffer) -> HandshakeMsg:
    """Parse one message with the reference's rules: missing keys are zero,
    unknown keys ignored, names case-insensitive, integers strict. Unknown
    ``type`` values decode (the dispatcher ignores them)."""
    if len(data) > MAX_RECEIVE:
        raise DecodeError(f"handshake message of {len(data)} bytes exceeds {MAX_RECEIVE}", "oversize")
    values = goread.fields(goread.loads(data), _SCHEMA)
    return HandshakeMsg(
        type=values.get("type", ""),
        node_id=values.get("node_id", 0),
        public_key=values.get("public_key", ""),
        justification=values.get("justification", ""),
        signature=values.get("signature", ""),
        reason=values.get("reason", ""),
        timestamp=values.get("timestamp", 0),
    )


def challenge(sender: int, receiver: int) -> bytes:
    """The bytes every handshake signature covers: ``handshake:7:9``."""
    return f"handshake:{sender}:{receiver}".encode("ascii")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def build(
    kind: str,
    sender: int,
    receiver: int,
    key: Ed25519PrivateKey,
    now: float,
    *,
    justification: str = "",
    reason: str = "",
) -> HandshakeMsg:
    """A signed message with exactly the fields the reference fills per type:
    ``justification`` only on requests, ``reason`` only on rejects, and the
    fixed ``"trust revoked"`` on revokes. Raises ``ValueError`` for an
    unknown type or a text the type does not carry."""
    if kind not in TYPES:
        raise ValueError(f"unknown handshake type {kind!r}")
    if justification and kind != REQUEST:
        raise ValueError(f"{kind} carries no justification")
    if reason and kind != REJECT:
        raise ValueError(f"{kind} carries no reason")
    if kind == REVOKE:
        reason = REVOKE_REASON
    public = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return HandshakeMsg(
        type=kind,
        node_id=sender,
        public_key=_b64(public),
        justification=justification,
        signature=_b64(key.sign(challenge(sender, receiver))),
        reason=reason,
        timestamp=int(now),
    )


def _b64decode(text: str, what: str, size: int) -> bytes:
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error):
        raise DecodeError(f"handshake {what} is not valid base64", "auth") from None
    if len(raw) != size:
        raise DecodeError(f"handshake {what} is {len(raw)} bytes, expected {size}", "auth")
    return raw


def public_key_bytes(msg: HandshakeMsg) -> bytes:
    """The 32 raw key bytes, or :class:`DecodeError` (code ``auth``)."""
    return _b64decode(msg.public_key, "public key", 32)


def verify(msg: HandshakeMsg, receiver: int) -> None:
    """Check the signature against the key carried in the message.

    Stricter than the reference, which skips the check when ``public_key``
    is empty (D-1): an unsigned message fails here. Raises
    :class:`DecodeError` with code ``auth``."""
    if not msg.public_key or not msg.signature:
        raise DecodeError("handshake message is not signed", "auth")
    public = public_key_bytes(msg)
    signature = _b64decode(msg.signature, "signature", 64)
    try:
        Ed25519PublicKey.from_public_bytes(public).verify(signature, challenge(msg.node_id, receiver))
    except (InvalidSignature, ValueError):
        raise DecodeError(f"bad handshake signature from node {msg.node_id}", "auth") from None


def check_fresh(msg: HandshakeMsg, now: float) -> None:
    """The A1.4 window: no older than 5 min, no more than 30 s ahead; a zero
    timestamp counts as too old. Raises :class:`DecodeError` (``stale``)."""
    if msg.timestamp == 0 or now - msg.timestamp > MAX_AGE:
        raise DecodeError(f"handshake timestamp {msg.timestamp} is too old", "stale")
    if msg.timestamp - now > MAX_FUTURE_SKEW:
        raise DecodeError(f"handshake timestamp {msg.timestamp} is in the future", "stale")


def replay_key(msg: HandshakeMsg) -> bytes:
    """SHA-256 of the canonical re-encoding: the replay cache's key (A1.4)."""
    return hashlib.sha256(encode(msg)).digest()


class Assembler:
    """Collects a port-444 stream until one whole JSON object has arrived.

    The reference decodes only the first segment; ours accepts an object
    spread over several segments (Q1), bounded by :data:`MAX_RECEIVE`. Feed
    each received chunk; a message comes back once the object closes. Bytes
    after the object are ignored, like everything fed after completion.
    """

    __slots__ = ("_buf", "_scanned", "_depth", "_in_string", "_escape", "_limit", "done")

    def __init__(self, limit: int = MAX_RECEIVE) -> None:
        self._buf = bytearray()
        self._scanned = 0
        self._depth = 0
        self._in_string = False
        self._escape = False
        self._limit = limit
        self.done = False

    def feed(self, data: goread.Buffer) -> HandshakeMsg | None:
        """Add bytes; return the message once complete. Raises
        :class:`DecodeError` when the stream cannot be one message."""
        if self.done:
            return None
        self._buf += data
        end = self._scan()
        if end is None:
            if len(self._buf) > self._limit:
                raise DecodeError(f"handshake message exceeds {self._limit} bytes", "oversize")
            return None
        self.done = True
        return decode(bytes(self._buf[:end]))

    def eof(self) -> HandshakeMsg:
        """The stream ended (FIN or the 10 s wait expired) without a complete
        object: decode what there is so the error text says why."""
        if self.done:
            raise DecodeError("handshake message already complete", "state")
        self.done = True
        return decode(bytes(self._buf))

    def _scan(self) -> int | None:
        buf = self._buf
        for i in range(self._scanned, len(buf)):
            c = buf[i]
            if self._in_string:
                if self._escape:
                    self._escape = False
                elif c == 0x5C:  # backslash
                    self._escape = True
                elif c == 0x22:
                    self._in_string = False
            elif self._depth == 0:
                if c == 0x7B:  # {
                    self._depth = 1
                elif c not in b" \t\r\n":
                    raise DecodeError(f"handshake message must be a JSON object, found {chr(c)!r}", "json")
            elif c == 0x22:
                self._in_string = True
            elif c in (0x7B, 0x5B):  # { [
                self._depth += 1
            elif c in (0x7D, 0x5D):  # } ]
                self._depth -= 1
                if self._depth == 0:
                    return i + 1
        self._scanned = len(buf)
        return None
