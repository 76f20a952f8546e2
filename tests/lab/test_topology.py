"""Topology descriptions: validation, the JSON/TOML form, and the address plan."""

from __future__ import annotations

import dataclasses
from ipaddress import IPv4Network

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pilotgw.lab.errors import LabError
from pilotgw.lab.topology import (
    BUILTIN_HELP,
    Host,
    Link,
    NatKind,
    NatRouter,
    Topology,
    builtin,
    plan,
)

LAB_ID = "a1b2c3"


def test_every_builtin_is_listed_and_valid() -> None:
    for name in BUILTIN_HELP:
        topo = builtin(name)
        assert topo.name == name
        assert topo.rendezvous == "rv"
        assert Topology.from_dict(topo.to_dict()) == topo


def test_basic_has_one_nat_of_each_kind() -> None:
    kinds = sorted(n.kind.value for n in builtin("basic").nats)
    assert kinds == ["full-cone", "port-restricted", "symmetric"]


def test_unknown_builtin_names_the_choices() -> None:
    with pytest.raises(LabError) as err:
        builtin("nope")
    assert err.value.code == "bad-topology"
    assert "basic" in str(err.value)


def test_plan_places_public_hosts_routers_and_lans() -> None:
    layout = plan(builtin("basic"), LAB_ID)
    rv, pub = layout.node("rv"), layout.node("pub")
    assert (str(rv.address), str(rv.gateway)) == ("198.51.100.10/24", "198.51.100.1")
    assert str(pub.address.ip) == "198.51.100.11"
    nat = layout.node("nat-pr")
    assert nat.role == "nat" and nat.iface == "wan" and nat.nat is NatKind.PORT_RESTRICTED
    assert str(nat.address) == "203.0.113.11/24" and str(nat.gateway) == "203.0.113.1"
    pr1 = layout.node("pr1")
    assert pr1.role == "private" and pr1.upstream == "nat-pr" and pr1.upstream_netns == nat.netns
    assert pr1.address.network == nat.lan_gateway.network == IPv4Network("192.168.2.0/24")
    assert pr1.gateway == nat.lan_gateway.ip
    assert str(pr1.address.ip) == "192.168.2.10"


def test_names_are_unique_per_lab_and_fit_linux_limits() -> None:
    topo = builtin("matrix")
    one, two = plan(topo, LAB_ID), plan(topo, "00ff00")
    assert set(one.namespaces).isdisjoint(two.namespaces)
    assert len(set(one.namespaces)) == len(one.namespaces) == len(topo.node_names()) + 1
    for node in one.nodes:
        assert LAB_ID in node.netns
        assert len(node.iface) <= 15 and len(node.upstream_iface) <= 15
    longest = Host("abcdefghijkl")
    node = plan(Topology("t", hosts=(longest,)), LAB_ID).node("abcdefghijkl")
    assert len(node.upstream_iface) == 14


def test_routers_may_share_a_lan_range() -> None:
    layout = plan(builtin("matrix"), LAB_ID)
    assert layout.node("pr1").address == layout.node("pr2").address


def test_layout_to_dict_lists_every_node() -> None:
    info = plan(builtin("demo"), LAB_ID).to_dict()
    assert info["id"] == LAB_ID and info["rendezvous"] == "rv"
    by_name = {n["name"]: n for n in info["nodes"]}
    assert set(by_name) == {"rv", "home", "alice", "gw", "office", "bob"}
    assert by_name["home"]["nat"] == "port-restricted" and by_name["home"]["lan"] == "192.168.1.0/24"
    assert by_name["gw"]["address"] == "192.168.1.11"


def test_unknown_node_is_a_lab_error() -> None:
    with pytest.raises(LabError) as err:
        plan(builtin("basic"), LAB_ID).node("ghost")
    assert err.value.code == "unknown-node"


@pytest.mark.parametrize("lab_id", ["", "ABCDEF", "a1b2c", "a1b2c3d", "../x", 7])
def test_bad_lab_ids_are_refused(lab_id: object) -> None:
    with pytest.raises(LabError):
        plan(builtin("basic"), lab_id)  # type: ignore[arg-type]


BAD_TOPOLOGIES = [
    ([], "must be a table"),
    ({"hosts": []}, "missing key"),
    ({"name": "t", "hosts": [{"name": "a"}], "extra": 1}, "unknown key"),
    ({"name": "t", "hosts": []}, "at least one"),
    ({"name": "t", "hosts": [{"name": "a"}, {"name": "a"}]}, "used twice"),
    ({"name": "t", "hosts": [{"name": "Inet"}]}, "node name"),
    ({"name": "t", "hosts": [{"name": "inet"}]}, "reserved"),
    ({"name": "t", "hosts": [{"name": "abcdefghijklm"}]}, "1-12 characters"),
    ({"name": "t", "hosts": [{"name": 5}]}, "node name"),
    ({"name": "t", "hosts": "a"}, "must be a list"),
    ({"name": "t", "hosts": [{"name": "a", "link": {"loss": 100}}]}, "loss"),
    ({"name": "t", "hosts": [{"name": "a", "link": {"loss": "2"}}]}, "loss"),
    ({"name": "t", "hosts": [{"name": "a", "link": {"rate": True}}]}, "rate"),
    ({"name": "t", "hosts": [{"name": "a", "link": {"rate": 10}}]}, "rate"),
    ({"name": "t", "hosts": [{"name": "a", "link": {"mtu": 500}}]}, "mtu"),
    ({"name": "t", "hosts": [{"name": "a", "link": {"delay": 5}}]}, "unknown key"),
    ({"name": "t", "hosts": [{"name": "a"}], "rendezvous": "b"}, "rendezvous"),
    ({"name": "t", "hosts": [{"name": "a"}], "rendezvous": ["a"]}, "rendezvous"),
    ({"name": "t", "nats": [{"name": "n", "kind": "cone"}]}, "NAT kind"),
    ({"name": "t", "nats": [{"name": "n", "kind": 1}]}, "kind must be a string"),
    ({"name": "t", "nats": [{"name": "n", "kind": "symmetric", "lan": "192.168.1.0/25"}]}, "smaller than a /24"),
    ({"name": "t", "nats": [{"name": "n", "kind": "symmetric", "lan": "198.51.100.0/24"}]}, "overlaps"),
    ({"name": "t", "nats": [{"name": "n", "kind": "symmetric", "lan": "192.168.1.1/24"}]}, "not an IPv4 network"),
    ({"name": "t", "nats": [{"name": "n", "kind": "symmetric", "hosts": [{"name": "n"}]}]}, "used twice"),
    ({"name": "bad name!", "hosts": [{"name": "a"}]}, "topology name"),
]


@pytest.mark.parametrize(("data", "needle"), BAD_TOPOLOGIES)
def test_bad_descriptions_get_a_clear_error(data: object, needle: str) -> None:
    with pytest.raises(LabError) as err:
        Topology.from_dict(data)
    assert err.value.code == "bad-topology"
    assert needle in str(err.value)


def test_rendezvous_must_be_public_not_private() -> None:
    with pytest.raises(LabError, match="rendezvous"):
        Topology("t", hosts=(Host("a"),), nats=(NatRouter("n", NatKind.SYMMETRIC, (Host("b"),)),), rendezvous="b")


def test_link_impaired_flag() -> None:
    assert not Link().impaired and not Link(mtu=1280).impaired
    assert Link(loss=0.5).impaired and Link(rate=1_000_000).impaired


names = st.from_regex(r"[a-z][a-z0-9-]{0,11}", fullmatch=True).filter(lambda n: n != "inet")
links = st.builds(
    Link,
    loss=st.one_of(st.just(0.0), st.floats(min_value=0, max_value=99.9)),
    rate=st.one_of(st.none(), st.integers(min_value=8000, max_value=10**10)),
    mtu=st.integers(min_value=576, max_value=9000),
)


@st.composite
def topologies(draw: st.DrawFn) -> Topology:
    pool = draw(st.lists(names, min_size=1, max_size=12, unique=True))
    n_public = draw(st.integers(min_value=1, max_value=len(pool)))
    hosts = tuple(Host(n, draw(links)) for n in pool[:n_public])
    rest, nats = pool[n_public:], []
    while rest:
        take = draw(st.integers(min_value=1, max_value=len(rest)))
        router, members = rest[0], rest[1:take]
        rest = rest[take:]
        lan = draw(st.one_of(st.none(), st.sampled_from(["10.9.0.0/16", "192.168.77.0/24"])))
        nats.append(NatRouter(router, draw(st.sampled_from(list(NatKind))), tuple(Host(m, draw(links)) for m in members), draw(links), lan))
    rv = draw(st.one_of(st.none(), st.sampled_from([h.name for h in hosts])))
    return Topology("gen", hosts, tuple(nats), rv)


@settings(max_examples=200, deadline=None)
@given(topologies())
def test_description_round_trips_and_plans(topo: Topology) -> None:
    assert Topology.from_dict(topo.to_dict()) == topo
    layout = plan(topo, LAB_ID)
    assert [n.name for n in layout.nodes] == topo.node_names()
    # Addresses are unique on the public side and within each LAN.
    public = [n.address.ip for n in layout.nodes if n.role != "private"]
    assert len(set(public)) == len(public)
    for router in (n for n in layout.nodes if n.role == "nat"):
        lan = [n.address.ip for n in layout.nodes if n.upstream == router.name]
        assert len(set(lan)) == len(lan)
        assert all(ip in router.lan_gateway.network and ip != router.lan_gateway.ip for ip in lan)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(["name", "hosts", "nats", "kind", "link", "loss", "rate", "mtu", "lan", "rendezvous", "x"]), inner, max_size=5),
    max_leaves=20,
)


@settings(max_examples=250, deadline=None)
@given(json_values)
def test_arbitrary_data_raises_only_lab_error(data: object) -> None:
    try:
        Topology.from_dict(data)
    except LabError as exc:
        assert exc.code == "bad-topology"


def test_replace_keeps_validation() -> None:
    topo = builtin("basic")
    assert dataclasses.replace(topo, hosts=topo.hosts + (Host("extra"),)).node_names()[2] == "extra"
    with pytest.raises(LabError):
        dataclasses.replace(topo, hosts=topo.hosts + (Host("rv"),))
