"""Installing and removing the kernel side in a private namespace."""

from __future__ import annotations

import ipaddress
import socket

import pytest

from pilotgw.tun import ipv4
from pilotgw.tun.errors import KernelError
from pilotgw.tun.leftovers import find_leftovers
from pilotgw.tun.netlink import Netlink
from pilotgw.tun.nft import Nft
from pilotgw.tun.plumbing import SubnetPlumbing
from pilotgw.tun.state import load_record

SUBNET = ipaddress.IPv4Network("10.4.0.0/16")
ONE = ipaddress.IPv4Address("10.4.0.1")


def test_install_records_everything_and_remove_leaves_nothing(namespace, tmp_path):
    plumbing = SubnetPlumbing(SUBNET, tmp_path / "k.json")
    tun = plumbing.install(40000, None, [ONE])
    try:
        _, items = load_record(tmp_path / "k.json")
        assert [item["kind"] for item in items] == ["link", "route", "rule", "nft_table"]
        assert sorted(find_leftovers(SUBNET)) == [
            "link pilot0",
            "nft table ip pilotgw_pilot0",
            "route 10.4.0.0/16 table 4104",
            "rule 4104: to 10.4.0.0/16",
        ]
        # UDP to a mapped IP is routed to the TUN device.
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.sendto(b"ping", (str(ONE), 9))
        packets = [tun.read() for _ in range(20)]
        udp_packets = [ipv4.parse_ipv4(p) for p in packets if p and p[0] >> 4 == 4]
        assert [(p.dst, ipv4.parse_udp(p).data) for p in udp_packets] == [(ONE, b"ping")]
    finally:
        undone = plumbing.remove()
    assert undone == [
        "nft table pilotgw_pilot0",
        "rule to 10.4.0.0/16 lookup 4104",
        "route 10.4.0.0/16 table 4104",
        "link pilot0",
    ]
    assert find_leftovers(SUBNET) == []
    assert not (tmp_path / "k.json").exists()
    assert plumbing.remove() == []  # idempotent


def test_mapped_set_follows_add_and_remove(namespace, tmp_path):
    plumbing = SubnetPlumbing(SUBNET, tmp_path / "k.json")
    plumbing.install(40000, frozenset({80}), [])
    try:
        plumbing.add_mapped(ONE)
        listing = Nft()._run("list", "set", "ip", "pilotgw_pilot0", "mapped").stdout
        assert "10.4.0.1" in listing
        plumbing.remove_mapped(ONE)
        listing = Nft()._run("list", "set", "ip", "pilotgw_pilot0", "mapped").stdout
        assert "10.4.0.1" not in listing
    finally:
        plumbing.remove()


def test_existing_device_means_another_gateway(namespace, tmp_path):
    first = SubnetPlumbing(SUBNET, tmp_path / "a.json")
    first.install(40000, None, [])
    try:
        second = SubnetPlumbing(SUBNET, tmp_path / "b.json")
        with pytest.raises(KernelError) as err:
            second.install(40001, None, [])
        assert err.value.code == "already_exists"
        assert not (tmp_path / "b.json").exists()
        second.remove()
        assert "link pilot0" in find_leftovers(SUBNET)  # the first gateway is untouched
    finally:
        first.remove()


def test_failed_install_rolls_back(namespace, tmp_path):
    """A rule that cannot be added (same priority and table exists) undoes the device and route."""
    with Netlink() as netlink:
        netlink.add_rule(SUBNET, 4104, 4104)
    plumbing = SubnetPlumbing(SUBNET, tmp_path / "k.json")
    with pytest.raises(KernelError) as err:
        plumbing.install(40000, None, [])
    assert err.value.code == "already_exists"
    # Rolling back removed our own objects, and also the rule that matched ours.
    assert find_leftovers(SUBNET) == []
    assert not (tmp_path / "k.json").exists()


def test_bad_device_name_refused(tmp_path):
    with pytest.raises(KernelError) as err:
        SubnetPlumbing(SUBNET, tmp_path / "k.json", device="bad name;")
    assert err.value.code == "invalid_argument"
