"""Pilot running inside a lab: a rendezvous, one daemon per agent host, trust.

A bare :class:`~pilotgw.lab.lab.Lab` is only a network. Users trying Pilot,
the NAT tests and the demo want the overlay on top of it, laid out the way
a real deployment is: the rendezvous on the topology's rendezvous host,
every other end host running ``pilot-daemon`` with its own identity, HOME
and IPC socket, registered through whatever NAT sits in front of it. So::

    with Lab(builtin("demo")) as lab, Stack(lab) as stack:
        alice = stack.agent("alice")
        alice.client().info()                    # over alice's IPC socket
        stack.path("alice", "bob")               # "direct", "punched" or "relay"

Everything lives under ``<state_dir>/<lab id>/`` (``state.stack_dir``): per
node a directory that is its ``$HOME`` (``.pilot/identity.key``, trust,
received files), its IPC socket ``pilot.sock`` and its log. ``stack.json``
there records what was started, so ``pilot-lab status/exec`` find the
sockets of a detached lab and the lab's teardown removes it all (the
processes run inside the lab's namespaces, which teardown empties).

Unix sockets are not namespaced by path, so the test process and
``pilotctl`` run anywhere on the machine can talk to every daemon of the
lab directly; only their UDP tunnels live inside the lab's network.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Iterable

from pilotgw.lab import state
from pilotgw.lab.errors import LabError
from pilotgw.lab.lab import Lab
from pilotgw.lab.node import Node

REGISTRY_PORT = 9000
BEACON_PORT = 9001
STACK_FILE = "stack.json"
START_TIMEOUT = 20.0
TRUST_TIMEOUT = 40.0

#: What :meth:`Stack.path` reports: the tunnel is keyed and used directly,
#: directly through a hole opened by the beacon's punch, or through the relay.
PATHS = ("direct", "punched", "relay")


def _python_module(module: str) -> list[str]:
    return [sys.executable, "-m", module]


def _tail(path: Path, lines: int = 30) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


@dataclass
class Agent:
    """One daemon of the stack: where it runs and how to reach it."""

    name: str
    netns: str
    ip: str
    home: Path
    socket: Path
    log: Path
    node_id: int = 0
    address: str = ""
    pid: int = 0

    def env(self, registry: str) -> dict[str, str]:
        """The environment that points ``pilotctl`` (and the Python API) at this daemon."""
        return {"HOME": str(self.home), "PILOT_SOCKET": str(self.socket), "PILOT_REGISTRY": registry}

    def client(self, timeout: float = 5.0) -> Any:
        """A :class:`pilotgw.client.SyncClient` on this daemon's IPC socket (caller closes it)."""
        from pilotgw.client import SyncClient

        return SyncClient(str(self.socket), connect_timeout=timeout)

    def info(self, timeout: float = 5.0) -> dict[str, Any]:
        with self.client(timeout) as c:
            return c.info()

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name, "netns": self.netns, "ip": self.ip, "home": str(self.home),
            "socket": str(self.socket), "log": str(self.log), "node_id": self.node_id,
            "address": self.address, "pid": self.pid,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Agent:
        return cls(name=str(d["name"]), netns=str(d["netns"]), ip=str(d["ip"]), home=Path(d["home"]),
                   socket=Path(d["socket"]), log=Path(d["log"]), node_id=int(d["node_id"]),
                   address=str(d["address"]), pid=int(d.get("pid", 0)))


@dataclass
class StackRecord:
    """``stack.json``: the rendezvous and agents of a lab, for ``pilot-lab status/exec``."""

    lab_id: str
    rendezvous: str
    registry: str
    beacon: str
    agents: dict[str, Agent] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"lab": self.lab_id, "rendezvous": self.rendezvous, "registry": self.registry, "beacon": self.beacon,
                "agents": {n: a.to_json() for n, a in self.agents.items()}, "extras": self.extras}

    @classmethod
    def load(cls, state_dir: Path, lab_id: str) -> StackRecord | None:
        """The record of lab ``lab_id``, None when Pilot was never started in it."""
        path = state.stack_dir(state_dir, lab_id) / STACK_FILE
        try:
            d = json.loads(path.read_text())
            return cls(lab_id=str(d["lab"]), rendezvous=str(d["rendezvous"]), registry=str(d["registry"]),
                       beacon=str(d["beacon"]), agents={n: Agent.from_json(a) for n, a in d["agents"].items()},
                       extras=dict(d.get("extras", {})))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise LabError(f"stack file {path}: {exc}", "bad-state") from None

    def save(self, state_dir: Path) -> None:
        path = state.stack_dir(state_dir, self.lab_id) / STACK_FILE
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(self.to_json(), f, indent=1)
        os.replace(tmp, path)


def classify(peer: dict[str, Any], beacon: str) -> str:
    """The path of one ``peer_list`` entry of a daemon's Info.

    The daemon's own ``path`` is believed: only it knows whether it punched
    the hole its direct path runs through (a NAT's kind cannot tell: a punch
    towards a directly reachable peer may still be what opened the path). An
    entry without a valid one (a daemon that does not report it) is told by
    its endpoint: the beacon's address means relay, anything else direct.
    """
    reported = peer.get("path")
    if isinstance(reported, str) and reported in PATHS:
        return reported
    return "relay" if peer.get("endpoint") == beacon else "direct"


class Stack:
    """Rendezvous + daemons (+ trust) inside a running :class:`Lab`.

    ``agents`` names the hosts that run a daemon (default: every end host
    but the rendezvous). ``public`` registers them as public nodes (anyone
    may dial them); otherwise they are private and ``trust`` (default on)
    makes every pair of agents trust each other with a handshake and an
    approval, so they can reach each other's services. ``daemon_args`` go
    to every ``pilot-daemon``. ``detached`` processes outlive this object
    (``pilot-lab up``); otherwise :meth:`stop` (or leaving the ``with``)
    stops them -- and the lab's teardown kills whatever is left anyway.
    """

    def __init__(
        self,
        lab: Lab,
        *,
        agents: Iterable[str] | None = None,
        public: bool = False,
        trust: bool = True,
        daemon_args: Iterable[str] = (),
        log_level: str = "info",
        detached: bool = False,
    ) -> None:
        if lab.rendezvous is None:
            raise LabError(f"topology {lab.topology.name} names no rendezvous host", "bad-topology")
        self.lab = lab
        self.public = public
        self.trust = trust
        self.daemon_args = list(daemon_args)
        self.log_level = log_level
        self.detached = detached
        hosts = [n.name for n in lab.nodes.values() if n.role != "nat" and n.name != lab.topology.rendezvous]
        chosen = list(hosts if agents is None else agents)
        for name in chosen:
            if lab.host(name).role == "nat" or name == lab.topology.rendezvous:
                raise LabError(f"{name!r} is a router or the rendezvous, not an agent host", "usage")
        self.dir = state.stack_dir(lab.state_dir, lab.id)
        rv = lab.rendezvous
        self.record = StackRecord(
            lab_id=lab.id, rendezvous=rv.name,
            registry=f"{rv.address}:{REGISTRY_PORT}", beacon=f"{rv.address}:{BEACON_PORT}",
        )
        for name in chosen:
            node = lab.host(name)
            home = self.dir / name
            self.record.agents[name] = Agent(name=name, netns=node.netns, ip=str(node.address), home=home,
                                             socket=home / "pilot.sock", log=home / "daemon.log")
        self._procs: list[subprocess.Popen[bytes]] = []
        self._started = False

    def __enter__(self) -> Stack:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    @property
    def agents(self) -> dict[str, Agent]:
        return self.record.agents

    @property
    def registry(self) -> str:
        return self.record.registry

    @property
    def beacon(self) -> str:
        return self.record.beacon

    def agents_by_address(self) -> dict[str, str]:
        """Pilot address -> agent name."""
        return {a.address: n for n, a in self.agents.items()}

    def agent(self, name: str) -> Agent:
        try:
            return self.record.agents[name]
        except KeyError:
            raise LabError(f"no agent {name!r} in lab {self.lab.id}", "unknown-node") from None

    # -- start/stop -------------------------------------------------------------------

    def _spawn(self, node: Node, argv: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        full_env = dict(os.environ)
        if env:
            full_env.update(env)
        with open(log, "ab") as out:
            proc = node.popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                              start_new_session=True, env=full_env, cwd=str(log.parent))
        self._procs.append(proc)
        return proc

    def start(self) -> Stack:
        """Start the rendezvous, then all daemons at once; wait until each is
        registered; then establish trust. On failure stop what was started."""
        if self._started:
            return self
        if not self.lab.is_up:
            raise LabError(f"lab {self.lab.id} is not up", "unknown-lab")
        self._started = True
        try:
            self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            self.record.save(self.lab.state_dir)
            self._start_rendezvous()
            self.start_agents(list(self.agents))
            if self.trust and not self.public:
                self.establish_trust(list(self.agents))
            self.record.save(self.lab.state_dir)
        except BaseException:
            self.stop()
            raise
        return self

    def _start_rendezvous(self) -> None:
        rv = self.lab.rendezvous
        assert rv is not None
        rv_dir = self.dir / rv.name
        rv_dir.mkdir(mode=0o700, exist_ok=True)
        log = rv_dir / "rendezvous.log"
        argv = _python_module("pilotgw.rendezvous") + [
            "-registry-addr", f"0.0.0.0:{REGISTRY_PORT}", "-beacon-addr", f"0.0.0.0:{BEACON_PORT}",
            "-store", str(rv_dir / "registry.json"), "-log-level", self.log_level,
        ]
        proc = self._spawn(rv, argv, log)
        self.record.extras["rendezvous_pid"] = proc.pid
        deadline = time.monotonic() + START_TIMEOUT
        while "pilot-rendezvous ready" not in log.read_text(errors="replace"):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise LabError(f"pilot-rendezvous did not start in {rv.name} (exit {proc.poll()}):\n{_tail(log)}",
                               "pilot-start")
            time.sleep(0.05)

    def start_agents(self, names: list[str], extra_args: Iterable[str] = ()) -> None:
        """Start the daemons of ``names`` (again, after :meth:`stop_agent`) and wait for each."""
        procs: dict[str, subprocess.Popen[bytes]] = {}
        for name in names:
            agent = self.agent(name)
            (agent.home / ".pilot").mkdir(mode=0o700, parents=True, exist_ok=True)
            argv = _python_module("pilotgw.daemon.cli") + [
                "-registry", self.registry, "-beacon", self.beacon, "-listen", "0.0.0.0:0",
                "-socket", str(agent.socket), "-identity", str(agent.home / ".pilot" / "identity.key"),
                "-log-level", self.log_level, *self.daemon_args, *extra_args,
            ]
            if self.public:
                argv.append("-public")
            procs[name] = self._spawn(self.lab.host(name), argv, agent.log, env=agent.env(self.registry))
            agent.pid = procs[name].pid
        deadline = time.monotonic() + START_TIMEOUT
        for name, proc in procs.items():
            agent = self.agent(name)
            while True:
                info = None
                if agent.socket.exists():
                    try:
                        info = agent.info(timeout=1.0)
                    except Exception:
                        info = None
                if info and info.get("node_id"):
                    agent.node_id, agent.address = int(info["node_id"]), str(info["address"])
                    break
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise LabError(f"pilot-daemon did not start in {name} (exit {proc.poll()}):\n{_tail(agent.log)}",
                                   "pilot-start")
                time.sleep(0.05)
        self.record.save(self.lab.state_dir)

    def stop_agent(self, name: str, timeout: float = 10.0) -> None:
        """SIGTERM one daemon and wait for it (to restart it with :meth:`start_agents`)."""
        agent = self.agent(name)
        for proc in self._procs:
            if proc.pid == agent.pid and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()

    def stop(self) -> None:
        """Stop every process this stack started (not for detached stacks: the lab's down does it)."""
        if self.detached:
            return
        for proc in reversed(self._procs):
            if proc.poll() is None:
                proc.terminate()
        deadline = time.monotonic() + 5.0
        for proc in self._procs:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._procs.clear()

    def spawn(self, name: str, argv: list[str], log_name: str) -> subprocess.Popen[bytes]:
        """Run another long-lived program in node ``name`` with that agent's environment
        (a web server, a gateway); it is stopped with the stack. Its log goes to
        ``<agent home>/<log_name>``."""
        agent = self.agent(name)
        return self._spawn(self.lab.host(name), argv, agent.home / log_name, env=agent.env(self.registry))

    def pilotctl(self, name: str, *args: str, timeout: float = 60) -> Any:
        """Run ``pilotctl --json ARGS`` in node ``name`` as that agent; returns the
        envelope's ``data``. :class:`LabError` ``"pilotctl"`` if it fails."""
        agent = self.agent(name)
        done = self.lab.host(name).run(_python_module("pilotgw.cli.main") + ["--json", *args], check=False,
                                       timeout=timeout, env={**os.environ, **agent.env(self.registry)})
        try:
            reply = json.loads(done.stdout or done.stderr)
        except ValueError:
            reply = {}
        if done.returncode != 0 or reply.get("status") != "ok":
            raise LabError(f"pilotctl {' '.join(args)} on {name} failed: {(done.stderr or done.stdout).strip()}",
                           "pilotctl")
        return reply.get("data")

    def serve_web(self, name: str, root: Path, *, port: int = 8080, pilot_port: int = 80) -> None:
        """An ordinary web server (``python -m http.server``) on ``name``'s
        127.0.0.1:``port`` serving ``root``, published on pilot port
        ``pilot_port`` with ``pilotctl gateway expose``."""
        proc = self.spawn(name, [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1",
                                 "--directory", str(root)], "http.log")
        deadline = time.monotonic() + START_TIMEOUT
        probe = f"import socket; socket.create_connection(('127.0.0.1', {port}), 1).close()"
        while self.lab.host(name).run([sys.executable, "-c", probe], check=False).returncode != 0:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise LabError(f"web server did not start in {name}:\n{_tail(self.agent(name).home / 'http.log')}",
                               "pilot-start")
            time.sleep(0.1)
        self.pilotctl(name, "gateway", "expose", str(pilot_port), f"127.0.0.1:{port}")
        self.record.extras.setdefault("web", {})[name] = {"port": port, "pilot_port": pilot_port, "root": str(root)}
        self.record.save(self.lab.state_dir)

    def start_gateway(self, name: str, targets: Iterable[str], *, ports: str = "") -> list[dict[str, str]]:
        """Run ``pilot-gateway`` on agent ``name`` (its TUN and routes stay in
        that node's namespace) mapping each agent of ``targets`` to a local IP;
        returns the mappings (``local_ip``, ``pilot_addr``)."""
        agent = self.agent(name)
        argv = _python_module("pilotgw.gateway.cli") + [
            "--json", "--socket", str(agent.socket), "--state-dir", str(agent.home / ".pilot")]
        if ports:
            argv += ["--ports", ports]
        argv += [self.agent(t).address for t in targets]
        log = agent.home / "gateway.log"
        proc = self.spawn(name, argv, "gateway.log")
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            for line in log.read_text(errors="replace").splitlines():
                if line.startswith("{") and '"status"' in line:
                    reply = json.loads(line)
                    if reply.get("status") != "ok":
                        raise LabError(f"pilot-gateway on {name} failed: {line}", "pilot-start")
                    mappings = list(reply["data"].get("mappings") or [])
                    self.record.extras["gateway"] = {"node": name, "pid": proc.pid, "mappings": mappings}
                    self.record.save(self.lab.state_dir)
                    return mappings
            if proc.poll() is not None or time.monotonic() > deadline:
                raise LabError(f"pilot-gateway did not start in {name} (exit {proc.poll()}):\n{_tail(log)}",
                               "pilot-start")
            time.sleep(0.1)

    # -- trust ---------------------------------------------------------------------------

    def establish_trust(self, names: list[str], timeout: float = TRUST_TIMEOUT) -> None:
        """Every pair of ``names`` trusts each other: handshakes from the first
        of each pair, approvals by the second, then wait until both sides list
        the other as trusted."""
        pairs = [(a, b) for i, a in enumerate(names) for b in names[i + 1:]]
        if not pairs:
            return
        for a, b in pairs:
            with self.agent(a).client() as c:
                c.handshake(self.agent(b).node_id, f"lab {self.lab.id}: {a} and {b}")
        want = {b: {self.agent(a).node_id for a, bb in pairs if bb == b} for b in names}
        approved: dict[str, set[int]] = {n: set() for n in names}
        deadline = time.monotonic() + timeout
        while True:
            done = True
            for name in names:
                agent = self.agent(name)
                with agent.client() as c:
                    for entry in c.pending():
                        node = int(entry["node_id"])
                        if node in want[name] and node not in approved[name]:
                            c.approve(node)
                            approved[name].add(node)
                    trusted = {int(e["node_id"]) for e in c.trusted()}
                peers = {self.agent(o).node_id for o in names if o != name}
                if not peers <= trusted:
                    done = False
            if done:
                return
            if time.monotonic() > deadline:
                missing = {n: sorted(want[n] - approved[n]) for n in names if want[n] - approved[n]}
                raise LabError(f"trust between {', '.join(names)} not established in {timeout:.0f} s "
                               f"(requests not seen: {missing})", "pilot-trust")
            time.sleep(0.2)

    # -- files ----------------------------------------------------------------------------

    def send_file(self, sender: str, receiver: str, path: Path, progress: Any = None) -> Any:
        """Send ``path`` from agent ``sender`` to ``receiver`` with the Python API
        (:func:`pilotgw.services.filetransfer.send_file`, no size limit); returns
        the receiver's :class:`~pilotgw.services.filetransfer.Delivery`. The file
        lands in ``<receiver home>/.pilot/received/``."""
        import asyncio

        import pilotgw
        from pilotgw.overlay.address import Addr
        from pilotgw.services import filetransfer

        target = Addr(0, self.agent(receiver).node_id)

        async def run() -> Any:
            client = await pilotgw.connect(str(self.agent(sender).socket))
            try:
                async def dial(addr: Addr, port: int) -> Any:
                    return await client.dial(addr.node, port)

                return (await filetransfer.send_file(dial, target, path, progress=progress))[0]
            finally:
                await client.close()

        return asyncio.run(run())

    def received(self, name: str) -> list[Path]:
        """Files agent ``name`` has received so far (complete ones only)."""
        folder = self.agent(name).home / ".pilot" / "received"
        return sorted(p for p in folder.iterdir() if p.is_file()) if folder.is_dir() else []

    # -- paths --------------------------------------------------------------------------

    def peer_entry(self, name: str, other: str) -> dict[str, Any] | None:
        """``other``'s entry in ``name``'s Info peer list (None before they talked)."""
        node = self.agent(other).node_id
        for p in self.agent(name).info().get("peer_list") or []:
            if int(p.get("node_id", 0)) == node:
                return p
        return None

    def path(self, a: str, b: str) -> str | None:
        """How ``a`` reaches ``b`` now (see :data:`PATHS`); None if ``a`` has no keyed tunnel to it."""
        entry = self.peer_entry(a, b)
        if entry is None or not entry.get("authenticated"):
            return None
        return classify(entry, self.beacon)

    def describe(self) -> dict[str, Any]:
        """Every agent with its node id, address, socket and the path to each peer."""
        return describe(self.record)


def describe(record: StackRecord) -> dict[str, Any]:
    """``record`` plus, per agent, its live Info: each keyed peer with its path.

    An agent whose daemon does not answer gets an ``error`` instead.
    """
    out = record.to_json()
    by_node = {a.node_id: a.name for a in record.agents.values()}
    for name, agent in record.agents.items():
        try:
            peers = agent.info(timeout=2.0).get("peer_list") or []
        except Exception as exc:  # a stopped or wedged daemon is reported, not fatal
            out["agents"][name]["error"] = str(exc) or type(exc).__name__
            continue
        rows = []
        for p in peers:
            if not p.get("authenticated"):
                continue
            rows.append({"node_id": p.get("node_id"), "agent": by_node.get(int(p.get("node_id", 0)), ""),
                         "endpoint": p.get("endpoint", ""), "path": classify(p, record.beacon)})
        out["agents"][name]["peers"] = rows
    return out
