"""connect, send, recv, send-file, send-message, subscribe, publish, listen,
broadcast (services-and-cli.md §A13)."""

from __future__ import annotations

import os
import sys
import time
from typing import TYPE_CHECKING, Any

from pilotgw.client.errors import ConnectionFailed, InvalidArgument, NotFound, PilotError
from pilotgw.cli.args import need, parse_flags, parse_port
from pilotgw.cli.output import go_duration
from pilotgw.cli.progress import Progress
from pilotgw.cli.runtime import Ctx, fail, labelled
from pilotgw.overlay.address import PORT_DATA_EXCHANGE, PORT_EVENT_STREAM, PORT_STDIO, Addr

if TYPE_CHECKING:
    from pilotgw.client.sync import SyncConnection
    from pilotgw.services.filetransfer import Delivery

MAX_READ = 65535
ACK_WAIT = 30.0


def _text(data: bytes) -> str:
    return data.decode("utf-8", "replace")


def _ping_hint(target: str) -> str:
    return f"check that {target} is reachable: pilotctl ping {target}"


def _dial(ctx: Ctx, addr: Addr, port: int, message: str) -> "SyncConnection":
    try:
        return ctx.client().dial(addr, port)
    except PilotError as exc:
        if exc.code == "not_running":
            raise
        raise ConnectionFailed(message, hint=_ping_hint(str(addr))) from None


def _exchange(
    ctx: Ctx, addr: Addr, port: int, message: bytes, timeout_ns: int, hint: str, prefix: tuple[str, str]
) -> None:
    """One write, one read raced against the timeout (connect/send)."""
    target = str(addr)
    conn = _dial(ctx, addr, port, f"cannot connect to {target} port {port}")
    try:
        try:
            conn.send(message)
        except PilotError as exc:
            raise ConnectionFailed(f"{prefix[0]}: {exc.message}") from None
        try:
            response = conn.recv(MAX_READ, timeout=timeout_ns / 1e9)
        except PilotError as exc:
            if exc.code == "timeout":
                raise fail("timeout", f"no response within {go_duration(timeout_ns)}", hint) from None
            raise ConnectionFailed(f"{prefix[1]}: {exc.message}") from None
    finally:
        conn.close()
    text = _text(response)
    data = {"port": port, "response": text, "sent": _text(message), "target": target}
    if ctx.json:
        ctx.out.success(data)
    elif text:
        ctx.out.line(text)
    else:
        ctx.out.note(f"sent {len(message)} bytes (no response)")


def _read_stdin() -> bytes:
    """Lines joined with ``\\n`` (terminators dropped); a line over 64 KiB
    ends reading, as the reference's line scanner does."""
    lines: list[bytes] = []
    for raw in sys.stdin.buffer:
        line = raw[:-1] if raw.endswith(b"\n") else raw
        line = line[:-1] if line.endswith(b"\r") else line
        if len(line) > 64 * 1024:
            break
        lines.append(line)
    return b"\n".join(lines)


def connect(ctx: Ctx, args: list[str]) -> None:
    flags = parse_flags(args)
    need(flags.positional, 1, "connect <address|hostname> [port] [--message <msg>] [--timeout <dur>]")
    port = parse_port(flags.positional[1]) if len(flags.positional) > 1 else PORT_STDIO
    timeout_ns = flags.duration("timeout", 30 * 10**9)
    message = flags.get("message")
    hint = "increase with --timeout, or check if the target is listening on that port"
    if message:
        addr = ctx.resolve(flags.positional[0])
        _exchange(ctx, addr, port, message.encode(), timeout_ns, hint, ("write", "read"))
        return
    if sys.stdin.isatty():
        raise InvalidArgument(
            "--message is required (interactive mode not supported)",
            hint="use --message to send a single message, or pipe data via stdin",
        )
    addr = ctx.resolve(flags.positional[0])
    data = _read_stdin()
    if not data:
        raise InvalidArgument("no data on stdin — use --message or pipe data")
    _exchange(ctx, addr, port, data, timeout_ns, hint, ("write failed", "read failed"))


def send(ctx: Ctx, args: list[str]) -> None:
    flags = parse_flags(args)
    need(flags.positional, 2, "send <address|hostname> <port> --data <msg> [--timeout <dur>]")
    port = parse_port(flags.positional[1])
    message = flags.get("data")
    if not message:
        raise InvalidArgument("--data is required")
    timeout_ns = flags.duration("timeout", 30 * 10**9)
    addr = ctx.resolve(flags.positional[0])
    hint = f"increase with --timeout, or check peer: pilotctl ping {addr}"
    _exchange(ctx, addr, port, message.encode(), timeout_ns, hint, ("write failed", "read failed"))


def recv(ctx: Ctx, args: list[str]) -> None:
    flags = parse_flags(args)
    need(flags.positional, 1, "recv <port> [--count <n>] [--timeout <dur>]")
    port = parse_port(flags.positional[0])
    count = flags.int("count", 1)
    timeout_ns = flags.duration("timeout", 30 * 10**9)
    client = ctx.client()
    try:
        listener = client.listen(port)
    except PilotError as exc:
        raise labelled("listen", exc) from None
    deadline = time.monotonic() + timeout_ns / 1e9
    messages: list[dict[str, Any]] = []
    for seq in range(max(count, 0)):
        try:
            conn = listener.accept(timeout=max(deadline - time.monotonic(), 0))
        except PilotError as exc:
            if exc.code != "timeout":
                raise ConnectionFailed("accept error") from None
            ctx.out.note("timeout")
            if ctx.json:
                ctx.out.success({"messages": messages or None, "timeout": True})
            return
        try:
            data = conn.recv(MAX_READ, timeout=max(deadline - time.monotonic(), 0))
            entry: dict[str, Any] = {"bytes": len(data), "data": _text(data), "port": port, "seq": seq}
            if not ctx.json:
                ctx.out.line(entry["data"])
        except PilotError as exc:
            message = "i/o timeout" if exc.code == "timeout" else exc.message
            entry = {"error": message, "port": port, "seq": seq}
            ctx.out.note(f"error: {message}")
        finally:
            conn.close()
        messages.append(entry)
    if ctx.json:
        ctx.out.success({"messages": messages or None, "timeout": False})


def _check_file(path: str) -> int:
    """The file's size; the reference's errors for a file it cannot read."""
    try:
        with open(path, "rb") as f:
            return os.fstat(f.fileno()).st_size
    except FileNotFoundError:
        raise NotFound(f"file not found: {path}") from None
    except PermissionError:
        raise PilotError(f"permission denied: {path}", "internal") from None
    except OSError as exc:
        raise PilotError(f"read file: {exc}", "internal") from None


def _delivery_result(ctx: Ctx, d: "Delivery", name: str, size: int) -> dict[str, Any]:
    """The contract's ``{ack?, bytes, destination, filename}`` for a success.

    A bulk (pilotgw-to-pilotgw) delivery ends with the receiver's verified
    result instead of an ACK frame; it is reported with the ACK text a
    reference receiver sends for the same file, so scripts see one shape.
    """
    result: dict[str, Any] = {"bytes": size, "destination": d.target, "filename": name}
    if d.method == "bulk":
        result["ack"] = f"ACK FILE {size} bytes"
    elif d.ack is not None:
        result["ack"] = d.ack
    else:
        ctx.out.note(f"warning: no ACK from {d.target} (the receiver may have dropped the file)")
    return result


def _delivery_error(d: "Delivery") -> PilotError:
    if d.error.startswith("cannot connect"):
        return ConnectionFailed(
            f"cannot connect to {d.target} (data exchange port 1001)", hint=_ping_hint(d.target)
        )
    if d.error.startswith("file too large"):
        return InvalidArgument(d.error)
    return ConnectionFailed(d.error if d.error.startswith("send failed") else f"send failed: {d.error}")


def send_file(ctx: Ctx, args: list[str]) -> None:
    """``send-file <target>... <filepath>``: one or more targets, the file read
    once (pilotgw receivers relay it along a chain, reference receivers get
    the single FILE frame they accept); one progress bar per receiver."""
    need(args, 2, "send-file <address|hostname> <filepath>")
    *targets, path = args
    name = os.path.basename(path.rstrip("/")) or path
    size = _check_file(path)
    client = ctx.client()
    addrs = list(dict.fromkeys(ctx.resolve(t, code="invalid_argument") for t in targets))
    rows = {str(a): f"{name} → {a}" for a in addrs}
    with Progress(size, rows, not ctx.json) as bar:
        deliveries = client.send_file(addrs, path, lambda node, done, _total: bar.update(node, done), name=name)
    if len(addrs) == 1:
        if not deliveries[0].ok:
            raise _delivery_error(deliveries[0])
        ctx.out.success(_delivery_result(ctx, deliveries[0], name, size))
        return
    results: list[dict[str, Any]] = []
    failures: list[str] = []
    for d in deliveries:
        if d.ok:
            results.append(_delivery_result(ctx, d, name, size))
        else:
            message = _delivery_error(d).message
            results.append({"destination": d.target, "error": message})
            failures.append(f"{d.target}: {message}")
    if failures:
        raise ConnectionFailed(f"send-file: {len(failures)} of {len(addrs)} targets failed: " + "; ".join(failures))
    ctx.out.success({"bytes": size, "filename": name, "results": results, "total": len(results)})


def send_message(ctx: Ctx, args: list[str]) -> None:
    from pilotgw.client import messaging
    from pilotgw.client.sync import read_ack

    flags = parse_flags(args)
    need(flags.positional, 1, "send-message <address|hostname> --data <text> [--type text|json|binary]")
    message = flags.get("data")
    if not message:
        raise InvalidArgument("--data is required")
    kind = flags.get("type", "text")
    addr = ctx.resolve(flags.positional[0])
    target = str(addr)
    conn = _dial(ctx, addr, PORT_DATA_EXCHANGE, f"cannot connect to {target} (data exchange port 1001)")
    try:
        kind = messaging.message_kind(message, kind)  # checked after dialling, as the reference does
        payload = message.encode()
        try:
            conn.send(messaging.message_frame(kind, payload))
        except PilotError as exc:
            raise ConnectionFailed(f"send: {exc.message}") from None
        ack = read_ack(conn, ACK_WAIT)
    finally:
        conn.close()
    data: dict[str, Any] = {"bytes": len(payload), "target": target, "type": kind}
    if ack is not None:
        data["ack"] = ack
    ctx.out.success(data)


def subscribe(ctx: Ctx, args: list[str]) -> None:
    from pilotgw.overlay import eventstream

    flags = parse_flags(args)
    need(flags.positional, 2, "subscribe <address|hostname> <topic> [--count <n>] [--timeout <dur>]")
    topic = flags.positional[1]
    count = flags.int("count", 0)
    timeout_ns = flags.duration("timeout", 0)
    addr = ctx.resolve(flags.positional[0])
    target = str(addr)
    message = f"cannot subscribe on {target} (event stream port 1002)"
    conn = _dial(ctx, addr, PORT_EVENT_STREAM, message)
    try:
        conn.send(eventstream.subscribe(topic))
    except PilotError:
        conn.close()
        raise ConnectionFailed(message, hint=_ping_hint(target)) from None
    ctx.out.note(f'subscribed to "{topic}" on {target} — waiting for events...')
    deadline = time.monotonic() + timeout_ns / 1e9 if timeout_ns > 0 else None
    reader = eventstream.EventReader()
    events: list[dict[str, Any]] = []
    try:
        while count <= 0 or len(events) < count:
            try:
                chunk = conn.recv(MAX_READ, None if deadline is None else max(deadline - time.monotonic(), 0))
                if not chunk:
                    raise ConnectionFailed("EOF")
                batch = reader.feed(chunk)
            except PilotError as exc:
                if exc.code == "timeout":
                    ctx.out.note("timeout")
                    if ctx.json and count > 0:
                        ctx.out.success({"events": events or None, "timeout": True})
                    return
                if count > 0 and events:
                    if ctx.json:
                        ctx.out.success({"error": exc.message, "events": events, "timeout": False})
                    return
                raise ConnectionFailed(f"recv: {exc.message}") from None
            except ValueError as exc:
                raise ConnectionFailed(f"recv: {exc}") from None
            for ev in batch:
                item = {"bytes": len(ev.payload), "data": _text(ev.payload), "topic": ev.topic}
                if ctx.json:
                    if count <= 0:
                        ctx.out.ndjson(item)
                else:
                    ctx.out.line(f"[{ev.topic}] {item['data']}")
                events.append(item)
                if 0 < count <= len(events):
                    break
    finally:
        conn.close()
    if ctx.json and count > 0:
        ctx.out.success({"events": events, "timeout": False})


def publish(ctx: Ctx, args: list[str]) -> None:
    from pilotgw.overlay import eventstream

    flags = parse_flags(args)
    need(flags.positional, 2, "publish <address|hostname> <topic> --data <message>")
    topic = flags.positional[1]
    message = flags.get("data")
    if not message:
        raise InvalidArgument("--data is required")
    addr = ctx.resolve(flags.positional[0])
    target = str(addr)
    conn = _dial(ctx, addr, PORT_EVENT_STREAM, f"cannot connect to {target} (event stream port 1002)")
    payload = message.encode()
    try:
        try:
            conn.send(eventstream.subscribe(topic) + eventstream.encode(eventstream.Event(topic, payload)))
        except (PilotError, ValueError) as exc:
            raise ConnectionFailed(f"publish failed: {getattr(exc, 'message', exc)}") from None
    finally:
        conn.close()
    ctx.out.success({"bytes": len(payload), "target": target, "topic": topic})


def listen(ctx: Ctx, args: list[str]) -> None:
    flags = parse_flags(args)
    need(flags.positional, 1, "listen <port> [--count <n>] [--timeout <dur>]")
    port = parse_port(flags.positional[0])
    count = flags.int("count", 0)
    timeout_ns = flags.duration("timeout", 0)
    client = ctx.client()
    client.watch_datagrams()
    ctx.out.note(f"listening on port {port} — waiting for datagrams...")
    deadline = time.monotonic() + timeout_ns / 1e9 if timeout_ns > 0 else None
    messages: list[dict[str, Any]] = []
    while count <= 0 or len(messages) < count:
        try:
            dg = client.recv_datagram(port, None if deadline is None else max(deadline - time.monotonic(), 0))
        except PilotError as exc:
            if exc.code == "timeout":
                ctx.out.note("timeout")
                if ctx.json and count > 0:
                    ctx.out.success({"messages": messages or None, "timeout": True})
                return
            raise ConnectionFailed(f"recv: {exc.message}") from None
        item = {"bytes": len(dg.data), "data": _text(dg.data), "src_addr": str(dg.src_addr), "src_port": dg.src_port}
        if ctx.json:
            if count <= 0:
                ctx.out.ndjson(item)
        else:
            ctx.out.line(f"[{dg.src_addr}:{dg.src_port}] {item['data']}")
        messages.append(item)
    if ctx.json:
        ctx.out.success({"messages": messages, "timeout": False})


def broadcast(ctx: Ctx, args: list[str]) -> None:
    raise fail("unavailable", "broadcast is not available yet — custom networks are WIP")
