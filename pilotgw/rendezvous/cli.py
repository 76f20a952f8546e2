"""``pilot-rendezvous``: registry (TCP :9000) + beacon (UDP :9001) in one process.

Flags follow the reference's combined program (rendezvous.md §2.1), in Go's
single-dash spelling or as ``--long`` options, ``-flag value`` or
``-flag=value``: ``-registry-addr``, ``-beacon-addr``, ``-store``, ``-tls``,
``-tls-cert``, ``-tls-key``, ``-http``, ``-log-level``, ``-log-format``,
``-config`` (a JSON object; keys spelt with ``-`` or ``_`` fill options not
given on the command line). The rest are our limits and switches
(``--help`` lists them). Exit status: 0 after SIGINT/SIGTERM, 2 when the
store or the configuration is unusable, 1 when a port cannot be bound.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
import time
from typing import Any, Optional, Sequence

from pilotgw.rendezvous import http, tls
from pilotgw.rendezvous.beacon_service import BeaconService
from pilotgw.rendezvous.records import split_host_port
from pilotgw.rendezvous.registry_service import Limits, RegistryService
from pilotgw.rendezvous.server import Rendezvous, ServerConfig
from pilotgw.rendezvous.snapshot import SnapshotError
from pilotgw.rendezvous.store import FileStore, MemoryStore, Store, StoreError

log = logging.getLogger("pilotgw.rendezvous")

DEFAULTS: dict[str, Any] = {
    "registry_addr": ":9000",
    "beacon_addr": ":9001",
    "store": "",
    "tls": False,
    "tls_cert": "",
    "tls_key": "",
    "tls_dir": "",
    "http": "",
    "log_level": "info",
    "log_format": "text",
    "max_nodes": 1_000_000,
    "register_rate": 10.0,
    "request_rate": 200.0,
    "lookup_rate": 50.0,
    "relay_rate": 2000.0,
    "idle_timeout": 300.0,
    "frame_timeout": 30.0,
    "max_conns_per_ip": 512,
    "flush_interval": 0.05,
    "one_sided_trust": False,
    "beacon_allow": "",
}


class UsageError(Exception):
    pass


def _bool(text: str) -> bool:
    lowered = text.lower()
    if lowered in ("1", "t", "true", "yes", "on"):
        return True
    if lowered in ("0", "f", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"invalid boolean value {text!r}")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="pilot-rendezvous",
        description="Pilot Protocol rendezvous: registry (TCP) and beacon (UDP) in one process.",
        allow_abbrev=False,
        argument_default=None,
    )

    def opt(name: str, help_text: str, **kw: Any) -> None:
        p.add_argument(f"-{name}", f"--{name}", dest=name.replace("-", "_"), help=help_text, **kw)

    def flag(name: str, help_text: str) -> None:
        opt(name, help_text, nargs="?", const=True, type=_bool, metavar="BOOL")

    opt("config", "JSON config file; its keys fill options not given here")
    opt("registry-addr", "registry TCP listen address (default :9000, all interfaces)")
    opt("beacon-addr", "beacon UDP listen address (default :9001, all interfaces)")
    opt("store", "snapshot file; empty means state lives in memory only")
    flag("tls", "serve TLS on the registry port")
    opt("tls-cert", "PEM certificate (with -tls-key); default: a persistent self-signed one")
    opt("tls-key", "PEM private key for -tls-cert")
    opt("tls-dir", "where the self-signed certificate is kept (default: the store's directory)")
    opt("http", "address for /healthz, /metrics and /api/stats (off when empty)")
    opt("log-level", "debug, info, warn or error")
    opt("log-format", "text or json")
    opt("max-nodes", "refuse registrations beyond this many live nodes", type=int)
    opt("register-rate", "new registrations per minute per source IP (0 = unlimited)", type=float)
    opt("request-rate", "registry requests per second per source IP (0 = unlimited)", type=float)
    opt("lookup-rate", "lookup/resolve_hostname per second per source IP (0 = unlimited)", type=float)
    opt("relay-rate", "relayed packets per second per node (0 = unlimited)", type=float)
    opt("idle-timeout", "close registry connections silent this many seconds", type=float)
    opt("frame-timeout", "close connections that leave a frame half-sent this long", type=float)
    opt("max-conns-per-ip", "concurrent registry connections per source IP", type=int)
    opt("flush-interval", "shortest delay between snapshot writes, seconds", type=float)
    flag("one-sided-trust", "let one side's report_trust open resolve (the reference rule, R-D1)")
    opt("beacon-allow", "comma-separated IPs allowed to send beacon_register")
    return p


def resolve_options(argv: Sequence[str]) -> dict[str, Any]:
    """Command line > -config file > defaults."""
    args = vars(build_parser().parse_args(argv))
    options = dict(DEFAULTS)
    config_path = args.pop("config")
    if config_path:
        try:
            with open(config_path, encoding="utf-8") as f:
                config = json.load(f)
        except (OSError, ValueError) as exc:
            raise UsageError(f"cannot read config {config_path}: {exc}") from None
        if not isinstance(config, dict):
            raise UsageError(f"config {config_path} must hold a JSON object")
        for key, value in config.items():
            name = str(key).replace("-", "_")
            if name not in options:
                raise UsageError(f"config {config_path}: unknown option {key!r}")
            if isinstance(value, (dict, list)) or value is None:
                raise UsageError(f"config {config_path}: option {key!r} must be a string, number or boolean")
            default = DEFAULTS[name]
            try:
                if isinstance(default, bool):
                    options[name] = value if isinstance(value, bool) else _bool(str(value))
                else:
                    options[name] = type(default)(value)
            except (ValueError, argparse.ArgumentTypeError):
                raise UsageError(f"config {config_path}: bad value for {key!r}: {value!r}") from None
    for name, value in args.items():
        if value is not None:
            options[name] = value
    return options


def parse_listen(text: str, what: str) -> tuple[Optional[str], int]:
    hp = split_host_port(text)
    if hp is None:
        raise UsageError(f"{what}: {text!r} is not host:port (e.g. :9000 or 127.0.0.1:9000)")
    return hp[0] or None, hp[1]


def setup_logging(level: str, fmt: str) -> None:
    levels = {"debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING,
              "warning": logging.WARNING, "error": logging.ERROR}
    if level.lower() not in levels:
        raise UsageError(f"-log-level: unknown level {level!r}")
    if fmt not in ("text", "json"):
        raise UsageError(f"-log-format: must be text or json, not {fmt!r}")
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        class JsonFormatter(logging.Formatter):
            def format(self, record: logging.LogRecord) -> str:
                return json.dumps({"time": self.formatTime(record), "level": record.levelname.lower(),
                                   "msg": record.getMessage()})
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    root = logging.getLogger("pilotgw")
    root.handlers[:] = [handler]
    root.setLevel(levels[level.lower()])
    root.propagate = False


def build(options: dict[str, Any]) -> tuple[Rendezvous, Optional[tuple[Optional[str], int]]]:
    registry_host, registry_port = parse_listen(options["registry_addr"], "-registry-addr")
    beacon_host, beacon_port = parse_listen(options["beacon_addr"], "-beacon-addr")
    http_addr = parse_listen(options["http"], "-http") if options["http"] else None
    limits = Limits(
        max_nodes=options["max_nodes"],
        register_per_minute=options["register_rate"],
        requests_per_second=options["request_rate"],
        request_burst=max(1.0, 2 * options["request_rate"]),
        lookups_per_second=options["lookup_rate"],
        lookup_burst=max(1.0, 4 * options["lookup_rate"]),
        one_sided_trust=options["one_sided_trust"],
        beacon_allow=frozenset(ip.strip() for ip in options["beacon_allow"].split(",") if ip.strip()),
    )
    service = RegistryService(limits)

    def endpoint_ip(node_id: int) -> Optional[str]:
        node = service.nodes.get(node_id)
        hp = split_host_port(node.real_addr) if node is not None else None
        return hp[0] if hp else None

    beacon = BeaconService(
        service.metrics,
        relay_rate=options["relay_rate"],
        relay_burst=2 * options["relay_rate"],
        endpoint_ip=endpoint_ip,
        may_punch=service.may_punch,
    )
    store: Store = FileStore(options["store"]) if options["store"] else MemoryStore()
    ssl_context = None
    if options["tls"] or options["tls_cert"]:
        cert, key = options["tls_cert"], options["tls_key"]
        if bool(cert) != bool(key):
            raise UsageError("-tls-cert and -tls-key must be given together")
        if not cert:
            directory = options["tls_dir"] or (
                os.path.dirname(os.path.abspath(options["store"])) if options["store"]
                else os.path.join(os.path.expanduser("~"), ".pilot", "rendezvous")
            )
            cert, key = tls.ensure_self_signed(directory)
        try:
            ssl_context, pin = tls.server_context(cert, key)
        except (OSError, ValueError) as exc:
            raise UsageError(f"cannot load TLS certificate {cert}: {exc}") from None
        log.info("registry TLS certificate %s, fingerprint (sha256): %s", cert, pin)
    config = ServerConfig(
        registry_host=registry_host,
        registry_port=registry_port,
        beacon_host=beacon_host or "0.0.0.0",
        beacon_port=beacon_port,
        ssl_context=ssl_context,
        idle_timeout=options["idle_timeout"],
        frame_timeout=options["frame_timeout"],
        max_connections_per_ip=options["max_conns_per_ip"],
        flush_interval=options["flush_interval"],
    )
    return Rendezvous(service, beacon, store, config), http_addr


async def serve(rv: Rendezvous, http_addr: Optional[tuple[Optional[str], int]]) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await rv.start()
    http_server = None
    try:
        host, port = rv.registry_address
        log.info("registry listening on %s:%d (tcp%s)", host, port, ", tls" if rv.config.ssl_context else "")
        host, port = rv.beacon_address
        log.info("beacon listening on %s:%d (udp)", host, port)
        if http_addr is not None:
            http_server = await http.start(rv, *http_addr)
            host, port = http_server.sockets[0].getsockname()[:2]
            log.info("http listening on %s:%d", host, port)
        log.info("pilot-rendezvous ready: %d nodes, store %s", len(rv.service.nodes), rv.store.description)
        await stop.wait()
        log.info("shutting down")
    finally:
        if http_server is not None:
            http_server.close()
        await rv.close()


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        options = resolve_options(argv)
        setup_logging(options["log_level"], options["log_format"])
        rv, http_addr = build(options)
        started = time.monotonic()
        for warning in rv.load():
            log.warning("store %s: %s", rv.store.description, warning)
        if rv.service.nodes:
            log.info("loaded %d nodes in %.2fs", len(rv.service.nodes), time.monotonic() - started)
    except UsageError as exc:
        print(f"pilot-rendezvous: {exc}", file=sys.stderr)
        return 2
    except (SnapshotError, StoreError) as exc:
        print(
            f"pilot-rendezvous: refusing to start: store {options['store']}: {exc}. "
            "Fix or move the file away to start with an empty registry.",
            file=sys.stderr,
        )
        return 2
    try:
        import uvloop

        runner: Any = uvloop.run
    except ImportError:
        runner = asyncio.run
    try:
        runner(serve(rv, http_addr))
    except OSError as exc:
        print(f"pilot-rendezvous: cannot listen: {exc}", file=sys.stderr)
        return 1
    return 0
