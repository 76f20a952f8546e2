"""The tunnel layer in one process: two or more :class:`Tunnel` objects joined
by an in-memory datagram network and a registry stub, so key exchange, path
choice and recovery are observable without sockets."""

from __future__ import annotations

import asyncio
from typing import Callable, Optional

import pytest

from pilotgw.daemon.peers import Tunnel, parse_hostport
from pilotgw.daemon.registry_client import RegistryError
from pilotgw.overlay import identity
from pilotgw.overlay import packet as pkt

Addr = tuple[str, int]


class Net:
    """Delivers datagrams between endpoints after ``delay`` seconds (next
    loop iteration by default); ``drop(src, dst, data)`` returning true
    loses one."""

    def __init__(self, delay: float = 0.0, drop: Optional[Callable[[Addr, Addr, bytes], bool]] = None) -> None:
        self.bound: dict[Addr, Callable[[bytes, Addr], None]] = {}
        self.sent: list[tuple[float, Addr, Addr, bytes]] = []
        self.delay = delay
        self.drop = drop

    def transport(self, addr: Addr) -> "Transport":
        return Transport(self, addr)

    def deliver(self, src: Addr, dst: Addr, data: bytes) -> None:
        loop = asyncio.get_running_loop()
        self.sent.append((loop.time(), src, dst, data))
        handler = self.bound.get(dst)
        if handler is None or (self.drop is not None and self.drop(src, dst, data)):
            return
        if self.delay:
            loop.call_later(self.delay, handler, data, src)
        else:
            loop.call_soon(handler, data, src)

    def pilas(self, since: float = 0.0) -> list[tuple[Addr, Addr]]:
        return [(src, dst) for t, src, dst, data in self.sent if t >= since and data[:4] == b"PILA"]


class Transport:
    def __init__(self, net: Net, addr: Addr) -> None:
        self.net = net
        self.addr = addr

    def sendto(self, data: bytes, addr: Addr) -> None:
        self.net.deliver(self.addr, addr, bytes(data))


class Registry:
    """The part of RegistryClient the tunnel uses, answering from a dict."""

    def __init__(self) -> None:
        self.keys: dict[int, bytes] = {}
        self.endpoints: dict[int, str] = {}
        self.resolves: list[int] = []
        self.lookups: list[int] = []
        self.forgotten: list[int] = []

    def cached_key(self, node: int) -> Optional[bytes]:
        return None

    async def lookup_key(self, node: int, *, refresh: bool = False) -> bytes:
        self.lookups.append(node)
        try:
            return self.keys[node]
        except KeyError:
            raise RegistryError(f"node {node} not found", "not_found") from None

    async def resolve(self, node: int, me: int, signer) -> str:
        self.resolves.append(node)
        try:
            return self.endpoints[node]
        except KeyError:
            raise RegistryError(f"node {node} not found", "not_found") from None

    def forget_endpoint(self, node: int) -> None:
        self.forgotten.append(node)


class Node:
    """A tunnel bound at ``addr`` on ``net``, registered in ``registry``."""

    def __init__(self, net: Net, registry: Registry, node_id: int, port: int, ident=None) -> None:
        self.ident = ident or identity.generate()
        self.node_id = node_id
        self.addr: Addr = ("127.0.0.1", port)
        self.received: list[pkt.Packet] = []
        self.tunnel = Tunnel(identity=self.ident, registry=registry, beacon=None,
                             on_packet=lambda p, src: self.received.append(p))
        self.tunnel.transport = net.transport(self.addr)  # type: ignore[assignment]
        self.tunnel.set_node_id(node_id)
        net.bound[self.addr] = self.tunnel.datagram_received
        registry.keys[node_id] = self.ident.public_key
        registry.endpoints[node_id] = f"127.0.0.1:{port}"

    def ping(self, dst: int, seq: int = 1) -> None:
        p = pkt.Packet(pkt.PROTO_CONTROL, 0, 0, self.node_id, 0, dst, 4321, 0, seq)
        self.tunnel.send_packet(dst, p.encode())


async def until(cond: Callable[[], bool], timeout: float = 3.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not cond():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.005)


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 20))


BEACON = ("127.0.0.1", 9001)


def behind_beacon(net: "Net | None" = None) -> tuple["Net", "Registry", "Node"]:
    """A network, a registry and node 10 on port 4001 whose configured beacon is :data:`BEACON`."""
    net = net if net is not None else Net()
    registry = Registry()
    a = Node(net, registry, 10, 4001)
    a.tunnel.beacon = BEACON
    return net, registry, a


def test_drop_forgets_the_peer_and_the_next_packet_keys_afresh():
    async def main():
        net, registry = Net(), Registry()
        a = Node(net, registry, 10, 4001)
        b = Node(net, registry, 20, 4002)
        a.ping(20, seq=1)
        await until(lambda: len(b.received) == 1)
        old_key = a.tunnel.peers[20].crypto
        assert registry.resolves == [20]
        assert a.tunnel.drop(20) is True
        assert 20 not in a.tunnel.peers and registry.forgotten[-1] == 20
        assert a.tunnel.drop(20) is False  # idempotent
        a.ping(20, seq=2)  # B still holds the key: it answers A's PILA once A's PILS stop
        await until(lambda: len(b.received) == 2, timeout=5.0)
        assert registry.resolves == [20, 20]  # looked up again
        assert a.tunnel.peers[20].crypto is not old_key
        assert [p.seq for p in b.received] == [1, 2]
        a.tunnel.close()
        b.tunnel.close()

    run(main())


def test_drop_cancels_a_key_exchange_under_way():
    async def main():
        net, registry = Net(), Registry()
        a = Node(net, registry, 10, 4001)
        registry.endpoints[30] = "127.0.0.1:4999"  # nobody there
        registry.keys[30] = identity.generate().public_key
        a.ping(30)
        await until(lambda: a.tunnel.peers[30].kx_handle is not None)
        handle = a.tunnel.peers[30].kx_handle
        a.tunnel.drop(30)
        assert handle.cancelled() and 30 not in a.tunnel.peers
        a.tunnel.close()

    run(main())


def test_a_lost_pila_answer_is_made_good_when_the_peer_repeats_its_pila():
    async def main():
        lost = []

        def drop(src, dst, data):
            if src == a.addr and data[:4] == b"PILA" and not lost:
                lost.append(data)
                return True
            return False

        net, registry = Net(drop=drop), Registry()
        a = Node(net, registry, 10, 4001)
        b = Node(net, registry, 20, 4002)
        b.ping(10)  # B's PILA reaches A; A's answer is lost; B retries at 1 s
        await until(lambda: len(a.received) == 1, timeout=2.5)
        assert lost and a.tunnel.peers[20].crypto.ready and b.tunnel.peers[10].crypto.ready
        a.tunnel.close()
        b.tunnel.close()

    run(main())


def test_repeated_pila_answers_do_not_ping_pong_on_a_slow_path():
    async def main():
        net, registry = Net(delay=0.3), Registry()  # RTT 0.6 s: above the per-node answer gate
        a = Node(net, registry, 10, 4001)
        b = Node(net, registry, 20, 4002)
        a.ping(20)
        await until(lambda: len(b.received) == 1)
        await asyncio.sleep(2.5)
        now = asyncio.get_running_loop().time()
        assert net.pilas(since=now - 1.5) == []
        assert len(net.pilas()) <= 6
        a.tunnel.close()
        b.tunnel.close()

    run(main())


def test_parse_hostport_handles_ipv6_brackets():
    assert parse_hostport("[::1]:9000") == ("::1", 9000)
    assert parse_hostport("10.0.0.1:4000") == ("10.0.0.1", 4000)
    with pytest.raises(ValueError):
        parse_hostport("nohost")


def test_unanswered_dial_rekeys_a_peer_restarted_on_another_port_at_once():
    async def main():
        net, registry = Net(), Registry()
        a = Node(net, registry, 10, 4001)
        b = Node(net, registry, 20, 4002)
        a.ping(20, seq=1)
        await until(lambda: len(b.received) == 1)
        await asyncio.sleep(1.0)  # quiet: nothing from B since
        # B restarts on another port: same identity, new X25519 key, no state.
        b.tunnel.close()
        del net.bound[b.addr]
        b2 = Node(net, registry, 20, 4003, ident=b.ident)
        a.ping(20, seq=2)  # to the dead endpoint, under the dead key
        t0 = asyncio.get_running_loop().time()
        a.tunnel.suspect(20)  # the dial's SYN went unanswered
        await until(lambda: a.tunnel.peers[20].endpoint == b2.addr)
        a.ping(20, seq=3)
        await until(lambda: [p.seq for p in b2.received] == [3])
        assert asyncio.get_running_loop().time() - t0 < 0.5
        a.tunnel.close()
        b2.tunnel.close()

    run(main())


def test_suspect_leaves_a_peer_that_is_talking_alone():
    async def main():
        net, registry = Net(), Registry()
        a = Node(net, registry, 10, 4001)
        b = Node(net, registry, 20, 4002)
        b.ping(10)
        await until(lambda: len(a.received) == 1 and 20 in a.tunnel.peers and a.tunnel.peers[20].last_rx > 0)
        before = len(net.pilas())
        resolves = len(registry.resolves)
        a.tunnel.suspect(20)  # B was heard from just now
        await asyncio.sleep(0.05)
        assert len(net.pilas()) == before and len(registry.resolves) == resolves
        a.tunnel.close()
        b.tunnel.close()

    run(main())


def test_peer_path_direct_punched_and_relay_in_peer_info():
    from pilotgw.overlay import beacon as bmsg

    async def main():
        beacon = BEACON
        hold = [True]
        net, registry, a = behind_beacon(Net(drop=lambda src, dst, data: hold[0] and src == ("127.0.0.1", 4002)))
        b = Node(net, registry, 20, 4002)
        c = Node(net, registry, 30, 4003)
        # C: keyed and answering directly, no punch: "direct".
        a.ping(30)
        await until(lambda: len(c.received) == 1)
        c.ping(10)
        await until(lambda: len(a.received) == 1)
        # B: nothing comes back from it until the beacon's PunchCommand made us punch: "punched".
        a.ping(20)
        await until(lambda: 20 in a.tunnel.peers and a.tunnel.peers[20].endpoint == b.addr)
        net.deliver(beacon, a.addr, bmsg.encode(bmsg.PunchCommand("127.0.0.1", 4002)))
        await until(lambda: any(dst == b.addr and data[:4] == b"PILP" for _, _, dst, data in net.sent))
        hold[0] = False
        await until(lambda: a.tunnel.peers[20].crypto.ready, timeout=4.0)
        b.ping(10, seq=9)
        await until(lambda: len(a.received) == 2)
        # D: reached through the relay: "relay".
        a.tunnel.peer(40).relay = True
        a.tunnel.peers[40].endpoint = ("127.0.0.1", 4999)
        info = {p["node_id"]: p for p in a.tunnel.peer_info()}
        assert (info[30]["path"], info[30]["relay"]) == ("direct", False)
        assert (info[20]["path"], info[20]["relay"]) == ("punched", False)
        assert (info[40]["path"], info[40]["relay"]) == ("relay", True)
        assert info[40]["endpoint"] == "127.0.0.1:9001"  # relayed peers show the beacon
        for n in (a, b, c):
            n.tunnel.close()

    run(main())


def test_every_stun_answer_from_the_beacon_reaches_on_observed():
    from pilotgw.overlay import beacon as bmsg

    async def main():
        beacon = BEACON
        net, registry, a = behind_beacon()
        seen: list[Addr] = []
        a.tunnel.on_observed = seen.append
        reply = bmsg.encode(bmsg.DiscoverReply("203.0.113.7", 40001))
        stun = asyncio.ensure_future(a.tunnel.stun(timeout=1.0))
        await until(lambda: any(dst == beacon for _, _, dst, _ in net.sent))
        net.deliver(beacon, a.addr, reply)
        assert await stun == ("203.0.113.7", 40001)
        # An answer to a Discover we did not wait for (the heartbeat's) counts too ...
        net.deliver(beacon, a.addr, bmsg.encode(bmsg.DiscoverReply("203.0.113.7", 40002)))
        # ... one from anywhere else does not (R-D8).
        net.deliver(("127.0.0.1", 9002), a.addr, bmsg.encode(bmsg.DiscoverReply("198.51.100.1", 1)))
        await asyncio.sleep(0.01)
        assert seen == [("203.0.113.7", 40001), ("203.0.113.7", 40002)]
        a.tunnel.close()

    run(main())


def test_retry_direct_offers_relayed_peers_the_direct_path_at_their_new_endpoint():
    async def main():
        net, registry = Net(), Registry()
        a = Node(net, registry, 10, 4001)
        b = Node(net, registry, 20, 4002)
        c = Node(net, registry, 30, 4003)
        for other in (b, c):
            a.ping(other.node_id)
        await until(lambda: len(b.received) == 1 and len(c.received) == 1)
        a.tunnel.peers[20].relay = True  # B is reached through the relay ...
        registry.endpoints[20] = "127.0.0.1:4012"  # ... and registered a new endpoint since
        t0 = asyncio.get_running_loop().time()
        a.tunnel.retry_direct()
        await until(lambda: (a.addr, ("127.0.0.1", 4012)) in net.pilas(since=t0))
        assert registry.forgotten == [20]  # the cached endpoint was not trusted
        assert all(dst != c.addr for _, dst in net.pilas(since=t0))  # direct peers are left alone
        for n in (a, b, c):
            n.tunnel.close()

    run(main())


def test_punch_commands_for_many_targets_at_once_are_all_punched_within_the_total_budget():
    from pilotgw.daemon.peers import PUNCH_BURST
    from pilotgw.overlay import beacon as bmsg

    async def main():
        beacon = BEACON
        net, registry, a = behind_beacon()

        def pilps(port: int) -> int:
            return sum(1 for _, src, dst, data in net.sent if src == a.addr and dst[1] == port and data == b"PILP")

        # Three peers dial us at the same instant: each gets its 3 PILP.
        for port in (5001, 5002, 5003):
            net.deliver(beacon, a.addr, bmsg.encode(bmsg.PunchCommand("127.0.0.1", port)))
        # A repeat for one target within its interval adds nothing.
        net.deliver(beacon, a.addr, bmsg.encode(bmsg.PunchCommand("127.0.0.1", 5001)))
        await asyncio.sleep(0.01)
        assert [pilps(p) for p in (5001, 5002, 5003)] == [3, 3, 3]
        # A flood of distinct targets is cut at the total budget ...
        flood = range(6000, 6100)
        for port in flood:
            net.deliver(beacon, a.addr, bmsg.encode(bmsg.PunchCommand("127.0.0.1", port)))
        await asyncio.sleep(0.01)
        punched = [p for p in flood if pilps(p)]
        assert len(punched) <= PUNCH_BURST and a.tunnel.stats.drops["punch_rate"] >= 100 - PUNCH_BURST
        # ... and a target refused for it is punched when the budget is back.
        refused = next(p for p in flood if not pilps(p))
        await asyncio.sleep(0.25)
        net.deliver(beacon, a.addr, bmsg.encode(bmsg.PunchCommand("127.0.0.1", refused)))
        await asyncio.sleep(0.01)
        assert pilps(refused) == 3
        a.tunnel.close()

    run(main())


def test_punch_request_is_repeated_with_the_pila_retries():
    from pilotgw.overlay import beacon as bmsg

    async def main():
        beacon = BEACON
        net, registry, a = behind_beacon()
        registry.endpoints[30] = "127.0.0.1:4999"  # behind a NAT that drops us until punched
        registry.keys[30] = identity.generate().public_key
        a.ping(30)
        request = bmsg.encode(bmsg.PunchRequest(10, 30))
        await until(lambda: sum(1 for _, _, dst, data in net.sent if dst == beacon and data == request) >= 2,
                    timeout=1.5)
        a.tunnel.close()

    run(main())
