"""init, config, context (services-and-cli.md §A10)."""

from __future__ import annotations

import json

from pilotgw.client.errors import InvalidArgument
from pilotgw.cli import config
from pilotgw.cli.args import parse_flags
from pilotgw.cli.runtime import Ctx


def init(ctx: Ctx, args: list[str]) -> None:
    flags = parse_flags(args)
    cfg = config.load()
    cfg["registry"] = flags.get("registry") or config.DEFAULT_REGISTRY
    cfg["beacon"] = flags.get("beacon") or config.DEFAULT_BEACON
    cfg["socket"] = flags.get("socket") or config.DEFAULT_SOCKET
    hostname = flags.get("hostname")
    if hostname:
        cfg["hostname"] = hostname
    config.save(cfg)
    ctx.out.success(
        {
            "beacon": cfg["beacon"],
            "config_path": config.config_path(),
            "hostname": hostname,
            "registry": cfg["registry"],
            "socket": cfg["socket"],
        }
    )


def config_cmd(ctx: Ctx, args: list[str]) -> None:
    flags = parse_flags(args)
    if flags.has("set"):
        key, sep, value = flags.get("set").partition("=")
        if not sep:
            raise InvalidArgument("usage: pilotctl config --set key=value")
        cfg = config.load()
        cfg[key] = value
        config.save(cfg)
        ctx.out.success({"key": key, "value": value})
        return
    cfg = config.load()
    data = dict(cfg)
    data["config_path"] = config.config_path()
    data["pid_file"] = config.path("pilot.pid")
    data["log_file"] = config.path("pilot.log")
    data.setdefault("registry", config.registry_addr(cfg))
    data.setdefault("socket", config.socket_path(cfg))
    ctx.out.success(data)


def context(ctx: Ctx, args: list[str]) -> None:
    from pilotgw.cli.catalog import CATALOG_JSON

    ctx.out.success(json.loads(CATALOG_JSON))

