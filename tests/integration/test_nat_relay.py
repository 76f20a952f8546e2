"""Symmetric NAT on both sides: Pilot falls back to the beacon's relay, and
comes back to a direct path once the NATs allow one -- without breaking the
connection that is open meanwhile.

Each test builds its own small lab (rendezvous + two hosts, each behind its
own symmetric NAT) because it reconfigures the routers.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from pilotgw.lab import Host, Lab, NatKind, NatRouter, Topology, netns
from pilotgw.lab.stack import Stack

REASON = netns.unavailable_reason()
pytestmark = [pytest.mark.root, pytest.mark.skipif(REASON is not None, reason=f"NAT tests skipped: {REASON}")]

# The daemon retries the direct path of a relayed peer every 30 s, and at
# once when a STUN answer (every 10 s) shows that its NAT re-mapped it.
UPGRADE_WITHIN = 45.0


@pytest.fixture
def stack() -> Iterator[Stack]:
    topo = Topology("sym-sym", hosts=(Host("rv"),), rendezvous="rv",
                    nats=(NatRouter("nat-a", NatKind.SYMMETRIC, (Host("a"),)),
                          NatRouter("nat-b", NatKind.SYMMETRIC, (Host("b"),))))
    with Lab(topo) as lab, Stack(lab, public=True, trust=False) as st:
        yield st


DIRECT = {"direct", "punched"}  # full cones accept anyone; a punch may still race the first reply


def echo_until_both(stack: Stack, conn, paths: set[str], within: float) -> tuple[str | None, str | None]:  # type: ignore[no-untyped-def]
    """Echo over ``conn`` once a second until both sides report a path of ``paths`` (or time runs out)."""
    deadline = time.monotonic() + within
    i = 0
    while True:
        msg = b"ping %d" % i
        conn.send(msg)
        assert conn.recv(timeout=10) == msg  # the open connection keeps working throughout
        seen = (stack.path("a", "b"), stack.path("b", "a"))
        if (seen[0] in paths and seen[1] in paths) or time.monotonic() > deadline:
            return seen
        i += 1
        time.sleep(1.0)


def open_echo(stack: Stack):  # type: ignore[no-untyped-def]
    client = stack.agent("a").client()
    conn = client.dial(stack.agent("b").node_id, 7, timeout=30)
    conn.send(b"hello")
    assert conn.recv(timeout=10) == b"hello"
    return client, conn


def test_symmetric_pair_uses_the_relay_then_goes_direct_when_the_nats_allow_it(stack: Stack) -> None:
    client, conn = open_echo(stack)
    try:
        assert (stack.path("a", "b"), stack.path("b", "a")) == ("relay", "relay")
        # The NATs are reconfigured to endpoint-independent mapping and
        # filtering; the bindings the nodes hold stay valid.
        for router in ("nat-a", "nat-b"):
            stack.lab.set_nat(router, NatKind.FULL_CONE, flush=False)
        a_b, b_a = echo_until_both(stack, conn, DIRECT, UPGRADE_WITHIN)
        assert a_b in DIRECT and b_a in DIRECT, (a_b, b_a)
        assert stack.peer_entry("a", "b")["endpoint"].startswith(str(stack.lab.host("nat-b").address) + ":")
    finally:
        conn.close()
        client.close()


@pytest.mark.slow
def test_relayed_pair_goes_direct_after_the_nats_reboot_as_full_cone(stack: Stack) -> None:
    client, conn = open_echo(stack)
    try:
        assert (stack.path("a", "b"), stack.path("b", "a")) == ("relay", "relay")
        for router in ("nat-a", "nat-b"):
            stack.lab.set_nat(router, NatKind.FULL_CONE, flush=True)
        a_b, b_a = echo_until_both(stack, conn, DIRECT, UPGRADE_WITHIN)
        assert a_b in DIRECT and b_a in DIRECT, (a_b, b_a)
        # Over the NAT's new mapping: the one b registered after its STUN saw it.
        assert stack.peer_entry("a", "b")["endpoint"].startswith(str(stack.lab.host("nat-b").address) + ":")
    finally:
        conn.close()
        client.close()
