"""``pilot-lab``: bring namespace labs up, inspect them, run commands in them, tear them down.

``up`` builds a *detached* lab (it outlives the command) and prints every
node's address and how to reach it; ``down ID`` removes one lab, ``down
--all`` every lab's leftovers, including those of a process that was
SIGKILLed (it works from the state files in ``/run/pilotgw-lab``). Every
command takes ``--json``; failures print ``error [code]: message`` (or a JSON
``error`` object) and exit 1.
"""

from __future__ import annotations

import json
import os
import sys
import tomllib
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from pilotgw.lab import netns, state
from pilotgw.lab.errors import LabError
from pilotgw.lab.lab import Lab
from pilotgw.lab.topology import BUILTIN_HELP, Topology, builtin, plan

app = typer.Typer(
    help="Network-namespace labs with NAT routers for Pilot Protocol.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
StateDirOpt = Annotated[Path, typer.Option("--state-dir", help="Where lab state files live.")]


def load_topology(spec: str) -> Topology:
    """A built-in topology by name, or one read from a ``.toml``/``.json`` file."""
    path = Path(spec)
    if path.suffix in (".toml", ".json") or os.sep in spec:
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise LabError(f"cannot read topology file {spec}: {exc.strerror}", "bad-topology") from None
        try:
            data = tomllib.loads(raw.decode()) if path.suffix == ".toml" else json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise LabError(f"topology file {spec}: {exc}", "bad-topology") from None
        return Topology.from_dict(data)
    return builtin(spec)


def _fail(exc: LabError, as_json: bool) -> None:
    if as_json:
        print(json.dumps({"error": {"code": exc.code, "message": str(exc)}}))
    else:
        print(f"error [{exc.code}]: {exc}", file=sys.stderr)
    raise typer.Exit(1)


def _print_layout(info: dict[str, Any]) -> None:
    rows = [("NODE", "ROLE", "ADDRESS", "GATEWAY", "NAT", "NETNS")]
    for n in info["nodes"]:
        rows.append((n["name"], n["role"], f"{n['address']}/{n['prefixlen']}", n["gateway"], n["nat"] or "-", n["netns"]))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  " + "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())


@app.command()
def up(
    topology: Annotated[str, typer.Argument(help="Built-in name (see `topologies`) or a .toml/.json file.")] = "basic",
    as_json: JsonOpt = False,
    state_dir: StateDirOpt = state.DEFAULT_STATE_DIR,
) -> None:
    """Build a lab and leave it running; print its nodes and addresses."""
    try:
        lab = Lab(load_topology(topology), state_dir=state_dir, detached=True).up()
    except LabError as exc:
        _fail(exc, as_json)
        return
    info = lab.layout.to_dict()
    if as_json:
        print(json.dumps(info))
        return
    print(f"lab {lab.id} is up (topology {lab.topology.name})")
    _print_layout(info)
    first = lab.layout.nodes[0]
    print(f"run a command in a node:  pilot-lab exec {lab.id} {first.name} -- <command>")
    print(f"                      or  ip netns exec {first.netns} <command>")
    print(f"tear it down:             pilot-lab down {lab.id}")


@app.command()
def status(
    lab_id: Annotated[Optional[str], typer.Argument(help="Show one lab in detail.")] = None,
    as_json: JsonOpt = False,
    state_dir: StateDirOpt = state.DEFAULT_STATE_DIR,
) -> None:
    """List labs (or show one): owner, namespaces present, nodes and addresses."""
    try:
        if lab_id is not None:
            records, errors = [state.find(lab_id, state_dir)], []
        else:
            records, errors = state.load_all(state_dir)
        orphans = state.orphan_namespaces(state_dir) if lab_id is None else []
    except LabError as exc:
        _fail(exc, as_json)
        return
    labs = []
    for rec in records:
        present = [ns for ns in rec.namespaces if netns.exists(ns)]
        info = plan(rec.topology, rec.lab_id).to_dict()
        info.update(
            owner_pid=rec.owner_pid,
            owner_alive=rec.owner_alive(),
            namespaces_present=len(present),
            namespaces_total=len(rec.namespaces),
        )
        labs.append(info)
    if as_json:
        print(json.dumps({"labs": labs, "orphans": orphans, "errors": [str(e) for e in errors]}))
        return
    if not labs and not orphans and not errors:
        print("no labs")
    for info in labs:
        owner = "detached" if info["owner_pid"] is None else f"owner pid {info['owner_pid']}" + ("" if info["owner_alive"] else " (dead)")
        print(
            f"lab {info['id']}  topology {info['topology']}  {owner}  "
            f"namespaces {info['namespaces_present']}/{info['namespaces_total']}"
        )
        if lab_id is not None:
            _print_layout(info)
    for name in orphans:
        print(f"orphan namespace {name} (remove with: pilot-lab down --all)")
    for err in errors:
        print(f"unreadable state: {err}", file=sys.stderr)


@app.command()
def down(
    lab_id: Annotated[Optional[str], typer.Argument(help="The lab to remove.")] = None,
    all_labs: Annotated[bool, typer.Option("--all", help="Remove every lab's leftovers and orphan namespaces.")] = False,
    force: Annotated[bool, typer.Option("--force", help="With --all: also labs whose owner process is alive.")] = False,
    as_json: JsonOpt = False,
    state_dir: StateDirOpt = state.DEFAULT_STATE_DIR,
) -> None:
    """Remove a lab (processes, namespaces, state), even one whose builder crashed."""
    try:
        netns.require_root()
        if all_labs == (lab_id is not None):
            raise LabError("give either a lab id or --all", "usage")
        if lab_id is not None:
            removed = {lab_id: state.teardown(state.find(lab_id, state_dir), state_dir)}
            report = state.DownReport(removed=removed)
        else:
            report = state.down_all(state_dir, force=force)
    except LabError as exc:
        _fail(exc, as_json)
        return
    if as_json:
        print(json.dumps({"removed": report.removed, "kept": report.kept, "orphans": report.orphans, "errors": report.errors}))
        return
    for removed_id, names in report.removed.items():
        print(f"lab {removed_id} removed ({len(names)} namespaces)")
    for kept_id in report.kept:
        print(f"lab {kept_id} kept: its owner process is alive (use --force)")
    for name in report.orphans:
        print(f"orphan namespace {name} removed")
    for err in report.errors:
        print(f"unreadable state: {err}", file=sys.stderr)
    if not (report.removed or report.kept or report.orphans or report.errors):
        print("nothing to remove")


@app.command(name="exec", context_settings={"allow_interspersed_args": False})
def exec_(
    lab_id: Annotated[str, typer.Argument(help="The lab.")],
    node: Annotated[str, typer.Argument(help="The node to run in.")],
    argv: Annotated[list[str], typer.Argument(help="Command and arguments (put them after --).")],
    state_dir: StateDirOpt = state.DEFAULT_STATE_DIR,
) -> None:
    """Run a command inside a lab node (replaces this process)."""
    try:
        rec = state.find(lab_id, state_dir)
        ns = plan(rec.topology, rec.lab_id).node(node).netns
        if not netns.exists(ns):
            raise LabError(f"namespace {ns} is gone; is the lab down?", "unknown-lab")
    except LabError as exc:
        _fail(exc, False)
        return
    if argv and argv[0] == "--":
        argv = argv[1:]
    if not argv:
        _fail(LabError("no command given (pilot-lab exec ID NODE -- COMMAND...)", "usage"), False)
    os.execvp("ip", netns.command(ns, argv))


@app.command()
def topologies(as_json: JsonOpt = False) -> None:
    """List the built-in topologies."""
    if as_json:
        print(json.dumps({name: builtin(name).to_dict() for name in BUILTIN_HELP}))
        return
    for name, text in BUILTIN_HELP.items():
        print(f"{name:8} {text}")


def main() -> None:
    """Console-script entry point (``pilot-lab``)."""
    app()
