"""Fixtures for gateway tests: a private network namespace per test.

The test process moves into the namespace (``setns`` on the main thread) for
the duration of the test; the gateway's worker threads and every process the
test starts (curl, HTTP servers, a gateway to kill) inherit it. The
namespace has ``lo`` and an "uplink" veth pair with an address, like a host,
so local clients have a source address. Deleting the namespace removes
anything left in it; the host namespace is checked for gateway leftovers.
"""

from __future__ import annotations

import ipaddress
import itertools
import os

import pytest
from pyroute2 import IPRoute, netns

from pilotgw.tun.leftovers import find_leftovers

SUBNET = ipaddress.IPv4Network("10.4.0.0/16")
HOST_ADDRESS = "198.18.0.1"
_names = itertools.count()


@pytest.fixture
def namespace():
    """Enter a fresh namespace that looks like a host; yields its name."""
    if os.geteuid() != 0:
        pytest.skip("needs root: creates network namespaces, a TUN device and nftables rules")
    name = f"pgw-proxy-{os.getpid()}-{next(_names)}"
    netns.create(name)
    netns.pushns(name)
    try:
        with IPRoute() as ipr:
            ipr.link("set", index=ipr.link_lookup(ifname="lo")[0], state="up")
            ipr.link("add", ifname="uplink0", kind="veth", peer="uplink1")
            up0, up1 = ipr.link_lookup(ifname="uplink0")[0], ipr.link_lookup(ifname="uplink1")[0]
            ipr.addr("add", index=up0, address=HOST_ADDRESS, prefixlen=24)
            ipr.link("set", index=up0, state="up")
            ipr.link("set", index=up1, state="up")
        yield name
    finally:
        netns.popns()
        netns.remove(name)
    assert find_leftovers(SUBNET) == [], "gateway objects leaked into the host namespace"
