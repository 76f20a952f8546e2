"""The demo behind ``scripts/demo``: Pilot across two NATs, end to end, in a minute.

``python -m pilotgw.lab.demo [up]`` builds the ``demo`` topology as a
detached lab (it stays up for the user to explore) and starts Pilot in it:

* a rendezvous on the public host ``rv``;
* ``alice`` and the gateway host ``gw`` behind a port-restricted NAT
  ("home"), ``bob`` behind a full-cone NAT ("office"), each with its own
  daemon, identity and HOME; trust between all three;
* on ``bob``: an ordinary ``python -m http.server`` on 127.0.0.1:8080,
  published on pilot port 80 with ``pilotctl gateway expose 80 127.0.0.1:8080``;
* on ``gw``: ``pilot-gateway`` mapping bob to 10.4.0.1.

Then it runs, showing each command: ``curl http://10.4.0.1/`` on ``gw``
(the page comes from bob, through both NATs and the encrypted overlay), and
``pilotctl send-file`` of a file from alice to bob with its progress bar
(on the user's terminal). ``python -m pilotgw.lab.demo down`` removes every
demo lab: processes, namespaces, files.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from pilotgw.lab import netns, state
from pilotgw.lab.errors import LabError
from pilotgw.lab.lab import Lab
from pilotgw.lab.stack import Stack, StackRecord
from pilotgw.lab.topology import builtin

PAGE = """<!doctype html>
<title>Hello from bob</title>
<h1>Hello from bob</h1>
<p>This page is served by an ordinary web server on bob, behind a full-cone NAT,
and reached through Pilot's encrypted overlay and the gateway behind another NAT.</p>
"""
FILE_MIB = 12


def _say(text: str) -> None:
    print(f"\n\033[1m==> {text}\033[0m" if sys.stdout.isatty() else f"\n==> {text}", flush=True)


def _show(node: str, argv: list[str]) -> None:
    print(f"[{node}]$ {' '.join(argv)}", flush=True)


PILOTCTL = [sys.executable, "-m", "pilotgw.cli.main"]


def _pilot_lab() -> str:
    """How the user's shell reaches ``pilot-lab`` (the venv is not on their PATH)."""
    exe = Path(sys.executable).parent / "pilot-lab"
    try:
        return str(exe.relative_to(Path.cwd()))
    except ValueError:
        return str(exe)


def up(state_dir: Path = state.DEFAULT_STATE_DIR) -> int:
    """Build the demo lab, start Pilot, show curl and send-file; leave it running."""
    t0 = time.monotonic()
    _say("building the lab: a rendezvous, two NATs, three hosts (network namespaces)")
    lab = Lab(builtin("demo"), state_dir=state_dir, detached=True).up()
    try:
        stack = Stack(lab, detached=True)
        stack.record.extras["demo"] = True
        _say("starting Pilot: pilot-rendezvous on rv, pilot-daemon on alice, gw and bob; trust between them")
        stack.start()
        for name, agent in stack.agents.items():
            node = lab.host(name)
            nat = lab.host(node.plan.upstream)
            print(f"  {name:6} {agent.address}  ({node.address}, behind the {nat.nat.value} NAT {nat.name})")
        _say("bob: an ordinary web server on 127.0.0.1:8080, exposed on pilot port 80")
        www = stack.agent("bob").home / "www"
        www.mkdir(exist_ok=True)
        (www / "index.html").write_text(PAGE)
        _show("bob", ["python", "-m", "http.server", "8080", "--bind", "127.0.0.1"])
        _show("bob", ["pilotctl", "gateway", "expose", "80", "127.0.0.1:8080"])
        stack.serve_web("bob", www)
        _say("gw: pilot-gateway maps bob to a local IP")
        (mapping,) = stack.start_gateway("gw", ["bob"])
        _show("gw", ["pilot-gateway", stack.agent("bob").address])
        print(f"  mapped {mapping['local_ip']} -> {mapping['pilot_addr']} (bob)")
        _say("gw: curl through the overlay")
        url = f"http://{mapping['local_ip']}/"
        _show("gw", ["curl", url])
        done = lab.host("gw").run(["curl", "-sS", "--max-time", "30", url], check=False, timeout=60)
        print(done.stdout + done.stderr, end="", flush=True)
        if done.returncode != 0 or "Hello from bob" not in done.stdout:
            raise LabError(f"curl through the gateway failed (exit {done.returncode})", "demo")
        print(f"  path gw -> bob: {stack.path('gw', 'bob')}")
        _say(f"alice: send a {FILE_MIB} MiB file to bob")
        alice = stack.agent("alice")
        payload = alice.home / "report.bin"
        payload.write_bytes(os.urandom(FILE_MIB << 20))
        argv = PILOTCTL + ["send-file", stack.agent("bob").address, str(payload)]
        _show("alice", ["pilotctl", "send-file", stack.agent("bob").address, "report.bin"])
        # Inherit the terminal: rich draws the progress bar when it is a TTY.
        sent = subprocess.run(lab.host("alice").command(argv), env={**os.environ, **alice.env(stack.registry)},
                              timeout=120)
        if sent.returncode != 0:
            raise LabError("send-file failed", "demo")
        got = stack.received("bob")
        if got:
            print(f"  bob received {got[-1].name} ({got[-1].stat().st_size} bytes) in {got[-1].parent}")
        print(f"  path alice -> bob: {stack.path('alice', 'bob')}")
    except BaseException:
        lab.down()
        raise
    _say(f"done in {time.monotonic() - t0:.0f} s; the lab stays up for you to explore (lab {lab.id})")
    cmd = _pilot_lab()
    print(f"  {cmd} status {lab.id}                        nodes, peers and paths")
    print(f"  {cmd} exec {lab.id} alice -- pilotctl peers     any pilotctl command as alice (or gw, bob)")
    print(f"  {cmd} exec {lab.id} gw -- curl {url}")
    print("  tear it all down:  scripts/demo down")
    return 0


def down(state_dir: Path = state.DEFAULT_STATE_DIR) -> int:
    """Remove every lab the demo built (their processes, namespaces and files)."""
    records, _ = state.load_all(state_dir)
    removed = 0
    for rec in records:
        try:
            pilot = StackRecord.load(state_dir, rec.lab_id)
        except LabError:
            pilot = None
        if pilot is not None and pilot.extras.get("demo"):
            state.teardown(rec, state_dir)
            print(f"demo lab {rec.lab_id} removed")
            removed += 1
    if not removed:
        print("no demo lab is running")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    command = args[0] if args else "up"
    if command not in ("up", "down") or len(args) > 1:
        print("usage: python -m pilotgw.lab.demo [up|down]", file=sys.stderr)
        return 2
    try:
        netns.require_root()
        netns.require_tools("ip", "nft", "curl")
        return up() if command == "up" else down()
    except LabError as exc:
        print(f"demo: error [{exc.code}]: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
