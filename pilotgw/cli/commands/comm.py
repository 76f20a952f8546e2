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

MAX_READ = 65535
MAX_FILE_FRAME = 1 << 24
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


def _read_frame(conn: "SyncConnection", timeout: float) -> tuple[int, bytes] | None:
    """One data-exchange frame (the ACK), or ``None`` if none arrives."""
    from pilotgw.overlay.dataexchange import HEADER_LEN, decode_header

    buf = bytearray()
    deadline = time.monotonic() + timeout
    need_len = HEADER_LEN
    frame_type = 0
    try:
        while len(buf) < need_len:
            chunk = conn.recv(MAX_READ, timeout=max(deadline - time.monotonic(), 0))
            if not chunk:
                return None
            buf += chunk
            if need_len == HEADER_LEN and len(buf) >= HEADER_LEN:
                frame_type, length = decode_header(buf)
                need_len = HEADER_LEN + length
    except (PilotError, ValueError):
        return None
    return frame_type, bytes(buf[HEADER_LEN:need_len])


def _send_file_to(ctx: Ctx, addr: Addr, name: str, data: bytes, bar: Progress) -> dict[str, Any]:
    from pilotgw.overlay.dataexchange import encode_file_prefix

    target = str(addr)
    conn = _dial(ctx, addr, PORT_DATA_EXCHANGE, f"cannot connect to {target} (data exchange port 1001)")
    try:
        try:
            conn.send(encode_file_prefix(name, len(data)))
            view = memoryview(data)
            step = 256 * 1024
            for i in range(0, len(view), step):
                conn.send(view[i : i + step])
                bar.advance(min(step, len(view) - i))
        except PilotError as exc:
            raise ConnectionFailed(f"send failed: {exc.message}") from None
        ack = _read_frame(conn, ACK_WAIT)
    finally:
        conn.close()
    result: dict[str, Any] = {"bytes": len(data), "destination": target, "filename": name}
    if ack is not None:
        result["ack"] = _text(ack[1])
    else:
        ctx.out.note(f"warning: no ACK from {target} (the receiver may have dropped the file)")
    return result


def send_file(ctx: Ctx, args: list[str]) -> None:
    """``send-file <target>... <filepath>``: one or more targets, file read once."""
    need(args, 2, "send-file <address|hostname> <filepath>")
    *targets, path = args
    name = os.path.basename(path.rstrip("/")) or path
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise NotFound(f"file not found: {path}") from None
    except PermissionError:
        raise PilotError(f"permission denied: {path}", "internal") from None
    except OSError as exc:
        raise PilotError(f"read file: {exc}", "internal") from None
    limit = MAX_FILE_FRAME - 2 - len(name.encode())
    if len(data) > limit:
        raise InvalidArgument(f"file too large: {len(data)} bytes (max 16777214 minus name length)")
    ctx.client()
    addrs = [ctx.resolve(t, code="invalid_argument") for t in targets]
    results: list[dict[str, Any]] = []
    failures: list[str] = []
    for addr in addrs:
        with Progress(len(data), f"{name} → {addr}", not ctx.json) as bar:
            try:
                results.append(_send_file_to(ctx, addr, name, data, bar))
            except PilotError as exc:
                if len(addrs) == 1 or exc.code == "not_running":
                    raise
                results.append({"destination": str(addr), "error": exc.message})
                failures.append(f"{addr}: {exc.message}")
    if len(addrs) == 1:
        ctx.out.success(results[0])
        return
    if failures:
        raise ConnectionFailed(f"send-file: {len(failures)} of {len(addrs)} targets failed: " + "; ".join(failures))
    ctx.out.success({"bytes": len(data), "filename": name, "results": results, "total": len(results)})


_MESSAGE_TYPES = {"text": 1, "binary": 2, "json": 3}


def send_message(ctx: Ctx, args: list[str]) -> None:
    from pilotgw.overlay.dataexchange import encode_header

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
        if kind not in _MESSAGE_TYPES:
            raise InvalidArgument(f'unknown type "{kind}" (use text, json, or binary)')
        payload = message.encode()
        try:
            conn.send(encode_header(_MESSAGE_TYPES[kind], len(payload)) + payload)
        except PilotError as exc:
            raise ConnectionFailed(f"send: {exc.message}") from None
        ack = _read_frame(conn, ACK_WAIT)
    finally:
        conn.close()
    data: dict[str, Any] = {"bytes": len(payload), "target": target, "type": kind}
    if ack is not None:
        data["ack"] = _text(ack[1])
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
