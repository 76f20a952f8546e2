"""The generated nftables table: what it matches, and that nft accepts it."""

from __future__ import annotations

import ipaddress

import pytest

from pilotgw.tun.errors import KernelError
from pilotgw.tun.nft import Nft, render_ruleset

SUBNET = ipaddress.IPv4Network("10.4.0.0/16")


def test_every_port_redirected_when_no_list():
    script = render_ruleset("pilotgw_t", SUBNET, 40000, None)
    assert "ip daddr @mapped meta l4proto tcp redirect to :40000" in script
    assert "port-unreachable" not in script


def test_port_list_restricts_tcp_and_udp():
    script = render_ruleset("pilotgw_t", SUBNET, 40000, frozenset({443, 80}))
    assert "tcp dport { 80, 443 } redirect to :40000" in script
    assert "udp dport != { 80, 443 } reject with icmp type port-unreachable" in script


def test_listener_only_reachable_through_the_redirect():
    script = render_ruleset("pilotgw_t", SUBNET, 40000, None)
    assert "tcp dport 40000 ct original ip daddr != 10.4.0.0/16 reject with tcp reset" in script


def test_initial_elements():
    addrs = [ipaddress.IPv4Address("10.4.0.1"), ipaddress.IPv4Address("10.4.0.9")]
    script = render_ruleset("pilotgw_t", SUBNET, 1, None, addrs)
    assert script.endswith("add element ip pilotgw_t mapped { 10.4.0.1, 10.4.0.9 }\n")


def test_empty_port_list_refused():
    with pytest.raises(KernelError) as err:
        render_ruleset("pilotgw_t", SUBNET, 1, frozenset())
    assert err.value.code == "invalid_argument"


def test_nft_accepts_the_table_and_set_updates(namespace):
    nft = Nft()
    nft.apply(render_ruleset("pilotgw_t", SUBNET, 40000, frozenset({80}), [ipaddress.IPv4Address("10.4.0.1")]))
    assert "pilotgw_t" in nft.tables()
    nft.add_mapped("pilotgw_t", ipaddress.IPv4Address("10.4.0.2"))
    nft.remove_mapped("pilotgw_t", ipaddress.IPv4Address("10.4.0.1"))
    with pytest.raises(KernelError) as err:
        nft.remove_mapped("pilotgw_t", ipaddress.IPv4Address("10.4.0.1"))
    assert err.value.code == "internal"
    nft.delete_table("pilotgw_t")
    nft.delete_table("pilotgw_t")  # idempotent
    assert "pilotgw_t" not in nft.tables()
