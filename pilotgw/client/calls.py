"""The daemon's request/reply commands, described once for both drivers.

Each function returns a :class:`Call`: the frame to write, the reply code
that means success, the driver label used in error texts (trust-and-ipc.md
§A2.9: ``<label>: daemon: <message>``) and how to turn the reply payload into
a Python value. :class:`~pilotgw.client.aio.Client` awaits calls,
:class:`~pilotgw.client.sync.SyncClient` blocks on them; neither re-states
any of this.
"""

from __future__ import annotations

import json
import os
from typing import Any, Callable, NamedTuple, Sequence

from pilotgw.client import wire
from pilotgw.client.errors import InvalidArgument, ProtocolError
from pilotgw.overlay.address import Addr, parse_target
from pilotgw.overlay.errors import DecodeError

DEFAULT_SOCKET = "/tmp/pilot.sock"


def as_addr(target: Addr | str | int) -> Addr:
    """An :class:`Addr`, a text address or a bare node ID (network 0)."""
    if isinstance(target, Addr):
        return target
    if isinstance(target, int) and not isinstance(target, bool):
        wire.check_node(target)
        return Addr(0, target)
    if isinstance(target, str):
        try:
            addr = parse_target(target)
        except DecodeError as exc:
            raise InvalidArgument(str(exc)) from None
        if addr is None:
            raise InvalidArgument(f"{target!r} is not an address (resolve hostnames with resolve_hostname)")
        return addr
    raise InvalidArgument(f"cannot use {type(target).__name__} as an address")


class Call(NamedTuple):
    label: str
    request: bytes
    expect: int
    parse: Callable[[bytes, str], Any]


def default_socket_path() -> str:
    """``PILOT_SOCKET`` > ``socket`` in ``~/.pilot/config.json`` > ``/tmp/pilot.sock``
    -- the rule ``pilotctl`` uses (services-and-cli.md §A9.3), so an agent finds
    the same daemon as the CLI in the same shell."""
    env = os.environ.get("PILOT_SOCKET", "")
    if env:
        return env
    home = os.environ.get("HOME") or os.path.expanduser("~")
    try:
        with open(os.path.join(home, ".pilot", "config.json"), encoding="utf-8") as f:
            value = json.load(f).get("socket")
    except (OSError, ValueError, AttributeError):
        value = None
    return value if isinstance(value, str) and value else DEFAULT_SOCKET


def json_reply(payload: bytes, label: str) -> Any:
    try:
        return json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ProtocolError(f"{label} unmarshal: {exc}") from None


def _object(payload: bytes, label: str) -> dict[str, Any]:
    value = json_reply(payload, label)
    if not isinstance(value, dict):
        raise ProtocolError(f"{label} unmarshal: expected a JSON object")
    return value


def _list_of(key: str) -> Callable[[bytes, str], list[dict[str, Any]]]:
    def parse(payload: bytes, label: str) -> list[dict[str, Any]]:
        value = _object(payload, label).get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            raise ProtocolError(f"{label} unmarshal: {key!r} is not a list")
        return value

    return parse


def _port(payload: bytes, label: str) -> int:
    if len(payload) < 2:
        raise ProtocolError(f"{label}: short BindOK")
    return int.from_bytes(payload[:2], "big")


def _conn_id(payload: bytes, label: str) -> int:
    if len(payload) < 4:
        raise ProtocolError(f"{label}: short DialOK")
    return int.from_bytes(payload[:4], "big")


def _text(value: str | bytes) -> bytes:
    return value.encode("utf-8") if isinstance(value, str) else bytes(value)


def info() -> Call:
    return Call("info", wire.frame(wire.INFO), wire.INFO_OK, _object)


def bind(port: int) -> Call:
    return Call("bind", wire.bind(port), wire.BIND_OK, _port)


def dial(addr: Addr, port: int) -> Call:
    return Call("dial", wire.dial(addr, port), wire.DIAL_OK, _conn_id)


def handshake(node_id: int, justification: str | bytes = b"") -> Call:
    return Call(
        "handshake",
        wire.handshake(wire.HS_REQUEST, node_id, _text(justification)),
        wire.HANDSHAKE_OK,
        _object,
    )


def approve(node_id: int) -> Call:
    return Call("approve", wire.handshake(wire.HS_APPROVE, node_id), wire.HANDSHAKE_OK, _object)


def reject(node_id: int, reason: str | bytes = b"") -> Call:
    return Call("reject", wire.handshake(wire.HS_REJECT, node_id, _text(reason)), wire.HANDSHAKE_OK, _object)


def pending() -> Call:
    return Call("pending", wire.handshake(wire.HS_PENDING), wire.HANDSHAKE_OK, _list_of("pending"))


def trusted() -> Call:
    return Call("trusted", wire.handshake(wire.HS_TRUSTED), wire.HANDSHAKE_OK, _list_of("trusted"))


def revoke(node_id: int) -> Call:
    return Call("revoke", wire.handshake(wire.HS_REVOKE, node_id), wire.HANDSHAKE_OK, _object)


def resolve_hostname(hostname: str) -> Call:
    return Call(
        "resolve_hostname",
        wire.frame(wire.RESOLVE_HOSTNAME, _text(hostname)),
        wire.RESOLVE_HOSTNAME_OK,
        _object,
    )


def set_hostname(hostname: str) -> Call:
    return Call("set_hostname", wire.frame(wire.SET_HOSTNAME, _text(hostname)), wire.SET_HOSTNAME_OK, _object)


def set_visibility(public: bool) -> Call:
    return Call("set_visibility", wire.flag(wire.SET_VISIBILITY, public), wire.SET_VISIBILITY_OK, _object)


def set_task_exec(enabled: bool) -> Call:
    return Call("set_task_exec", wire.flag(wire.SET_TASK_EXEC, enabled), wire.SET_TASK_EXEC_OK, _object)


def deregister() -> Call:
    return Call("deregister", wire.frame(wire.DEREGISTER), wire.DEREGISTER_OK, _object)


def set_tags(tags: Sequence[str]) -> Call:
    if isinstance(tags, str) or not all(isinstance(t, str) for t in tags):
        raise InvalidArgument("set_tags: tags must be a list of strings")
    if len(tags) > 3:
        raise InvalidArgument(f"set_tags: maximum 3 tags allowed, got {len(tags)}")
    body = json.dumps(list(tags), ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return Call("set_tags", wire.frame(wire.SET_TAGS, body), wire.SET_TAGS_OK, _object)


def set_webhook(url: str) -> Call:
    return Call("set_webhook", wire.frame(wire.SET_WEBHOOK, _text(url)), wire.SET_WEBHOOK_OK, _object)


# -- extensions (pilotgw.overlay.ipc: Expose 0x40 -> 0x41) ----------------------


def _expose_target(target: str) -> str:
    host, sep, port = target.rpartition(":")
    if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise InvalidArgument(f"expose: invalid target {target!r}: want host:port (port 1-65535)")
    return target


def expose(port: int, target: str) -> Call:
    if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
        raise InvalidArgument(f"expose: invalid port {port!r}: must be 1-65535")
    return Call("expose", wire.expose(wire.EXPOSE_ADD, port, _expose_target(target)), wire.EXPOSE_OK, _object)


def unexpose(port: int) -> Call:
    return Call("unexpose", wire.expose(wire.EXPOSE_REMOVE, port), wire.EXPOSE_OK, _object)


def exposed() -> Call:
    return Call("exposed", wire.expose(wire.EXPOSE_LIST), wire.EXPOSE_OK, _list_of("exposed"))
