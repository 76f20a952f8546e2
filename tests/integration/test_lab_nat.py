"""Real namespace labs: every NAT kind behaves as its name says, impairments bite,
labs coexist, and nothing is left behind -- not even by a SIGKILLed builder.

Probes are plain UDP sockets created inside the lab's namespaces
(``Node.socket``) plus the STUN-like ``pilotgw.lab.probe`` server started
inside public hosts (``Node.popen``).
"""

from __future__ import annotations

import dataclasses
import errno
import json
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest

from pilotgw.lab import Host, Lab, LabError, Link, NatKind, NatRouter, Topology, builtin, netns, state
from pilotgw.lab.netns import Netlink
from pilotgw.lab.probe import observe

REASON = netns.unavailable_reason()
pytestmark = [pytest.mark.root, pytest.mark.skipif(REASON is not None, reason=f"lab tests skipped: {REASON}")]

PROBE_PORT = 3478
IP_MTU = 14  # <linux/in.h>; this and the next are not exported by the socket module
SO_RCVBUFFORCE = 33  # <asm-generic/socket.h>
IP_MTU_DISCOVER, IP_PMTUDISC_DO = 10, 2  # <linux/in.h>
CLI = [sys.executable, "-c", "from pilotgw.lab.cli import main; main()"]


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    """The matrix topology (two NATs of each kind) plus a third public host, with
    probe servers on ``rv`` and ``pub``; ``stranger`` never talks first."""
    matrix = builtin("matrix")
    topo = dataclasses.replace(matrix, name="nat-test", hosts=matrix.hosts + (Host("stranger"),))
    with Lab(topo) as lab:
        for name in ("rv", "pub"):
            proc = lab.host(name).popen(
                [sys.executable, "-m", "pilotgw.lab.probe", "serve", "--port", str(PROBE_PORT)],
                stdout=subprocess.PIPE,
                text=True,
            )
            assert proc.stdout is not None and proc.stdout.readline().startswith("ready")
        yield lab


def server(lab: Lab, name: str) -> tuple[str, int]:
    return (str(lab.host(name).address), PROBE_PORT)


def udp(lab: Lab, node: str, port: int = 0) -> socket.socket:
    sock = lab.host(node).socket()
    sock.bind(("0.0.0.0", port))
    return sock


def received(sock: socket.socket, timeout: float) -> list[tuple[bytes, tuple[str, int]]]:
    """Everything that arrives on ``sock`` within ``timeout`` seconds."""
    out = []
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        if not select.select([sock], [], [], left)[0]:
            break
        try:
            out.append(sock.recvfrom(65536))
        except ConnectionRefusedError:
            continue
    return out


def mappings(lab: Lab, node: str) -> tuple[socket.socket, tuple[str, int] | None, tuple[str, int] | None]:
    sock = udp(lab, node, 40000)
    return sock, observe(sock, server(lab, "rv")), observe(sock, server(lab, "pub"))


def test_full_cone_maps_one_port_and_lets_anyone_in(lab: Lab) -> None:
    sock, via_rv, via_pub = mappings(lab, "fc1")
    with sock:
        nat_ip = str(lab.host("nat-fc1").address)
        assert via_rv == via_pub == (nat_ip, 40000)
        assert observe(sock, server(lab, "rv"), alt=True) == via_rv
        with udp(lab, "stranger") as stranger:
            stranger.sendto(b"unsolicited", via_rv)
            assert [d for d, _ in received(sock, 0.5)] == [b"unsolicited"]
            # ... and the reply leaves from the mapped port.
            sock.sendto(b"reply", (str(lab.host("stranger").address), stranger.getsockname()[1]))
            assert received(stranger, 0.5) == [(b"reply", via_rv)]


def test_port_restricted_keeps_the_port_but_filters_strangers(lab: Lab) -> None:
    sock, via_rv, via_pub = mappings(lab, "pr1")
    with sock:
        assert via_rv == via_pub == (str(lab.host("nat-pr1").address), 40000)
        assert observe(sock, server(lab, "rv"), alt=True, tries=1) is None  # known host, other port
        with udp(lab, "stranger") as stranger:
            stranger.sendto(b"unsolicited", via_rv)
            assert received(sock, 0.5) == []


def test_symmetric_uses_a_new_port_per_destination(lab: Lab) -> None:
    sock, via_rv, via_pub = mappings(lab, "sym1")
    with sock:
        assert via_rv is not None and via_pub is not None
        assert via_rv[0] == via_pub[0] == str(lab.host("nat-sym1").address)
        assert via_rv[1] != via_pub[1]
        assert observe(sock, server(lab, "rv"), alt=True, tries=1) is None


def hole_punch(lab: Lab, a: str, b: str, rounds: int = 8) -> bool:
    """Both peers learn their mapping from rv, then fire at each other's mapping
    (and at wherever the other's packets really came from). True if each got
    at least one packet from the other."""
    sa, sb = udp(lab, a), udp(lab, b)
    with sa, sb:
        target = {sa: observe(sb, server(lab, "rv")), sb: observe(sa, server(lab, "rv"))}
        got = {sa: False, sb: False}
        for _ in range(rounds):
            for sock, peer in target.items():
                sock.sendto(b"punch", peer)
            for sock in (sa, sb):
                for data, src in received(sock, 0.05):
                    if data == b"punch":
                        got[sock] = True
                        target[sock] = src
            if all(got.values()):
                return True
        return False


@pytest.mark.parametrize(
    ("a", "b", "works"),
    [
        ("fc1", "fc2", True),
        ("fc1", "pr1", True),
        ("fc1", "sym1", True),
        ("pr1", "pr2", True),
        ("pr1", "sym1", False),
        ("sym1", "sym2", False),
    ],
)
def test_hole_punching_between_nat_kinds(lab: Lab, a: str, b: str, works: bool) -> None:
    assert hole_punch(lab, a, b) is works


def test_changing_the_nat_kind_lets_symmetric_peers_punch(lab: Lab) -> None:
    try:
        for router in ("nat-sym1", "nat-sym2"):
            lab.set_nat(router, NatKind.PORT_RESTRICTED)
        assert lab.nat_kind("nat-sym1") is NatKind.PORT_RESTRICTED
        assert hole_punch(lab, "sym1", "sym2")
    finally:
        for router in ("nat-sym1", "nat-sym2"):
            lab.set_nat(router, NatKind.SYMMETRIC)
    assert not hole_punch(lab, "sym1", "sym2")


def test_flushing_a_nat_forgets_its_bindings(lab: Lab) -> None:
    with udp(lab, "pr2") as sock, udp(lab, "pub", 5555) as peer:
        sock.sendto(b"out", (str(lab.host("pub").address), 5555))
        (_, mapped), = received(peer, 0.5)
        peer.sendto(b"in", mapped)
        assert [d for d, _ in received(sock, 0.5)] == [b"in"]
        lab.flush_nat("nat-pr2")
        peer.sendto(b"in again", mapped)
        assert received(sock, 0.3) == []


@pytest.fixture
def restore_pub_link(lab: Lab) -> Iterator[None]:
    yield
    lab.set_link("pub", Link())


def count_through(lab: Lab, n: int) -> int:
    """Send ``n`` datagrams pub -> rv, return how many arrived."""
    with udp(lab, "rv", 6000) as rx, udp(lab, "pub") as tx:
        rx.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 8 << 20)
        got = 0
        for start in range(0, n, 200):
            for i in range(start, min(n, start + 200)):
                tx.sendto(i.to_bytes(4, "big"), (str(lab.host("rv").address), 6000))
            got += len(received(rx, 0.02))
        return got + len(received(rx, 0.2))


def test_loss_drops_about_the_configured_fraction(lab: Lab, restore_pub_link: None) -> None:
    lab.set_link("pub", Link(loss=20.0))
    n = 3000
    got = count_through(lab, n)
    # 20 % of 3000 = 600 lost, sd ~22: a 5-sigma band.
    assert 490 <= n - got <= 710, f"{n - got} of {n} lost at 20 %"
    lab.set_link("pub", Link())
    assert count_through(lab, 1000) == 1000


def test_rate_limit_caps_throughput(lab: Lab, restore_pub_link: None) -> None:
    rate = 20_000_000
    lab.set_link("pub", Link(rate=rate))
    with Netlink(lab.host("pub").netns) as nl:
        assert nl.qdisc_kind("eth0") == "tbf"
    with udp(lab, "rv", 6001) as rx, udp(lab, "pub") as tx:
        rx.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 8 << 20)
        arrivals: list[tuple[float, int]] = []

        def receive() -> None:
            while select.select([rx], [], [], 0.3)[0]:
                arrivals.append((time.monotonic(), len(rx.recv(2048))))

        reader = threading.Thread(target=receive)
        reader.start()
        # The sender blocks when its own tbf queue is full (socket send buffer
        # backpressure), so this loop runs at about the capped rate.
        payload, dest = b"x" * 1200, (str(lab.host("rv").address), 6001)
        end = time.monotonic() + 0.8
        while time.monotonic() < end:
            tx.sendto(payload, dest)
        reader.join()
    # Skip the first 100 ms (the bucket's initial burst), then measure.
    t0 = arrivals[0][0] + 0.1
    steady = [(t, size) for t, size in arrivals if t >= t0]
    bits = sum(size + 28 for _, size in steady) * 8
    measured = bits / (steady[-1][0] - t0)
    assert 0.7 * rate < measured < 1.2 * rate, f"measured {measured / 1e6:.1f} Mbit/s for a {rate / 1e6:.0f} Mbit/s cap"
    lab.set_link("pub", Link())
    with Netlink(lab.host("pub").netns) as nl:
        assert nl.qdisc_kind("eth0") != "tbf"


def test_mtu_applies_to_both_ends_and_routers_report_it(lab: Lab, restore_pub_link: None) -> None:
    lab.set_link("pub", Link(mtu=1280))
    pub = lab.host("pub")
    with Netlink(pub.netns) as nl, Netlink(lab.layout.inet_netns) as inet:
        assert nl.mtu("eth0") == 1280 and inet.mtu("v-pub") == 1280
    with udp(lab, "pub") as tx:
        tx.setsockopt(socket.IPPROTO_IP, IP_MTU_DISCOVER, IP_PMTUDISC_DO)
        with pytest.raises(OSError) as err:
            tx.sendto(b"x" * 1300, (str(lab.host("rv").address), 9))
        assert err.value.errno == errno.EMSGSIZE
    # The far side learns the smaller MTU from the internet's ICMP "frag needed".
    with udp(lab, "rv") as tx:
        tx.setsockopt(socket.IPPROTO_IP, IP_MTU_DISCOVER, IP_PMTUDISC_DO)
        tx.connect((str(pub.address), 9))
        tx.send(b"x" * 1400)
        deadline = time.monotonic() + 2
        while tx.getsockopt(socket.IPPROTO_IP, IP_MTU) != 1280 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert tx.getsockopt(socket.IPPROTO_IP, IP_MTU) == 1280


def small_topology(name: str) -> Topology:
    return Topology(name, hosts=(Host("rv"),), nats=(NatRouter("nat", NatKind.PORT_RESTRICTED, (Host("a"),)),), rendezvous="rv")


def leftovers(lab_id: str) -> dict[str, list[str]]:
    """Anything on the machine that carries the lab's id."""
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True).stdout
    tables = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True, check=True).stdout
    return {
        "namespaces": [n for n in netns.list_all() if lab_id in n],
        "links": [line for line in links.splitlines() if lab_id in line],
        "nft": [line for line in tables.splitlines() if lab_id in line],
        "state": [str(p) for p in state.DEFAULT_STATE_DIR.glob(f"{lab_id}*")],
    }


def test_two_labs_run_side_by_side_with_the_same_addresses(lab: Lab) -> None:
    with Lab(small_topology("one")) as one, Lab(small_topology("two")) as two:
        assert one.id != two.id and set(one.layout.namespaces).isdisjoint(two.layout.namespaces)
        assert one.host("a").address == two.host("a").address
        rv_addr = (str(one.host("rv").address), 7000)
        with udp(one, "rv", 7000) as rv_one, udp(two, "rv", 7000) as rv_two, udp(one, "a") as a_one:
            a_one.sendto(b"hello one", rv_addr)
            assert [d for d, _ in received(rv_one, 0.5)] == [b"hello one"]
            assert received(rv_two, 0.2) == []
    # The shared module lab is untouched.
    with udp(lab, "pr1") as sock:
        assert observe(sock, server(lab, "rv")) is not None


def test_teardown_leaves_nothing() -> None:
    topo = dataclasses.replace(small_topology("gone"), hosts=(Host("rv", Link(loss=1, rate=10_000_000, mtu=1400)),))
    lab = Lab(topo)
    with lab:
        sleeper = lab.host("a").popen(["sleep", "300"])
        during = leftovers(lab.id)
        assert len(during["namespaces"]) == 4 and during["state"]
    assert sleeper.poll() is not None
    assert leftovers(lab.id) == {"namespaces": [], "links": [], "nft": [], "state": []}
    lab.down()  # idempotent


def test_failed_build_cleans_up(monkeypatch: pytest.MonkeyPatch) -> None:
    lab = Lab(small_topology("broken"))

    def refuse(*args: object, **kwargs: object) -> None:
        raise LabError("injected", "nft")

    monkeypatch.setattr("pilotgw.lab.nat.apply", refuse)
    with pytest.raises(LabError, match="injected"):
        lab.up()
    assert leftovers(lab.id) == {"namespaces": [], "links": [], "nft": [], "state": []}


def test_exiting_without_down_removes_the_lab() -> None:
    script = (
        "from pilotgw.lab import Host, Lab, Topology\n"
        "lab = Lab(Topology('exit', hosts=(Host('rv'),))).up()\n"
        "lab.host('rv').popen(['sleep', '300'])\n"
        "print(lab.id, flush=True)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True)
    assert leftovers(out.stdout.strip()) == {"namespaces": [], "links": [], "nft": [], "state": []}


CRASHING_BUILDER = """
import sys, time
from pilotgw.lab import Host, Lab, NatKind, NatRouter, Topology
topo = Topology("crash", hosts=(Host("rv"),), nats=(NatRouter("nat", NatKind.SYMMETRIC, (Host("a"),)),))
lab = Lab(topo).up()
sleeper = lab.host("a").popen(["sleep", "300"])
print(lab.id, sleeper.pid, flush=True)
time.sleep(300)
"""


def crashed_lab() -> tuple[str, int]:
    """A lab whose builder was SIGKILLed, with a process still running inside it."""
    builder = subprocess.Popen([sys.executable, "-c", CRASHING_BUILDER], stdout=subprocess.PIPE, text=True)
    try:
        assert builder.stdout is not None
        lab_id, sleeper = builder.stdout.readline().split()
    finally:
        builder.send_signal(signal.SIGKILL)
        builder.wait()
    assert len(leftovers(lab_id)["namespaces"]) == 4
    return lab_id, int(sleeper)


def alive(pid: int) -> bool:
    """True if ``pid`` runs (a zombie, dead but not yet reaped by init, does not count)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2] != "Z"


def test_down_cleans_a_lab_whose_builder_was_killed() -> None:
    lab_id, sleeper = crashed_lab()
    try:
        assert alive(sleeper)
        status = json.loads(subprocess.run(CLI + ["status", "--json"], capture_output=True, text=True, check=True).stdout)
        (mine,) = [lab for lab in status["labs"] if lab["id"] == lab_id]
        assert mine["owner_alive"] is False and mine["namespaces_present"] == 4
        out = subprocess.run(CLI + ["down", lab_id], capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        assert f"lab {lab_id} removed (4 namespaces)" in out.stdout
    finally:
        subprocess.run(CLI + ["down", lab_id], capture_output=True, timeout=60)
    assert not alive(sleeper)
    assert leftovers(lab_id) == {"namespaces": [], "links": [], "nft": [], "state": []}


def test_down_all_spares_labs_whose_owner_lives(monkeypatch: pytest.MonkeyPatch) -> None:
    crashed_id, sleeper = crashed_lab()
    with Lab(small_topology("alive")) as live:
        # Only look at this test's two labs: other labs on the machine are not ours to remove.
        ours = (crashed_id, live.id)
        real_list_all = netns.list_all
        monkeypatch.setattr(state.netns, "list_all", lambda: [n for n in real_list_all() if n.split("-")[1] in ours])
        monkeypatch.setattr(state, "load_all", lambda d: ([state.find(i, d) for i in ours], []))
        report = state.down_all(state.DEFAULT_STATE_DIR)
        assert list(report.removed) == [crashed_id] and report.kept == [live.id]
        assert len(leftovers(live.id)["namespaces"]) == 4
    assert not alive(sleeper)
    assert leftovers(crashed_id) == {"namespaces": [], "links": [], "nft": [], "state": []}


def test_cli_up_status_exec_down() -> None:
    up = subprocess.run(CLI + ["up", "demo", "--json"], capture_output=True, text=True, timeout=60)
    assert up.returncode == 0, up.stderr
    info = json.loads(up.stdout)
    try:
        assert {n["name"] for n in info["nodes"]} == {"rv", "home", "alice", "gw", "office", "bob"}
        hostname = subprocess.run(CLI + ["exec", info["id"], "alice", "--", "ip", "-4", "-o", "addr", "show", "eth0"], capture_output=True, text=True, timeout=30)
        assert "192.168.1.10/24" in hostname.stdout
    finally:
        down = subprocess.run(CLI + ["down", info["id"], "--json"], capture_output=True, text=True, timeout=60)
    assert down.returncode == 0 and len(json.loads(down.stdout)["removed"][info["id"]]) == 7
    assert leftovers(info["id"]) == {"namespaces": [], "links": [], "nft": [], "state": []}
