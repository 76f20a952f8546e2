"""``pilotctl`` entry point: the reference's dispatch, typer only for help.

Running a command never imports typer, rich or asyncio: ``main`` strips
``--json`` (anywhere, services-and-cli.md §A9.1), looks the command up in
:data:`COMMANDS` and imports just that command's module. ``--help``,
``--version`` and shell completion are served by the typer app built from
the same table (:mod:`pilotgw.cli.app`), so the command tree is declared once.
"""

from __future__ import annotations

import importlib
import os
import sys

from pilotgw.client.errors import PilotError
from pilotgw.cli.output import EXIT_ERROR, EXIT_OK, EXIT_USAGE, Output

# name -> (module under pilotgw.cli.commands, function)
COMMANDS: dict[str, tuple[str, str]] = {
    "init": ("bootstrap", "init"),
    "config": ("bootstrap", "config_cmd"),
    "context": ("bootstrap", "context"),
    "daemon": ("daemon", "daemon"),
    "_daemon-run": ("daemon", "daemon_run"),
    "register": ("registry", "register"),
    "lookup": ("registry", "lookup"),
    "rotate-key": ("registry", "rotate_key"),
    "set-public": ("node", "set_public"),
    "set-private": ("node", "set_private"),
    "deregister": ("node", "deregister"),
    "enable-tasks": ("node", "enable_tasks"),
    "disable-tasks": ("node", "disable_tasks"),
    "find": ("node", "find"),
    "set-hostname": ("node", "set_hostname"),
    "clear-hostname": ("node", "clear_hostname"),
    "set-webhook": ("node", "set_webhook"),
    "clear-webhook": ("node", "clear_webhook"),
    "set-tags": ("node", "set_tags"),
    "clear-tags": ("node", "clear_tags"),
    "connect": ("comm", "connect"),
    "send": ("comm", "send"),
    "recv": ("comm", "recv"),
    "send-file": ("comm", "send_file"),
    "send-message": ("comm", "send_message"),
    "subscribe": ("comm", "subscribe"),
    "publish": ("comm", "publish"),
    "listen": ("comm", "listen"),
    "broadcast": ("comm", "broadcast"),
    "handshake": ("trust", "handshake"),
    "approve": ("trust", "approve"),
    "reject": ("trust", "reject"),
    "untrust": ("trust", "untrust"),
    "pending": ("trust", "pending"),
    "trust": ("trust", "trust"),
    "info": ("diag", "info"),
    "peers": ("diag", "peers"),
    "connections": ("diag", "connections"),
    "disconnect": ("diag", "disconnect"),
    "ping": ("diag", "ping"),
    "traceroute": ("diag", "traceroute"),
    "bench": ("diag", "bench"),
    "received": ("mailbox", "received"),
    "inbox": ("mailbox", "inbox"),
    "gateway": ("gateway", "gateway"),
    "task": ("task", "task"),
}

_TYPER_FLAGS = {"--help", "-h", "--version", "--install-completion", "--show-completion"}


def _wants_typer(args: list[str]) -> bool:
    if any(key.endswith("_COMPLETE") and key.startswith("_PILOTCTL") for key in os.environ):
        return True
    return bool(_TYPER_FLAGS.intersection(args)) or args[:1] == ["help"]


def run(argv: list[str], out: Output) -> int:
    """Run one command line (without the program name); return the exit status."""
    json_mode = "--json" in argv
    args = [a for a in argv if a != "--json"]
    out.json = json_mode
    if not args:
        from pilotgw.cli.usage import USAGE

        out.stderr.write(USAGE)
        return EXIT_USAGE
    name, rest = args[0], args[1:]
    entry = COMMANDS.get(name)
    if entry is None:
        if json_mode:
            return out.error(
                "invalid_argument", f"unknown command: {name}", "run 'pilotctl context' for the full command list"
            )
        from pilotgw.cli.usage import USAGE

        out.stderr.write(f"unknown command: {name}\n\n{USAGE}")
        return EXIT_USAGE
    module = importlib.import_module(f"pilotgw.cli.commands.{entry[0]}")
    from pilotgw.cli.runtime import Ctx

    ctx = Ctx(out)
    try:
        status = getattr(module, entry[1])(ctx, rest)
    except PilotError as exc:
        return out.error(exc.code, exc.message, exc.hint)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return EXIT_ERROR
    finally:
        try:
            ctx.close()
        except PilotError:
            pass
    return EXIT_OK if status is None else int(status)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    if _wants_typer(args):
        from pilotgw.cli.app import run_typer

        return run_typer(args)
    status = run(args, Output(False))
    if argv is None:
        sys.exit(status)
    return status


if __name__ == "__main__":
    main()
