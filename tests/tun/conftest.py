"""A private network namespace per test, so the host's network is never touched.

The test process itself moves into the namespace (``setns`` on the main
thread) for the duration of the test; processes and threads it starts
inherit it. On the way out the namespace is deleted, which removes anything
still in it, and the host is checked for gateway leftovers too.
"""

from __future__ import annotations

import ipaddress
import itertools
import os

import pytest
from pyroute2 import IPRoute, netns

from pilotgw.tun.leftovers import find_leftovers

SUBNET = ipaddress.IPv4Network("10.4.0.0/16")
_names = itertools.count()


@pytest.fixture
def namespace():
    """Enter a fresh namespace with ``lo`` up; yields its name."""
    if os.geteuid() != 0:
        pytest.skip("needs root: creates a network namespace, a TUN device and nftables rules")
    name = f"pgw-tun-{os.getpid()}-{next(_names)}"
    netns.create(name)
    netns.pushns(name)
    try:
        with IPRoute() as ipr:
            ipr.link("set", index=ipr.link_lookup(ifname="lo")[0], state="up")
        yield name
    finally:
        netns.popns()
        netns.remove(name)
    assert find_leftovers(SUBNET) == [], "gateway objects leaked into the host namespace"
