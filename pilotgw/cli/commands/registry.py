"""register, lookup, rotate-key: direct requests to the registry
(services-and-cli.md §A12, rendezvous.md §1.2)."""

from __future__ import annotations

import socket
from typing import Any

from pilotgw.client.errors import ConnectionFailed
from pilotgw.cli import config
from pilotgw.cli.args import need, parse_node_id
from pilotgw.cli.runtime import Ctx
from pilotgw.overlay import registry
from pilotgw.overlay.errors import DecodeError

TIMEOUT = 10.0


def _host_port(addr: str) -> tuple[str, int]:
    host, _, port = addr.rpartition(":")
    if not host or not port.isdigit():
        raise ConnectionFailed(f"cannot reach registry at {addr}", hint=_hint(addr))
    return host.strip("[]"), int(port)


def _hint(addr: str) -> str:
    return f"check that the registry is running at {addr}, or set PILOT_REGISTRY"


def request(label: str, msg: dict[str, Any]) -> dict[str, Any]:
    """One request/reply on a fresh TCP connection. A reply carrying
    ``"error"`` becomes ``<label>: registry: <error>`` (connection_failed)."""
    addr = config.registry_addr()
    try:
        sock = socket.create_connection(_host_port(addr), timeout=TIMEOUT)
    except OSError:
        raise ConnectionFailed(f"cannot reach registry at {addr}", hint=_hint(addr)) from None
    splitter = registry.FrameSplitter()
    try:
        sock.sendall(registry.encode_frame(msg))
        while (body := splitter.next_body()) is None:
            data = sock.recv(65536)
            if not data:
                raise ConnectionFailed(f"{label}: registry closed the connection")
            splitter.feed(data)
        reply = registry.decode_body(body)
    except OSError as exc:
        raise ConnectionFailed(f"{label}: {exc}") from None
    except DecodeError as exc:
        raise ConnectionFailed(f"{label}: {exc}") from None
    finally:
        sock.close()
    failure = registry.reply_error(reply)
    if failure is not None:
        raise ConnectionFailed(f"{label}: registry: {failure[0]}")
    return reply


def register(ctx: Ctx, args: list[str]) -> None:
    listen_addr = args[0] if args else ""
    # As the reference: no public key, so the registry refuses (C-12); sending
    # this node's key from here could move the running daemon's registration.
    ctx.out.success(request("register", {"type": "register", "listen_addr": listen_addr}))


def lookup(ctx: Ctx, args: list[str]) -> None:
    need(args, 1, "lookup <node_id>")
    node = parse_node_id(args[0])
    ctx.out.success(request("lookup", registry.lookup(node)))


def rotate_key(ctx: Ctx, args: list[str]) -> None:
    need(args, 2, "rotate-key <node_id> <owner>")
    node = parse_node_id(args[0])
    msg = {"type": "rotate_key", "node_id": node, "new_public_key": args[1]}
    ctx.out.success(request("rotate-key", msg))
