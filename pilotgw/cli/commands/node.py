"""Node settings and discovery through the daemon (services-and-cli.md §A12):
set-public/private, enable/disable-tasks, deregister, find, hostnames,
webhook and tags."""

from __future__ import annotations

import re
from typing import Any, Callable

from pilotgw.client.errors import InvalidArgument, NotFound, PilotError
from pilotgw.cli import config
from pilotgw.cli.args import need
from pilotgw.cli.runtime import Ctx, labelled

_HOSTNAME = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
_RESERVED = {"localhost", "backbone", "broadcast"}


def hostname_problem(name: str) -> str | None:
    """Why the registry will refuse ``name`` (it only answers "request failed")."""
    if len(name) > 63:
        return f"hostnames are at most 63 characters (this one has {len(name)})"
    if not _HOSTNAME.fullmatch(name):
        return "hostnames are lowercase letters, digits and hyphens, starting and ending with a letter or digit"
    if name in _RESERVED:
        return f'"{name}" is reserved'
    return None


def _simple(ctx: Ctx, label: str, op: Callable[[], dict[str, Any]]) -> None:
    try:
        reply = op()
    except PilotError as exc:
        raise labelled(label, exc) from None
    ctx.out.success(reply)


def set_public(ctx: Ctx, args: list[str]) -> None:
    _simple(ctx, "set-public", lambda: ctx.client().set_visibility(True))


def set_private(ctx: Ctx, args: list[str]) -> None:
    _simple(ctx, "set-private", lambda: ctx.client().set_visibility(False))


def enable_tasks(ctx: Ctx, args: list[str]) -> None:
    _simple(ctx, "enable-tasks", lambda: ctx.client().set_task_exec(True))


def disable_tasks(ctx: Ctx, args: list[str]) -> None:
    _simple(ctx, "disable-tasks", lambda: ctx.client().set_task_exec(False))


def deregister(ctx: Ctx, args: list[str]) -> None:
    _simple(ctx, "deregister", lambda: ctx.client().deregister())


def find(ctx: Ctx, args: list[str]) -> None:
    need(args, 1, "find <hostname>")
    name = args[0]
    client = ctx.client()
    try:
        reply = client.resolve_hostname(name)
    except PilotError as exc:
        if exc.code == "not_running":
            raise
        raise NotFound(
            f'cannot find "{name}" — hostname not found or no mutual trust',
            hint=f'establish trust first: pilotctl handshake {name} "reason"',
        ) from None
    data = {k: reply.get(k) for k in ("address", "hostname", "node_id", "public")}
    ctx.out.success(
        data,
        [
            f"Hostname:  {data['hostname']}",
            f"Node ID:   {data['node_id']}",
            f"Address:   {data['address']}",
            f"Visible:   {'public' if data['public'] else 'private'}",
        ],
    )


def _persist_hostname(name: str) -> None:
    cfg = config.load()
    if name:
        cfg["hostname"] = name
    else:
        cfg.pop("hostname", None)
    config.save(cfg)


def set_hostname(ctx: Ctx, args: list[str]) -> None:
    need(args, 1, "set-hostname <hostname>")
    name = args[0]
    try:
        reply = ctx.client().set_hostname(name)
    except PilotError as exc:
        err = labelled("set-hostname", exc)
        if err.code == "connection_failed" and name:
            err.hint = hostname_problem(name)
        raise err from None
    _persist_hostname(name)
    data = {"hostname": reply.get("hostname", name), "node_id": reply.get("node_id")}
    ctx.out.success(data, f"hostname set: {name}" if name else "hostname cleared")


def clear_hostname(ctx: Ctx, args: list[str]) -> None:
    try:
        ctx.client().set_hostname("")
    except PilotError as exc:
        raise labelled("clear-hostname", exc) from None
    _persist_hostname("")
    ctx.out.success({"hostname": ""}, "hostname cleared")


def _apply_webhook(ctx: Ctx, url: str) -> bool:
    """Best effort: a stopped daemon picks the URL up from config.json at start."""
    try:
        ctx.client().set_webhook(url)
    except PilotError:
        return False
    return True


def set_webhook(ctx: Ctx, args: list[str]) -> None:
    need(args, 1, "set-webhook <url>")
    url = args[0]
    if not url.startswith(("http://", "https://")):
        raise InvalidArgument("webhook URL must start with http:// or https://")
    cfg = config.load()
    cfg["webhook"] = url
    config.save(cfg)
    applied = _apply_webhook(ctx, url)
    ctx.out.success(
        {"applied": applied, "webhook": url},
        [f"webhook set: {url}", "applied to running daemon" if applied else "will take effect on next daemon start"],
    )


def clear_webhook(ctx: Ctx, args: list[str]) -> None:
    cfg = config.load()
    cfg.pop("webhook", None)
    config.save(cfg)
    applied = _apply_webhook(ctx, "")
    ctx.out.success(
        {"applied": applied, "webhook": ""},
        ["webhook cleared", "applied to running daemon" if applied else "will take effect on next daemon start"],
    )


def set_tags(ctx: Ctx, args: list[str]) -> None:
    need(args, 1, "set-tags <tag1> [tag2] ...")
    if len(args) > 3:
        raise InvalidArgument(f"set-tags: maximum 3 tags allowed, got {len(args)}")
    try:
        reply = ctx.client().set_tags(list(args))
    except PilotError as exc:
        raise labelled("set-tags", exc) from None
    tags = reply.get("tags") or []
    text = "tags set: " + (" ".join(f"#{t}" for t in tags) if tags else "none")
    ctx.out.success({"node_id": reply.get("node_id"), "tags": reply.get("tags")}, text)


def clear_tags(ctx: Ctx, args: list[str]) -> None:
    try:
        ctx.client().set_tags([])
    except PilotError as exc:
        raise labelled("clear-tags", exc) from None
    ctx.out.success({"tags": []}, "tags cleared")
