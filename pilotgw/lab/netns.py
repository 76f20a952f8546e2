"""Namespaces, veth links, addresses, routes and sysctls, through pyroute2.

Every piece of kernel configuration goes over netlink with pyroute2 (never
``ip link``/``ip addr`` subprocesses). Three things deliberately do not:

* processes are started with ``ip netns exec NS argv`` (:func:`command`):
  besides ``setns`` it gives the child a ``/sys`` of its namespace and the
  ``/etc/netns/NS`` overlay, and forks no Python, so it is safe from a
  threaded parent (``preexec_fn`` is not);
* nftables rulesets are fed to ``nft -f -`` inside the namespace
  (:func:`nft`): the ``nftables`` Python binding is a Debian package for the
  system interpreter, not something the project's venv can import;
* sysctls and sockets are reached by moving *the calling thread* into the
  namespace for a moment (:func:`entered`): ``/proc/sys/net`` and new sockets
  belong to the namespace of the thread that opens them.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from ipaddress import IPv4Address, IPv4Interface
from pathlib import Path
from typing import Any, TypeVar

from pyroute2 import IPRoute
from pyroute2 import netns as _pr_netns
from pyroute2.netlink.exceptions import NetlinkError

from pilotgw.lab.errors import LabError

NETNS_DIR = Path(_pr_netns.NETNS_RUN_DIR)
RT_SCOPE_LINK = 253
TC_H_ROOT = 0xFFFFFFFF
T = TypeVar("T")
INSTALL_HINT = "apt-get install -y iproute2 nftables conntrack"


def require_root() -> None:
    """Raise :class:`LabError` ``"not-root"`` unless running as root."""
    if os.geteuid() != 0:
        raise LabError("building a lab needs root (network namespaces, nftables, tc)", "not-root")


def require_tools(*tools: str) -> None:
    """Raise :class:`LabError` ``"missing-tool"`` naming any tool not on PATH."""
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        raise LabError(f"missing {', '.join(missing)}: install with `{INSTALL_HINT}`", "missing-tool")


def unavailable_reason() -> str | None:
    """Why labs cannot be built here (for test skips), or None if they can.

    Checks root, the ``ip`` and ``nft`` tools, and that the kernel really
    creates a namespace and accepts an nft table in it.
    """
    if os.geteuid() != 0:
        return "network-namespace labs need root"
    missing = [t for t in ("ip", "nft") if shutil.which(t) is None]
    if missing:
        return f"missing {', '.join(missing)} (install: {INSTALL_HINT})"
    name = f"plabcheck-{os.getpid()}"
    try:
        _pr_netns.create(name)
    except OSError as exc:
        return f"cannot create a network namespace: {exc}"
    try:
        nft(name, "add table ip plabcheck\n")
    except LabError as exc:
        return f"nftables does not work in a namespace: {exc}"
    finally:
        _pr_netns.remove(name)
    return None


def command(ns: str, argv: list[str]) -> list[str]:
    """``argv`` wrapped to run inside namespace ``ns``."""
    return ["ip", "netns", "exec", ns, *argv]


def create(name: str) -> None:
    """Create the named namespace (``/run/netns/<name>``) and bring its loopback up."""
    try:
        _pr_netns.create(name)
    except OSError as exc:
        raise LabError(f"cannot create network namespace {name}: {exc}", "no-netns") from exc
    with Netlink(name) as nl:
        nl.up("lo")


def exists(name: str) -> bool:
    """True when ``/run/netns/<name>`` exists."""
    return (NETNS_DIR / name).exists()


def list_all() -> list[str]:
    """Every named namespace on the machine."""
    try:
        return sorted(p.name for p in NETNS_DIR.iterdir())
    except FileNotFoundError:
        return []


def pids(names: Iterable[str]) -> list[int]:
    """Live processes in any of the namespaces ``names`` (zombies are in none)."""
    wanted = set()
    for name in names:
        try:
            st = os.stat(NETNS_DIR / name)
        except FileNotFoundError:
            continue
        wanted.add((st.st_dev, st.st_ino))
    if not wanted:
        return []
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            ps = os.stat(f"/proc/{entry.name}/ns/net")
        except OSError:
            continue
        if (ps.st_dev, ps.st_ino) in wanted:
            found.append(int(entry.name))
    return found


def kill_processes(names: Iterable[str], grace: float = 2.0) -> list[int]:
    """SIGTERM every process in the namespaces ``names``, SIGKILL what outlives ``grace``.

    A namespace with a process left in it outlives ``remove`` (the process
    pins it, with its links), so teardown must empty it first. All
    namespaces share one grace period, so a lab of many slow-to-exit
    daemons still goes down in ``grace`` seconds. Returns the pids signalled.
    """
    names = list(names)
    victims = pids(names)
    for pid in victims:
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and pids(names):
        time.sleep(0.02)
    for pid in pids(names):
        _signal(pid, signal.SIGKILL)
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline and pids(names):
        time.sleep(0.02)
    return victims


def _signal(pid: int, sig: signal.Signals) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def remove(name: str) -> bool:
    """Empty and delete namespace ``name``; False if it did not exist."""
    if not exists(name):
        return False
    kill_processes([name])
    try:
        _pr_netns.remove(name)
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise LabError(f"cannot remove network namespace {name}: {exc}", "no-netns") from exc
    return True


@contextmanager
def entered(name: str) -> Iterator[None]:
    """Run the body with the calling thread inside namespace ``name``.

    Only this thread moves; it is moved back even if the body raises.
    """
    try:
        target = os.open(NETNS_DIR / name, os.O_RDONLY)
    except FileNotFoundError:
        raise LabError(f"network namespace {name} does not exist", "no-netns") from None
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        _pr_netns.setns(target)
        try:
            yield
        finally:
            _pr_netns.setns(home)
    finally:
        os.close(target)
        os.close(home)


def sysctl(ns: str, key: str, value: str | int) -> None:
    """Write a per-namespace sysctl such as ``net.ipv4.ip_forward``."""
    path = "/proc/sys/" + key.replace(".", "/")
    with entered(ns):
        try:
            with open(path, "w") as f:
                f.write(f"{value}\n")
        except OSError as exc:
            raise LabError(f"sysctl {key}={value} in {ns}: {exc}", "netlink") from exc


def read_sysctl(ns: str, key: str) -> str:
    """Read a per-namespace sysctl."""
    with entered(ns):
        with open("/proc/sys/" + key.replace(".", "/")) as f:
            return f.read().strip()


def open_socket(ns: str, family: int = socket.AF_INET, type: int = socket.SOCK_DGRAM, proto: int = 0) -> socket.socket:
    """A socket that lives in namespace ``ns`` (it stays there whoever uses it)."""
    with entered(ns):
        return socket.socket(family, type, proto)


def nft(ns: str, ruleset: str) -> None:
    """Load an nft script (``nft -f -``) atomically inside namespace ``ns``."""
    try:
        proc = subprocess.run(command(ns, ["nft", "-f", "-"]), input=ruleset, capture_output=True, text=True, timeout=30)
    except FileNotFoundError:
        raise LabError(f"`ip` is not installed: {INSTALL_HINT}", "missing-tool") from None
    if proc.returncode != 0:
        raise LabError(f"nft rejected the ruleset in {ns}: {proc.stderr.strip()}", "nft")


class Netlink:
    """One rtnetlink socket into a namespace, with the requests a lab makes.

    Every netlink failure becomes :class:`LabError` ``"netlink"`` naming the
    request, so a half-built lab reports what it was doing.
    """

    def __init__(self, ns: str) -> None:
        self.ns = ns
        try:
            self.ipr = IPRoute(netns=ns, flags=0)
        except (OSError, NetlinkError) as exc:
            raise LabError(f"cannot open netlink in {ns}: {exc}", "netlink") from exc

    def __enter__(self) -> Netlink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.ipr.close()

    def _do(self, what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        try:
            return fn(*args, **kwargs)
        except (OSError, NetlinkError) as exc:
            raise LabError(f"{what} in {self.ns}: {exc}", "netlink") from exc

    def index(self, ifname: str) -> int:
        """Interface index of ``ifname``."""
        found = self._do(f"lookup {ifname}", self.ipr.link_lookup, ifname=ifname)
        if not found:
            raise LabError(f"no interface {ifname} in {self.ns}", "netlink")
        return int(found[0])

    def up(self, ifname: str) -> None:
        self._do(f"set {ifname} up", self.ipr.link, "set", index=self.index(ifname), state="up")

    def add_veth(self, ifname: str, peer: str, peer_ns: str) -> None:
        """A veth pair: ``ifname`` here, ``peer`` created directly inside ``peer_ns``.

        Neither end ever exists in the root namespace, so two labs cannot
        collide on interface names and a crash leaves nothing there.
        """
        self._do(
            f"add veth {ifname}<->{peer_ns}/{peer}",
            self.ipr.link,
            "add",
            ifname=ifname,
            kind="veth",
            peer={"ifname": peer, "net_ns_fd": str(NETNS_DIR / peer_ns)},
        )

    def configure(self, ifname: str, *, mtu: int, address: IPv4Interface | None = None) -> int:
        """Set MTU and address of ``ifname`` and bring it up; returns its index."""
        idx = self.index(ifname)
        self._do(f"set {ifname} mtu {mtu}", self.ipr.link, "set", index=idx, mtu=mtu)
        if address is not None:
            self._do(
                f"add {address} to {ifname}",
                self.ipr.addr,
                "add",
                index=idx,
                address=str(address.ip),
                prefixlen=address.network.prefixlen,
            )
        self._do(f"set {ifname} up", self.ipr.link, "set", index=idx, state="up")
        return idx

    def set_mtu(self, ifname: str, mtu: int) -> None:
        self._do(f"set {ifname} mtu {mtu}", self.ipr.link, "set", index=self.index(ifname), mtu=mtu)

    def mtu(self, ifname: str) -> int:
        link = self._do(f"get {ifname}", self.ipr.get_links, self.index(ifname))[0]
        return int(link.get("mtu"))

    def add_host_route(self, dst: IPv4Address, ifname: str) -> None:
        """``dst/32`` reachable directly on ``ifname`` (scope link)."""
        self._do(
            f"route {dst}/32 dev {ifname}",
            self.ipr.route,
            "add",
            dst=f"{dst}/32",
            oif=self.index(ifname),
            scope=RT_SCOPE_LINK,
        )

    def add_default_route(self, gateway: IPv4Address) -> None:
        self._do(f"default route via {gateway}", self.ipr.route, "add", dst="0.0.0.0/0", gateway=str(gateway))

    def tc(self, what: str, *args: Any, **kwargs: Any) -> Any:
        """A pyroute2 ``tc`` request, with netlink errors mapped to :class:`LabError`."""
        return self._do(what, self.ipr.tc, *args, **kwargs)

    def qdisc_kind(self, ifname: str) -> str | None:
        """Kind of the root qdisc of ``ifname`` (``"tbf"``, ``"noqueue"``...)."""
        idx = self.index(ifname)
        for q in self._do(f"list qdiscs of {ifname}", self.ipr.get_qdiscs, index=idx):
            if q.get("parent") == TC_H_ROOT:
                return str(q.get_attr("TCA_KIND"))
        return None
