"""info, peers, connections, disconnect, ping, traceroute, bench
(services-and-cli.md §A16)."""

from __future__ import annotations

import time
from typing import Any

from pilotgw.client.errors import ConnectionFailed, InvalidArgument, PilotError
from pilotgw.cli.args import need, parse_flags, parse_uint_error
from pilotgw.cli.output import format_bytes, go_duration, go_quote, hms, round_ms
from pilotgw.cli.progress import Progress
from pilotgw.cli.runtime import Ctx, fail, labelled
from pilotgw.overlay.address import PORT_ECHO, parse_addr
from pilotgw.overlay.errors import DecodeError

MAX_ROWS = 50


def _info(ctx: Ctx) -> dict[str, Any]:
    try:
        return ctx.client().info()
    except PilotError as exc:
        raise labelled("info", exc) from None


def _conn_row(c: dict[str, Any]) -> tuple[Any, ...]:
    return (
        int(c.get("id", 0)),
        int(c.get("local_port", 0)),
        str(c.get("remote_addr", "")),
        int(c.get("remote_port", 0)),
        str(c.get("state", "")),
        format_bytes(c.get("cong_win", 0)),
        format_bytes(c.get("in_flight", 0)),
        float(c.get("srtt_ms", 0)),
    )


def info(ctx: Ctx, args: list[str]) -> None:
    data = _info(ctx)
    if ctx.json:
        ctx.out.success(data)
        return
    g = data.get
    lines = ["Pilot Protocol Daemon", f"  Node ID:     {g('node_id', 0)}", f"  Address:     {g('address', '')}"]
    if g("hostname"):
        lines.append(f"  Hostname:    {g('hostname')}")
    lines += [
        f"  Uptime:      {hms(g('uptime_secs', 0))}",
        f"  Connections: {g('connections', 0)}",
        f"  Ports:       {g('ports', 0)}",
        f"  Peers:       {g('peers', 0)}",
    ]
    if g("encrypt"):
        lines.append(
            f"  Encryption:  enabled (X25519 + AES-256-GCM), {g('encrypted_peers', 0)}/{g('peers', 0)} peers "
            f"encrypted, {g('authenticated_peers', 0)} authenticated"
        )
    else:
        lines.append("  Encryption:  disabled")
    if g("identity"):
        key = str(g("public_key", ""))
        lines.append(f"  Identity:    persistent (Ed25519 {key if len(key) <= 16 else key[:16] + '...'})")
    else:
        lines.append("  Identity:    ephemeral (not persisted)")
    if g("owner"):
        lines.append(f"  Owner:       {g('owner')}")
    lines += [
        f"  Traffic:     {format_bytes(g('bytes_sent', 0))} sent / {format_bytes(g('bytes_recv', 0))} recv",
        f"  Packets:     {g('pkts_sent', 0)} sent / {g('pkts_recv', 0)} recv",
    ]
    conns = g("conn_list") or []
    if conns:
        lines += ["", f"Active connections: {len(conns)}"]
        lines.append(
            f"  {'ID':<4}  {'LOCAL':<6}  {'REMOTE ADDR':<22}  {'RPORT':<6}  {'STATE':<11}  {'CWND':<8}  {'FLIGHT':<8}  {'SRTT':<6}"
        )
        for c in conns[:MAX_ROWS]:
            cid, lp, ra, rp, st, cw, fl, srtt = _conn_row(c)
            rec = " [RECOVERY]" if c.get("in_recovery") else ""
            lines.append(f"  {cid:<4}  {lp:<6}  {ra:<22}  {rp:<6}  {st:<11}  {cw:<8}  {fl:<8}  {srtt:.0f}ms{rec}")
        if len(conns) > MAX_ROWS:
            lines += ["", f"  ... and {len(conns) - MAX_ROWS} more connections (showing first {MAX_ROWS})"]
    ctx.out.success(data, lines)


def peers(ctx: Ctx, args: list[str]) -> None:
    flags = parse_flags(args)
    query = flags.get("search")
    data = _info(ctx)
    peer_list = data.get("peer_list") or []
    if query:
        q = query.lower()
        peer_list = [p for p in peer_list if q in str(p.get("node_id", "")).lower() or q in str(p.get("endpoint", "")).lower()]
    if not peer_list:
        if query:
            lines = [f"no peers matching {go_quote(query)}"]
        else:
            lines = ["no peers connected", "  peers appear when you communicate with other nodes"]
    else:
        lines = [f"{'NODE ID':<10}  {'ENDPOINT':<30}  {'ENCRYPTED':<20}  AUTH"]
        for p in peer_list[:MAX_ROWS]:
            enc = "yes (AES-256-GCM)" if p.get("encrypted") else "no"
            auth = "yes (Ed25519)" if p.get("authenticated") else "no"
            lines.append(f"{int(p.get('node_id', 0)):<10}  {str(p.get('endpoint', '')):<30}  {enc:<20}  {auth}")
        if len(peer_list) > MAX_ROWS:
            lines += ["", f"... and {len(peer_list) - MAX_ROWS} more peers (showing first {MAX_ROWS})"]
    ctx.out.success({"peers": peer_list or None, "total": len(peer_list)}, lines)


def connections(ctx: Ctx, args: list[str]) -> None:
    conns = _info(ctx).get("conn_list") or []
    if not conns:
        lines = ["no active connections", '  connect to a peer: pilotctl connect <address|hostname> --message "hello"']
    else:
        lines = [f"Active connections: {len(conns)}", ""]
        lines.append(
            f"{'ID':<4}  {'LOCAL':<6}  {'REMOTE ADDR':<22}  {'RPORT':<6}  {'STATE':<11}  {'CWND':<8}  {'FLIGHT':<8}  "
            f"{'SRTT':<8}  {'UNACK':<6}  {'OOO':<6}  {'PEERWIN':<8}  {'RCVWIN':<8}"
        )
        for c in conns[:MAX_ROWS]:
            cid, lp, ra, rp, st, cw, fl, srtt = _conn_row(c)
            srtt_text = f"{srtt:<6.0f}"
            lines.append(
                f"{cid:<4}  {lp:<6}  {ra:<22}  {rp:<6}  {st:<11}  {cw:<8}  {fl:<8}  {srtt_text}ms  "
                f"{int(c.get('unacked', 0)):<6}  {int(c.get('ooo_buf', 0)):<6}  "
                f"{format_bytes(c.get('peer_recv_win', 0)):<8}  {format_bytes(c.get('recv_win', 0)):<8}"
            )
            lines.append(
                f"      tx: {format_bytes(c.get('bytes_sent', 0))} ({int(c.get('segs_sent', 0))} segs)  "
                f"rx: {format_bytes(c.get('bytes_recv', 0))} ({int(c.get('segs_recv', 0))} segs)  "
                f"retx: {int(c.get('retransmits', 0))}  fast-retx: {int(c.get('fast_retx', 0))}  "
                f"sack: {int(c.get('sack_sent', 0))}/{int(c.get('sack_recv', 0))}  dup-ack: {int(c.get('dup_acks', 0))}"
            )
        if len(conns) > MAX_ROWS:
            lines += ["", f"... and {len(conns) - MAX_ROWS} more connections (showing first {MAX_ROWS})"]
    ctx.out.success({"connections": conns, "total": len(conns)}, lines)


def disconnect(ctx: Ctx, args: list[str]) -> None:
    need(args, 1, "disconnect <conn_id>")
    err = parse_uint_error(args[0], 32)
    if err:
        raise InvalidArgument(f"invalid connection ID: {err}")
    conn_id = int(args[0])
    try:
        ctx.client().disconnect(conn_id)
    except PilotError as exc:
        raise labelled("disconnect", exc) from None
    ctx.out.success({"conn_id": conn_id})


def _remaining(deadline: float) -> float:
    return max(deadline - time.monotonic(), 0.0)


def _read_error(exc: PilotError) -> str:
    return "i/o timeout" if exc.code == "timeout" else exc.message


def ping(ctx: Ctx, args: list[str]) -> None:
    flags = parse_flags(args)
    need(flags.positional, 1, "ping <address|hostname> [--count <n>] [--timeout <dur>]")
    count = flags.int("count", 4)
    timeout_ns = flags.duration("timeout", 30 * 10**9)
    client = ctx.client()
    addr = ctx.resolve(flags.positional[0])
    target = str(addr)
    deadline = time.monotonic() + timeout_ns / 1e9
    if not ctx.json:
        ctx.out.line(f"PING {target}")
    results: list[dict[str, Any]] = []
    for seq in range(max(count, 0)):
        if time.monotonic() >= deadline:
            ctx.out.success({"results": results or None, "target": target, "timeout": True}, "timeout")
            return
        start = time.perf_counter_ns()
        try:
            conn = client.dial(addr, PORT_ECHO, timeout=_remaining(deadline))
        except PilotError as exc:
            if exc.code == "not_running":
                raise
            message = "dial: timeout" if exc.code == "timeout" else exc.message
            results.append({"error": message, "seq": seq})
            if not ctx.json:
                ctx.out.line(f"seq={seq} error: {message}")
            if seq < count - 1:
                time.sleep(min(1.0, _remaining(deadline)))
            continue
        result: dict[str, Any]
        try:
            conn.send(f"ping-{seq}".encode())
            reply = conn.recv(1024, timeout=_remaining(deadline))
            elapsed = time.perf_counter_ns() - start
            if reply:
                result = {"bytes": len(reply), "rtt_ms": elapsed / 1e6, "seq": seq}
            else:
                result = {"error": "EOF", "rtt_ms": elapsed / 1e6, "seq": seq}
        except PilotError as exc:
            elapsed = time.perf_counter_ns() - start
            result = {"error": _read_error(exc), "rtt_ms": elapsed / 1e6, "seq": seq}
        finally:
            conn.close()
        results.append(result)
        if not ctx.json:
            if "error" in result:
                ctx.out.line(f"seq={seq} error: {result['error']}")
            else:
                ctx.out.line(f"seq={seq} bytes={result['bytes']} time={go_duration(elapsed)}")
        if seq < count - 1:
            time.sleep(min(1.0, _remaining(deadline)))
    if ctx.json:
        ctx.out.success({"results": results or None, "target": target, "timeout": False})


def traceroute(ctx: Ctx, args: list[str]) -> None:
    flags = parse_flags(args)
    need(flags.positional, 1, "traceroute <address> [--timeout <dur>]")
    timeout_ns = flags.duration("timeout", 30 * 10**9)
    try:
        addr = parse_addr(flags.positional[0])
    except DecodeError as exc:
        raise InvalidArgument(f"parse address: {exc}") from None
    target = str(addr)
    client = ctx.client()
    deadline = time.monotonic() + timeout_ns / 1e9
    if not ctx.json:
        ctx.out.line(f"TRACEROUTE {target}")
    start = time.perf_counter_ns()
    try:
        conn = client.dial(addr, PORT_ECHO, timeout=_remaining(deadline))
    except PilotError as exc:
        if exc.code in ("not_running", "timeout"):
            raise (fail("timeout", "dial timeout") if exc.code == "timeout" else exc) from None
        setup = time.perf_counter_ns() - start
        ctx.out.success(
            {"error": exc.message, "setup_ms": setup / 1e6, "target": target},
            f"  1  {target}  connection failed: {exc.message}",
        )
        return
    setup = time.perf_counter_ns() - start
    if not ctx.json:
        ctx.out.line(f"  1  {target}  setup={go_duration(setup)}")
    samples: list[dict[str, Any]] = []
    try:
        for i in range(3):
            t0 = time.perf_counter_ns()
            try:
                conn.send(f"trace-{i}".encode())
                reply = conn.recv(1024, timeout=_remaining(deadline))
                rtt = time.perf_counter_ns() - t0
                sample = {"bytes": len(reply), "rtt_ms": rtt / 1e6} if reply else {"error": "EOF", "rtt_ms": rtt / 1e6}
            except PilotError as exc:
                rtt = time.perf_counter_ns() - t0
                sample = {"error": _read_error(exc), "rtt_ms": rtt / 1e6}
            samples.append(sample)
            if not ctx.json:
                if "error" in sample:
                    ctx.out.line(f"     rtt={go_duration(rtt)} error: {sample['error']}")
                else:
                    ctx.out.line(f"     rtt={go_duration(rtt)} bytes={sample['bytes']}")
    finally:
        conn.close()
    ctx.out.success(
        {"rtt_samples": samples, "setup_ms": setup / 1e6, "target": target},
        [
            "",
            "setup includes: tunnel negotiation + SYN/ACK handshake",
            "rtt is: data round-trip over established connection",
        ],
    )


_PATTERN = bytes(range(256)) * 256  # 64 KiB: byte j of every 4096-byte chunk is j % 256


def bench(ctx: Ctx, args: list[str]) -> None:
    flags = parse_flags(args)
    usage = "bench <address|hostname> [size_mb] [--timeout <dur>]"
    need(flags.positional, 1, usage)
    size_mb = 1.0
    if len(flags.positional) > 1:
        text = flags.positional[1]
        try:
            size_mb = float(text)
        except ValueError:
            raise InvalidArgument(f'invalid size: strconv.ParseFloat: parsing "{text}": invalid syntax') from None
    timeout_ns = flags.duration("timeout", 120 * 10**9)
    total = int(size_mb * 1048576)
    client = ctx.client()
    addr = ctx.resolve(flags.positional[0])
    target = str(addr)
    if not ctx.json:
        ctx.out.line(f"BENCH {target} — sending {format_bytes(total)} via echo port")
    try:
        conn = client.dial(addr, PORT_ECHO)
    except PilotError as exc:
        if exc.code == "not_running":
            raise
        raise ConnectionFailed(
            f"cannot connect to {target} echo port", hint=f"check that {target} is reachable: pilotctl ping {target}"
        ) from None
    start = time.perf_counter_ns()
    deadline = time.monotonic() + timeout_ns / 1e9
    received = 0
    with Progress(total, "bench", not ctx.json) as bar:
        sent = 0
        try:
            while sent < total:
                chunk = _PATTERN[: min(len(_PATTERN), total - sent)]
                conn.send(chunk)
                sent += len(chunk)
                got = conn.recv_available()
                received += got
                bar.advance(got)
        except PilotError as exc:
            conn.close()
            raise ConnectionFailed(f"write: {exc.message}") from None
        send_ns = time.perf_counter_ns() - start
        timed_out = False
        while received < total:
            try:
                chunk = conn.recv(1 << 20, timeout=_remaining(deadline))
            except PilotError:
                timed_out = True
                break
            if not chunk:
                break
            received += len(chunk)
            bar.advance(len(chunk))
    total_ns = time.perf_counter_ns() - start
    conn.close()
    if timed_out and not ctx.json:
        ctx.out.line(f"warning: receive timed out (got {format_bytes(received)} of {format_bytes(total)})")
    mib = 1048576
    send_mbps = sent / mib / (send_ns / 1e9) if send_ns else 0.0
    total_mbps = received / mib / (total_ns / 1e9) if total_ns else 0.0
    data = {
        "recv_bytes": received,
        "send_duration_ms": round_ms(send_ns) // 1_000_000,
        "send_mbps": send_mbps,
        "sent_bytes": sent,
        "target": target,
        "total_duration_ms": round_ms(total_ns) // 1_000_000,
        "total_mbps": total_mbps,
    }
    ctx.out.success(
        data,
        [
            f"  Sent:     {format_bytes(sent)} in {go_duration(round_ms(send_ns))} ({send_mbps:.1f} MB/s)",
            f"  Echoed:   {format_bytes(received)} in {go_duration(round_ms(total_ns))} ({total_mbps:.1f} MB/s round-trip)",
        ],
    )
