"""A gateway deployment in a network-namespace lab, shared by the gateway's
integration tests and ``benchmarks/gateway_bench.py``.

The built-in ``demo`` topology: the rendezvous on public host ``rv``; the
gateway host ``gw`` behind a port-restricted NAT; the agent ``bob`` behind
a full-cone NAT, so gateway-to-agent traffic crosses two NATs. Everything is
started the way a user would, with the real programs:

* ``pilot-rendezvous`` on ``rv`` (registry 9000, beacon 9001);
* ``pilotctl daemon start`` on ``gw`` and ``bob`` (each with its own HOME,
  so ``~/.pilot`` with identity, trust, ``expose.json``, gateway files);
  ``bob`` stays private (the default);
* ``python -m http.server`` on ``bob``'s 127.0.0.1:8080 over a web root,
  published with ``pilotctl gateway expose 80 127.0.0.1:8080``;
* trust with ``pilotctl handshake`` on ``gw`` and ``pilotctl approve`` on ``bob``.

:meth:`GatewayLab.pilotctl` runs ``pilotctl`` in a host's namespace with its
HOME and socket. Teardown stops the gateway (if any) and the lab, which
kills every process left in its namespaces.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from pilotgw.lab import Lab, builtin
from pilotgw.lab.node import Node

REGISTRY_PORT = 9000
BEACON_PORT = 9001
HTTP_PORT = 8080
GATEWAY, AGENT, RENDEZVOUS = "gw", "bob", "rv"


def _exe(name: str, module: str) -> list[str]:
    found = shutil.which(name, path=os.path.dirname(sys.executable))
    return [found] if found else [sys.executable, "-m", module]


PILOTCTL = _exe("pilotctl", "pilotgw.cli.main")


def wait_for(check: Any, timeout: float, what: str, interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)


class GatewayLab:
    """See the module docstring. Use as a context manager."""

    def __init__(self, workdir: Path, www: Path) -> None:
        self.workdir = Path(workdir)
        self.www = Path(www)
        self.lab = Lab(builtin("demo"))
        self.node_ids: dict[str, int] = {}
        self.addrs: dict[str, str] = {}

    # -- plumbing ---------------------------------------------------------------

    def host(self, name: str) -> Node:
        return self.lab.host(name)

    def home(self, name: str) -> Path:
        return self.workdir / name

    def env(self, name: str) -> dict[str, str]:
        return {**os.environ, "HOME": str(self.home(name)), "PILOT_SOCKET": str(self.home(name) / "pilot.sock")}

    def pilotctl(self, name: str, *args: str, timeout: float = 60, check: bool = False) -> subprocess.CompletedProcess[str]:
        return self.host(name).run(PILOTCTL + list(args), env=self.env(name), timeout=timeout, check=check)

    def pilotctl_json(self, name: str, *args: str, timeout: float = 60) -> Any:
        done = self.pilotctl(name, "--json", *args, timeout=timeout)
        if done.returncode != 0:
            raise RuntimeError(f"pilotctl {' '.join(args)} on {name} failed: {done.stderr.strip()}")
        return json.loads(done.stdout)["data"]

    def log(self, name: str, file: str) -> str:
        path = self.home(name) / ".pilot" / file
        return path.read_text(errors="replace") if path.exists() else ""

    # -- bring-up -------------------------------------------------------------------

    def __enter__(self) -> "GatewayLab":
        self.lab.up()
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def _start(self) -> None:
        rv = self.host(RENDEZVOUS)
        rv_log = open(self.workdir / "rendezvous.log", "wb")
        rv.popen(_exe("pilot-rendezvous", "pilotgw.rendezvous") + [
            "-registry-addr", f"0.0.0.0:{REGISTRY_PORT}", "-beacon-addr", f"0.0.0.0:{BEACON_PORT}",
            "-store", str(self.workdir / "registry.json")], stdout=rv_log, stderr=subprocess.STDOUT)  # fmt: skip
        rv_log.close()
        wait_for(lambda: "ready" in (self.workdir / "rendezvous.log").read_text(), 15, "pilot-rendezvous")
        for name in (GATEWAY, AGENT):
            self.start_daemon(name)
        with open(self.workdir / "http.log", "wb") as http_log:
            self.host(AGENT).popen(
                [sys.executable, "-m", "http.server", str(HTTP_PORT), "--bind", "127.0.0.1", "--directory", str(self.www)],
                stdout=http_log, stderr=subprocess.STDOUT, env=self.env(AGENT))  # fmt: skip
        self.pilotctl_json(AGENT, "gateway", "expose", "80", f"127.0.0.1:{HTTP_PORT}")
        self.trust(GATEWAY, AGENT)

    def start_daemon(self, name: str) -> None:
        (self.home(name) / ".pilot").mkdir(parents=True, exist_ok=True)
        rv = self.host(RENDEZVOUS).address
        data = self.pilotctl_json(name, "daemon", "start", "--registry", f"{rv}:{REGISTRY_PORT}",
                                  "--beacon", f"{rv}:{BEACON_PORT}", timeout=40)
        self.node_ids[name] = int(data["node_id"])
        self.addrs[name] = str(data["address"])

    def stop_daemon(self, name: str) -> None:
        self.pilotctl_json(name, "daemon", "stop", timeout=30)

    def trust(self, asker: str, approver: str) -> None:
        self.pilotctl_json(asker, "handshake", str(self.node_ids[approver]), "gateway access")

        def pending() -> bool:
            entries = self.pilotctl_json(approver, "pending").get("pending") or []
            return any(e.get("node_id") == self.node_ids[asker] for e in entries)

        wait_for(pending, 40, f"{asker}'s trust request at {approver}", interval=0.3)
        self.pilotctl_json(approver, "approve", str(self.node_ids[asker]))

        def trusted() -> bool:
            entries = self.pilotctl_json(asker, "trust").get("trusted") or []
            return any(e.get("node_id") == self.node_ids[approver] for e in entries)

        wait_for(trusted, 40, f"{approver}'s approval at {asker}", interval=0.3)

    # -- gateway side ---------------------------------------------------------------------

    def leftovers(self) -> list[str]:
        """What the gateway may have left in ``gw``'s namespace (TUN, route, rule, nft table, address)."""
        code = ("import ipaddress, json; from pilotgw.tun.leftovers import find_leftovers; "
                "print(json.dumps(find_leftovers(ipaddress.IPv4Network('10.4.0.0/16'))))")
        done = self.host(GATEWAY).run([sys.executable, "-c", code], timeout=30)
        return list(json.loads(done.stdout))

    def curl(self, url: str, *extra: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return self.host(GATEWAY).run(["curl", "-sS", "--max-time", "30", *extra, url], check=False, timeout=timeout)

    def close(self) -> None:
        if self.lab.is_up:
            try:
                if (self.home(GATEWAY) / ".pilot" / "gateway.pid").exists():
                    self.pilotctl(GATEWAY, "gateway", "stop", timeout=30)
            finally:
                self.lab.down()
