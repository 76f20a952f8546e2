"""The typer view of pilotctl: ``--help`` on every command, ``--version`` and
shell completion.

It is built from :data:`pilotgw.cli.main.COMMANDS` and the context catalog,
and loaded only for those flags (importing typer costs ~30 ms). Each typer
command takes its arguments raw and hands them to the same implementation as
the fast path, so the contract's own argument rules (§A9.2) always apply.
"""

from __future__ import annotations

import json
import sys
from typing import Any, Callable, List, Optional

import typer

from pilotgw import __version__
from pilotgw.cli.catalog import CATALOG_JSON
from pilotgw.cli.main import COMMANDS, run
from pilotgw.cli.output import Output

_RAW = {"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": ["--help", "-h"]}

_SUBCOMMANDS = {
    "daemon": ["start", "stop", "status"],
    "gateway": ["start", "stop", "map", "unmap", "list", "expose", "unexpose", "exposed"],
    "task": ["submit", "accept", "decline", "execute", "send-results", "list", "queue"],
}

_EXTRA_HELP = {
    "_daemon-run": None,
    "context": "Print the machine-readable command catalog (JSON) for agents and tools",
    "task submit": "Submit a task to another node.\n\nUsage: pilotctl task submit <address|hostname> --task <description>",
    "task accept": "Accept a received task (within 1 minute).\n\nUsage: pilotctl task accept --id <task_id>",
    "task decline": "Decline a received task.\n\nUsage: pilotctl task decline --id <task_id> --justification <reason>",
    "task execute": "Start the next accepted task (runs nothing).\n\nUsage: pilotctl task execute",
    "task send-results": "Send a task's results to its submitter.\n\n"
    "Usage: pilotctl task send-results --id <task_id> --results <text> | --file <filepath>",
    "task list": "List received and submitted tasks.\n\nUsage: pilotctl task list [--type received|submitted]",
    "task queue": "List accepted tasks waiting for execution.\n\nUsage: pilotctl task queue",
}


def _help(name: str, catalog: dict[str, Any]) -> str:
    entry = catalog.get(name)
    if entry is None:
        return _EXTRA_HELP.get(name) or ""
    args = " ".join(entry.get("args", []))
    return f"{entry['description']}.\n\nUsage: pilotctl {name} {args}\n\nReturns: {entry['returns']}"


def _runner(words: list[str]) -> Callable[..., None]:
    def command(args: Optional[List[str]] = typer.Argument(None, help="arguments as the reference CLI takes them")) -> None:
        raise typer.Exit(run(words + list(args or []), Output(False)))

    return command


def _version(value: bool) -> None:
    if value:
        typer.echo(f"pilotctl {__version__} (pilotgw, Pilot Protocol wire v0.5)")
        raise typer.Exit(0)


def build() -> typer.Typer:
    catalog = json.loads(CATALOG_JSON)["commands"]
    app = typer.Typer(
        name="pilotctl",
        help="Command-line client for the Pilot Protocol daemon. Add --json anywhere for machine-readable output.",
        no_args_is_help=False,
        add_completion=True,
        context_settings={"help_option_names": ["--help", "-h"]},
    )

    @app.callback(invoke_without_command=True)
    def main(
        ctx: typer.Context,
        version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Show the version."),
    ) -> None:
        if ctx.invoked_subcommand is None:
            raise typer.Exit(run([], Output(False)))

    for name in COMMANDS:
        if name.startswith("_"):
            continue
        if name in _SUBCOMMANDS:
            group = typer.Typer(help=f"{name} subcommands", context_settings={"help_option_names": ["--help", "-h"]})
            for sub in _SUBCOMMANDS[name]:
                group.command(sub, help=_help(f"{name} {sub}", catalog), context_settings=_RAW)(_runner([name, sub]))
            app.add_typer(group, name=name)
        else:
            app.command(name, help=_help(name, catalog), context_settings=_RAW)(_runner([name]))
    return app


def run_typer(args: list[str]) -> int:
    if args[:1] == ["help"]:
        args = args[1:] + ["--help"]
    try:
        build()(args=args, prog_name="pilotctl", standalone_mode=True)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(run_typer(sys.argv[1:]))
