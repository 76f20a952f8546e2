"""``pilot-daemon``: the node process, in the foreground (systemd, containers).

Flags follow Go's ``flag`` package like the reference (trust-and-ipc.md
§A3.1): ``-name value``, ``-name=value``, ``--name`` spellings; a boolean flag
alone means true and needs ``-name=false`` to be turned off. Parsing stops at
the first non-flag argument or ``--``.

Exit status: 0 after a clean shutdown (SIGTERM/SIGINT), 1 when the daemon
cannot start (the reason is logged and printed), 2 for a usage error.
"""

from __future__ import annotations

import sys
from typing import Any, Sequence

from pilotgw.daemon import config as cfgmod

USAGE = """usage: pilot-daemon [flags]

  -registry host:port        registry (default 127.0.0.1:9000, or $PILOT_REGISTRY)
  -beacon host:port          beacon (default 127.0.0.1:9001)
  -listen host:port          UDP tunnel listen address (default :0)
  -socket path               IPC socket (default /tmp/pilot.sock, or $PILOT_SOCKET)
  -endpoint host:port        fixed public endpoint; skips STUN
  -encrypt                   tunnel encryption (default true)
  -registry-tls              TLS to the registry (needs -registry-fingerprint)
  -registry-fingerprint hex  SHA-256 pin of the registry certificate
  -identity path             identity file (empty: ephemeral identity)
  -owner email               owner for key recovery
  -hostname name             set hostname at start
  -public                    set visibility public at start
  -keepalive dur             keepalive / heartbeat period (default 30s)
  -idle-timeout dur          idle connection timeout (default 120s)
  -syn-rate-limit n          SYNs per second (default 100)
  -max-conns-per-port n      (default 1024)
  -max-conns-total n         (default 4096)
  -time-wait dur             TIME_WAIT duration (default 10s)
  -no-echo -no-dataexchange -no-eventstream   disable ports 7 / 1001 / 1002
  -webhook url               webhook URL
  -allow-plaintext           accept PILT from peers without a key (default false)
  -segment-size n            largest stream segment towards pilotgw peers
  -log-level level           debug, info, warn, error (default info)
  -log-format fmt            text or json (default text)
  -config path               JSON config file keyed by flag names
"""


class UsageError(ValueError):
    pass


def parse_args(argv: Sequence[str]) -> dict[str, Any]:
    """Go-style flag parsing into ``{field_name: parsed value}`` (explicit flags only)."""
    flags: dict[str, Any] = {}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            i += 1
            break
        if not arg.startswith("-") or arg == "-":
            break
        body = arg.lstrip("-")
        if arg.startswith("---") or not body:
            raise UsageError(f"bad flag syntax: {arg}")
        name_text, eq, value = body.partition("=")
        if name_text in ("h", "help"):
            raise UsageError("")
        name = cfgmod.field_name(name_text)
        if name is None or name == "notes":
            raise UsageError(f"flag provided but not defined: -{name_text}")
        if not eq:
            if cfgmod.is_bool_field(name):
                value = "true"
            else:
                i += 1
                if i >= len(argv):
                    raise UsageError(f"flag needs an argument: -{name_text}")
                value = argv[i]
        try:
            flags[name] = cfgmod.parse_value(name, value)
        except cfgmod.ConfigError as exc:
            raise UsageError(f"invalid value {value!r} for flag -{name_text}: {exc}") from None
        i += 1
    if i < len(argv):
        raise UsageError(f"unexpected argument: {argv[i]}")
    return flags


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        flags = parse_args(args)
    except UsageError as exc:
        if str(exc):
            print(f"pilot-daemon: {exc}", file=sys.stderr)
        print(USAGE, file=sys.stderr, end="")
        return 2 if str(exc) else 0
    try:
        cfg = cfgmod.build(flags)
    except cfgmod.ConfigError as exc:
        print(f"pilot-daemon: {exc} (code {exc.code})", file=sys.stderr)
        return 1

    from pilotgw.daemon import log
    from pilotgw.daemon.node import run

    log.setup(cfg.log_level, cfg.log_format)
    return run(cfg)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
