"""What every command gets: the output sink, a lazily opened daemon session,
and target resolution (services-and-cli.md §A9.4)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pilotgw.client.errors import DaemonError, InvalidArgument, NotFound, PilotError
from pilotgw.cli import config
from pilotgw.cli.output import Output
from pilotgw.overlay.address import Addr, parse_target
from pilotgw.overlay.errors import DecodeError

if TYPE_CHECKING:
    from pilotgw.client.sync import SyncClient


class Ctx:
    def __init__(self, out: Output) -> None:
        self.out = out
        self._client: SyncClient | None = None

    @property
    def json(self) -> bool:
        return self.out.json

    def client(self) -> "SyncClient":
        """The daemon session (opened on first use; ``not_running`` if absent)."""
        if self._client is None:
            from pilotgw.client.sync import SyncClient

            self._client = SyncClient(config.socket_path())
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def resolve(self, target: str, code: str = "not_found") -> Addr:
        """Text address, bare node ID (network 0), else a hostname via the daemon.

        The daemon session is opened first, as the reference does, so with no
        daemon every such command reports ``not_running``.
        """
        client = self.client()
        try:
            addr = parse_target(target)
        except DecodeError:
            addr = None
        if addr is not None:
            return addr
        try:
            reply = client.resolve_hostname(target)
            resolved = Addr(0, int(reply["node_id"]))
            if isinstance(reply.get("address"), str):
                resolved = parse_target(reply["address"]) or resolved
        except (DaemonError, KeyError, TypeError, ValueError, DecodeError):
            message = (
                f'cannot resolve "{target}" — is the hostname correct and is there mutual trust? '
                "(see: pilotctl handshake)"
            )
            raise (InvalidArgument(message) if code == "invalid_argument" else NotFound(message)) from None
        self.out.note(f'resolved "{target}" → {resolved}')
        return resolved


def fail(code: str, message: str, hint: str | None = None) -> PilotError:
    """An error to ``raise`` with an explicit contract code."""
    return PilotError(message, code, hint)


def labelled(label: str, exc: PilotError, code: str = "connection_failed") -> PilotError:
    """``<command label>: <driver error>`` (§A9.5); not-running passes through."""
    if exc.code == "not_running":
        return exc
    return PilotError(f"{label}: {exc.message}", code, exc.hint if exc.code == code else None)
