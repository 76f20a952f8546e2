"""A handle on one lab node: its addresses, and running things in its namespace.

Daemons, rendezvous servers and gateways of the integration tests run
*inside* lab nodes: :meth:`Node.popen` starts a long-running process there,
:meth:`Node.run` a short command, and :meth:`Node.socket` hands the caller a
socket that lives in the node's namespace, for probes driven from the test
process itself.
"""

from __future__ import annotations

import socket
import subprocess
from ipaddress import IPv4Address, IPv4Interface
from typing import Any

from pilotgw.lab import netns
from pilotgw.lab.topology import NatKind, NodePlan


class Node:
    """One host or router of a running lab (see :class:`~pilotgw.lab.topology.NodePlan`)."""

    def __init__(self, plan: NodePlan) -> None:
        self.plan = plan
        self._procs: list[subprocess.Popen[Any]] = []

    def __repr__(self) -> str:
        return f"Node({self.name!r}, {self.role}, {self.address}, netns={self.netns!r})"

    @property
    def name(self) -> str:
        return self.plan.name

    @property
    def role(self) -> str:
        """``"public"``, ``"nat"`` (a router) or ``"private"`` (behind a router)."""
        return self.plan.role

    @property
    def netns(self) -> str:
        """The namespace name, for ``ip netns exec`` or ``ip -n``."""
        return self.plan.netns

    @property
    def address(self) -> IPv4Address:
        """The node's address on its uplink: public for public hosts and routers, private otherwise."""
        return self.plan.address.ip

    @property
    def interface(self) -> str:
        """The uplink interface (``eth0``, ``wan`` on routers)."""
        return self.plan.iface

    @property
    def gateway(self) -> IPv4Address:
        return self.plan.gateway

    @property
    def nat(self) -> NatKind | None:
        """The NAT kind the router was built with (None for hosts)."""
        return self.plan.nat

    @property
    def lan_address(self) -> IPv4Address | None:
        """A router's address on its LAN (the gateway of the hosts behind it)."""
        return self.plan.lan_gateway.ip if self.plan.lan_gateway is not None else None

    @property
    def addresses(self) -> list[IPv4Interface]:
        """Every address the node holds, uplink first."""
        out = [self.plan.address]
        if self.plan.lan_gateway is not None:
            out.append(self.plan.lan_gateway)
        return out

    def command(self, argv: list[str]) -> list[str]:
        """``argv`` wrapped to run inside this node (``ip netns exec``)."""
        return netns.command(self.netns, list(argv))

    def popen(self, argv: list[str], **kwargs: Any) -> subprocess.Popen[Any]:
        """Start a long-running process in the node; ``kwargs`` go to :class:`subprocess.Popen`.

        The lab's teardown kills every process left in its namespaces and
        reaps those started here.
        """
        proc = subprocess.Popen(self.command(argv), **kwargs)
        self._procs.append(proc)
        return proc

    def run(self, argv: list[str], *, check: bool = True, timeout: float = 60, **kwargs: Any) -> subprocess.CompletedProcess[Any]:
        """Run a command in the node to completion.

        Output is captured as text unless told otherwise; with ``check`` a
        non-zero exit raises :class:`subprocess.CalledProcessError`.
        """
        kwargs.setdefault("capture_output", True)
        kwargs.setdefault("text", True)
        return subprocess.run(self.command(argv), check=check, timeout=timeout, **kwargs)

    def socket(self, family: int = socket.AF_INET, type: int = socket.SOCK_DGRAM, proto: int = 0) -> socket.socket:
        """A new socket living in the node's namespace."""
        return netns.open_socket(self.netns, family, type, proto)

    def sysctl(self, key: str, value: str | int) -> None:
        """Set a per-namespace sysctl (``net.ipv4...``, ``net.netfilter...``) in the node."""
        netns.sysctl(self.netns, key, value)

    def reap(self, timeout: float = 5.0) -> None:
        """Wait for the processes started with :meth:`popen` (after teardown killed them)."""
        for proc in self._procs:
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._procs.clear()
