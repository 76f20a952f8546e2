"""Shared integration fixtures: a real ``pilot-rendezvous`` process.

``rendezvous`` starts one on 127.0.0.1 with ephemeral TCP/UDP/HTTP ports and
a store in the test's temp dir, waits until its registry port answers, and
yields a :class:`RendezvousProcess` (``.registry``, ``.beacon``, ``.http``
as ``(host, port)``, ``.store``, ``.fingerprint`` with ``-tls``). The
process runs in its own process group, killed on teardown; its log is
printed on teardown so pytest shows it for failing tests.

``start_rendezvous`` (a fixture returning a factory) starts more, with extra
flags or a given store, e.g. to restart over the same state.

:class:`RegistryClient` is a minimal blocking registry connection for tests:
``call(msg) -> reply`` using :mod:`pilotgw.overlay.registry` framing.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import pytest

from pilotgw.overlay.registry import decode_body, encode_frame

Address = tuple[str, int]
_LISTEN = re.compile(r"(registry|beacon|http) listening on (\S+):(\d+)")
_PIN = re.compile(r"fingerprint \(sha256\): ([0-9a-f]{64})")


def _command() -> list[str]:
    exe = shutil.which("pilot-rendezvous", path=os.path.dirname(sys.executable))
    return [exe] if exe else [sys.executable, "-m", "pilotgw.rendezvous"]


@dataclass
class RendezvousProcess:
    proc: subprocess.Popen[bytes]
    log_path: Path
    store: Optional[Path]
    registry: Address = ("127.0.0.1", 0)
    beacon: Address = ("127.0.0.1", 0)
    http: Optional[Address] = None
    fingerprint: Optional[str] = None
    args: list[str] = field(default_factory=list)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Signal the whole process group and reap it."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


def launch(tmp_dir: Path, *extra: str, store: Optional[Path] = None, wait: bool = True,
           timeout: float = 15.0) -> RendezvousProcess:
    """Start pilot-rendezvous on loopback with ephemeral ports. With
    ``wait`` it returns once the registry port accepts connections, and
    raises (with the log) if the process exits or stalls first."""
    log_path = tmp_dir / f"rendezvous-{time.monotonic_ns()}.log"
    args = ["-registry-addr", "127.0.0.1:0", "-beacon-addr", "127.0.0.1:0", "-http", "127.0.0.1:0"]
    if store is not None:
        args += ["-store", str(store)]
    args += list(extra)
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(_command() + args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, cwd=tmp_dir)
    rv = RendezvousProcess(proc, log_path, store, args=args)
    if not wait:
        return rv
    deadline = time.monotonic() + timeout
    while True:
        text = rv.log()
        if "pilot-rendezvous ready" in text:
            break
        if proc.poll() is not None or time.monotonic() > deadline:
            rv.kill()
            raise RuntimeError(f"pilot-rendezvous did not start (exit {proc.returncode}):\n{rv.log()}")
        time.sleep(0.02)
    for kind, host, port in _LISTEN.findall(text):
        setattr(rv, kind, (host, int(port)))
    pin = _PIN.search(text)
    rv.fingerprint = pin.group(1) if pin else None
    with socket.create_connection(rv.registry, timeout=5):
        pass
    return rv


@pytest.fixture
def start_rendezvous(tmp_path: Path) -> Iterator[Callable[..., RendezvousProcess]]:
    started: list[RendezvousProcess] = []

    def factory(*extra: str, store: Optional[Path] = None, wait: bool = True) -> RendezvousProcess:
        rv = launch(tmp_path, *extra, store=store if store is not None else tmp_path / "store" / "registry.json",
                    wait=wait)
        started.append(rv)
        return rv

    yield factory
    for rv in started:
        rv.kill()
        print(f"---- pilot-rendezvous {' '.join(rv.args)} (exit {rv.proc.returncode}) ----\n{rv.log()}")


@pytest.fixture
def rendezvous(start_rendezvous: Callable[..., RendezvousProcess]) -> RendezvousProcess:
    return start_rendezvous()


class RegistryClient:
    """Blocking registry connection; ``source`` picks the local IP (any of 127/8)."""

    def __init__(self, addr: Address, *, source: str = "127.0.0.1", timeout: float = 5.0,
                 tls: Optional[ssl.SSLContext] = None) -> None:
        sock = socket.create_connection(addr, timeout=timeout, source_address=(source, 0))
        self.sock: socket.socket = tls.wrap_socket(sock) if tls is not None else sock

    def send(self, msg: dict[str, Any]) -> None:
        self.sock.sendall(encode_frame(msg))

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _read(self, n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("registry closed the connection")
            buf += chunk
        return buf

    def recv(self) -> dict[str, Any]:
        (length,) = struct.unpack(">I", self._read(4))
        return decode_body(self._read(length))

    def call(self, msg: dict[str, Any]) -> dict[str, Any]:
        self.send(msg)
        return self.recv()

    def closed_by_peer(self, timeout: float = 5.0) -> bool:
        """True if the server closes (or resets) the connection within ``timeout``."""
        self.sock.settimeout(timeout)
        try:
            while self.sock.recv(65536):
                pass
            return True
        except ConnectionResetError:
            return True
        except (socket.timeout, TimeoutError):
            return False

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> "RegistryClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ---------------------------------------------------------------------------
# pilot-daemon processes (tests/integration/test_daemon_*.py)


def _daemon_command() -> list[str]:
    exe = shutil.which("pilot-daemon", path=os.path.dirname(sys.executable))
    return [exe] if exe else [sys.executable, "-m", "pilotgw.daemon.cli"]


@dataclass
class DaemonProcess:
    """One running ``pilot-daemon`` with its own socket, identity and log."""

    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path
    socket: Path
    identity: Path
    args: list[str]
    node_id: int = 0
    tunnel_port: int = 0

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                pass
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> int:
        """SIGTERM and wait: the graceful path."""
        self.kill(signal.SIGTERM)
        return self.proc.returncode

    def info(self, timeout: float = 5.0) -> dict[str, Any]:
        from pilotgw.client import SyncClient

        with SyncClient(str(self.socket), connect_timeout=timeout) as client:
            return client.info()


_TUNNEL = re.compile(r'daemon started"? node_id=(\d+) .*? tunnel=\S+:(\d+)'
                     r'|"msg":"daemon started","node_id":(\d+),.*?"tunnel":"[^"]*:(\d+)"')


def launch_daemon(tmp_dir: Path, rv: RendezvousProcess, name: str, *extra: str, public: bool = True,
                  listen: str = "127.0.0.1:0", timeout: float = 20.0) -> DaemonProcess:
    """Start a daemon against ``rv`` and wait until its IPC answers Info."""
    sock = tmp_dir / f"{name}.sock"
    ident = tmp_dir / f"{name}.key"
    log_path = tmp_dir / f"daemon-{name}-{time.monotonic_ns()}.log"
    args = ["-registry", f"{rv.registry[0]}:{rv.registry[1]}", "-beacon", f"{rv.beacon[0]}:{rv.beacon[1]}",
            "-listen", listen, "-socket", str(sock), "-identity", str(ident), "-log-level", "debug"]
    if public:
        args.append("-public")
    args += list(extra)
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(_daemon_command() + args, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True, cwd=tmp_dir)
    d = DaemonProcess(name, proc, log_path, sock, ident, args)
    deadline = time.monotonic() + timeout
    while True:
        m = _TUNNEL.search(d.log())
        if m and sock.exists():
            groups = [g for g in m.groups() if g is not None]
            d.node_id, d.tunnel_port = int(groups[0]), int(groups[1])
            try:
                d.info(timeout=2.0)
                return d
            except Exception:
                pass
        if proc.poll() is not None or time.monotonic() > deadline:
            d.kill()
            raise RuntimeError(f"pilot-daemon {name} did not start (exit {proc.returncode}):\n{d.log()}")
        time.sleep(0.05)


@pytest.fixture
def start_daemon(tmp_path: Path) -> Iterator[Callable[..., DaemonProcess]]:
    """Factory: ``start_daemon(rv, "a", *flags)``; every daemon is killed on teardown."""
    started: list[DaemonProcess] = []

    def factory(rv: RendezvousProcess, name: str, *extra: str, **kw: Any) -> DaemonProcess:
        d = launch_daemon(tmp_path, rv, name, *extra, **kw)
        started.append(d)
        return d

    yield factory
    for d in started:
        d.kill()
        print(f"---- pilot-daemon {d.name} (exit {d.proc.returncode}) ----\n{d.log()[-20000:]}")


# ---------------------------------------------------------------------------
# pilotctl against real daemons (tests/integration/test_pilotctl_*.py)

from contextlib import contextmanager  # noqa: E402 (appended section)


def pilotctl_command() -> list[str]:
    exe = shutil.which("pilotctl", path=os.path.dirname(sys.executable))
    return [exe] if exe else [sys.executable, "-m", "pilotgw.cli.main"]


@dataclass
class CliResult:
    status: int
    out: str
    err: str

    def error(self) -> dict[str, Any]:
        """The ``--json`` error object (stderr), checking the contract's framing."""
        import json

        assert self.status == 1 and self.out == "", self
        return json.loads(self.err)  # type: ignore[no-any-return]


@dataclass
class PilotNode:
    """A daemon with its own HOME (so its own ``~/.pilot``), socket and
    identity, and the environment its user runs ``pilotctl`` in."""

    daemon: DaemonProcess
    home: Path
    registry: str

    @property
    def node_id(self) -> int:
        return self.daemon.node_id

    @property
    def address(self) -> str:
        return f"0:0000.{self.node_id >> 16:04X}.{self.node_id & 0xFFFF:04X}"

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PILOT_")}
        env.update(HOME=str(self.home), PILOT_SOCKET=str(self.daemon.socket), PILOT_REGISTRY=self.registry,
                   PATH=f"{os.path.dirname(sys.executable)}:{os.environ.get('PATH', '/usr/bin:/bin')}")
        env.update(extra)
        return env

    def cli(self, *args: str, stdin: Optional[str] = None, timeout: float = 60.0, **env: str) -> CliResult:
        """Run the real ``pilotctl`` binary as this node's user."""
        r = subprocess.run(pilotctl_command() + list(args), env=self.env(**env), input=stdin,
                           stdin=None if stdin is not None else subprocess.DEVNULL,
                           capture_output=True, text=True, timeout=timeout, cwd=self.home)
        return CliResult(r.returncode, r.stdout, r.stderr)

    def ok(self, *args: str, **kw: Any) -> Any:
        """``pilotctl --json <args>``: assert success, return ``data``."""
        import json

        r = self.cli("--json", *args, **kw)
        assert r.status == 0 and r.err == "", r
        doc = json.loads(r.out)
        assert list(doc) == ["data", "status"] and doc["status"] == "ok", doc
        return doc["data"]


def launch_node(tmp_dir: Path, rv: RendezvousProcess, name: str, *extra: str, **kw: Any) -> PilotNode:
    """:func:`launch_daemon` with ``HOME`` set to a fresh folder for the daemon."""
    home = tmp_dir / f"home-{name}"
    home.mkdir()
    saved = os.environ.get("HOME")
    os.environ["HOME"] = str(home)  # inherited by the daemon; pytest runs tests in one thread
    try:
        d = launch_daemon(tmp_dir, rv, name, *extra, **kw)
    finally:
        if saved is None:
            del os.environ["HOME"]
        else:
            os.environ["HOME"] = saved
    return PilotNode(d, home, f"{rv.registry[0]}:{rv.registry[1]}")


@contextmanager
def pilot_network(tmp_dir: Path, *names: str, public: bool = True) -> Iterator[tuple[RendezvousProcess, list[PilotNode]]]:
    """A rendezvous and one daemon per name (hostname = name); all killed at exit."""
    rv = launch(tmp_dir)
    nodes: list[PilotNode] = []
    try:
        for name in names:
            nodes.append(launch_node(tmp_dir, rv, name, "-hostname", name, public=public))
        yield rv, nodes
    finally:
        for node in nodes:
            node.daemon.kill()
            print(f"---- pilot-daemon {node.daemon.name} (exit {node.daemon.proc.returncode}) ----\n"
                  f"{node.daemon.log()[-20000:]}")
        rv.kill()
