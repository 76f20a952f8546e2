"""The link simulator itself: delay, rate, queue, impairments, determinism."""

from __future__ import annotations

import pytest

from pilotgw.overlay.linksim import LinkConfig, LinkSim
from pilotgw.overlay.packet import PROTO_DATAGRAM, Packet


class Node:
    """Sends queued packets, records what arrives (with the time)."""

    def __init__(self) -> None:
        self.queue: list[Packet] = []
        self.got: list[tuple[float, bytes]] = []

    def receive(self, p, now):
        self.got.append((now, bytes(p.payload)))

    def packets_to_send(self, now):
        out, self.queue = self.queue, []
        return out

    def next_timer(self):
        return None

    def timer_expired(self, now):
        raise AssertionError("no timers")

    def next_event(self):
        return None


def send(n: int, cfg: LinkConfig, seed: int = 0, size: int = 966) -> tuple[Node, LinkSim]:
    a, b = Node(), Node()
    a.queue = [Packet(PROTO_DATAGRAM, payload=i.to_bytes(4, "big") + bytes(size - 4)) for i in range(n)]
    sim = LinkSim(a, b, cfg, seed=seed)
    sim.start()
    sim.run()
    return b, sim


def test_delay_and_serialisation():
    b, _ = send(3, LinkConfig(delay=0.01, bandwidth=8e6))  # 1000 wire bytes = 1 ms each
    assert [round(t, 6) for t, _ in b.got] == [0.011, 0.012, 0.013]


def test_tail_drop_queue():
    b, sim = send(10, LinkConfig(delay=0.0, bandwidth=8e6, queue=3000))
    assert len(b.got) == 3 and sim.stats[0].queue_drops == 7


@pytest.mark.parametrize("field", ["loss", "duplicate", "reorder", "corrupt"])
def test_impairment_rates_are_close_to_configured(field):
    b, sim = send(4000, LinkConfig(delay=0.001, reorder_delay=0.01, **{field: 0.1}), seed=3)
    st = sim.stats[0]
    count = {"loss": st.lost, "duplicate": st.duplicated, "reorder": st.reordered, "corrupt": st.corrupted}[field]
    assert 300 < count < 500
    if field == "corrupt":
        assert st.rejected == st.corrupted and len(b.got) == 4000 - st.corrupted
    if field == "reorder":
        seqs = [int.from_bytes(d[:4], "big") for _, d in b.got]
        assert seqs != sorted(seqs) and sorted(seqs) == list(range(4000))


def test_seeded_runs_repeat_exactly():
    cfg = LinkConfig(loss=0.2, reorder=0.2, duplicate=0.2)
    assert send(500, cfg, seed=9)[0].got == send(500, cfg, seed=9)[0].got
    assert send(500, cfg, seed=9)[0].got != send(500, cfg, seed=10)[0].got


def test_bad_config_is_refused():
    with pytest.raises(ValueError):
        LinkConfig(loss=1.5)


def test_partial_trains_pin_reassembly_memory_until_the_timeout():
    # The lab's stall, modelled: a sender queue that fills in the middle of a
    # 45-fragment datagram lets the first fragments out and refuses the rest;
    # those fragments fill the receiver's reassembly memory, and until they
    # time out no fragmented datagram can be reassembled -- unfragmented ones
    # still arrive.
    cfg = LinkConfig(delay=0.001, bandwidth=100e6, queue=100_000, refuse=True, mtu=1500,
                     reassembly=150_000, reassembly_timeout=30.0)
    a, b = Node(), Node()
    big = [Packet(PROTO_DATAGRAM, payload=bytes([i]) * 60_000) for i in range(4)]
    a.queue = list(big)
    sim = LinkSim(a, b, cfg, seed=1)
    sim.start()  # 1st fits, 2nd leaves a partial train, 3rd and 4th find the queue full
    sim.run(until=1.0)
    st = sim.stats[0]
    assert [d[0] for _, d in b.got] == [0] and st.refused == 3 and st.partial == 1
    # The train pinned ~30 fragments (~70 KB): not yet full. One more partial
    # train (random loss now) fills it.
    sim.links = (LinkConfig(delay=0.001, mtu=1500, loss=0.5, reassembly=50_000, reassembly_timeout=30.0), cfg)
    a.queue = [big[1]]
    sim.flush(0)
    sim.run(until=2.0)
    assert st.partial == 2 and len(b.got) == 1
    sim.links = (LinkConfig(delay=0.001, mtu=1500, reassembly=50_000, reassembly_timeout=30.0), cfg)
    a.queue = [big[2], Packet(PROTO_DATAGRAM, payload=b"small")]
    sim.flush(0)
    sim.run(until=3.0)
    assert [d for _, d in b.got][1:] == [b"small"] and st.reassembly_drops == 1
    a.queue = [big[3]]  # after the timeout the memory is free again
    sim.run(until=32.0)
    sim.flush(0)
    sim.run(until=33.0)
    assert b.got[-1][1] == big[3].payload


def test_reassembly_needs_an_mtu():
    with pytest.raises(ValueError):
        LinkConfig(reassembly=4 << 20)
