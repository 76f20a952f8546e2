"""handshake, approve, reject, untrust, pending, trust (services-and-cli.md §A15).

These take their arguments raw (§A9.2): nothing is parsed as a flag.
"""

from __future__ import annotations

import time
from typing import Any

from pilotgw.client.errors import InvalidArgument, NotFound, PilotError
from pilotgw.cli.args import need, parse_node_id, parse_uint_error
from pilotgw.cli.runtime import Ctx, labelled
from pilotgw.overlay.address import parse_addr
from pilotgw.overlay.errors import DecodeError


def local_time(unix: Any) -> str:
    try:
        return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(int(unix)))
    except (OverflowError, OSError, ValueError, TypeError):
        return "0001-01-01 00:00:00"


def _target_node(ctx: Ctx, target: str) -> int:
    if parse_uint_error(target, 32) is None:
        return int(target)
    try:
        node = parse_addr(target).node
    except DecodeError:
        pass
    else:
        ctx.out.note(f"parsed address {target} → node {node}")
        return node
    try:
        reply = ctx.client().resolve_hostname(target)
        node = int(reply["node_id"])
    except PilotError as exc:
        if exc.code == "not_running":
            raise
        raise NotFound(f'resolve "{target}": {exc.message}') from None
    except (KeyError, TypeError, ValueError):
        raise NotFound(f'resolve "{target}": malformed reply') from None
    ctx.out.note(f"resolved {target} → node {node}")
    return node


def handshake(ctx: Ctx, args: list[str]) -> None:
    need(args, 1, "handshake <node_id|address|hostname> [justification]")
    client = ctx.client()
    node = _target_node(ctx, args[0])
    justification = args[1] if len(args) > 1 else ""
    try:
        reply = client.handshake(node, justification)
    except PilotError as exc:
        raise labelled("handshake", exc) from None
    reply["node_id"] = node
    ctx.out.success(
        reply,
        [
            f"handshake request sent to node {node}",
            f"  next: node {node} must approve — or send a handshake back for auto-approval",
            "  check: pilotctl trust",
        ],
    )


def approve(ctx: Ctx, args: list[str]) -> None:
    need(args, 1, "approve <node_id>")
    node = parse_node_id(args[0])
    try:
        reply = ctx.client().approve(node)
    except PilotError as exc:
        raise labelled("approve", exc) from None
    ctx.out.success(reply, [f"trust established with node {node}", f"  try: pilotctl ping {node}"])


def reject(ctx: Ctx, args: list[str]) -> None:
    need(args, 1, "reject <node_id> [reason]")
    node = parse_node_id(args[0])
    reason = args[1] if len(args) > 1 else ""
    try:
        reply = ctx.client().reject(node, reason)
    except PilotError as exc:
        raise labelled("reject", exc) from None
    ctx.out.success(reply, f"handshake from node {node} rejected")


def untrust(ctx: Ctx, args: list[str]) -> None:
    need(args, 1, "untrust <node_id>")
    err = parse_uint_error(args[0], 32)
    if err:
        raise InvalidArgument(f"invalid node_id: {err}")
    node = int(args[0])
    try:
        ctx.client().revoke(node)
    except PilotError as exc:
        raise labelled("untrust", exc) from None
    ctx.out.success({"node_id": node})


def pending(ctx: Ctx, args: list[str]) -> None:
    try:
        entries = ctx.client().pending()
    except PilotError as exc:
        raise labelled("pending", exc) from None
    if not entries:
        lines = [
            "no pending handshake requests",
            "  requests appear here when another node sends: pilotctl handshake <your-node-id>",
        ]
    else:
        lines = [f"{'NODE ID':<10}  {'JUSTIFICATION':<40}  RECEIVED"]
        for e in entries:
            lines.append(f"{e.get('node_id', 0):<10}  {e.get('justification', ''):<40}  {local_time(e.get('received_at'))}")
    ctx.out.success({"pending": entries}, lines)


def trust(ctx: Ctx, args: list[str]) -> None:
    try:
        entries = ctx.client().trusted()
    except PilotError as exc:
        raise labelled("trust", exc) from None
    if not entries:
        lines = ["no trusted peers", '  establish trust: pilotctl handshake <node_id|hostname> "reason"']
    else:
        lines = [f"{'NODE ID':<10}  {'MUTUAL':<10}  {'NETWORK':<10}  APPROVED AT"]
        for e in entries:
            network = e.get("network", 0)
            lines.append(
                f"{e.get('node_id', 0):<10}  {'yes' if e.get('mutual') else 'no':<10}  "
                f"{str(network) if network else '-':<10}  {local_time(e.get('approved_at'))}"
            )
    ctx.out.success({"trusted": entries}, lines)
