"""What the local daemon's data-exchange service saved: ``~/.pilot/inbox``
and ``~/.pilot/received`` (services-and-cli.md §A3.4-A3.5, §A17).

The daemon writes these folders itself and there is no IPC operation to
read them, so an agent on the same machine reads the files directly -- the
same way ``pilotctl inbox`` / ``received`` do (they use this module). The
folder is ``$HOME/.pilot`` of the calling process unless ``pilot_dir`` names
the daemon's.

Inbox files are the reference's JSON documents; their ``data`` is lossy for
binary payloads (Q3), so :attr:`Message.payload` prefers the exact bytes our
daemon keeps in ``inbox-raw/`` (C-9).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

from pilotgw.client.errors import NotFound, PilotError


def default_dir() -> str:
    """``$HOME/.pilot``; ``internal`` error when no home directory is known."""
    home = os.environ.get("HOME") or os.path.expanduser("~")
    if not home or home == "~":
        raise PilotError("cannot determine home directory", "internal")
    return os.path.join(home, ".pilot")


@dataclass(frozen=True)
class Message:
    """One inbox entry. ``doc`` is the whole parsed file, as ``pilotctl inbox
    --json`` prints it; the other fields are read from it for convenience."""

    path: str
    doc: dict[str, Any] = field(repr=False)
    type: str = ""  # TEXT, JSON, BINARY
    sender: str = ""  # text address of the sending node
    data: str = ""
    received_at: str = ""
    raw: bytes | None = field(default=None, repr=False)

    @property
    def payload(self) -> bytes:
        """The message bytes: exact for BINARY when the daemon kept them."""
        return self.raw if self.raw is not None else self.data.encode("utf-8")

    def json(self) -> Any:
        """The payload parsed as JSON (for ``type == "JSON"``); raises ``ValueError``."""
        return json.loads(self.data)


@dataclass(frozen=True)
class ReceivedFile:
    name: str
    path: str
    bytes: int
    modified: float  # mtime, Unix seconds


def _entries(directory: str) -> list[os.DirEntry[str]] | None:
    """Non-directory entries in name order; ``None`` if the folder is missing."""
    try:
        with os.scandir(directory) as it:
            return sorted((e for e in it if not e.is_dir()), key=lambda e: e.name)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise PilotError(f"read directory: {exc}", "internal") from None


def _dir(name: str, base: str | None) -> str:
    return os.path.join(base if base is not None else default_dir(), name)


def inbox_dir(pilot_dir: str | None = None) -> str:
    return _dir("inbox", pilot_dir)


def received_dir(pilot_dir: str | None = None) -> str:
    return _dir("received", pilot_dir)


def _raw_bytes(base: str, json_path: str) -> bytes | None:
    name = os.path.basename(json_path)
    if not name.endswith(".json"):
        return None
    try:
        with open(os.path.join(base, "inbox-raw", name[: -len(".json")] + ".bin"), "rb") as f:
            return f.read()
    except OSError:
        return None


def read_inbox(pilot_dir: str | None = None) -> list[Message] | None:
    """Inbox messages in file-name order (grouped by type, then time);
    unparsable files are skipped. ``None`` when the folder does not exist."""
    base = pilot_dir if pilot_dir is not None else default_dir()
    entries = _entries(os.path.join(base, "inbox"))
    if entries is None:
        return None
    messages: list[Message] = []
    for e in entries:
        try:
            with open(e.path, "rb") as f:
                doc = json.loads(f.read().decode("utf-8", "replace"))
        except (OSError, ValueError):
            continue
        fields = doc if isinstance(doc, dict) else {}
        kind = str(fields.get("type", ""))
        messages.append(
            Message(
                path=e.path,
                doc=doc,
                type=kind,
                sender=str(fields.get("from", "")),
                data=str(fields.get("data", "")),
                received_at=str(fields.get("received_at", "")),
                raw=_raw_bytes(base, e.path) if kind == "BINARY" else None,
            )
        )
    return messages


def read_received(pilot_dir: str | None = None) -> list[ReceivedFile] | None:
    """Received files in name order (sub-folders, such as the daemon's
    partial transfers, are skipped). ``None`` when the folder does not exist."""
    entries = _entries(received_dir(pilot_dir))
    if entries is None:
        return None
    files: list[ReceivedFile] = []
    for e in entries:
        try:
            st = e.stat()
        except OSError:
            continue
        files.append(ReceivedFile(e.name, e.path, st.st_size, st.st_mtime))
    return files


def _clear(directory: str, missing: str) -> int:
    entries = _entries(directory)
    if entries is None:
        raise NotFound(missing)
    cleared = 0
    for entry in entries:
        try:
            os.unlink(entry.path)
            cleared += 1
        except OSError:
            pass
    return cleared


def clear_inbox(pilot_dir: str | None = None) -> int:
    """Delete every inbox message (and the raw copies); ``not_found`` if none."""
    cleared = _clear(inbox_dir(pilot_dir), "inbox is empty")
    raw = _dir("inbox-raw", pilot_dir)
    for entry in _entries(raw) or []:
        try:
            os.unlink(entry.path)
        except OSError:
            pass
    return cleared


def clear_received(pilot_dir: str | None = None) -> int:
    """Delete every received file; ``not_found`` if the folder is missing."""
    return _clear(received_dir(pilot_dir), "no received files")
