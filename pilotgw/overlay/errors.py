"""The one exception type that every decoder in :mod:`pilotgw.overlay` raises.

Bytes from the network, the IPC socket, a config or identity file are
untrusted. A decoder fed anything it cannot accept raises :class:`DecodeError`
and nothing else, so the packet path can ``except DecodeError: drop`` and a
fuzzer can treat any other exception as a bug.
"""

from __future__ import annotations


class DecodeError(ValueError):
    """Malformed, truncated, oversized or unauthenticated input.

    ``code`` is a short machine-readable reason (``"truncated"``,
    ``"checksum"``, ``"auth"`` ...) so that callers can count drops by cause
    without parsing the message.
    """

    def __init__(self, message: str, code: str = "malformed") -> None:
        super().__init__(message)
        self.code = code
