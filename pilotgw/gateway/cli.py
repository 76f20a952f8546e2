"""``pilot-gateway``: the gateway in the foreground (systemd units, containers,
and what ``pilotctl gateway start`` runs detached).

::

    pilot-gateway [--socket PATH] [--subnet CIDR] [--ports LIST] [--state-dir DIR]
                  [--log-level L] [--log-format text|json] [--json]
                  [<pilot-addr|hostname> [<local-ip>]]...

An argument that parses as an IPv4 address is the local IP of the address
before it (the reference's ``gateway run`` rule). Flags may also be written
Go-style with one dash (``-subnet``). Once the gateway answers on its control
socket it prints ``mapped <ip> → <addr>`` per mapping and ``gateway running``
(``--json``: the CLI contract's envelope ``{"data":{"mappings","pid","subnet"},
"status":"ok"}``), then runs until SIGINT/SIGTERM or ``pilotctl gateway
stop``. Errors print ``error: ...`` / ``hint:  ...`` (``--json``: the error
envelope) on stderr and exit 1; usage errors exit 2. Logs go to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import logging
import sys
import time
from typing import Any, Callable, Sequence

from pilotgw.cli.output import Output
from pilotgw.client.calls import default_socket_path
from pilotgw.proxy.mapping import DEFAULT_SUBNET

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING, "error": logging.ERROR}


class UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(message)


def _parser() -> _Parser:
    p = _Parser(prog="pilot-gateway", description="Map overlay agents to local IPs (TCP on any port, UDP, ping).")
    p.add_argument("--socket", "-socket", default=None, help="daemon IPC socket (default: $PILOT_SOCKET, config, /tmp/pilot.sock)")
    p.add_argument("--subnet", "-subnet", default=DEFAULT_SUBNET, help=f"gateway subnet (default {DEFAULT_SUBNET})")
    p.add_argument("--ports", "-ports", default="", help="comma-separated ports to proxy (default: every port)")
    p.add_argument("--state-dir", "-state-dir", default=None, help="mappings, control socket, PID file (default ~/.pilot)")
    p.add_argument("--log-level", "-log-level", default="info", choices=sorted(LEVELS))
    p.add_argument("--log-format", "-log-format", default="text", choices=["text", "json"])
    p.add_argument("--json", "-json", action="store_true", help="print the start result and errors as JSON")
    p.add_argument("targets", nargs="*", metavar="pilot-addr|hostname [local-ip]")
    return p


def parse_ports(text: str) -> list[int] | None:
    """``"80, 443"`` -> ``[80, 443]``; empty -> ``None`` (every port)."""
    if not text.strip():
        return None
    ports = []
    for part in text.split(","):
        item = part.strip()
        if not item.isdigit() or not 1 <= int(item) <= 65535:
            raise UsageError(f'invalid port "{item}": must be 1-65535')
        ports.append(int(item))
    return ports


def pair_targets(args: Sequence[str]) -> list[tuple[str, str | None]]:
    """Addresses with their optional local IPs (an IP belongs to the address before it)."""
    pairs: list[tuple[str, str | None]] = []
    for arg in args:
        try:
            ipaddress.IPv4Address(arg)
            is_ip = True
        except ValueError:
            is_ip = False
        if is_ip:
            if not pairs or pairs[-1][1] is not None:
                raise UsageError(f"local IP {arg} does not follow a pilot address")
            pairs[-1] = (pairs[-1][0], arg)
        else:
            pairs.append((arg, None))
    return pairs


class _Formatter(logging.Formatter):
    """logfmt or JSON lines, like the daemon's logs."""

    def __init__(self, fmt: str) -> None:
        super().__init__()
        self._json = fmt == "json"

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"
        level = {"WARNING": "WARN"}.get(record.levelname, record.levelname)
        component = record.name.rpartition(".")[2]
        msg = record.getMessage()
        if record.exc_info:
            msg += "\n" + self.formatException(record.exc_info)
        if self._json:
            return json.dumps({"time": stamp, "level": level, "component": component, "msg": msg}, ensure_ascii=False)
        return f"time={stamp} level={level} component={component} msg={json.dumps(msg, ensure_ascii=False)}"


def setup_logging(level: str, fmt: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter(fmt))
    root = logging.getLogger("pilotgw")
    root.handlers[:] = [handler]
    root.setLevel(LEVELS.get(level, logging.INFO))
    root.propagate = False


def announce(out: Output, data: dict[str, Any]) -> None:
    """The contract's start output: text lines or the JSON envelope."""
    lines = [f"mapped {m['local_ip']} → {m['pilot_addr']}" for m in data["mappings"] or ()]
    out.success(data, lines + ["gateway running"])


async def _run(opts: argparse.Namespace, targets: list[tuple[str, str | None]], out: Output) -> int:
    from pilotgw.gateway.service import GatewayService

    ports = parse_ports(opts.ports)
    service = GatewayService(opts.socket or default_socket_path(), opts.subnet, ports, opts.state_dir)
    await service.start(targets)
    try:
        status = service.status()
        announce(out, {"mappings": status["mappings"], "pid": status["pid"], "subnet": status["subnet"]})
    except BrokenPipeError:
        pass  # whoever started us stopped listening; keep running
    await service.serve_forever()
    return 0


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop for the gateway's own loop, but never as the global policy:
    pyroute2 runs a private asyncio loop in the kernel worker threads, and
    uvloop cannot open netlink sockets."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover
        return None
    return uvloop.new_event_loop


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    out = Output("--json" in args or "-json" in args)
    try:
        opts = _parser().parse_args(args)
        targets = pair_targets(opts.targets)
        parse_ports(opts.ports)
    except UsageError as exc:
        out.error("invalid_argument", str(exc), "see: pilot-gateway --help")
        return 2
    setup_logging(opts.log_level, opts.log_format)
    try:
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            return runner.run(_run(opts, targets, out))
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        code = getattr(exc, "code", None)
        if not isinstance(code, str):
            logging.getLogger("pilotgw.gateway").exception("gateway failed")
            code = "internal"
        message = getattr(exc, "message", None) or str(exc)
        return out.error(code, message, getattr(exc, "hint", None))


if __name__ == "__main__":
    sys.exit(main())
