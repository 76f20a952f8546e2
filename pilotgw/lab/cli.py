"""``pilot-lab``: bring namespace labs up, inspect them, run commands in them, tear them down.

``up`` builds a *detached* lab (it outlives the command), starts Pilot in
it -- a rendezvous on the topology's rendezvous host, a daemon on every
other end host, trust between them, and ``pilot-gateway`` on the host named
``gw`` (or ``--gateway``) mapping every other agent -- and prints every
node's addresses and how to reach it (``--network-only`` skips Pilot);
``status ID`` adds each agent's peers and the path to them (direct,
punched, relay); ``exec`` runs a command in a node, as that node's agent
(``HOME``, ``PILOT_SOCKET``, ``PILOT_REGISTRY`` set, so ``pilotctl`` just works); ``down ID`` removes one lab, ``down
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
from pilotgw.lab.stack import Stack, StackRecord, describe
from pilotgw.lab.topology import BUILTIN_HELP, Topology, builtin, plan

GATEWAY_HOST = "gw"

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
    network_only: Annotated[bool, typer.Option("--network-only", help="Build the network only; start no Pilot programs.")] = False,
    public: Annotated[bool, typer.Option("--public", help="Register the agents as public nodes (no trust needed).")] = False,
    gateway: Annotated[Optional[str], typer.Option("--gateway", help=f"Host that runs pilot-gateway (default: {GATEWAY_HOST!r} if the topology has it).")] = None,
    no_gateway: Annotated[bool, typer.Option("--no-gateway", help="Start no gateway.")] = False,
    as_json: JsonOpt = False,
    state_dir: StateDirOpt = state.DEFAULT_STATE_DIR,
) -> None:
    """Build a lab, start Pilot in it and leave it running; print how to reach every node."""
    try:
        lab = Lab(load_topology(topology), state_dir=state_dir, detached=True).up()
    except LabError as exc:
        _fail(exc, as_json)
        return
    info = lab.layout.to_dict()
    stack = None
    if not network_only and lab.rendezvous is not None:
        try:
            stack = Stack(lab, public=public, detached=True).start()
            gw = None if no_gateway else gateway or (GATEWAY_HOST if GATEWAY_HOST in stack.agents else None)
            if gw is not None:
                stack.start_gateway(gw, [n for n in stack.agents if n != gw])
        except LabError as exc:
            lab.down()
            _fail(exc, as_json)
            return
        info["pilot"] = stack.record.to_json()
    if as_json:
        print(json.dumps(info))
        return
    print(f"lab {lab.id} is up (topology {lab.topology.name})")
    _print_layout(info)
    if stack is not None:
        _print_pilot(lab.id, stack.record)
    else:
        first = lab.layout.nodes[0]
        print(f"run a command in a node:  pilot-lab exec {lab.id} {first.name} -- <command>")
        print(f"                      or  ip netns exec {first.netns} <command>")
    print(f"show nodes and paths:     pilot-lab status {lab.id}")
    print(f"tear it down:             pilot-lab down {lab.id}")


def _print_pilot(lab_id: str, rec: StackRecord) -> None:
    print(f"Pilot: rendezvous on {rec.rendezvous} (registry {rec.registry}, beacon {rec.beacon})")
    rows = [("AGENT", "PILOT ADDRESS", "NODE", "SOCKET")]
    for name, a in rec.agents.items():
        rows.append((name, a.address, str(a.node_id), str(a.socket)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  " + "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    gw = rec.extras.get("gateway")
    if gw:
        names = {a.address: n for n, a in rec.agents.items()}
        for m in gw.get("mappings") or []:
            who = names.get(m["pilot_addr"], m["pilot_addr"])
            print(f"gateway on {gw['node']}: {m['local_ip']} -> {who} ({m['pilot_addr']})"
                  f"   try: pilot-lab exec {lab_id} {gw['node']} -- curl http://{m['local_ip']}/")
    if rec.agents:
        first = next(iter(rec.agents))
        print(f"talk to an agent:         pilot-lab exec {lab_id} {first} -- pilotctl info")
        print(f"                      or  PILOT_SOCKET={rec.agents[first].socket} pilotctl peers")


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
        layout = plan(rec.topology, rec.lab_id)
        info = layout.to_dict()
        info.update(
            owner_pid=rec.owner_pid,
            owner_alive=rec.owner_alive(),
            namespaces_present=len(present),
            namespaces_total=len(rec.namespaces),
        )
        try:
            pilot = StackRecord.load(state_dir, rec.lab_id)
        except LabError as exc:
            errors.append(exc)
            pilot = None
        if pilot is not None:
            info["pilot"] = describe(pilot) if lab_id is not None else pilot.to_json()
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
            if "pilot" in info:
                _print_paths(info["pilot"])
    for name in orphans:
        print(f"orphan namespace {name} (remove with: pilot-lab down --all)")
    for err in errors:
        print(f"unreadable state: {err}", file=sys.stderr)


def _print_paths(pilot: dict[str, Any]) -> None:
    print(f"Pilot: registry {pilot['registry']}, beacon {pilot['beacon']}")
    for name, a in pilot["agents"].items():
        state_text = f"error: {a['error']}" if "error" in a else f"{len(a.get('peers', []))} peers"
        print(f"  {name:12} {a['address']}  node {a['node_id']}  {state_text}")
        for p in a.get("peers", []):
            print(f"      -> {p['agent'] or p['node_id']:12} {p['path']:8} {p['endpoint']}")
    gw = pilot.get("extras", {}).get("gateway")
    if gw:
        for m in gw.get("mappings") or []:
            print(f"  gateway on {gw['node']}: {m['local_ip']} -> {m['pilot_addr']}")


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
    # Pilot's programs (pilotctl, pilot-daemon...) sit next to this Python.
    env = dict(os.environ, PATH=os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")]))
    try:
        pilot = StackRecord.load(state_dir, lab_id)
    except LabError:
        pilot = None
    if pilot is not None and node in pilot.agents:
        env.update(pilot.agents[node].env(pilot.registry))
    os.execvpe("ip", netns.command(ns, argv), env)


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
