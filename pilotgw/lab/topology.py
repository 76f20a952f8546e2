"""Lab topologies as data: what to build, and where every address goes.

A topology is a handful of frozen dataclasses -- public :class:`Host`\\ s on a
simulated internet, :class:`NatRouter`\\ s of a :class:`NatKind` with hosts on
a private LAN behind them, and a :class:`Link` (loss, rate, MTU) on every
node's uplink. It says nothing about namespaces or Docker, so the netns
builder (:mod:`pilotgw.lab.lab`) and a Compose backend can share one
description. :func:`plan` turns a topology and a lab id into a
:class:`Layout`: the namespace, interface names and addresses of every node.
Everything here is pure, so the address plan is testable without root.

The shape of every layout::

    public host --eth0==v-<host>--+
    public host --eth0==v-<host>--+-- "inet" namespace (a router)
    NAT router  --wan ==v-<nat> --+
        '-- v-<host>==eth0-- private host   (one veth per LAN host)

Every link is a veth pair: the node's end (``eth0``, or ``wan`` on a router)
holds the node's address; the upstream end is named ``v-<node>`` and holds
the upstream's gateway address as a /32 with a host route to the node and
proxy ARP. So every packet between two nodes is *routed* by the upstream (TTL
decrements, ICMP "fragmentation needed" comes back when a link's MTU is
smaller), and each link can be impaired on its own.

Address plan (documentation ranges, never routed outside the lab's
namespaces): public hosts in 198.51.100.0/24 (gateway .1, hosts from .10),
NAT routers' WAN side in 203.0.113.0/24 (gateway .1, routers from .10), the
n-th router's LAN in 192.168.<n+1>.0/24 unless it names its own (gateway .1,
hosts from .10). Two routers may share a LAN range on purpose: real NATs
often do.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from enum import Enum
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from typing import Any, Callable, Literal

from pilotgw.lab.errors import LabError

PUBLIC_NET = IPv4Network("198.51.100.0/24")
WAN_NET = IPv4Network("203.0.113.0/24")
FIRST_HOST = 10  # .1 is the gateway; .2-.9 stay free for hand-added hosts
MAX_NODES_PER_SEGMENT = 240

# Linux caps interface names at 15 bytes; upstream ends are "v-<node>".
NODE_NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,11}$")
LAB_ID_RE = re.compile(r"^[0-9a-f]{6}$")
RESERVED_NAMES = frozenset({"inet"})
NETNS_PREFIX = "plab-"

# Rates go to tbf as a u32 of bytes per second.
MAX_RATE_BITS = (2**32 - 1) * 8


class NatKind(str, Enum):
    """NAT behaviours of RFC 4787, as the three kinds a lab can build.

    ``FULL_CONE``: endpoint-independent mapping and filtering. ``PORT_RESTRICTED``:
    endpoint-independent mapping, address-and-port-dependent filtering (what
    Linux masquerade does). ``SYMMETRIC``: a fresh random port per destination.
    """

    FULL_CONE = "full-cone"
    PORT_RESTRICTED = "port-restricted"
    SYMMETRIC = "symmetric"


def _bad(message: str) -> LabError:
    return LabError(message, "bad-topology")


@dataclass(frozen=True)
class Link:
    """Impairments of one node's uplink, applied in both directions.

    ``loss`` is the percentage of packets dropped on each traversal (0 <= loss
    < 100, resolution 0.0001 %), ``rate`` a bit-rate cap (None: unlimited),
    ``mtu`` the MTU of both veth ends.
    """

    loss: float = 0.0
    rate: int | None = None
    mtu: int = 1500

    def __post_init__(self) -> None:
        if isinstance(self.loss, bool) or not isinstance(self.loss, (int, float)):
            raise _bad(f"link loss must be a number, got {self.loss!r}")
        if not 0.0 <= self.loss < 100.0:
            raise _bad(f"link loss must be in [0, 100) percent, got {self.loss}")
        if self.rate is not None:
            if isinstance(self.rate, bool) or not isinstance(self.rate, int):
                raise _bad(f"link rate must be an integer (bit/s), got {self.rate!r}")
            if not 8000 <= self.rate <= MAX_RATE_BITS:
                raise _bad(f"link rate must be 8000..{MAX_RATE_BITS} bit/s, got {self.rate}")
        if isinstance(self.mtu, bool) or not isinstance(self.mtu, int):
            raise _bad(f"link mtu must be an integer, got {self.mtu!r}")
        if not 576 <= self.mtu <= 65535:
            raise _bad(f"link mtu must be 576..65535, got {self.mtu}")

    @property
    def impaired(self) -> bool:
        """True when the link drops or shapes traffic (MTU alone is not an impairment)."""
        return self.loss > 0 or self.rate is not None


def _check_name(name: object) -> None:
    if not isinstance(name, str) or not NODE_NAME_RE.match(name):
        raise _bad(
            f"node name {name!r} must be 1-12 characters of a-z, 0-9 and '-', "
            "starting with a letter"
        )
    if name in RESERVED_NAMES:
        raise _bad(f"node name {name!r} is reserved")


@dataclass(frozen=True)
class Host:
    """An end host; public when listed in :attr:`Topology.hosts`, private behind a router."""

    name: str
    link: Link = field(default_factory=Link)

    def __post_init__(self) -> None:
        _check_name(self.name)
        if not isinstance(self.link, Link):
            raise _bad(f"host {self.name}: link must be a Link")


@dataclass(frozen=True)
class NatRouter:
    """A NAT router on the internet with a private LAN of :attr:`hosts` behind it.

    ``link`` impairs the router's WAN uplink; ``lan`` overrides the LAN range
    (an IPv4 network in CIDR form, at most /24 so that hosts fit).
    """

    name: str
    kind: NatKind
    hosts: tuple[Host, ...] = ()
    link: Link = field(default_factory=Link)
    lan: str | None = None

    def __post_init__(self) -> None:
        _check_name(self.name)
        try:
            object.__setattr__(self, "kind", NatKind(self.kind))
        except ValueError:
            kinds = ", ".join(k.value for k in NatKind)
            raise _bad(f"router {self.name}: NAT kind {self.kind!r} is not one of {kinds}") from None
        object.__setattr__(self, "hosts", tuple(self.hosts))
        if not all(isinstance(h, Host) for h in self.hosts):
            raise _bad(f"router {self.name}: hosts must be Host objects")
        if not isinstance(self.link, Link):
            raise _bad(f"router {self.name}: link must be a Link")
        if self.lan is not None:
            net = _parse_network(self.lan, f"router {self.name}: lan")
            if net.prefixlen > 24:
                raise _bad(f"router {self.name}: lan {net} is smaller than a /24")
            if net.overlaps(PUBLIC_NET) or net.overlaps(WAN_NET):
                raise _bad(f"router {self.name}: lan {net} overlaps the lab's public ranges")
        if len(self.hosts) > MAX_NODES_PER_SEGMENT:
            raise _bad(f"router {self.name}: at most {MAX_NODES_PER_SEGMENT} hosts")


def _parse_network(text: object, what: str) -> IPv4Network:
    if not isinstance(text, str):
        raise _bad(f"{what} must be a string like '192.168.1.0/24'")
    try:
        return IPv4Network(text, strict=True)
    except ValueError as exc:
        raise _bad(f"{what} {text!r} is not an IPv4 network: {exc}") from None


@dataclass(frozen=True)
class Topology:
    """A whole lab: public hosts, NAT routers, and which host is the rendezvous."""

    name: str
    hosts: tuple[Host, ...]
    nats: tuple[NatRouter, ...] = ()
    rendezvous: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not re.match(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$", self.name):
            raise _bad(f"topology name {self.name!r} must be 1-64 characters of A-Z a-z 0-9 . _ -")
        object.__setattr__(self, "hosts", tuple(self.hosts))
        object.__setattr__(self, "nats", tuple(self.nats))
        if not all(isinstance(h, Host) for h in self.hosts):
            raise _bad("topology hosts must be Host objects")
        if not all(isinstance(n, NatRouter) for n in self.nats):
            raise _bad("topology nats must be NatRouter objects")
        if not self.hosts and not self.nats:
            raise _bad("a topology needs at least one host or router")
        if len(self.hosts) > MAX_NODES_PER_SEGMENT or len(self.nats) > MAX_NODES_PER_SEGMENT:
            raise _bad(f"at most {MAX_NODES_PER_SEGMENT} public hosts and {MAX_NODES_PER_SEGMENT} routers")
        seen: set[str] = set()
        for name in self.node_names():
            if name in seen:
                raise _bad(f"node name {name!r} is used twice")
            seen.add(name)
        if self.rendezvous is not None and (
            not isinstance(self.rendezvous, str) or self.rendezvous not in {h.name for h in self.hosts}
        ):
            raise _bad(f"rendezvous {self.rendezvous!r} is not a public host of the topology")

    def node_names(self) -> list[str]:
        """Every node's name: public hosts, then each router followed by its hosts."""
        names = [h.name for h in self.hosts]
        for nat in self.nats:
            names.append(nat.name)
            names.extend(h.name for h in nat.hosts)
        return names

    def to_dict(self) -> dict[str, Any]:
        """The JSON/TOML form read back by :meth:`from_dict` (defaults left out)."""
        out: dict[str, Any] = {"name": self.name, "hosts": [_host_dict(h) for h in self.hosts]}
        if self.rendezvous is not None:
            out["rendezvous"] = self.rendezvous
        if self.nats:
            out["nats"] = [_nat_dict(n) for n in self.nats]
        return out

    @classmethod
    def from_dict(cls, data: object) -> Topology:
        """Build and validate a topology from untrusted JSON/TOML data.

        Raises :class:`LabError` (``"bad-topology"``) naming the offending
        field for anything else than the documented keys and types.
        """
        d = _mapping(data, "topology", {"name", "hosts", "nats", "rendezvous"}, {"name"})
        hosts = tuple(_host_from(h, f"hosts[{i}]") for i, h in enumerate(_list(d.get("hosts", []), "hosts")))
        nats = tuple(_nat_from(n, f"nats[{i}]") for i, n in enumerate(_list(d.get("nats", []), "nats")))
        return cls(name=d["name"], hosts=hosts, nats=nats, rendezvous=d.get("rendezvous"))


def _link_dict(link: Link) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if link.loss:
        out["loss"] = link.loss
    if link.rate is not None:
        out["rate"] = link.rate
    if link.mtu != 1500:
        out["mtu"] = link.mtu
    return out


def _host_dict(host: Host) -> dict[str, Any]:
    out: dict[str, Any] = {"name": host.name}
    if link := _link_dict(host.link):
        out["link"] = link
    return out


def _nat_dict(nat: NatRouter) -> dict[str, Any]:
    out: dict[str, Any] = {"name": nat.name, "kind": nat.kind.value, "hosts": [_host_dict(h) for h in nat.hosts]}
    if link := _link_dict(nat.link):
        out["link"] = link
    if nat.lan is not None:
        out["lan"] = nat.lan
    return out


def _mapping(data: object, where: str, allowed: set[str], required: set[str]) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise _bad(f"{where} must be a table/object, got {type(data).__name__}")
    unknown = sorted(str(k) for k in data if k not in allowed)
    if unknown:
        raise _bad(f"{where}: unknown key(s) {', '.join(unknown)} (allowed: {', '.join(sorted(allowed))})")
    missing = sorted(required - set(data))
    if missing:
        raise _bad(f"{where}: missing key(s) {', '.join(missing)}")
    return data


def _list(data: object, where: str) -> list[Any]:
    if not isinstance(data, list):
        raise _bad(f"{where} must be a list, got {type(data).__name__}")
    return data


def _link_from(data: object, where: str) -> Link:
    d = _mapping(data, where, {"loss", "rate", "mtu"}, set())
    try:
        return Link(**d)
    except LabError as exc:
        raise _bad(f"{where}: {exc}") from None


def _host_from(data: object, where: str) -> Host:
    d = _mapping(data, where, {"name", "link"}, {"name"})
    link = _link_from(d["link"], f"{where}.link") if "link" in d else Link()
    return Host(name=d["name"], link=link)


def _nat_from(data: object, where: str) -> NatRouter:
    d = _mapping(data, where, {"name", "kind", "hosts", "link", "lan"}, {"name", "kind"})
    hosts = tuple(_host_from(h, f"{where}.hosts[{i}]") for i, h in enumerate(_list(d.get("hosts", []), f"{where}.hosts")))
    link = _link_from(d["link"], f"{where}.link") if "link" in d else Link()
    if not isinstance(d["kind"], str):
        raise _bad(f"{where}.kind must be a string")
    return NatRouter(name=d["name"], kind=d["kind"], hosts=hosts, link=link, lan=d.get("lan"))


Role = Literal["public", "nat", "private"]


@dataclass(frozen=True)
class NodePlan:
    """Where one node lives: its namespace, uplink and addresses.

    ``role`` is ``"public"`` (a host on the internet), ``"nat"`` (a router)
    or ``"private"`` (a host behind ``upstream``). ``address`` sits on
    ``iface`` (``eth0``, or ``wan`` for a router) and ``gateway`` is the
    upstream end's address. A router's ``lan_gateway`` is the address its LAN
    hosts route through.
    """

    name: str
    role: Role
    netns: str
    iface: str
    address: IPv4Interface
    gateway: IPv4Address
    upstream: str
    upstream_netns: str
    upstream_iface: str
    link: Link
    nat: NatKind | None = None
    lan_gateway: IPv4Interface | None = None


@dataclass(frozen=True)
class Layout:
    """A topology placed into one lab: every node's :class:`NodePlan`, in build order."""

    lab_id: str
    topology: Topology
    inet_netns: str
    nodes: tuple[NodePlan, ...]

    def node(self, name: str) -> NodePlan:
        """The plan of node ``name``; :class:`LabError` ``"unknown-node"`` if absent."""
        for n in self.nodes:
            if n.name == name:
                return n
        raise LabError(f"lab {self.lab_id} has no node {name!r}", "unknown-node")

    @property
    def namespaces(self) -> list[str]:
        """Every namespace of the lab, the internet first."""
        return [self.inet_netns] + [n.netns for n in self.nodes]

    def to_dict(self) -> dict[str, Any]:
        """Every node's name, role, namespace, addresses and NAT kind, for humans and ``--json``."""
        nodes = []
        for n in self.nodes:
            nodes.append(
                {
                    "name": n.name,
                    "role": n.role,
                    "netns": n.netns,
                    "iface": n.iface,
                    "address": str(n.address.ip),
                    "prefixlen": n.address.network.prefixlen,
                    "gateway": str(n.gateway),
                    "upstream": n.upstream,
                    "nat": n.nat.value if n.nat is not None else None,
                    "lan": str(n.lan_gateway.network) if n.lan_gateway is not None else None,
                    "link": _link_dict(n.link),
                }
            )
        return {
            "id": self.lab_id,
            "topology": self.topology.name,
            "rendezvous": self.topology.rendezvous,
            "inet_netns": self.inet_netns,
            "nodes": nodes,
        }


def netns_name(lab_id: str, node: str) -> str:
    """The namespace of ``node`` in lab ``lab_id`` (``plab-<id>-<node>``)."""
    return f"{NETNS_PREFIX}{lab_id}-{node}"


def nft_table(lab_id: str) -> str:
    """The nft table name this lab uses in each of its namespaces."""
    return f"plab_{lab_id}"


def default_lan(index: int) -> IPv4Network:
    """The LAN range of the ``index``-th router (0-based) when it names none."""
    if not 0 <= index < 254:
        raise _bad(f"router index {index}: no default LAN range left, give one with lan=")
    return IPv4Network(f"192.168.{index + 1}.0/24")


def plan(topology: Topology, lab_id: str) -> Layout:
    """Assign namespaces, interface names and addresses to every node."""
    if not isinstance(lab_id, str) or not LAB_ID_RE.match(lab_id):
        raise LabError(f"lab id {lab_id!r} must be 6 lowercase hex digits", "bad-topology")
    inet = netns_name(lab_id, "inet")
    public_gw = PUBLIC_NET.network_address + 1
    wan_gw = WAN_NET.network_address + 1
    nodes: list[NodePlan] = []
    for i, host in enumerate(topology.hosts):
        nodes.append(
            NodePlan(
                name=host.name,
                role="public",
                netns=netns_name(lab_id, host.name),
                iface="eth0",
                address=IPv4Interface((PUBLIC_NET.network_address + FIRST_HOST + i, PUBLIC_NET.prefixlen)),
                gateway=public_gw,
                upstream="inet",
                upstream_netns=inet,
                upstream_iface=f"v-{host.name}",
                link=host.link,
            )
        )
    for i, nat in enumerate(topology.nats):
        lan = ipaddress.IPv4Network(nat.lan) if nat.lan is not None else default_lan(i)
        lan_gw = IPv4Interface((lan.network_address + 1, lan.prefixlen))
        router_ns = netns_name(lab_id, nat.name)
        nodes.append(
            NodePlan(
                name=nat.name,
                role="nat",
                netns=router_ns,
                iface="wan",
                address=IPv4Interface((WAN_NET.network_address + FIRST_HOST + i, WAN_NET.prefixlen)),
                gateway=wan_gw,
                upstream="inet",
                upstream_netns=inet,
                upstream_iface=f"v-{nat.name}",
                link=nat.link,
                nat=nat.kind,
                lan_gateway=lan_gw,
            )
        )
        for j, host in enumerate(nat.hosts):
            nodes.append(
                NodePlan(
                    name=host.name,
                    role="private",
                    netns=netns_name(lab_id, host.name),
                    iface="eth0",
                    address=IPv4Interface((lan.network_address + FIRST_HOST + j, lan.prefixlen)),
                    gateway=lan_gw.ip,
                    upstream=nat.name,
                    upstream_netns=router_ns,
                    upstream_iface=f"v-{host.name}",
                    link=host.link,
                )
            )
    return Layout(lab_id=lab_id, topology=topology, inet_netns=inet, nodes=tuple(nodes))


def _builtin_basic() -> Topology:
    return Topology(
        name="basic",
        rendezvous="rv",
        hosts=(Host("rv"), Host("pub")),
        nats=(
            NatRouter("nat-fc", NatKind.FULL_CONE, (Host("fc1"),)),
            NatRouter("nat-pr", NatKind.PORT_RESTRICTED, (Host("pr1"),)),
            NatRouter("nat-sym", NatKind.SYMMETRIC, (Host("sym1"),)),
        ),
    )


def _builtin_matrix() -> Topology:
    nats = []
    kinds = ((NatKind.FULL_CONE, "fc"), (NatKind.PORT_RESTRICTED, "pr"), (NatKind.SYMMETRIC, "sym"))
    for i, (kind, short) in enumerate(kinds):
        # Both routers of a kind share one LAN range, as two homes would.
        lan = f"192.168.{i + 1}.0/24"
        for n in (1, 2):
            nats.append(NatRouter(f"nat-{short}{n}", kind, (Host(f"{short}{n}"),), lan=lan))
    return Topology(name="matrix", rendezvous="rv", hosts=(Host("rv"), Host("pub")), nats=tuple(nats))


def _builtin_demo() -> Topology:
    return Topology(
        name="demo",
        rendezvous="rv",
        hosts=(Host("rv"),),
        nats=(
            NatRouter("home", NatKind.PORT_RESTRICTED, (Host("alice"), Host("gw"))),
            NatRouter("office", NatKind.FULL_CONE, (Host("bob"),)),
        ),
    )


BUILTINS: dict[str, Callable[[], Topology]] = {
    "basic": _builtin_basic,
    "matrix": _builtin_matrix,
    "demo": _builtin_demo,
}
BUILTIN_HELP = {
    "basic": "rendezvous + public host, one NAT of each kind with one host behind it",
    "matrix": "rendezvous + public host, two NATs of each kind (same LAN ranges per kind), one host each",
    "demo": "rendezvous; alice and gw behind a port-restricted NAT, bob behind a full-cone NAT",
}


def builtin(name: str) -> Topology:
    """A named built-in topology (see :data:`BUILTIN_HELP`)."""
    try:
        return BUILTINS[name]()
    except KeyError:
        raise _bad(f"no built-in topology {name!r} (have: {', '.join(sorted(BUILTINS))})") from None
