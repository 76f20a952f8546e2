"""The node's long-term Ed25519 identity and its file (tunnel-and-transport.md
§1.14, trust-and-ipc.md §A3.4, T-D20).

The file is interchangeable with the reference's ``-identity PATH``: JSON with
a 2-space indent, no trailing newline, and exactly::

    {
      "private_key": "<base64 of seed(32) ‖ public key(32)>",
      "public_key": "<base64 of the public key(32)>"
    }

Unlike the reference we derive the public key from the seed on load and
require it to equal *both* stored copies (a file whose halves disagree would
otherwise sign with one key and register another), and we write atomically:
temporary file in the same directory, fsync, rename, mode 0600, so a crash
never leaves a truncated identity that would change the node's ID.

This module reads and writes files, which the rest of :mod:`pilotgw.overlay`
does not: an identity file is part of the protocol's local contract, and the
functions are plain blocking calls with no sockets, clock or threads.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import tempfile
from typing import Union

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from pilotgw.overlay.errors import DecodeError

SEED_LEN = 32
PUBLIC_KEY_LEN = 32
PRIVATE_KEY_LEN = SEED_LEN + PUBLIC_KEY_LEN
#: Identity files are ~150 bytes; anything far larger is not one.
MAX_FILE_SIZE = 64 * 1024

PathLike = Union[str, "os.PathLike[str]"]


class Identity:
    """An Ed25519 key pair: signs PILA frames, registry requests and
    handshakes. Immutable; compare identities by :attr:`public_key`."""

    __slots__ = ("_private", "seed", "public_key")

    def __init__(self, seed: bytes) -> None:
        if len(seed) != SEED_LEN:
            raise ValueError(f"Ed25519 seed must be {SEED_LEN} bytes, got {len(seed)}")
        self._private = Ed25519PrivateKey.from_private_bytes(bytes(seed))
        self.seed = bytes(seed)
        self.public_key = self._private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    def __repr__(self) -> str:
        # Never print the seed.
        return f"Identity(public_key={self.public_key_b64!r})"

    @property
    def public_key_b64(self) -> str:
        """Standard padded base64, the form the registry stores (§1.4)."""
        return base64.b64encode(self.public_key).decode("ascii")

    def sign(self, message: bytes) -> bytes:
        """Plain RFC 8032 Ed25519 signature (64 bytes, deterministic)."""
        return self._private.sign(bytes(message))

    def to_json(self) -> bytes:
        """The identity file's exact bytes (TV-9)."""
        doc = {
            "private_key": base64.b64encode(self.seed + self.public_key).decode("ascii"),
            "public_key": self.public_key_b64,
        }
        return json.dumps(doc, indent=2).encode("ascii")


def generate() -> Identity:
    """A fresh random identity."""
    return Identity(os.urandom(SEED_LEN))


def _b64_field(doc: dict, name: str, size: int) -> bytes:
    value = doc.get(name)
    if not isinstance(value, str):
        raise DecodeError(f"identity file: {name!r} is missing or not a string", "identity")
    try:
        raw = base64.b64decode(value.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise DecodeError(f"identity file: {name!r} is not valid base64", "identity") from None
    if len(raw) != size:
        raise DecodeError(f"identity file: {name!r} holds {len(raw)} bytes, expected {size}", "identity")
    return raw


def from_json(data: bytes) -> Identity:
    """Parse identity file content; raise :class:`DecodeError` (code
    ``"identity"``) on bad JSON, bad base64, wrong sizes, or a stored public
    key that the seed does not derive."""
    if len(data) > MAX_FILE_SIZE:
        raise DecodeError(f"identity file of {len(data)} bytes is too large", "identity")
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError):
        raise DecodeError("identity file is not valid JSON", "identity") from None
    if not isinstance(doc, dict):
        raise DecodeError("identity file is not a JSON object", "identity")
    private = _b64_field(doc, "private_key", PRIVATE_KEY_LEN)
    public = _b64_field(doc, "public_key", PUBLIC_KEY_LEN)
    ident = Identity(private[:SEED_LEN])
    if ident.public_key != private[SEED_LEN:] or ident.public_key != public:
        raise DecodeError("identity file corrupted: public key does not match private key", "identity")
    return ident


def load(path: PathLike) -> Identity:
    """Read and verify an identity file.

    Raises :class:`DecodeError` on bad content and ``FileNotFoundError``
    (or another ``OSError``) when the file cannot be read.
    """
    with open(path, "rb") as f:
        data = f.read(MAX_FILE_SIZE + 1)
    return from_json(data)


def save(path: PathLike, ident: Identity) -> None:
    """Write ``ident`` atomically with mode 0600, creating missing parent
    directories with mode 0700."""
    path = os.fspath(path)
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, mode=0o700, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=parent, prefix=".identity-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), 0o600)
            f.write(ident.to_json())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    dir_fd = os.open(parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def load_or_create(path: PathLike) -> tuple[Identity, bool]:
    """The daemon's start-up rule (§1.14): load the file, or on first run
    (file missing) generate and save a new identity. Returns the identity and
    whether it was created. Bad content raises :class:`DecodeError`; the
    daemon must refuse to start rather than overwrite it."""
    try:
        return load(path), False
    except FileNotFoundError:
        ident = generate()
        save(path, ident)
        return ident, True
