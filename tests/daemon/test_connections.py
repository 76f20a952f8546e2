"""The daemon's connection table wired back to back in one event loop:
large-segment negotiation, SYN limits, accept queue, timers."""

from __future__ import annotations

import asyncio

from pilotgw.daemon.connections import ACCEPT_QUEUE, ConnTable
from pilotgw.overlay import packet as pkt
from pilotgw.overlay.address import Addr, SocketAddr
from pilotgw.overlay.stream.options import StreamOptions

A, B = Addr(0, 10), Addr(0, 20)


class Sink:
    """Listener + owner that records what happens."""

    def __init__(self, writable: bool = True) -> None:
        self.writable = writable
        self.accepted = []
        self.data = bytearray()

    def on_accept(self, conn) -> None:
        conn.owner = self
        self.accepted.append(conn)
        self.on_data(conn)

    def on_data(self, conn) -> None:
        self.data += conn.read(1 << 20)

    def on_writable(self, conn) -> None:
        pass

    def on_closed(self, conn) -> None:
        self.on_data(conn)


def pair(loop, *, large_a=True, large_b=True, syn_rate=100, wire=None, trusted=None):
    base = StreamOptions()
    large = StreamOptions(mss=65000, recv_buffer=8 << 20)
    tables = {}

    def link(dst):
        def transmit(p):
            if wire is not None:
                wire.append(p)
            data = pkt.encode(p)
            loop.call_soon(tables[dst].receive, pkt.decode(data))
        return transmit

    tables["a"] = ConnTable(loop, A, link("b"), options=base, large_options=large if large_a else None)
    tables["b"] = ConnTable(loop, B, link("a"), options=base, large_options=large if large_b else None,
                            syn_rate=syn_rate, is_trusted=trusted)
    return tables["a"], tables["b"]


def test_large_segments_only_when_both_offer():
    async def main(large_b):
        loop = asyncio.get_running_loop()
        wire = []
        a, b = pair(loop, large_b=large_b, wire=wire)
        sink = Sink()
        b.listen(1000, sink)
        conn = a.dial(SocketAddr(B, 1000), None)
        await asyncio.wait_for(conn.dial_future, 5)
        a.send(conn, b"x" * 300_000)
        for _ in range(200):
            await asyncio.sleep(0.005)
            if len(sink.data) == 300_000:
                break
        biggest = max(len(p.payload) for p in wire if p.flags == pkt.FLAG_ACK and p.src_node == A.node)
        synack = [p for p in wire if p.flags == pkt.FLAG_SYN | pkt.FLAG_ACK][0]
        return len(sink.data), biggest, bytes(synack.payload), conn.ext

    n, biggest, synack_payload, ext = asyncio.run(main(True))
    assert n == 300_000 and biggest == 65000 and ext == 65000 and synack_payload[:4] == b"PGX1"
    # A responder without the extension (a reference peer) ignores the SYN data.
    n, biggest, synack_payload, ext = asyncio.run(main(False))
    assert n == 300_000 and biggest == 4096 and ext == 0 and synack_payload == b""


def test_syn_to_closed_port_gets_rst_and_rate_limit_drops_silently():
    async def main():
        loop = asyncio.get_running_loop()
        wire = []
        a, b = pair(loop, syn_rate=3, wire=wire)
        conn = a.dial(SocketAddr(B, 4444), None)  # nobody listens
        try:
            await asyncio.wait_for(conn.dial_future, 2)
        except Exception as exc:
            refused = getattr(exc, "code", "")
        b.listen(7, Sink())
        for _ in range(6):
            a.dial(SocketAddr(B, 7), None)
        await asyncio.sleep(0.1)
        established = sum(1 for c in b.by_id.values())
        return refused, established, b.syn_drops

    refused, established, drops = asyncio.run(main())
    assert refused == "refused"
    assert established == 3 and drops == 3  # 3 tokens, the rest dropped without RST


def test_trusted_peer_skips_the_syn_buckets():
    async def main(trusted):
        loop = asyncio.get_running_loop()
        a, b = pair(loop, syn_rate=3, trusted=trusted)
        b.listen(7, Sink())
        for _ in range(20):
            a.dial(SocketAddr(B, 7), None)
        await asyncio.sleep(0.1)
        return len(b.by_id), b.syn_drops

    assert asyncio.run(main(lambda src: src == A.node)) == (20, 0)
    assert asyncio.run(main(lambda src: False)) == (3, 17)


def test_accept_queue_overflow_resets():
    async def main():
        loop = asyncio.get_running_loop()
        a, b = pair(loop, syn_rate=1000)
        slow = Sink(writable=False)  # its socket is full: connections queue
        b.listen(7, slow)
        dials = [a.dial(SocketAddr(B, 7), None) for _ in range(ACCEPT_QUEUE + 5)]
        results = await asyncio.gather(*(asyncio.wait_for(c.dial_future, 5) for c in dials), return_exceptions=True)
        await asyncio.sleep(0.1)
        queued = len(b.backlog.get(7, []))
        slow.writable = True
        b.drain_backlog(7)
        return queued, len(slow.accepted), [c.error for c in dials]

    queued, accepted, errors = asyncio.run(main())
    assert queued == ACCEPT_QUEUE and accepted == ACCEPT_QUEUE
    assert sum(1 for e in errors if e == "reset") == 5


def test_dial_retry_hook_fires_once_when_the_first_syn_goes_unanswered():
    async def main():
        loop = asyncio.get_running_loop()
        retries = []
        table = ConnTable(loop, A, lambda p: None, options=StreamOptions(syn_rto=0.05),
                          on_dial_retry=retries.append)
        conn = table.dial(SocketAddr(B, 1000), None)
        await asyncio.sleep(0.02)
        assert retries == []  # only the first SYN so far
        await asyncio.sleep(0.4)  # SYNs at 0, 0.05, 0.15, 0.35
        assert conn.syns >= 3 and retries == [B.node]
        table.abort(conn)

    asyncio.run(main())


def test_answered_dial_never_calls_the_retry_hook():
    async def main():
        loop = asyncio.get_running_loop()
        a, b = pair(loop)
        retries = []
        a.on_dial_retry = retries.append
        b.listen(1000, Sink())
        conn = a.dial(SocketAddr(B, 1000), None)
        await asyncio.wait_for(conn.dial_future, 5)
        return retries, conn.syns

    assert asyncio.run(main()) == ([], 1)
