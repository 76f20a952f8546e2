"""Registry wire codec, sans-IO (rendezvous.md §1.2-1.9).

A registry message is a 4-byte big-endian length followed by that many bytes
of UTF-8 JSON holding one object with a string ``"type"``. This module holds
everything both ends need and nothing that does I/O:

* framing: :func:`encode_frame`, :class:`FrameSplitter` (incremental, for
  ``data_received``-style adapters) and :func:`decode_body`;
* the server's value conventions (§1.3): :func:`id_field`, :func:`bool_field`,
  :func:`str_field`, :func:`decode_public_key`;
* the signature scheme (§1.6): :data:`SIGNED`, :func:`challenge`,
  :func:`sign`, :func:`verify`;
* request builders for our registry client, one function per message, keys
  sorted like the reference client so RV-TV2 frames come out byte-identical.

Extension (ours, invisible to reference clients and servers)
------------------------------------------------------------
``poll_handshakes`` may carry ``"wait": <seconds>`` (1..30). A pilotgw
registry then holds the reply until the node's request or response inbox is
non-empty or the wait expires, so a relayed handshake reaches our daemon in
well under a second instead of after the next 30 s heartbeat. Replies keep the
exact ``poll_handshakes_ok`` shape. A reference registry ignores the unknown
field and answers at once, so a client that sends ``wait`` still works there
(it just polls). Because replies on a connection come back in request order,
a long poll holds back later requests on the same connection: our daemon
keeps a second registry connection for it.

Errors from a pilotgw registry keep the reference shape
``{"type":"error","error":"request failed"}`` and add a machine-readable
``"code"`` (R-D13); :func:`reply_error` reads both.
"""

from __future__ import annotations

import base64
import binascii
import json
import struct
from typing import Any, Callable, Iterable, Union

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from pilotgw.overlay import gojson
from pilotgw.overlay.errors import DecodeError

MAX_FRAME = 1 << 20
"""Largest allowed body: exactly 1 MiB is accepted, one byte more is not."""

MAX_POLL_WAIT = 30
"""Upper bound, in seconds, of the ``poll_handshakes`` ``wait`` extension."""

MAX_U32 = 0xFFFFFFFF
MAX_U16 = 0xFFFF

_LEN = struct.Struct(">I")
_GO_ESCAPED = frozenset("<>&\u2028\u2029")

Message = dict[str, Any]
Signer = Union[Ed25519PrivateKey, Callable[[bytes], bytes]]
"""A raw Ed25519 private key, or any callable mapping challenge bytes to a
64-byte signature (an HSM, an agent, the daemon's identity object)."""


# --------------------------------------------------------------------------
# Framing


def encode_body(msg: Message) -> bytes:
    """Compact JSON with sorted keys and Go's HTML-safe escapes.

    Registry messages hold only ints, strings, bools, lists and objects, for
    which the C ``json`` encoder already writes Go's bytes except for the
    five characters Go escapes; those rare messages go through
    :mod:`~pilotgw.overlay.gojson`. This keeps the server's reply path about
    five times faster than encoding everything in pure Python.
    """
    text = json.dumps(msg, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    if not _GO_ESCAPED.isdisjoint(text):
        return gojson.dumpb(msg)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate echoed back from a request
        return gojson.dumpb(msg)


def encode_frame(msg: Message) -> bytes:
    """Length prefix + body. Raises ``ValueError`` if the body exceeds 1 MiB."""
    body = encode_body(msg)
    if len(body) > MAX_FRAME:
        raise ValueError(f"registry message of {len(body)} bytes exceeds the {MAX_FRAME}-byte limit")
    return _LEN.pack(len(body)) + body


def _reject_constant(name: str) -> Any:
    raise DecodeError(f"JSON constant {name} is not allowed", "json")


def decode_body(body: bytes | bytearray | memoryview) -> Message:
    """Parse one frame body into a dict.

    Invalid UTF-8 is replaced (as Go's decoder does), ``null`` reads as ``{}``
    (§1.2), and anything that is not a JSON object -- an array, a string, an
    empty body, ``NaN``, a number too long to parse, nesting too deep -- raises
    :class:`DecodeError` (code ``"json"`` or ``"not_object"``): the server
    closes the connection without a reply.
    """
    text = bytes(body).decode("utf-8", "replace")
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except DecodeError:
        raise
    except (ValueError, RecursionError) as exc:
        raise DecodeError(f"registry frame is not valid JSON: {exc}", "json") from None
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise DecodeError(f"registry frame must be a JSON object, not {type(value).__name__}", "not_object")
    return value


class FrameSplitter:
    """Cuts a TCP byte stream into frame bodies.

    ``feed`` bytes as they arrive, then call :meth:`next_body` until it
    returns ``None``. An oversize length prefix raises :class:`DecodeError`
    (code ``"too_large"``) as soon as the 4 length bytes are in, before any
    body is buffered, so a peer cannot make us hold more than 1 MiB + 4.
    """

    __slots__ = ("_buf", "_pos")

    def __init__(self) -> None:
        self._buf = bytearray()
        self._pos = 0

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        self._buf += data

    @property
    def pending(self) -> int:
        """Bytes received but not yet returned as a whole frame."""
        return len(self._buf) - self._pos

    def next_body(self) -> bytes | None:
        buf, pos = self._buf, self._pos
        if len(buf) - pos < 4:
            self._compact()
            return None
        (length,) = _LEN.unpack_from(buf, pos)
        if length > MAX_FRAME:
            raise DecodeError(f"registry frame of {length} bytes exceeds the {MAX_FRAME}-byte limit", "too_large")
        end = pos + 4 + length
        if len(buf) < end:
            self._compact()
            return None
        body = bytes(buf[pos + 4 : end])
        self._pos = end
        return body

    def _compact(self) -> None:
        if self._pos:
            del self._buf[: self._pos]
            self._pos = 0


# --------------------------------------------------------------------------
# Value conventions (§1.3)


def id_field(msg: Message, key: str, maximum: int = MAX_U32) -> int:
    """An ID the way the reference reads it: a JSON number in ``0..maximum``
    truncated to an integer, else 0 (missing, string, bool, negative, too big)."""
    value = msg.get(key)
    if value is True or value is False or not isinstance(value, (int, float)):
        return 0
    if value < 0 or value > maximum:
        return 0
    return int(value)


def bool_field(msg: Message, key: str) -> bool:
    """Only a real JSON ``true`` is true."""
    return msg.get(key) is True


def str_field(msg: Message, key: str) -> str:
    value = msg.get(key)
    return value if isinstance(value, str) else ""


def decode_public_key(text: str) -> bytes:
    """Standard padded base64 of exactly 32 bytes, else :class:`DecodeError`."""
    if not text:
        raise DecodeError("public key required", "bad_key")
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise DecodeError("public key is not valid base64", "bad_key") from None
    if len(raw) != 32:
        raise DecodeError(f"public key must be 32 bytes, got {len(raw)}", "bad_key")
    return raw


def encode_public_key(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


# --------------------------------------------------------------------------
# Signatures (§1.6)

SIGNED: dict[str, tuple[str, tuple[str, ...], str]] = {
    "heartbeat": ("heartbeat", ("node_id",), "node_id"),
    "resolve": ("resolve", ("requester_id", "node_id"), "requester_id"),
    "set_hostname": ("set_hostname", ("node_id",), "node_id"),
    "set_visibility": ("set_visibility", ("node_id",), "node_id"),
    "set_tags": ("set_tags", ("node_id",), "node_id"),
    "set_task_exec": ("set_task_exec", ("node_id",), "node_id"),
    "report_trust": ("report_trust", ("node_id", "peer_id"), "node_id"),
    "revoke_trust": ("revoke_trust", ("node_id", "peer_id"), "node_id"),
    "request_handshake": ("handshake", ("from_node_id", "to_node_id"), "from_node_id"),
    "poll_handshakes": ("poll_handshakes", ("node_id",), "node_id"),
    "respond_handshake": ("respond", ("node_id", "peer_id"), "node_id"),
    "deregister": ("deregister", ("node_id",), "node_id"),
    "punch": ("punch", ("node_a", "node_b"), "requester_id"),
    "rotate_key": ("rotate", ("node_id",), "node_id"),
}
"""Request type -> (challenge prefix, ID fields in the challenge, signer's ID field)."""


def challenge(prefix: str, *ids: int) -> bytes:
    """``challenge("resolve", 5, 9) == b"resolve:5:9"``: decimal IDs, no nonce."""
    return ":".join([prefix, *map(str, ids)]).encode("ascii")


def challenge_for(msg: Message) -> tuple[bytes, int]:
    """The challenge a signed request must carry and the ID of its signer,
    with IDs read by the §1.3 rules. ``KeyError`` for an unsigned type."""
    prefix, fields, signer = SIGNED[msg.get("type")]  # type: ignore[index]
    return challenge(prefix, *(id_field(msg, f) for f in fields)), id_field(msg, signer)


def sign(signer: Signer, data: bytes) -> str:
    """Base64 Ed25519 signature of ``data`` as sent in ``"signature"``."""
    sig = signer.sign(data) if isinstance(signer, Ed25519PrivateKey) else signer(data)
    if len(sig) != 64:
        raise ValueError(f"signer returned {len(sig)} bytes, Ed25519 signatures are 64")
    return base64.b64encode(sig).decode("ascii")


def verify(public_key: bytes | Ed25519PublicKey, data: bytes, signature: Any) -> None:
    """Check a request signature; :class:`DecodeError` with code ``"auth"``
    (missing, bad base64, wrong length or not verifying) otherwise."""
    if not isinstance(signature, str) or not signature:
        raise DecodeError("signature required for authenticated node", "auth")
    try:
        raw = base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError):
        raise DecodeError("invalid signature encoding", "auth") from None
    if len(raw) != 64:
        raise DecodeError("signature verification failed", "auth")
    key = public_key if isinstance(public_key, Ed25519PublicKey) else Ed25519PublicKey.from_public_bytes(public_key)
    try:
        key.verify(raw, data)
    except InvalidSignature:
        raise DecodeError("signature verification failed", "auth") from None


# --------------------------------------------------------------------------
# Replies


def reply_error(reply: Message) -> tuple[str, str] | None:
    """``(error text, code)`` if the reply is a failure, else ``None``.

    A reply with a string ``"error"`` is a failure (§1.4); ``code`` is our
    registry's machine field, ``"unknown"`` from a reference registry.
    """
    error = reply.get("error")
    if not isinstance(error, str):
        return None
    code = reply.get("code")
    return error, code if isinstance(code, str) and code else "unknown"


# --------------------------------------------------------------------------
# Request builders (what our daemon's registry client sends)


def _signed(msg: Message, signer: Signer | None) -> Message:
    if signer is not None:
        data, _ = challenge_for(msg)
        msg["signature"] = sign(signer, data)
    return msg


def register(public_key: bytes | str, listen_addr: str = "", owner: str = "", hostname: str = "") -> Message:
    """Unsigned; ``owner`` and ``hostname`` are sent only when non-empty."""
    key = public_key if isinstance(public_key, str) else encode_public_key(public_key)
    msg: Message = {"type": "register", "public_key": key, "listen_addr": listen_addr}
    if owner:
        msg["owner"] = owner
    if hostname:
        msg["hostname"] = hostname
    return msg


def heartbeat(node_id: int, signer: Signer | None) -> Message:
    return _signed({"type": "heartbeat", "node_id": node_id}, signer)


def lookup(node_id: int) -> Message:
    return {"type": "lookup", "node_id": node_id}


def resolve(node_id: int, requester_id: int, signer: Signer | None) -> Message:
    return _signed({"type": "resolve", "node_id": node_id, "requester_id": requester_id}, signer)


def resolve_hostname(hostname: str) -> Message:
    return {"type": "resolve_hostname", "hostname": hostname}


def set_hostname(node_id: int, hostname: str, signer: Signer | None) -> Message:
    return _signed({"type": "set_hostname", "node_id": node_id, "hostname": hostname}, signer)


def set_visibility(node_id: int, public: bool, signer: Signer | None) -> Message:
    return _signed({"type": "set_visibility", "node_id": node_id, "public": public}, signer)


def set_tags(node_id: int, tags: Iterable[str], signer: Signer | None) -> Message:
    return _signed({"type": "set_tags", "node_id": node_id, "tags": list(tags)}, signer)


def set_task_exec(node_id: int, enabled: bool, signer: Signer | None) -> Message:
    return _signed({"type": "set_task_exec", "node_id": node_id, "enabled": enabled}, signer)


def report_trust(node_id: int, peer_id: int, signer: Signer | None) -> Message:
    return _signed({"type": "report_trust", "node_id": node_id, "peer_id": peer_id}, signer)


def revoke_trust(node_id: int, peer_id: int, signer: Signer | None) -> Message:
    return _signed({"type": "revoke_trust", "node_id": node_id, "peer_id": peer_id}, signer)


def request_handshake(from_node_id: int, to_node_id: int, justification: str, signer: Signer | None) -> Message:
    msg = {"type": "request_handshake", "from_node_id": from_node_id, "to_node_id": to_node_id}
    msg["justification"] = justification
    return _signed(msg, signer)


def poll_handshakes(node_id: int, signer: Signer | None, wait: int = 0) -> Message:
    """``wait`` > 0 asks a pilotgw registry to long-poll (module docstring)."""
    msg: Message = {"type": "poll_handshakes", "node_id": node_id}
    if wait:
        if not 1 <= wait <= MAX_POLL_WAIT:
            raise ValueError(f"wait must be 1..{MAX_POLL_WAIT} seconds")
        msg["wait"] = wait
    return _signed(msg, signer)


def respond_handshake(node_id: int, peer_id: int, accept: bool, signer: Signer | None) -> Message:
    msg = {"type": "respond_handshake", "node_id": node_id, "peer_id": peer_id, "accept": accept}
    return _signed(msg, signer)


def deregister(node_id: int, signer: Signer | None) -> Message:
    return _signed({"type": "deregister", "node_id": node_id}, signer)


def punch(requester_id: int, node_a: int, node_b: int, signer: Signer | None) -> Message:
    msg = {"type": "punch", "requester_id": requester_id, "node_a": node_a, "node_b": node_b}
    return _signed(msg, signer)


def get_polo_score(node_id: int) -> Message:
    return {"type": "get_polo_score", "node_id": node_id}


def update_polo_score(node_id: int, delta: int) -> Message:
    return {"type": "update_polo_score", "node_id": node_id, "delta": delta}


def list_networks() -> Message:
    return {"type": "list_networks"}


def list_nodes(network_id: int) -> Message:
    return {"type": "list_nodes", "network_id": network_id}
