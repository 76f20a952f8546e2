"""Which path Pilot picks between every pair of NAT kinds, in a real lab.

One lab for the module: a rendezvous, two public hosts and two hosts behind
each NAT kind (full cone, port-restricted, symmetric; each behind its own
router), every one running a public ``pilot-daemon``. For each ordered pair
of kinds one host of the first dials the echo port of a host of the second
(every host pair is used once, so no tunnel exists before its dial), and
both daemons' Info must then show the path the NAT kinds allow:

* listener public or behind a full cone: **direct** or **punched** -- it
  accepts anyone, but the beacon's PunchCommand may still reach the dialler
  before the listener's first reply, and the daemon reports ``punched``
  whenever it punched the endpoint before an authenticated frame came back;
* listener behind a port-restricted NAT: exactly **punched** -- its NAT lets
  the dialler in only after the PunchCommand made it send first -- unless
  the dialler is behind a symmetric NAT (it reaches the listener from a port
  the punch never learnt): **relay**;
* listener behind a symmetric NAT: **relay** (the registered port only
  admits the beacon).

The path is the daemon's own ``path`` field of its Info ``peer_list``; it is
cross-checked against the entry's endpoint (the beacon for relay, else the
listener NAT's public address) and ``relay`` flag.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest

from pilotgw.lab import Host, Lab, NatKind, NatRouter, Topology, netns
from pilotgw.lab.stack import Stack

REASON = netns.unavailable_reason()
pytestmark = [pytest.mark.root, pytest.mark.skipif(REASON is not None, reason=f"NAT tests skipped: {REASON}")]

KINDS = {"fc": NatKind.FULL_CONE, "pr": NatKind.PORT_RESTRICTED, "sym": NatKind.SYMMETRIC}
ORDER = ("pub", "fc", "pr", "sym")
# A dial every STAGGER s, so the module's 16 dials do not all start at once
# (test_simultaneous_dials_to_one_node_are_all_punched does that on purpose).
STAGGER = 0.15


def expected(dialer: str, listener: str) -> set[str]:
    """The paths the NAT kinds allow from a ``dialer`` to a ``listener`` kind."""
    if listener in ("pub", "fc"):
        return {"direct", "punched"}
    if listener == "pr":
        return {"relay"} if dialer == "sym" else {"punched"}
    return {"relay"}


def pairs() -> list[tuple[str, str]]:
    """(dialer host, listener host): x1 -> y2 for every ordered pair of kinds."""
    return [(f"{x}1", f"{y}2") for x in ORDER for y in ORDER]


def topology() -> Topology:
    nats = []
    for i, (short, kind) in enumerate(KINDS.items()):
        lan = f"192.168.{i + 1}.0/24"  # both routers of a kind share a LAN range, like two homes
        for n in (1, 2):
            nats.append(NatRouter(f"nat-{short}{n}", kind, (Host(f"{short}{n}"),), lan=lan))
    nats.append(NatRouter("nat-pr3", NatKind.PORT_RESTRICTED, (Host("pr3"),)))
    return Topology("nat-paths", hosts=(Host("rv"), Host("pub1"), Host("pub2"), Host("pub3")), nats=tuple(nats),
                    rendezvous="rv")


def kind_of(host: str) -> str:
    return host.rstrip("0123456789")


def echo(stack: Stack, a: str, b: str, timeout: float = 30.0) -> None:
    with stack.agent(a).client() as c:
        conn = c.dial(stack.agent(b).node_id, 7, timeout=timeout)
        conn.send(f"{a}->{b}".encode())
        assert conn.recv(timeout=10) == f"{a}->{b}".encode()
        conn.close()


def dial_all(stack: Stack, todo: list[tuple[str, str]], stagger: float) -> dict[tuple[str, str], BaseException | None]:
    errors: dict[tuple[str, str], BaseException | None] = {}

    def one(a: str, b: str) -> None:
        try:
            echo(stack, a, b)
            errors[(a, b)] = None
        except BaseException as exc:  # reported per pair below
            errors[(a, b)] = exc

    threads = []
    for a, b in todo:
        t = threading.Thread(target=one, args=(a, b))
        t.start()
        threads.append(t)
        time.sleep(stagger)
    for t in threads:
        t.join(60)
    return errors


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with Lab(topology()) as lab, Stack(lab, public=True, trust=False) as st:
        st.dial_errors = dial_all(st, pairs(), STAGGER)  # type: ignore[attr-defined]
        yield st


def public_ip(stack: Stack, host: str) -> str:
    """The address others see ``host`` at: its own, or its NAT router's WAN address."""
    node = stack.lab.host(host)
    return str(node.address if node.role == "public" else stack.lab.host(node.plan.upstream).address)


def observed(stack: Stack, a: str, b: str) -> str:
    """The path ``a``'s daemon reports for ``b``, checked against the entry's endpoint and relay flag."""
    entry = stack.peer_entry(a, b)
    assert entry is not None and entry["authenticated"] and entry["encrypted"], (a, b, entry)
    path = entry["path"]
    assert entry["relay"] is (path == "relay"), (a, b, entry)
    if path == "relay":
        assert entry["endpoint"] == stack.beacon, (a, b, entry)
    else:
        assert entry["endpoint"].rsplit(":", 1)[0] == public_ip(stack, b), (a, b, entry)
    return path


def test_every_pair_of_nat_kinds_connects(stack: Stack) -> None:
    failed = {p: repr(e) for p, e in stack.dial_errors.items() if e is not None}  # type: ignore[attr-defined]
    assert not failed


@pytest.mark.parametrize("dialer,listener", pairs(), ids=[f"{a}-{b}" for a, b in pairs()])
def test_path_is_the_one_the_nat_kinds_allow(stack: Stack, dialer: str, listener: str) -> None:
    want = expected(kind_of(dialer), kind_of(listener))
    assert observed(stack, dialer, listener) in want
    assert observed(stack, listener, dialer) in ({"relay"} if want == {"relay"} else {"direct", "punched"})


def test_pilotctl_peers_reports_the_path(stack: Stack) -> None:
    """What a user sees: ``pilotctl peers --json`` of a node with one peer of each path."""
    agent = stack.agent("pr1")
    out = subprocess.run([sys.executable, "-m", "pilotgw.cli.main", "--json", "peers"], env=agent.env(stack.registry),
                         capture_output=True, text=True, timeout=30, check=True)
    peers = {p["node_id"]: p for p in json.loads(out.stdout)["data"]["peers"]}
    relayed = peers[stack.agent("sym2").node_id]
    punched = peers[stack.agent("pr2").node_id]
    assert (relayed["path"], relayed["relay"], relayed["endpoint"]) == ("relay", True, stack.beacon)
    assert (punched["path"], punched["relay"]) == ("punched", False)
    assert punched["endpoint"].rsplit(":", 1)[0] == public_ip(stack, "pr2")


def test_simultaneous_dials_to_one_node_are_all_punched(stack: Stack) -> None:
    dialers = ["pub3", "fc2", "pr2"]  # none has talked to pr3 yet
    errors = dial_all(stack, [(d, "pr3") for d in dialers], 0.0)
    assert all(e is None for e in errors.values()), errors
    paths = {d: observed(stack, d, "pr3") for d in dialers}
    assert paths == dict.fromkeys(dialers, "punched")
