"""received and inbox: what the data-exchange service saved under ~/.pilot
(services-and-cli.md §A17). No daemon is needed."""

from __future__ import annotations

import json
import os
from datetime import datetime
from typing import Any

from pilotgw.client.errors import NotFound, PilotError
from pilotgw.cli import config
from pilotgw.cli.args import parse_flags
from pilotgw.cli.output import format_bytes
from pilotgw.cli.runtime import Ctx


def rfc3339_local(ts: float) -> str:
    """Go's ``time.RFC3339`` in local time (``Z`` when the offset is zero)."""
    text = datetime.fromtimestamp(int(ts)).astimezone().isoformat(timespec="seconds")
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def _entries(directory: str) -> list[os.DirEntry[str]] | None:
    try:
        with os.scandir(directory) as it:
            return sorted((e for e in it if not e.is_dir()), key=lambda e: e.name)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise PilotError(f"read directory: {exc}", "internal") from None


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


def received(ctx: Ctx, args: list[str]) -> None:
    flags = parse_flags(args)
    directory = config.path("received")
    if flags.bool("clear"):
        n = _clear(directory, "no received files")
        ctx.out.success({"cleared": n}, f"cleared {n} received file(s)")
        return
    entries = _entries(directory)
    empty_text = [
        "no received files",
        "  files appear here when someone sends: pilotctl send-file <your-hostname> <file>",
    ]
    if entries is None:
        ctx.out.success({"files": [], "total": 0}, empty_text)
        return
    files: list[dict[str, Any]] = []
    for e in entries:
        try:
            st = e.stat()
        except OSError:
            continue
        files.append({"bytes": st.st_size, "modified": rfc3339_local(st.st_mtime), "name": e.name, "path": e.path})
    if not files:
        ctx.out.success({"dir": directory, "files": None, "total": 0}, empty_text)
        return
    lines = [f"Received files ({directory}):", "", f"  {'NAME':<40}  {'SIZE':<10}  RECEIVED"]
    lines += [f"  {f['name']:<40}  {format_bytes(f['bytes']):<10}  {f['modified']}" for f in files]
    lines += ["", f"total: {len(files)}"]
    ctx.out.success({"dir": directory, "files": files, "total": len(files)}, lines)


def inbox(ctx: Ctx, args: list[str]) -> None:
    flags = parse_flags(args)
    directory = config.path("inbox")
    if flags.bool("clear"):
        n = _clear(directory, "inbox is empty")
        ctx.out.success({"cleared": n}, f"cleared {n} message(s)")
        return
    entries = _entries(directory)
    empty_text = [
        "inbox is empty",
        '  messages appear here when someone sends: pilotctl send-message <your-hostname> --data "hello"',
    ]
    if entries is None:
        ctx.out.success({"messages": [], "total": 0}, empty_text)
        return
    messages: list[Any] = []
    for e in entries:
        try:
            with open(e.path, "rb") as f:
                messages.append(json.loads(f.read().decode("utf-8", "replace")))
        except (OSError, ValueError):
            continue
    if not messages:
        ctx.out.success({"dir": directory, "messages": None, "total": 0}, empty_text)
        return
    lines = [f"Inbox ({len(messages)} messages):", ""]
    for m in messages:
        m = m if isinstance(m, dict) else {}
        data = str(m.get("data", "")).encode()
        preview = data[:80].decode("utf-8", "ignore") + ("..." if len(data) > 80 else "")
        lines += [f"  [{m.get('received_at', '')}] from {m.get('from', '')} type={m.get('type', '')}", f"    {preview}", ""]
    lines.append("clear with: pilotctl inbox --clear")
    ctx.out.success({"dir": directory, "messages": messages, "total": len(messages)}, lines)
