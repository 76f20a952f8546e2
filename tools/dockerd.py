#!/usr/bin/env python3
"""Start, stop and clean up a local Docker engine for the Compose lab.

Machines without systemd (CI, the dev boxes) get Debian's ``docker.io`` but
no running engine, so the Compose lab starts ``dockerd`` itself and must
leave the host as it found it. ``stop`` therefore does three things:

1. stops the ``dockerd`` this tool started (never one it found running);
2. removes what an engine leaves behind after it exits: the ``DOCKER*``
   iptables chains and the jumps into them, the ``docker0`` bridge and the
   ``br-<12 hex>`` bridges of user-defined networks, and the iptables-nft
   tables that only exist because of it (empty after the chains are gone);
3. restores the FORWARD policy if the engine turned it to DROP.

The engine is started with the smallest host footprint the lab needs:
``--bridge=none`` (no docker0), ``--iptables=false`` (no chains, no
br_netfilter), ``--ip-forward=false`` (host forwarding untouched). The lab
needs none of them: its networks are ``internal`` bridges whose containers
talk on layer 2 and route through the NAT containers, and compose.yaml gives
every container a fixed address so Docker's DNS is not needed either. The
cleanup still handles chains and bridges, so it also repairs a host where an
engine ran with its defaults.

Usage::

    tools/dockerd.py start [--json]     # idempotent; waits until the API answers
    tools/dockerd.py status [--json]
    tools/dockerd.py stop [--json]      # stop (if ours) + cleanup
    tools/dockerd.py cleanup [--json]   # leftovers only; refuses while an engine runs

Exit status: 0 on success, 1 when the engine cannot be started or cleaned,
2 for a usage error. Needs root.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

SOCKET = Path("/var/run/docker.sock")
STATE_DIR = Path("/run/pilotgw")
STATE = STATE_DIR / "dockerd.json"
LOG = Path("/var/log/pilotgw-dockerd.log")
DOCKERD_FLAGS = [
    f"--host=unix://{SOCKET}",
    "--bridge=none",
    "--iptables=false",
    "--ip-masq=false",
    "--ip-forward=false",
    "--pidfile=/var/run/pilotgw-dockerd.pid",
]
START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0
DOCKER_CHAIN = re.compile(r"^DOCKER(-[A-Z0-9-]+)?$")
DOCKER_BRIDGE = re.compile(r"^(docker0|br-[0-9a-f]{12})$")
IPTABLES_TABLES = ("filter", "nat")


class EngineError(Exception):
    """The engine could not be started, stopped or cleaned; ``code`` says which."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


def api_answers(timeout: float = 1.0) -> bool:
    """True when something answers ``GET /_ping`` on the engine socket."""
    if not SOCKET.exists():
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(str(SOCKET))
            s.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            status_line = s.recv(64).split(b"\r\n", 1)[0]
    except OSError:
        return False
    parts = status_line.split()
    return len(parts) >= 2 and parts[0].startswith(b"HTTP/1.") and parts[1] == b"200"


def _read_state() -> dict[str, Any]:
    try:
        return json.loads(STATE.read_text())
    except (OSError, ValueError):
        return {}


def _write_state(state: dict[str, Any]) -> None:
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    tmp = STATE.with_suffix(".tmp")
    tmp.write_text(json.dumps(state))
    os.chmod(tmp, 0o600)
    tmp.replace(STATE)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie is dead for our purposes (it is our child only if we never reaped it).
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return False


def _forward_policy() -> str | None:
    if not shutil.which("iptables"):
        return None
    out = subprocess.run(["iptables", "-S", "FORWARD"], capture_output=True, text=True)
    for line in out.stdout.splitlines():
        if line.startswith("-P FORWARD "):
            return line.split()[2]
    return None


def _nft_tables() -> list[str]:
    if not shutil.which("nft"):
        return []
    out = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True)
    return [line.removeprefix("table ").strip() for line in out.stdout.splitlines() if line.startswith("table ")]


def start() -> dict[str, Any]:
    """Start dockerd unless an engine already answers; wait for its API."""
    if api_answers():
        state = _read_state()
        return {"engine": "running", "ours": bool(state.get("pid") and _alive(state["pid"]))}
    dockerd = shutil.which("dockerd")
    if dockerd is None:
        raise EngineError("dockerd is not installed (apt-get install docker.io)", "no-engine")
    state = {
        "tables_before": _nft_tables(),
        "forward_policy_before": _forward_policy(),
    }
    LOG.parent.mkdir(parents=True, exist_ok=True)
    log = open(LOG, "ab")
    proc = subprocess.Popen(
        [dockerd, *DOCKERD_FLAGS],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    log.close()
    state["pid"] = proc.pid
    _write_state(state)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise EngineError(f"dockerd exited with {proc.returncode}; see {LOG}", "engine-failed")
        if api_answers():
            return {"engine": "started", "ours": True, "pid": proc.pid, "log": str(LOG)}
        time.sleep(0.2)
    _terminate(proc.pid)
    raise EngineError(f"dockerd did not answer within {START_TIMEOUT:.0f}s; see {LOG}", "engine-timeout")


def _terminate(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + STOP_TIMEOUT
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.2)
    if _alive(pid):
        # dockerd runs in its own session: its group holds the managed containerd too.
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        time.sleep(0.5)


def _iptables(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["iptables", *args], capture_output=True, text=True)


def _remove_docker_chains() -> list[str]:
    """Delete every jump into a DOCKER* chain, then the chains themselves."""
    removed: list[str] = []
    if not shutil.which("iptables"):
        return removed
    for table in IPTABLES_TABLES:
        listing = _iptables("-t", table, "-S")
        if listing.returncode != 0:
            continue
        chains = [
            line.split()[1]
            for line in listing.stdout.splitlines()
            if line.startswith("-N ") and DOCKER_CHAIN.match(line.split()[1])
        ]
        if not chains:
            continue
        # Rules that jump into a Docker chain, from any chain (incl. the built-in ones).
        for line in listing.stdout.splitlines():
            parts = line.split()
            if parts[:1] == ["-A"] and "-j" in parts:
                target = parts[parts.index("-j") + 1]
                if DOCKER_CHAIN.match(target) and not DOCKER_CHAIN.match(parts[1]):
                    _iptables("-t", table, "-D", *parts[1:])
        for chain in chains:
            _iptables("-t", table, "-F", chain)
        for chain in chains:
            if _iptables("-t", table, "-X", chain).returncode == 0:
                removed.append(f"{table}/{chain}")
    return removed


def _remove_bridges() -> list[str]:
    """Delete ``docker0`` and Docker's ``br-<12 hex>`` network bridges.

    Uses ``ip`` (iproute2) rather than pyroute2 so the tool also runs from the
    system Python, e.g. in a CI cleanup trap before any venv exists.
    """
    removed = []
    out = subprocess.run(["ip", "-o", "link", "show", "type", "bridge"], capture_output=True, text=True)
    for line in out.stdout.splitlines():
        name = line.split(":", 2)[1].strip().split("@", 1)[0]
        if DOCKER_BRIDGE.match(name) and subprocess.run(["ip", "link", "del", name], capture_output=True).returncode == 0:
            removed.append(name)
    return removed


def _nft_table_is_inert(family_and_name: str) -> bool:
    """True when a table holds only base chains with no rules and policy accept."""
    family, name = family_and_name.split()
    out = subprocess.run(["nft", "-j", "list", "table", family, name], capture_output=True, text=True)
    if out.returncode != 0:
        return False
    for item in json.loads(out.stdout).get("nftables", []):
        if "rule" in item or "set" in item or "map" in item:
            return False
        chain = item.get("chain")
        if chain is not None and (chain.get("policy", "accept") != "accept" or "hook" not in chain):
            return False
    return True


def cleanup(state: dict[str, Any] | None = None) -> dict[str, Any]:
    """Remove an engine's leftovers; refuses while an engine still answers."""
    if api_answers():
        raise EngineError("a Docker engine is running; stop it first", "engine-running")
    state = _read_state() if state is None else state
    chains = _remove_docker_chains()
    bridges = _remove_bridges()
    policy = _forward_policy()
    restored = None
    if policy == "DROP" and state.get("forward_policy_before") in (None, "ACCEPT"):
        _iptables("-P", "FORWARD", "ACCEPT")
        restored = "ACCEPT"
    before = set(state.get("tables_before") or [])
    tables = []
    for table in _nft_tables():
        if table not in before and table.split()[1] in IPTABLES_TABLES and _nft_table_is_inert(table):
            subprocess.run(["nft", "delete", "table", *table.split()], capture_output=True)
            tables.append(table)
    return {"chains": chains, "bridges": bridges, "nft_tables": tables, "forward_policy": restored}


def stop() -> dict[str, Any]:
    """Stop the dockerd this tool started, then clean its leftovers."""
    state = _read_state()
    pid = state.get("pid")
    stopped = False
    if pid and _alive(pid):
        _terminate(pid)
        stopped = True
    elif api_answers():
        return {"engine": "running", "ours": False, "note": "not started by this tool; left alone"}
    deadline = time.monotonic() + STOP_TIMEOUT
    while api_answers() and time.monotonic() < deadline:
        time.sleep(0.2)
    result = {"engine": "stopped" if stopped else "not running", **cleanup(state)}
    STATE.unlink(missing_ok=True)
    return result


def status() -> dict[str, Any]:
    state = _read_state()
    pid = state.get("pid")
    return {
        "engine": "running" if api_answers() else "stopped",
        "ours": bool(pid and _alive(pid)),
        "pid": pid if pid and _alive(pid) else None,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dockerd.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["start", "stop", "status", "cleanup"])
    parser.add_argument("--json", action="store_true", help="print the result as one JSON object")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("dockerd.py: needs root (error code: not-root)", file=sys.stderr)
        return 1
    try:
        result = {"start": start, "stop": stop, "status": status, "cleanup": cleanup}[args.command]()
    except EngineError as exc:
        if args.json:
            print(json.dumps({"error": str(exc), "code": exc.code}))
        else:
            print(f"dockerd.py: {exc} (error code: {exc.code})", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
