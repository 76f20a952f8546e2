"""The one exception family of the client API and of ``pilotctl``.

Every failure an agent or the CLI can see is a :class:`PilotError` carrying
the contract's machine-readable ``code`` (services-and-cli.md §A9.1), a
human ``message`` and an optional ``hint``. The CLI prints exactly these
three fields, so the client raises errors already worded the way the
reference driver words them (``info: daemon: <daemon text>``) and the CLI
only prefixes its command label.
"""

from __future__ import annotations


class PilotError(Exception):
    """Base class: ``code`` is one of the CLI error codes (``internal`` unless
    a subclass says otherwise), ``hint`` a suggestion for the user or ``None``."""

    default_code = "internal"

    def __init__(self, message: str, code: str | None = None, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.hint = hint

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, message={self.message!r}, hint={self.hint!r})"


class InvalidArgument(PilotError, ValueError):
    """The caller passed something the contract rejects before any I/O
    (also a :class:`ValueError`, which is what it is)."""

    default_code = "invalid_argument"


class NotFound(PilotError):
    default_code = "not_found"


class NotRunning(PilotError):
    """No daemon answers on the IPC socket."""

    default_code = "not_running"

    def __init__(
        self,
        message: str = "daemon is not running",
        code: str | None = None,
        hint: str | None = "start the daemon with: pilotctl daemon start",
    ) -> None:
        super().__init__(message, code, hint)


class ConnectionFailed(PilotError):
    """A dial, a daemon request or a registry request failed."""

    default_code = "connection_failed"


class DaemonError(ConnectionFailed):
    """The daemon answered with an Error frame.

    ``message`` is composed like the reference driver's error text,
    ``<label>: daemon: <daemon message>``; ``daemon_message`` is the raw text.
    """

    def __init__(self, label: str, daemon_message: str) -> None:
        super().__init__(f"{label}: daemon: {daemon_message}" if label else f"daemon: {daemon_message}")
        self.label = label
        self.daemon_message = daemon_message


class DaemonDisconnected(ConnectionFailed):
    """The IPC socket closed while something was waiting on it."""

    def __init__(self, message: str = "daemon disconnected") -> None:
        super().__init__(message)


class ProtocolError(PilotError):
    """The daemon sent a frame the contract does not allow (the session is closed)."""

    default_code = "internal"


class Timeout(PilotError):
    default_code = "timeout"
