"""received and inbox: what the data-exchange service saved under ~/.pilot
(services-and-cli.md §A17). No daemon is needed."""

from __future__ import annotations

from datetime import datetime

from pilotgw.client import mailbox
from pilotgw.cli import config
from pilotgw.cli.args import parse_flags
from pilotgw.cli.output import format_bytes
from pilotgw.cli.runtime import Ctx


def rfc3339_local(ts: float) -> str:
    """Go's ``time.RFC3339`` in local time (``Z`` when the offset is zero)."""
    text = datetime.fromtimestamp(int(ts)).astimezone().isoformat(timespec="seconds")
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def received(ctx: Ctx, args: list[str]) -> None:
    flags = parse_flags(args)
    base = config.pilot_dir()
    directory = mailbox.received_dir(base)
    if flags.bool("clear"):
        n = mailbox.clear_received(base)
        ctx.out.success({"cleared": n}, f"cleared {n} received file(s)")
        return
    found = mailbox.read_received(base)
    empty_text = [
        "no received files",
        "  files appear here when someone sends: pilotctl send-file <your-hostname> <file>",
    ]
    if found is None:
        ctx.out.success({"files": [], "total": 0}, empty_text)
        return
    files = [{"bytes": f.bytes, "modified": rfc3339_local(f.modified), "name": f.name, "path": f.path} for f in found]
    if not files:
        ctx.out.success({"dir": directory, "files": None, "total": 0}, empty_text)
        return
    lines = [f"Received files ({directory}):", "", f"  {'NAME':<40}  {'SIZE':<10}  RECEIVED"]
    lines += [f"  {f['name']:<40}  {format_bytes(f['bytes']):<10}  {f['modified']}" for f in files]
    lines += ["", f"total: {len(files)}"]
    ctx.out.success({"dir": directory, "files": files, "total": len(files)}, lines)


def inbox(ctx: Ctx, args: list[str]) -> None:
    flags = parse_flags(args)
    base = config.pilot_dir()
    directory = mailbox.inbox_dir(base)
    if flags.bool("clear"):
        n = mailbox.clear_inbox(base)
        ctx.out.success({"cleared": n}, f"cleared {n} message(s)")
        return
    found = mailbox.read_inbox(base)
    empty_text = [
        "inbox is empty",
        '  messages appear here when someone sends: pilotctl send-message <your-hostname> --data "hello"',
    ]
    if found is None:
        ctx.out.success({"messages": [], "total": 0}, empty_text)
        return
    if not found:
        ctx.out.success({"dir": directory, "messages": None, "total": 0}, empty_text)
        return
    lines = [f"Inbox ({len(found)} messages):", ""]
    for m in found:
        data = m.data.encode()
        preview = data[:80].decode("utf-8", "ignore") + ("..." if len(data) > 80 else "")
        lines += [f"  [{m.received_at}] from {m.sender} type={m.type}", f"    {preview}", ""]
    lines.append("clear with: pilotctl inbox --clear")
    ctx.out.success({"dir": directory, "messages": [m.doc for m in found], "total": len(found)}, lines)
