"""Build and tear down a lab from a topology: the object tests and the CLI hold.

::

    with Lab(builtin("basic")) as lab:
        rv = lab.host("rv")
        server = rv.popen(["python", "-m", "pilotgw.lab.probe", "serve"])
        sock = lab.host("pr1").socket()         # a UDP socket behind the NAT
        lab.set_link("pr1", Link(loss=2.0))      # impair it while running

Teardown is guaranteed three ways: the context manager, an ``atexit`` hook
(for an owner that exits without leaving the ``with``), and the state file
that ``pilot-lab down`` reads after a SIGKILL (:mod:`pilotgw.lab.state`).
A failed build tears down what it made before re-raising.

Build order: the state file, every namespace, then per node the veth to its
upstream, addresses, routes and the link's rate/MTU, then forwarding
sysctls, NAT rulesets and loss tables. The upstream end of each link holds
the gateway address as a /32 with proxy ARP (``proxy_delay`` 0, so hosts on
one /24 reach each other at once) and a /32 route to the node.
"""

from __future__ import annotations

import atexit
import os
from ipaddress import IPv4Interface
from pathlib import Path
from types import TracebackType

from pilotgw.lab import impair, nat, netns, state
from pilotgw.lab.errors import LabError
from pilotgw.lab.netns import Netlink
from pilotgw.lab.node import Node
from pilotgw.lab.topology import Layout, Link, NatKind, Topology, nft_table, plan


class Lab:
    """A topology instantiated as network namespaces under a fresh lab id.

    ``detached`` labs (``pilot-lab up``) have no owner and no ``atexit``
    hook: they stay up until ``pilot-lab down``.
    """

    def __init__(self, topology: Topology, *, state_dir: Path = state.DEFAULT_STATE_DIR, detached: bool = False) -> None:
        self.topology = topology
        self.state_dir = Path(state_dir)
        self.detached = detached
        self.id = state.new_lab_id(self.state_dir)
        self.layout: Layout = plan(topology, self.id)
        self.table = nft_table(self.id)
        self.nodes: dict[str, Node] = {p.name: Node(p) for p in self.layout.nodes}
        self._links: dict[str, Link] = {p.name: p.link for p in self.layout.nodes}
        self._nat: dict[str, NatKind] = {p.name: p.nat for p in self.layout.nodes if p.nat is not None}
        self._record: state.LabRecord | None = None

    def __repr__(self) -> str:
        return f"Lab({self.id}, {self.topology.name!r}, up={self.is_up})"

    @property
    def is_up(self) -> bool:
        return self._record is not None

    def __enter__(self) -> Lab:
        return self.up()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.down()

    def host(self, name: str) -> Node:
        """The node ``name`` (host or router); :class:`LabError` ``"unknown-node"`` otherwise."""
        try:
            return self.nodes[name]
        except KeyError:
            raise LabError(f"lab {self.id} has no node {name!r}", "unknown-node") from None

    @property
    def rendezvous(self) -> Node | None:
        """The topology's rendezvous host, if it names one."""
        return self.nodes[self.topology.rendezvous] if self.topology.rendezvous else None

    def up(self) -> Lab:
        """Build the lab; on any failure remove what was built and re-raise."""
        if self.is_up:
            return self
        netns.require_root()
        netns.require_tools("ip", "nft")
        if state.state_path(self.state_dir, self.id).exists():
            raise LabError(f"lab id {self.id} is already recorded in {self.state_dir}", "busy")
        for ns in self.layout.namespaces:
            if netns.exists(ns):
                raise LabError(f"namespace {ns} already exists", "busy")
        owner = None if self.detached else os.getpid()
        self._record = state.LabRecord(
            lab_id=self.id,
            topology=self.topology,
            namespaces=self.layout.namespaces,
            owner_pid=owner,
            owner_start=state.process_start_time(owner) if owner is not None else None,
        )
        state.save(self._record, self.state_dir)
        if not self.detached:
            atexit.register(self._down_at_exit)
        try:
            self._build()
        except BaseException:
            self.down()
            raise
        return self

    def down(self) -> None:
        """Kill everything running in the lab and remove it. Safe to call twice."""
        if self._record is None:
            return
        atexit.unregister(self._down_at_exit)
        state.teardown(self._record, self.state_dir)
        self._record = None
        for node in self.nodes.values():
            node.reap()

    def _down_at_exit(self) -> None:
        # A forked child inherits atexit hooks; only the owner may tear down.
        if self._record is not None and self._record.owner_pid == os.getpid():
            self.down()

    def _build(self) -> None:
        layout = self.layout
        for ns in layout.namespaces:
            netns.create(ns)
        sockets: dict[str, Netlink] = {}
        try:
            for ns in layout.namespaces:
                sockets[ns] = Netlink(ns)
            for node in layout.nodes:
                up_nl, nl = sockets[node.upstream_netns], sockets[node.netns]
                up_nl.add_veth(node.upstream_iface, node.iface, node.netns)
                up_nl.configure(node.upstream_iface, mtu=node.link.mtu, address=IPv4Interface(f"{node.gateway}/32"))
                up_nl.add_host_route(node.address.ip, node.upstream_iface)
                netns.sysctl(node.upstream_netns, f"net.ipv4.conf.{node.upstream_iface}.proxy_arp", 1)
                netns.sysctl(node.upstream_netns, f"net.ipv4.neigh.{node.upstream_iface}.proxy_delay", 0)
                nl.configure(node.iface, mtu=node.link.mtu, address=node.address)
                nl.add_default_route(node.gateway)
                if node.link.rate is not None:
                    impair.apply_link(nl, node.iface, up_nl, node.upstream_iface, node.link)
        finally:
            for sock in sockets.values():
                sock.close()
        netns.sysctl(layout.inet_netns, "net.ipv4.ip_forward", 1)
        for node in layout.nodes:
            netns.sysctl(node.netns, "net.ipv4.ip_forward", 1 if node.nat is not None else 0)
            if node.nat is not None:
                nat.apply(node.netns, self.table, node.nat)
        for ns, losses in impair.losses_by_namespace(layout, self._links).items():
            if losses:
                impair.apply_loss(ns, self.table, losses)

    def _require_up(self) -> None:
        if not self.is_up:
            raise LabError(f"lab {self.id} is not up", "unknown-lab")

    def link(self, name: str) -> Link:
        """The current impairments of node ``name``'s uplink."""
        self.host(name)
        return self._links[name]

    def set_link(self, name: str, link: Link) -> None:
        """Change loss, rate and MTU of node ``name``'s uplink while the lab runs."""
        self._require_up()
        node = self.host(name).plan
        with Netlink(node.netns) as nl, Netlink(node.upstream_netns) as up_nl:
            impair.apply_link(nl, node.iface, up_nl, node.upstream_iface, link)
        self._links[name] = link
        losses = impair.losses_by_namespace(self.layout, self._links)
        for ns in (node.netns, node.upstream_netns):
            impair.apply_loss(ns, self.table, losses[ns])

    def nat_kind(self, router: str) -> NatKind:
        """The NAT kind router ``router`` behaves as now."""
        if router not in self._nat:
            raise LabError(f"{router!r} is not a NAT router of lab {self.id}", "unknown-node")
        return self._nat[router]

    def set_nat(self, router: str, kind: NatKind, *, flush: bool = True) -> None:
        """Make ``router`` behave as ``kind`` from now on (atomic ruleset swap).

        With ``flush`` (the default) its existing bindings are dropped too, as
        if the NAT rebooted with the new configuration; without it, flows
        already open keep their old mappings.
        """
        self._require_up()
        self.nat_kind(router)
        kind = NatKind(kind)
        ns = self.host(router).netns
        nat.apply(ns, self.table, kind)
        self._nat[router] = kind
        if flush:
            nat.flush(ns, self.table, kind)

    def flush_nat(self, router: str) -> None:
        """Drop every binding of ``router`` (conntrack flows, full-cone map): a NAT mapping change."""
        self._require_up()
        nat.flush(self.host(router).netns, self.table, self.nat_kind(router))
